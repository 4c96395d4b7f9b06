"""``mcu-dc simulate FILE --dataset NAME|FILE.npz``: the bit-exact integer model's metric on a test
set (accuracy for a classifier; MSE, MAE and NMSE for a regressor or of an autoencoder's
reconstruction). A model compressed on normalized images (``meta["input_norm"]``, e.g. the CIFAR
ResNets) gets the raw images normalized the same way before they are quantized to int8."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mcu_dc.errors import DataError
from mcu_dc.progress import ProgressSettings, add_quiet_argument, settings_from_args, track

PROGRESS_STEPS = 100  # progress updates per simulated data set (chunks of inputs)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="run a .mcudc model with the bit-exact integer simulator on a dataset",
        description="Run a compressed model with the bit-exact integer simulator (exactly what the "
        "device computes) on a dataset's test split and report its accuracy, or for an autoencoder the "
        "reconstruction error (MSE). Images are normalized as the model file records (e.g. the CIFAR "
        "ResNets' per-channel mean/std) before they are quantized to the model's int8 input.",
    )
    p.add_argument("file", type=Path, help="the .mcudc model file")
    p.add_argument(
        "--dataset",
        required=True,
        help="mnist, fashion-mnist, digits, cifar10, or path/to/data.npz (arrays x_test, y_test, ...)",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset files")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--outputs", type=Path, default=None, help="save the int8 outputs as a .npy file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_quiet_argument(p)
    p.set_defaults(func=run)


def model_task(cm: Any) -> str:
    """The task a model was compressed for (older files: classification)."""
    return str(getattr(cm.model, "task", None) or cm.meta.get("task") or "classification")


def for_model(cm: Any, ds: Any, limit: int | None, what: str) -> Any:
    """Test set ``ds`` as ``cm`` takes it: its task (an autoencoder reconstructs the images), the first
    ``limit`` samples, the model's input normalization."""
    from mcu_dc.device.verify import dataset_for_model

    ds = ds.with_task(model_task(cm))
    if limit is not None:
        ds = ds.subset(np.arange(min(limit, len(ds))))
    return dataset_for_model(ds, cm.meta, cm.model, what)


def simulate_outputs(
    models: Any, x: np.ndarray, desc: str, progress: bool | ProgressSettings
) -> list[np.ndarray]:
    """Each model's bit-exact outputs on ``x``, simulated in about :data:`PROGRESS_STEPS` chunks of
    inputs so that ``progress`` (see :mod:`mcu_dc.progress`) advances per chunk, with the ETA."""
    from mcu_dc.core.simulator import simulate

    n = len(x)
    chunk = max(32, -(-n // PROGRESS_STEPS))
    outs: list[list[np.ndarray]] = [[] for _ in models]
    with track(desc, n, unit="input", settings=progress) as bar:
        for start in range(0, n, chunk):
            part = x[start : start + chunk]
            for out, model in zip(outs, models, strict=True):
                out.append(np.asarray(simulate(model, part)))
            bar.update(len(part))
    return [np.concatenate(o) if o else simulate(m, x[:0]) for o, m in zip(outs, models, strict=True)]


def metrics_with_progress(
    model: Any, ds: Any, desc: str, progress: bool | ProgressSettings
) -> tuple[np.ndarray, dict[str, float]]:
    """:func:`mcu_dc.data.metrics.simulator_metrics` with progress per chunk of inputs."""
    from mcu_dc.data.metrics import check_input_kind, output_metrics

    check_input_kind(model, ds)
    (y,) = simulate_outputs([model], ds.simulator_inputs(), desc, progress)
    return y, output_metrics(model, y, ds)


def run(args: argparse.Namespace) -> int:
    from mcu_dc.core.model_file import load
    from mcu_dc.data.datasets import load_dataset
    from mcu_dc.data.metrics import format_metrics

    cm = load(args.file)
    task = model_task(cm)
    ds = load_dataset(args.dataset, args.split, args.data_dir)
    if task == "regression" and ds.task != "regression":
        raise DataError(
            f"{args.file} is a regression model, but --dataset {args.dataset} is a {ds.task} dataset, not "
            "one with float targets; pass the .npz file of its data (float y_test), or simulate it from "
            "Python with mcu_dc.data.metrics.simulator_metrics(cm.model, Dataset(name, x, y, "
            "task='regression'))"
        )
    if args.limit is not None and args.limit < 1:
        raise DataError(f"--limit {args.limit}: pass a positive number of images")
    model = cm.model
    ds = for_model(cm, ds, args.limit, f"dataset {args.dataset}")
    t0 = time.perf_counter()
    out, metrics = metrics_with_progress(model, ds, f"simulate {args.file.name}", settings_from_args(args))
    seconds = time.perf_counter() - t0
    if args.outputs is not None:
        np.save(args.outputs, out)
    result: dict[str, Any] = {
        "file": str(args.file),
        "dataset": args.dataset,
        "split": args.split,
        "n": len(ds),
        "task": task,
        "input_norm": cm.meta.get("input_norm"),
        "metrics": metrics,
        "model_hash": f"0x{cm.model_hash:08x}",
        "seconds": round(seconds, 3),
    }
    if task == "classification":
        result["accuracy"] = metrics["accuracy"]
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(
            f"{args.file}: {result['n']} {args.dataset} {args.split} images, integer {task} "
            f"{format_metrics(task, metrics)} (model hash {result['model_hash']}, {seconds:.2f} s)"
        )
    return 0
