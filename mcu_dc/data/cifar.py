"""CIFAR-10, the original binary version (``cifar-10-batches-bin``), read from xz-compressed
``*.bin.xz`` files (or the uncompressed ``*.bin``), checksum-verified.

Each batch is 10,000 records of 3073 bytes: a label byte (0..9), then the 1024 red, 1024
green and 1024 blue bytes of a 32x32 image, each plane row-major. The training split is
``data_batch_1..5`` (50,000 images), the test split ``test_batch`` (10,000).

Before use, every ``.bin.xz`` file's sha256 is compared with the published one (a ``.bin``
file's with that of the decompressed original). Decompressing xz takes about 1.3 s per
batch on one core (8 s for all six; the batches of a split are decoded in parallel threads),
so the decompressed batches are cached, byte for byte,
under ``~/.cache/mcu_dc/data/cifar-10/`` (``$MCU_DC_DATA_CACHE`` overrides the folder, ``off``
disables the cache; else ``$MCU_DC_CACHE/data`` or ``$XDG_CACHE_HOME/mcu_dc/data``). A cache
file is named by the published sha256 of the decompressed batch and is used only when its
own sha256 still matches that value; otherwise it is rebuilt. Cache files are written
atomically; a cache folder that cannot be written is silently not used.
"""

from __future__ import annotations

import hashlib
import lzma
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mcu_dc.errors import DataError
from mcu_dc.fileio import write_bytes_atomic

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
BATCHES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
FOLDERS = ("cifar-10", "cifar10", "cifar-10-batches-bin")
RECORD_BYTES = 3073
RECORDS_PER_BATCH = 10_000
BATCH_BYTES = RECORD_BYTES * RECORDS_PER_BATCH  # 30,730,000
CACHE_ENV = "MCU_DC_DATA_CACHE"

# From /work/shared/data/README.md, section "cifar-10/": sha256 of each .bin.xz file and of the
# decompressed .bin (whose sha1 equals the one published for the original binary release).
SHA256_XZ = {
    "data_batch_1": "bcd0b4556f986241ba03eb73fd4e9338487354e582efc88a6bb1b2205bc8e60c",
    "data_batch_2": "6e906a3538b7904ad5755882b3cb5cb30d3835f2ded4872298c86dfcb6642a76",
    "data_batch_3": "6249f21478cb8d23d4edf789d5f265195d9af92567ae1e92e4d41fe69f51c38f",
    "data_batch_4": "be1a5394fe593c79605fadc36af53fe0a03477e36f0afdb63b74bf983d12d338",
    "data_batch_5": "c425140ee4a48f2bd14135ed51dcf2bc73737988b85b4428db6f270cdfe6ff37",
    "test_batch": "797208922dc6fa2b2473f1bb0c32011ea2d6d92d8d7bbafb3a0e53b6ea121110",
}
SHA256_BIN = {
    "data_batch_1": "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
    "data_batch_2": "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
    "data_batch_3": "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
    "data_batch_4": "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
    "data_batch_5": "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
    "test_batch": "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
}


def batch_file(d: Path, batch: str) -> Path | None:
    """The file of ``batch`` in ``d``: ``<batch>.bin.xz``, else ``<batch>.bin``; None if neither."""
    for p in (d / f"{batch}.bin.xz", d / f"{batch}.bin"):
        if p.is_file():
            return p
    return None


def cache_root() -> Path | None:
    """The folder of decoded-data caches; None when caching is turned off (``MCU_DC_DATA_CACHE=off``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return None if env.strip().lower() in ("0", "off", "no", "false", "none") else Path(env)
    base = os.environ.get("MCU_DC_CACHE")
    if base:
        return Path(base) / "data"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "mcu_dc" / "data"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}; check the path and its permissions.") from exc


def _bad_file(path: Path, expected: str, got: str, size: int) -> DataError:
    return DataError(
        f"{path}: sha256 {got} does not match the published {expected} ({size:,} bytes read); the file is "
        "truncated, corrupt or not the original CIFAR-10 binary batch. Re-copy it from the original "
        "distribution (cifar-10-binary.tar.gz, folder cifar-10-batches-bin/, each .bin optionally "
        "compressed with xz), or point --data-dir / MCU_DC_DATA at an intact copy."
    )


def _cached(batch: str, cache_dir: Path | None) -> bytes | None:
    """The decompressed batch from the cache when present and intact (its sha256 checked)."""
    if cache_dir is None:
        return None
    p = cache_dir / f"{batch}.{SHA256_BIN[batch]}.bin"
    try:
        raw = p.read_bytes()
    except OSError:
        return None
    if len(raw) == BATCH_BYTES and _sha256(raw) == SHA256_BIN[batch]:
        return raw
    return None  # corrupt or truncated: decoded again and rewritten


def _store(batch: str, raw: bytes, cache_dir: Path | None) -> None:
    if cache_dir is None:
        return
    try:
        write_bytes_atomic(cache_dir / f"{batch}.{SHA256_BIN[batch]}.bin", raw)
    except OSError:
        pass  # the cache is an optimisation; an unwritable folder only costs the decoding time


def read_batch(path: Path, batch: str, verify: bool = True, cache_dir: Path | None = None) -> bytes:
    """The decompressed bytes of one batch file, checked against the published sha256s.

    ``cache_dir`` (used only when ``verify``) holds decompressed batches from earlier runs.
    """
    data = _read(path)
    xz = path.name.endswith(".xz")
    if verify:
        expected = SHA256_XZ[batch] if xz else SHA256_BIN[batch]
        got = _sha256(data)
        if got != expected:
            raise _bad_file(path, expected, got, len(data))
        if not xz:
            return data
        hit = _cached(batch, cache_dir)
        if hit is not None:
            return hit
    if xz:
        try:
            raw = lzma.decompress(data, format=lzma.FORMAT_XZ)
        except (lzma.LZMAError, EOFError) as exc:
            raise DataError(
                f"{path}: not a complete xz file ({exc}); the file is truncated or corrupt. Re-copy it from "
                "the original distribution (or decompress it yourself with `xz -dk` and keep the .bin)."
            ) from exc
    else:
        raw = data
    if verify:
        got = _sha256(raw)
        if got != SHA256_BIN[batch]:  # only if the published checksums disagree with each other
            raise _bad_file(path, SHA256_BIN[batch], got, len(raw))
        _store(batch, raw, cache_dir)
    return raw


def parse_batch(raw: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` from the bytes of a binary batch."""
    if len(raw) == 0 or len(raw) % RECORD_BYTES:
        raise DataError(
            f"{source}: {len(raw):,} bytes is not a whole number of 3073-byte CIFAR-10 records (label byte, "
            "then 3x32x32 pixels); the file is truncated or not a CIFAR-10 binary batch, re-copy it."
        )
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = rec[:, 0].astype(np.int64)
    if int(labels.max()) >= len(CIFAR10_CLASSES):
        bad = int(np.argmax(labels >= len(CIFAR10_CLASSES)))
        raise DataError(
            f"{source}: record {bad} has label {int(labels[bad])}, outside 0..9; the file is corrupt or not "
            "a CIFAR-10 binary batch (CIFAR-100's has two label bytes), re-copy it."
        )
    images = np.ascontiguousarray(rec[:, 1:]).reshape(-1, 3, 32, 32)  # a writable copy
    return images, labels


def search_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where the CIFAR-10 batches are looked for, in order (same roots as MNIST's)."""
    from mcu_dc.data.datasets import candidate_dirs

    return candidate_dirs(FOLDERS, data_dir)


def find_dir(split: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The first folder that holds every batch of ``split``; a :class:`DataError` saying where it looked."""
    cands = search_dirs(data_dir)
    for d in cands:
        if all(batch_file(d, b) is not None for b in BATCHES[split]):
            return d
    from mcu_dc.data.datasets import ENV_VAR

    names = ", ".join(f"{b}.bin.xz" for b in BATCHES[split])
    raise DataError(
        f"dataset 'cifar10' ({split}) not found: looked for {names} (or the uncompressed .bin) in "
        f"{', '.join(str(c) for c in cands)}. Pass --data-dir DIR (a folder holding cifar-10/ or the files "
        f"themselves) or set {ENV_VAR}; the original binary version (cifar-10-batches-bin/) is used "
        "unchanged, xz-compressed or not (no download happens at run time)."
    )


def load_cifar10(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    verify: bool = True,
    cache: bool | str | os.PathLike[str] = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` of CIFAR-10's ``split``.

    ``cache``: True for the default cache folder (:func:`cache_root`), False for none, or a
    folder. The cache is only read and written when ``verify`` is on.
    """
    d = find_dir(split, data_dir)
    if cache is True:
        root = cache_root()
        cache_dir = None if root is None else root / "cifar-10"
    elif cache is False:
        cache_dir = None
    else:
        cache_dir = Path(cache)

    def one(b: str) -> tuple[np.ndarray, np.ndarray]:
        path = batch_file(d, b)
        assert path is not None  # find_dir checked
        return parse_batch(read_batch(path, b, verify, cache_dir), str(path))

    batches = BATCHES[split]
    workers = min(len(batches), os.cpu_count() or 1)
    if workers > 1:  # lzma and hashlib release the GIL: the batches decode in parallel
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(one, batches))
    else:
        parts = [one(b) for b in batches]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
