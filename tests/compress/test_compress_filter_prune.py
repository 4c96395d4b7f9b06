"""Filter (channel) pruning: L1 ranking, physical removal, residual groups, pipeline stage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mcu_dc
from mcu_dc.compression import cluster, models
from mcu_dc.compression.capture import capture
from mcu_dc.compression.channel_surgery import ChannelGraph, graph_costs, remove_channels
from mcu_dc.compression.cluster import ClusterConfig
from mcu_dc.compression.config import CompressConfig, PruneConfig, from_dict
from mcu_dc.compression.filter_prune import FilterPruneConfig, l1_ranking, n_to_remove, prune_filters
from mcu_dc.compression.graph import ChannelPad, GraphNet, WeightLayer
from mcu_dc.compression.quantize import QuantConfig, to_integer_model
from mcu_dc.compression.report import build_report, to_markdown
from mcu_dc.compression.train import TrainConfig
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.simulator import device_input, simulate
from mcu_dc.data import load_train_test
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError, ModelError

CPU = torch.device("cpu")


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def _zero_components(net: GraphNet, graph: ChannelGraph, drop: list[int]) -> None:
    """Zero every filter (weights and bias) writing a channel of the components ``drop``."""
    prod = {n.output: n for n in net.nodes if isinstance(n, WeightLayer)}
    with torch.no_grad():
        for ci in drop:
            for t, c in graph.components[ci].members:
                if t in prod:
                    prod[t].weight[c] = 0.0
                    prod[t].bias[c] = 0.0


def _half_of_every_group(graph: ChannelGraph, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    drop: list[int] = []
    for g in graph.prunable_groups():
        cand = g.prunable(graph)
        drop += [int(c) for c in rng.choice(cand, size=len(cand) // 2, replace=False)]
    return drop


class ConvChain(nn.Module):
    def __init__(self, c1: int = 6, c2: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c2 * 2 * 2, 12)
        self.fc2 = nn.Linear(12, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool2(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class DwPw(nn.Module):
    """conv -> depthwise 3x3 -> pointwise 1x1 -> global average pool -> fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        x = torch.relu(self.dw(x))
        x = torch.relu(self.pw(x))
        return self.fc(x.mean((2, 3)))


# --------------------------------------------------------------------------- ranking


def test_l1_ranking_picks_the_smallest_filters() -> None:
    torch.manual_seed(0)
    net = capture(ConvChain().eval(), (1, 8, 8))
    wl = net.layer("conv1")
    norms = torch.tensor([5.0, 0.5, 3.0, 0.1, 4.0, 2.0])
    with torch.no_grad():
        wl.weight.copy_(torch.sign(torch.randn_like(wl.weight)) * (norms / 9)[:, None, None, None])
    assert l1_ranking(net, "conv1") == [3, 1, 5, 2, 4, 0]
    graph = ChannelGraph(net)
    g = graph.group("conv1")
    picked = graph.lowest(g, 2, graph.l1_scores())
    assert sorted(graph.components[ci].members[0][1] for ci in picked) == [1, 3]
    small = remove_channels(net, graph, picked)
    assert small.layer("conv1").weight.shape[0] == 4
    kept_norms = small.layer("conv1").weight.detach().abs().sum((1, 2, 3))
    assert torch.allclose(kept_norms, norms[[0, 2, 4, 5]], rtol=1e-5)  # the survivors, in order
    assert small.layer("conv2").weight.shape[1] == 4


def test_masked_weights_do_not_count_in_the_l1_norm() -> None:
    net = capture(ConvChain().eval(), (1, 8, 8))
    wl = net.layer("conv1")
    with torch.no_grad():
        wl.weight.fill_(1.0)
        wl.mask[2] = 0.0  # filter 2 is all pruned: its norm is 0
    assert l1_ranking(net, "conv1")[0] == 2


# --------------------------------------------------------------------------- surgery


@pytest.mark.parametrize(
    ("factory", "shape", "fc"),
    [
        (ConvChain, (1, 8, 8), True),
        (models.LeNet5, (1, 28, 28), True),
        (models.TinyDSCNN, (1, 49, 10), False),
        (models.TinyMobileNet, (3, 16, 16), False),  # depthwise with channel multiplier 2
        (models.TinyResNet8, (3, 16, 16), False),
        (models.TinyCifarResNet, (3, 16, 16), False),  # option-A shortcuts
        (DwPw, (3, 8, 8), False),
    ],
)
def test_removing_zeroed_filters_keeps_the_function(factory, shape, fc) -> None:
    torch.manual_seed(1)
    net = capture(_randomize_bn(factory()).eval(), shape)
    graph = ChannelGraph(net, fc=fc)
    drop = _half_of_every_group(graph)
    assert drop
    _zero_components(net, graph, drop)
    x = torch.randn(5, *shape)
    with torch.no_grad():
        want = net(x)
        small = remove_channels(net, graph, drop)
        got = small(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    before, after = graph_costs(net), graph_costs(small)
    assert after["macs"] < before["macs"] and after["params"] < before["params"]
    # the original is untouched (the surgery copies)
    assert [wl.weight.shape for wl in net.weight_layers()] != [
        wl.weight.shape for wl in small.weight_layers()
    ]


def test_removal_changes_the_function_when_filters_are_not_zero() -> None:
    """The exactness above is not vacuous: removing live filters changes the outputs."""
    torch.manual_seed(1)
    net = capture(ConvChain().eval(), (1, 8, 8))
    graph = ChannelGraph(net)
    small = remove_channels(net, graph, _half_of_every_group(graph))
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(net(x), small(x), atol=1e-4)


def test_residual_block_prunes_the_add_group_together() -> None:
    torch.manual_seed(2)
    net = capture(_randomize_bn(models.TinyCifarResNet(widths=(8, 16))).eval(), (3, 16, 16))
    graph = ChannelGraph(net)
    trunk = graph.group("conv1")
    # the stem, both second convs and the option-A zero channels are one group
    assert set(trunk.layers) == {"conv1", "layer1.conv2", "layer2.conv2"}
    assert len(trunk.components) == 16
    pad = next(n for n in net.nodes if isinstance(n, ChannelPad))
    assert (pad.before, pad.after) == (4, 4)
    # a stem channel is one component with layer1.conv2's same channel and layer2.conv2's channel + 4
    stem_c3 = graph.components[graph.of[(net.layer("conv1").output, 3)]]
    assert {("conv1", 3), ("layer1.conv2", 3), ("layer2.conv2", 7)} <= set(stem_c3.producers)
    # drop stem channels 0 and 3 and two zero channels of the shortcut (layer2.conv2 channels 1 and 14)
    l22 = net.layer("layer2.conv2").output
    drop = [graph.of[(net.layer("conv1").output, c)] for c in (0, 3)] + [graph.of[(l22, c)] for c in (1, 14)]
    _zero_components(net, graph, drop)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        want = net(x)
        small = remove_channels(net, graph, drop)
        torch.testing.assert_close(small(x), want, rtol=1e-5, atol=1e-5)
    ch = {wl.name: int(wl.weight.shape[0]) for wl in small.weight_layers()}
    assert ch["conv1"] == ch["layer1.conv2"] == 6 and ch["layer2.conv2"] == 12
    assert ch["layer1.conv1"] == 8 and ch["layer2.conv1"] == 16  # inner convs are their own groups
    new_pad = next(n for n in small.nodes if isinstance(n, ChannelPad))
    assert (new_pad.before, new_pad.after, new_pad.in_shape[0]) == (3, 3, 6)
    assert small.layer("linear").weight.shape == (10, 12)


def test_residual_groups_can_be_left_alone() -> None:
    net = capture(models.TinyResNet8().eval(), (3, 16, 16))
    graph = ChannelGraph(net, residual=False)
    names = {g.name for g in graph.prunable_groups()}
    assert names == {"stack1.conv1", "stack2.conv1", "stack3.conv1"}  # the first conv of each block


def test_depthwise_follows_its_input_and_pointwise_loses_inputs() -> None:
    torch.manual_seed(3)
    net = capture(DwPw().eval(), (3, 8, 8))
    graph = ChannelGraph(net)
    g = graph.group("conv")
    assert g.layers == ["conv"] and len(g.tensors) == 2  # conv output and depthwise output
    drop = [graph.of[(net.layer("conv").output, c)] for c in (1, 4, 6)]
    small = remove_channels(net, graph, drop)
    assert small.layer("conv").weight.shape[0] == 5
    dw = small.layer("dw")
    assert dw.weight.shape == (5, 1, 3, 3) and dw.in_shape[0] == 5 and dw.groups == 5
    keep = [0, 2, 3, 5, 7]
    torch.testing.assert_close(dw.weight, net.layer("dw").weight[keep])
    torch.testing.assert_close(small.layer("pw").weight, net.layer("pw").weight[:, keep])
    assert small.layer("fc").weight.shape == (4, 6)  # pw's output is its own group, untouched


def test_fc_neuron_pruning_removes_the_next_layers_columns() -> None:
    net = capture(ConvChain().eval(), (1, 8, 8))
    graph = ChannelGraph(net, fc=True)
    assert "fc1" in {g.name for g in graph.prunable_groups()}
    assert "fc2" not in {n for g in graph.groups for n in g.layers if g.prunable(graph)}  # the output
    drop = [graph.of[(net.layer("fc1").output, c)] for c in (0, 5)]
    small = remove_channels(net, graph, drop)
    assert small.layer("fc1").weight.shape == (10, 32) and small.layer("fc2").weight.shape == (10, 10)
    # a conv channel feeding fc1 after a flatten: its 2x2 columns go
    drop = [graph.of[(net.layer("conv2").output, 2)]]
    small = remove_channels(net, graph, drop)
    cols = [c for c in range(32) if c // 4 != 2]
    torch.testing.assert_close(small.layer("fc1").weight, net.layer("fc1").weight[:, cols])
    assert ChannelGraph(net, fc=False).prunable_groups() and "fc1" not in {
        g.name for g in ChannelGraph(net, fc=False).prunable_groups()
    }


def test_frozen_channels_are_refused_with_the_group_named() -> None:
    net = capture(ConvChain().eval(), (1, 8, 8))
    graph = ChannelGraph(net)
    out_comp = graph.of[(net.output_tensor, 0)]
    with pytest.raises(ModelError, match="cannot be removed"):
        remove_channels(net, graph, [out_comp])


def test_n_to_remove_respects_caps() -> None:
    assert n_to_remove(0.5, 16, 16, 1, 0.75) == 8
    assert n_to_remove(0.5, 16, 10, 1, 0.75) == 2  # 6 already gone
    assert n_to_remove(0.9, 16, 16, 1, 0.75) == 12  # max_fraction
    assert n_to_remove(0.9, 4, 4, 2, 0.99) == 2  # min_channels
    assert n_to_remove(0.2, 16, 10, 1, 0.75) == 0  # never grows back


# --------------------------------------------------------------------------- the integer model


def _integer(net: GraphNet, data: Dataset):
    import copy

    q = copy.deepcopy(net)
    cluster.cluster_net(q, ClusterConfig(conv_bits=5, fc_bits=5))
    cluster.finalize(q)
    return to_integer_model(q, data, QuantConfig(calib_samples=64), CPU, "fp")


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    from mcu_dc.deploy.hostbuild import build_runner

    return build_runner(tmp_path_factory.mktemp("runner") / "mcu_dc_runner", sanitize=True, opt="-O1")


def test_integer_model_after_filter_pruning_is_smaller_and_bit_exact_on_host_c(runner, tmp_path) -> None:
    from mcu_dc.deploy.hostbuild import run_blob

    rng = np.random.default_rng(0)
    data = Dataset(
        "t", rng.integers(0, 256, (64, 3, 16, 16), dtype=np.uint8), rng.integers(0, 10, 64), 1 / 255
    )
    torch.manual_seed(4)
    net = capture(_randomize_bn(models.TinyResNet8()).eval(), (3, 16, 16))
    graph = ChannelGraph(net)
    small = remove_channels(net, graph, _half_of_every_group(graph, seed=1))
    big_im, small_im = _integer(net, data), _integer(small, data)
    assert small_im.macs() < 0.6 * big_im.macs()
    assert small_im.arena_bytes() < big_im.arena_bytes()
    assert len(CompressedModel(small_im).blob) < len(CompressedModel(big_im).blob)
    assert graph_costs(small, data)["arena_bytes"] == small_im.arena_bytes()  # the stage's estimate
    cm = CompressedModel(small_im)
    path = tmp_path / "m.bin"
    path.write_bytes(cm.blob)
    x = data.x[:16]
    want = simulate(cm.model, x)
    got = run_blob(runner, path, device_input(cm.model, x), cm.model.output_len)
    assert np.array_equal(got, want)
    assert np.array_equal(
        run_blob(runner, path, device_input(cm.model, x), cm.model.output_len, ref=True), want
    )


# --------------------------------------------------------------------------- config and pipeline


def test_config_is_type_checked_and_errors_name_the_key() -> None:
    cfg = from_dict(CompressConfig, {"filter_prune": {"enabled": True, "fractions": {"conv1": 0.5}}})
    assert cfg.filter_prune.enabled and cfg.filter_prune.fractions == {"conv1": 0.5}
    with pytest.raises(ConfigError, match=r"filter_prune\.budget"):
        from_dict(CompressConfig, {"filter_prune": {"budget": "low"}})
    with pytest.raises(ConfigError, match="filter_prune: unknown key"):
        from_dict(CompressConfig, {"filter_prune": {"ratio": 0.5}})
    for bad, key in (
        ({"max_fraction": 1.0}, "filter_prune.max_fraction"),
        ({"fractions": {"conv1": 1.0}}, "filter_prune.fractions"),
        ({"grid": [0.0]}, "filter_prune.grid"),
        ({"rounds": 0}, "filter_prune.rounds"),
        ({"min_channels": 0}, "filter_prune.min_channels"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            from_dict(CompressConfig, {"filter_prune": bad}).validate()


def test_unknown_fraction_names_list_the_groups() -> None:
    rng = np.random.default_rng(0)
    data = Dataset("t", rng.integers(0, 256, (32, 1, 8, 8), dtype=np.uint8), rng.integers(0, 10, 32), 1 / 255)
    net = capture(ConvChain().eval(), (1, 8, 8))
    cfg = FilterPruneConfig(enabled=True, fractions={"conv9": 0.5})
    with pytest.raises(ConfigError, match=r"conv9.*conv1 \(conv1\)"):
        prune_filters(net, data, data, cfg, CPU)


def test_explicit_fractions_ramp_over_rounds_and_skip_sensitivity() -> None:
    rng = np.random.default_rng(0)
    data = Dataset("t", rng.integers(0, 256, (64, 1, 8, 8), dtype=np.uint8), rng.integers(0, 10, 64), 1 / 255)
    net = capture(ConvChain().eval(), (1, 8, 8))
    cfg = FilterPruneConfig(
        enabled=True,
        rounds=2,
        fractions={"conv1": 0.5, "conv2": 0.75},
        retrain=TrainConfig(epochs=1, batch_size=32),
    )
    small, rounds = prune_filters(net, data, data, cfg, CPU)
    assert [r["channels"]["conv1"] for r in rounds] == [4, 3] and rounds[-1]["channels"]["conv2"] == 2
    assert all("sensitivity" not in r for r in rounds)
    assert small.layer("fc1").weight.shape[1] == 2 * 4


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 24, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(24)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(24 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.bn2(self.conv2(x))))
        return self.fc(torch.flatten(x, 1))


def test_end_to_end_digits_with_filter_pruning() -> None:
    tr, te = load_train_test("digits")
    torch.manual_seed(0)
    cfg = CompressConfig(
        dense=TrainConfig(epochs=8, lr=0.05, batch_size=64),
        filter_prune=FilterPruneConfig(
            enabled=True,
            rounds=1,
            budget=0.02,
            grid=[0.25, 0.5, 0.75],
            retrain=TrainConfig(epochs=3, lr=0.02),
        ),
        prune=PruneConfig(rounds=1, budget=0.02, retrain=TrainConfig(epochs=2, lr=0.01, batch_size=64)),
        cluster=ClusterConfig(conv_bits=5, fc_bits=5),
        finetune=TrainConfig(epochs=1, lr=1e-4, optimizer="adam", weight_decay=0.0, batch_size=64),
        val_size=200,
    )
    cm = mcu_dc.compress(DigitsCNN(), tr, te, cfg, name="digits_cnn", progress=False)
    st = cm.meta["structured"]
    assert st["methods"] == ["filter_prune"]
    assert st["macs_after"] < st["macs_before"] and st["arena_bytes_after"] <= st["arena_bytes_before"]
    assert st["layers"]["conv1"]["channels_before"] == 16
    removed = sum(r["channels_before"] - r["channels_after"] for r in st["layers"].values())
    assert removed > 0
    conv2 = next(op for op in cm.model.layers if op.name == "conv2")
    assert conv2.in_shape[0] == st["layers"]["conv1"]["channels_after"]
    assert list(cm.meta["accuracy"])[:3] == ["dense", "structured", "pruned"]
    assert cm.meta["accuracy"]["integer"] > 0.8
    rep = build_report(cm)
    assert rep["structured"]["macs_after"] == st["macs_after"]
    assert "## Structured pruning" in to_markdown(rep)
