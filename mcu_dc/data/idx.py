"""Read idx files (the MNIST file format), gzip-compressed or raw.

An idx file is a big-endian header ``00 00 <dtype> <ndim>``, then ``ndim`` u32 sizes,
then the data. Only dtype 0x08 (unsigned byte) is needed for MNIST and Fashion-MNIST.
"""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path

import numpy as np

from mcu_dc.errors import DataError

_UBYTE = 0x08
MAX_NDIM = 8
_DEFLATE_MAX_RATIO = 1032  # deflate expands one compressed byte into at most 1032 bytes


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
    if math.prod(d or 1 for d in shape) > np.iinfo(np.intp).max:  # an empty array numpy cannot shape
        raise DataError(
            f"{source}: idx sizes {shape} (from byte 4) multiply out, zeros left aside, past what an array "
            "can index; the file is corrupt, re-copy it."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (``.gz`` or raw) into a uint8 array; errors are :class:`DataError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}; check the path and permissions.") from exc
    return decode_idx(data, str(path), gzipped=path.suffix == ".gz")


def decode_idx(data: bytes, source: str, *, gzipped: bool) -> np.ndarray:
    """The bytes of an idx file, gzip-compressed when ``gzipped``, as a uint8 array (:class:`DataError`).

    A gzip file is decompressed no further than its idx header asks for, and only once that size is
    one its compressed bytes can hold (deflate expands a byte into at most 1032): a small file
    claiming gigabytes is refused before they are allocated."""
    if gzipped:
        try:
            data = _gunzip_idx(data, source)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{source}: not a complete gzip file ({exc}); the file is truncated or corrupt, re-copy it."
            ) from exc
    return parse_idx(data, source)


def _gunzip_idx(data: bytes, source: str) -> bytes:
    """The idx header, then (if it is well formed) just the data bytes its shape needs, plus one."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        raw = f.read(4)
        if len(raw) < 4 or raw[:3] != bytes([0, 0, _UBYTE]) or not 1 <= raw[3] <= MAX_NDIM:
            return raw  # parse_idx says what is wrong with it
        raw += f.read(4 * raw[3])
        if len(raw) < 4 + 4 * raw[3]:
            return raw
        shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3]))
        count = math.prod(shape)
        if count > _DEFLATE_MAX_RATIO * len(data):
            raise DataError(
                f"{source}: idx header (sizes from byte 4) gives shape {shape}, {count} bytes of data, more "
                f"than the file's {len(data)} compressed bytes can hold; the file is corrupt, re-copy it."
            )
        body = f.read(count + 1)  # reading to the end checks the CRC
    if len(body) > count:
        raise DataError(
            f"{source}: idx data runs past the {count} bytes its shape {shape} needs (header at byte 4); the "
            "file is corrupt, re-copy it."
        )
    return raw + body
