"""``mcu-dc simulate FILE --dataset NAME``: bit-exact integer accuracy on a test set."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mcu_dc.errors import DataError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="run a .mcudc model with the bit-exact integer simulator on a dataset",
        description="Run a compressed model with the bit-exact integer simulator (exactly what the "
        "device computes) on a dataset's test split and report its accuracy.",
    )
    p.add_argument("file", type=Path, help="the .mcudc model file")
    p.add_argument("--dataset", required=True, choices=["mnist", "fashion-mnist", "digits"])
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset files")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--outputs", type=Path, default=None, help="save the int8 outputs as a .npy file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcu_dc.core.model_file import load
    from mcu_dc.core.simulator import simulate
    from mcu_dc.data.datasets import load_dataset

    cm = load(args.file)
    ds = load_dataset(args.dataset, args.split, args.data_dir)
    if args.limit is not None:
        if args.limit < 1:
            raise DataError(f"--limit {args.limit}: pass a positive number of images")
        ds = ds.subset(np.arange(min(args.limit, len(ds))))
    model = cm.model
    if tuple(ds.input_shape) != tuple(model.input_shape):
        raise DataError(
            f"{args.file}: the model takes inputs of shape {tuple(model.input_shape)} but dataset "
            f"{args.dataset} has images of shape {ds.input_shape}; simulate it on the dataset it was "
            "compressed for"
        )
    t0 = time.perf_counter()
    out = simulate(model, ds.images)
    seconds = time.perf_counter() - t0
    pred = np.argmax(out, axis=1)  # the first index of the maximum, as on the device
    accuracy = float(np.mean(pred == ds.labels)) if len(ds) else 0.0
    if args.outputs is not None:
        np.save(args.outputs, out)
    result = {
        "file": str(args.file),
        "dataset": args.dataset,
        "split": args.split,
        "n": len(ds),
        "accuracy": accuracy,
        "model_hash": f"0x{cm.model_hash:08x}",
        "seconds": round(seconds, 3),
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(
            f"{args.file}: {result['n']} {args.dataset} {args.split} images, integer accuracy "
            f"{100 * accuracy:.2f} % (model hash {result['model_hash']}, {seconds:.2f} s)"
        )
    return 0
