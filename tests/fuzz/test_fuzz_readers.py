"""The Python readers under atheris (mcu_dc/fuzz/pyreaders.py): every target runs a short bounded
count with no finding, the generated seeds are valid, and each input the fuzzer found that used to
escape as something other than an McuDcError is refused with one clear message."""

from __future__ import annotations

import importlib.util
import io
import json
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from mcu_dc.core import huffman
from mcu_dc.core import layout as L
from mcu_dc.core.blob import MAX_OP_WEIGHTS
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.data.idx import decode_idx
from mcu_dc.data.npz import load_npz
from mcu_dc.errors import DataError, FormatError, McuDcError
from mcu_dc.fuzz import pyreaders as PR

HAS_ATHERIS = importlib.util.find_spec("atheris") is not None
RUNS = 3000


# --------------------------------------------------------------------------- the fuzzer itself


@pytest.mark.skipif(not HAS_ATHERIS, reason="atheris is not installed (pip install -e '.[dev]')")
@pytest.mark.parametrize("target", PR.TARGETS)
def test_each_target_runs_clean(target: str, tmp_path: Path):
    res = PR.run_python_fuzzer(target, runs=RUNS, seed=1, work_dir=tmp_path, timeout_s=180)
    log = (tmp_path / f"{target}.log").read_text()[-3000:] if (tmp_path / f"{target}.log").exists() else ""
    assert res.findings == [] and res.exit_code == 0, (res, log)
    assert res.executions == RUNS and res.target == target
    assert res.coverage_edges > 20 and res.corpus_size >= len(PR.seed_inputs(target, 1)) // 2
    assert not list((tmp_path / f"artifacts-{target}").glob("*"))


def test_seed_corpora_are_generated_and_valid(tmp_path: Path):
    for target in PR.TARGETS:
        paths = PR.write_seed_corpus(target, tmp_path / target, seed=1)
        assert len(paths) >= 6
        for p in paths:
            PR._TARGET_FN[target](p.read_bytes())  # every seed is read without error
    blobs = [p.read_bytes() for p in (tmp_path / "mcudc").iterdir()]
    assert {b[4] for b in blobs} == {1, 2}  # format versions 1 and 2
    ops = {op.op.name for b in blobs for op in CompressedModel.from_bytes(b).model.layers}
    assert ops >= {"CONV2D", "FC", "MAXPOOL2D", "DEPTHWISE_CONV2D", "AVGPOOL2D", "ADD"}
    assert PR.seed_inputs("npz", 1) == PR.seed_inputs("npz", 1)  # deterministic


def test_output_parsing():
    crash = (
        "#16\tINITED cov: 365 ft: 838 corp: 14/26Kb exec/s: 0 rss: 66Mb\n"
        "#40\tNEW    cov: 370 ft: 840 corp: 15/27Kb lim: 4446 exec/s: 0 rss: 66Mb L: 1/1 MS: 1 X-\n"
        "\n === Uncaught Python exception: ===\nTypeError: boom\nTraceback (most recent call last):\n"
        "==1== ERROR: libFuzzer: fuzz target exited\n"
        "artifact_prefix='a/'; Test unit written to a/crash-0123abcd\n"
    )
    r = PR.parse_output("mcudc", crash, 77, 2.0)
    assert r.findings == ["crash-0123abcd: TypeError: boom"] and r.executions == 40
    assert (r.coverage_edges, r.corpus_size, r.exit_code) == (370, 15, 77)
    done = (
        "#3000\tDONE   cov: 400 ft: 900 corp: 20/30Kb lim: 4096 exec/s: 1500 rss: 70Mb\n"
        "Done 3000 runs in 2 second(s)\nstat::number_of_executed_units: 3000\n"
        "stat::average_exec_per_sec:     1500\n"
    )
    r = PR.parse_output("idx", done, 0, 9.0)
    assert (r.executions, r.seconds, r.coverage_edges, r.corpus_size, r.findings) == (3000, 2.0, 400, 20, [])
    why = "out-of-memory (used: 2100Mb; exceeds: 2048Mb)"
    oom = f"==2== ERROR: libFuzzer: {why}\nTest unit written to w/oom-99\n"
    assert PR.parse_output("npz", oom, 71, 1.0).findings == [f"oom-99: {why}"]


def test_crc_patching_reaches_the_sections():
    data = _seed("v2-chain")
    bad = bytearray(data)
    bad[50] ^= 0x40  # tensor 0's height: the blob CRC no longer matches
    with pytest.raises(FormatError, match="CRC mismatch"):
        CompressedModel.from_bytes(bytes(bad))
    with pytest.raises(McuDcError) as e:  # patched: a section parser refuses it, not the CRC
        CompressedModel.from_bytes(PR._patch_crcs(bytes(bad)))
    assert "CRC" not in str(e.value)


# --------------------------------------------------------------------------- regressions: .mcudc

SEEDS = PR.seed_inputs("mcudc", 1)


def _seed(prefix: str) -> bytes:
    return next(v for k, v in sorted(SEEDS.items()) if k.startswith(prefix))


def _ops(data: bytes) -> list[tuple[int, dict]]:
    h = L.HEADER.unpack_from(data)
    base = h["op_table_off"]
    return [(base + i * L.OP.size, L.OP.unpack_from(data, base + i * L.OP.size)) for i in range(h["n_ops"])]


def _set(data: bytes, rec: L.Record, off: int, name: str, value: int) -> bytes:
    b = bytearray(data)
    code = next(f.code for f in rec.fields if f.name == name)
    struct.pack_into("<" + code, b, off + rec.offsets[name], value)
    return PR._patch_crcs(bytes(b))


def _first(code: int, encoding: int | None = None, *, reads_input: bool = False) -> tuple[bytes, int, dict]:
    """The first v2 seed op of that code (and encoding; reading the model input), its offset and fields."""
    for _, data in sorted(SEEDS.items()):
        if data[4] != 2:
            continue
        for off, f in _ops(data):
            if f["op"] != code or (encoding is not None and f["encoding"] != encoding):
                continue
            if not reads_input or f["input0"] == L.HEADER.unpack_from(data)["input_tensor"]:
                return data, off, f
    raise AssertionError(f"no seed has op {code}")


def _refused(data: bytes, pattern: str) -> str:
    t0 = time.monotonic()
    with pytest.raises(FormatError, match=pattern) as e:
        CompressedModel.from_bytes(data, "crafted.mcudc")
    assert time.monotonic() - t0 < 2.0
    msg = str(e.value)
    assert msg.startswith("crafted.mcudc") and "\n" not in msg
    return msg


def test_a_huge_conv_kernel_is_refused_before_the_weights_are_decoded():
    """Was MemoryError (60 GiB for the assignment matrix of a 60000x60000 kernel)."""
    data, off, _ = _first(1, encoding=2)  # a HUFFMAN_SPARSE CONV2D
    data = _set(_set(data, L.OP, off, "kernel_h", 60000), L.OP, off, "kernel_w", 60000)
    msg = _refused(data, rf"descriptor at byte offset {off}\): its weight matrix would be")
    assert f"byte offsets {off + 12}, {off + 14}" in msg and str(MAX_OP_WEIGHTS) in msg


def test_an_fc_over_a_huge_tensor_is_refused():
    """Was MemoryError (PiB): the FC's fan-in is its input tensor's c*h*w from the tensor table."""
    data, _, f = _first(2, reads_input=True)
    t = 48 + f["input0"] * L.TENSOR.size
    for name in ("c", "h", "w"):
        data = _set(data, L.TENSOR, t, name, 65535)
    _refused(data, r"weight matrix would be \d+x281462092005375")


def test_section_errors_name_the_file_and_descriptor():
    data, off, _ = _first(2, encoding=2)
    msg = _refused(_set(data, L.OP, off, "n_entries", 0xFFFFFFF0), "sparse entries for a")
    assert f"descriptor at byte offset {off}" in msg


def test_a_huffman_stream_cannot_claim_more_symbols_than_bits():
    counts, syms = np.array([2]), np.array([0, 1])
    t0 = time.monotonic()
    with pytest.raises(FormatError, match=r"10000000000 symbols cannot be coded in a Huffman stream of 8"):
        huffman.decode(b"\x00", 8, counts, syms, 10**10)  # np.empty(10**10) int64 used to come first
    with pytest.raises(FormatError, match="does not fit"):
        huffman.decode(b"\x00", 9, counts, syms, 1)
    assert time.monotonic() - t0 < 1.0
    assert list(huffman.decode(b"\x40", 2, counts, syms, 2)) == [0, 1]


def _with_meta(data: bytes, js: bytes) -> bytes:
    bb = int.from_bytes(data[8:12], "little")
    return data[:bb] + b"MCDM" + struct.pack("<II", len(js), zlib.crc32(js)) + js


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize(
    ("js", "old", "pattern"),
    [
        (b"5", "TypeError", r"is 5, not a JSON object"),
        (b'"x"', "ValueError", r"is \"x\", not a JSON object"),
        (b'{"input_scale": "x"}', "ValueError", r"field 'input_scale' is \"x\", not a finite number"),
        (b'{"input_scale": null}', "TypeError", r"field 'input_scale' is null"),
        (b'{"output_scale": [1]}', "TypeError", r"field 'output_scale' is \[1\]"),
        (b'{"layer_names": 5}', "TypeError", r"field 'layer_names' is 5, not a list of UTF-8 strings"),
        (b'{"output_zp": "a"}', "ValueError (v1)", r"field 'output_zp' is \"a\", not an integer in -128"),
        (b'{"output_zp": 1e999}', "OverflowError (v1)", r"field 'output_zp' is Infinity"),
        (b'{"output_zp": NaN}', "ValueError (v1)", r"field 'output_zp' is NaN"),
        (b'{"name": "\\ud800"}', "UnicodeEncodeError on output", r"field 'name' is \"\\ud800\""),
        (b"[" * 100000 + b"]" * 100000, "RecursionError", r"is not valid JSON \(RecursionError"),
        (b'{"output_zp": ' + b"9" * 5000 + b"}", "ValueError", r"is not valid JSON \(ValueError: Exceeds"),
    ],
)
def test_metadata_of_the_wrong_type_is_refused(version: str, js: bytes, old: str, pattern: str):
    data = _seed(f"{version}-chain")
    bb = int.from_bytes(data[8:12], "little")
    _refused(_with_meta(data, js), rf"metadata at byte offset {bb + 12}.*{pattern}")


def test_upgrade_checks_the_config_it_reads():
    """Was AttributeError ('list' has no .get) / ValueError (int('x'))."""
    from mcu_dc.core.upgrade import upgrade

    data = _seed("v1-chain")
    meta = json.loads(data[int.from_bytes(data[8:12], "little") + 12 :])
    for cfg, pattern in (([], r"'config' is list"), ({"max_code_len": "x"}, r"'config.max_code_len' is 'x'")):
        meta["config"] = cfg
        cm = CompressedModel.from_bytes(_with_meta(data, json.dumps(meta).encode()))
        with pytest.raises(FormatError, match=pattern):
            upgrade(cm)
    meta["config"] = {"max_code_len": 10, "lut_bits": 4}
    new = upgrade(CompressedModel.from_bytes(_with_meta(data, json.dumps(meta).encode())))
    assert new.blob[4] == 2


# --------------------------------------------------------------------------- regressions: idx, npz


def test_idx_bytes_entry():
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    assert decode_idx(raw, "a.idx", gzipped=False).shape == (2, 3)
    with pytest.raises(DataError, match=r"a\.idx\.gz: not a complete gzip file"):
        decode_idx(raw, "a.idx.gz", gzipped=True)
    with pytest.raises(DataError, match=r"gives 255 dimensions"):
        decode_idx(bytes([0, 0, 8, 255]) + bytes(64), "b.idx", gzipped=False)


def test_an_empty_idx_whose_other_sizes_overflow():
    """Found by the fuzzer: shape (0, 2^32-1, 4284735488) holds 0 bytes, but numpy cannot shape it
    (ValueError: array is too big)."""
    raw = bytes([0, 0, 8, 3]) + bytes(4) + b"\xff\xff\xff\xff\xff\x63\xe0\x00"
    with pytest.raises(DataError, match=r"idx sizes \(0, 4294967295, 4284735488\) \(from byte 4\)"):
        decode_idx(raw, "e.idx", gzipped=False)
    assert decode_idx(bytes([0, 0, 8, 2, 0, 0, 0, 0, 0, 0, 0, 28]), "e.idx", gzipped=False).shape == (0, 28)


def test_a_gzip_idx_is_not_decompressed_past_its_header():
    """A gzip file used to be decompressed whole before the header was looked at (a bomb's worth)."""
    import gzip

    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    two_members = gzip.compress(raw[:7]) + gzip.compress(raw[7:])
    assert decode_idx(two_members, "m.idx.gz", gzipped=True).shape == (2, 3)
    claim = bytes([0, 0, 8, 2]) + (100_000).to_bytes(4, "big") * 2 + bytes(1 << 20)  # 10^10 bytes claimed
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"shape \(100000, 100000\), 10000000000 bytes .* compressed bytes"):
        decode_idx(gzip.compress(claim), "c.idx.gz", gzipped=True)
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(DataError, match=r"idx data runs past the 6 bytes its shape \(2, 3\) needs"):
        decode_idx(gzip.compress(raw + bytes(1 << 20)), "t.idx.gz", gzipped=True)


def _npy(header: str, data: bytes = b"") -> bytes:
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


def _npz(**members: bytes) -> bytes:
    arrays = {"x_train": np.zeros((2, 1, 2, 2), np.uint8), "y_train": np.arange(2)}
    arrays |= {"x_test": np.zeros((1, 1, 2, 2), np.uint8), "y_test": np.arange(1)}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for key, a in arrays.items():
            buf = io.BytesIO()
            np.save(buf, a)
            z.writestr(f"{key}.npy", members.pop(key, buf.getvalue()))
        for key, body in members.items():
            z.writestr(f"{key}.npy", body)
    return out.getvalue()


def _npz_refused(data: bytes, pattern: str) -> None:
    with pytest.raises(DataError, match=pattern) as e:
        load_npz("crafted.npz", file=io.BytesIO(data))
    assert str(e.value).startswith("crafted.npz: ") and "\n" not in str(e.value)


def test_npz_python2_header_that_does_not_tokenize():
    """Was tokenize.TokenError from numpy's header filter (it retries headers as Python 2 output)."""
    bad = _npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,")
    _npz_refused(_npz(y_train=bad), r"array 'y_train': invalid .npy header \(fields 'descr'.*byte 8 of zip")


@pytest.mark.parametrize(
    ("header", "old"),
    [
        ("{1: 2, 'descr': '<i8'}", "TypeError: numpy sorts the header's keys"),
        ("-" * 5000 + "1", "RecursionError from Python's parser"),
        ("lambda: " * 1200 + "1", "MemoryError: Python's parser stack overflows"),
    ],
)
def test_npz_headers_numpy_cannot_parse(header: str, old: str):
    """Found by the fuzzer (the first); numpy's header parser raises more than ValueError."""
    _npz_refused(_npz(x_train=_npy(header)), r"array 'x_train': invalid .npy header .*\): [A-Za-z]+Error")


def test_npz_zip_of_a_newer_version():
    """Was NotImplementedError ('zip file version 10.0') from zipfile."""
    data = bytearray(_npz())
    cd = data.index(b"PK\x01\x02")
    data[cd + 6 : cd + 8] = (100).to_bytes(2, "little")  # version needed to extract: 10.0
    _npz_refused(bytes(data), r"not a valid .npz file .*NotImplementedError: zip file version 10.0")


def test_npz_string_beyond_unicode():
    """Was SystemError from numpy making a str of code point 0x110000 (the 'task' entry)."""
    task = _npy("{'descr': '<U1', 'fortran_order': False, 'shape': (), }", (0x110000).to_bytes(4, "little"))
    _npz_refused(_npz(task=task), r"array 'task': character 0 of its <U1 data is 0x110000, beyond")


def test_npz_task_bytes_that_are_not_utf8():
    """Was UnicodeDecodeError from bytes.decode."""
    task = _npy("{'descr': '|S2', 'fortran_order': False, 'shape': (), }", b"\xff\xfe")
    _npz_refused(_npz(task=task), r"'task' is not a UTF-8 string")
