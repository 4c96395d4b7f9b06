"""The simulator against an independent, loop-by-loop Python reference of docs/format.md."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_modelgen import WeightSpec, plans, random_model, shapes, weight_specs

from mcu_dc.core.ir import FC, IntegerModel, MaxPool2D, Requant, dense_weights
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.simulator import arena_bytes, check_arena, simulate
from mcu_dc.errors import FitError


def _requant_py(acc: int, layer) -> int:
    m, s = layer.requant.multiplier, layer.requant.shift
    y = (acc * m + (1 << (s - 1))) >> s  # Python ints: exact, arithmetic shift
    return min(max(y + layer.out_zp, layer.act_min), layer.act_max)


def _reference(model: IntegerModel, x: np.ndarray) -> list[int]:
    c, h, w = model.input_shape
    t = [[[int(x[(ci * h + yy) * w + xx]) - 128 for xx in range(w)] for yy in range(h)] for ci in range(c)]
    for layer in model.layers:
        c, h, w = layer.in_shape
        oc, oh, ow = layer.out_shape
        if isinstance(layer, MaxPool2D):
            kh, kw = layer.kernel
            sh, sw = layer.stride
            t = [[[max(t[ci][oy * sh + ky][ox * sw + kx] for ky in range(kh) for kx in range(kw))
                   for ox in range(ow)] for oy in range(oh)] for ci in range(oc)]
            continue
        wts = dense_weights(layer).astype(int)
        if isinstance(layer, FC):
            flat = [t[ci][yy][xx] for ci in range(c) for yy in range(h) for xx in range(w)]
            zp = layer.in_zp
            accs = [int(layer.bias[o]) + sum(int(wts[o, j]) * (flat[j] - zp) for j in range(len(flat)))
                    for o in range(oc)]
            t = [[[_requant_py(a, layer)]] for a in accs]
            continue
        kh, kw = layer.kernel
        sh, sw = layer.stride
        ph, pw = layer.padding
        out = []
        for o in range(oc):
            ch = []
            for oy in range(oh):
                row = []
                for ox in range(ow):
                    acc = int(layer.bias[o])
                    for ci in range(c):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy, ix = oy * sh + ky - ph, ox * sw + kx - pw
                                if 0 <= iy < h and 0 <= ix < w:
                                    wv = int(wts[o, (ci * kh + ky) * kw + kx])
                                    acc += wv * (t[ci][iy][ix] - layer.in_zp)
                    row.append(_requant_py(acc, layer))
                ch.append(row)
            out.append(ch)
        t = out
    return [v for ch in t for row in ch for v in row]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), spec=weight_specs(), shape=shapes(), plan=plans())
def test_simulator_matches_loop_reference(seed, spec, shape, plan):
    model = random_model(seed, spec, shape, plan)
    x = np.random.default_rng(seed).integers(0, 256, (3, model.input_len), dtype=np.uint8)
    x[0] = 0
    x[1] = 255
    got = simulate(model, x)
    assert got.dtype == np.int8 and got.shape == (3, model.output_len)
    for i in range(3):
        assert got[i].tolist() == _reference(model, x[i])


def _one_weight_fc(w: int, bias: int, req: Requant) -> IntegerModel:
    fc = FC("fc", (1, 1, 1), 1, np.array([w], np.int8), np.array([[0]], np.int16), np.array([bias], np.int32),
            req, in_zp=-128, out_zp=0)
    return IntegerModel([fc], (1, 1, 1), 1.0, 1.0, 0)


def test_rounding_is_half_up_and_saturates():
    half = Requant(2**30, 31)  # real scale 0.5
    # acc = bias + w * (x - in_zp) with x = b - 128 and in_zp = -128, so x - in_zp = b
    assert simulate(_one_weight_fc(1, 0, half), np.array([5], np.uint8))[0, 0] == 3  # 2.5 -> 3
    assert simulate(_one_weight_fc(-1, 0, half), np.array([5], np.uint8))[0, 0] == -2  # -2.5 -> -2
    assert simulate(_one_weight_fc(1, 0, half), np.array([4], np.uint8))[0, 0] == 2
    big = Requant(2**30, 1)  # real scale 2**29
    assert simulate(_one_weight_fc(1, 0, big), np.array([255], np.uint8))[0, 0] == 127
    assert simulate(_one_weight_fc(-1, 0, big), np.array([255], np.uint8))[0, 0] == -128


def test_accepts_compressed_model_and_shapes():
    plan = [("conv", 3, 3, 3, 1, 1, 1, 1), ("fc", 4)]
    model = random_model(1, WeightSpec(density=0.5, k=7), (2, 5, 5), plan)
    cm = CompressedModel(model)
    x = np.random.default_rng(0).integers(0, 256, (4, 2, 5, 5), dtype=np.uint8)
    a = simulate(cm, x)
    assert np.array_equal(a, simulate(model, x.reshape(4, -1)))
    assert np.array_equal(a[:1], simulate(model, x[0].reshape(-1)))
    assert arena_bytes(cm) == model.arena_bytes() == cm.model.arena_bytes()


def test_simulator_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, mcu_dc.core.simulator; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_arena_budget_is_checked():
    plan = [("conv", 4, 3, 3, 1, 1, 1, 1), ("fc", 4)]
    model = random_model(2, WeightSpec(density=0.5, k=7), (1, 6, 6), plan)
    need = model.arena_bytes()
    assert need == 36 + 144 + 144  # buf0: input 36 B, buf1: 4x6x6 = 144 B, scratch: 6*6*4 B
    assert check_arena(model, need) == need
    with pytest.raises(FitError, match="over by 4 bytes"):
        check_arena(model, need - 4)
