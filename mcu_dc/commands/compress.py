"""``mcu-dc compress``: Deep-compress a model on a dataset and write the .mcudc file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mcu_dc.commands.kernel_options import add_conv_kernel_argument
from mcu_dc.progress import add_quiet_argument, settings_from_args


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compress",
        help="prune, quantize and Huffman-code a PyTorch model into a .mcudc file",
        description="Deep Compression (prune -> trained quantization -> Huffman) of a model trained on a "
        "dataset; writes the .mcudc model file and prints the compression report with the task's metric "
        "after each stage (accuracy for a classifier; MSE, and AUC for an autoencoder with anomaly labels). "
        "The task is the dataset's unless the config sets task = 'reconstruction' (an autoencoder of the "
        "dataset's inputs). Deep Compression starts from a trained network: pass your trained weights "
        "with --weights (dense training is then skipped), or let mcu_dc train the dense model first "
        "(optionally cached with --pretrained).",
    )
    p.add_argument(
        "--model",
        required=True,
        help="lenet300, lenet5, resnet20|resnet32|resnet44|resnet56 (He et al.'s CIFAR ResNets, RGB "
        "inputs normalized with the ImageNet mean/std), the MLPerf Tiny references resnet8|dscnn|"
        "mobilenet_v1_025|fc_autoencoder (with their reference weights from the shared data folder; "
        "--weights also takes their .h5/.tflite), or path/to/file.py:factory (a function returning "
        "your torch.nn.Module)",
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="mnist, fashion-mnist, digits, cifar10, or path/to/data.npz (your own data: arrays x_train, "
        "y_train, x_test, y_test)",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset's files")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML settings (mcu_dc/compression/config.py) laid over the model's recipe for built-in "
        "networks, else over the dataset's defaults: keys the file leaves out keep those values",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", type=Path, required=True, help="the .mcudc file to write")
    p.add_argument("--name", default=None, help="model name (C symbol prefix); default from --model")
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="YOUR trained weights: a PyTorch state dict of the --model (torch.save(model.state_dict(), "
        "FILE), or a checkpoint holding one under 'state_dict', 'model' or 'model_state_dict'; a "
        "'module.' prefix is stripped). Loaded before compression; dense training is skipped. Read-only",
    )
    p.add_argument(
        "--pretrained",
        type=Path,
        default=None,
        help="a CACHE that mcu_dc writes itself: if FILE exists, its dense weights (of the captured graph) "
        "are loaded; otherwise the dense model is trained and saved there for the next run. Not for "
        "weights trained elsewhere: use --weights for those",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="the recipe's short version (an epoch or two per stage; for the CIFAR ResNets 5,000 training "
        "images, 1,000 validation and 1,000 test images): a CPU-sized smoke run",
    )
    p.add_argument(
        "--train-subset",
        type=int,
        default=None,
        metavar="N",
        help="train and calibrate on N random training samples (overrides the config's train_subset)",
    )
    p.add_argument(
        "--test-subset",
        type=int,
        default=None,
        metavar="N",
        help="measure on the first N test samples (overrides the config's test_subset)",
    )
    p.add_argument(
        "--objective",
        choices=["size", "speed", "balanced"],
        default=None,
        help="each weight op's encoding (overrides the config's objective; default size): size = the "
        "smallest (Huffman-coded sparse, or column-sparse FC where smaller), speed = the fastest on a "
        "Cortex-M4 (column-sparse FC layers, which skip zero inputs), balanced = the fastest within "
        "--slack of the smallest. The weights are the same either way",
    )
    p.add_argument(
        "--slack",
        type=float,
        default=None,
        help="balanced: how much larger than the smallest blob the model may get (default 0.05 = 5 %%)",
    )
    p.add_argument(
        "--flash-tables",
        action="store_true",
        help="keep Huffman symbol lists and lookup tables in flash instead of building the joint code's "
        "decode table in up to 8 KB of arena scratch (config: ram_tables = false): no extra RAM, "
        "slower and a little larger",
    )
    add_conv_kernel_argument(p)
    p.add_argument(
        "--plots", type=Path, default=None, help="write PNGs and sensitivity.json into this folder"
    )
    p.add_argument(
        "--distill",
        action="store_true",
        help="knowledge distillation: the retraining stages (prune retraining, centroid fine-tuning) also "
        "learn from the dense model's softened outputs (the config's [distill] table: temperature, alpha, "
        "stages; this flag sets enabled = true)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of Markdown")
    add_quiet_argument(p, what="and no stage lines")
    p.set_defaults(func=run)


def _default_name(spec: str) -> str:
    base = Path(spec.split(":")[-1] if ":" in spec else spec).stem
    return "".join(ch if ch.isalnum() else "_" for ch in base).strip("_") or "model"


def choose_config(args: argparse.Namespace, train_set: Any) -> Any:
    """The built-in model's recipe, else defaults for the dataset; a --config file's keys override
    them (keys it leaves out keep the recipe's values); then the CLI overrides."""
    from mcu_dc.compression.config import CIFAR_RESNETS, load_config
    from mcu_dc.errors import ConfigError

    if args.config and args.quick:
        raise ConfigError(
            "--quick shortens a built-in model's recipe, but --config was given; set the epochs and "
            "train_subset in the config file instead"
        )
    if not args.config and args.model in CIFAR_RESNETS and args.weights is None and args.pretrained is None:
        raise ConfigError(
            f"the {args.model} recipe starts from trained weights: pass --weights FILE (He et al.'s "
            f"CIFAR-10 weights are in ../shared/data/cifar10_resnets/, e.g. resnet20-12fca82f.th), or "
            "--config with a [dense] section to train it from scratch here (about 200 epochs: hours on "
            "a GPU, days on a CPU)"
        )
    cfg = _base_config(args, train_set)
    if args.config:
        cfg = load_config(args.config, cfg)
    if args.train_subset is not None:
        cfg.train_subset = args.train_subset
    if args.test_subset is not None:
        cfg.test_subset = args.test_subset
    if getattr(args, "objective", None) is not None:
        cfg.objective = args.objective
    if getattr(args, "slack", None) is not None:
        cfg.slack = args.slack
    if getattr(args, "flash_tables", False):
        cfg.ram_tables = False
    if getattr(args, "conv_kernel", None) is not None:
        cfg.conv_kernel = args.conv_kernel
    if getattr(args, "distill", False):
        cfg.distill.enabled = True
    cfg.validate()
    return cfg


def _base_config(args: argparse.Namespace, train_set: Any) -> Any:
    """What a run without --config uses: the model's tuned recipe where there is one for this
    dataset, else the dataset's defaults (shortened by --quick)."""
    from mcu_dc.compression.config import CIFAR_RESNETS, default_config, recipe

    dataset = str(args.dataset)
    if (
        args.model in CIFAR_RESNETS
        or (args.model == "resnet8" and dataset == "cifar10")  # from the MLPerf Tiny reference weights
        or (args.model in ("lenet300", "lenet5") and dataset in ("mnist", "fashion-mnist"))
    ):
        return recipe(args.model, quick=args.quick)  # what the benchmarks measure
    cfg = default_config(dataset, train_set)
    if args.quick:
        cfg.dense.epochs = min(cfg.dense.epochs, 2)
        cfg.prune.rounds = 1
        cfg.prune.retrain.epochs = 1
        cfg.finetune.epochs = 1
    return cfg


def run(args: argparse.Namespace) -> int:
    """Compress and write the model; under ``torchrun`` every rank trains its share of each batch
    and only rank 0 writes and prints (docs/distributed.md)."""
    from mcu_dc.compression import distributed

    try:
        return _run(args)
    finally:
        distributed.shutdown()


def _run(args: argparse.Namespace) -> int:
    from mcu_dc.compression import distributed
    from mcu_dc.compression.models import build_model
    from mcu_dc.compression.pipeline import run_pipeline
    from mcu_dc.compression.report import to_json, to_markdown
    from mcu_dc.compression.seeding import seed_everything
    from mcu_dc.data.datasets import load_train_test

    train_set, test_set = load_train_test(args.dataset, args.data_dir)
    cfg = choose_config(args, train_set)
    seed_everything(cfg.seed)  # the model's initial weights are random too
    model = build_model(args.model, train_set.input_shape, train_set.num_classes)

    main_rank = distributed.is_main()

    def say(msg: str) -> None:
        if not args.quiet and main_rank:
            print(f"mcu-dc compress: {msg}", file=sys.stderr, flush=True)

    cm, art = run_pipeline(
        model,
        train_set,
        test_set,
        cfg,
        device=args.device,
        name=args.name or _default_name(args.model),
        pretrained=args.pretrained,
        weights=args.weights,
        progress=settings_from_args(args),
        log=say,
    )
    if not main_rank:  # the same model as rank 0's; rank 0 writes the file and the report
        return 0
    cm.save(args.out)
    say(f"wrote {args.out} ({len(cm.blob)} bytes of device blob)")
    if args.plots:
        from mcu_dc.compression.plots import write_plots

        for f in write_plots(art, args.plots):
            say(f"wrote {f}")
    rep = dict(cm.meta["report"])
    rep["timings_s"] = {k: round(v, 3) for k, v in art.timings.items()}  # this run's, not the file's
    print(to_json(_with_metrics(rep, cm.meta)) if args.json else _markdown(rep, cm.meta, to_markdown))
    return 0


def _with_metrics(rep: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The report with the task, every stage's metrics (kept as they are if it has them), where the
    dense weights came from and the input normalization."""
    rep.setdefault("task", meta.get("task", "classification"))
    rep.setdefault("metrics", meta.get("metrics", {}))
    for key in ("dense_weights", "input_norm", "distill"):
        if key in meta:
            rep.setdefault(key, meta[key])
    return rep


def provenance_lines(meta: dict[str, Any]) -> list[str]:
    """One line on where the dense weights came from, one on the input normalization (if any)."""
    lines = []
    dw = meta.get("dense_weights")
    if dw:
        src = str(dw.get("source"))
        if src == "weights":
            lines.append(f"Dense weights: loaded from `{dw.get('path')}` (sha256 `{dw.get('sha256')}`).")
        elif src == "pretrained cache":
            lines.append(f"Dense weights: loaded from the --pretrained cache `{dw.get('path')}`.")
        else:
            lines.append("Dense weights: trained here (dense stage).")
    norm = meta.get("input_norm")
    if norm:
        lines.append(
            f"Input: images normalized per channel, mean {norm['mean']}, std {norm['std']}; the device "
            "takes int8 features (mcu-dc simulate and verify normalize raw images the same way)."
        )
    kd = meta.get("distill")
    if kd:
        lines.append(
            f"Distillation: the {' and '.join(kd['stages']) or 'no'} stage(s) learned from the dense model "
            f"(temperature {kd['temperature']}, alpha {kd['alpha']})."
        )
    return lines


def _markdown(rep: dict[str, Any], meta: dict[str, Any], to_markdown: Any) -> str:
    """The report as Markdown; a regressor's or autoencoder's metrics table is added when the
    report itself does not carry the metrics."""
    from mcu_dc.data.metrics import metrics_markdown

    text = str(to_markdown(rep))
    task = str(meta.get("task", "classification"))
    if "metrics" not in rep and task != "classification":
        text += "\n" + metrics_markdown(task, meta.get("metrics", {}))
    lines = provenance_lines(meta)
    return text + ("\n" + "\n".join(lines) + "\n" if lines else "")
