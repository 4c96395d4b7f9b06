"""The test inputs embedded in a demo firmware (``mcu-dc generate --app demo``).

:func:`demo_data` takes the first ``samples`` test inputs of a dataset (the names and the
loader of ``mcu-dc simulate``; the model's recorded input normalization applied), turns them
into the bytes the device takes, and runs the bit-exact simulator on them at generate time:
the firmware compares its outputs with those (:class:`DemoData`). :func:`header_context` is
what ``templates/project/mcu_dc_demo_data.h.j2`` places.

A classifier's line shows the predicted class, the dataset's label and the simulator's
class; a regression or reconstruction model (no classes; :data:`mcu_dc.core.qmath.TASKS`)
prints its output bytes instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcu_dc.errors import ConfigError, DataError

DEFAULT_SAMPLES = 4
MAX_SAMPLES = 1000
BYTES_PER_LINE = 16


@dataclass(frozen=True)
class DemoData:
    """Inputs, labels and the simulator's outputs for the demo firmware."""

    dataset: str
    task: str  # "classification", "regression" or "reconstruction"
    inputs: np.ndarray  # uint8 (N, input_len): the bytes mcu_dc_infer takes
    expected: np.ndarray  # int8 (N, output_len): the simulator's outputs
    labels: np.ndarray | None  # int64 (N,): dataset labels (classification only)
    model_hash: int  # the blob's CRC-32 (mcu_dc_model_hash)

    @property
    def classifier(self) -> bool:
        return self.task == "classification"

    @property
    def expected_classes(self) -> np.ndarray | None:
        """The simulator's predicted classes (first maximum, as the firmware counts)."""
        return np.argmax(self.expected, axis=1) if self.classifier else None

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def model_dataset(cm: Any, dataset: str | None) -> str:
    """``dataset``, or the one the model file records; a clear error when neither is known."""
    if dataset:
        return dataset
    recorded = (getattr(cm, "meta", None) or {}).get("dataset")
    if recorded:
        return str(recorded)
    raise ConfigError(
        "the demo firmware embeds a few test inputs of the model's dataset, but this model file "
        "records no dataset and none was given; pass --dataset NAME (mnist, fashion-mnist, digits, "
        "cifar10, the dataset names of `mcu-dc simulate`) or --dataset path/to/data.npz with the "
        "test set the model was compressed for."
    )


def demo_data(
    cm: Any, dataset: str | None = None, samples: int = DEFAULT_SAMPLES, data_dir: str | None = None
) -> DemoData:
    """The first ``samples`` test inputs of ``dataset`` (default: the model's) for ``cm``."""
    from mcu_dc.commands.simulate import for_model, model_task
    from mcu_dc.core import blob as blobfmt
    from mcu_dc.core.simulator import device_input, simulate
    from mcu_dc.data.datasets import load_dataset

    if not 1 <= int(samples) <= MAX_SAMPLES:
        raise ConfigError(
            f"--samples {samples}: the demo embeds between 1 and {MAX_SAMPLES} test inputs in flash; "
            f"pass a number in that range (default {DEFAULT_SAMPLES})"
        )
    name = model_dataset(cm, dataset)
    task = model_task(cm)
    ds = load_dataset(name, "test", data_dir)
    if task == "regression" and ds.task != "regression":
        raise DataError(
            f"the model is a regression model, but dataset {name!r} is a {ds.task} dataset without float "
            "targets; pass --dataset path/to/data.npz with the regression test set it was compressed for"
        )
    ds = for_model(cm, ds, int(samples), f"dataset {name}")
    n = len(ds)
    if n == 0:
        raise DataError(f"dataset {name!r} has no test inputs to embed in the demo")
    x = ds.simulator_inputs(slice(0, n))
    inputs = np.ascontiguousarray(device_input(cm.model, x), dtype=np.uint8)
    expected = np.ascontiguousarray(simulate(cm.model, x), dtype=np.int8)
    labels = np.asarray(ds.targets(slice(0, n)), dtype=np.int64) if task == "classification" else None
    model_hash = blobfmt.read_header(cm.blob, name).crc32
    return DemoData(name, task, inputs, expected, labels, int(model_hash))


def _rows(data: np.ndarray) -> list[list[str]]:
    """Each row of ``data`` as lines of at most BYTES_PER_LINE C integer literals."""
    out = []
    for row in data:
        vals = [str(int(v)) for v in row]
        out.append([", ".join(vals[i : i + BYTES_PER_LINE]) for i in range(0, len(vals), BYTES_PER_LINE)])
    return out


def _comment(text: str) -> str:
    """``text`` made safe inside a C block comment."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text).replace("*/", "* /")


def header_context(data: DemoData, boards: Sequence[Any], model_name: str) -> dict[str, Any]:
    """Values for ``mcu_dc_demo_data.h.j2``; ``boards`` are the project's boards (rounds, pause)."""
    from mcu_dc.deploy.codegen import c_string_literal
    from mcu_dc.deploy.mcuproject import board_macro

    per_board = [
        {
            "macro": board_macro(b.id),
            "id": b.id,
            # Emulated boards run one round and exit (QEMU ends); real ones repeat every ~1 s.
            "rounds": 1 if b.emulated else 0,
            "pause": 0 if b.emulated else int(b.clock_hz),
        }
        for b in boards
    ]
    classes = data.expected_classes
    shown = Path(data.dataset).name if data.dataset.endswith(".npz") else data.dataset  # not a long path
    return {
        "model_name": _comment(model_name),
        "dataset_comment": _comment(shown),
        "dataset_literal": c_string_literal(shown),
        "task_literal": c_string_literal(data.task),
        "samples": len(data),
        "input_len": int(data.inputs.shape[1]),
        "output_len": int(data.expected.shape[1]),
        "classifier": 1 if data.classifier else 0,
        "model_hash": f"0x{data.model_hash:08x}",
        "boards": per_board,
        "inputs": _rows(data.inputs),
        "expected": _rows(data.expected),
        "labels": [int(v) for v in data.labels] if data.labels is not None else [],
        "expected_classes": [int(v) for v in classes] if classes is not None else [],
    }


__all__ = ["DEFAULT_SAMPLES", "DemoData", "demo_data", "header_context", "model_dataset"]
