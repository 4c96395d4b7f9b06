"""Ternary (TTQ) and binary (BWN) weights: the math, the layer modes, and a digits compress.

Units: the threshold assignment, TTQ's scale and latent gradients (against the paper's
formulas), BWN's gradient (against XNOR-Net's), the refusals (binary on a pruned layer,
unknown layer names). End to end: a small digits MLP with one ternary and one binary layer
compresses, its weight ops have codebooks {-a, +b} / {-a, +a} stored TERNARY / BINARY, and
its .mcudc simulates to the recorded accuracy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import mcu_dc
from mcu_dc.compression import cluster, ternary
from mcu_dc.compression.capture import capture
from mcu_dc.compression.cluster import ClusterConfig
from mcu_dc.compression.config import CompressConfig, PruneConfig
from mcu_dc.compression.train import TrainConfig
from mcu_dc.core import objective as O
from mcu_dc.core.blob import decode_blob, encode_blob
from mcu_dc.core.qmath import Encoding
from mcu_dc.core.simulator import simulate
from mcu_dc.data import load_train_test
from mcu_dc.errors import ConfigError


def test_threshold_assignment():
    w = torch.tensor([[0.9, -1.0, 0.04, -0.05, 0.051, -0.2]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0, 0.0]])
    d = ternary.ternary_threshold(w, mask, 0.05)
    assert float(d) == pytest.approx(0.05)  # 0.05 * max|w| over the unpruned weights
    a = ternary.ternary_assign(w, mask, d)
    assert a.tolist() == [[1, -1, 0, 0, 1, 0]]  # |w| <= Δ is 0; the pruned -0.2 stays 0


def test_ttq_gradients_follow_the_paper():
    torch.manual_seed(0)
    w = torch.randn(4, 7, requires_grad=True)
    mask = (torch.rand(4, 7) > 0.2).float()
    wp = torch.tensor(0.7, requires_grad=True)
    wn = torch.tensor(0.4, requires_grad=True)
    g = torch.randn(4, 7)
    wt = ternary.ttq_weight(w, mask, wp, wn, 0.3)
    (wt * g).sum().backward()
    a = ternary.ternary_assign(w.detach(), mask, ternary.ternary_threshold(w, mask, 0.3))
    pos, neg = a > 0, a < 0
    assert pos.any() and neg.any() and (a == 0).any()
    assert torch.equal(wt.detach(), 0.7 * pos.float() - 0.4 * neg.float())
    assert float(wp.grad) == pytest.approx(float(g[pos].sum()))
    assert float(wn.grad) == pytest.approx(-float(g[neg].sum()))  # weights -W_n: the chain rule's sign
    want = torch.where(pos, 0.7 * g, torch.where(neg, 0.4 * g, g))
    assert torch.allclose(w.grad, want)


def test_bwn_gradient_is_xnor_nets():
    torch.manual_seed(1)
    w = torch.randn(3, 5, requires_grad=True)
    g = torch.randn(3, 5)
    wb = ternary.bwn_weight(w)
    (wb * g).sum().backward()
    a, s = w.detach().abs().mean(), torch.where(w.detach() >= 0, 1.0, -1.0)
    assert torch.allclose(wb.detach(), a * s)
    assert torch.allclose(w.grad, a * g + s * (g * s).sum() / w.numel())
    scale = torch.tensor(0.3, requires_grad=True)
    w.grad = None
    (ternary.bwn_weight(w, scale) * g).sum().backward()
    assert float(scale.grad) == pytest.approx(float((g * s).sum()))
    assert torch.allclose(w.grad, 0.3 * g)


def _net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    return capture(model, (1, 8, 8))


def test_layer_modes_train_and_finalize():
    net = _net()
    l1, l2 = net.weight_layers()
    l1.mask[:, :5] = 0
    sizes = cluster.cluster_net(net, ClusterConfig(mode="ternary", layer_mode={"3": "binary"}))
    assert sizes == {"1": 3, "3": 2}
    params = {id(p) for p in net.parameters() if p.requires_grad}
    assert id(l1.scales) in params and id(l1.weight) in params  # TTQ: latent weights and both scales
    assert id(l2.scales) not in params  # BWN with a = mean|w|
    x = torch.randn(8, 1, 8, 8)
    net(x).sum().backward()
    assert l1.scales.grad is not None and l1.weight.grad is not None
    w1 = l1.effective_weight().detach()
    assert len(torch.unique(w1)) <= 3 and bool((w1[:, :5] == 0).all())
    cluster.finalize(net)
    assert type(l1).__name__ == "WeightLayer" and l1.mode == "shared" and len(l1.centroids) == 3
    assert len(torch.unique(l2.effective_weight())) <= 2 and l2.mode == "shared"
    assert torch.allclose(l1.effective_weight(), w1)  # the frozen codebook is the trained ternary weight


def test_binary_refuses_a_pruned_layer_and_unknown_names():
    net = _net()
    net.weight_layers()[1].mask[0, 0] = 0
    with pytest.raises(ConfigError, match=r"layer '3' is .* pruned but binary weights have no zero"):
        cluster.cluster_net(net, ClusterConfig(layer_mode={"3": "binary"}))
    with pytest.raises(ConfigError, match=r"layer_mode names 'fc9'.*weight layers are 1, 3"):
        cluster.cluster_net(_net(), ClusterConfig(layer_mode={"fc9": "ternary"}))
    with pytest.raises(ConfigError, match="layer_mode"):
        ClusterConfig(layer_mode={"1": "quaternary"}).validate()


@pytest.fixture(scope="module")
def digits_ternary(tmp_path_factory):
    tr, te = load_train_test("digits")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    cfg = CompressConfig(
        dense=TrainConfig(epochs=15, lr=0.05, batch_size=64),
        prune=PruneConfig(
            rounds=1,
            budget=0.02,
            sparsity={"1": 0.5, "3": 0.0},
            retrain=TrainConfig(epochs=2, lr=0.01, batch_size=64),
        ),
        cluster=ClusterConfig(mode="ternary", layer_mode={"3": "binary"}),
        finetune=TrainConfig(epochs=6, lr=1e-3, optimizer="adam", weight_decay=0.0, batch_size=64),
        objective="speed",
        val_size=200,
    )
    cm = mcu_dc.compress(model, tr, te, cfg, name="digits_ternary", progress=False)
    path = tmp_path_factory.mktemp("t") / "digits_ternary.mcudc"
    cm.save(path)
    return cm, path, te


def test_digits_with_a_ternary_and_a_binary_layer(digits_ternary):
    cm, path, te = digits_ternary
    fc1, fc2 = cm.model.layers
    assert len(fc1.codebook) == 2 and fc1.codebook.min() < 0 < fc1.codebook.max()  # {-W_n, +W_p}, zero pruned
    assert 0 < (np.asarray(fc1.assign) >= 0).mean() < 0.5 + 1e-9  # pruned and ternary zeros
    assert len(fc2.codebook) == 2 and fc2.codebook[0] == -fc2.codebook[1]  # {-a, +a}
    assert (np.asarray(fc2.assign) >= 0).all()
    assert Encoding.TERNARY in O.allowed_encodings(fc1) and Encoding.BINARY not in O.allowed_encodings(fc1)
    assert Encoding.BINARY in O.allowed_encodings(fc2)
    # the speed objective's pick for the binary layer: its sign plane, or (for a layer this small,
    # on the M4's cost model) the dense smlad path; never a Huffman stream
    picked = Encoding(fc2.encoding)
    assert picked in (Encoding.BINARY, Encoding.DENSE_INT8)
    speed = {o.encoding: o.instructions for o in O.layer_options(cm.model)[1]}
    assert speed[picked] == min(speed.values())
    loaded = mcu_dc.load(path)
    y = simulate(loaded.model, te.images)
    acc = float((y.argmax(1) == te.labels).mean())
    assert acc == cm.meta["accuracy"]["integer"] and acc > 0.85
    # stored TERNARY + BINARY: the same integers, so the same outputs and accuracy
    bp = O.with_encodings(loaded.model, {0: Encoding.TERNARY, 1: Encoding.BINARY})
    back = decode_blob(encode_blob(bp))
    assert [Encoding(op.encoding) for op in back.layers] == [Encoding.TERNARY, Encoding.BINARY]
    assert np.array_equal(simulate(back, te.images), y)
