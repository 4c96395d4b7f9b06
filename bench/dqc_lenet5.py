"""The DQC paper's LeNet tables (its Tables 1-3 and 9) with mcu_dc's LeNet-5 on MNIST.

Issue 11 asks to check mcu_dc's DQC against the paper (seed 003: dynamic quantization coding,
the codebook re-estimated during training so that large weights are quantized with less error;
codebooks with and without a zero entry; Softmax-loss alone, + L1, + L2) and to report its
Tables 1-3 layout for LeNet-5. Every cell starts from the same dense LeNet-5 (trained once and
cached), quantizes **every layer** to a 3-, 4- or 5-bit codebook (no pruning, as in those
tables), fine-tunes for ``--epochs`` epochs on all 60,000 training images with the cell's
loss, and reports the **integer** model's accuracy (int8 activations, the bit-exact simulator)
on all 10,000 test images, with the device blob's bytes. Alongside: Deep Compression's trained
quantization (k-means codebook, assignments fixed, centroids trained: the paper's Table 9
comparison) at the same widths.

Loss terms: ``l2`` is the optimizer's weight decay on every trained parameter (Caffe's, which
the paper's LeNet used), ``l1`` the subgradient of ``λ·Σ|w|`` on the weight layers' weights
(``TrainConfig.l1``). Results go to ``bench/results/dqc_lenet5.{json,md,png}`` after every
cell; a rerun skips cells already there (``--force`` remeasures).

    python bench/dqc_lenet5.py --threads 2
    python bench/dqc_lenet5.py --bits 5 --regs none --epochs 4      # one row, longer
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcu_dc.compression.cluster import ClusterConfig  # noqa: E402
from mcu_dc.compression.config import CompressConfig, PruneConfig, recipe  # noqa: E402
from mcu_dc.compression.models import build_model  # noqa: E402
from mcu_dc.compression.pipeline import Artifacts, dense_and_prune, finish  # noqa: E402
from mcu_dc.compression.quantize import QuantConfig  # noqa: E402
from mcu_dc.compression.train import TrainConfig  # noqa: E402
from mcu_dc.data import load_train_test  # noqa: E402
from mcu_dc.fileio import write_text_atomic  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / ".cache" / "bench"
INPUT = (1, 28, 28)
# The paper's LeNet (seed 003): bits -> (codebook without zero, with zero), per loss
PAPER = {
    "none": {3: (99.29, 99.22), 4: (99.30, 99.25), 5: (99.35, 99.32)},  # Table 1: Softmax-loss
    "l1": {3: (98.69, 99.25), 4: (99.09, 99.25), 5: (99.14, 99.27)},  # Table 2: + L1
    "l2": {3: (99.26, 99.29), 4: (99.29, 99.28), 5: (99.36, 99.28)},  # Table 3: + L2
}
PAPER_TABLE9 = {"deep_compression": 99.20, "dqc": 99.70}  # 5 bits
REG_TITLE = {
    "none": "Softmax-loss (Table 1)",
    "l1": "Softmax-loss + L1 (Table 2)",
    "l2": "Softmax-loss + L2 (Table 3)",
}


def _say(msg: str) -> None:
    print(f"[dqc_lenet5 {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def finetune_config(args: argparse.Namespace, reg: str) -> TrainConfig:
    """The LeNet-5 recipe's fine-tuning (Adam, 2-pixel shifts) with the cell's loss terms."""
    base = recipe("lenet5").finetune
    return TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        optimizer=base.optimizer,
        weight_decay=args.l2 if reg == "l2" else 0.0,
        l1=args.l1 if reg == "l1" else 0.0,
        batch_size=base.batch_size,
        augment_shift=base.augment_shift,
        seed=args.seed,
    )


def cell_config(args: argparse.Namespace, method: str, bits: int, zero: bool, reg: str) -> CompressConfig:
    mode = "dqc" if method == "dqc" else "shared"
    return CompressConfig(
        prune=PruneConfig(enabled=False),
        cluster=ClusterConfig(conv_bits=bits, fc_bits=bits, mode=mode, dqc_zero=zero and mode == "dqc"),
        finetune=finetune_config(args, reg),
        quantize=QuantConfig(auto_index_bits=True),
        val_size=0,
        test_subset=args.test_subset,
        seed=args.seed,
    )


def dense_config(args: argparse.Namespace) -> CompressConfig:
    cfg = recipe("lenet5")
    cfg.prune.enabled = False
    cfg.dense.epochs = args.dense_epochs
    cfg.val_size, cfg.train_subset, cfg.test_subset, cfg.seed = 0, 0, args.test_subset, args.seed
    return cfg


def cell_key(method: str, bits: int, zero: bool, reg: str) -> str:
    return f"{method}_{bits}b_{'zero' if zero else 'nozero'}_{reg}"


def cells(args: argparse.Namespace) -> list[tuple[str, int, bool, str]]:
    out = [("dqc", b, z, r) for r in args.regs for b in args.bits for z in (False, True)]
    if "none" in args.regs:
        out += [("deep_compression", b, False, "none") for b in args.bits]
    return out


class Results:
    """``bench/results/dqc_lenet5.json``, re-read before each write."""

    def __init__(self, results: Path, command: str) -> None:
        self.path = results / "dqc_lenet5.json"
        self.command = command

    def read(self) -> dict[str, Any]:
        if self.path.is_file():
            return json.loads(self.path.read_text())
        return {"cells": {}, "commands": []}

    def put(self, key: str | None, value: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        data = self.read()
        data.update(extra)
        if key is not None:
            data["cells"][key] = {**value, "command": self.command}
        if self.command not in data["commands"]:
            data["commands"].append(self.command)
        threads = torch.get_num_threads()
        data["machine"] = f"{platform.machine()}, {os.cpu_count()} cores (shared), {threads} torch thread(s)"
        data["torch"] = torch.__version__
        write_text_atomic(self.path, json.dumps(data, indent=1) + "\n")
        write_text_atomic(self.path.with_suffix(".md"), render(data))
        plot(data, self.path.with_suffix(".png"))
        return data


def summary(cm: Any, art: Artifacts, cfg: CompressConfig, wall_s: float) -> dict[str, Any]:
    rep = cm.meta["report"]
    return {
        "integer_pct": 100.0 * art.accuracy["integer"],
        "float_pct": {k: 100.0 * v for k, v in art.accuracy.items() if k != "integer"},
        "blob_bytes": len(cm.blob),
        "ratio": rep["original_bytes"] / len(cm.blob),
        "kept_pct": rep["kept_pct"],
        "codebook_len": {r["name"]: r["codebook_len"] for r in rep["layers"] if "codebook_len" in r},
        "n_test": int(cfg.test_subset or 10000),
        "wall_s": round(wall_s, 1),
        "model_hash": f"0x{cm.model_hash:08x}",
        "settings": {k: v for k, v in cfg.to_dict().items() if k in ("cluster", "finetune", "train_subset")},
    }


def _cell(data: dict[str, Any], key: str) -> str:
    c = data["cells"].get(key)
    return f"{c['integer_pct']:.2f} %" if c else "–"


def render(data: dict[str, Any]) -> str:
    cmds = data.get("commands", [])
    lines = ["```", *cmds, "```", "", "# The DQC paper's LeNet tables with mcu_dc's LeNet-5 (issue 11)", ""]
    dense = data.get("dense_pct")
    dense_txt = f"{dense:.2f} %" if dense is not None else "?"
    lines += [
        f"Machine: {data.get('machine', '?')}; torch {data.get('torch', '?')}. Every cell: the same dense "
        f"LeNet-5 ({data.get('dense_desc', '?')}; float test accuracy "
        f"{dense_txt}), every layer quantized to the cell's codebook "
        "(no pruning), fine-tuned with the cell's loss, then the **integer** model (int8 activations, the "
        "bit-exact simulator: what the device computes) on all 10,000 MNIST test images. Paper figures "
        "after the slash (seed 003, Tables 1-3: codebook without / with a zero entry).",
        "",
    ]
    for reg in ("none", "l1", "l2"):
        keys = [k for k in data["cells"] if k.startswith("dqc_") and k.endswith(f"_{reg}")]
        if not keys:
            continue
        lines += [
            f"## DQC, {REG_TITLE[reg]}",
            "",
            "| bits | without zero | with zero | blob bytes (without / with) |",
        ]
        lines += ["|---:|---:|---:|---:|"]
        for bits in (3, 4, 5):
            a, b = cell_key("dqc", bits, False, reg), cell_key("dqc", bits, True, reg)
            if a not in data["cells"] and b not in data["cells"]:
                continue
            pa, pb = PAPER[reg][bits]
            by = " / ".join(
                f"{data['cells'][k]['blob_bytes']:,}" if k in data["cells"] else "–" for k in (a, b)
            )
            lines.append(f"| {bits} | {_cell(data, a)} / {pa:.2f} % | {_cell(data, b)} / {pb:.2f} % | {by} |")
        lines.append("")
    dc = [cell_key("deep_compression", b, False, "none") for b in (3, 4, 5)]
    if any(k in data["cells"] for k in dc):
        lines += [
            "## Deep Compression's trained quantization vs DQC (paper Table 9: 99.20 % vs 99.70 % at 5 bits)",
            "",
            "| bits | Deep Compression (k-means, centroids trained) | DQC without zero | DQC with zero |",
            "|---:|---:|---:|---:|",
        ]
        for bits in (3, 4, 5):
            lines.append(
                f"| {bits} | {_cell(data, cell_key('deep_compression', bits, False, 'none'))} | "
                f"{_cell(data, cell_key('dqc', bits, False, 'none'))} | "
                f"{_cell(data, cell_key('dqc', bits, True, 'none'))} |"
            )
        lines.append("")
    if data.get("notes"):
        lines += ["## Reading", "", *data["notes"], ""]
    lines += ["## Settings and wall time per cell", ""]
    for k, c in sorted(data["cells"].items()):
        ft = c["settings"]["finetune"]
        fl = ", ".join(f"{s} {v:.2f} %" for s, v in c["float_pct"].items())
        lines.append(
            f"* {k}: {ft['epochs']} epoch(s) {ft['optimizer']} lr {ft['lr']}, "
            f"weight_decay {ft['weight_decay']}, l1 {ft.get('l1', 0.0)}; float {fl}; "
            f"{c['blob_bytes']:,} B ({c['ratio']:.1f}×); {c['wall_s']:.0f} s"
        )
    lines.append("")
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, reg in zip(axes, ("none", "l1", "l2"), strict=True):
        for zero, style in ((False, "o-"), (True, "s--")):
            xs = [b for b in (3, 4, 5) if cell_key("dqc", b, zero, reg) in data["cells"]]
            ys = [data["cells"][cell_key("dqc", b, zero, reg)]["integer_pct"] for b in xs]
            if xs:
                ax.plot(xs, ys, style, label=f"mcu_dc DQC {'with' if zero else 'without'} zero")
            ax.plot((3, 4, 5), [PAPER[reg][b][int(zero)] for b in (3, 4, 5)], style, alpha=0.35,
                    label=f"paper {'with' if zero else 'without'} zero")  # fmt: skip
        if reg == "none":
            xs = [b for b in (3, 4, 5) if cell_key("deep_compression", b, False, "none") in data["cells"]]
            ys = [data["cells"][cell_key("deep_compression", b, False, "none")]["integer_pct"] for b in xs]
            if xs:
                ax.plot(xs, ys, "^:", label="mcu_dc Deep Compression")
        if data.get("dense_pct") is not None:
            ax.axhline(data["dense_pct"], color="gray", lw=0.8, label="dense float")
        ax.set_title(REG_TITLE[reg])
        ax.set_xticks((3, 4, 5))
        ax.set_xlabel("bits per weight (codebook)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MNIST test accuracy, integer model (%)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", default="3,4,5")
    ap.add_argument("--regs", default="none,l1,l2", help="loss terms: none, l1, l2 (comma-separated)")
    ap.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs per cell")
    ap.add_argument("--lr", type=float, default=1e-4, help="fine-tuning learning rate (Adam, cosine)")
    ap.add_argument("--l1", type=float, default=5e-5, help="L1 strength of the + L1 cells")
    ap.add_argument("--l2", type=float, default=5e-4, help="L2 (weight decay) of the + L2 cells")
    ap.add_argument("--dense-epochs", type=int, default=10, help="epochs of the dense LeNet-5 (cached)")
    ap.add_argument("--test-subset", type=int, default=0, help="first N test images (0: all 10,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--force", action="store_true", help="remeasure cells already in the results")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--render-only", action="store_true", help="rewrite the .md and .png from the .json")
    args = ap.parse_args(argv)
    try:
        args.bits = [int(b) for b in args.bits.split(",")]
    except ValueError:
        ap.error(f"--bits {args.bits!r}: comma-separated integers, e.g. 3,4,5")
    if any(b not in (3, 4, 5) for b in args.bits):
        ap.error(f"--bits {args.bits}: the paper's tables have 3, 4 and 5 bits")
    args.regs = args.regs.split(",")
    if any(r not in PAPER for r in args.regs):
        ap.error(f"--regs {args.regs}: choose from none, l1, l2")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    res = Results(args.results_dir, "python " + " ".join(["bench/dqc_lenet5.py", *(argv or sys.argv[1:])]))
    if args.render_only:
        data = res.read()
        write_text_atomic(res.path.with_suffix(".md"), render(data))
        plot(data, res.path.with_suffix(".png"))
        return 0
    todo = [c for c in cells(args) if args.force or cell_key(*c) not in res.read()["cells"]]
    if not todo:
        _say("every cell is in the results (--force remeasures)")
        return 0
    train_set, test_set = load_train_test("mnist", args.data_dir)
    dcfg = dense_config(args)
    cache = CACHE / f"dqc_lenet5_dense{args.dense_epochs}_seed{args.seed}.pt"
    cache.parent.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    s1 = dense_and_prune(
        build_model("lenet5", INPUT), train_set, test_set, dcfg, device=args.device, pretrained=cache,
        progress=progress, say=lambda m: _say(f"dense: {m}"),
    )  # fmt: skip
    desc = (
        f"recipe: {args.dense_epochs} epochs SGD lr {dcfg.dense.lr}, weight decay {dcfg.dense.weight_decay}, "
        f"{dcfg.dense.augment_shift}-pixel shifts, all 60,000 training images"
    )
    res.put(None, {}, {"dense_pct": 100.0 * s1.art.accuracy["dense"], "dense_desc": desc})
    for k, (method, bits, zero, reg) in enumerate(todo, 1):
        key = cell_key(method, bits, zero, reg)
        _say(f"[{k}/{len(todo)}] {key}: start")
        cfg = cell_config(args, method, bits, zero, reg)
        art = Artifacts(accuracy=dict(s1.art.accuracy), sparsity=dict(s1.art.sparsity))
        t0 = time.perf_counter()
        cm = finish(
            copy.deepcopy(s1.net), model_name=f"lenet5_{key}", fit=s1.fit, train_set=train_set,
            test_set=test_set, cfg=cfg, dev=s1.dev, art=art, original_bytes=s1.original_bytes,
            progress=progress, say=lambda m, key=key: _say(f"{key}: {m}"),
        )  # fmt: skip
        rec = summary(cm, art, cfg, time.perf_counter() - t0)
        res.put(key, rec, {})
        _say(f"[{k}/{len(todo)}] {key}: {rec['integer_pct']:.2f} % integer, {rec['blob_bytes']:,} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
