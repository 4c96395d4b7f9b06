"""C runtime vs simulator, exact equality, on hypothesis-generated integer models.

One sanitized host runner (compiled once per session) loads each generated blob at run
time; both the fast kernels and their reference twins (``--ref``) must reproduce the
simulator's int8 outputs exactly, including the extreme inputs that saturate.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_modelgen import (
    WeightSpec,
    fc_layer,
    lenet_like,
    plans,
    random_model,
    shapes,
    weight_specs,
    with_encoding,
)

from mcu_dc.core.ir import Encoding, IntegerModel, MaxPool2D
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.simulator import simulate
from mcu_dc.deploy.hostbuild import run_blob

N_EXAMPLES = int(os.environ.get("MCU_DC_HYPO_EXAMPLES", "60"))  # raise it for a longer search
_FIXTURES_OK = [HealthCheck.function_scoped_fixture]  # tmp_path is overwritten per example
HYPO = settings(max_examples=N_EXAMPLES, deadline=None, suppress_health_check=_FIXTURES_OK)


def _inputs(model: IntegerModel, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, model.input_len), dtype=np.uint8)
    extremes = np.stack([np.zeros(model.input_len, np.uint8), np.full(model.input_len, 255, np.uint8)])
    return np.concatenate([extremes, x])


def _check(runner: Path, tmp: Path, model: IntegerModel, n: int = 12, seed: int = 0, lut_bits: int = 6,
           max_code_len: int = 12) -> np.ndarray:
    cm = CompressedModel(model, lut_bits=lut_bits, max_code_len=max_code_len)
    path = tmp / "m.bin"
    path.write_bytes(cm.blob)
    x = _inputs(model, n, seed)
    want = simulate(model, x)
    assert np.array_equal(simulate(cm.model, x), want)  # the blob round trip changes nothing
    got = run_blob(runner, path, x, model.output_len)
    assert got.dtype == np.int8 and got.shape == want.shape
    assert np.array_equal(got, want)
    got_ref = run_blob(runner, path, x, model.output_len, ref=True)
    assert np.array_equal(got_ref, want)
    return want


@HYPO
@given(seed=st.integers(0, 2**32 - 1), spec=weight_specs(), shape=shapes(), plan=plans(),
       lut_bits=st.sampled_from([0, 1, 4, 6, 8, 12]), max_code_len=st.sampled_from([9, 12, 15]))
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
