"""The gather convolution (CONV2D with ``gather`` = 1; mcu_dc_gather.c, docs/format.md "Gather
convolution"): bit-exact with the simulator, on the host (ASan + UBSan, the plain loops; fast and
reference kernels) and on the emulated M4 (the DSP blocks of four: stride 1 and 2), M3 and M0 (the
plain loops), over every path of the kernel:

* strides 1, 2 and 3 (the plain block of four), rows of 14 positions (a DSP block of eight, one of
  four, two single positions), rows whose width leaves 1-3 positions to the single-position loop,
  widths under four;
* symmetric, asymmetric and no padding (an op without padding reads its input in place);
* a group longer than 256 taps (one value over a 600-wide fan-in: split 256 + 256 + 88) at the int8
  extremes, where a 16-bit group sum would overflow past 256 taps;
* a zero centroid (skipped), a fully pruned channel (bias only), a fused max pool;
* Huffman, joint (flash tables, and a compact section whose decode table the kernel builds in its
  scratch), dense, ternary and binary weights (the weight reader decodes them all);
* input zero points other than -128.

Malformed descriptors (a gather byte of 2, the gather kernel on a depthwise conv or an FC, an input
too large for 16-bit tap offsets) are refused by the C and Python readers.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from runtime_modelgen import assert_bit_exact_on_board, c_status, on_qemu, op_off, patch

from mcu_dc.core import layout as L
from mcu_dc.core.blob import decode_blob, encode_blob
from mcu_dc.core.ir import FC, Conv2D, DepthwiseConv2D, IntegerModel, Requant
from mcu_dc.core.ops.conv2d import gather_scratch_bytes
from mcu_dc.core.ops.weights import joint_table_bits
from mcu_dc.core.qmath import Encoding
from mcu_dc.core.simulator import simulate
from mcu_dc.deploy.cheaders import Status
from mcu_dc.deploy.hostbuild import run_blob
from mcu_dc.errors import ConfigError, FormatError


def _conv(
    rng: np.random.Generator,
    name: str,
    in_shape: tuple[int, int, int],
    oc: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    *,
    codebook: list[int],
    density: float,
    in_zp: int,
    out_zp: int,
    encoding: Encoding = Encoding.HUFFMAN_SPARSE,
    scale: float = 1e-3,
    pool: tuple[int, int, int, int] | None = None,
    index_bits: int = 5,
    pruned_row: bool = True,
) -> Conv2D:
    fan_in = in_shape[0] * kernel[0] * kernel[1]
    a = rng.integers(0, len(codebook), size=(oc, fan_in)).astype(np.int16)
    a[rng.random(a.shape) >= density] = -1
    if pruned_row and oc > 2:
        a[1] = -1  # a fully pruned channel: bias only
    mult = int(scale * 2**32)
    return Conv2D(
        name, in_shape, oc, kernel, stride, (pads[0], pads[1]), np.array(codebook, np.int8), a,
        rng.integers(-int(30 / scale), int(30 / scale), oc).astype(np.int32), Requant(mult, 32), in_zp,
        out_zp,
        encoding=encoding, index_bits=index_bits, padding_end=(pads[2], pads[3]), pool=pool, gather=1,
    )  # fmt: skip


def _model_a() -> IntegerModel:
    """One value over a 600-wide fan-in (groups of 256 + 256 + 88), stride 2 with asymmetric pads, a
    fused pool over a width-5 row (a block of four and one position)."""
    rng = np.random.default_rng(7)
    big = _conv(rng, "big", (24, 5, 8), 3, (5, 5), (1, 1), (2, 2, 2, 2), codebook=[3], density=1.0,
                in_zp=-128, out_zp=5, scale=2e-4)  # fmt: skip
    s2 = _conv(rng, "s2", big.out_shape, 9, (3, 3), (2, 2), (1, 0, 0, 2), codebook=[-128, -9, 0, 4, 77, 127],
               density=0.6, in_zp=5, out_zp=-3, encoding=Encoding.HUFFMAN_JOINT, index_bits=3)  # fmt: skip
    pooled = _conv(rng, "pooled", s2.out_shape, 10, (2, 2), (1, 1), (1, 1, 1, 1), codebook=[-50, -2, 1, 33],
                   density=0.7, in_zp=-3, out_zp=0, pool=(2, 2, 2, 2), scale=4e-3)  # fmt: skip
    s2.table_bits = joint_table_bits(
        s2.assign, len(s2.codebook), s2.index_bits
    )  # its decode table in scratch
    m = IntegerModel([big, s2, pooled], (24, 5, 8), 1 / 255, 0.05, 0, name="gather_a")
    m.validate(m.name)
    return m


def _model_b() -> IntegerModel:
    """Stride 3 along the rows (plain blocks of four), ternary, binary and dense weights, a 1x1 conv
    reading its input in place, widths 9 and 3."""
    rng = np.random.default_rng(8)
    s3 = _conv(rng, "s3", (2, 9, 25), 6, (3, 3), (1, 3), (1, 1, 1, 1), codebook=[-100, -1, 0, 2, 90],
               density=0.8, in_zp=-128, out_zp=-20, scale=1.5e-3)  # fmt: skip
    ter = _conv(rng, "ternary", s3.out_shape, 4, (3, 3), (1, 1), (1, 1, 1, 1), codebook=[-40, 25],
                density=0.5, in_zp=-20, out_zp=2, encoding=Encoding.TERNARY)  # fmt: skip
    one = _conv(rng, "one_by_one", ter.out_shape, 5, (1, 1), (1, 1), (0, 0, 0, 0), codebook=[-7, 0, 3, 11],
                density=0.9, in_zp=2, out_zp=-1, encoding=Encoding.DENSE_INT8, scale=1e-1)  # fmt: skip
    binary = _conv(rng, "binary", one.out_shape, 3, (3, 3), (3, 3), (0, 0, 0, 0), codebook=[-9, 14],
                   density=1.0, in_zp=-1, out_zp=0, encoding=Encoding.BINARY, pruned_row=False,
                   scale=6e-3)  # fmt: skip
    m = IntegerModel([s3, ter, one, binary], (2, 9, 25), 1 / 255, 0.05, 0, name="gather_b")
    m.validate(m.name)
    return m


def _model_c() -> IntegerModel:
    """Rows of 14 positions at strides 2 and 1: a DSP block of eight, one of four, two single positions."""
    rng = np.random.default_rng(9)
    s2 = _conv(rng, "wide_s2", (3, 7, 27), 5, (3, 3), (2, 2), (1, 1, 1, 1), codebook=[-77, -6, 3, 41, 120],
               density=0.7, in_zp=-128, out_zp=-10, scale=2e-3)  # fmt: skip
    s1 = _conv(rng, "wide_s1", s2.out_shape, 4, (3, 3), (1, 1), (1, 1, 1, 1), codebook=[-30, 8, 19],
               density=0.6, in_zp=-10, out_zp=3, scale=3e-3)  # fmt: skip
    m = IntegerModel([s2, s1], (3, 7, 27), 1 / 255, 0.05, 0, name="gather_c")
    m.validate(m.name)
    return m


MODELS = {"a": _model_a, "b": _model_b, "c": _model_c}


def _inputs(model: IntegerModel, n: int) -> np.ndarray:
    x = np.random.default_rng(3).integers(0, 256, size=(n, model.input_len), dtype=np.uint8)
    x[0], x[1] = 0, 255  # the int8 extremes everywhere: the 16-bit group sums at their limits
    return x


def _scatter(model: IntegerModel) -> IntegerModel:
    m = copy.deepcopy(model)
    for op in m.layers:
        op.gather = op.table_bits = 0
    m.plan = None
    return m


@pytest.mark.parametrize("which", sorted(MODELS))
def test_gather_host_kernels_equal_the_simulator(runner, tmp_path: Path, which: str) -> None:
    model = MODELS[which]()
    x = _inputs(model, 30)
    want = simulate(model, x)
    assert len(np.unique(want)) > 20  # the outputs are not saturated to a constant
    assert np.array_equal(simulate(_scatter(model), x), want)  # the IR flag changes no output
    path = tmp_path / "g.bin"
    path.write_bytes(encode_blob(model))
    for ref in (False, True):
        assert np.array_equal(run_blob(runner, path, x, model.output_len, ref=ref).reshape(want.shape), want)
    back = decode_blob(path.read_bytes())
    assert [op.gather for op in back.layers] == [1] * len(model.layers)


def test_group_of_more_than_256_taps_is_split(runner, tmp_path: Path) -> None:
    """The single-value layer has 600 taps per channel: an unsplit int16 sum would wrap at the int8
    extremes; the host runner computes it in 32 bits in both kernels, so compare with a scatter run."""
    model = _model_a()
    x = _inputs(model, 4)
    p1, p0 = tmp_path / "g.bin", tmp_path / "s.bin"
    p1.write_bytes(encode_blob(model))
    p0.write_bytes(encode_blob(_scatter(model)))
    a = run_blob(runner, p1, x, model.output_len)
    b = run_blob(runner, p0, x, model.output_len)
    assert np.array_equal(a, b)


def test_scratch_is_larger_only_by_the_gather_buffers() -> None:
    op = _model_a().layers[0]  # (24, 5, 8) padded to (24, 9, 12): 2,592 bytes of padded input
    acc = 4 * 5 * 8
    groups = 4 * (256 + 600 // 256 + 1)
    assert gather_scratch_bytes(op) == acc + groups + 4 * 600 + 512 + 2 * 1200 + 24 * 9 * 12
    no_pad = _model_b().layers[2]  # 1x1, reads its input in place
    assert gather_scratch_bytes(no_pad) == 4 * 9 * 9 + 4 * (4 + 0 + 1) + 4 * 4 + 512 + 2 * 8


@on_qemu
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-lm3s6965evb", "qemu-microbit"])
@pytest.mark.parametrize("which", sorted(MODELS))
def test_gather_bit_exact_on_board(board: str, which: str, tmp_path: Path) -> None:
    model = MODELS[which]()
    assert_bit_exact_on_board(model, board, tmp_path, _inputs(model, 12))


def test_malformed_gather_descriptors_are_refused(runner, tmp_path: Path) -> None:
    model = _model_b()
    blob = encode_blob(model)
    bad = patch(blob, L.OP, op_off(blob, 0, "gather"), "gather", 2)
    assert c_status(runner, tmp_path, bad, model) == Status.ERR_PARAM
    with pytest.raises(FormatError, match="gather"):
        decode_blob(bad)
    # the gather kernel is CONV2D's: not a depthwise conv's, not an FC's
    rng = np.random.default_rng(1)
    dw = DepthwiseConv2D("dw", (2, 5, 5), 1, (3, 3), (1, 1), (1, 1), np.array([1, -2], np.int8),
                         rng.integers(0, 2, (2, 9)).astype(np.int16), np.zeros(2, np.int32),
                         Requant(1 << 30, 36), in_zp=-128, out_zp=0)  # fmt: skip
    fc = FC("fc", (2, 5, 5), 3, np.array([1, -2], np.int8), rng.integers(0, 2, (3, 50)).astype(np.int16),
            np.zeros(3, np.int32), Requant(1 << 30, 36), in_zp=0, out_zp=0)  # fmt: skip
    other = IntegerModel([dw, fc], (2, 5, 5), 1 / 255, 0.05, 0, name="other")
    blob = encode_blob(other)
    for i in (0, 1):
        bad = patch(blob, L.OP, op_off(blob, i, "gather"), "gather", 1)
        assert c_status(runner, tmp_path, bad, other) in (Status.ERR_PARAM, Status.ERR_ARENA_PLAN)
        with pytest.raises(FormatError, match="only a CONV2D"):
            decode_blob(bad)


def test_input_too_large_for_16_bit_offsets(runner, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    conv = _conv(rng, "wide", (16, 66, 64), 1, (1, 1), (1, 1), (0, 0, 0, 0), codebook=[1, 2], density=0.5,
                 in_zp=-128, out_zp=0)  # fmt: skip
    with pytest.raises(ConfigError, match="16-bit offsets"):
        IntegerModel([conv], (16, 66, 64), 1 / 255, 0.05, 0, name="w").validate("w")
    conv.gather = 0
    model = IntegerModel([conv], (16, 66, 64), 1 / 255, 0.05, 0, name="w")
    blob = encode_blob(model)
    bad = patch(blob, L.OP, op_off(blob, 0, "gather"), "gather", 1)
    assert c_status(runner, tmp_path, bad, model) == Status.ERR_PARAM
    with pytest.raises(FormatError, match="16-bit offsets"):
        decode_blob(bad)


def test_worked_example_of_the_format_doc(runner, tmp_path: Path) -> None:
    """docs/format.md, "Gather convolution": the example's scratch size and accumulator formula."""
    a = -np.ones((1, 9), np.int16)
    a[0, 0] = a[0, 4] = 0  # (0, 0) and (1, 1) -> codebook[0] = 2
    a[0, 8] = 1  # (2, 2) -> codebook[1] = -1
    op = Conv2D("c", (1, 3, 4), 1, (3, 3), (1, 1), (1, 1), np.array([2, -1], np.int8), a,
                np.array([100], np.int32), Requant(1 << 30, 31), -128, 0, gather=1)  # fmt: skip
    assert gather_scratch_bytes(op) == 708
    doc = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text()
    assert "48 + 40 + 36 + 512 + 40 + 32 = 708 bytes" in doc
    model = IntegerModel([op], (1, 3, 4), 1 / 255, 0.05, 0, name="doc")
    x = _inputs(model, 8)
    xs = x.astype(np.int64) - 128  # the int8 input values
    padded = np.full((8, 5, 6), -128, np.int64)  # the zero point around the input
    padded[:, 1:4, 1:5] = xs.reshape(8, 3, 4)
    flat = padded.reshape(8, -1)
    acc = np.zeros((8, 3, 4), np.int64)
    for oy in range(3):
        for ox in range(4):
            b = 6 * oy + ox
            acc[:, oy, ox] = 100 + 128 * 3 + 2 * (flat[:, b] + flat[:, b + 7]) - flat[:, b + 14]
    want = np.clip((acc * (1 << 30) + (1 << 30)) >> 31, -128, 127).reshape(8, -1)
    assert np.array_equal(simulate(model, x).reshape(8, -1), want)
    path = tmp_path / "doc.bin"
    path.write_bytes(encode_blob(model))
    assert np.array_equal(run_blob(runner, path, x, model.output_len).reshape(8, -1), want)
