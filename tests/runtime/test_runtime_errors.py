"""Bad inputs give clear errors and status codes, never a crash (the runner runs under ASan+UBSan).

Malformed graphs are made from a valid blob (``encode_blob``) by patching one field of the
header, the tensor table or the op table (field offsets from :mod:`mcu_dc.core.layout`)
and recomputing the CRC; the validator (``mcu_dc_model_init``) must name the problem.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_modelgen import (
    fix_crc,
    hdr_off,
    lenet_like,
    model_inputs,
    op_off,
    patch,
    read_field,
    residual_net,
    tensor_off,
)

from mcu_dc.core import blob as blobfmt
from mcu_dc.core import layout as L
from mcu_dc.core.blob import decode_blob, encode_blob
from mcu_dc.core.model_file import CompressedModel, load
from mcu_dc.core.planner import buffers, plan_of
from mcu_dc.core.random_models import random_graph
from mcu_dc.core.simulator import device_input, simulate
from mcu_dc.deploy.cheaders import Status, status_text
from mcu_dc.deploy.codegen import blob_parts
from mcu_dc.deploy.hostbuild import RuntimeStatusError, run_blob
from mcu_dc.errors import ConfigError, DataError, McuDcError

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
H, T, OPD = L.HEADER, L.TENSOR, L.OP


@pytest.fixture(scope="module")
def model_and_blob():
    model = lenet_like(np.random.default_rng(4))
    return model, CompressedModel(model).blob


@pytest.fixture(scope="module")
def graph():
    """residual_net: ops 0 CONV2D, 1 MAXPOOL2D, 2 DEPTHWISE, 3 ADD, 4 AVGPOOL2D, 5 CONV2D+pool, 6 FC;
    tensors 0..7."""
    model = residual_net(np.random.default_rng(8))
    return model, encode_blob(model)


def _status(runner, tmp_path, data: bytes, model, **kw) -> int:
    p = tmp_path / "bad.bin"
    p.write_bytes(data)
    x = np.zeros((2, model.input_len), np.uint8)
    with pytest.raises(RuntimeStatusError) as exc:
        run_blob(runner, p, x, model.output_len, **kw)
    assert f"MCU_DC_{Status(exc.value.status).name}" in str(exc.value)
    return exc.value.status


def _op(runner, tmp_path, graph, i: int, name: str, value: int) -> int:
    model, blob = graph
    return _status(runner, tmp_path, patch(blob, OPD, op_off(blob, i, name), name, value), model)


def _ten(runner, tmp_path, graph, t: int, name: str, value: int) -> int:
    model, blob = graph
    return _status(runner, tmp_path, patch(blob, T, tensor_off(t, name), name, value), model)


def _hdr(runner, tmp_path, graph, name: str, value: int) -> int:
    model, blob = graph
    return _status(runner, tmp_path, patch(blob, H, hdr_off(name), name, value), model)


def test_the_unpatched_graph_runs(runner, tmp_path, graph):
    model, blob = graph
    p = tmp_path / "ok.bin"
    p.write_bytes(blob)
    x = model_inputs(model, 4, 0)
    assert np.array_equal(run_blob(runner, p, x, model.output_len), simulate(model, x))


# ----------------------------------------------------------------------------- ops and encodings


@pytest.mark.parametrize("i,code", [(1, 9), (0, 0), (6, 255)])
def test_unknown_op_is_refused(runner, tmp_path, graph, i, code):
    assert _op(runner, tmp_path, graph, i, "op", code) == Status.ERR_UNKNOWN_OP


@pytest.mark.parametrize("i,enc", [(0, 7), (2, 0), (6, 7), (6, 255), (0, 3), (1, 1), (3, 2), (4, 1)])
def test_unknown_encoding_is_refused(runner, tmp_path, graph, i, enc):
    """Weight ops need DENSE_INT8, HUFFMAN_SPARSE, TERNARY, BINARY (4, 5: test_runtime_ternary.py)
    or HUFFMAN_JOINT (6: test_runtime_joint.py); an FC also COLUMN_SPARSE (3: not op 0, a conv); 7
    and up are unknown; pools and ADD have no weights (NONE)."""
    assert _op(runner, tmp_path, graph, i, "encoding", enc) == Status.ERR_UNKNOWN_ENCODING


# ----------------------------------------------------------------------------- wiring


@pytest.mark.parametrize(
    "i,name,value",
    [
        (2, "input0", 8),  # a tensor id out of range (8 tensors)
        (3, "input1", 0xFFFF),  # ADD's second input absent
        (4, "output", 99),
        (0, "input0", 1),  # reads its own output: not yet written
        (3, "input1", 5),  # reads a tensor written later
        (2, "output", 2),  # writes tensor 2 again (op 1 wrote it)
        (0, "output", 0),  # writes the input tensor
        (3, "n_inputs", 1),  # ADD takes two inputs
        (0, "n_inputs", 2),  # CONV2D takes one
    ],
)
def test_malformed_wiring_is_refused(runner, tmp_path, graph, i, name, value):
    assert _op(runner, tmp_path, graph, i, name, value) == Status.ERR_GRAPH


@pytest.mark.parametrize(
    "name,value",
    [
        ("input_tensor", 8),  # out of range
        ("output_tensor", 8),
        ("output_tensor", 0),  # the input: never written by an op
        ("output_tensor", 5),  # tensor 7 then is computed but never used
        ("input_tensor", 1),  # tensor 0 then is read but never written (and 1 is written by op 0)
        ("n_ops", 0),
    ],
)
def test_malformed_graph_header_is_refused(runner, tmp_path, graph, name, value):
    assert _hdr(runner, tmp_path, graph, name, value) == Status.ERR_GRAPH


def test_bad_table_offsets_and_header_fields(runner, tmp_path, graph):
    assert _hdr(runner, tmp_path, graph, "tensor_table_off", 52) == Status.ERR_OFFSET
    assert _hdr(runner, tmp_path, graph, "op_table_off", 48) == Status.ERR_OFFSET
    assert _hdr(runner, tmp_path, graph, "n_ops", 0xFFFF) == Status.ERR_SIZE
    assert _hdr(runner, tmp_path, graph, "input_kind", 2) == Status.ERR_PARAM
    assert _hdr(runner, tmp_path, graph, "rounding", 2) == Status.ERR_ROUNDING
    assert _ten(runner, tmp_path, graph, 0, "zp", 0) == Status.ERR_PARAM  # a uint8 input has zero point -128


# ----------------------------------------------------------------------------- shapes and parameters


@pytest.mark.parametrize(
    "i,name,value",
    [
        (0, "kernel_h", 5),  # conv output would be 6 high, the tensor is 8
        (0, "kernel_w", 200),  # does not fit the padded input
        (0, "stride_w", 2),
        (0, "pad_bottom", 2),  # asymmetric padding changes the output height
        (5, "pool_kh", 1),  # the fused pool's output: 2x1, the tensor is 1x1
        (5, "pool_kw", 3),  # a fused pool larger than the 2x2 conv map
        (1, "kernel_h", 8),  # max pool: (8-8)/2+1 = 1, the tensor is 4 high
        (4, "pad_top", 2),  # average pool: (4+2-2)/2+1 = 3, the tensor is 2 high
        (2, "kernel_w", 5),  # depthwise: 'same' no more
        (3, "input1", 1),  # ADD of (4,4,4) and (4,8,8)
        (0, "kernel_h", 0xFFFF),  # 64-bit size arithmetic: nothing fits, nothing overflows
    ],
)
def test_inconsistent_shapes_are_refused(runner, tmp_path, graph, i, name, value):
    assert _op(runner, tmp_path, graph, i, name, value) == Status.ERR_SHAPE


@pytest.mark.parametrize(
    "t,name,value",
    [
        (1, "h", 7),  # the conv's output tensor: its height no longer follows from the parameters
        (7, "w", 2),  # FC output must be (n, 1, 1)
        (2, "c", 3),  # max pool keeps the channels
        (0, "c", 0),  # empty shape
    ],
)
def test_tensor_table_shapes_are_checked(runner, tmp_path, graph, t, name, value):
    assert _ten(runner, tmp_path, graph, t, name, value) == Status.ERR_SHAPE


def test_a_tensor_larger_than_the_arena_is_refused(runner, tmp_path, graph):
    assert _ten(runner, tmp_path, graph, 0, "h", 0xFFFF) == Status.ERR_ARENA_PLAN  # 1.5 MB, a 704-byte arena


def test_huge_tensor_sizes_are_checked_in_64_bits(runner, tmp_path, graph):
    model, blob = graph
    data = blob
    for name in ("c", "h", "w"):
        data = patch(data, T, tensor_off(0, name), name, 0xFFFF)
    assert _status(runner, tmp_path, data, model) == Status.ERR_SHAPE


@pytest.mark.parametrize(
    "i,name,value",
    [
        (0, "shift", 0),
        (0, "shift", 63),
        (0, "multiplier", -5),
        (0, "act_min", 100),  # act_min > act_max
        (3, "shift", 0),
        (3, "multiplier_b", -1),
        (4, "shift", 63),
        (4, "multiplier", -(2**31)),
        (0, "index_bits", 9),
        (6, "codebook_len", 0),
        (4, "kernel_h", 0xFFFF),  # avg pool window * 255 overflows int32 (checked in 64 bits)
        (1, "pad_left", 1),  # max pool has no padding
        (1, "stride_h", 0),
    ],
)
def test_out_of_range_parameters_are_refused(runner, tmp_path, graph, i, name, value):
    model, blob = graph
    data = blob
    if (i, name) == (4, "kernel_h"):
        data = patch(data, OPD, op_off(data, i, "kernel_w"), "kernel_w", 0xFFFF)
    if name == "act_min":
        data = patch(data, OPD, op_off(data, i, "act_max"), "act_max", 50)
    data = patch(data, OPD, op_off(data, i, name), name, value)
    assert _status(runner, tmp_path, data, model) == Status.ERR_PARAM


def test_maxpool_zero_points_must_agree(runner, tmp_path, graph):
    _, blob = graph
    zp = read_field(blob, T, tensor_off(2, "zp"), "zp")
    assert _ten(runner, tmp_path, graph, 2, "zp", zp + 1 if zp < 127 else zp - 1) == Status.ERR_PARAM


def test_section_offset_outside_blob(runner, tmp_path, graph):
    _, blob = graph
    assert _op(runner, tmp_path, graph, 0, "bias_off", len(blob) + 64) == Status.ERR_OFFSET
    assert _op(runner, tmp_path, graph, 6, "weights_off", 2) == Status.ERR_OFFSET  # unaligned


# ----------------------------------------------------------------------------- the arena plan


def test_buffers_outside_the_arena_or_unaligned(runner, tmp_path, graph):
    model, blob = graph
    arena = model.arena_bytes()
    off3 = read_field(blob, T, tensor_off(3, "arena_off"), "arena_off")
    assert _ten(runner, tmp_path, graph, 3, "arena_off", arena) == Status.ERR_ARENA_PLAN
    assert _ten(runner, tmp_path, graph, 3, "arena_off", off3 + 2) == Status.ERR_ARENA_PLAN
    assert _ten(runner, tmp_path, graph, 3, "arena_off", 0xFFFFFFFC) == Status.ERR_ARENA_PLAN
    sc0 = read_field(blob, OPD, op_off(blob, 0, "scratch_off"), "scratch_off")
    assert _op(runner, tmp_path, graph, 0, "scratch_off", sc0 + 2) == Status.ERR_ARENA_PLAN
    assert _op(runner, tmp_path, graph, 0, "scratch_off", arena) == Status.ERR_ARENA_PLAN
    assert _op(runner, tmp_path, graph, 1, "scratch_off", 4) == Status.ERR_ARENA_PLAN  # no scratch: 0


def test_arena_bytes_must_be_the_plan_extent(runner, tmp_path, graph):
    model, _ = graph
    assert _hdr(runner, tmp_path, graph, "arena_bytes", model.arena_bytes() + 4) == Status.ERR_ARENA_MISMATCH


def _live_pairs(model):
    """(kind_a, index_a, kind_b, index_b) of buffer pairs alive at the same time."""
    tensors, scratch = buffers(model)
    items = [("t", i, b) for i, b in enumerate(tensors)] + [
        ("s", i, b) for i, b in enumerate(scratch) if b.size
    ]
    out = []
    for j, (ka, ia, a) in enumerate(items):
        for kb, ib, b in items[j + 1 :]:
            if a.first <= b.last and b.first <= a.last:
                out.append((ka, ia, a.size, kb, ib, b.size))
    return out


def test_live_buffers_sharing_bytes_are_refused(runner, tmp_path, graph):
    """Move one buffer onto another that is alive with it (every such pair of the graph)."""
    model, blob = graph
    plan = plan_of(model)
    arena = plan.arena_bytes
    checked = 0
    for ka, ia, sa, kb, ib, sb in _live_pairs(model):
        # move the smaller onto the larger, so it stays inside the arena
        if sa > sb:
            ka, ia, sa, kb, ib, sb = kb, ib, sb, ka, ia, sa
        dest = plan.tensor_offsets[ib] if kb == "t" else plan.scratch_offsets[ib]
        if dest + sa > arena:
            continue
        if ka == "t":
            data = patch(blob, T, tensor_off(ia, "arena_off"), "arena_off", dest)
        else:
            data = patch(blob, OPD, op_off(blob, ia, "scratch_off"), "scratch_off", dest)
        assert _status(runner, tmp_path, data, model) == Status.ERR_ARENA_PLAN, (ka, ia, kb, ib)
        checked += 1
    assert checked >= 10


def test_buffers_not_alive_together_may_share_bytes(runner, tmp_path):
    """A plan is the lifetimes': the planner reuses bytes, and the runtime accepts what it checks."""
    model = residual_net(np.random.default_rng(9))
    plan = plan_of(model)
    assert len(set(plan.tensor_offsets)) < model.n_tensors  # bytes are reused
    p = tmp_path / "m.bin"
    p.write_bytes(encode_blob(model))
    x = model_inputs(model, 3, 1)
    assert np.array_equal(run_blob(runner, p, x, model.output_len), simulate(model, x))


def test_arena_too_small(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    st_ = _status(runner, tmp_path, blob, model, arena_bytes=model.arena_bytes() - 4)
    assert st_ == Status.ERR_ARENA_TOO_SMALL


def test_arena_size_matches_simulator(runner, tmp_path, graph):
    import json
    import subprocess

    model, blob = graph
    p = tmp_path / "m.bin"
    p.write_bytes(blob)
    out = subprocess.run([str(runner), "--info", str(p)], capture_output=True, check=True, timeout=60)
    info = json.loads(out.stdout)
    assert info["arena_bytes"] == model.arena_bytes()
    assert info["input_len"] == model.input_len and info["output_len"] == model.output_len
    assert info["hash"] == zlib.crc32(blob[16:]) & 0xFFFFFFFF
    assert info["format_version"] == 2 and info["input_kind"] == int(model.input_kind)


# ----------------------------------------------------------------------------- version 1


@pytest.fixture(scope="module")
def v1():
    cm = load(RESULTS / "lenet300_deep_compression.mcudc")
    assert cm.blob[4] == 1
    return cm.model, cm.blob


def _v1_layer(i: int, name: str) -> int:
    return L.HEADER_V1.size + i * L.LAYER_V1.size + L.LAYER_V1.offsets[name]


@pytest.mark.parametrize(
    "i,name,value,status",
    [
        (1, "op", 9, Status.ERR_UNKNOWN_OP),
        (1, "op", 4, Status.ERR_UNKNOWN_OP),  # DEPTHWISE_CONV2D did not exist in version 1
        (0, "encoding", 7, Status.ERR_UNKNOWN_ENCODING),
        (1, "in_c", 3, Status.ERR_SHAPE),  # the chain breaks
        (1, "in_zp", None, Status.ERR_PARAM),  # differs from layer 0's out_zp
        (0, "bias_off", 1 << 24, Status.ERR_OFFSET),
        (2, "shift", 0, Status.ERR_PARAM),
    ],
)
def test_version1_layers_are_validated(runner, tmp_path, v1, i, name, value, status):
    model, blob = v1
    if value is None:
        value = read_field(blob, L.LAYER_V1, _v1_layer(i - 1, "out_zp"), "out_zp") ^ 1
    assert (
        _status(runner, tmp_path, patch(blob, L.LAYER_V1, _v1_layer(i, name), name, value), model) == status
    )


def test_version1_header_checks(runner, tmp_path, v1):
    model, blob = v1
    arena = read_field(blob, L.HEADER_V1, L.HEADER_V1.offsets["arena_bytes"], "arena_bytes")
    data = patch(blob, L.HEADER_V1, L.HEADER_V1.offsets["arena_bytes"], "arena_bytes", arena + 4)
    assert _status(runner, tmp_path, data, model) == Status.ERR_ARENA_MISMATCH
    data = patch(blob, L.HEADER_V1, L.HEADER_V1.offsets["out_len"], "out_len", 11)
    assert _status(runner, tmp_path, data, model) == Status.ERR_SHAPE


# ----------------------------------------------------------------------------- the header, streams, inputs


def test_bad_magic_version_size_crc(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    b = bytearray(blob)
    b[0] = ord("X")
    assert _status(runner, tmp_path, bytes(b), model) == Status.ERR_BAD_MAGIC
    b = bytearray(blob)
    struct.pack_into("<H", b, 4, blobfmt.FORMAT_VERSION + 1)
    assert _status(runner, tmp_path, bytes(b), model) == Status.ERR_VERSION
    assert _status(runner, tmp_path, blob[:-4], model) == Status.ERR_SIZE  # truncated
    assert _status(runner, tmp_path, blob[:40], model) == Status.ERR_SIZE  # shorter than the v2 header
    b = bytearray(blob)
    b[-5] ^= 0xFF  # a payload byte: structure intact, CRC wrong
    assert _status(runner, tmp_path, bytes(b), model) == Status.ERR_CRC


def test_wrong_input_length_on_stdin(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    p = tmp_path / "m.bin"
    p.write_bytes(blob)
    with pytest.raises(DataError, match="stdin ended inside input #1"):
        run_blob(runner, p, bytes(model.input_len + 3), model.output_len)


def _stream_data_ranges(blob: bytes) -> list[tuple[int, int]]:
    """(start, end) of the coded data of every Huffman section."""
    out = []
    for part in blob_parts(blob):
        if "stream" not in part.name:
            continue
        off = part.start
        max_len, k, n_sym, n_bits = L.HUFF.struct.unpack_from(blob, off)
        p = blobfmt.align4(off + L.HUFF.size + 2 * max_len + 2 * n_sym)
        if k:
            p = blobfmt.align4(p + (2 << k))
        if n_bits:
            out.append((p, p + (n_bits + 7) // 8))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pick=st.integers(0, 10**9),
    flips=st.lists(st.integers(0, 7), min_size=1, max_size=4),
    which=st.sampled_from(["lenet", "graph"]),
)
def test_corrupted_streams_never_crash(runner, tmp_path, model_and_blob, graph, pick, flips, which):
    model, blob = model_and_blob if which == "lenet" else graph
    ranges = _stream_data_ranges(blob)
    start, end = ranges[pick % len(ranges)]
    b = bytearray(blob)
    for i, bit in enumerate(flips):
        pos = start + (pick // (i + 1)) % (end - start)
        b[pos] ^= 1 << bit
    p = tmp_path / "c.bin"
    p.write_bytes(fix_crc(b))
    x = np.random.default_rng(pick % 1000).integers(0, 256, (3, model.input_len), dtype=np.uint8)
    for ref in (False, True):
        try:
            out = run_blob(runner, p, x, model.output_len, ref=ref)
        except RuntimeStatusError as exc:
            assert exc.status == Status.ERR_CORRUPT_STREAM
        else:
            assert out.shape == (3, model.output_len)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**31),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=3),
)
def test_patched_tables_never_crash_and_agree_with_the_reader(runner, tmp_path, seed, edits):
    """Random bytes written into the header, tensor table or op table of a random graph: the
    runtime refuses with a status or runs; when both it and the Python reader accept the
    blob, the outputs are the simulator's."""
    model = random_graph(seed, max_ops=5)
    blob = encode_blob(model)
    tables_end = L.HEADER.unpack_from(blob)["op_table_off"] + len(model.layers) * OPD.size
    b = bytearray(blob)
    for pos, val in edits:
        b[16 + pos % (tables_end - 16)] = val  # bytes 0..15 (magic, version, sizes, CRC) have their own tests
    data = fix_crc(b)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    x = model_inputs(model, 3, seed)
    try:
        decoded = decode_blob(data)
    except McuDcError:
        decoded = None
    for ref in (False, True):
        try:
            got = run_blob(
                runner,
                p,
                device_input(model, x) if decoded is None else device_input(decoded, x),
                model.output_len if decoded is None else decoded.output_len,
                ref=ref,
            )
        except RuntimeStatusError as exc:
            assert exc.status != Status.OK
            continue
        except McuDcError:  # the output length changed and the runner wrote a different multiple
            assert decoded is None
            continue
        if decoded is not None:
            assert np.array_equal(got, simulate(decoded, x))


def test_truncated_huffman_tables_refused(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    b = bytearray(blob)
    part = next(p for p in blob_parts(blob) if "stream" in p.name)
    b[part.start] = 16  # max_len above the limit
    assert _status(runner, tmp_path, fix_crc(b), model) == Status.ERR_HUFFMAN_TABLE


def test_status_text_names_every_code():
    for s in Status:
        assert f"MCU_DC_{s.name}" in status_text(int(s))
    assert "unknown status" in status_text(99)


def test_simulator_rejects_bad_inputs(model_and_blob):
    model, _ = model_and_blob
    with pytest.raises(DataError, match="shape"):
        simulate(model, np.zeros((2, model.input_len + 1), np.uint8))
    with pytest.raises(DataError, match="uint8"):
        simulate(model, np.zeros((2, model.input_len), np.float32))
    with pytest.raises(DataError, match=r"0\.\.255"):
        simulate(model, np.full((1, model.input_len), 300, np.int32))
    with pytest.raises(ConfigError):
        simulate("not a model", np.zeros(4, np.uint8))
