"""Datasets: the :class:`Dataset` container (uint8 images or float features; class labels
or float targets; the task), the built-in sets MNIST, Fashion-MNIST (idx .gz files),
CIFAR-10 (binary batches, xz-compressed; :mod:`mcu_dc.data.cifar`) and scikit-learn's
digits, and a user's own ``.npz`` file (:mod:`mcu_dc.data.npz`).

For uint8 images the device's input is the raw byte; the float model sees
``byte * input_scale`` (no mean/std normalisation, so quantising the input is exact).
Float features are quantized to int8 with the model's calibrated input scale and zero
point. :meth:`Dataset.normalized` turns images into per-channel normalized float features
(``(byte * input_scale - mean_c) / std_c``) for models trained that way (the CIFAR ResNets);
they still count as images for augmentation.

:func:`load_dataset` / :func:`load_train_test` take a built-in name (:data:`DATASETS`) or
the path of a ``.npz`` file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcu_dc.core.qmath import TASKS
from mcu_dc.data.idx import read_idx
from mcu_dc.errors import DataError

ENV_VAR = "MCU_DC_DATA"
IDX_DATASETS = ("mnist", "fashion-mnist")
DATASETS = (*IDX_DATASETS, "digits", "cifar10")
ALIASES = {"cifar-10": "cifar10"}
SPLITS = ("train", "test")

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

    ``class_names`` (optional): the name of each class, ``num_classes`` of them.
    ``normalization`` (float features only, set by :meth:`normalized`): the per-channel
    ``(mean, std)`` the features were made with from images; such features still count as
    images (:attr:`is_image`: random crop, flip and shift apply to them).

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
    class_names: tuple[str, ...] | None = None
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None

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
        if self.class_names is not None:
            self.class_names = self._check_class_names(self.class_names)
        if self.normalization is not None:
            self.normalization = self._check_normalization(self.normalization)

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

    def _check_class_names(self, names: Sequence[str]) -> tuple[str, ...]:
        out = tuple(str(v) for v in names)
        if self.task != "classification" or len(out) != self.num_classes:
            raise DataError(
                f"{self._where()}: {len(out)} class names for a {self.task!r} dataset with num_classes="
                f"{self.num_classes}; give one name per class of a classification set, or none"
            )
        return out

    def _check_normalization(
        self, norm: tuple[Sequence[float], Sequence[float]]
    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if not self.is_float_input:
            raise DataError(
                f"{self._where()}: normalization is recorded for float features made from images; this "
                "dataset holds the uint8 bytes themselves. Use dataset.normalized(mean, std) instead"
            )
        mean, std = _check_mean_std(norm[0], norm[1], self.input_shape[0], self._where())
        return mean, std

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
    def is_image(self) -> bool:
        """uint8 images, or float features made from them by :meth:`normalized` (augmentation applies)."""
        return not self.is_float_input or self.normalization is not None

    def pad_value(self) -> np.ndarray:
        """``float32 (C,)``: what a zero (black) pixel is in :meth:`float_inputs`: 0, or ``-mean_c / std_c``
        for normalized features (the fill of a padded border, as when padding before normalising)."""
        c = self.input_shape[0]
        if self.normalization is None:
            return np.zeros(c, dtype=np.float32)
        mean, std = (np.asarray(v, dtype=np.float32) for v in self.normalization)
        return -mean / std

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
        return dataclasses.replace(
            self,
            name=name or self.name,
            x=self.x[idx],
            y=None if self.y is None else self.y[idx],
            anomaly=None if self.anomaly is None else self.anomaly[idx],
        )

    def with_task(self, task: str) -> Dataset:
        """This dataset for ``task``: only ``reconstruction`` can be derived from another task (the
        targets become the inputs); anything else is a :class:`DataError` naming the mismatch."""
        if task == self.task:
            return self
        if task == "reconstruction":
            return dataclasses.replace(self, y=None, task=task, anomaly=None, class_names=None)
        raise DataError(
            f"dataset {self.name!r} is for task {self.task!r} but task {task!r} was asked for. {_TASK_HINT}"
        )

    def normalized(self, mean: Sequence[float], std: Sequence[float]) -> Dataset:
        """These uint8 images as per-channel normalized float32 features
        ``(x * input_scale - mean_c) / std_c`` (same targets, task, anomaly labels, class names).

        For models trained on normalized inputs (the CIFAR ResNets: ImageNet mean (0.485, 0.456,
        0.406), std (0.229, 0.224, 0.225)); the device then takes int8-quantized features. The
        result remembers ``(mean, std)`` and still counts as images (:attr:`is_image`), so random
        crop, flip and shift apply, padding with the value of a black pixel. A reconstruction
        dataset without targets reconstructs the normalized features.
        """
        w = self._where()
        if self.is_float_input:
            raise DataError(
                f"{w}: normalized() turns uint8 images into normalized float features, but this dataset "
                "already holds float features; normalise the original uint8 dataset (once)"
            )
        m, s = _check_mean_std(mean, std, self.input_shape[0], w)
        x = self.x.astype(np.float32)
        x *= np.float32(self.input_scale)
        x -= np.asarray(m, dtype=np.float32)[None, :, None, None]
        x /= np.asarray(s, dtype=np.float32)[None, :, None, None]
        return dataclasses.replace(self, x=x, input_scale=1.0, normalization=(m, s))


def _check_mean_std(
    mean: Sequence[float], std: Sequence[float], channels: int, where: str
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    try:
        m = tuple(float(v) for v in np.ravel(np.asarray(mean, dtype=np.float64)))
        s = tuple(float(v) for v in np.ravel(np.asarray(std, dtype=np.float64)))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: mean and std must be sequences of numbers, got {mean!r}, {std!r}") from exc
    if len(m) != channels or len(s) != channels:
        raise DataError(
            f"{where}: the inputs have {channels} channel(s) but mean has {len(m)} value(s) and std "
            f"{len(s)}; give one mean and one std per channel"
        )
    if not all(math.isfinite(v) for v in m) or not all(math.isfinite(v) and v > 0 for v in s):
        raise DataError(
            f"{where}: mean {m} and std {s} must be finite and every std > 0 (each channel is divided by it)"
        )
    return m, s


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


def candidate_dirs(
    name: str | Sequence[str], data_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Where the files of dataset ``name`` are looked for, in order: in each root (``data_dir``
    alone when given, else ``$MCU_DC_DATA`` then the default roots) its subfolder(s) ``name``,
    then the root itself."""
    subs = (name,) if isinstance(name, str) else tuple(name)
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    else:
        env = os.environ.get(ENV_VAR)
        if env:
            roots.append(Path(env))
        roots.extend(DEFAULT_ROOTS)
    out: list[Path] = []
    for r in roots:
        for p in (*(r / sub for sub in subs), r):
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
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError as exc:
        if not (exc.name or "sklearn").startswith("sklearn"):
            raise
        raise DataError(
            "the digits dataset is the 8x8 set that ships inside scikit-learn, which is not installed in "
            "this Python environment (mcu_dc lists it as a dependency: an install that skipped "
            "dependencies, e.g. pip install --no-deps, leaves it out); install it with "
            "`pip install scikit-learn`, or use another dataset (mnist, fashion-mnist, cifar10, or a .npz "
            "file of your own)"
        ) from None

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = len(labels) // 4
    idx = order[:n_test] if split == "test" else order[n_test:]
    return Dataset(f"digits-{split}", images[np.sort(idx)], labels[np.sort(idx)], 1.0 / 16.0)


def load_cifar10_dataset(split: str, data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """CIFAR-10 ``split``: uint8 ``(N, 3, 32, 32)``, input_scale 1/255, 10 named classes (sha256-checked)."""
    from mcu_dc.data.cifar import CIFAR10_CLASSES, load_cifar10

    images, labels = load_cifar10(split, data_dir)
    return Dataset(
        f"cifar10-{split}", images, labels, 1.0 / 255.0, len(CIFAR10_CLASSES), class_names=CIFAR10_CLASSES
    )


DatasetRef = str | os.PathLike[str]


def _builtin(name: DatasetRef, data_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The built-in dataset ``name`` stands for, or None when it is a path to a .npz file (a name
    ending in ``.npz``, or an existing file here or in ``data_dir``). Built-in names win."""
    from mcu_dc.data.npz import is_npz_path

    key = ALIASES.get(str(name), str(name))
    if key in DATASETS and not str(name).lower().endswith(".npz"):
        return key
    if is_npz_path(name) or (data_dir is not None and (Path(data_dir) / name).is_file()):
        return None
    raise DataError(
        f"unknown dataset {str(name)!r}; choose one of {', '.join(DATASETS)}, or pass the path of a .npz "
        "file holding x_train, y_train, x_test and y_test (your own data)"
    )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use 'train' or 'test'")


def _load_builtin(name: str, split: str, data_dir: str | os.PathLike[str] | None) -> Dataset:
    if name == "digits":
        return load_digits_dataset(split)
    if name == "cifar10":
        return load_cifar10_dataset(split, data_dir)
    return load_idx_dataset(name, split, data_dir)


def load_dataset(
    name: DatasetRef,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    *,
    task: str | None = None,
) -> Dataset:
    """Load ``split`` ('train' or 'test') of a built-in dataset (mnist, fashion-mnist, digits, cifar10)
    or of a user's ``.npz`` file (see :mod:`mcu_dc.data.npz`).

    ``task`` (optional): for a .npz file, how to read its targets (overrides a ``task`` entry in
    the file); for a built-in set only ``reconstruction`` can be asked for (the images become the
    targets).
    """
    _check_split(split)
    key = _builtin(name, data_dir)
    if key is None:
        from mcu_dc.data.npz import load_npz

        train, test = load_npz(name, task=task, data_dir=data_dir)
        return train if split == "train" else test
    ds = _load_builtin(key, split, data_dir)
    return ds if task is None else ds.with_task(task)


def load_train_test(
    name: DatasetRef, data_dir: str | os.PathLike[str] | None = None, *, task: str | None = None
) -> tuple[Dataset, Dataset]:
    """``(train, test)`` of a built-in dataset or a ``.npz`` file (read once); see :func:`load_dataset`."""
    key = _builtin(name, data_dir)
    if key is None:
        from mcu_dc.data.npz import load_npz

        return load_npz(name, task=task, data_dir=data_dir)
    return load_dataset(key, "train", data_dir, task=task), load_dataset(key, "test", data_dir, task=task)
