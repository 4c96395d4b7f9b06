"""Bit-exact check of the C runtime against the simulator on the full MNIST test set.

For each compressed model (``.mcudc``, MNIST-shaped) this runs the 10,000 test images
through

* the bit-exact numpy simulator (integer accuracy, beside the compressed float accuracy
  the compressor recorded),
* the C runtime on the host: fast kernels (-O2), reference kernels (-O2, ``--ref``) and
  the fast kernels under ASan+UBSan, each loading the blob at run time,
* the same integer model stored DENSE_INT8 (the baseline the compressed kernels are
  measured against): blob size, host time, and that its outputs are identical too,

and writes ``bench/results/runtime_mnist.{json,md}``. Every comparison is exact equality.

    python bench/runtime_mnist.py                       # every MNIST model in bench/results/
    python bench/runtime_mnist.py --model a.mcudc --limit 1000
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcu_dc.core.ir import FC, Conv2D, Encoding  # noqa: E402
from mcu_dc.core.model_file import CompressedModel, load  # noqa: E402
from mcu_dc.core.simulator import simulate  # noqa: E402
from mcu_dc.data.datasets import load_dataset  # noqa: E402
from mcu_dc.deploy.hostbuild import build_runner, run_blob  # noqa: E402
from mcu_dc.fileio import write_text_atomic  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _dense_variant(cm: CompressedModel) -> CompressedModel:
    model = copy.deepcopy(cm.model)
    for layer in model.layers:
        if isinstance(layer, (FC, Conv2D)):
            layer.encoding = Encoding.DENSE_INT8
    return CompressedModel(model, {"name": f"{cm.name}-dense"})


def _timed_run(runner: Path, blob: Path, x: np.ndarray, out_len: int, **kw: Any) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = run_blob(runner, blob, x, out_len, timeout=1800, **kw)
    return out, time.perf_counter() - t0


def bench_model(path: Path, x: np.ndarray, labels: np.ndarray, runners: dict[str, Path], tmp: Path) -> dict:
    cm = load(path)
    out_len = cm.model.output_len
    blob = tmp / f"{path.stem}.bin"
    blob.write_bytes(cm.blob)
    dense = _dense_variant(cm)
    dense_blob = tmp / f"{path.stem}_dense.bin"
    dense_blob.write_bytes(dense.blob)

    t0 = time.perf_counter()
    sim = simulate(cm, x)
    sim_s = time.perf_counter() - t0
    acc = float(np.mean(sim.argmax(axis=1) == labels))
    runs: dict[str, dict[str, Any]] = {}
    for label, runner, kw, b in (
        ("c_fast_O2", runners["o2"], {}, blob),
        ("c_ref_O2", runners["o2"], {"ref": True}, blob),
        ("c_fast_asan_ubsan", runners["asan"], {}, blob),
        ("c_dense_int8_O2", runners["o2"], {}, dense_blob),
    ):
        out, secs = _timed_run(runner, b, x, out_len, **kw)
        runs[label] = {
            "mismatched_images": int(np.any(out != sim, axis=1).sum()),
            "equal": bool(np.array_equal(out, sim)),
            "seconds": round(secs, 3),
            "us_per_inference": round(1e6 * secs / len(x), 2),
        }
        r = runs[label]
        print(f"  {label}: equal={r['equal']} {r['us_per_inference']} us/inference", flush=True)
    recorded = cm.meta.get("accuracy") or {}
    float_acc = recorded.get("quantized", recorded.get("clustered"))
    kept = sum(int((layer.assign >= 0).sum()) for layer in cm.model.layers if isinstance(layer, (FC, Conv2D)))
    return {
        "model": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
        "name": cm.name,
        "model_hash": f"0x{cm.model_hash:08x}",
        "layers": [layer.name for layer in cm.model.layers],
        "kept_weights": kept,
        "blob_bytes": len(cm.blob),
        "dense_int8_blob_bytes": len(dense.blob),
        "arena_bytes": cm.model.arena_bytes(),
        "n": len(x),
        "simulator_accuracy": acc,
        "simulator_seconds": round(sim_s, 3),
        "compressed_float_accuracy": float_acc,
        "accuracy_drop_points": None if float_acc is None else round(100 * (float_acc - acc), 3),
        "recorded_integer_accuracy": recorded.get("integer"),
        "runs": runs,
        "all_equal": all(r["equal"] for r in runs.values()),
    }


def _markdown(cmd: str, results: list[dict], machine: str, notes: list[str]) -> str:
    lines = [
        "```",
        cmd,
        "```",
        "",
        "# C runtime vs simulator on MNIST (mcu_dc)",
        "",
        f"Machine: {machine}. Each run loads the blob at run time in the host runner "
        "(`firmware/runtime/host/mcu_dc_runner.c`, gcc -std=c99 -Wall -Wextra -Werror -pedantic). "
        "Equality is exact: every int8 output of every image.",
        "",
        *[f"{note}  " for note in notes],
        "",
        "| model | images | kept weights | blob B | dense int8 blob B | arena B | simulator acc. | "
        "compressed float acc. | drop (points) | C fast = sim | C ref = sim | ASan/UBSan = sim | "
        "dense = sim |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|:-:|:-:|",
    ]
    for r in results:
        fa = r["compressed_float_accuracy"]
        runs = r["runs"]

        def eq(k: str, runs: dict = runs) -> str:
            return "yes" if runs[k]["equal"] else f"NO ({runs[k]['mismatched_images']} images)"

        lines.append(
            f"| {Path(r['model']).stem} | {r['n']} | {r['kept_weights']} | {r['blob_bytes']} | "
            f"{r['dense_int8_blob_bytes']} | {r['arena_bytes']} | {100 * r['simulator_accuracy']:.2f} % | "
            + (f"{100 * fa:.2f} %" if fa is not None else "n/a")
            + f" | {r['accuracy_drop_points'] if r['accuracy_drop_points'] is not None else 'n/a'} | "
            f"{eq('c_fast_O2')} | {eq('c_ref_O2')} | {eq('c_fast_asan_ubsan')} | {eq('c_dense_int8_O2')} |"
        )
    lines += ["", "Host time per inference (µs, includes process I/O; x86, not the MCU):", ""]
    lines += [
        "| model | C fast -O2 | C reference -O2 | C dense int8 -O2 | simulator (numpy, batched) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        us = {k: v["us_per_inference"] for k, v in r["runs"].items()}
        sim_us = round(1e6 * r["simulator_seconds"] / r["n"], 2)
        lines.append(
            f"| {Path(r['model']).stem} | {us['c_fast_O2']} | {us['c_ref_O2']} | {us['c_dense_int8_O2']} "
            f"| {sim_us} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, action="append", default=None, help="a .mcudc file (repeatable)")
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=None, help="first N test images (default: all)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for runtime_mnist.{json,md}")
    ap.add_argument("--note", action="append", default=[], help="a line added to the report (repeatable)")
    args = ap.parse_args(argv)
    cmd = "python bench/runtime_mnist.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))

    ds = load_dataset(args.dataset, "test", args.data_dir)
    x = ds.images.reshape(len(ds), -1)
    labels = ds.labels
    if args.limit:
        x, labels = x[: args.limit], labels[: args.limit]
    models = args.model or sorted(
        p for p in RESULTS.glob("*.mcudc") if tuple(load(p).model.input_shape) == ds.input_shape
    )
    if not models:
        print(
            f"no compressed {args.dataset} model found: pass --model FILE.mcudc or run "
            "`python bench/deep_compression.py --save-models` first (it writes bench/results/*.mcudc)",
            file=sys.stderr,
        )
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="mcu_dc_bench_") as td:
        tmp = Path(td)
        print("building the host runner (-O2, and -O1 with ASan+UBSan) ...", flush=True)
        runners = {
            "o2": build_runner(tmp / "runner_o2", opt="-O2"),
            "asan": build_runner(tmp / "runner_asan", sanitize=True, opt="-O1"),
        }
        for path in models:
            print(f"{path}: {len(x)} images", flush=True)
            results.append(bench_model(Path(path).resolve(), x, labels, runners, tmp))
    machine = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    payload = {
        "command": cmd,
        "dataset": args.dataset,
        "machine": machine,
        "notes": args.note,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "runtime_mnist.json", json.dumps(payload, indent=2) + "\n")
    write_text_atomic(args.out / "runtime_mnist.md", _markdown(cmd, results, machine, args.note))
    ok = all(r["all_equal"] for r in results)
    print(f"wrote {args.out}/runtime_mnist.{{json,md}}; all equal: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
