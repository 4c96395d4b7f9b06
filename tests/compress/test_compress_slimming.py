"""Network slimming: BatchNorm re-inserted for training, the L1 penalty on γ, folding, channel choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.compression import models
from mcu_dc.compression.capture import capture
from mcu_dc.compression.channel_surgery import ChannelGraph
from mcu_dc.compression.config import CompressConfig, from_dict
from mcu_dc.compression.graph import GraphNet
from mcu_dc.compression.slimming import (
    SlimLayer,
    SlimmingConfig,
    choose_channels,
    fold_batchnorm,
    gamma_scores,
    insert_batchnorm,
    slim,
    slim_layers,
)  # fmt: skip
from mcu_dc.compression.train import TrainConfig, train
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError

CPU = torch.device("cpu")


def _data(n: int = 96, shape: tuple[int, int, int] = (3, 16, 16), seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    return Dataset("t", rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 10, n), 1 / 255)


def _net(seed: int = 0) -> GraphNet:
    torch.manual_seed(seed)
    return capture(models.TinyResNet8().eval(), (3, 16, 16))


def test_inserted_batchnorm_is_the_identity_in_eval_mode_and_folds_back() -> None:
    net, data = _net(), _data()
    x = torch.from_numpy(data.float_inputs(slice(0, 8)))
    with torch.no_grad():
        want = net(x)
    names = insert_batchnorm(net, ChannelGraph(net), data, 1e-4, 64, CPU)
    assert "conv" in names and "fc" not in names  # the classifier's outputs are the network's
    assert all(isinstance(net.layer(n), SlimLayer) for n in names)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), want, rtol=1e-4, atol=1e-4)
        for s in slim_layers(net):  # move away from the identity, then fold
            s.bn.weight.mul_(torch.rand_like(s.bn.weight) + 0.5)
            s.bn.bias.add_(0.1)
        changed = net(x)
    assert not torch.allclose(changed, want, atol=1e-3)
    gammas = fold_batchnorm(net)
    assert set(gammas) == set(names) and not slim_layers(net)
    with torch.no_grad():
        torch.testing.assert_close(net(x), changed, rtol=1e-4, atol=1e-4)


def test_penalty_adds_lambda_sign_gamma_to_the_gradient() -> None:
    data = _data(32)
    x = torch.from_numpy(data.float_inputs(slice(0, 16)))
    grads = {}
    for lam in (0.0, 0.5):
        net = _net()
        insert_batchnorm(net, ChannelGraph(net), data, lam, 32, CPU)
        s = net.layer("stack2.conv1")
        assert isinstance(s, SlimLayer)
        with torch.no_grad():
            s.bn.weight[::2] *= -1.0  # both signs
        net.train()
        net.zero_grad()
        net(x).pow(2).mean().backward()
        grads[lam] = (s.bn.weight.grad.clone(), torch.sign(s.bn.weight.detach()))
    (g0, sign), (g1, _) = grads[0.0], grads[0.5]
    torch.testing.assert_close(g1 - g0, 0.5 * sign)


def test_sparsity_training_shrinks_gamma() -> None:
    data = _data(96)
    means = {}
    for lam in (0.0, 5e-2):
        net = _net()
        insert_batchnorm(net, ChannelGraph(net), data, lam, 96, CPU)
        g0 = np.concatenate([s.gamma() for s in slim_layers(net)]).sum()
        train(net, data, TrainConfig(epochs=3, lr=0.01, batch_size=32, weight_decay=0.0), CPU, progress=False)
        means[lam] = np.concatenate([s.gamma() for s in slim_layers(net)]).sum() / g0
    assert means[5e-2] < means[0.0] - 0.05


def test_global_and_per_layer_choice_with_caps() -> None:
    net = _net()
    graph = ChannelGraph(net)
    groups = graph.prunable_groups()
    original = {g.name: len(g.prunable(graph)) for g in groups}
    scores = np.arange(len(graph.components), dtype=np.float64)[::-1].copy()  # later components score lower
    cfg = SlimmingConfig(percent=0.5, scope="global", max_fraction=0.5)
    picked = choose_channels(graph, scores, cfg, original)
    assert all(len(v) <= original[k] // 2 for k, v in picked.items())  # the cap holds per group
    total = sum(original.values())
    assert sum(map(len, picked.values())) <= round(0.5 * total)
    low = sorted((ci for g in groups for ci in g.prunable(graph)), key=lambda ci: scores[ci])[:3]
    assert set(low) <= {ci for v in picked.values() for ci in v}  # the lowest |γ| go first
    per = choose_channels(graph, scores, SlimmingConfig(percent=0.25, scope="layer"), original)
    assert {k: len(v) for k, v in per.items()} == {k: round(0.25 * n) for k, n in original.items()}


def test_gamma_scores_sum_over_the_producers_of_an_add_group() -> None:
    net = _net()
    graph = ChannelGraph(net)
    gammas = {wl.name: np.ones(int(wl.weight.shape[0])) for wl in net.weight_layers()}
    scores = gamma_scores(graph, gammas)
    comp = graph.components[graph.of[(net.layer("stack1.conv2").output, 0)]]
    assert scores[comp.index] == len(comp.producers) == 2  # the stem and stack1.conv2 (identity shortcut)


def test_slim_removes_channels_and_keeps_a_working_net() -> None:
    data = _data(64)
    net = _net()
    cfg = SlimmingConfig(
        enabled=True, penalty=1e-3, percent=0.4, calib_samples=64,
        sparse_train=TrainConfig(epochs=1, batch_size=32), retrain=TrainConfig(epochs=1, batch_size=32),
    )  # fmt: skip
    small, rounds = slim(net, data, cfg, CPU)
    before = {wl.name: int(wl.weight.shape[0]) for wl in net.weight_layers()}
    after = rounds[0]["channels"]
    assert sum(before.values()) - sum(after.values()) >= 0.3 * (sum(before.values()) - 10)
    assert after["fc"] == 10 and not slim_layers(small)
    x = torch.from_numpy(data.float_inputs(slice(0, 4)))
    assert small(x).shape == (4, 10)


def test_config_errors_name_the_key() -> None:
    cfg = from_dict(
        CompressConfig, {"slimming": {"enabled": True, "scope": "layer", "sparse_train": {"epochs": 1}}}
    )
    assert cfg.slimming.scope == "layer" and cfg.slimming.sparse_train.epochs == 1
    for bad, key in (
        ({"scope": "net"}, "slimming.scope"),
        ({"percent": 1.0}, "slimming.percent"),
        ({"penalty": -1.0}, "slimming.penalty"),
        ({"sparse_train": {"lr": 0.0}}, "slimming.sparse_train"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            from_dict(CompressConfig, {"slimming": bad}).validate()
    with pytest.raises(ConfigError, match=r"slimming\.penalty"):
        from_dict(CompressConfig, {"slimming": {"penalty": "big"}})


def test_batchnorm1d_style_slimming_of_fc_neurons() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    net = capture(model.eval(), (12, 1, 1))
    rng = np.random.default_rng(0)
    data = Dataset("f", rng.normal(size=(40, 12)).astype(np.float32), rng.integers(0, 3, 40))
    names = insert_batchnorm(net, ChannelGraph(net, fc=True), data, 1e-3, 40, CPU)
    assert names == ["1"]
    x = torch.from_numpy(data.float_inputs(slice(0, 8)))
    net.train()
    assert net(x).shape == (8, 3)  # BatchNorm over (N, C, 1, 1)
