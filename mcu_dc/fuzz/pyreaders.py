"""Coverage-guided fuzzing (atheris + libFuzzer) of the Python readers.

Targets (:data:`TARGETS`), each a reader of untrusted bytes:

* ``mcudc``: :meth:`CompressedModel.from_bytes`, the reader behind :func:`mcu_dc.load`
  (``mcu-dc simulate``, ``report``, ``upgrade``...), on format version 1 and 2 files. Before
  reading, the blob's CRC-32 (header byte offset 12, over bytes ``[16, blob_bytes)``) and the
  metadata section's CRC-32 are recomputed, so a mutation reaches the header, tensor table, op
  descriptors, Huffman sections and metadata instead of stopping at the integrity check;
* ``mcudc-raw``: the same reader on the mutated bytes as they are (the CRC checks included);
* ``idx``: :func:`mcu_dc.data.idx.decode_idx`, raw or gzip-compressed (told by the gzip magic);
* ``npz``: :func:`mcu_dc.data.npz.load_npz` on the bytes, through the whole dataset checks. Half
  the mutations rewrite one zip member (its ``.npy`` header mostly) and re-zip, so the member's
  CRC is right and the ``.npy`` parser is what gets exercised.

A finding is any exception other than :class:`~mcu_dc.errors.McuDcError` (it propagates, and
libFuzzer writes the input under ``--artifacts`` as ``crash-*``), a ``MemoryError``, an input
slower than ``-timeout`` (``timeout-*``) or one over ``-rss_limit_mb`` (``oom-*``).

Seed corpora are generated here (:func:`write_seed_corpus`), never committed: small valid
version 2 graphs and chains from :mod:`mcu_dc.core.random_models` (every registered op, both
weight encodings), the same chains re-laid as version 1 files, small idx files (raw and gzip)
and small ``.npz`` files in the accepted layouts. The CLI writes them into an empty corpus dir::

    python -m mcu_dc.fuzz.pyreaders --target mcudc --runs 100000 --seed 1 \\
        --corpus /tmp/pyfuzz_work/corpus-mcudc --artifacts /tmp/pyfuzz_work/artifacts-mcudc
    python -m mcu_dc.fuzz.pyreaders --target mcudc /tmp/pyfuzz_work/artifacts-mcudc/crash-...  # replay

Other arguments go to libFuzzer unchanged (``-max_total_time=60``, ``-timeout=5``...).
:func:`run_python_fuzzer` runs the CLI in a subprocess and parses libFuzzer's final stats
(``bench/fuzz.py``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TARGETS: tuple[str, ...] = ("mcudc", "mcudc-raw", "idx", "npz")

DEFAULT_TIMEOUT_PER_INPUT_S = 10
# What gets coverage instrumentation, per target: the readers, and for npz the zip and .npy parsers.
_INSTRUMENT: dict[str, tuple[str, ...]] = {
    "mcudc": ("mcu_dc",),
    "mcudc-raw": ("mcu_dc",),
    "idx": ("mcu_dc", "gzip"),
    "npz": ("mcu_dc", "zipfile", "numpy.lib._format_impl", "numpy.lib.format"),
}
_DICT: dict[str, tuple[bytes, ...]] = {
    "mcudc": (
        b"MCDC", b"MCDM", b'"layer_names"', b'"input_scale"', b'"output_scale"', b'"output_zp"', b'"name"',
        b'"task"', b'"config"', b'"classification"', b'"regression"', b"null", b"true", b"[]", b"{}",
        b"1e999", b"-1", b"NaN", b"[[[[[[[[", b'"\\ud800"', b"\x01\x00", b"\x02\x00", b"\xff\xff",
        b"\x00\x00\x00\x80", b"\xff\xff\xff\xff",
    ),
    "idx": (
        b"\x00\x00\x08\x01", b"\x00\x00\x08\x03", b"\x00\x00\x08\xff", b"\x1f\x8b\x08", b"\xff\xff\xff\xff",
    ),
    "npz": (
        b"\x93NUMPY\x01\x00", b"\x93NUMPY\x02\x00", b"'descr'", b"'fortran_order'", b"'shape'", b"True",
        b"False", b"'|u1'", b"'<f4'", b"'<f8'", b"'<i8'", b"'|b1'", b"'|O'", b"'<U3'", b"'|S3'", b"'<c8'",
        b"'<M8[s]'", b"[('a', '<i4')]", b"(1000000000000,)", b"(-1,)", b"()", b"x_train", b"y_train",
        b"x_test", b"y_test", b"task", b"layout", b"num_classes", b"class_names", b"input_scale",
        b"anomaly_test", b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06",
    ),
}  # fmt: skip
_DICT["mcudc-raw"] = _DICT["mcudc"]


# =============================================================================== targets


def _patch_crcs(data: bytes) -> bytes:
    """``data`` with the blob's and the metadata's CRC-32 recomputed (where their fields are present)."""
    from mcu_dc.core.blob import MAGIC, with_crc
    from mcu_dc.core.model_file import META_MAGIC

    if len(data) < 16 or data[:4] != MAGIC:
        return data
    bb = int.from_bytes(data[8:12], "little")
    if not 16 <= bb <= len(data):
        return data
    b = bytearray(with_crc(data))
    if len(b) >= bb + 12 and b[bb : bb + 4] == META_MAGIC:
        n = int.from_bytes(b[bb + 4 : bb + 8], "little")
        js = b[bb + 12 : bb + 12 + n]
        b[bb + 8 : bb + 12] = (zlib.crc32(js) & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(b)


def _read_mcudc(data: bytes) -> None:
    from mcu_dc.core.blob import blob_sections
    from mcu_dc.core.model_file import CompressedModel

    cm = CompressedModel.from_bytes(data, "<fuzz>.mcudc")
    blob_sections(cm.blob, list(cm.meta.get("layer_names") or []))


def _target_mcudc(data: bytes) -> None:
    _read_mcudc(_patch_crcs(data))


def _target_idx(data: bytes) -> None:
    from mcu_dc.data.idx import decode_idx

    gz = data[:2] == b"\x1f\x8b"
    decode_idx(data, "<fuzz>.idx.gz" if gz else "<fuzz>.idx", gzipped=gz)


def _target_npz(data: bytes) -> None:
    from mcu_dc.data.npz import load_npz

    load_npz("<fuzz>.npz", file=io.BytesIO(data))


_TARGET_FN: dict[str, Callable[[bytes], None]] = {
    "mcudc": _target_mcudc,
    "mcudc-raw": _read_mcudc,
    "idx": _target_idx,
    "npz": _target_npz,
}


def one_input(target: str) -> Callable[[bytes], None]:
    """The fuzz entry for ``target``: reads ``data``; an :class:`McuDcError` is the expected refusal,
    anything else propagates (a finding)."""
    from mcu_dc.errors import McuDcError

    fn = _TARGET_FN[target]

    def test_one_input(data: bytes) -> None:
        try:
            fn(data)
        except McuDcError:
            pass

    return test_one_input


# =============================================================================== mutators

_JSON_KEYS = (
    "name", "task", "layer_names", "input_scale", "output_scale", "output_zp", "config", "blob_layout",
)  # fmt: skip
_JSON_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 127, -129, 1.5, 1e308, float("nan"), float("inf"), 10**30, "", "x",
    "classification", "regression", "\ud800", [], {}, [1, "a"], ["a", "b"], {"a": 1}, [[[[[[[[1]]]]]]]],
    {"max_code_len": 0}, {"max_code_len": "12", "lut_bits": 99},
)  # fmt: skip


def _mcudc_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """A fifth of the time: change, drop or add one metadata field (JSON-aware, so the JSON stays valid)."""
    import json

    import atheris

    rng = random.Random(seed)
    if rng.random() < 0.2 and len(data) >= 16:
        bb = int.from_bytes(data[8:12], "little")
        if bb + 12 <= len(data) and data[bb : bb + 4] == b"MCDM":
            n = int.from_bytes(data[bb + 4 : bb + 8], "little")
            try:
                meta = json.loads(data[bb + 12 : bb + 12 + n])
            except (ValueError, RecursionError):
                meta = None
            if isinstance(meta, dict):
                key = rng.choice(_JSON_KEYS)
                if rng.random() < 0.2:
                    meta.pop(key, None)
                else:
                    meta[key] = rng.choice(_JSON_VALUES)
                try:
                    js = json.dumps(meta).encode()
                except (ValueError, RecursionError):  # nesting json.loads took but json.dumps does not
                    js = b"{}"
                out = data[:bb] + b"MCDM" + len(js).to_bytes(4, "little") + bytes(4) + js
                if len(out) <= max_size:
                    return out  # the target recomputes both CRCs
    return bytes(atheris.Mutate(data, max_size))


def _unzip(data: bytes) -> list[tuple[str, bytes, int]] | None:
    """The members of a zip (name, bytes, compression), or None when the bytes are not a readable zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return [(i.filename, zf.read(i), i.compress_type) for i in zf.infolist()]
    except Exception:  # the mutator sees any bytes; it only needs to know they are not a readable zip
        return None


def _zip(members: list[tuple[str, bytes, int]]) -> bytes | None:
    """The members zipped again (stored or deflated, right CRCs), or None when zipfile will not write them."""
    out = io.BytesIO()
    try:
        with zipfile.ZipFile(out, "w") as zf:
            for name, body, method in members:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method if method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) else 0
                zf.writestr(info, body)
    except Exception:  # names a fuzzed zip may hold (e.g. with a NUL); the mutator then mutates bytes
        return None
    return out.getvalue()


def _npz_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """Half the time: mutate one member (mostly its .npy header) and re-zip it with a right CRC."""
    import atheris

    rng = random.Random(seed)
    if rng.random() < 0.5:
        members = _unzip(data)
        if members:
            i = rng.randrange(len(members))
            name, body, method = members[i]
            cut = min(len(body), 128) if rng.random() < 0.7 else len(body)
            body = atheris.Mutate(body[:cut], max(2 * cut, 64)) + body[cut:]
            members[i] = (name, body, method)
            out = _zip(members)
            if out is not None and len(out) <= max_size:
                return out
    return bytes(atheris.Mutate(data, max_size))


# =============================================================================== seed corpora


def v1_file(model: Any) -> bytes | None:
    """A format version 1 ``.mcudc`` file (blob + metadata) of a chain ``model``, or None when the
    model is not a version 1 chain (the blob is :func:`mcu_dc.fuzz.corpus.v1_blob`'s)."""
    from mcu_dc.core.model_file import CompressedModel
    from mcu_dc.fuzz.corpus import v1_blob

    blob = v1_blob(model)
    if blob is None:
        return None
    meta = dict(
        name=model.name, layer_names=[op.name for op in model.layers], input_scale=model.input_scale,
        output_scale=model.output_scale, output_zp=model.output_zp, task=model.task,
    )  # fmt: skip
    return CompressedModel(meta=meta, blob=blob).to_bytes()  # decoding it checks it


def _mcudc_seeds(seed: int) -> dict[str, bytes]:
    from mcu_dc.core.model_file import CompressedModel
    from mcu_dc.core.ops import REGISTRY
    from mcu_dc.core.qmath import Encoding
    from mcu_dc.core.random_models import random_graph, random_model

    out: dict[str, bytes] = {}
    seen: set[tuple[str, str]] = set()
    base = 1000 * seed
    for i in range(80):  # small graphs until every op and both encodings are in
        m = random_graph(base + i, max_ops=4, max_dim=6, max_channels=4)
        data = CompressedModel(m).to_bytes()
        new = {(op.op.name, Encoding(getattr(op, "encoding", 0)).name) for op in m.layers} - seen
        if len(data) <= 3000 and new:
            out[f"v2-graph-{base + i}.mcudc"] = data
            seen |= new
        if {code.name for code in REGISTRY} <= {s[0] for s in seen} and len(out) >= 8:
            break
    n_v1 = 0
    for i in range(40):  # chains, as version 2 and (those version 1 can hold) version 1 files
        m = random_model(base + i, max_dim=5)
        if i < 4:
            out[f"v2-chain-{base + i}.mcudc"] = CompressedModel(m).to_bytes()
        v1 = v1_file(m)
        if v1 is not None:
            out[f"v1-chain-{base + i}.mcudc"] = v1
            n_v1 += 1
        if n_v1 >= 4 and i >= 3:
            break
    return out


def _idx_bytes(a: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return head + a.astype(np.uint8).tobytes()


def _idx_seeds(seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    arrays = {
        "labels": rng.integers(0, 10, 10, dtype=np.uint8),
        "images": rng.integers(0, 256, (4, 5, 5), dtype=np.uint8),
        "table": rng.integers(0, 256, (3, 7), dtype=np.uint8),
        "empty": np.zeros((0, 3), dtype=np.uint8),
    }
    out: dict[str, bytes] = {}
    for name, a in arrays.items():
        raw = _idx_bytes(a)
        out[f"{name}.idx"] = raw
        out[f"{name}.idx.gz"] = gzip.compress(raw, mtime=0)
    return out


def _npz_seeds(seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    u8 = lambda *s: rng.integers(0, 256, s, dtype=np.uint8)  # noqa: E731
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    sets: dict[str, dict[str, Any]] = {
        "nchw-classification": dict(
            x_train=u8(6, 1, 4, 4), y_train=np.arange(6) % 3, x_test=u8(3, 1, 4, 4), y_test=np.arange(3) % 3,
            class_names=np.array(["a", "b", "c"]), num_classes=np.array(3),
        ),
        "nhwc-layout": dict(
            x_train=u8(4, 3, 3, 3), y_train=np.arange(4) % 2, x_test=u8(2, 3, 3, 3), y_test=np.arange(2) % 2,
            layout=np.array("nhwc"), input_scale=np.array(0.5),
        ),
        "features-regression": dict(
            x_train=np.asfortranarray(f32(5, 4)), y_train=f32(5, 2), x_test=f32(2, 4), y_test=f32(2, 2),
            task=np.array("regression"),
        ),
        "map-classification": dict(
            x_train=f32(4, 3, 2), y_train=(np.arange(4) % 2)[:, None], x_test=f32(2, 3, 2),
            y_test=np.array([[1], [0]], dtype=np.int32), task=np.array(b"classification"),
        ),
        "reconstruction": dict(
            x_train=f32(4, 6), x_test=f32(3, 6), anomaly_test=np.array([0, 1, 0]),
            task=np.array("reconstruction"),
        ),
        "vectors-bool": dict(
            x_train=f32(5).astype(np.float64), y_train=np.arange(5) % 2 == 0,
            x_test=f32(2).astype(np.float16), y_test=np.array([True, False]),
        ),
    }  # fmt: skip
    out: dict[str, bytes] = {}
    for i, (name, arrays) in enumerate(sets.items()):
        buf = io.BytesIO()
        (np.savez_compressed if i % 2 else np.savez)(buf, **arrays)
        out[f"{name}.npz"] = buf.getvalue()
    return out


def seed_inputs(target: str, seed: int = 1) -> dict[str, bytes]:
    """The generated seed corpus of ``target``: file name -> bytes (deterministic for a seed)."""
    if target not in TARGETS:
        raise ValueError(f"unknown fuzz target {target!r}; one of {', '.join(TARGETS)}")
    if target.startswith("mcudc"):
        return _mcudc_seeds(seed)
    return _idx_seeds(seed) if target == "idx" else _npz_seeds(seed)


def write_seed_corpus(target: str, directory: Path, seed: int = 1) -> list[Path]:
    """Write ``target``'s generated seed inputs into ``directory`` (created); return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in seed_inputs(target, seed).items():
        p = directory / name
        p.write_bytes(data)
        paths.append(p)
    return paths


def write_dictionary(target: str, path: Path) -> Path:
    """A libFuzzer ``-dict`` file of ``target``'s magic values, field names and awkward values."""
    lines = []
    for i, tok in enumerate(_DICT[target]):
        esc = "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else f"\\x{c:02x}" for c in tok)
        lines.append(f'kw{i}="{esc}"')
    path.write_text("\n".join(lines) + "\n")
    return path


# =============================================================================== CLI


def _instrument(prefixes: Sequence[str]) -> int:
    """Add atheris coverage (and comparison) instrumentation to every loaded function of those modules."""
    import gc
    import types

    import atheris

    n = 0
    for obj in gc.get_objects():
        if not isinstance(obj, types.FunctionType):
            continue
        mod = getattr(obj, "__module__", None) or ""
        if mod.startswith("mcu_dc.fuzz") or not any(mod == p or mod.startswith(p + ".") for p in prefixes):
            continue
        atheris.instrument_func(obj)
        n += 1
    return n


def _import_readers(target: str) -> None:
    """Import everything the target's reader runs, so it is instrumented before fuzzing starts."""
    import mcu_dc.core.blob
    import mcu_dc.core.model_file
    import mcu_dc.core.planner
    import mcu_dc.core.simulator
    import mcu_dc.data.idx
    import mcu_dc.data.npz  # noqa: F401


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m mcu_dc.fuzz.pyreaders",
        description="Fuzz a Python reader with atheris (libFuzzer); other arguments go to libFuzzer.",
        epilog="Replay a finding: python -m mcu_dc.fuzz.pyreaders --target T ARTIFACT_FILE...",
    )
    ap.add_argument("--target", choices=TARGETS, required=True)
    ap.add_argument("--runs", type=int, default=None, help="executions, then stop (libFuzzer -runs)")
    ap.add_argument("--seed", type=int, default=1, help="libFuzzer -seed, and the seed corpus's seed")
    ap.add_argument("--corpus", type=Path, default=None, help="corpus dir (seeded when empty)")
    ap.add_argument("--artifacts", type=Path, default=None, help="where crash/timeout/oom inputs go")
    args, rest = ap.parse_known_args(argv)
    import atheris

    replay = [r for r in rest if not r.startswith("-")]
    lf = [sys.argv[0] if argv is None else "pyreaders"]
    if args.runs is not None:
        lf.append(f"-runs={args.runs}")
    lf.append(f"-seed={args.seed}")
    if not any(r.startswith("-timeout=") for r in rest):
        lf.append(f"-timeout={DEFAULT_TIMEOUT_PER_INPUT_S}")
    if args.artifacts is not None:
        args.artifacts.mkdir(parents=True, exist_ok=True)
        lf.append(f"-artifact_prefix={args.artifacts}{os.sep}")
    if not replay:
        corpus = args.corpus or Path(tempfile.mkdtemp(prefix=f"pyfuzz-{args.target}-"))
        if not corpus.is_dir() or not any(corpus.iterdir()):
            write_seed_corpus(args.target, corpus, args.seed)
        if not any(r.startswith("-dict=") for r in rest):
            lf.append(f"-dict={write_dictionary(args.target, corpus.parent / f'{corpus.name}.dict')}")
        lf.append("-print_final_stats=1")
        lf.append(str(corpus))
    lf += rest
    _import_readers(args.target)
    n = _instrument(_INSTRUMENT[args.target])
    print(f"INFO: pyreaders: target {args.target}, {n} functions instrumented", file=sys.stderr, flush=True)
    kwargs: dict[str, Any] = {}
    if args.target == "npz":
        kwargs["custom_mutator"] = _npz_mutator
    elif args.target == "mcudc":
        kwargs["custom_mutator"] = _mcudc_mutator
    atheris.Setup(lf, one_input(args.target), **kwargs)
    atheris.Fuzz()
    return 0


# =============================================================================== Python API


@dataclass
class PyFuzzResult:
    """One fuzzer run: what libFuzzer reported at the end."""

    target: str
    executions: int
    seconds: float
    coverage_edges: int
    corpus_size: int
    findings: list[str] = field(default_factory=list)  # "crash-...: TypeError: ...", one per finding
    exit_code: int = 0

    @property
    def exec_per_s(self) -> float:
        return self.executions / self.seconds if self.seconds > 0 else 0.0


_RATE = re.compile(r"^stat::average_exec_per_sec: (\d+)", re.M)
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_PY_EXC = re.compile(r"=== Uncaught Python exception: ===\s*\n(.+)")
_LF_ERROR = re.compile(r"ERROR: libFuzzer: (.+)")


def parse_output(target: str, text: str, exit_code: int, wall_s: float) -> PyFuzzResult:
    """A :class:`PyFuzzResult` from libFuzzer's output (``-print_final_stats=1``)."""
    from mcu_dc.fuzz.libfuzzer import read_stats

    st = read_stats(text)
    executions = st.executions
    rate = _RATE.search(text)
    if rate and int(rate.group(1)) > 0 and executions:
        seconds = executions / int(rate.group(1))
    elif st.done_seconds:
        seconds = float(st.done_seconds)
    else:
        seconds = wall_s
    why = _PY_EXC.search(text)
    reason = why.group(1).strip() if why else None
    if reason is None:
        errors = [e for e in _LF_ERROR.findall(text) if "fuzz target exited" not in e]
        reason = errors[0].strip() if errors else None
    findings = [f"{Path(p).name}: {reason or 'see the log'}" for p in _ARTIFACT.findall(text)]
    if not findings and reason is not None:
        findings.append(reason)
    return PyFuzzResult(
        target=target,
        executions=executions,
        seconds=round(seconds, 3),
        coverage_edges=st.edges,
        corpus_size=st.corpus,
        findings=findings,
        exit_code=exit_code,
    )


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode("utf-8", "replace")


def run_python_fuzzer(target: str, runs: int, seed: int, work_dir: Path, timeout_s: float) -> PyFuzzResult:
    """Fuzz ``target`` for ``runs`` executions (libFuzzer ``-seed`` ``seed``) in a subprocess.

    The corpus (seeded when empty) and any finding's input go under ``work_dir``
    (``corpus-<target>``, ``artifacts-<target>``). A finding makes libFuzzer exit non-zero: that
    is a result (``findings``, ``exit_code``), not an error; so is running past ``timeout_s``.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown fuzz target {target!r}; one of {', '.join(TARGETS)}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "mcu_dc.fuzz.pyreaders", "--target", target, "--runs", str(runs),
        "--seed", str(seed), "--corpus", str(work_dir / f"corpus-{target}"),
        "--artifacts", str(work_dir / f"artifacts-{target}"),
    ]  # fmt: skip
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, check=False, timeout=timeout_s, env=env, cwd=work_dir)
    except subprocess.TimeoutExpired as exc:
        text = _text(exc.stdout) + _text(exc.stderr)
        res = parse_output(target, text, -1, time.monotonic() - t0)
        res.findings.append(f"the fuzzer did not finish {runs} runs within {timeout_s:g} s")
        return res
    text = _text(proc.stdout) + _text(proc.stderr)
    (work_dir / f"{target}.log").write_text(text)
    return parse_output(target, text, proc.returncode, time.monotonic() - t0)


if __name__ == "__main__":
    sys.exit(main())
