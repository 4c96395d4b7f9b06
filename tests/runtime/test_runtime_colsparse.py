"""COLUMN_SPARSE, the FC speed encoding (mcu_dc/core/colsparse.py, docs/format.md).

The stream round-trips for any assignment (hypothesis); its fast C kernel (zero inputs
skip their columns) and the reference reader equal the simulator bit for bit on the host
with ASan + UBSan, and on the Cortex-M4 and Cortex-M0 under QEMU; malformed streams are
refused by both readers, naming the byte.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runtime_modelgen import assert_bit_exact_on_board, c_status, fix_crc, on_qemu, op_off, patch

from mcu_dc.core import colsparse
from mcu_dc.core import layout as L
from mcu_dc.core.blob import decode_blob, encode_blob
from mcu_dc.core.ir import FC, InputKind, IntegerModel, Requant
from mcu_dc.core.ops import spec_of
from mcu_dc.core.qmath import Encoding
from mcu_dc.core.random_models import random_graph
from mcu_dc.core.simulator import simulate
from mcu_dc.deploy.cheaders import Status
from mcu_dc.deploy.hostbuild import run_blob
from mcu_dc.errors import ConfigError, FormatError


def _assign(rng: np.random.Generator, rows: int, fan_in: int, k: int, density: float) -> np.ndarray:
    a = rng.integers(0, k, size=(rows, fan_in)).astype(np.int16)
    a[rng.random((rows, fan_in)) >= density] = -1
    return a


@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(1, 700),
    fan_in=st.integers(1, 40),
    k=st.integers(1, 16),
    density=st.sampled_from([0.0, 0.002, 0.03, 0.3, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_stream_round_trips(rows, fan_in, k, density, seed):
    a = _assign(np.random.default_rng(seed), rows, fan_in, k, density)
    sec, stats = colsparse.pack_section(a, k)
    assert len(sec) % 4 == 0 and stats.kept == int((a >= 0).sum())
    assert struct.unpack_from("<I", sec)[0] == stats.stream_bytes
    blob = bytes(4) + sec  # the section may not start at offset 0
    back = colsparse.decode_columns(blob, 4, len(blob), rows, fan_in, k, stats.kept, "t")
    assert np.array_equal(back, a)


def test_long_gaps_and_long_columns():
    """Gaps over 240 rows take several skips; a column of more than 255 bytes takes a multi-byte count."""
    a = np.full((1000, 3), -1, dtype=np.int16)
    a[999, 0] = 5  # one weight after 999 pruned rows
    a[:, 1] = 3  # a full column: 1000 entries, count 255 + 255 + 255 + 235
    a[[0, 16, 17, 500], 2] = [0, 1, 2, 15]  # gap of exactly 15 and 16
    _, stats = colsparse.encode_columns(a, 16)
    assert stats.skips >= 4 and stats.count_bytes == 1 + 4 + 1
    blob = bytes(4) + colsparse.pack_section(a, 16)[0]
    assert np.array_equal(colsparse.decode_columns(blob, 4, len(blob), 1000, 3, 16, stats.kept, "t"), a)


def test_codebooks_over_16_and_non_fc_ops_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"1\.\.16"):
        colsparse.encode_columns(_assign(rng, 4, 4, 17, 0.5), 17)
    for seed in range(10):  # a fixed COLUMN_SPARSE falls back to Huffman where an op cannot use it
        m = random_graph(seed, encoding=Encoding.COLUMN_SPARSE)
        for op in m.layers:
            if getattr(op, "encoding", Encoding.NONE) == Encoding.COLUMN_SPARSE:
                assert isinstance(op, FC) and len(op.codebook) <= 16
    conv = next(op for s in range(50) for op in random_graph(s).layers if type(op).__name__ == "Conv2D")
    conv.encoding = Encoding.COLUMN_SPARSE
    with pytest.raises(ConfigError, match="FC encoding"):
        spec_of(conv).check(conv, "conv")


def _fc_model(seed: int, rows: int, fan_in: int, k: int, density: float) -> IntegerModel:
    rng = np.random.default_rng(seed)
    fc = FC(
        "fc", (fan_in, 1, 1), rows, rng.integers(-128, 128, size=k).astype(np.int8),
        _assign(rng, rows, fan_in, k, density), rng.integers(-9000, 9000, size=rows).astype(np.int32),
        Requant(int(rng.integers(1 << 20, 1 << 30)), 36), in_zp=-128, out_zp=int(rng.integers(-20, 20)),
        encoding=Encoding.COLUMN_SPARSE, index_bits=0,
    )  # fmt: skip
    return IntegerModel([fc], (fan_in, 1, 1), 1 / 255, 0.05, fc.out_zp, name=f"cs{seed}")


def _inputs(model: IntegerModel, n: int, zero_frac: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, model.input_len), dtype=np.uint8)
    x[rng.random(x.shape) < zero_frac] = 0  # byte 0 is the int8 zero point -128: a skipped column
    return x


@pytest.mark.parametrize("seed", range(6))
def test_fast_and_reference_kernels_equal_the_simulator(runner, tmp_path, seed):
    rows, fan_in = [(300, 784), (1, 50), (257, 9), (64, 300), (10, 100), (700, 20)][seed]
    k, density = [(16, 0.07), (1, 0.5), (7, 1.0), (16, 0.1), (3, 0.9), (12, 0.01)][seed]
    model = _fc_model(seed, rows, fan_in, k, density)
    path = tmp_path / "m.bin"
    path.write_bytes(encode_blob(model))
    x = _inputs(model, 12, [0.8, 0.0, 0.5, 0.3, 1.0, 0.6][seed], seed)
    want = simulate(model, x)
    for ref in (False, True):
        got = run_blob(runner, path, x, model.output_len, ref=ref)
        assert np.array_equal(got.reshape(want.shape), want), ref


def test_random_graphs_with_column_sparse_fc_match(runner, tmp_path):
    """Graphs over every op where each FC is COLUMN_SPARSE (k <= 16) and the rest Huffman or dense."""
    n_cs = 0
    for seed in range(600):
        if n_cs == 8:
            break
        model = random_graph(10_000 + seed, max_ops=6, input_kind=InputKind.UINT8)
        if not any(getattr(op, "encoding", 0) == Encoding.COLUMN_SPARSE for op in model.layers):
            continue
        n_cs += 1
        path = tmp_path / f"g{seed}.bin"
        path.write_bytes(encode_blob(model))
        x = _inputs(model, 6, 0.4, seed)
        want = simulate(model, x)
        for ref in (False, True):
            assert np.array_equal(
                run_blob(runner, path, x, model.output_len, ref=ref).reshape(want.shape), want
            )
    assert n_cs == 8


def _corrupt(blob: bytes, pos: int, value: int) -> bytes:
    b = bytearray(blob)
    b[pos] = value
    return fix_crc(b)


def _stream_start(blob: bytes, i: int = 0) -> int:
    return struct.unpack_from("<I", blob, op_off(blob, i, "weights_off"))[0] + 4


@pytest.fixture(scope="module")
def small() -> tuple[IntegerModel, bytes]:
    model = _fc_model(1, 20, 4, 3, 0.5)
    return model, encode_blob(model)


def test_malformed_streams_are_refused_by_both_readers(runner, tmp_path, small):
    model, blob = small
    s = _stream_start(blob)
    count = blob[s]
    assert count > 0
    first = blob[s + 1]
    cases = {
        "row past the layer": _corrupt(blob, s + 1, (15 << 4) | (first & 15)),
        "codebook index past k": _corrupt(blob, s + 1, (first & 0xF0) | 9),
        "a skip ends the column": _corrupt(blob, s + count, 0x00),
        "count past the stream": _corrupt(blob, s, 250),
    }
    for what, bad in cases.items():
        if what == "row past the layer" and (first >> 4) == 15:
            continue
        assert c_status(runner, tmp_path, bad, model) == Status.ERR_CORRUPT_STREAM, what
        with pytest.raises(FormatError, match="byte offset"):
            decode_blob(bad)
    kept = int((model.layers[0].assign >= 0).sum())
    n_entries = patch(blob, L.OP, op_off(blob, 0, "n_entries"), "n_entries", kept + 1)
    assert c_status(runner, tmp_path, n_entries, model) == Status.ERR_CORRUPT_STREAM
    with pytest.raises(FormatError, match="kept weights"):
        decode_blob(n_entries)
    index_bits = patch(blob, L.OP, op_off(blob, 0, "index_bits"), "index_bits", 3)
    assert c_status(runner, tmp_path, index_bits, model) == Status.ERR_PARAM
    length = patch(blob, L.OP, op_off(blob, 0, "codebook_len"), "codebook_len", 17)
    assert c_status(runner, tmp_path, length, model) == Status.ERR_PARAM


def test_scratch_is_one_int32_per_row():
    model = _fc_model(0, 37, 5, 4, 0.5)
    assert spec_of(model.layers[0]).scratch_bytes(model.layers[0]) == 4 * 37
    assert decode_blob(encode_blob(model)).plan.arena_bytes >= 4 * 37


@on_qemu
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-microbit"])
def test_column_sparse_bit_exact_on_board(board: str, tmp_path: Path) -> None:
    model = _fc_model(7, 120, 196, 16, 0.1)
    assert_bit_exact_on_board(model, board, tmp_path, _inputs(model, 60, 0.6, 7))


def test_the_format_pages_examples():
    """docs/format.md, "Column-sparse section": the worked example's matrix and the skip example."""
    a = np.array([[0, -1, -1, 1], [-1, -1, -1, 0]], dtype=np.int16)
    sec, stats = colsparse.pack_section(a, 2)
    assert sec == bytes.fromhex("070000000110000002111000") and stats.kept == 3
    col = np.full((40, 1), -1, dtype=np.int16)
    col[35, 0] = 2
    assert colsparse.encode_columns(col, 3)[0] == bytes.fromhex("020162")
