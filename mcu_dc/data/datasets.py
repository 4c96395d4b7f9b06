"""Datasets: the :class:`Dataset` container (uint8 images or float features; class labels
or float targets; the task) and the built-in image sets MNIST, Fashion-MNIST (idx .gz
files) and scikit-learn's digits.

For uint8 images the device's input is the raw byte; the float model sees
``byte * input_scale`` (no mean/std normalisation, so quantising the input is exact).
Float features are quantized to int8 with the model's calibrated input scale and zero
point.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcu_dc.core.qmath import TASKS
from mcu_dc.data.idx import read_idx
from mcu_dc.errors import DataError

ENV_VAR = "MCU_DC_DATA"
IDX_DATASETS = ("mnist", "fashion-mnist")
DATASETS = (*IDX_DATASETS, "digits")

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# sha256 of the original distribution files (from /work/shared/data/README.md).
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

_REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOTS = (_REPO.parent / "shared" / "data", Path("/work/shared/data"))


@dataclass
class Dataset:
    """Inputs, targets and the task they are for.

    ``x`` is either raw ``uint8 (N, C, H, W)`` bytes (images: the float model sees
    ``x * input_scale``, the device gets the bytes) or ``float32 (N, C, H, W)`` features
    (vectors as ``(N, F, 1, 1)``; ``(N, F)`` is reshaped): the float model sees them as
    they are, the device gets them quantized to int8 with the model's calibrated input
    scale and zero point. ``y`` is ``int64 (N,)`` class labels in ``[0, num_classes)`` for
    ``task="classification"``, or ``float32 (N, ...)`` targets for ``"regression"`` and
    ``"reconstruction"`` (for reconstruction ``y`` defaults to the float inputs).
    ``anomaly`` (reconstruction only, optional): ``(N,)`` 0/1, 1 = anomalous; the
    reconstruction error's AUC is reported when both kinds are present.

    ``images`` and ``labels`` are aliases of ``x`` and the targets (positional
    ``Dataset(name, images, labels, input_scale, num_classes)`` keeps working).
    """

    name: str
    x: np.ndarray = field(repr=False)
    y: np.ndarray | None = field(default=None, repr=False)
    input_scale: float = 1.0
    num_classes: int = 10
    task: str = "classification"
    anomaly: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(
                f"dataset {self.name!r}: task {self.task!r} is not one of {', '.join(TASKS)}; pick the one "
                "the model is trained for"
            )
        self.x = self._check_inputs(np.asarray(self.x))
        n = len(self.x)
        self.y = self._check_targets(None if self.y is None else np.asarray(self.y), n)
        if self.anomaly is not None:
            self.anomaly = self._check_anomaly(np.asarray(self.anomaly), n)

    # ------------------------------------------------------------------ validation
    def _where(self) -> str:
        return f"dataset {self.name!r}"

    def _check_inputs(self, x: np.ndarray) -> np.ndarray:
        w = self._where()
        if x.dtype == np.uint8:
            if x.ndim != 4:
                raise DataError(
                    f"{w}: uint8 images must have shape (N, C, H, W), got {x.shape}; add the channel axis "
                    "with x[:, None] for grey images"
                )
            if not (float(self.input_scale) > 0 and math.isfinite(float(self.input_scale))):
                raise DataError(f"{w}: input_scale {self.input_scale!r} must be a positive finite number")
            return x
        if x.dtype.kind != "f":
            raise DataError(
                f"{w}: inputs must be uint8 raw bytes (N, C, H, W) or float32 features (N, C, H, W) or "
                f"(N, F), got {x.dtype} {x.shape}; convert them with x.astype(np.uint8) (bytes) or "
                "x.astype(np.float32) (features)"
            )
        if x.ndim == 2:
            x = x.reshape(x.shape[0], x.shape[1], 1, 1)
        if x.ndim != 4:
            raise DataError(
                f"{w}: float features must have shape (N, F) or (N, C, H, W), got {x.shape}; reshape them"
            )
        if float(self.input_scale) != 1.0:
            raise DataError(
                f"{w}: input_scale={self.input_scale} is given with float features; input_scale only "
                "converts uint8 bytes to floats. Scale the features yourself and leave input_scale at 1.0"
            )
        x = np.ascontiguousarray(x, dtype=np.float32)
        _check_finite(x, f"{w}: the float inputs")
        return x

    def _check_targets(self, y: np.ndarray | None, n: int) -> np.ndarray | None:
        w = self._where()
        if y is None:
            if self.task == "reconstruction":
                return None  # the inputs themselves
            raise DataError(
                f"{w}: task {self.task!r} needs targets y (class labels for classification, float targets "
                "for regression); only reconstruction may leave y out (its targets are the inputs)"
            )
        if y.ndim == 0 or len(y) != n:
            raise DataError(
                f"{w}: {n} inputs but targets of shape {y.shape}; give one target per input (y.shape[0] "
                f"== {n})"
            )
        if self.task == "classification":
            return self._check_labels(y)
        if y.dtype.kind in "iub":
            raise DataError(
                f"{w}: task {self.task!r} needs float targets, got {y.dtype} {y.shape}, which look like "
                "class labels. If they are classes use task='classification'; if they really are numbers "
                "to regress pass y.astype(np.float32)"
            )
        if y.dtype.kind != "f":
            raise DataError(f"{w}: targets must be float32 for task {self.task!r}, got {y.dtype}")
        y = np.ascontiguousarray(y, dtype=np.float32)
        _check_finite(y, f"{w}: the float targets")
        if self.task == "reconstruction" and y[0].size != self.x[0].size:
            raise DataError(
                f"{w}: reconstruction targets have {y[0].size} values per sample but the inputs have "
                f"{self.x[0].size}; an autoencoder reconstructs its input (leave y out to use the inputs)"
            )
        return y

    def _check_labels(self, y: np.ndarray) -> np.ndarray:
        w = self._where()
        if y.dtype.kind == "f":
            raise DataError(
                f"{w}: float targets ({y.dtype} {y.shape}) were given to a classifier, which needs integer "
                f"class labels in [0, {self.num_classes}). For a regressor pass task='regression'; for "
                "labels stored as floats convert them with y.astype(np.int64)"
            )
        if y.dtype.kind not in "iu" or y.ndim != 1:
            raise DataError(
                f"{w}: class labels must be integers of shape (N,), got {y.dtype} {y.shape}; pass "
                "y.astype(np.int64) (one class index per input, not one-hot)"
            )
        if self.num_classes < 1:
            raise DataError(f"{w}: num_classes is {self.num_classes}; a classifier needs at least one class")
        y = np.asarray(y, dtype=np.int64)
        if y.size and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise DataError(
                f"{w}: class labels range {int(y.min())}..{int(y.max())}, outside [0, {self.num_classes}); "
                "pass the right num_classes or renumber the classes from 0"
            )
        return y

    def _check_anomaly(self, a: np.ndarray, n: int) -> np.ndarray:
        w = self._where()
        if self.task != "reconstruction":
            raise DataError(
                f"{w}: anomaly labels are for task 'reconstruction' (an autoencoder's reconstruction error "
                f"is the anomaly score), not {self.task!r}; drop them or change the task"
            )
        if a.shape != (n,) or not np.isin(a, (0, 1)).all():
            raise DataError(
                f"{w}: anomaly must be one 0/1 value per input (1 = anomalous), shape ({n},); got "
                f"{a.dtype} {a.shape}"
            )
        return a.astype(np.int8)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.x)

    @property
    def images(self) -> np.ndarray:
        """The inputs as stored (alias of ``x``)."""
        return self.x

    @property
    def labels(self) -> np.ndarray:
        """The targets (alias of :meth:`targets`): class labels for a classifier."""
        return self.targets()

    @property
    def is_float_input(self) -> bool:
        return self.x.dtype != np.uint8

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def output_len(self) -> int | None:
        """Values per sample the model must output for this task (None: classification, >= classes)."""
        if self.task == "classification":
            return None
        if self.y is None:
            return int(np.prod(self.input_shape))
        return int(np.prod(self.y.shape[1:], dtype=np.int64))

    def float_inputs(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """What the float model sees, ``float32 (n, C, H, W)``: bytes times input_scale, or the features."""
        x = self.x if idx is None else self.x[idx]
        if self.is_float_input:
            return x
        return x.astype(np.float32) * np.float32(self.input_scale)

    def simulator_inputs(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """What :func:`mcu_dc.core.simulator.simulate` takes: the raw bytes, or the float features
        (which the simulator quantizes with the model's input scale and zero point)."""
        return self.x if idx is None else self.x[idx]

    def targets(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """int64 class labels, or float32 targets (for reconstruction without y: the float inputs)."""
        if self.y is None:
            return self.float_inputs(idx)
        return self.y if idx is None else self.y[idx]

    def subset(self, idx: np.ndarray, name: str | None = None) -> Dataset:
        return Dataset(
            name or self.name,
            self.x[idx],
            None if self.y is None else self.y[idx],
            self.input_scale,
            self.num_classes,
            self.task,
            None if self.anomaly is None else self.anomaly[idx],
        )

    def with_task(self, task: str) -> Dataset:
        """This dataset for ``task``: only ``reconstruction`` can be derived from another task (the
        targets become the inputs); anything else is a :class:`DataError` naming the mismatch."""
        if task == self.task:
            return self
        if task == "reconstruction":
            return Dataset(self.name, self.x, None, self.input_scale, self.num_classes, task)
        raise DataError(
            f"dataset {self.name!r} is for task {self.task!r} but task {task!r} was asked for. {_TASK_HINT}"
        )


_TASK_HINT = (
    "Classification needs integer class labels, regression float targets, reconstruction the inputs "
    "(any dataset can be reconstructed); build the Dataset with the task and targets you mean, or set "
    "the config's task to 'auto' to use the dataset's."
)


def _check_finite(a: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(a), -1).any(axis=1))[0, 0])
        raise DataError(
            f"{what} hold {int(bad.sum())} NaN or infinite value(s), the first in sample {first}; remove "
            "or impute those samples before training (a NaN poisons every weight it touches)"
        )


def candidate_dirs(name: str, data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where the files of dataset ``name`` are looked for, in order."""
    roots: list[Path] = []
    if data_dir is not None:
        d = Path(data_dir)
        return [d / name, d]
    env = os.environ.get(ENV_VAR)
    if env:
        roots.append(Path(env))
    roots.extend(DEFAULT_ROOTS)
    out: list[Path] = []
    for r in roots:
        for p in (r / name, r):
            if p not in out:
                out.append(p)
    return out


def _find_dir(name: str, data_dir: str | os.PathLike[str] | None) -> Path:
    cands = candidate_dirs(name, data_dir)
    needed = [f for pair in _FILES.values() for f in pair]
    for d in cands:
        if all((d / f).is_file() for f in needed):
            return d
    looked = ", ".join(str(c) for c in cands)
    raise DataError(
        f"dataset {name!r} not found: looked for {', '.join(needed)} in {looked}. "
        f"Pass --data-dir DIR (a folder holding {name}/ or the files themselves) or set {ENV_VAR}; "
        "the original idx .gz files are used unchanged (no download happens at run time)."
    )


def _check_sha(path: Path, name: str) -> None:
    expected = SHA256.get(name, {}).get(path.name)
    if expected is None:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise DataError(
            f"{path}: sha256 {digest} does not match the published {expected} "
            f"({path.stat().st_size} bytes); the file is truncated, corrupt or not the original {name} "
            "file. Re-copy it from the original distribution."
        )


def load_idx_dataset(
    name: str, split: str, data_dir: str | os.PathLike[str] | None = None, verify: bool = True
) -> Dataset:
    d = _find_dir(name, data_dir)
    img_file, lab_file = _FILES[split]
    arrays = []
    for f in (img_file, lab_file):
        p = d / f
        if verify:
            _check_sha(p, name)
        arrays.append(read_idx(p))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{d}: {img_file} has shape {images.shape} and {lab_file} {labels.shape}; expected (N, H, W) "
            "images and N labels."
        )
    return Dataset(f"{name}-{split}", images[:, None, :, :], labels.astype(np.int64), 1.0 / 255.0)


def load_digits_dataset(split: str) -> Dataset:
    """scikit-learn's 8x8 digits: values 0..16 as bytes, input_scale 1/16; fixed 75/25 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = len(labels) // 4
    idx = order[:n_test] if split == "test" else order[n_test:]
    return Dataset(f"digits-{split}", images[np.sort(idx)], labels[np.sort(idx)], 1.0 / 16.0)


def load_dataset(name: str, split: str = "train", data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Load ``name`` (mnist, fashion-mnist, digits), ``split`` train or test."""
    if split not in _FILES:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")
    if name == "digits":
        return load_digits_dataset(split)
    if name in IDX_DATASETS:
        return load_idx_dataset(name, split, data_dir)
    raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_train_test(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[Dataset, Dataset]:
    return load_dataset(name, "train", data_dir), load_dataset(name, "test", data_dir)
