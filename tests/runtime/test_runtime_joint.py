"""HUFFMAN_JOINT: the entries of HUFFMAN_SPARSE, each (run, symbol) pair one Huffman code
(docs/format.md, "Joint Huffman section").

The section round-trips through the blob for any assignment and run width (hypothesis); the
fast C kernels (FC window and bit-buffer kernels, the fused conv path, the depthwise reader)
and the reference reader equal the simulator bit for bit on the host with ASan + UBSan, on
single ops and random graphs, and on the Cortex-M4 and Cortex-M0 under QEMU; malformed
descriptors and streams are refused by both readers; the run width chosen is the smallest
coding, and on the committed CIFAR ResNets the pair code is smaller than two streams.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_modelgen import assert_bit_exact_on_board, c_status, fix_crc, on_qemu, op_off, patch

from mcu_dc.core import layout as L
from mcu_dc.core import objective
from mcu_dc.core.blob import decode_blob, encode_blob, encode_blob_with_layout
from mcu_dc.core.ir import FC, Conv2D, DepthwiseConv2D, InputKind, IntegerModel, Requant
from mcu_dc.core.model_file import load
from mcu_dc.core.ops.weights import best_joint_index_bits, joint_section_bytes, joint_table_bits
from mcu_dc.core.qmath import Encoding, joint_index_bits, joint_ok
from mcu_dc.core.random_models import random_graph
from mcu_dc.core.simulator import simulate
from mcu_dc.deploy.cheaders import Status
from mcu_dc.deploy.hostbuild import run_blob
from mcu_dc.errors import ConfigError, FormatError

JOINT = Encoding.HUFFMAN_JOINT
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def _weights(rng: np.random.Generator, rows: int, fan_in: int, k: int, density: float, b: int) -> dict:
    a = rng.integers(0, k, size=(rows, fan_in)).astype(np.int16)
    a[rng.random((rows, fan_in)) >= density] = -1
    return dict(
        codebook=rng.integers(-128, 128, size=k).astype(np.int8), assign=a,
        bias=rng.integers(-9000, 9000, size=rows).astype(np.int32),
        requant=Requant(int(rng.integers(1 << 20, 1 << 30)), int(rng.integers(34, 40))),
        out_zp=int(rng.integers(-20, 20)), encoding=JOINT, index_bits=joint_index_bits(k, b),
    )  # fmt: skip


def _op_model(kind: str, seed: int, k: int, density: float, b: int) -> IntegerModel:
    """One weight op of ``kind`` (fc, conv, dw) with random geometry and HUFFMAN_JOINT weights."""
    rng = np.random.default_rng(seed)
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(3, 10)), int(rng.integers(3, 10))
    shape = (c, h, w)
    if kind == "fc":
        fan_in, rows = c * h * w, int(rng.integers(1, 80))
        op = FC("fc", shape, rows, in_zp=-128, **_weights(rng, rows, fan_in, k, density, b))
    else:
        kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        geo = dict(
            kernel=(kh, kw), stride=(int(rng.integers(1, 3)), int(rng.integers(1, 3))),
            padding=(int(rng.integers(0, kh)), int(rng.integers(0, kw))),
        )  # fmt: skip
        if kind == "conv":
            oc = int(rng.integers(1, 7))
            op = Conv2D("conv", shape, oc, in_zp=-128, **geo, **_weights(rng, oc, c * kh * kw, k, density, b))
        else:
            m = int(rng.integers(1, 3))
            op = DepthwiseConv2D(
                "dw", shape, m, in_zp=-128, **geo, **_weights(rng, c * m, kh * kw, k, density, b)
            )
    model = IntegerModel([op], shape, 1 / 255, 0.05, op.out_zp, name=f"{kind}{seed}")  # type: ignore[list-item]
    model.validate(model.name)
    return model


def _inputs(model: IntegerModel, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, model.input_len), dtype=np.uint8)
    x[0], x[-1] = 0, 255  # the extremes
    return x


def _check(runner: Path, tmp_path: Path, model: IntegerModel, x: np.ndarray, lut_bits: int = 6) -> None:
    path = tmp_path / f"{model.name}.bin"
    path.write_bytes(encode_blob(model, lut_bits=lut_bits))
    want = simulate(model, x)
    for ref in (False, True):
        got = run_blob(runner, path, x, model.output_len, ref=ref)
        assert np.array_equal(got.reshape(want.shape), want), (model.name, ref)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["fc", "conv", "dw"]),
    k=st.sampled_from([1, 2, 3, 15, 16, 100, 255, 256]),
    density=st.sampled_from([0.0, 0.01, 0.2, 0.7, 1.0]),
    b=st.integers(1, 8),
    lut_bits=st.sampled_from([0, 4, 6, 12]),
    seed=st.integers(0, 2**32 - 1),
)
def test_section_round_trips(kind, k, density, b, lut_bits, seed):
    model = _op_model(kind, seed, k, density, b)
    back = decode_blob(encode_blob(model, lut_bits=lut_bits)).layers[0]
    op = model.layers[0]
    assert back.encoding == JOINT and back.index_bits == op.index_bits and joint_ok(k, back.index_bits)
    assert np.array_equal(back.assign, op.assign) and np.array_equal(back.codebook, op.codebook)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["fc", "conv", "dw"]),
    k=st.sampled_from([1, 2, 16, 31, 256]),
    density=st.sampled_from([0.0, 0.05, 0.4, 1.0]),
    b=st.integers(1, 8),
    lut_bits=st.sampled_from([0, 6, 10]),
    seed=st.integers(0, 2**32 - 1),
)
def test_fast_and_reference_kernels_equal_the_simulator(
    runner, tmp_path, kind, k, density, b, lut_bits, seed
):
    model = _op_model(kind, seed, k, density, b)
    _check(runner, tmp_path, model, _inputs(model, 5, seed), lut_bits)


def test_long_rows_fillers_and_row_crossings(runner, tmp_path):
    """A wide FC with long gaps (fillers at b = 1..3), empty rows and full rows, both FC kernels' chunking."""
    for seed, (rows, fan_in, density, b) in enumerate(
        [(300, 784, 0.03, 1), (40, 2000, 0.005, 3), (7, 100, 1.0, 2)]
    ):
        model = _op_model("fc", seed, 16, density, b)
        fc = model.layers[0]
        rng = np.random.default_rng(seed)
        fc.in_shape = (fan_in, 1, 1)
        a = rng.integers(0, 16, size=(rows, fan_in)).astype(np.int16)
        a[rng.random((rows, fan_in)) >= density] = -1
        a[rows // 2] = -1  # an empty row
        fc.assign, fc.bias, fc.out_features = a, fc.bias[:1].repeat(rows), rows
        m = IntegerModel([fc], (fan_in, 1, 1), 1 / 255, 0.05, fc.out_zp, name=f"wide{seed}")
        m.validate(m.name)
        _check(runner, tmp_path, m, _inputs(m, 4, seed))


def test_random_graphs_with_joint_ops_match(runner, tmp_path):
    """Graphs over every op (ADD, pools, depthwise, conv, FC) with every weight op HUFFMAN_JOINT."""
    found = 0
    for seed in range(60):
        model = random_graph(30_000 + seed, max_ops=6, input_kind=InputKind.UINT8, encoding=JOINT)
        if not any(getattr(op, "encoding", 0) == JOINT for op in model.layers):
            continue
        found += 1
        _check(runner, tmp_path, model, _inputs(model, 3, seed))
        if found == 12:
            break
    assert found == 12


def _refused(
    runner: Path, tmp_path: Path, bad: bytes, model: IntegerModel, statuses: tuple[int, ...],
    *, refs: tuple[bool, ...] = (False,), match: str | None = None,
) -> None:
    """The C reader (fast, and reference where asked) stops ``bad`` with one of ``statuses``, and
    the Python reader raises FormatError (matching ``match``)."""
    for ref in refs:
        st_ = c_status(runner, tmp_path, bad, model, ref)
        assert st_ in statuses, (ref, st_)
    with pytest.raises(FormatError, match=match):
        decode_blob(bad)


def test_malformed_descriptors_and_streams_are_refused(runner, tmp_path):
    model = _op_model("fc", 3, 16, 0.3, 4)
    blob = encode_blob(model)
    n = model.layers[0]
    r_entries = decode_blob(blob).layers[0]
    assert r_entries.index_bits == 4
    # (k + 1) << b over 4096: 17 << 8
    bad = patch(blob, L.OP, op_off(blob, 0, "index_bits"), "index_bits", 8)
    _refused(runner, tmp_path, bad, model, (Status.ERR_PARAM,), match="HUFFMAN_JOINT")
    # a second stream where there is one
    bad = patch(blob, L.OP, op_off(blob, 0, "index_off"), "index_off", 4)
    _refused(runner, tmp_path, bad, model, (Status.ERR_PARAM,), match="one stream")
    # more entries than the stream holds: the decoders run past its bits
    entries = int(np.frombuffer(blob, "<u4", 1, op_off(blob, 0, "n_entries"))[0])
    bad = patch(blob, L.OP, op_off(blob, 0, "n_entries"), "n_entries", entries + 3)
    _refused(runner, tmp_path, bad, model, (Status.ERR_CORRUPT_STREAM,), refs=(False, True))
    # the IR refuses an alphabet over 12 bits before anything is written
    op = copy.copy(n)
    op.index_bits = 8
    with pytest.raises(ConfigError, match="4096"):
        IntegerModel([op], model.input_shape, 1 / 255, 0.05, op.out_zp, name="x").validate("x")


def test_format_version_1_has_no_joint_encoding():
    from mcu_dc.fuzz.corpus import v1_blob

    assert v1_blob(_op_model("fc", 1, 16, 0.3, 4)) is None


def test_the_best_run_width_is_the_smallest_coding():
    rng = np.random.default_rng(5)
    for density in (0.02, 0.3, 0.9):
        a = rng.integers(0, 16, size=(50, 200)).astype(np.int16)
        a[rng.random(a.shape) >= density] = -1
        sizes = {b: joint_section_bytes(a, 16, b, 12, 6) for b in range(1, 9) if joint_ok(16, b)}
        b = best_joint_index_bits(a, 16)
        assert sizes[b] == min(sizes.values())
        fc = FC("fc", (200, 1, 1), 50, np.arange(16, dtype=np.int8), a, np.zeros(50, np.int32),
                Requant(1 << 30, 36), in_zp=-128, out_zp=0, encoding=JOINT, index_bits=b)  # fmt: skip
        m = IntegerModel([fc], (200, 1, 1), 1 / 255, 0.05, 0, name="j")
        _, lay = encode_blob_with_layout(m)
        assert lay.layers[0].weights == sizes[b]  # the estimate is the packed section, byte for byte
    dense = np.zeros((30, 300), np.int16)  # nothing pruned: runs are all 0, one bit of run is enough
    assert best_joint_index_bits(dense, 16) == 1


def test_pair_code_is_smaller_than_two_streams_on_the_cifar_resnets():
    """Dense-ish conv layers: a separate run stream costs at least one bit per entry even when nearly
    every run is 0; the pair code does not. The size objective takes it where it is smaller."""
    for name in ("resnet20_cifar10.mcudc", "resnet8_cifar10.mcudc"):
        cm = load(RESULTS / name)
        sparse = {
            i: Encoding.HUFFMAN_SPARSE for i, op in enumerate(cm.model.layers) if hasattr(op, "codebook")
        }
        two = len(encode_blob(objective.with_encodings(cm.model, sparse)))
        m, picks = objective.choose(cm.model, "size")
        assert any(o.encoding == JOINT for o in picks.values())
        assert len(encode_blob(m)) < 0.975 * two, name


def _board_model() -> IntegerModel:
    """conv (JOINT, b 1) -> depthwise (JOINT) -> FC (JOINT, b 5) -> FC (JOINT, b 2)."""
    rng = np.random.default_rng(12)
    conv = Conv2D("conv", (1, 12, 12), 4, kernel=(3, 3), stride=(1, 1), padding=(1, 1), in_zp=-128,
                  **_weights(rng, 4, 9, 16, 0.8, 1))  # fmt: skip
    dw = DepthwiseConv2D("dw", conv.out_shape, 1, kernel=(3, 3), stride=(2, 2), padding=(0, 0),
                         in_zp=conv.out_zp, **_weights(rng, 4, 9, 5, 0.6, 3))  # fmt: skip
    fc1 = FC("fc1", dw.out_shape, 40, in_zp=dw.out_zp,
             **_weights(rng, 40, int(np.prod(dw.out_shape)), 16, 0.2, 5))  # fmt: skip
    fc2 = FC("fc2", fc1.out_shape, 10, in_zp=fc1.out_zp, **_weights(rng, 10, 40, 31, 0.5, 2))
    model = IntegerModel([conv, dw, fc1, fc2], (1, 12, 12), 1 / 255, 0.05, fc2.out_zp, name="jb")
    model.validate("jb")
    return model


@on_qemu
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-microbit"])
def test_joint_bit_exact_on_board(board: str, tmp_path: Path) -> None:
    model = _board_model()
    assert_bit_exact_on_board(model, board, tmp_path, _inputs(model, 40, 7))


def test_report_shows_the_pair_code_bits():
    from mcu_dc.compression.report import build_report, to_markdown

    cm = load(RESULTS / "resnet8_cifar10_joint.mcudc")
    rep = build_report(cm)
    joint = [r for r in rep["layers"] if r.get("encoding") == "HUFFMAN_JOINT"]
    assert joint
    assert all(r["index_bits_huffman"] == 0.0 and 2.0 < r["weight_bits_huffman"] < 8.0 for r in joint)
    md = to_markdown(rep)
    assert "| HUFFMAN_JOINT |" in md and "(pair)" in md and "in pair" in md


# ---------------------------------------------------------------- compact sections, decode table in scratch


def _compact(model: IntegerModel, wide: bool) -> IntegerModel:
    """``model`` with its FC's joint section compact: a decode table just wide enough, or 12 bits."""
    m = copy.copy(model)
    fc = copy.copy(model.layers[0])
    fc.table_bits = 12 if wide else joint_table_bits(fc.assign, len(fc.codebook), fc.index_bits)
    m.layers, m.plan = [fc], None
    m.validate(m.name)
    return m


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    k=st.sampled_from([1, 2, 16, 31, 256]),
    density=st.sampled_from([0.0, 0.05, 0.4, 1.0]),
    b=st.integers(1, 8),
    wide=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_compact_sections_equal_the_simulator(runner, tmp_path, k, density, b, wide, seed):
    """Round trip (codes, table_bits, scratch) and both FC kernels, fast and reference, bit-exact."""
    model = _compact(_op_model("fc", seed, k, density, b), wide)
    fc = model.layers[0]
    blob = encode_blob(model)
    back = decode_blob(blob)
    assert back.layers[0].table_bits == fc.table_bits and np.array_equal(back.layers[0].assign, fc.assign)
    assert back.plan.arena_bytes >= (2 << fc.table_bits)  # the decode table has its scratch
    sec = int(np.frombuffer(blob, "<u4", 1, op_off(blob, 0, "weights_off"))[0])
    assert blob[sec + L.HUFF.offsets["lut_bits"]] == 0x80 and blob[sec] <= fc.table_bits
    _check(runner, tmp_path, model, _inputs(model, 5, seed))


def test_compact_long_rows_fillers_and_crossings(runner, tmp_path):
    rng = np.random.default_rng(4)
    for rows, fan_in, density, b in [(300, 784, 0.03, 7), (40, 2000, 0.005, 3), (7, 100, 1.0, 1)]:
        a = rng.integers(0, 16, size=(rows, fan_in)).astype(np.int16)
        a[rng.random((rows, fan_in)) >= density] = -1
        a[rows // 2] = -1
        fc = FC("fc", (fan_in, 1, 1), rows, rng.integers(-128, 128, 16).astype(np.int8), a,
                rng.integers(-9000, 9000, rows).astype(np.int32), Requant(1 << 29, 37), in_zp=-128, out_zp=3,
                encoding=JOINT, index_bits=b, table_bits=joint_table_bits(a, 16, b))  # fmt: skip
        m = IntegerModel([fc], (fan_in, 1, 1), 1 / 255, 0.05, 3, name=f"cw{rows}")
        m.validate(m.name)
        _check(runner, tmp_path, m, _inputs(m, 4, rows))


def _section(blob: bytes) -> int:
    return int(np.frombuffer(blob, "<u4", 1, op_off(blob, 0, "weights_off"))[0])


def test_malformed_compact_sections_are_refused(runner, tmp_path):
    model = _compact(_op_model("fc", 8, 16, 0.3, 4), wide=False)
    fc = model.layers[0]
    blob = encode_blob(model)
    sec = _section(blob)
    n_sym = int(np.frombuffer(blob, "<u2", 1, sec + L.HUFF.offsets["n_symbols"])[0])
    bitmap = sec + L.HUFF.size + 2 * blob[sec]
    alphabet = 17 << 4
    cases = {
        # a compact section without a decode table, and a table narrower than the longest code
        "no table": patch(blob, L.OP, op_off(blob, 0, "table_bits"), "table_bits", 0),
        "narrow table": patch(blob, L.OP, op_off(blob, 0, "table_bits"), "table_bits", blob[sec] - 1),
    }
    b = bytearray(blob)  # one more symbol marked in the bitmap than the counts hold
    free = next(s for s in range(alphabet) if not (b[bitmap + s // 8] >> (s % 8)) & 1)
    b[bitmap + free // 8] |= 1 << (free % 8)
    cases["bitmap"] = fix_crc(b)
    b = bytearray(blob)  # a code length changed: the lengths no longer make the counts
    lens = bitmap + (alphabet + 7) // 8
    b[lens] = (b[lens] & 0xF0) | ((b[lens] & 15) % blob[sec] + 1 if (b[lens] & 15) != 1 else 2)
    cases["lengths"] = fix_crc(b)
    assert n_sym > 2
    for bad in cases.values():
        _refused(
            runner, tmp_path, bad, model, (Status.ERR_HUFFMAN_TABLE, Status.ERR_PARAM), refs=(False, True)
        )
    # a classic section with a decode table claimed; a decode table on a conv
    classic = copy.copy(model)
    op = copy.copy(fc)
    op.table_bits = 0
    classic.layers, classic.plan = [op], None
    cb = encode_blob(classic)
    bad = patch(cb, L.OP, op_off(cb, 0, "table_bits"), "table_bits", 12)
    statuses = (Status.ERR_HUFFMAN_TABLE, Status.ERR_ARENA_PLAN)
    _refused(runner, tmp_path, bad, classic, statuses, match="table_bits")
    conv = _op_model("conv", 2, 16, 0.5, 3)
    cv = encode_blob(conv)
    bad = patch(cv, L.OP, op_off(cv, 0, "table_bits"), "table_bits", 8)
    _refused(runner, tmp_path, bad, conv, (Status.ERR_PARAM,), match="table_bits")
    op = copy.copy(fc)
    op.table_bits = 13
    with pytest.raises(ConfigError, match="table_bits"):
        IntegerModel([op], model.input_shape, 1 / 255, 0.05, op.out_zp, name="x").validate("x")


def test_size_objective_takes_compact_joint_on_lenet300():
    """The committed LeNet-300-100: compact pair codes are the smallest coding of every layer."""
    cm = load(RESULTS / "lenet300_size.mcudc")
    m, _ = objective.choose(cm.model, "size")
    fcs = [op for op in m.layers if hasattr(op, "codebook")]
    assert all(op.encoding == JOINT and 1 <= op.table_bits <= 12 for op in fcs)
    flash = objective.choose(cm.model, "size", ram_tables=False)[0]  # symbol lists, flash tables
    assert all(getattr(op, "table_bits", 0) == 0 for op in flash.layers)
    assert len(encode_blob(m)) < 0.96 * len(encode_blob(flash))


def _compact_board_model() -> IntegerModel:
    m = copy.copy(_board_model())
    m.layers = list(m.layers)
    for i in (2, 3):
        fc = copy.copy(m.layers[i])
        fc.table_bits = joint_table_bits(fc.assign, len(fc.codebook), fc.index_bits) + (i == 3)
        m.layers[i] = fc
    m.plan = None
    m.validate(m.name)
    return m


@on_qemu
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-microbit"])
def test_compact_joint_bit_exact_on_board(board: str, tmp_path: Path) -> None:
    model = _compact_board_model()
    assert_bit_exact_on_board(model, board, tmp_path, _inputs(model, 40, 9))
