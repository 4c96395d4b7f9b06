"""C runtime vs simulator, exact equality, on hypothesis-generated integer models.

One sanitized host runner (compiled once per session) loads each generated blob at run
time; both the fast kernels and their reference twins (``--ref``) must reproduce the
simulator's int8 outputs exactly, including the extreme inputs that saturate. Random
graphs (:func:`mcu_dc.core.random_models.random_graph`, drawing every registered op)
and the committed format-version-1 models (bench/results/*.mcudc) are checked the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from runtime_modelgen import (
    WeightSpec,
    add_op,
    avgpool_op,
    conv_layer,
    depthwise_layer,
    fc_layer,
    lenet_like,
    mnist_like,
    model_inputs,
    plans,
    random_model,
    residual_net,
    shapes,
    weight_specs,
    wire,
    with_encoding,
)

from mcu_dc.core.blob import encode_blob
from mcu_dc.core.ir import Encoding, InputKind, IntegerModel, MaxPool2D
from mcu_dc.core.model_file import CompressedModel, load
from mcu_dc.core.ops import REGISTRY
from mcu_dc.core.random_models import random_graph
from mcu_dc.core.simulator import device_input, simulate
from mcu_dc.deploy.hostbuild import run_blob
from mcu_dc.errors import ConfigError

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
N_EXAMPLES = int(os.environ.get("MCU_DC_HYPO_EXAMPLES", "60"))  # raise it for a longer search
N_GRAPHS = int(os.environ.get("MCU_DC_HYPO_GRAPHS", "200"))
_FIXTURES_OK = [HealthCheck.function_scoped_fixture]  # tmp_path is overwritten per example
HYPO = settings(max_examples=N_EXAMPLES, deadline=None, suppress_health_check=_FIXTURES_OK)


def _inputs(model: IntegerModel, n: int, seed: int) -> np.ndarray:
    return model_inputs(model, n, seed)


def _check(
    runner: Path,
    tmp: Path,
    model: IntegerModel,
    n: int = 12,
    seed: int = 0,
    lut_bits: int = 6,
    max_code_len: int = 12,
    x: np.ndarray | None = None,
) -> np.ndarray:
    """Encode ``model``, run it in the C runtime (fast and reference kernels); both equal the simulator. A
    draw whose stream has more symbols than codes of ``max_code_len`` bits can hold is refused by the
    encoder (a clear ConfigError) and skipped."""
    try:
        cm = CompressedModel(model, lut_bits=lut_bits, max_code_len=max_code_len)
    except ConfigError as exc:
        assume("cannot be coded with codes of at most" not in str(exc))
        raise
    path = tmp / "m.bin"
    path.write_bytes(cm.blob)
    x = _inputs(model, n, seed) if x is None else x
    want = simulate(model, x)
    assert np.array_equal(simulate(cm.model, x), want)  # the blob round trip changes nothing
    dev = device_input(model, x)  # raw bytes; for an INT8-input model the int8 values as bytes
    got = run_blob(runner, path, dev, model.output_len)
    assert got.dtype == np.int8 and got.shape == want.shape
    assert np.array_equal(got, want)
    got_ref = run_blob(runner, path, dev, model.output_len, ref=True)
    assert np.array_equal(got_ref, want)
    return want


@HYPO
@given(
    seed=st.integers(0, 2**32 - 1),
    spec=weight_specs(),
    shape=shapes(),
    plan=plans(),
    lut_bits=st.sampled_from([0, 1, 4, 6, 8, 12]),
    max_code_len=st.sampled_from([9, 12, 15]),
)
def test_random_models_match_simulator(runner, tmp_path, seed, spec, shape, plan, lut_bits, max_code_len):
    model = random_model(seed, spec, shape, plan)
    _check(runner, tmp_path, model, seed=seed, lut_bits=lut_bits, max_code_len=max_code_len)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), spec=weight_specs(), shape=shapes(), plan=plans())
def test_dense_and_huffman_encodings_agree(runner, tmp_path, seed, spec, shape, plan):
    model = random_model(seed, spec, shape, plan)
    a = _check(runner, tmp_path, with_encoding(model, Encoding.HUFFMAN_SPARSE), seed=seed)
    b = _check(runner, tmp_path, with_encoding(model, Encoding.DENSE_INT8), seed=seed)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("k", [1, 2, 255, 256])
@pytest.mark.parametrize("index_bits", [1, 2, 8])
def test_codebook_sizes_and_index_widths(runner, tmp_path, k, index_bits):
    rng = np.random.default_rng(k * 10 + index_bits)
    spec = WeightSpec(density=0.05, k=k, index_bits=index_bits, empty_rows=0.2, empty_cols=0.3)
    fc1 = fc_layer(rng, (3, 7, 5), 13, spec, -128, "fc1")
    fc2 = fc_layer(rng, fc1.out_shape, 9, spec, fc1.out_zp, "fc2")
    model = IntegerModel([fc1, fc2], (3, 7, 5), 1 / 255, 1.0, fc2.out_zp)
    _check(runner, tmp_path, model, n=20)


def test_gaps_longer_than_index_range_use_fillers(runner, tmp_path):
    rng = np.random.default_rng(7)
    fc = fc_layer(rng, (1, 1, 300), 4, WeightSpec(density=1.0, k=4, index_bits=2), -128)
    fc.assign[:, 1:-1] = -1  # first and last column kept: gaps of 298 with R = 3
    fc.assign[2, :] = -1  # an empty row in the middle
    model = IntegerModel([fc], (1, 1, 300), 1 / 255, 1.0, fc.out_zp)
    cm = CompressedModel(model)
    layout = cm.meta["blob_layout"]["layers"][0]
    assert layout["fillers"] > 100
    _check(runner, tmp_path, model)


def test_fully_pruned_layer_outputs_bias_only(runner, tmp_path):
    rng = np.random.default_rng(3)
    fc = fc_layer(rng, (1, 4, 4), 6, WeightSpec(density=0.0, k=3), -128)
    model = IntegerModel([fc], (1, 4, 4), 1 / 255, 1.0, fc.out_zp)
    out = _check(runner, tmp_path, model)
    assert (out == out[0]).all()  # no weights: every input gives the same output


def test_single_symbol_streams(runner, tmp_path):
    rng = np.random.default_rng(5)
    fc = fc_layer(rng, (1, 1, 16), 8, WeightSpec(density=1.0, k=1), -128)  # r all 0, s all 0
    model = IntegerModel([fc], (1, 1, 16), 1 / 255, 1.0, fc.out_zp)
    _check(runner, tmp_path, model)


def test_saturating_extremes(runner, tmp_path):
    rng = np.random.default_rng(11)
    fc = fc_layer(rng, (1, 1, 64), 10, WeightSpec(density=1.0, k=2, scale=1000.0), -128)
    fc.codebook[:] = [127, -128]
    model = IntegerModel([fc], (1, 1, 64), 1 / 255, 1.0, fc.out_zp)
    out = _check(runner, tmp_path, model)
    assert set(np.unique(out[:2])) <= {fc.act_min, fc.act_max}  # all-0 / all-255 inputs saturate


def test_conv_pool_chain_and_optimised_build(runner, runner_o2, tmp_path):
    model = lenet_like(np.random.default_rng(2))
    want = _check(runner, tmp_path, model, n=50)
    got = run_blob(runner_o2, tmp_path / "m.bin", _inputs(model, 50, 0), model.output_len)
    assert np.array_equal(got, want)


def test_one_by_one_shapes(runner, tmp_path):
    rng = np.random.default_rng(9)
    spec = WeightSpec(density=1.0, k=3)
    from runtime_modelgen import conv_layer

    c = conv_layer(rng, (1, 1, 1), 1, (1, 1), (1, 1), (0, 0), spec, -128)
    p = MaxPool2D("p", c.out_shape, (1, 1), (1, 1), c.out_zp)
    f = fc_layer(rng, p.out_shape, 1, spec, c.out_zp)
    model = IntegerModel([c, p, f], (1, 1, 1), 1 / 255, 1.0, f.out_zp)
    _check(runner, tmp_path, model)


# ----------------------------------------------------------------------------- graphs


@settings(max_examples=N_GRAPHS, deadline=None, suppress_health_check=_FIXTURES_OK)
@given(
    seed=st.integers(0, 2**32 - 1),
    lut_bits=st.sampled_from([0, 1, 4, 6, 8, 12]),
    max_code_len=st.sampled_from([9, 12, 15]),
)
def test_random_graphs_match_simulator(runner, tmp_path, seed, lut_bits, max_code_len):
    """Residual adds, depthwise, strides, asymmetric padding, pools, fused pools, int8 and uint8 inputs."""
    model = random_graph(seed)
    _check(runner, tmp_path, model, n=6, seed=seed, lut_bits=lut_bits, max_code_len=max_code_len)


@settings(max_examples=25, deadline=None, suppress_health_check=_FIXTURES_OK)
@given(seed=st.integers(0, 2**32 - 1))
def test_graph_encodings_agree(runner, tmp_path, seed):
    model = random_graph(seed, encoding=Encoding.HUFFMAN_SPARSE)
    a = _check(runner, tmp_path, model, n=4, seed=seed)
    b = _check(runner, tmp_path, with_encoding(model, Encoding.DENSE_INT8), n=4, seed=seed)
    assert np.array_equal(a, b)


def test_random_graphs_cover_every_registered_op():
    seen: set = set()
    kinds: set = set()
    for seed in range(200):
        model = random_graph(seed)
        seen |= {op.op for op in model.layers}
        kinds.add(model.input_kind)
    assert seen == set(REGISTRY)
    assert kinds == {InputKind.UINT8, InputKind.INT8}


@pytest.mark.parametrize("kind", [InputKind.UINT8, InputKind.INT8])
@pytest.mark.parametrize("encoding", [Encoding.HUFFMAN_SPARSE, Encoding.DENSE_INT8])
def test_residual_net_every_op(runner, runner_o2, tmp_path, kind, encoding):
    model = with_encoding(residual_net(np.random.default_rng(12), input_kind=kind), encoding)
    want = _check(runner, tmp_path, model, n=40)
    x = _inputs(model, 40, 0)
    assert np.array_equal(
        run_blob(runner_o2, tmp_path / "m.bin", device_input(model, x), model.output_len), want
    )


@pytest.mark.parametrize("mult", [1, 2, 3])
@pytest.mark.parametrize("stride", [(1, 1), (2, 3)])
def test_depthwise_multipliers_padding_and_fused_pool(runner, tmp_path, mult, stride):
    rng = np.random.default_rng(mult * 7 + stride[0])
    for pool in (None, (2, 2, 2, 1)):
        for enc in (Encoding.HUFFMAN_SPARSE, Encoding.DENSE_INT8):
            spec = WeightSpec(density=0.6, k=5, index_bits=3, encoding=enc)
            dw = depthwise_layer(rng, (3, 9, 7), mult, (3, 2), stride, (2, 0), spec, -128, padding_end=(0, 1),
                                 pool=pool)  # fmt: skip
            fc = fc_layer(rng, dw.out_shape, 5, spec, dw.out_zp)
            model = IntegerModel([dw, fc], (3, 9, 7), 1 / 255, 1.0, fc.out_zp)
            _check(runner, tmp_path, model, n=10)


@pytest.mark.parametrize("pool", [(2, 2, 2, 2), (3, 1, 1, 2), (1, 1, 1, 1)])
def test_conv_fused_pool_equals_conv_then_maxpool(runner, tmp_path, pool):
    """The fused pool (int32 accumulators pooled, then requantized) equals pooling the requantized outputs."""
    rng = np.random.default_rng(sum(pool))
    spec = WeightSpec(density=0.5, k=8, index_bits=4, scale=30.0)  # saturating: ties at act bounds
    c = conv_layer(rng, (2, 10, 9), 3, (3, 3), (1, 1), (1, 1), spec, -128)
    c.padding_end = (2, 0)
    p = MaxPool2D("p", c.out_shape, pool[:2], pool[2:], c.out_zp)
    unfused = IntegerModel([c, p], (2, 10, 9), 1 / 255, 1.0, c.out_zp)
    want = _check(runner, tmp_path, unfused, n=20)
    from mcu_dc.core.passes import fuse_conv_pool

    fused = fuse_conv_pool(unfused)
    assert len(fused.layers) == 1 and fused.layers[0].pool == pool
    assert np.array_equal(_check(runner, tmp_path, fused, n=20), want)
    if pool != (1, 1, 1, 1):
        assert fused.arena_bytes() < unfused.arena_bytes()  # the full conv output is never stored


def test_avgpool_global_and_padded(runner, tmp_path):
    rng = np.random.default_rng(21)
    spec = WeightSpec(density=0.7, k=16)
    c = conv_layer(rng, (1, 7, 5), 3, (3, 3), (1, 1), (1, 1), spec, -128)
    wire(c, (0,), 1)
    a1 = wire(avgpool_op(rng, c.out_shape, (3, 2), (2, 3), (1, 0), c.out_zp, padding_end=(2, 1)), (1,), 2)
    a2 = wire(avgpool_op(rng, a1.out_shape, a1.out_shape[1:], (1, 1), (0, 0), a1.out_zp), (2,), 3)  # global
    model = IntegerModel([c, a1, a2], (1, 7, 5), 1 / 255, 1.0, a2.out_zp, input_tensor=0, output_tensor=3)
    assert model.output_shape == (3, 1, 1)
    _check(runner, tmp_path, model, n=30)


def test_add_of_two_branches_with_different_scales(runner, tmp_path):
    """y = conv_a(x) + conv_b(x): two zero points, two multipliers, one shift; also x + x."""
    rng = np.random.default_rng(5)
    spec = WeightSpec(density=0.8, k=32)
    ca = wire(conv_layer(rng, (2, 6, 6), 3, (3, 3), (1, 1), (1, 1), spec, 7, "a"), (0,), 1)
    cb = wire(conv_layer(rng, (2, 6, 6), 3, (1, 1), (1, 1), (0, 0), spec, 7, "b"), (0,), 2)
    add = wire(add_op(rng, (3, 6, 6), ca.out_zp, cb.out_zp, scales=(1.7, 0.05)), (1, 2), 3)
    twice = wire(add_op(rng, (3, 6, 6), add.out_zp, add.out_zp, "twice", scales=(0.5, 0.5)), (3, 3), 4)
    model = IntegerModel([ca, cb, add, twice], (2, 6, 6), 0.1, 1.0, twice.out_zp, input_kind=InputKind.INT8,
                         input_zp=7, input_tensor=0, output_tensor=4)  # fmt: skip
    _check(runner, tmp_path, model, n=30)


def test_int8_input_extremes(runner, tmp_path):
    rng = np.random.default_rng(6)
    fc = fc_layer(rng, (1, 1, 12), 4, WeightSpec(density=1.0, k=3), -3)
    model = IntegerModel([fc], (1, 1, 12), 0.5, 1.0, fc.out_zp, input_kind=InputKind.INT8, input_zp=-3)
    x = np.stack([np.full(12, -128, np.int8), np.full(12, 127, np.int8), np.arange(-6, 6, dtype=np.int8)])
    _check(runner, tmp_path, model, x=x)
    floats = np.linspace(-100.0, 100.0, 36).reshape(3, 12)  # float features: quantized by the model
    _check(runner, tmp_path, model, x=floats)


# ----------------------------------------------------------------------------- committed models


def _committed_models() -> list[Path]:
    return sorted(RESULTS.glob("*.mcudc"))


@pytest.mark.parametrize("path", _committed_models(), ids=lambda p: p.name)
def test_committed_models_bit_exact(runner, tmp_path, path):
    """Every committed model (version 1 files, their version 2 re-encodings, the MLPerf Tiny and
    ResNet-8 benchmark models) validates and runs bit-exactly, and the same model written anew as
    version 2 gives the same outputs. MNIST models get 300 MNIST-like images; the others random inputs
    of their own kind (12 for those of a million MACs or more: the runner is sanitized)."""
    cm = load(path)
    m = cm.model
    if tuple(m.input_shape) == (1, 28, 28):
        x = np.concatenate([mnist_like(298, 0), _inputs(m, 0, 0)])
    else:
        x = _inputs(m, 298 if m.macs() < 1_000_000 else 10, 0)
    want = simulate(cm.model, x)
    stored = tmp_path / "stored.bin"
    stored.write_bytes(cm.blob)
    for ref in (False, True):
        got = run_blob(runner, stored, x, cm.model.output_len, ref=ref)
        assert np.array_equal(got, want), (path.name, ref)
    v2 = tmp_path / "v2.bin"
    v2.write_bytes(encode_blob(cm.model))
    for ref in (False, True):
        assert np.array_equal(run_blob(runner, v2, x, cm.model.output_len, ref=ref), want), (path.name, ref)


def _v1_fixtures() -> list[Path]:
    return [p for p in _committed_models() if p.read_bytes()[4:6] == b"\x01\x00"]


def test_v1_fixtures_exist():
    assert len(_v1_fixtures()) >= 2
