import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.compression import cluster
from mcu_dc.compression.capture import capture
from mcu_dc.compression.cluster import ClusterConfig
from mcu_dc.compression.prune import prune_to_sparsity
from mcu_dc.compression.quantize import (
    QuantConfig,
    best_index_bits,
    best_weight_scale,
    dequantize_outputs,
    to_integer_model,
)
from mcu_dc.compression.train import predict_logits
from mcu_dc.core import ir
from mcu_dc.core.blob import decode_blob, encode_blob, layer_byte_breakdown
from mcu_dc.core.simulator import simulate
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError


def _data(n=300, shape=(1, 10, 10), seed=0):
    rng = np.random.default_rng(seed)
    return Dataset(
        "toy", rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), np.zeros(n, np.int64), 1 / 255
    )


def _conv_net():
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 3 * 3, 20),
        nn.ReLU(),
        nn.Linear(20, 5),
    )
    net = capture(m, (1, 10, 10))
    for wl in net.weight_layers():
        prune_to_sparsity(wl, 0.5)
    cluster.cluster_net(net, ClusterConfig(conv_bits=6, fc_bits=5))
    return net


def test_integer_model_is_valid_and_matches_float():
    net = _conv_net()
    data = _data()
    im = to_integer_model(net, data, QuantConfig(), torch.device("cpu"), "toy")
    # the max pool is fused into the conv before it (mcu_dc.core.passes.fuse_conv_pool)
    assert [type(layer).__name__ for layer in im.layers] == ["Conv2D", "Conv2D", "FC", "FC"]
    assert im.layers[0].pool == (2, 2, 2, 2)
    first = im.layers[0]
    assert first.in_zp == -128 and im.input_scale == 1 / 255
    assert first.index_bits == 8 and im.layers[2].index_bits == 5
    assert im.layers[0].act_min == -128  # conv without ReLU
    relu_fc = im.layers[2]
    assert relu_fc.out_zp == -128 and relu_fc.act_min == relu_fc.out_zp
    for layer in im.layers:
        if isinstance(layer, (ir.Conv2D, ir.FC)):
            assert layer.codebook.dtype == np.int8 and 64 <= np.abs(layer.codebook.astype(int)).max() <= 127
            assert layer.assign.max() < len(layer.codebook)
            assert not (layer.codebook[layer.assign[layer.assign >= 0]] == 0).any()
    blob = encode_blob(im)
    back = decode_blob(blob)
    assert len(back.layers) == len(im.layers)
    y = simulate(im, data.images)
    deq = dequantize_outputs(im, y)
    ref = predict_logits(net, data, torch.device("cpu")).numpy()
    span = ref.max() - ref.min()
    assert np.abs(deq - ref).max() < 0.05 * span
    assert np.corrcoef(deq.ravel(), ref.ravel())[0, 1] > 0.995


def test_weight_scale_puts_a_small_codebook_on_the_int8_grid():
    """amax/127 rounds a 3-bit codebook's small entries by up to half a step; the chosen scale never
    rounds worse (weighted by use), keeps the largest entry in range, and here is exact."""
    c = np.array([-0.6, -0.15, -0.05, 0.05, 0.1, 0.2, 0.4, 0.55])
    counts = np.array([1, 50, 400, 400, 60, 20, 5, 1])

    def err(s: float) -> float:
        return float(np.sum(counts * (c - s * np.clip(np.round(c / s), -127, 127)) ** 2))

    s = best_weight_scale(c, counts, 0.6)
    assert err(s) <= err(0.6 / 127)
    assert 64 <= round(0.6 / s) <= 127
    assert err(s) < 1e-20  # 0.6 / 120 = 0.005 divides every entry
    rng = np.random.default_rng(1)
    for _ in range(20):
        c = rng.laplace(0, 0.1, 16)
        n = rng.integers(0, 100, 16)
        amax = float(np.abs(c[n > 0]).max())
        s = best_weight_scale(c, n, amax)
        assert amax / 127 - 1e-15 <= s <= amax / 64 + 1e-15
        assert float(np.sum(n * (c - s * np.round(c / s)) ** 2)) <= float(
            np.sum(n * (c - amax / 127 * np.round(c / (amax / 127))) ** 2)
        ) * (1 + 1e-12)


def test_byte_accounting_equals_serialized_size():
    net = _conv_net()
    im = to_integer_model(net, _data(), QuantConfig(auto_index_bits=True), torch.device("cpu"))
    parts = layer_byte_breakdown(im)
    assert sum(p["total"] for p in parts) == len(encode_blob(im))


def test_auto_index_bits_is_never_worse():
    rng = np.random.default_rng(0)
    assign = np.where(rng.random((30, 200)) < 0.1, rng.integers(0, 16, (30, 200)), -1)
    from mcu_dc.compression.quantize import stream_bits

    b = best_index_bits(assign, 16, 12)
    assert all(stream_bits(assign, b, 16, 12) <= stream_bits(assign, o, 16, 12) for o in range(1, 9))


def test_index_bits_out_of_range():
    with pytest.raises(ConfigError, match="out of range"):
        QuantConfig(fc_index_bits=9).validate()
    with pytest.raises(ConfigError, match="out of range"):
        QuantConfig(index_bits={"fc1": 0}).validate()
