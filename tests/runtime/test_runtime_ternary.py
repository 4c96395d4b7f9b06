"""TERNARY and BINARY, the bit-plane encodings (mcu_dc/core/bitplanes.py, docs/format.md).

The planes round-trip for any assignment (hypothesis); the fast C kernels (sums of the inputs
each plane selects, one multiply per row) and the reference reader equal the simulator bit
for bit on the host with ASan + UBSan, for FC, CONV2D and DEPTHWISE_CONV2D (hypothesis-drawn
models and random graphs), and on the Cortex-M4 and Cortex-M0 under QEMU; malformed
sections are refused by both readers with a status code / a message naming the byte; format
version 1 refuses both encodings.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_modelgen import assert_bit_exact_on_board, c_status, fix_crc, on_qemu, op_off, patch

from mcu_dc.core import bitplanes
from mcu_dc.core import layout as L
from mcu_dc.core.blob import decode_blob, encode_blob
from mcu_dc.core.ir import FC, Conv2D, DepthwiseConv2D, InputKind, IntegerModel, Requant
from mcu_dc.core.ops import spec_of
from mcu_dc.core.qmath import Encoding
from mcu_dc.core.random_models import random_graph, random_model
from mcu_dc.core.simulator import simulate
from mcu_dc.deploy.cheaders import Status
from mcu_dc.deploy.hostbuild import run_blob
from mcu_dc.errors import ConfigError, FormatError

BITPLANE = (Encoding.TERNARY, Encoding.BINARY)


def _assign(
    rng: np.random.Generator, rows: int, fan_in: int, k: int, density: float, enc: Encoding
) -> np.ndarray:
    a = rng.integers(0, k, size=(rows, fan_in)).astype(np.int16)
    if enc == Encoding.TERNARY:
        a[rng.random((rows, fan_in)) >= density] = -1
    return a


@settings(max_examples=150, deadline=None)
@given(
    rows=st.integers(1, 70),
    fan_in=st.integers(1, 130),
    k=st.integers(1, 2),
    density=st.sampled_from([0.0, 0.05, 0.5, 1.0]),
    enc=st.sampled_from(BITPLANE),
    seed=st.integers(0, 2**32 - 1),
)
def test_planes_round_trip(rows, fan_in, k, density, enc, seed):
    a = _assign(np.random.default_rng(seed), rows, fan_in, k, density, enc)
    sec = bitplanes.pack_section(a, k, enc)
    assert len(sec) == bitplanes.section_bytes(enc, k, rows, fan_in) and len(sec) % 4 == 0
    blob = bytes(4) + sec  # the section may not start at offset 0
    n = int((a >= 0).sum()) if enc == Encoding.TERNARY else rows * fan_in
    back = bitplanes.decode_section(blob, 4, len(blob), rows, fan_in, k, n, enc, "t")
    assert np.array_equal(back, a)


def test_the_format_pages_example():
    """docs/format.md, "Bit-plane section": the worked example's matrix stored TERNARY and BINARY."""
    a = np.array([[0, -1, -1, 1], [-1, -1, -1, 0]], dtype=np.int16)
    assert bitplanes.pack_section(a, 2, Encoding.TERNARY) == bytes.fromhex("01000000080000000800000000000000")
    b = np.array([[0, 1, 1, 1], [1, 0, 0, 0]], dtype=np.int16)
    assert bitplanes.pack_section(b, 2, Encoding.BINARY) == bytes.fromhex("0e00000001000000")
    w = np.zeros((1, 40), dtype=np.int16)
    w[0, 33] = 1  # weight 33: bit 1 of the row's second word
    assert bitplanes.pack_section(w, 2, Encoding.BINARY) == bytes.fromhex("0000000002000000")


def _weights(rng, rows, fan_in, enc, k, density):
    return dict(
        codebook=rng.integers(-128, 128, size=k).astype(np.int8),
        assign=_assign(rng, rows, fan_in, k, density, enc),
        bias=rng.integers(-9000, 9000, size=rows).astype(np.int32),
        requant=Requant(int(rng.integers(1 << 20, 1 << 30)), int(rng.integers(34, 40))),
        out_zp=int(rng.integers(-20, 20)), encoding=enc, index_bits=0,
    )  # fmt: skip


def _op_model(kind: str, seed: int, enc: Encoding, k: int, density: float) -> IntegerModel:
    """One weight op of ``kind`` (fc, conv, dw) with random geometry and bit-plane weights."""
    rng = np.random.default_rng(seed)
    if kind == "fc":
        fan_in, rows = int(rng.integers(1, 300)), int(rng.integers(1, 70))
        shape = (fan_in, 1, 1) if rng.random() < 0.5 else (max(1, fan_in // 9), 3, 3)
        op: object = FC(
            "fc", shape, rows, in_zp=-128, **_weights(rng, rows, int(np.prod(shape)), enc, k, density)
        )
    else:
        c, h, w = int(rng.integers(1, 5)), int(rng.integers(3, 10)), int(rng.integers(3, 10))
        shape = (c, h, w)
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        geo = dict(
            kernel=(kh, kw), stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
            padding=(int(rng.integers(0, kh)), int(rng.integers(0, kw))),
            padding_end=(int(rng.integers(0, kh)), int(rng.integers(0, kw))),
        )  # fmt: skip
        if kind == "conv":
            oc = int(rng.integers(1, 7))
            op = Conv2D(
                "conv", shape, oc, in_zp=-128, **geo, **_weights(rng, oc, c * kh * kw, enc, k, density)
            )
            _, ch, cw = op.conv_shape
            if ch >= 2 and cw >= 2 and rng.random() < 0.4:
                op.pool = (2, 2, 2, 2)
        else:
            mult = int(rng.integers(1, 3))
            op = DepthwiseConv2D(
                "dw", shape, mult, in_zp=-128, **geo, **_weights(rng, c * mult, kh * kw, enc, k, density)
            )
    model = IntegerModel([op], shape, 1 / 255, 0.05, op.out_zp, name=f"{kind}{seed}")  # type: ignore[list-item]
    model.validate(model.name)
    return model


def _inputs(model: IntegerModel, n: int, zero_frac: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, model.input_len), dtype=np.uint8)
    x[rng.random(x.shape) < zero_frac] = 0
    return x


def _check(runner: Path, tmp_path: Path, model: IntegerModel, x: np.ndarray) -> None:
    path = tmp_path / f"{model.name}.bin"
    path.write_bytes(encode_blob(model))
    want = simulate(model, x)
    for ref in (False, True):
        got = run_blob(runner, path, x, model.output_len, ref=ref)
        assert np.array_equal(got.reshape(want.shape), want), (model.name, ref)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["fc", "conv", "dw"]),
    enc=st.sampled_from(BITPLANE),
    k=st.integers(1, 2),
    density=st.sampled_from([0.0, 0.3, 0.7, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fast_and_reference_kernels_equal_the_simulator(runner, tmp_path, kind, enc, k, density, seed):
    model = _op_model(kind, seed, enc, k, density)
    _check(runner, tmp_path, model, _inputs(model, 5, 0.3, seed))


def test_extreme_values_wrap_like_the_simulator(runner, tmp_path):
    """Codebook -128 / 127 over a long full row: the sums and the one multiply per row stay exact."""
    for enc in BITPLANE:
        model = _op_model("fc", 3, enc, 2, 1.0)
        fc = model.layers[0]
        fc.codebook = np.array([-128, 127], dtype=np.int8)
        x = np.concatenate(
            [np.full((1, model.input_len), 255, np.uint8), np.zeros((1, model.input_len), np.uint8)]
        )
        _check(runner, tmp_path, model, x)


def test_random_graphs_with_bitplane_ops_match(runner, tmp_path):
    """Graphs over every op where the weight ops with k <= 2 draw TERNARY or BINARY."""
    found = 0
    for seed in range(400):
        if found == 10:
            break
        model = random_graph(20_000 + seed, max_ops=6, input_kind=InputKind.UINT8)
        if not any(getattr(op, "encoding", 0) in BITPLANE for op in model.layers):
            continue
        found += 1
        _check(runner, tmp_path, model, _inputs(model, 4, 0.3, seed))
    assert found == 10


def test_binary_refuses_pruned_weights_and_large_codebooks():
    model = _op_model("fc", 1, Encoding.TERNARY, 2, 0.5)
    fc = model.layers[0]
    fc.encoding = Encoding.BINARY
    with pytest.raises(ConfigError, match=r"fc.*BINARY has no zero weight"):
        model.validate("m")
    fc.encoding = Encoding.TERNARY
    fc.codebook = np.array([1, 2, 3], dtype=np.int8)
    with pytest.raises(ConfigError, match=r"TERNARY needs a codebook of 1\.\.2"):
        model.validate("m")


def test_conv_scratch_is_two_maps():
    model = _op_model("conv", 5, Encoding.TERNARY, 2, 0.5)
    op = model.layers[0]
    _, ch, cw = op.conv_shape
    assert spec_of(op).scratch_bytes(op) == 8 * ch * cw


# ----------------------------------------------------------------------------- malformed sections


def _set_word(blob: bytes, pos: int, value: int) -> bytes:
    b = bytearray(blob)
    struct.pack_into("<I", b, pos, value)
    return fix_crc(b)


def _weights_at(blob: bytes) -> int:
    return struct.unpack_from("<I", blob, op_off(blob, 0, "weights_off"))[0]


def test_malformed_sections_are_refused_by_both_readers(runner, tmp_path):
    rows, fan_in = 3, 40  # two words per row, 24 padding bits in the second
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, size=(rows, fan_in)).astype(np.int16)
    a[rng.random((rows, fan_in)) < 0.5] = -1
    a[0, 0], a[0, 1] = 0, -1
    fc = FC("fc", (fan_in, 1, 1), rows, np.array([-7, 9], np.int8), a, np.zeros(rows, np.int32),
            Requant(1 << 30, 36), in_zp=-128, out_zp=0, encoding=Encoding.TERNARY, index_bits=0)  # fmt: skip
    model = IntegerModel([fc], (fan_in, 1, 1), 1 / 255, 0.05, 0, name="bad")
    blob = encode_blob(model)
    w = _weights_at(blob)
    plane1 = w + 4 * rows * 2
    word0 = struct.unpack_from("<I", blob, w)[0]
    word1 = struct.unpack_from("<I", blob, w + 4)[0]
    p1word0 = struct.unpack_from("<I", blob, plane1)[0]
    cases = {
        "a bit past fan_in": (_set_word(blob, w + 4, word1 | (1 << 9)), "past fan_in"),
        "a weight in both planes": (_set_word(blob, plane1, p1word0 | 1), "both planes"),
        "a kept count other than n_entries": (_set_word(blob, w, word0 | 2), "n_entries"),
    }
    for what, (bad, msg) in cases.items():
        assert c_status(runner, tmp_path, bad, model) == Status.ERR_CORRUPT_STREAM, what
        with pytest.raises(FormatError, match=msg):
            decode_blob(bad)
    kept = int((a >= 0).sum())
    n_entries = patch(blob, L.OP, op_off(blob, 0, "n_entries"), "n_entries", kept + 1)
    assert c_status(runner, tmp_path, n_entries, model) == Status.ERR_CORRUPT_STREAM
    for field, value in (("codebook_len", 3), ("index_bits", 2)):
        bad = patch(blob, L.OP, op_off(blob, 0, field), field, value)
        assert c_status(runner, tmp_path, bad, model) == Status.ERR_PARAM, field
        with pytest.raises(FormatError):
            decode_blob(bad)
    # planes that run past the blob: a section start moved to the last word
    end = len(blob) - 4
    bad = patch(blob, L.OP, op_off(blob, 0, "weights_off"), "weights_off", end)
    assert c_status(runner, tmp_path, bad, model) == Status.ERR_OFFSET
    with pytest.raises(FormatError, match="outside the blob"):
        decode_blob(bad)
    # BINARY: n_entries must be rows * fan_in, and k = 1 has no set bit
    fc.encoding, fc.assign = Encoding.BINARY, np.where(a >= 0, a, 0).astype(np.int16)
    bblob = encode_blob(model)
    bad = patch(bblob, L.OP, op_off(bblob, 0, "n_entries"), "n_entries", rows * fan_in - 1)
    assert c_status(runner, tmp_path, bad, model) == Status.ERR_PARAM
    with pytest.raises(FormatError, match="rows\\*fan_in"):
        decode_blob(bad)
    bad = patch(bblob, L.OP, op_off(bblob, 0, "codebook_len"), "codebook_len", 1)
    assert c_status(runner, tmp_path, bad, model) == Status.ERR_CORRUPT_STREAM
    with pytest.raises(FormatError, match="one codebook entry"):
        decode_blob(bad)


def test_format_version_1_refuses_bitplane_encodings(runner, tmp_path):
    from mcu_dc.fuzz.corpus import v1_blob

    for s in range(200):
        model = random_model(s, conv=False, max_dim=6, encoding=Encoding.HUFFMAN_SPARSE)
        v1 = v1_blob(model)
        if v1 is not None:
            break
    assert v1 is not None
    run_blob(runner, _write(tmp_path, v1), np.zeros((1, model.input_len), np.uint8), model.output_len)
    enc_at = L.HEADER_V1.size + L.LAYER_V1.offsets["encoding"]
    for enc in BITPLANE:
        b = bytearray(v1)
        b[enc_at] = int(enc)
        bad = fix_crc(b)
        assert c_status(runner, tmp_path, bad, model) == Status.ERR_UNKNOWN_ENCODING
        with pytest.raises(FormatError, match="did not exist in format version 1"):
            decode_blob(bad)


def _write(tmp_path: Path, blob: bytes) -> Path:
    p = tmp_path / "ok.bin"
    p.write_bytes(blob)
    return p


# ----------------------------------------------------------------------------- on the boards


def _board_model() -> IntegerModel:
    """conv (TERNARY) -> depthwise (BINARY) -> FC (TERNARY) -> FC (BINARY)."""
    rng = np.random.default_rng(11)
    conv = Conv2D("conv", (1, 12, 12), 4, kernel=(3, 3), stride=(1, 1), padding=(1, 1), in_zp=-128,
                  **_weights(rng, 4, 9, Encoding.TERNARY, 2, 0.6))  # fmt: skip
    dw = DepthwiseConv2D("dw", conv.out_shape, 1, kernel=(3, 3), stride=(2, 2), padding=(0, 0),
                         in_zp=conv.out_zp, **_weights(rng, 4, 9, Encoding.BINARY, 2, 1.0))  # fmt: skip
    fc1 = FC("fc1", dw.out_shape, 40, in_zp=dw.out_zp, **_weights(rng, 40, int(np.prod(dw.out_shape)),
             Encoding.TERNARY, 2, 0.5))  # fmt: skip
    fc2 = FC("fc2", fc1.out_shape, 10, in_zp=fc1.out_zp, **_weights(rng, 10, 40, Encoding.BINARY, 2, 1.0))
    model = IntegerModel([conv, dw, fc1, fc2], (1, 12, 12), 1 / 255, 0.05, fc2.out_zp, name="tb")
    model.validate("tb")
    return model


@on_qemu
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-microbit"])
def test_bitplanes_bit_exact_on_board(board: str, tmp_path: Path) -> None:
    model = _board_model()
    assert_bit_exact_on_board(model, board, tmp_path, _inputs(model, 40, 0.4, 7))
