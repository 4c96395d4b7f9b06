import math

import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.compression import prune, sensitivity
from mcu_dc.compression.capture import capture
from mcu_dc.compression.config import PruneConfig
from mcu_dc.compression.train import TrainConfig, train
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError, ModelError


def _toy(n=256, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 1, 4, 4), dtype=np.uint8)
    labels = (images.reshape(n, -1)[:, :8].sum(1) > images.reshape(n, -1)[:, 8:].sum(1)).astype(np.int64)
    return Dataset("toy", images, labels, 1 / 255, num_classes=2)


def _net(dropout=0.0):
    torch.manual_seed(0)
    layers = [nn.Flatten(), nn.Linear(16, 32), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(32, 2)]
    return capture(nn.Sequential(*layers), (1, 4, 4))


def test_masks_survive_retraining_with_momentum_and_weight_decay():
    net = _net()
    data = _toy()
    for wl in net.weight_layers():
        prune.prune_to_sparsity(wl, 0.7)
    before = {wl.name: wl.mask.clone() for wl in net.weight_layers()}
    # a stale momentum would move pruned weights: train once with a large lr, momentum and L2
    train(
        net,
        data,
        TrainConfig(epochs=3, lr=0.5, momentum=0.99, weight_decay=0.1, batch_size=16),
        torch.device("cpu"),
        progress=False,
    )
    for wl in net.weight_layers():
        assert torch.equal(wl.mask, before[wl.name])
        pruned = wl.weight.detach()[wl.mask == 0]
        assert pruned.numel() > 0 and bool((pruned == 0).all())
        assert bool((wl.weight.detach()[wl.mask == 1] != 0).any())
    assert prune.check_masks_hold(net)


def test_threshold_is_quality_times_std():
    net = _net()
    wl = net.weight_layers()[0]
    w = wl.weight.detach().clone()
    std = float(w.std())
    prune.prune_layer(wl, 0.8)
    expect = (w.abs() >= 0.8 * std).float()
    assert torch.equal(wl.mask, expect)


def test_prune_to_sparsity_reaches_target_and_masks_only_shrink():
    net = _net()
    wl = net.weight_layers()[0]
    q, s = prune.prune_to_sparsity(wl, 0.5)
    assert q > 0 and abs(s - 0.5) < 0.01
    m1 = wl.mask.clone()
    prune.prune_to_sparsity(wl, 0.8)
    assert bool((wl.mask <= m1).all()) and abs(prune.sparsity(net)[wl.name] - 0.8) < 0.01


def test_pruning_a_layer_to_100_percent_is_refused():
    net = _net()
    wl = net.weight_layers()[1]
    with pytest.raises(ModelError, match="100 %") as e:
        prune.prune_layer(wl, 1e9)
    assert "'1'" in str(e.value) or wl.name in str(e.value)
    with pytest.raises(ModelError, match="100 %"):
        prune.prune_to_sparsity(wl, 1.0)
    with pytest.raises(ConfigError, match="100 %"):
        PruneConfig(sparsity={"1": 1.0}).validate()


def test_dropout_adjustment_follows_the_paper():
    net = _net(dropout=0.5)
    base = prune.original_dropout(net)
    wl = net.weight_layers()[1]
    prune.prune_to_sparsity(wl, 0.75)
    got = prune.adjust_dropout(net, base)
    assert math.isclose(got[wl.name], 0.5 * math.sqrt(wl.kept() / wl.n_weights))
    assert math.isclose(net.dropouts_before()[wl.name].p, got[wl.name])


def test_sensitivity_shape_and_choice(tmp_path):
    net = _net()
    data = _toy()
    grid = (0.5, 0.8, 0.9)
    sens = sensitivity.analyze(net, data, torch.device("cpu"), grid)
    assert set(sens.layers) == {wl.name for wl in net.weight_layers()}
    for d in sens.layers.values():
        assert d["sparsity"] == list(grid) and len(d["accuracy"]) == 3 and len(d["quality"]) == 3
        assert all(0 <= a <= 1 for a in d["accuracy"])
    # the analysis leaves the network untouched
    assert all(wl.kept() == wl.n_weights for wl in net.weight_layers())
    chosen = sens.choose(budget=1.0, max_sparsity=0.85, current={})
    assert all(v == 0.8 for v in chosen.values())
    sens.save_json(tmp_path / "s.json")
    assert (tmp_path / "s.json").read_text().startswith("{")


def test_explicit_sparsity_targets_are_reached_over_rounds():
    from mcu_dc.compression.config import CompressConfig
    from mcu_dc.compression.pipeline import dense_and_prune

    data = _toy(400)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    cfg = CompressConfig(
        dense=TrainConfig(epochs=1, batch_size=32),
        prune=PruneConfig(
            rounds=2, sparsity={"1": 0.9, "3": 0.5}, retrain=TrainConfig(epochs=1, batch_size=32)
        ),
        val_size=50,
    )
    s1 = dense_and_prune(model, data, data, cfg, progress=False)
    assert abs(s1.art.sparsity["1"] - 0.9) < 0.01 and abs(s1.art.sparsity["3"] - 0.5) < 0.02
    assert s1.art.sensitivity == []  # every layer had a target: no analysis needed
    with pytest.raises(ConfigError, match="unknown layer"):
        cfg.prune.sparsity = {"fc9": 0.5}
        dense_and_prune(model, data, data, cfg, progress=False)
