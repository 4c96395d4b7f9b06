"""The binary layout, written once: every fixed-size record of the ``.mcudc`` blob.

Each :class:`Record` is a list of fields in order. From it come the Python struct
formats (:attr:`Record.struct`), the C offset macros in ``mcu_dc_format.h``
(:func:`c_defines`) and the field tables of ``docs/format.md`` (:func:`markdown_table`).
``python -m mcu_dc.deploy.cheaders`` regenerates both; a test fails when either drifts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Any

# type -> (struct code, bytes, C-doc name)
_TYPES: dict[str, tuple[str, int]] = {
    "u8": ("B", 1),
    "i8": ("b", 1),
    "u16": ("H", 2),
    "i16": ("h", 2),
    "u32": ("I", 4),
    "i32": ("i", 4),
    "f32": ("f", 4),
    "char4": ("4s", 4),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # a key of _TYPES, or "pad<N>" for N reserved zero bytes
    doc: str = ""

    @property
    def size(self) -> int:
        if self.type.startswith("pad"):
            return int(self.type[3:])
        return _TYPES[self.type][1]

    @property
    def code(self) -> str:
        if self.type.startswith("pad"):
            return f"{self.size}x"
        return _TYPES[self.type][0]


@dataclass(frozen=True)
class Record:
    name: str  # C prefix: MCU_DC_<NAME>_<FIELD>
    title: str
    fields: tuple[Field, ...]
    size: int

    def __post_init__(self) -> None:
        if struct.calcsize(self.format) != self.size:
            raise AssertionError(
                f"{self.name}: fields take {struct.calcsize(self.format)} bytes, not {self.size}"
            )

    @property
    def format(self) -> str:
        return "<" + "".join(f.code for f in self.fields)

    @cached_property
    def struct(self) -> struct.Struct:
        return struct.Struct(self.format)

    @cached_property
    def offsets(self) -> dict[str, int]:
        out, off = {}, 0
        for f in self.fields:
            if not f.type.startswith("pad"):
                out[f.name] = off
            off += f.size
        return out

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if not f.type.startswith("pad"))

    def pack_into(self, buf: bytearray, offset: int, values: dict[str, Any]) -> None:
        """Pack ``values`` (missing fields are 0; unknown names are an error) at ``offset``."""
        unknown = set(values) - set(self.names)
        if unknown:
            raise KeyError(f"{self.name}: unknown fields {sorted(unknown)}")
        self.struct.pack_into(buf, offset, *(values.get(n, 0) for n in self.names))

    def unpack_from(self, data: bytes, offset: int = 0) -> dict[str, Any]:
        return dict(zip(self.names, self.struct.unpack_from(data, offset), strict=True))


def _r(name: str, title: str, size: int, *fields: tuple[str, str, str]) -> Record:
    return Record(name, title, tuple(Field(*f) for f in fields), size)


# --------------------------------------------------------------------------- version 2

HEADER = _r(
    "HDR", "Header (48 bytes, offset 0)", 48,
    ("magic", "char4", '`"MCDC"`'),
    ("format_version", "u16", "2; readers refuse a larger version (version 1: see *Version 1*)"),
    ("n_ops", "u16", "entries in the op table"),
    ("blob_bytes", "u32", "total length including this header; multiple of 4"),
    ("crc32", "u32", "CRC-32 (as `zlib.crc32`) of bytes `[16, blob_bytes)`; the **model hash**"),
    ("n_tensors", "u16", "entries in the tensor table"),
    ("input_tensor", "u16", "tensor the device input is written to"),
    ("output_tensor", "u16", "tensor copied to the caller's output"),
    ("input_kind", "u8", "0 UINT8 (byte `b` becomes int8 `b - 128`), 1 INT8 (bytes are int8 values)"),
    ("rounding", "u8", "1 = `ROUNDING_HALF_UP`"),
    ("arena_bytes", "u32", "exact arena size (the planned maximum, see *Arena*)"),
    ("tensor_table_off", "u32", "absolute offset of the tensor table (48)"),
    ("op_table_off", "u32", "absolute offset of the op table"),
    ("reserved", "pad12", "0"),
)  # fmt: skip

TENSOR = _r(
    "TEN", "Tensor table entry (16 bytes)", 16,
    ("c", "u16", "channels"),
    ("h", "u16", "height"),
    ("w", "u16", "width (CHW order; a flat vector is (n, 1, 1))"),
    ("zp", "i8", "zero point"),
    ("reserved", "pad1", "0"),
    ("arena_off", "u32", "byte offset in the arena; multiple of 4"),
    ("scale", "f32", "real value of one step (host information; the device never reads it)"),
)  # fmt: skip

OP = _r(
    "OPD", "Op table entry (64 bytes)", 64,
    ("op", "u8", "op code (*Ops*)"),
    ("encoding", "u8",
     "0 NONE, 1 DENSE_INT8, 2 HUFFMAN_SPARSE, 3 COLUMN_SPARSE (FC only), 4 TERNARY, 5 BINARY, "
     "6 HUFFMAN_JOINT"),
    ("index_bits", "u8", "relative-index width b, 1..8 (HUFFMAN_SPARSE, HUFFMAN_JOINT), else 0"),
    ("n_inputs", "u8", "1, or 2 for ADD"),
    ("input0", "u16", "first input tensor"),
    ("input1", "u16", "second input tensor (ADD), else 0xFFFF"),
    ("output", "u16", "output tensor"),
    ("gather", "u8",
     "CONV2D: 1 = the gather kernel: its scratch also holds the zero-point-padded input and one output "
     "channel's taps grouped by weight value (docs/format.md, \"Gather convolution\"); else 0"),
    ("reserved0", "pad1", "0"),
    ("kernel_h", "u16", "conv, pool; else 0"),
    ("kernel_w", "u16", ""),
    ("stride_h", "u8", "conv, pool; else 0"),
    ("stride_w", "u8", ""),
    ("pad_top", "u8", "zero padding (conv, average pool); else 0"),
    ("pad_left", "u8", ""),
    ("pad_bottom", "u8", ""),
    ("pad_right", "u8", ""),
    ("pool_kh", "u8", "conv: fused max pool after the conv (0 = none)"),
    ("pool_kw", "u8", ""),
    ("pool_sh", "u8", ""),
    ("pool_sw", "u8", ""),
    ("act_min", "i8", "output clamp (fused ReLU, ReLU6, clamp); MAXPOOL2D: -128"),
    ("act_max", "i8", "MAXPOOL2D: 127"),
    ("shift", "u8", "1..62 (conv, FC, average pool, ADD); else 0"),
    ("table_bits", "u8",
     "FC, or CONV2D with gather = 1, with HUFFMAN_JOINT: 1..12 = its section is compact and the kernel "
     "builds a 2^table_bits-entry decode table (2 << table_bits bytes) in the op's scratch; else 0"),
    ("codebook_len", "u16",
     "k, 1..256 (HUFFMAN_SPARSE; HUFFMAN_JOINT with (k + 1) << b <= 4096), 1..16 (COLUMN_SPARSE), "
     "1..2 (TERNARY, BINARY); else 0"),
    ("multiplier", "i32", "0..2^31-1; ADD: the first input's"),
    ("multiplier_b", "i32", "ADD: the second input's; else 0"),
    ("n_entries", "u32", "HUFFMAN_SPARSE, HUFFMAN_JOINT: sparse entries (fillers included); "
     "DENSE_INT8: rows*fan_in; COLUMN_SPARSE, TERNARY: kept weights; BINARY: rows*fan_in"),
    ("codebook_off", "u32", "absolute offset of int8 codebook[k], or 0"),
    ("bias_off", "u32", "absolute offset of int32 bias[rows], or 0"),
    ("weights_off", "u32", "HUFFMAN_SPARSE: weight-symbol section; HUFFMAN_JOINT: the joint section; "
     "DENSE_INT8: int8[rows][fan_in]; "
     "COLUMN_SPARSE: column-sparse section; TERNARY, BINARY: bit-planes; or 0"),
    ("index_off", "u32", "HUFFMAN_SPARSE: relative-index section, or 0"),
    ("scratch_off", "u32", "arena offset of the op's scratch (0 when it needs none)"),
)  # fmt: skip

HUFF = _r(
    "HUF", "Huffman section header (8 bytes)", 8,
    ("max_len", "u8", "longest code length used, 0..15 (0 only when the stream is empty)"),
    ("lut_bits", "u8", "K, 0..12 and ≤ max_len; 0 = no lookup table; 0x80 = compact section (code "
     "lengths instead of the symbol list, no lookup table; docs/format.md, \"Compact Huffman table\")"),
    ("n_symbols", "u16", "distinct symbols with a code"),
    ("n_bits", "u32", "bits of coded data"),
)  # fmt: skip

# --------------------------------------------------------------------------- version 1 (read only)

HEADER_V1 = _r(
    "HDR1", "Version 1 header (32 bytes)", 32,
    ("magic", "char4", '`"MCDC"`'),
    ("format_version", "u16", "1"),
    ("n_layers", "u16", ""),
    ("blob_bytes", "u32", ""),
    ("crc32", "u32", "of bytes `[16, blob_bytes)`"),
    ("in_c", "u16", "input shape"),
    ("in_h", "u16", ""),
    ("in_w", "u16", ""),
    ("out_len", "u16", "int8 outputs"),
    ("arena_bytes", "u32", "`buf_0 + buf_1 + scratch`"),
    ("rounding", "u8", "1"),
    ("reserved", "pad3", "0"),
)  # fmt: skip

LAYER_V1 = _r(
    "LAY1", "Version 1 layer descriptor (64 bytes)", 64,
    ("op", "u8", "1 CONV2D, 2 FC, 3 MAXPOOL2D"),
    ("encoding", "u8", ""),
    ("index_bits", "u8", ""),
    ("reserved0", "pad1", ""),
    ("in_c", "u16", ""),
    ("in_h", "u16", ""),
    ("in_w", "u16", ""),
    ("out_c", "u16", ""),
    ("out_h", "u16", ""),
    ("out_w", "u16", ""),
    ("kernel_h", "u8", ""),
    ("kernel_w", "u8", ""),
    ("stride_h", "u8", ""),
    ("stride_w", "u8", ""),
    ("pad_h", "u8", "symmetric"),
    ("pad_w", "u8", ""),
    ("in_zp", "i8", ""),
    ("out_zp", "i8", ""),
    ("act_min", "i8", ""),
    ("act_max", "i8", ""),
    ("shift", "u8", ""),
    ("reserved1", "pad1", ""),
    ("multiplier", "i32", ""),
    ("n_entries", "u32", ""),
    ("codebook_off", "u32", ""),
    ("bias_off", "u32", ""),
    ("weights_off", "u32", ""),
    ("index_off", "u32", ""),
    ("codebook_len", "u16", ""),
    ("reserved2", "pad10", ""),
)  # fmt: skip

RECORDS: tuple[Record, ...] = (HEADER, TENSOR, OP, HUFF, HEADER_V1, LAYER_V1)


def c_defines() -> list[tuple[str, str, str]]:
    """(macro, value, comment) for every field offset and record size."""
    out: list[tuple[str, str, str]] = []
    for rec in RECORDS:
        out.append((f"MCU_DC_{rec.name}_BYTES", f"{rec.size}u", rec.title))
        for f in rec.fields:
            if f.type.startswith("pad"):
                continue
            out.append((f"MCU_DC_{rec.name}_{f.name.upper()}", f"{rec.offsets[f.name]}u", f.type))
    return out


def markdown_table(rec: Record) -> str:
    lines = ["| off | type | field | notes |", "|---|---|---|---|"]
    off = 0
    for f in rec.fields:
        t = f"u8[{f.size}]" if f.type.startswith("pad") else ("char[4]" if f.type == "char4" else f.type)
        lines.append(f"| {off} | {t} | {f.name} | {f.doc} |")
        off += f.size
    return "\n".join(lines)
