"""DENSE_INT8 FC through the Cortex-M4/M7 DSP path (smlad, two rows at a time, four inputs per
step; mcu_dc_fc.c): bit-exact with the simulator on the emulated M4, with odd row counts, fan-ins
that leave a tail of 1-3 inputs, zero points other than -128 and the int8 extremes in weights and
inputs; the same model on the M3 (no DSP: the plain loop) and on the host (ASan, plain loop and
reference) for comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from runtime_modelgen import assert_bit_exact_on_board, on_qemu

from mcu_dc.core.blob import encode_blob
from mcu_dc.core.ir import FC, IntegerModel, Requant
from mcu_dc.core.qmath import Encoding
from mcu_dc.core.simulator import simulate
from mcu_dc.deploy.hostbuild import run_blob


def _fc(rng: np.random.Generator, name: str, fan_in: int, rows: int, in_zp: int, out_zp: int) -> FC:
    codebook = np.array([-128, -77, -1, 1, 5, 63, 127], dtype=np.int8)
    a = rng.integers(0, len(codebook), size=(rows, fan_in)).astype(np.int16)
    a[rng.random((rows, fan_in)) < 0.2] = -1  # zeros in the dense matrix
    return FC(name, (fan_in, 1, 1), rows, codebook, a, rng.integers(-40_000, 40_000, rows).astype(np.int32),
              Requant(int(rng.integers(1 << 28, 1 << 30)), 40), in_zp=in_zp, out_zp=out_zp,
              encoding=Encoding.DENSE_INT8, index_bits=0)  # fmt: skip


def _model() -> IntegerModel:
    rng = np.random.default_rng(21)
    fc1 = _fc(rng, "fc1", 37, 9, -128, 13)  # tail of 1, odd rows
    fc2 = _fc(rng, "fc2", 9, 6, 13, -5)  # tail of 1, even rows, a zero point != -128
    fc3 = _fc(rng, "fc3", 6, 3, -5, 0)  # tail of 2
    fc4 = _fc(rng, "fc4", 3, 11, 0, 7)  # only a tail
    m = IntegerModel([fc1, fc2, fc3, fc4], (37, 1, 1), 1 / 255, 0.05, 7, name="dense_dsp")
    m.validate(m.name)
    return m


def _inputs(n: int) -> np.ndarray:
    x = np.random.default_rng(3).integers(0, 256, size=(n, 37), dtype=np.uint8)
    x[0], x[1] = 0, 255
    return x


def test_dense_host_kernels_equal_the_simulator(runner, tmp_path: Path) -> None:
    model, x = _model(), _inputs(40)
    path = tmp_path / "d.bin"
    path.write_bytes(encode_blob(model))
    want = simulate(model, x)
    for ref in (False, True):
        assert np.array_equal(run_blob(runner, path, x, model.output_len, ref=ref).reshape(want.shape), want)


@on_qemu
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-lm3s6965evb"])
def test_dense_bit_exact_on_board(board: str, tmp_path: Path) -> None:
    assert_bit_exact_on_board(_model(), board, tmp_path, _inputs(40))
