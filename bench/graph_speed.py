"""Graph networks on the Cortex-M4: the gather convolution against the scatter kernels and TFLM + CMSIS-NN.

For each committed graph model (ResNet-8 and ResNet-20 on CIFAR-10, the MLPerf Tiny DS-CNN and
MobileNetV1-0.25), the same weights and encodings run with every CONV2D on the scatter kernels and
on the gather kernel (``--conv-kernel``), and once more re-encoded by ``mcu-dc encode --objective
speed`` (gather): whole-firmware instructions per inference under QEMU ``-icount shift=0`` on
``qemu-mps2-an386`` (Cortex-M4) and ``qemu-mps2-an385`` (Cortex-M3: no DSP, the plain loops),
every output checked bit-exact against the simulator; blob bytes against the int8 ``.tflite``;
linked flash and RAM. Inputs: the first ``--n`` CIFAR-10 test images; the MLPerf models without
their datasets here get random inputs of their input kind (instruction counts barely depend on
the values).

Per layer (ResNet-8, the M4, gather): the model cut after each op and differenced, beside the cost
model (mcu_dc/core/objective.py); ``--fit`` refits the gather constants to those layers by least
squares and prints them.

Writes ``bench/results/graph_speed.{json,md}`` (the md starts with the command).

    python bench/graph_speed.py [--n 5] [--data-dir DIR] [--fit]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from kernel_speed import measure, prefix  # noqa: E402

from mcu_dc.commands.simulate import for_model  # noqa: E402
from mcu_dc.core import objective as O  # noqa: E402
from mcu_dc.core.ir import IntegerModel  # noqa: E402
from mcu_dc.core.model_file import CompressedModel, load  # noqa: E402
from mcu_dc.core.ops import spec_of  # noqa: E402
from mcu_dc.core.qmath import Encoding, InputKind, Op  # noqa: E402
from mcu_dc.data.datasets import load_dataset  # noqa: E402
from mcu_dc.fileio import write_text_atomic  # noqa: E402

RESULTS = ROOT / "bench" / "results"
M4, M3 = "qemu-mps2-an386", "qemu-mps2-an385"

# (label, file, dataset or None, TFLM + CMSIS-NN instructions on mps2-an386 (issue 10) or None,
#  int8 .tflite bytes or None)
MODELS: tuple[tuple[str, str, str | None, int | None, int | None], ...] = (
    ("ResNet-8 (4-bit, 59.7 % kept)", "resnet8_cifar10_small.mcudc", "cifar10", 29_864_177, 98_496),
    ("ResNet-8 (5-bit, 69.6 % kept)", "resnet8_cifar10_joint.mcudc", "cifar10", 29_864_177, 98_496),
    ("ResNet-20 (DQC paper's CIFAR net)", "resnet20_cifar10_joint.mcudc", "cifar10", None, None),
    ("DS-CNN (MLPerf KWS, 5-bit, no pruning)", "mlperf_dscnn.mcudc", None, 7_700_726, 53_936),
    ("MobileNetV1-0.25 (MLPerf VWW, 5-bit, no pruning)", "mlperf_mobilenet_v1_025.mcudc", None, 24_104_074,
     333_288),
)  # fmt: skip
PER_LAYER = ("resnet8_cifar10_small.mcudc", "resnet8_cifar10_joint.mcudc")


def _say(msg: str) -> None:
    print(f"[graph_speed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def inputs(cm: CompressedModel, dataset: str | None, n: int, data_dir: str | None) -> np.ndarray:
    model = cm.model
    if dataset is not None:  # as the model takes it (its input normalization)
        return np.asarray(for_model(cm, load_dataset(dataset, "test", data_dir), n, dataset).x)
    rng = np.random.default_rng(0)
    if model.input_kind == InputKind.UINT8:
        return rng.integers(0, 256, size=(n, *model.input_shape)).astype(np.uint8)
    return rng.integers(-128, 128, size=(n, *model.input_shape)).astype(np.int8)


def kernel(model: IntegerModel, conv_kernel: str) -> IntegerModel:
    """``model`` with every CONV2D on ``conv_kernel``, each weight op keeping its encoding (re-packed: a
    HUFFMAN_JOINT op takes its smallest run width and, on the gather kernel, a compact section whose
    decode table the kernel builds in scratch)."""
    same = {i: Encoding(op.encoding) for i, op in enumerate(model.layers) if spec_of(op).has_weights}
    flipped = O.with_encodings(model, {}, conv_kernel=conv_kernel)
    return O.with_encodings(flipped, same, conv_kernel=conv_kernel)


def predicted(model: IntegerModel) -> int:
    return sum(
        O.predict_instructions(op, Encoding(op.encoding)) for op in model.layers if spec_of(op).has_weights
    )


def variant_models(cm: CompressedModel) -> list[tuple[str, IntegerModel]]:
    speed, _ = O.choose(cm.model, "speed", conv_kernel="gather")
    return [
        ("scatter (encodings as committed)", kernel(cm.model, "scatter")),
        ("gather (the same encodings)", kernel(cm.model, "gather")),
        ("objective speed + gather", speed),
    ]


def add_predictions(data: dict[str, Any]) -> None:
    """The cost model's predictions beside the measurements, recomputed with the current constants."""
    for m in data["models"]:
        models = dict(variant_models(load(ROOT / m["file"])))
        for v in m["variants"]:
            v["predicted_m4"] = predicted(models[v["variant"]])
    for pl in data.get("per_layer", []):
        model = kernel(load(ROOT / pl["file"]).model, "gather")
        for r in pl["layers"]:
            ops = [model.layers[j] for j in r["ops"] if spec_of(model.layers[j]).has_weights]
            r["predicted"] = sum(O.predict_instructions(o, Encoding(o.encoding)) for o in ops)


def run_model(entry: tuple[Any, ...], n: int, data_dir: str | None, work: Path) -> dict[str, Any]:
    label, fname, dataset, tflm, tflite = entry
    cm = load(RESULTS / fname)
    x = inputs(cm, dataset, n, data_dir)
    macs = sum(int(spec_of(op).macs(op)) for op in cm.model.layers)
    out: dict[str, Any] = {"label": label, "file": f"bench/results/{fname}", "dataset": dataset, "tflm": tflm,
                           "tflite_bytes": tflite, "kept_macs": macs, "variants": []}  # fmt: skip
    for name, model in variant_models(cm):
        c = CompressedModel(model, {"name": f"{cm.name}"})
        row: dict[str, Any] = {"variant": name, "blob_bytes": len(c.blob), "arena": int(model.arena_bytes()),
                               "predicted_m4": predicted(model), "boards": {}}  # fmt: skip
        for board in (M4, M3):
            _say(f"{label}: {name} on {board}")
            row["boards"][board] = measure(c, board, x, work)
        out["variants"].append(row)
    return out


def per_layer(fname: str, n: int, data_dir: str | None, work: Path) -> dict[str, Any]:
    """Each op's M4 instructions with the gather kernel: the model cut after it, minus the cut before. A
    cut that would leave a branch dangling (after a shortcut conv) is skipped: its op is measured
    together with the next (``ops`` lists them)."""
    from mcu_dc.errors import ConfigError

    cm = load(RESULTS / fname)
    model = kernel(cm.model, "gather")
    x = inputs(cm, "cifar10", n, data_dir)
    rows: list[dict[str, Any]] = []
    prev, pending = 0.0, []
    for i in range(len(model.layers)):
        pending.append(i)
        try:
            cut = prefix(model, i)
        except ConfigError:
            continue  # measured with the next op
        _say(f"per layer ({fname}): ops {pending}")
        med = float(measure(CompressedModel(cut, {"name": f"r8_{i}"}), M4, x, work)["instructions_median"])
        ops = [model.layers[j] for j in pending]
        weight_ops = [o for o in ops if spec_of(o).has_weights]
        rows.append({
            "ops": pending, "name": " + ".join(o.name for o in ops),
            "type": " + ".join(Op(o.op).name for o in ops), "layer": med - prev, "cumulative": med,
            "predicted": sum(O.predict_instructions(o, Encoding(o.encoding)) for o in weight_ops),
            "kept_macs": sum(int(spec_of(o).macs(o)) for o in ops),
            "gather": all(int(getattr(o, "gather", 0)) for o in weight_ops) and bool(weight_ops),
        })  # fmt: skip
        prev, pending = med, []
    return {"file": f"bench/results/{fname}", "layers": rows}


def fit(runs: list[tuple[list[dict[str, Any]], IntegerModel]]) -> dict[str, float]:
    """Least-squares gather constants (the blocks' scale, per position, per kept weight; the blocks' costs are
    counted from the disassembly) over the measured rows that are gather convs alone (the other
    constants held); each model's first row also carries the firmware's fixed cost, so it is left out."""
    c = O.M4_COSTS
    keep = ("gather_block_scale", "per_gather_position", "per_gather_tap")
    zero = O.KernelCosts(**{**c.__dict__, **dict.fromkeys(keep, 0.0)})
    a, b = [], []
    for layers, model in runs:
        for r in layers[1:]:
            ops = [model.layers[j] for j in r["ops"]]
            if not r["gather"] or not all(spec_of(op).has_weights for op in ops):
                continue
            feats, rest = np.zeros(len(keep)), 0.0
            for op in ops:
                enc = Encoding(op.encoding)
                base = O.predict_instructions(op, enc, costs=zero)
                rest += base
                for k, name in enumerate(keep):  # the work each constant multiplies
                    unit = O.KernelCosts(**{**zero.__dict__, name: 1.0})
                    feats[k] += O.predict_instructions(op, enc, costs=unit) - base
            a.append(feats)
            b.append(r["layer"] - rest)
    sol, *_ = np.linalg.lstsq(np.asarray(a, float), np.asarray(b, float), rcond=None)
    return {name: float(v) for name, v in zip(keep, sol, strict=True)}


def render(data: dict[str, Any]) -> str:
    lines = [
        f"```\n{data['command']}\n```\n",
        "# Graph networks: the gather convolution on the Cortex-M4 and M3\n",
    ]
    lines.append(
        f"{data['date']}. QEMU `-icount shift=0` (one instruction per tick); each figure: the median over "
        f"{data['n']} inputs of the whole `mcu_dc_infer` call, every output bit-exact with the simulator. "
        "The same weights and encodings in the first two rows of each model (only the conv kernel differs: "
        "no byte of flash); the third re-encodes each layer for speed. TFLM + CMSIS-NN: issue 10's figures "
        "on the same board and method. Flash and RAM: the whole firmware as linked for the M4.\n"
    )
    head = ("| model | variant | blob B | vs int8 .tflite | M4 instructions | vs TFLM | per kept MAC | "
            "M3 instructions | predicted (M4 weight ops) | flash / RAM |")  # fmt: skip
    lines += [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in data["models"]:
        for v in m["variants"]:
            m4, m3 = v["boards"][M4], v["boards"][M3]
            small = f"{m['tflite_bytes'] / v['blob_bytes']:.2f}× smaller" if m["tflite_bytes"] else "—"
            head = f"| {m['label']} | {v['variant']} | {v['blob_bytes']:,} | {small} | "
            i3 = f"{m3['instructions_median']:,.0f}" if m3.get("fits") else "does not fit"
            if not m4.get("fits"):
                lines.append(head + f"does not fit ({m4['why']}) | | | {i3} | {v['predicted_m4']:,} | |")
                continue
            i4 = m4["instructions_median"]
            tflm = f"{i4 / m['tflm']:.2f}×" if m["tflm"] else "—"
            lines.append(
                head + f"{i4:,.0f} | {tflm} | {i4 / m['kept_macs']:.2f} | {i3} | {v['predicted_m4']:,} | "
                f"{m4['flash']:,} / {m4['ram']:,} |"
            )
    tflm = {m["label"].split(" (")[0]: m["tflm"] for m in data["models"] if m["tflm"]}
    lines.append("\nTFLM + CMSIS-NN (issue 10): " + ", ".join(f"{k} {v:,}" for k, v in tflm.items()) + ". "
                 "The predictions are the cost model's (mcu_dc/core/objective.py) for the weight ops alone, "
                 "recomputed at each render; the scatter kernels' conv model undercounts.\n")  # fmt: skip
    for pl in data.get("per_layer", []):
        lines.append(f"\n## Per op on the Cortex-M4, gather kernel ({pl['file']})\n")
        lines += ["| op | type | kept MACs | measured | predicted | error | per kept MAC |",
                  "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in pl["layers"]:
            if r["predicted"]:
                err = (r["predicted"] - r["layer"]) / r["layer"]
                per_mac = r["layer"] / max(r["kept_macs"], 1)
                lines.append(f"| {r['name']} | {r['type']} | {r['kept_macs']:,} | {r['layer']:,.0f} | "
                             f"{r['predicted']:,} | {err:+.0%} | {per_mac:.2f} |")  # fmt: skip
            else:
                lines.append(f"| {r['name']} | {r['type']} | | {r['layer']:,.0f} | | | |")
        lines.append("\nThe first op's figure also holds the firmware's fixed cost (input copy, model walk); "
                     "a shortcut conv is measured with the ADD after it.\n")  # fmt: skip
    if data.get("fit"):
        lines.append("\nLeast-squares gather constants on these layers: "
                     + ", ".join(f"{k} {v:.2f}" for k, v in data["fit"].items()) + ".\n")  # fmt: skip
    return "\n".join(lines)


def write(results: Path, data: dict[str, Any]) -> None:
    results.mkdir(parents=True, exist_ok=True)
    write_text_atomic(results / "graph_speed.json", json.dumps(data, indent=1, default=float) + "\n")
    write_text_atomic(results / "graph_speed.md", render(data))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5, help="inputs per run")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--models", default="", help="comma-separated file names to run (default: all)")
    ap.add_argument("--fit", action="store_true", help="refit the gather constants to the per-layer figures")
    ap.add_argument("--no-per-layer", action="store_true")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--render-only", action="store_true", help="re-render from the json, predictions anew")
    args = ap.parse_args(argv)
    if args.render_only:
        data = json.loads((args.results_dir / "graph_speed.json").read_text())
        add_predictions(data)
        write(args.results_dir, data)
        return 0
    chosen = [m for m in MODELS if not args.models or m[1] in args.models.split(",")]
    with tempfile.TemporaryDirectory(prefix="graph_speed_") as tmp:
        work = Path(tmp)
        data: dict[str, Any] = {
            "command": "python bench/graph_speed.py "
            + shlex.join(argv if argv is not None else sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d"),
            "n": args.n,
            "models": [run_model(m, args.n, args.data_dir, work) for m in chosen],
        }
        if not args.no_per_layer:
            data["per_layer"] = [per_layer(f, args.n, args.data_dir, work) for f in PER_LAYER]
            if args.fit:
                data["fit"] = fit([
                    (pl["layers"], kernel(load(RESULTS / f).model, "gather"))
                    for pl, f in zip(data["per_layer"], PER_LAYER, strict=True)
                ])  # fmt: skip
    write(args.results_dir, data)
    _say(f"wrote {args.results_dir / 'graph_speed.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
