"""Bad inputs give clear errors and status codes, never a crash (the runner runs under ASan+UBSan)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_modelgen import lenet_like

from mcu_dc.core import blob as blobfmt
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.simulator import simulate
from mcu_dc.deploy.cheaders import Status, status_text
from mcu_dc.deploy.codegen import blob_parts
from mcu_dc.deploy.hostbuild import RuntimeStatusError, run_blob
from mcu_dc.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def model_and_blob():
    model = lenet_like(np.random.default_rng(4))
    return model, CompressedModel(model).blob


def _fix_crc(b: bytearray) -> bytes:
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])) & 0xFFFFFFFF)
    return bytes(b)


def _status(runner, tmp_path, data: bytes, model, **kw) -> int:
    p = tmp_path / "bad.bin"
    p.write_bytes(data)
    x = np.zeros((2, model.input_len), np.uint8)
    with pytest.raises(RuntimeStatusError) as exc:
        run_blob(runner, p, x, model.output_len, **kw)
    assert f"MCU_DC_{Status(exc.value.status).name}" in str(exc.value)
    return exc.value.status


def test_unknown_op_is_refused(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    b = bytearray(blob)
    b[blobfmt.HEADER_BYTES + 1 * blobfmt.LAYER_BYTES] = 9  # layer 1's op
    assert _status(runner, tmp_path, _fix_crc(b), model) == Status.ERR_UNKNOWN_OP


def test_unknown_encoding_is_refused(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    b = bytearray(blob)
    b[blobfmt.HEADER_BYTES + 1] = 7  # layer 0's encoding
    assert _status(runner, tmp_path, _fix_crc(b), model) == Status.ERR_UNKNOWN_ENCODING


def test_bad_magic_version_size_crc(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    b = bytearray(blob)
    b[0] = ord("X")
    assert _status(runner, tmp_path, bytes(b), model) == Status.ERR_BAD_MAGIC
    b = bytearray(blob)
    struct.pack_into("<H", b, 4, blobfmt.FORMAT_VERSION + 1)
    assert _status(runner, tmp_path, bytes(b), model) == Status.ERR_VERSION
    assert _status(runner, tmp_path, blob[:-4], model) == Status.ERR_SIZE  # truncated
    b = bytearray(blob)
    b[-5] ^= 0xFF  # a payload byte: structure intact, CRC wrong
    assert _status(runner, tmp_path, bytes(b), model) == Status.ERR_CRC


def test_section_offset_outside_blob(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    b = bytearray(blob)
    struct.pack_into("<I", b, blobfmt.HEADER_BYTES + 40, len(blob) + 64)  # layer 0 bias_off
    assert _status(runner, tmp_path, _fix_crc(b), model) == Status.ERR_OFFSET


def test_arena_too_small(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    st_ = _status(runner, tmp_path, blob, model, arena_bytes=model.arena_bytes() - 4)
    assert st_ == Status.ERR_ARENA_TOO_SMALL


def test_arena_size_matches_simulator(runner, tmp_path, model_and_blob):
    import json
    import subprocess

    model, blob = model_and_blob
    p = tmp_path / "m.bin"
    p.write_bytes(blob)
    out = subprocess.run([str(runner), "--info", str(p)], capture_output=True, check=True, timeout=60)
    info = json.loads(out.stdout)
    assert info["arena_bytes"] == model.arena_bytes()
    assert info["input_len"] == model.input_len and info["output_len"] == model.output_len
    assert info["hash"] == zlib.crc32(blob[16:]) & 0xFFFFFFFF


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
        max_len, k, n_sym, n_bits = struct.unpack_from("<BBHI", blob, off)
        p = blobfmt.align4(off + 8 + 2 * max_len + 2 * n_sym)
        if k:
            p = blobfmt.align4(p + (2 << k))
        if n_bits:
            out.append((p, p + (n_bits + 7) // 8))
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.integers(0, 10**9), flips=st.lists(st.integers(0, 7), min_size=1, max_size=4))
def test_corrupted_streams_never_crash(runner, tmp_path, model_and_blob, pick, flips):
    model, blob = model_and_blob
    ranges = _stream_data_ranges(blob)
    start, end = ranges[pick % len(ranges)]
    b = bytearray(blob)
    for i, bit in enumerate(flips):
        pos = start + (pick // (i + 1)) % (end - start)
        b[pos] ^= 1 << bit
    p = tmp_path / "c.bin"
    p.write_bytes(_fix_crc(b))
    x = np.random.default_rng(pick % 1000).integers(0, 256, (3, model.input_len), dtype=np.uint8)
    for ref in (False, True):
        try:
            out = run_blob(runner, p, x, model.output_len, ref=ref)
        except RuntimeStatusError as exc:
            assert exc.status == Status.ERR_CORRUPT_STREAM
        else:
            assert out.shape == (3, model.output_len)


def test_truncated_huffman_tables_refused(runner, tmp_path, model_and_blob):
    model, blob = model_and_blob
    b = bytearray(blob)
    part = next(p for p in blob_parts(blob) if "stream" in p.name)
    b[part.start] = 16  # max_len above the limit
    assert _status(runner, tmp_path, _fix_crc(b), model) == Status.ERR_HUFFMAN_TABLE


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
