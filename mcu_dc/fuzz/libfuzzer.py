"""Build and run the libFuzzer harnesses of ``firmware/fuzz/`` (docs/fuzzing.md).

Harnesses (clang, ``-fsanitize=fuzzer,address,undefined``, every sanitizer fatal):

* ``model``: whole-blob mutation of the runtime's validation and inference; the fast and
  reference kernels must agree on every blob the validator accepts;
* ``model-streams``: the same with a mutator that changes only coded sections and
  recomputes the CRC, so inputs reach the decoders and kernels;
* ``proto``: the serial frame parser and protocol server on a real model; every reply
  must be a well-formed frame, one per request, and every RESULT the reference output.

:func:`run_harness` runs one for a fixed number of executions and parses libFuzzer's
statistics; :func:`line_coverage` replays corpora through a coverage build and returns
llvm-cov's line counts per source file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mcu_dc.deploy.hostbuild import HostBuildSettings, compile_program
from mcu_dc.errors import BuildError, McuDcError
from mcu_dc.resources import resource_dir

CLANGS = ("clang-14", "clang")
ALSO = ("-g",)  # on top of hostbuild's -std=c99 -Wall -Wextra -Werror -pedantic
SANITIZE = ("-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all")
COVERAGE = ("-fsanitize=fuzzer", "-fprofile-instr-generate", "-fcoverage-mapping")
MAX_LEN = 8192


@dataclass(frozen=True)
class Harness:
    name: str
    source: str  # in firmware/fuzz/
    defines: tuple[str, ...] = ()
    protocol: bool = False  # links the protocol parser and server; serves the protocol model
    max_len: int = 8192  # longest input libFuzzer makes


HARNESSES: dict[str, Harness] = {
    h.name: h
    for h in (
        Harness("model", "fuzz_model.c"),
        Harness("model-streams", "fuzz_model.c", ("MCU_DC_FUZZ_STREAMS",)),
        Harness("proto", "fuzz_proto.c", protocol=True, max_len=2048),  # dozens of frames
    )
}


@dataclass
class FuzzRun:
    """What one libFuzzer run did."""

    harness: str
    runs_asked: int
    executions: int
    seconds: float
    coverage_edges: int  # libFuzzer's "cov:" (edges of the instrumented code reached)
    features: int  # "ft:"
    corpus_files: int
    findings: list[str] = field(default_factory=list)  # artifact file: first error line
    harness_stats: dict[str, int] = field(default_factory=dict)  # the harness's own counters
    exit_code: int = 0
    command: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def find_clang() -> str:
    for cc in CLANGS:
        if shutil.which(cc):
            return cc
    raise BuildError(
        "the fuzzers need clang with libFuzzer: none of "
        f"{', '.join(CLANGS)} is on PATH. On Debian/Ubuntu: "
        "apt-get install clang-14 libclang-rt-14-dev llvm-14 (scripts/setup.sh does this)"
    )


def llvm_tool(name: str) -> str:
    for tool in (f"{name}-14", name):
        if shutil.which(tool):
            return tool
    raise BuildError(f"{name} is not on PATH; install llvm-14 (apt-get install llvm-14) for coverage reports")


def _sources(h: Harness) -> tuple[list[Path], list[Path]]:
    fw = resource_dir("firmware")
    sources = sorted((fw / "runtime").glob("*.c"))
    if h.protocol:
        sources += [fw / "protocol" / "mcu_dc_proto.c", fw / "protocol" / "mcu_dc_server.c"]
    sources.append(fw / "fuzz" / h.source)
    return sources, [fw / "runtime", fw / "protocol", fw / "bsp"]


def build_harness(name: str, out_dir: Path, *, coverage: bool = False, defines: tuple[str, ...] = ()) -> Path:
    """Compile harness ``name`` into ``out_dir``; ``coverage`` builds the llvm-cov variant."""
    h = HARNESSES[name]
    sources, includes = _sources(h)
    flags = [*ALSO, *(COVERAGE if coverage else SANITIZE), *(f"-D{d}" for d in (*h.defines, *defines))]
    out = out_dir / f"fuzz-{name}{'-cov' if coverage else ''}"
    try:
        return compile_program(
            sources,
            includes,
            out,
            HostBuildSettings(cc=find_clang(), opt="-O0" if coverage else "-O1", extra_flags=flags),
        )
    except BuildError as exc:
        if "libclang_rt.fuzzer" not in str(exc):
            raise
        raise BuildError(
            f"libFuzzer's runtime is missing (apt-get install libclang-rt-14-dev): {exc}"
        ) from None


def seed_corpus(name: str, corpus_dir: Path, seed: int) -> dict[str, str]:
    """Write the harness's generated seeds into ``corpus_dir`` (if it is empty); return its environment."""
    from mcu_dc.core.blob import encode_blob
    from mcu_dc.fuzz import corpus

    env: dict[str, str] = {}
    h = HARNESSES[name]
    empty = not corpus_dir.is_dir() or not any(corpus_dir.iterdir())
    if h.protocol:
        model = corpus.proto_model(seed)
        blob = corpus_dir.parent / f"{name}-model.bin"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(encode_blob(model))
        env["MCU_DC_FUZZ_MODEL"] = str(blob)
        if empty:
            corpus.write_corpus(corpus_dir, corpus.proto_seeds(model, seed))
    elif empty:
        corpus.write_corpus(corpus_dir, corpus.model_seeds(24, seed))
    return env


_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STATS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_ARTIFACT = re.compile(r"(?:Test unit|artifact) written to (\S+)")
_HARNESS = re.compile(r"mcu_dc_fuzz: ((?:\w+=\d+ ?)+)")
_ERROR = re.compile(
    r"^(==\d+==ERROR: .*|SUMMARY: .*|mcu_dc_fuzz\w*: (?!inputs=).*|.*runtime error: .*)$", re.M
)


_UNITS = re.compile(r"stat::number_of_executed_units: (\d+)")


@dataclass(frozen=True)
class Stats:
    """libFuzzer's own figures from its output (the C harnesses' and the Python targets' alike)."""

    executions: int
    edges: int  # "cov:"
    features: int  # "ft:"
    corpus: int  # "corp:" files
    done_seconds: int | None  # "Done N runs in S second(s)", when the run ended normally


def read_stats(text: str) -> Stats:
    """The last statistics line, then the final "Done" line (or the executed-units stat) for the count."""
    lines = _STATS.findall(text)
    executions, edges, features, corpus = (int(g) for g in lines[-1]) if lines else (0, 0, 0, 0)
    done = _DONE.search(text)
    units = _UNITS.search(text)
    if done:
        executions = int(done.group(1))
    elif units:
        executions = int(units.group(1))
    return Stats(executions, edges, features, corpus, int(done.group(2)) if done else None)


def parse_output(text: str, run: FuzzRun) -> FuzzRun:
    """Fill ``run`` from libFuzzer's output (the last statistics line wins)."""
    st = read_stats(text)
    run.executions, run.coverage_edges, run.features, run.corpus_files = (
        st.executions,
        st.edges,
        st.features,
        st.corpus,
    )
    stats = _HARNESS.findall(text)
    if stats:
        run.harness_stats = {k: int(v) for k, v in (kv.split("=") for kv in stats[-1].split())}
    errors = _ERROR.findall(text)
    for m in _ARTIFACT.finditer(text):
        run.findings.append(f"{m.group(1)}: {errors[0] if errors else 'see the log'}")
    return run


def run_harness(
    binary: Path,
    name: str,
    corpus_dir: Path,
    work_dir: Path,
    *,
    runs: int,
    seed: int = 1,
    timeout_s: float = 3600.0,
    max_len: int | None = None,
    extra_args: tuple[str, ...] = (),
) -> FuzzRun:
    """Run ``binary`` for ``runs`` executions from ``corpus_dir`` (seeded if empty); log in work_dir."""
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **seed_corpus(name, corpus_dir, seed)}
    max_len = max_len or HARNESSES[name].max_len
    artifacts = work_dir / f"{name}-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(binary), f"-runs={runs}", f"-seed={seed}", f"-max_len={max_len}", "-timeout=10",
        "-rss_limit_mb=2048", "-print_final_stats=1", f"-artifact_prefix={artifacts}/", *extra_args,
        str(corpus_dir),
    ]  # fmt: skip
    log = work_dir / f"{name}.log"
    start = time.monotonic()
    try:
        with log.open("w") as f:
            proc = subprocess.run(
                cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=timeout_s, check=False
            )
    except subprocess.TimeoutExpired:
        raise McuDcError(
            f"the {name} fuzzer did not finish {runs} executions in {timeout_s:.0f} s (log: {log}); "
            "ask for fewer runs or a longer timeout"
        ) from None
    run = FuzzRun(
        name, runs, 0, time.monotonic() - start, 0, 0, 0, exit_code=proc.returncode, command=" ".join(cmd)
    )
    parse_output(log.read_text(errors="replace"), run)
    if proc.returncode != 0 and not run.findings:
        run.findings.append(f"{log}: exit {proc.returncode} without an artifact")
    return run


@dataclass(frozen=True)
class FileCoverage:
    path: str  # relative to firmware/
    lines: int
    covered: int

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.lines if self.lines else 100.0


def line_coverage(
    name: str, corpus_dirs: list[Path], work_dir: Path, *, seed: int = 1, timeout_s: float = 1800.0
) -> list[FileCoverage]:
    """Replay ``corpus_dirs`` through ``name``'s coverage build: line coverage of the firmware sources."""
    binary = build_harness(name, work_dir, coverage=True)
    raw = work_dir / f"{name}.profraw"
    merged = work_dir / f"{name}.profdata"
    env = {**os.environ, "LLVM_PROFILE_FILE": str(raw)}
    env.update(seed_corpus(name, work_dir / f"{name}-cov-seeds", seed))  # the model the corpora were made for
    cmd = [
        str(binary),
        "-runs=0",
        f"-max_len={max(MAX_LEN, HARNESSES[name].max_len)}",
        *map(str, corpus_dirs),
    ]
    subprocess.run(cmd, env=env, capture_output=True, timeout=timeout_s, check=True)
    subprocess.run([llvm_tool("llvm-profdata"), "merge", "-sparse", str(raw), "-o", str(merged)], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    proc = subprocess.run(
        [llvm_tool("llvm-cov"), "export", "-summary-only", f"-instr-profile={merged}", str(binary)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    fw = resource_dir("firmware").resolve()
    out: list[FileCoverage] = []
    for f in json.loads(proc.stdout)["data"][0]["files"]:
        path = Path(f["filename"]).resolve()
        if fw not in path.parents or path.parent.name == "fuzz":
            continue
        lines = f["summary"]["lines"]
        out.append(FileCoverage(str(path.relative_to(fw)), int(lines["count"]), int(lines["covered"])))
    return sorted(out, key=lambda c: c.path)
