"""Read TensorFlow checkpoints (the "tensor bundle" of a SavedModel's ``variables/``) without TensorFlow.

A bundle is two files: ``variables.index``, an SSTable (LevelDB's table format: data blocks of
prefix-compressed key/value entries, an index block pointing at them, a 48-byte footer), and
``variables.data-00000-of-00001``, the raw tensor bytes. Each index value is a ``BundleEntryProto``
(dtype, shape, shard, offset, size, masked CRC-32C of the bytes); the empty key holds the
``BundleHeaderProto`` (shard count, endianness). This module parses both by hand (a few protobuf
varints), checks every CRC, and returns float32 arrays by checkpoint key. Only what a Keras
SavedModel of plain float weights needs is supported: one shard, little-endian, no block
compression, unsliced ``DT_FLOAT`` tensors; anything else is refused.

It also extracts the Keras model config (the JSON that Keras 2.x writes into each layer's
SavedModel metadata) from ``saved_model.pb``, so weights can be matched by layer name.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from mcu_dc.errors import FormatError

_MAGIC = 0xDB4775248B80FB57  # LevelDB/TF table magic, little-endian in the footer's last 8 bytes
_FOOTER = 48
_DT_FLOAT = 1
_WIRE_VARINT, _WIRE_64, _WIRE_LEN, _WIRE_32 = 0, 1, 2, 5


def _bad(path: Path, what: str) -> FormatError:
    return FormatError(
        f"{path} is not a TensorFlow checkpoint this reader understands: {what}. It reads the tensor bundle "
        "of a SavedModel's variables/ folder (variables.index + variables.data-00000-of-00001) as written by "
        "TensorFlow 2.x for float32 Keras weights; re-export the model, or give the weights as a Keras .h5 "
        "file."
    )


def _varint(b: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(b):
            raise IndexError("varint runs past the end")
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return result, i


def _fields(msg: bytes) -> list[tuple[int, Any]]:
    """The (field number, value) pairs of a protobuf message: ints for varint/fixed, bytes for length."""
    out: list[tuple[int, Any]] = []
    i = 0
    while i < len(msg):
        tag, i = _varint(msg, i)
        num, wire = tag >> 3, tag & 7
        if wire == _WIRE_VARINT:
            v, i = _varint(msg, i)
        elif wire == _WIRE_64:
            v, i = struct.unpack_from("<Q", msg, i)[0], i + 8
        elif wire == _WIRE_LEN:
            n, i = _varint(msg, i)
            v, i = msg[i : i + n], i + n
        elif wire == _WIRE_32:
            v, i = struct.unpack_from("<I", msg, i)[0], i + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        out.append((num, v))
    return out


# --------------------------------------------------------------------------- SSTable


def _block(table: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """The entries of one uncompressed table block (shared-prefix keys, restart array at the end)."""
    if table[offset + size] != 0:  # the 5-byte block trailer starts with the compression type
        raise ValueError("compressed table block")
    data = table[offset : offset + size]
    restarts = struct.unpack_from("<I", data, size - 4)[0]
    end = size - 4 - 4 * restarts
    entries: list[tuple[bytes, bytes]] = []
    key, i = b"", 0
    while i < end:
        shared, i = _varint(data, i)
        fresh, i = _varint(data, i)
        vlen, i = _varint(data, i)
        key = key[:shared] + data[i : i + fresh]
        i += fresh
        entries.append((key, data[i : i + vlen]))
        i += vlen
    return entries


def read_sstable(path: Path) -> dict[bytes, bytes]:
    """Every key/value pair of an uncompressed LevelDB-format table file."""
    table = path.read_bytes()
    try:
        if len(table) < _FOOTER or struct.unpack("<Q", table[-8:])[0] != _MAGIC:
            raise ValueError("no table magic in the last 8 bytes")
        footer = table[-_FOOTER:]
        _, i = _varint(footer, 0)  # metaindex offset
        _, i = _varint(footer, i)  # metaindex size
        idx_off, i = _varint(footer, i)
        idx_size, i = _varint(footer, i)
        out: dict[bytes, bytes] = {}
        for _, handle in _block(table, idx_off, idx_size):
            off, j = _varint(handle, 0)
            size, _ = _varint(handle, j)
            out.update(_block(table, off, size))
        return out
    except (ValueError, IndexError, struct.error) as exc:
        raise _bad(path, f"its SSTable index cannot be parsed ({exc})") from exc


# --------------------------------------------------------------------------- CRC-32C (Castagnoli)


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def masked_crc32c(data: bytes) -> int:
    """CRC-32C of ``data``, masked the way TensorFlow/LevelDB store it."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- bundle


def _shape(msg: bytes) -> tuple[int, ...]:
    dims = []
    for num, v in _fields(msg):
        if num == 2:  # TensorShapeProto.dim
            size = next((s for n, s in _fields(v) if n == 1), 0)
            dims.append(int(size))
        elif num == 3 and v:  # unknown_rank
            raise ValueError("unknown rank")
    return tuple(dims)


def _check_header(path: Path, header: bytes) -> None:
    f = dict(_fields(header))
    if int(f.get(1, 1)) != 1:
        raise _bad(path, f"it is split into {f.get(1)} shards (only single-shard bundles are read)")
    if int(f.get(2, 0)) != 0:
        raise _bad(path, "it is big-endian")


def read_bundle(variables_dir: Path, prefix: str = "variables") -> dict[str, np.ndarray]:
    """Every float32 tensor of the bundle ``variables_dir/prefix.{index,data-00000-of-00001}`` by key.

    Keys are the checkpoint keys, e.g. ``layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``.
    Non-float entries (step counters, the object graph) are left out; each tensor's CRC is checked.
    """
    index = variables_dir / f"{prefix}.index"
    data_path = variables_dir / f"{prefix}.data-00000-of-00001"
    for p in (index, data_path):
        if not p.is_file():
            raise FormatError(
                f"TensorFlow checkpoint file {p} is missing; a SavedModel's variables/ folder holds "
                f"{prefix}.index and {prefix}.data-00000-of-00001. Point to the SavedModel folder itself."
            )
    entries = read_sstable(index)
    _check_header(index, entries.pop(b"", b""))
    data = data_path.read_bytes()
    out: dict[str, np.ndarray] = {}
    for key, value in entries.items():
        try:
            f = dict(_fields(value))
            if int(f.get(1, 0)) != _DT_FLOAT:
                continue
            if 7 in f:
                raise ValueError("sliced tensor")
            shape = _shape(f.get(2, b""))
            off, size = int(f.get(4, 0)), int(f.get(5, 0))
        except (ValueError, IndexError, struct.error) as exc:
            raise _bad(index, f"entry {key!r} cannot be parsed ({exc})") from exc
        raw = data[off : off + size]
        name = key.decode("utf-8", "replace")
        if len(raw) != size or size != 4 * int(np.prod(shape, dtype=np.int64)):
            raise _bad(data_path, f"tensor {name!r} of shape {shape} needs {size} bytes at offset {off}")
        if 6 in f and masked_crc32c(raw) != int(f[6]):
            raise _bad(data_path, f"tensor {name!r} fails its CRC-32C check (the file is corrupt)")
        out[name] = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    return out


# --------------------------------------------------------------------------- Keras config in saved_model.pb


def keras_config_from_saved_model(saved_model_dir: Path) -> dict[str, Any]:
    """The Keras model config (``{"class_name": "Functional", "config": {"layers": [...]}}``).

    Keras 2.x stores each layer's config as JSON in the SavedModel's object-graph metadata; the
    model's own entry is the first JSON object there whose ``config`` lists ``layers``.
    """
    pb = saved_model_dir / "saved_model.pb"
    if not pb.is_file():
        raise FormatError(
            f"{pb} is missing; give the SavedModel folder (it holds saved_model.pb and variables/)."
        )
    raw = pb.read_bytes().decode("utf-8", "replace")
    decoder = json.JSONDecoder()
    for marker in ('{"class_name": "Functional"', '{"class_name": "Model"', '{"class_name": "Sequential"'):
        start = raw.find(marker)
        while start >= 0:
            try:
                obj, _ = decoder.raw_decode(raw, start)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and isinstance(obj.get("config"), dict) and "layers" in obj["config"]:
                return obj
            start = raw.find(marker, start + 1)
    raise FormatError(
        f"{pb} holds no Keras model config (no Functional/Sequential layer list in its metadata); it was "
        "not saved by Keras 2.x's model.save(). Export the model as a Keras .h5 file instead."
    )
