"""Fuzzing for a fixed count: every libFuzzer harness and every Python reader target (docs/fuzzing.md).

For each C harness of ``firmware/fuzz/`` (clang, ASan + UBSan, every sanitizer fatal):
a fresh corpus seeded by generated inputs (mcu_dc/fuzz/corpus.py), ``--runs`` executions
with a fixed seed, then the final corpora replayed through a coverage build for llvm-cov's
line coverage of the runtime (model harnesses) and of the protocol parser and server
(proto harness). For each Python target (mcu_dc/fuzz/pyreaders.py, atheris):
``--py-runs`` executions. Findings are listed with their reproducer files.

Writes ``bench/results/fuzz.{json,md}``; the md starts with the exact command.

    python bench/fuzz.py [--runs 1000000] [--py-runs 1000000] [--seed 1] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcu_dc.fileio import write_text_atomic  # noqa: E402
from mcu_dc.fuzz import libfuzzer as LF  # noqa: E402

RESULTS = ROOT / "bench" / "results"
GOAL_EXECUTIONS = 1_000_000


def _say(msg: str) -> None:
    print(f"[fuzz {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_c(names: list[str], runs: int, seed: int, work: Path) -> tuple[list[dict], dict[str, list[dict]]]:
    rows: list[dict] = []
    for name in names:
        _say(f"building {name}")
        binary = LF.build_harness(name, work / "bin")
        _say(f"{name}: {runs:,} executions")
        run = LF.run_harness(binary, name, work / "corpus" / name, work / "runs", runs=runs, seed=seed)
        _say(f"{name}: {run.executions:,} executions in {run.seconds:.0f} s, {len(run.findings)} findings")
        rows.append(run.as_dict())
    coverage: dict[str, list[dict]] = {}
    model_corpora = [work / "corpus" / n for n in names if n.startswith("model")]
    if model_corpora:
        _say("coverage: replaying the model corpora")
        cov = LF.line_coverage("model", model_corpora, work / "cov", seed=seed)
        coverage["runtime (model + model-streams corpora)"] = [
            c.__dict__ | {"percent": c.percent} for c in cov
        ]
    if "proto" in names:
        _say("coverage: replaying the protocol corpus")
        cov = LF.line_coverage("proto", [work / "corpus" / "proto"], work / "cov", seed=seed)
        coverage["protocol (proto corpus)"] = [
            c.__dict__ | {"percent": c.percent} for c in cov if c.path.startswith("protocol/")
        ]
    return rows, coverage


def run_py(targets: list[str], runs: int, seed: int, work: Path) -> list[dict]:
    from mcu_dc.fuzz import pyreaders

    rows: list[dict] = []
    for target in targets:
        _say(f"python {target}: {runs:,} executions")
        res = pyreaders.run_python_fuzzer(target, runs, seed, work / "py" / target, timeout_s=4 * 3600)
        _say(
            f"python {target}: {res.executions:,} executions in {res.seconds:.0f} s, "
            f"{len(res.findings)} findings"
        )
        rows.append(res.__dict__.copy())
    return rows


def _totals(files: list[dict]) -> tuple[int, int]:
    return sum(f["lines"] for f in files), sum(f["covered"] for f in files)


def render(data: dict[str, Any]) -> str:
    out = [
        f"```\n{data['command']}\n```\n",
        "# Fuzzing: the C runtime, the protocol and the Python readers\n",
    ]
    out.append(
        f"{data['date']}, {os.cpu_count()} cores, {data['clang']}; harnesses and targets are described in "
        "docs/fuzzing.md. A finding is a crash, a sanitizer report, a fast-vs-reference disagreement, a "
        "malformed or missing protocol reply, or (Python) any exception other than `McuDcError`. "
        f"Goal: at least {GOAL_EXECUTIONS:,} executions per harness with no finding.\n"
    )
    out.append("| harness | executions | time | edges | corpus | deep | findings |")
    out.append("|---|---:|---:|---:|---:|---|---:|")
    for r in data["c"]:
        s = r["harness_stats"]
        if r["harness"] == "proto":
            deep = f"{s.get('requests', 0):,} requests answered, {s.get('results', 0):,} RESULTs checked"
        else:
            deep = (
                f"{s.get('valid', 0):,} valid blobs, {s.get('inferred', 0):,} inferences "
                f"({s.get('infer_ok', 0):,} OK) compared fast vs reference"
            )
        out.append(
            f"| C `{r['harness']}` | {r['executions']:,} | {r['seconds']:.0f} s | {r['coverage_edges']:,} | "
            f"{r['corpus_files']:,} | {deep} | {len(r['findings'])} |"
        )
    for r in data["python"]:
        out.append(
            f"| Python `{r['target']}` | {r['executions']:,} | {r['seconds']:.0f} s | "
            f"{r['coverage_edges']:,} | {r['corpus_size']:,} | reader on mutated inputs | "
            f"{len(r['findings'])} |"
        )
    findings = [f for r in data["c"] for f in r["findings"]] + [
        f for r in data["python"] for f in r["findings"]
    ]
    out.append("")
    out.append("**Findings:** " + ("none." if not findings else ""))
    out += [f"- {f}" for f in findings]
    for title, files in data["coverage"].items():
        lines, covered = _totals(files)
        pct = 100.0 * covered / lines if lines else 100.0
        out.append(f"\n## Line coverage: {title} — {covered:,} / {lines:,} lines ({pct:.1f} %)\n")
        out.append("| file | lines | covered | % |")
        out.append("|---|---:|---:|---:|")
        out += [
            f"| `firmware/{f['path']}` | {f['lines']} | {f['covered']} | {f['percent']:.1f} |"
            for f in files
            if f["lines"]
        ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=GOAL_EXECUTIONS, help="executions per C harness")
    ap.add_argument("--py-runs", type=int, default=GOAL_EXECUTIONS, help="executions per Python target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--harnesses", default=",".join(LF.HARNESSES), help="C harnesses, comma-separated")
    ap.add_argument("--py-targets", default=None, help="Python targets, comma-separated (default: all)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mcu_dc_fuzz"), help="binaries, corpora, logs")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from mcu_dc.fuzz import pyreaders

    harnesses = [h for h in args.harnesses.split(",") if h]
    targets = args.py_targets.split(",") if args.py_targets else list(pyreaders.TARGETS)
    unknown = [h for h in harnesses if h not in LF.HARNESSES] + [
        t for t in targets if t not in pyreaders.TARGETS
    ]
    if unknown:
        ap.error(
            f"unknown harness or target {unknown}; known: {list(LF.HARNESSES)}, {list(pyreaders.TARGETS)}"
        )
    if args.work.exists():
        shutil.rmtree(args.work)  # fresh corpora: the counts start from the generated seeds
    c_rows, coverage = run_c(harnesses, args.runs, args.seed, args.work)
    py_rows = run_py(targets, args.py_runs, args.seed, args.work)
    clang = subprocess.run(
        [LF.find_clang(), "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()[0]
    data = {
        "command": "python bench/fuzz.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "clang": clang,
        "c": c_rows,
        "python": py_rows,
        "coverage": coverage,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.results_dir / "fuzz.json", json.dumps(data, indent=1) + "\n")
    write_text_atomic(args.results_dir / "fuzz.md", render(data))
    _say(f"wrote {args.results_dir / 'fuzz.md'}")
    bad = [r for r in c_rows if r["findings"]] + [r for r in py_rows if r["findings"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
