"""CIFAR-10 loader: the real files against the published checksums, labels, class counts, the
decoded-batch cache, and clear errors for corrupt, truncated or missing files."""

from __future__ import annotations

import hashlib
import lzma
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mcu_dc.data import DATASETS, load_dataset, load_train_test
from mcu_dc.data.cifar import (
    BATCHES,
    CIFAR10_CLASSES,
    SHA256_BIN,
    SHA256_XZ,
    batch_file,
    cache_root,
    load_cifar10,
    parse_batch,
    read_batch,
    search_dirs,
)
from mcu_dc.errors import DataError, McuDcError

README = Path("/work/shared/data/README.md")
ALL_BATCHES = (*BATCHES["train"], *BATCHES["test"])


def _real_dir() -> Path:
    for d in search_dirs():
        if all(batch_file(d, b) is not None for b in ALL_BATCHES):
            return d
    pytest.skip("the CIFAR-10 batches are not available (../shared/data/cifar-10)")


@pytest.fixture(scope="module")
def real_dir() -> Path:
    return _real_dir()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private cache: MCU_DC_DATA_CACHE=<parent> makes the loader use this folder."""
    return tmp_path_factory.mktemp("data-cache") / "cifar-10"


@pytest.fixture(scope="module")
def test_split(real_dir: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test split, decoded once per session into a private cache."""
    return load_cifar10("test", real_dir, cache=cache_dir)


def test_checksums_in_code_are_the_published_ones():
    if not README.is_file():
        pytest.skip("shared data README not available")
    text = README.read_text()
    for b in ALL_BATCHES:
        row = re.search(
            rf"^\| {b}\.bin\.xz \| (\d+) \| ([0-9a-f]{{64}}) \| [0-9a-f]{{40}} \| ([0-9a-f]{{64}}) \|",
            text,
            re.M,
        )
        assert row is not None, b
        assert row.group(2) == SHA256_XZ[b] and row.group(3) == SHA256_BIN[b]


def test_real_files_match_the_published_checksums(real_dir: Path):
    for b in ALL_BATCHES:
        p = batch_file(real_dir, b)
        assert p is not None and p.name == f"{b}.bin.xz"
        assert hashlib.sha256(p.read_bytes()).hexdigest() == SHA256_XZ[b], p


def test_test_split_labels_counts_and_layout(test_split, real_dir: Path):
    images, labels = test_split
    assert images.shape == (10000, 3, 32, 32) and images.dtype == np.uint8 and images.flags.writeable
    assert labels.dtype == np.int64
    assert labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert np.bincount(labels, minlength=10).tolist() == [1000] * 10
    # the record layout: label byte, then the R, G and B planes, each 32x32 row-major
    raw = lzma.LZMADecompressor().decompress((real_dir / "test_batch.bin.xz").read_bytes(), max_length=3073)
    rec = np.frombuffer(raw, np.uint8)
    assert rec[0] == labels[0]
    assert np.array_equal(images[0, 1].ravel(), rec[1 + 1024 : 1 + 2048])
    assert images[0, 0, 0, 5] == rec[1 + 5] and images[0, 2, 1, 0] == rec[1 + 2048 + 32]


def test_dataset_metadata(real_dir: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MCU_DC_DATA_CACHE", str(cache_dir.parent))
    te = load_dataset("cifar10", "test", real_dir)
    assert te.name == "cifar10-test" and te.input_scale == 1 / 255 and te.num_classes == 10
    assert te.task == "classification" and not te.is_float_input and te.is_image
    assert te.class_names == CIFAR10_CLASSES and te.class_names[3] == "cat"
    assert te.input_shape == (3, 32, 32)
    assert "cifar10" in DATASETS
    assert load_dataset("cifar-10", "test", real_dir).labels[:3].tolist() == [3, 8, 8]  # alias
    assert te.subset(np.arange(5)).class_names == CIFAR10_CLASSES


@pytest.mark.slow  # only until the default cache holds the decoded batches
def test_train_split_labels_counts_and_means(real_dir: Path):
    """The whole training set (default cache: about 10 s to decode once per machine, then < 1 s)."""
    tr, te = load_train_test("cifar10", real_dir)
    assert tr.images.shape == (50000, 3, 32, 32) and len(te) == 10000
    assert tr.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert np.bincount(tr.labels, minlength=10).tolist() == [5000] * 10
    mean = tr.images.reshape(50000, 3, -1).mean(axis=(0, 2), dtype=np.float64)
    assert np.allclose(mean, (125.307, 122.950, 113.865), atol=1e-3)


def test_cache_is_used_and_a_corrupt_cache_is_rebuilt(test_split, real_dir: Path, cache_dir: Path):
    cached = cache_dir / f"test_batch.{SHA256_BIN['test_batch']}.bin"
    assert cached.is_file() and cached.stat().st_size == 30_730_000
    assert not list(cache_dir.glob(".*tmp*"))  # written atomically, no leftovers
    good = cached.read_bytes()
    bad = bytearray(good)
    bad[12345] ^= 0xFF
    cached.write_bytes(bytes(bad))
    images, labels = load_cifar10("test", real_dir, cache=cache_dir)
    assert np.array_equal(images, test_split[0]) and np.array_equal(labels, test_split[1])
    assert cached.read_bytes() == good  # rebuilt, not trusted
    cached.write_bytes(good[:1000])  # truncated
    assert np.array_equal(load_cifar10("test", real_dir, cache=cache_dir)[0], test_split[0])
    assert cached.stat().st_size == 30_730_000


def test_cache_root_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("MCU_DC_DATA_CACHE", "off")
    assert cache_root() is None
    monkeypatch.setenv("MCU_DC_DATA_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("MCU_DC_DATA_CACHE")
    monkeypatch.setenv("MCU_DC_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" / "data"


def _copy_with_flipped_byte(real_dir: Path, tmp_path: Path, at: int) -> Path:
    d = tmp_path / "cifar-10"
    d.mkdir()
    dst = d / "test_batch.bin.xz"
    shutil.copyfile(real_dir / "test_batch.bin.xz", dst)
    data = bytearray(dst.read_bytes())
    data[at] ^= 0x01
    dst.write_bytes(bytes(data))
    return dst


def test_corrupted_copy_is_refused_naming_the_file(real_dir: Path, tmp_path: Path, cache_dir: Path):
    dst = _copy_with_flipped_byte(real_dir, tmp_path, 10_000_000)
    with pytest.raises(DataError) as e:
        load_cifar10("test", tmp_path, cache=cache_dir)  # an intact cache does not hide a corrupt file
    msg = str(e.value)
    assert str(dst) in msg and SHA256_XZ["test_batch"] in msg
    assert hashlib.sha256(dst.read_bytes()).hexdigest() in msg
    assert "Re-copy" in msg and "\n" not in msg and isinstance(e.value, McuDcError)
    with pytest.raises(DataError, match=r"test_batch\.bin\.xz"):
        load_dataset("cifar10", "test", tmp_path)


def test_truncated_and_corrupt_xz_without_checksums(real_dir: Path, tmp_path: Path):
    dst = _copy_with_flipped_byte(real_dir, tmp_path, 1000)
    with pytest.raises(DataError, match=r"not a complete xz file") as e:
        read_batch(dst, "test_batch", verify=False)
    assert str(dst) in str(e.value)
    dst.write_bytes((real_dir / "test_batch.bin.xz").read_bytes()[:5000])
    with pytest.raises(DataError, match=r"sha256") as e:
        load_cifar10("test", tmp_path, cache=False)
    assert "5,000 bytes" in str(e.value)
    with pytest.raises(DataError, match=r"not a complete xz file"):
        read_batch(dst, "test_batch", verify=False)


def test_uncompressed_bin_is_accepted_and_checked(
    test_split, real_dir: Path, tmp_path: Path, cache_dir: Path
):
    d = tmp_path / "cifar-10-batches-bin"
    d.mkdir()
    raw = (cache_dir / f"test_batch.{SHA256_BIN['test_batch']}.bin").read_bytes()
    (d / "test_batch.bin").write_bytes(raw)
    images, labels = load_cifar10("test", tmp_path, cache=False)
    assert np.array_equal(images, test_split[0]) and np.array_equal(labels, test_split[1])
    (d / "test_batch.bin").write_bytes(raw[:-3073])
    with pytest.raises(DataError, match=r"test_batch\.bin: sha256"):
        load_cifar10("test", tmp_path, cache=False)


def test_missing_files_say_where_they_were_looked_for(tmp_path: Path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", "train", tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "cifar-10") in msg and "data_batch_1.bin.xz" in msg
    assert "--data-dir" in msg and "MCU_DC_DATA" in msg


def test_env_var_is_searched_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MCU_DC_DATA", str(tmp_path))
    assert search_dirs()[0] == tmp_path / "cifar-10"


def test_parse_batch_errors():
    with pytest.raises(DataError, match=r"3073-byte"):
        parse_batch(b"\x00" * 3000, "mem")
    rec = bytearray(3073 * 2)
    rec[3073] = 10
    with pytest.raises(DataError, match=r"record 1 has label 10"):
        parse_batch(bytes(rec), "mem")
    images, labels = parse_batch(bytes(3073), "mem")
    assert images.shape == (1, 3, 32, 32) and labels.tolist() == [0]
