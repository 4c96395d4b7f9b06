"""Read idx files (the MNIST file format), gzip-compressed or raw.

An idx file is a big-endian header ``00 00 <dtype> <ndim>``, then ``ndim`` u32 sizes,
then the data. Only dtype 0x08 (unsigned byte) is needed for MNIST and Fashion-MNIST.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from mcu_dc.errors import DataError

_UBYTE = 0x08
MAX_NDIM = 8


def parse_idx(raw: bytes, source: str) -> np.ndarray:
    """Decode the bytes of an (uncompressed) idx file into a uint8 array."""
    if len(raw) < 4:
        raise DataError(f"{source}: only {len(raw)} bytes, too short for an idx header; re-copy the file.")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE:
        raise DataError(
            f"{source}: bad idx magic {raw[:4].hex()} at byte 0 (expected 000008xx: unsigned-byte idx); "
            "the file is not an MNIST-style idx file."
        )
    ndim = raw[3]
    if not 1 <= ndim <= MAX_NDIM:
        raise DataError(
            f"{source}: idx header at byte 3 gives {ndim} dimensions; an image or label file has 1 to "
            f"{MAX_NDIM}. The file is corrupt or not an idx file; re-copy it."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source}: idx header truncated (ndim={ndim}, {len(raw)} bytes); re-copy the file.")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = math.prod(shape)  # exact: numpy's int64 product can wrap to a small number
    if len(raw) - header != count:
        raise DataError(
            f"{source}: idx data is {len(raw) - header} bytes after the {header}-byte header but its shape "
            f"{shape} needs {count}; the file is truncated or corrupt, re-copy it."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (``.gz`` or raw) into a uint8 array; errors are :class:`DataError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}; check the path and permissions.") from exc
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path}: not a complete gzip file ({exc}); the file is truncated or corrupt, re-copy it."
            ) from exc
    return parse_idx(data, str(path))
