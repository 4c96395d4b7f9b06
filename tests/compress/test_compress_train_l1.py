"""L1 regularisation (``TrainConfig.l1``, the DQC paper's Softmax-loss + L1): one SGD step adds
exactly ``lr * l1 * sign(w)`` to the weight layers' weights (float, DQC shadow, or per kept weight
to a shared centroid), leaves biases alone, and shrinks weights over training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.compression import cluster
from mcu_dc.compression.capture import capture
from mcu_dc.compression.cluster import ClusterConfig
from mcu_dc.compression.train import TrainConfig, train
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError


def _data(n: int = 256) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 1, 6, 6), dtype=np.uint8)
    return Dataset("toy", x, rng.integers(0, 3, size=n), input_scale=1 / 255, num_classes=3)


def _net():
    torch.manual_seed(0)
    return capture(nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 3)), (1, 6, 6))


def _step(net, l1: float, lr: float = 0.1) -> None:
    cfg = TrainConfig(
        epochs=1, lr=lr, momentum=0.0, weight_decay=0.0, batch_size=256, schedule="constant", l1=l1
    )
    train(net, _data(), cfg, torch.device("cpu"), progress=False)


def _params(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def test_one_step_adds_lr_times_l1_times_sign_to_weights_only():
    a, b = _net(), _net()
    w0 = _params(a)
    _step(a, 0.0)
    _step(b, 0.05)
    pa, pb = _params(a), _params(b)
    for name, w in w0.items():
        diff = pb[name] - pa[name]
        if name.endswith("weight"):
            assert torch.allclose(diff, -0.1 * 0.05 * torch.sign(w), atol=1e-6), name
        else:
            assert torch.equal(diff, torch.zeros_like(diff)), f"{name} is not a weight but moved"


def test_pruned_weights_get_no_l1_gradient():
    net = _net()
    wl = net.weight_layers()[0]
    with torch.no_grad():
        wl.mask[:, ::2] = 0
        wl.weight.mul_(wl.mask)
    _step(net, 0.05)
    assert float(wl.weight.detach()[:, ::2].abs().sum()) == 0.0


def test_shared_centroids_move_by_their_member_count():
    a, b = _net(), _net()
    for net in (a, b):
        cluster.cluster_net(net, ClusterConfig(conv_bits=3, fc_bits=3, mode="shared"))
    c0 = [wl.centroids.detach().clone() for wl in a.weight_layers()]
    _step(a, 0.0, lr=1e-3)
    _step(b, 1e-4, lr=1e-3)
    for wa, wb, c in zip(a.weight_layers(), b.weight_layers(), c0, strict=True):
        counts = torch.bincount(wa.assign[wa.mask.bool()], minlength=c.numel()).float()
        expect = -1e-3 * 1e-4 * torch.sign(c) * counts
        assert torch.allclose(wb.centroids.detach() - wa.centroids.detach(), expect, atol=1e-7)


def test_l1_shrinks_the_weights_over_training():
    a, b = _net(), _net()
    cfg = dict(epochs=5, lr=0.05, momentum=0.9, weight_decay=0.0, batch_size=64)
    train(a, _data(), TrainConfig(**cfg), torch.device("cpu"), progress=False)
    train(b, _data(), TrainConfig(**cfg, l1=0.01), torch.device("cpu"), progress=False)
    l1 = [sum(float(wl.weight.detach().abs().sum()) for wl in n.weight_layers()) for n in (a, b)]
    assert l1[1] < 0.8 * l1[0]


@pytest.mark.parametrize("field", ["l1", "weight_decay"])
def test_negative_strength_is_refused(field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: -1e-4}).validate("finetune")
