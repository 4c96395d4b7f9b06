"""Datasets as uint8 images: MNIST, Fashion-MNIST (idx .gz files) and scikit-learn's digits.

The device's input is the raw byte; the float model sees ``byte * input_scale`` (no
mean/std normalisation, so quantising the input is exact).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    """Images ``uint8 (N, C, H, W)``, labels ``int64 (N,)``; float input = byte * input_scale."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    input_scale: float
    num_classes: int = 10

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(
                f"dataset {self.name!r}: images must be uint8 with shape (N, C, H, W), got "
                f"{self.images.dtype} {self.images.shape}"
            )
        if len(self.labels) != len(self.images):
            raise DataError(f"dataset {self.name!r}: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    def subset(self, idx: np.ndarray, name: str | None = None) -> Dataset:
        return Dataset(
            name or self.name, self.images[idx], self.labels[idx], self.input_scale, self.num_classes
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
