"""``mcu-dc compress``: Deep-compress a model on a dataset and write the .mcudc file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compress",
        help="prune, quantize and Huffman-code a PyTorch model into a .mcudc file",
        description="Deep Compression (prune -> trained quantization -> Huffman) of a model trained on a "
        "dataset; writes the .mcudc model file and prints the compression report with the task's metric "
        "after each stage (accuracy for a classifier; MSE, and AUC for an autoencoder with anomaly labels). "
        "The task is the dataset's unless the config sets task = 'reconstruction' (an autoencoder of the "
        "dataset's inputs).",
    )
    p.add_argument("--model", required=True, help="lenet300, lenet5 or path/to/file.py:factory")
    p.add_argument("--dataset", required=True, choices=["mnist", "fashion-mnist", "digits"])
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset's idx .gz files")
    p.add_argument("--config", type=Path, default=None, help="TOML settings (mcu_dc/compression/config.py)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", type=Path, required=True, help="the .mcudc file to write")
    p.add_argument("--name", default=None, help="model name (C symbol prefix); default from --model")
    p.add_argument(
        "--pretrained",
        type=Path,
        default=None,
        help="cache of the dense weights: loaded if the file exists, else written after dense training",
    )
    p.add_argument(
        "--plots", type=Path, default=None, help="write PNGs and sensitivity.json into this folder"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of Markdown")
    p.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")
    p.set_defaults(func=run)


def _default_name(spec: str) -> str:
    base = Path(spec.split(":")[-1] if ":" in spec else spec).stem
    return "".join(ch if ch.isalnum() else "_" for ch in base).strip("_") or "model"


def run(args: argparse.Namespace) -> int:
    from mcu_dc.compression.config import default_config, load_config, recipe
    from mcu_dc.compression.models import build_model
    from mcu_dc.compression.pipeline import run_pipeline
    from mcu_dc.compression.report import to_json, to_markdown
    from mcu_dc.data.datasets import load_train_test

    if args.config:
        cfg = load_config(args.config)
    elif args.model in ("lenet300", "lenet5") and args.dataset in ("mnist", "fashion-mnist"):
        cfg = recipe(args.model)  # the tuned recipe bench/deep_compression.py measures
    else:
        cfg = default_config(args.dataset)
    train_set, test_set = load_train_test(args.dataset, args.data_dir)
    model = build_model(args.model, train_set.input_shape, train_set.num_classes)

    def say(msg: str) -> None:
        if not args.quiet:
            print(f"mcu-dc compress: {msg}", file=sys.stderr, flush=True)

    cm, art = run_pipeline(
        model,
        train_set,
        test_set,
        cfg,
        device=args.device,
        name=args.name or _default_name(args.model),
        pretrained=args.pretrained,
        progress=not args.quiet,
        log=say,
    )
    cm.save(args.out)
    say(f"wrote {args.out} ({len(cm.blob)} bytes of device blob)")
    if args.plots:
        from mcu_dc.compression.plots import write_plots

        for f in write_plots(art, args.plots):
            say(f"wrote {f}")
    rep = dict(cm.meta["report"])
    print(to_json(_with_metrics(rep, cm.meta)) if args.json else _markdown(rep, cm.meta, to_markdown))
    return 0


def _with_metrics(rep: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The report with the task and every stage's metrics (kept as they are if it has them)."""
    rep.setdefault("task", meta.get("task", "classification"))
    rep.setdefault("metrics", meta.get("metrics", {}))
    return rep


def _markdown(rep: dict[str, Any], meta: dict[str, Any], to_markdown: Any) -> str:
    """The report as Markdown; a regressor's or autoencoder's metrics table is added when the
    report itself does not carry the metrics."""
    from mcu_dc.data.metrics import metrics_markdown

    text = str(to_markdown(rep))
    task = str(meta.get("task", "classification"))
    if "metrics" not in rep and task != "classification":
        text += "\n" + metrics_markdown(task, meta.get("metrics", {}))
    return text
