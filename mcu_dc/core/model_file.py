"""The ``.mcudc`` file: the model blob followed by a JSON metadata section.

``CompressedModel`` is what :func:`mcu_dc.compress` returns and :func:`load` reads. The
blob is the truth (it is what goes to flash); the :class:`IntegerModel` is decoded from
it, so whatever a user holds in memory is exactly what the device will run.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

from mcu_dc.core.blob import decode_blob, encode_blob_with_layout, read_header
from mcu_dc.core.ir import IntegerModel
from mcu_dc.errors import FormatError
from mcu_dc.fileio import write_bytes_atomic

META_MAGIC = b"MCDM"
_META = struct.Struct("<4sII")


class CompressedModel:
    """A compressed, integer-only model plus the host-side metadata."""

    def __init__(
        self,
        model: IntegerModel | None = None,
        meta: dict[str, Any] | None = None,
        *,
        blob: bytes | None = None,
        max_code_len: int = 12,
        lut_bits: int = 6,
        source: str | None = None,
    ) -> None:
        meta = dict(meta or {})
        if blob is None:
            if model is None:
                raise ValueError("CompressedModel needs an IntegerModel or a blob")
            blob, layout = encode_blob_with_layout(model, max_code_len=max_code_len, lut_bits=lut_bits)
            meta.setdefault("name", model.name)
            meta.setdefault("layer_names", [layer.name for layer in model.layers])
            meta.setdefault("input_scale", model.input_scale)
            meta.setdefault("output_scale", model.output_scale)
            meta.setdefault("output_zp", model.output_zp)
            meta.setdefault("task", model.task)
            meta["blob_layout"] = {
                "header": layout.header,
                "tensor_table": layout.tensor_table,
                "layers": [lay.as_dict() for lay in layout.layers],
                "total": layout.total,
            }
        self.blob: bytes = blob
        self.meta: dict[str, Any] = meta
        # Errors name the file a blob came from (``source``), else the model.
        self.model: IntegerModel = decode_blob(blob, source or meta.get("name", "<model>"), meta)

    @property
    def model_hash(self) -> int:
        """The blob's CRC-32 (header offset 12): what the device reports in its INFO frame."""
        return read_header(self.blob).crc32

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.model.name))

    @property
    def total_bytes(self) -> int:
        return len(self.blob)

    def to_bytes(self) -> bytes:
        js = json.dumps(self.meta, sort_keys=True, default=_json_default).encode("utf-8")
        return self.blob + _META.pack(META_MAGIC, len(js), zlib.crc32(js) & 0xFFFFFFFF) + js

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: a temporary file in the same folder, then a rename."""
        return write_bytes_atomic(path, self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> CompressedModel:
        hdr = read_header(data, source)
        p = hdr.blob_bytes
        if len(data) < p + _META.size:
            raise FormatError(
                f"{source}: the metadata section that should start at byte offset {p} is missing or "
                "truncated; the file was cut short — regenerate it with `mcu-dc compress`"
            )
        magic, n, crc = _META.unpack_from(data, p)
        if magic != META_MAGIC:
            raise FormatError(
                f"{source}: bytes {p}..{p + 3} are {magic!r}, not the metadata magic {META_MAGIC!r}"
            )
        js = data[p + _META.size : p + _META.size + n]
        if len(js) != n:
            raise FormatError(
                f"{source}: metadata at byte offset {p + _META.size} should be {n} bytes, only {len(js)} "
                "are present; the file is truncated"
            )
        if zlib.crc32(js) & 0xFFFFFFFF != crc:
            raise FormatError(f"{source}: metadata CRC mismatch at byte offset {p + 8}; the file is corrupt")
        end = p + _META.size + n
        if len(data) != end:
            raise FormatError(f"{source}: {len(data) - end} unexpected bytes after byte offset {end}")
        try:
            meta = json.loads(js.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a huge integer, deep nesting
            raise FormatError(
                f"{source}: metadata at byte offset {p + _META.size} is not valid JSON "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            ) from None
        _check_meta(meta, f"{source}: metadata at byte offset {p + _META.size}")
        return cls(meta=meta, blob=bytes(data[:p]), source=source)


# The metadata fields the reader uses, and the JSON types each may have (absent: the default).
_META_TYPES: dict[str, tuple[str, tuple[type, ...]]] = {
    "name": ("a UTF-8 string", (str,)),
    "task": ("a UTF-8 string", (str,)),
    "layer_names": ("a list of UTF-8 strings", (list,)),
    "input_scale": ("a finite number", (int, float)),
    "output_scale": ("a finite number", (int, float)),
    "output_zp": ("an integer in -128..127", (int,)),
}


def _check_meta(meta: Any, where: str) -> None:
    """Refuse metadata the reader cannot use: not a JSON object, or a field it reads of the wrong type."""
    if not isinstance(meta, dict):
        raise FormatError(f"{where} is {_short_json(meta)}, not a JSON object; the file is corrupt")
    for key, (what, types) in _META_TYPES.items():
        if key not in meta or (key == "layer_names" and meta[key] is None):
            continue
        v = meta[key]
        ok = isinstance(v, types) and not isinstance(v, bool)
        if ok and isinstance(v, float):
            ok = math.isfinite(v)
        if ok and key == "output_zp":
            ok = -128 <= v <= 127
        if ok and isinstance(v, (str, list)):  # strings a terminal or a C header can take
            ok = all(isinstance(x, str) and _utf8(x) for x in (v if isinstance(v, list) else [v]))
        if not ok:
            raise FormatError(
                f"{where}: field {key!r} is {_short_json(v)}, not {what}; the file is corrupt — regenerate it"
            )


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in the JSON)
        return False
    return True


def _short_json(v: Any) -> str:
    try:
        text = json.dumps(v)
    except (ValueError, RecursionError):  # nesting json.loads took but json.dumps does not
        return f"a deeply nested JSON {type(v).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def load(path: str | os.PathLike[str]) -> CompressedModel:
    """Read a ``.mcudc`` file (raises :class:`FormatError` with the byte offset on damage)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{path}: no such model file; create one with `mcu-dc compress`") from None
    except IsADirectoryError:
        raise FormatError(f"{path} is a directory, not a .mcudc model file") from None
    return CompressedModel.from_bytes(data, str(path))


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")
