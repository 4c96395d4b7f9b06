import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mcu_dc.compression import cluster
from mcu_dc.compression.capture import capture
from mcu_dc.compression.cluster import DQC_WEIGHTS, ClusterConfig, kmeans_1d
from mcu_dc.compression.prune import prune_to_sparsity
from mcu_dc.errors import ConfigError, ModelError


@settings(max_examples=25, deadline=None)
@given(
    centers=st.lists(st.integers(-50, 50), min_size=2, max_size=6, unique=True),
    seed=st.integers(0, 1000),
)
def test_kmeans_recovers_synthetic_clusters_density_init(centers, seed):
    rng = np.random.default_rng(seed)
    c = np.array(sorted(centers), dtype=np.float64)
    vals = rng.permutation(np.concatenate([ci + rng.normal(0, 0.01, 60) for ci in c]))
    cent, a = kmeans_1d(vals, len(c), "density", 100, seed=seed)
    assert np.allclose(np.sort(cent), c, atol=0.05)
    assert np.allclose(cent[a], np.round(vals), atol=0.05)


@pytest.mark.parametrize("init", ["linear", "random"])
def test_kmeans_recovers_evenly_spaced_clusters(init):
    rng = np.random.default_rng(3)
    c = np.array([-0.3, -0.1, 0.1, 0.3, 0.5])
    vals = np.concatenate([ci + rng.normal(0, 0.005, 100) for ci in c])
    runs = [kmeans_1d(vals, len(c), init, 100, seed=s) for s in range(8)]  # Forgy init: best of a few
    cent, _ = min(runs, key=lambda r: float(((vals - r[0][r[1]]) ** 2).sum()))
    assert np.allclose(np.sort(cent), c, atol=0.01)


def test_kmeans_reseeds_empty_clusters():
    vals = np.concatenate([np.zeros(50), np.ones(50), np.full(50, 5.0)])
    cent, _ = kmeans_1d(vals, 3, "linear", 50)  # linear init 0, 2.5, 5: the middle one starts empty
    assert np.allclose(np.sort(cent), [0, 1, 5])


def _net():
    torch.manual_seed(0)
    return capture(nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3)), (1, 4, 4))


def test_centroid_gradient_is_sum_of_member_gradients():
    net = _net()
    for wl in net.weight_layers():
        prune_to_sparsity(wl, 0.5)
    cluster.cluster_net(net, ClusterConfig(fc_bits=2))
    x = torch.rand(8, 1, 4, 4)
    y = torch.randint(0, 3, (8,))
    # reference: the gradient w.r.t. the (dense) effective weights
    ws = {wl.name: wl.effective_weight().detach().clone().requires_grad_(True) for wl in net.weight_layers()}
    h = torch.relu(torch.nn.functional.linear(x.flatten(1), ws["1"], net.layer("1").bias))
    out = torch.nn.functional.linear(h, ws["3"], net.layer("3").bias)
    torch.nn.functional.cross_entropy(out, y).backward()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    for wl in net.weight_layers():
        g = ws[wl.name].grad
        keep = wl.mask.bool()
        expect = torch.zeros_like(wl.centroids)
        expect.index_add_(0, wl.assign[keep], g[keep])
        assert wl.centroids.grad is not None
        assert torch.allclose(wl.centroids.grad, expect, atol=1e-6)
        assert wl.weight.grad is None or float(wl.weight.grad.abs().sum()) == 0.0


def test_cluster_keeps_pruned_weights_zero_and_limits_codebook():
    net = _net()
    wl = net.weight_layers()[0]
    prune_to_sparsity(wl, 0.6)
    k = cluster.cluster_layer(wl, 3, ClusterConfig())
    assert k <= 8 and len(wl.centroids) == k
    w = wl.effective_weight().detach()
    assert bool((w[wl.mask == 0] == 0).all())
    assert len(torch.unique(w[wl.mask == 1])) <= 8


def test_dqc_codebook_with_and_without_zero():
    for zero in (True, False):
        net = _net()
        wl = net.weight_layers()[0]
        cfg = ClusterConfig(fc_bits=3, mode="dqc", dqc_zero=zero)
        cluster.cluster_layer(wl, 3, cfg)
        assert len(wl.centroids) == 8
        with torch.no_grad():
            wl.weight.mul_(1.5)  # training moved the float weights: the codebook must follow
        before = wl.centroids.detach().clone()
        cluster.dqc_update(net, cfg)
        after = wl.centroids.detach()
        assert (float(after[0]) == 0.0) == zero
        assert not torch.allclose(before, after)
        # the forward pass uses codebook values only
        vals = set(wl.effective_weight().detach().flatten().tolist())
        assert vals <= set(after.tolist()) | {0.0}
        cluster.finalize(net)
        assert wl.mode == "shared"


def test_bit_widths_out_of_range():
    for bad in (0, 9, 16):
        with pytest.raises(ConfigError, match="out of range"):
            ClusterConfig(fc_bits=bad).validate()
        with pytest.raises(ConfigError, match="conv_bits"):
            ClusterConfig(conv_bits=bad).validate()


def test_clustering_an_empty_layer_is_refused():
    net = _net()
    wl = net.weight_layers()[1]
    wl.mask.zero_()
    with pytest.raises(ModelError, match="100 %"):
        cluster.cluster_layer(wl, 2, ClusterConfig())


def test_dqc_weighting_keeps_an_entry_near_zero_without_a_zero_entry():
    """Pure magnitude weighting gives small weights no pull: without a zero entry the codebook then has
    no value near zero and every small weight moves by the gap (ResNet-20 collapses to chance). The
    default blend keeps small weights close."""
    rng = np.random.default_rng(0)
    vals = rng.laplace(0, 0.05, 20000)  # conv weights are roughly Laplacian
    small = np.abs(vals) < np.quantile(np.abs(vals), 0.3)
    err = {}
    for how in DQC_WEIGHTS:
        sw = cluster.dqc_sample_weight(vals, how)
        cent, a = cluster.kmeans_1d(vals, 16, sample_weight=sw)
        err[how] = float(np.abs(vals - cent[a])[small].mean())
    assert err["blend"] < 0.5 * err["magnitude"]
    assert err["uniform"] <= err["blend"]
    with pytest.raises(ConfigError, match="dqc_weight"):
        ClusterConfig(dqc_weight="abs").validate()
