"""The model blob: encode an :class:`IntegerModel` to bytes and decode it back.

The layout is docs/format.md, field for field. The blob is what sits in the device's
flash; its length is, by construction, the sum of the byte breakdown the compression
report shows (:func:`encode_blob_with_layout`).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcu_dc.core import huffman
from mcu_dc.core.ir import (
    FC,
    MAX_CODEBOOK,
    ROUNDING_HALF_UP,
    Conv2D,
    Encoding,
    IntegerModel,
    Layer,
    MaxPool2D,
    Op,
    Requant,
    WeightLayer,
    dense_weights,
)
from mcu_dc.core.sparse import decode_relative, encode_relative
from mcu_dc.errors import ConfigError, FormatError

MAGIC = b"MCDC"
FORMAT_VERSION = 1
HEADER_BYTES = 32
LAYER_BYTES = 64
HUFF_HEADER_BYTES = 8
STREAM_SLACK_BYTES = 4

_HEADER = struct.Struct("<4sHHII3HHIB3x")
_LAYER = struct.Struct("<BBBx3H3H6BbbbbBxiIIIIIH10x")
_HUFF = struct.Struct("<BBHI")
assert _HEADER.size == HEADER_BYTES and _LAYER.size == LAYER_BYTES and _HUFF.size == HUFF_HEADER_BYTES


def align4(n: int) -> int:
    return (n + 3) & ~3


def _pad4(b: bytes) -> bytes:
    return b + bytes(align4(len(b)) - len(b))


@dataclass
class StreamLayout:
    """What one Huffman section holds, for byte accounting."""

    n_symbols: int = 0
    n_bits: int = 0
    max_len: int = 0
    lut_bits: int = 0
    table_bytes: int = 0  # section header + counts + symbols + padding
    lut_bytes: int = 0  # lookup table + padding
    data_bytes: int = 0  # coded data + padding + slack

    @property
    def total(self) -> int:
        return self.table_bytes + self.lut_bytes + self.data_bytes


@dataclass
class LayerLayout:
    """Bytes a layer takes in the blob, by part; ``total`` sums them."""

    index: int
    op: str
    encoding: str
    rows: int = 0
    fan_in: int = 0
    kept: int = 0
    n_entries: int = 0
    fillers: int = 0
    codebook_len: int = 0
    index_bits: int = 0
    descriptor: int = LAYER_BYTES
    codebook: int = 0
    bias: int = 0
    weights: int = 0
    index_stream: int = 0
    weight_stream: StreamLayout = field(default_factory=StreamLayout)
    relative_index_stream: StreamLayout = field(default_factory=StreamLayout)

    @property
    def total(self) -> int:
        return self.descriptor + self.codebook + self.bias + self.weights + self.index_stream

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if not isinstance(v, StreamLayout)}
        d["weight_stream"] = {**self.weight_stream.__dict__, "total": self.weight_stream.total}
        d["relative_index_stream"] = {
            **self.relative_index_stream.__dict__,
            "total": self.relative_index_stream.total,
        }
        d["total"] = self.total
        return d


@dataclass
class BlobLayout:
    header: int
    layers: list[LayerLayout]

    @property
    def total(self) -> int:
        return self.header + sum(layer.total for layer in self.layers)


def _huffman_section(
    symbols: np.ndarray, alphabet: int, max_code_len: int, lut_bits: int, where: str
) -> tuple[bytes, StreamLayout]:
    try:
        table = huffman.build_table(symbols, alphabet, max_code_len)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    max_len = table.max_len
    k = min(lut_bits, max_len)
    data, n_bits = huffman.encode(symbols, table)
    counts = table.counts.astype("<u2")
    syms = table.symbols.astype("<u2")
    head = _pad4(_HUFF.pack(max_len, k, len(syms), n_bits) + counts.tobytes() + syms.tobytes())
    lut = _pad4(table.lut(k).astype("<u2").tobytes()) if k else b""
    payload = data + bytes(align4(len(data)) - len(data) + STREAM_SLACK_BYTES)
    layout = StreamLayout(
        n_symbols=len(syms),
        n_bits=n_bits,
        max_len=max_len,
        lut_bits=k,
        table_bytes=len(head),
        lut_bytes=len(lut),
        data_bytes=len(payload),
    )
    return head + lut + payload, layout


def _check_weight_layer(i: int, layer: WeightLayer) -> None:
    k = len(layer.codebook)
    rows = layer.out_shape[0]
    where = f"layer {i} ({layer.name})"
    if layer.encoding == Encoding.HUFFMAN_SPARSE and not 1 <= k <= MAX_CODEBOOK:
        raise ConfigError(f"{where}: codebook has {k} entries; it must have 1..{MAX_CODEBOOK}")
    if layer.assign.shape != (rows, layer.fan_in):
        raise ConfigError(
            f"{where}: assignment matrix is {layer.assign.shape}, expected {(rows, layer.fan_in)}"
        )
    if layer.bias.shape != (rows,):
        raise ConfigError(f"{where}: bias has shape {layer.bias.shape}, expected {(rows,)}")
    for nm, v in (("in_zp", layer.in_zp), ("out_zp", layer.out_zp), ("act_min", layer.act_min),
                  ("act_max", layer.act_max)):
        if not -128 <= v <= 127:
            raise ConfigError(f"{where}: {nm}={v} is not an int8")
    if layer.act_min > layer.act_max:
        raise ConfigError(f"{where}: act_min {layer.act_min} > act_max {layer.act_max}")


def encode_blob_with_layout(
    model: IntegerModel, *, max_code_len: int = 12, lut_bits: int = 6
) -> tuple[bytes, BlobLayout]:
    """Serialize ``model``; return the blob and where its bytes went."""
    if not 0 <= lut_bits <= huffman.MAX_LUT_BITS:
        raise ConfigError(f"Huffman lookup-table width {lut_bits} is outside 0..{huffman.MAX_LUT_BITS}")
    if not model.layers:
        raise ConfigError("the model has no layers")
    if len(model.layers) > 0xFFFF:
        raise ConfigError("too many layers")
    _check_chain(model)
    n = len(model.layers)
    body = bytearray(HEADER_BYTES + n * LAYER_BYTES)
    layouts: list[LayerLayout] = []

    def put(section: bytes) -> int:
        off = len(body)
        body.extend(_pad4(section))
        return off

    for i, layer in enumerate(model.layers):
        lay = LayerLayout(index=i, op=layer.op.name, encoding=Encoding.NONE.name)
        cb_off = bias_off = w_off = idx_off = 0
        n_entries = k = index_bits = shift = mult = 0
        kh = kw = sh = sw = ph = pw = 0
        act_min, act_max = -128, 127
        encoding = Encoding.NONE
        if isinstance(layer, MaxPool2D):
            in_zp = out_zp = layer.zp
            kh, kw = layer.kernel
            sh, sw = layer.stride
        else:
            _check_weight_layer(i, layer)
            encoding = Encoding(layer.encoding)
            in_zp, out_zp = layer.in_zp, layer.out_zp
            act_min, act_max = layer.act_min, layer.act_max
            mult, shift = layer.requant.multiplier, layer.requant.shift
            if isinstance(layer, Conv2D):
                kh, kw = layer.kernel
                sh, sw = layer.stride
                ph, pw = layer.padding
            rows, fan_in = layer.assign.shape
            lay.rows, lay.fan_in = rows, fan_in
            lay.kept = int((layer.assign >= 0).sum())
            lay.encoding = encoding.name
            if encoding == Encoding.HUFFMAN_SPARSE:
                k = len(layer.codebook)
                index_bits = layer.index_bits
                cb = np.asarray(layer.codebook, dtype=np.int64)
                if cb.min() < -128 or cb.max() > 127:
                    raise ConfigError(f"layer {i} ({layer.name}): codebook entries must be int8")
                cb_off = put(cb.astype(np.int8).tobytes())
                lay.codebook = len(body) - cb_off
                r, s = encode_relative(layer.assign, index_bits, k)
                n_entries = len(r)
                lay.n_entries, lay.fillers = n_entries, int((s == k).sum())
                lay.codebook_len, lay.index_bits = k, index_bits
            elif encoding == Encoding.DENSE_INT8:
                n_entries = rows * fan_in
            else:
                raise ConfigError(f"layer {i} ({layer.name}): encoding {encoding!r} has no weights")
            bias = np.asarray(layer.bias, dtype=np.int64)
            if bias.size and (bias.min() < -(2**31) or bias.max() >= 2**31):
                raise ConfigError(f"layer {i} ({layer.name}): a bias does not fit int32")
            bias_off = put(bias.astype("<i4").tobytes())
            lay.bias = len(body) - bias_off
            if encoding == Encoding.HUFFMAN_SPARSE:
                sec, lay.weight_stream = _huffman_section(
                    s, k + 1, max_code_len, lut_bits, f"layer {i} ({layer.name}) weight stream"
                )
                w_off = put(sec)
                lay.weights = len(body) - w_off
                sec, lay.relative_index_stream = _huffman_section(
                    r, 1 << index_bits, max_code_len, lut_bits, f"layer {i} ({layer.name}) index stream"
                )
                idx_off = put(sec)
                lay.index_stream = len(body) - idx_off
            else:
                w_off = put(dense_weights(layer).tobytes())
                lay.weights = len(body) - w_off
        ic, ih, iw = layer.in_shape
        oc, oh, ow = layer.out_shape
        _LAYER.pack_into(
            body, HEADER_BYTES + i * LAYER_BYTES,
            int(layer.op), int(encoding), index_bits,
            ic, ih, iw, oc, oh, ow,
            kh, kw, sh, sw, ph, pw,
            in_zp, out_zp, act_min, act_max, shift,
            mult, n_entries, cb_off, bias_off, w_off, idx_off, k,
        )  # fmt: skip
        layouts.append(lay)

    ic, ih, iw = model.input_shape
    arena = model.arena_bytes()
    _HEADER.pack_into(
        body, 0, MAGIC, FORMAT_VERSION, n, len(body), 0, ic, ih, iw, model.output_len, arena,
        ROUNDING_HALF_UP,
    )  # fmt: skip
    crc = zlib.crc32(bytes(body[16:])) & 0xFFFFFFFF
    struct.pack_into("<I", body, 12, crc)
    layout = BlobLayout(header=HEADER_BYTES, layers=layouts)
    assert layout.total == len(body), (layout.total, len(body))
    return bytes(body), layout


def encode_blob(model: IntegerModel, *, max_code_len: int = 12, lut_bits: int = 6) -> bytes:
    """Serialize ``model`` to the device blob (docs/format.md)."""
    return encode_blob_with_layout(model, max_code_len=max_code_len, lut_bits=lut_bits)[0]


def layer_byte_breakdown(
    model: IntegerModel, *, max_code_len: int = 12, lut_bits: int = 6
) -> list[dict[str, Any]]:
    """Per-layer byte accounting; with the header entry it sums to ``len(encode_blob(model))``."""
    _, layout = encode_blob_with_layout(model, max_code_len=max_code_len, lut_bits=lut_bits)
    return [{"index": -1, "op": "HEADER", "total": layout.header}] + [
        lay.as_dict() for lay in layout.layers
    ]


def _check_chain(model: IntegerModel) -> None:
    shape = tuple(model.input_shape)
    for i, layer in enumerate(model.layers):
        if tuple(layer.in_shape) != shape:
            raise ConfigError(
                f"layer {i} ({layer.name}) expects input shape {tuple(layer.in_shape)} but the "
                f"previous layer produces {shape}"
            )
        shape = tuple(layer.out_shape)
        if min(shape) <= 0:
            raise ConfigError(f"layer {i} ({layer.name}) produces an empty tensor {shape}")
        if max(shape) > 0xFFFF:
            raise ConfigError(f"layer {i} ({layer.name}): dimension above 65535 in {shape}")


# ----------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class BlobHeader:
    version: int
    n_layers: int
    blob_bytes: int
    crc32: int
    input_shape: tuple[int, int, int]
    out_len: int
    arena_bytes: int
    rounding: int


def read_header(data: bytes, source: str = "<blob>") -> BlobHeader:
    """Parse and check the header; the CRC is checked too."""
    if len(data) < HEADER_BYTES:
        raise FormatError(
            f"{source}: {len(data)} bytes is shorter than the {HEADER_BYTES}-byte model header; "
            "the file is truncated or not a .mcudc file"
        )
    magic, version, n, blob_bytes, crc, ic, ih, iw, out_len, arena, rounding = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError(
            f"{source}: bytes 0..3 are {magic!r}, not the magic {MAGIC!r}; this is not an mcu_dc "
            "model file (write one with `mcu-dc compress`)"
        )
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{source}: format version {version} at byte offset 4 is newer than this mcu_dc reads "
            f"({FORMAT_VERSION}); upgrade mcu_dc"
        )
    if version < 1:
        raise FormatError(f"{source}: format version {version} at byte offset 4 is invalid")
    if blob_bytes > len(data):
        raise FormatError(
            f"{source}: the header (byte offset 8) says the model blob is {blob_bytes} bytes but only "
            f"{len(data)} are present; the file is truncated — copy or regenerate it"
        )
    if blob_bytes < HEADER_BYTES + n * LAYER_BYTES or blob_bytes % 4:
        raise FormatError(f"{source}: blob length {blob_bytes} (byte offset 8) is inconsistent")
    actual = zlib.crc32(data[16:blob_bytes]) & 0xFFFFFFFF
    if actual != crc:
        raise FormatError(
            f"{source}: CRC mismatch (header at byte offset 12 says {crc:#010x}, bytes 16..{blob_bytes} "
            f"give {actual:#010x}); the file is corrupt — regenerate it"
        )
    if rounding != ROUNDING_HALF_UP:
        raise FormatError(f"{source}: unknown rounding rule {rounding} at byte offset 28")
    return BlobHeader(version, n, blob_bytes, crc, (ic, ih, iw), out_len, arena, rounding)


def _read_huffman(data: bytes, off: int, n: int, alphabet: int, where: str) -> np.ndarray:
    if off + HUFF_HEADER_BYTES > len(data) or off % 4:
        raise FormatError(f"{where}: Huffman section offset {off} is outside the blob or unaligned")
    max_len, k, n_sym, n_bits = _HUFF.unpack_from(data, off)
    if max_len > huffman.MAX_LEN_LIMIT or k > max_len:
        raise FormatError(f"{where}: Huffman header at byte offset {off} is invalid")
    p = off + HUFF_HEADER_BYTES
    counts = np.frombuffer(data, dtype="<u2", count=max_len, offset=p).astype(np.int64)
    p += 2 * max_len
    syms = np.frombuffer(data, dtype="<u2", count=n_sym, offset=p).astype(np.int64)
    p = align4(p + 2 * n_sym)
    if counts.sum() != n_sym or (len(syms) and syms.max() >= alphabet):
        raise FormatError(f"{where}: Huffman table at byte offset {off} is inconsistent")
    p = align4(p + 2 * (1 << k)) if k else p
    data_len = align4((n_bits + 7) // 8) + STREAM_SLACK_BYTES
    if p + data_len > len(data):
        raise FormatError(f"{where}: Huffman data at byte offset {p} runs past the blob's end")
    return huffman.decode(data[p : p + (n_bits + 7) // 8], n_bits, counts, syms, n)


def decode_blob(
    data: bytes, source: str = "<blob>", meta: dict[str, Any] | None = None
) -> IntegerModel:
    """Parse a blob back into an :class:`IntegerModel` (raises :class:`FormatError`)."""
    hdr = read_header(data, source)
    meta = meta or {}
    names = meta.get("layer_names") or [f"layer{i}" for i in range(hdr.n_layers)]
    layers: list[Layer] = []
    shape = hdr.input_shape
    for i in range(hdr.n_layers):
        base = HEADER_BYTES + i * LAYER_BYTES
        fields = _LAYER.unpack_from(data, base)
        (op, enc, ib, ic, ih, iw, oc, oh, ow, kh, kw, sh, sw, ph, pw, in_zp, out_zp, amin, amax,
         shift, mult, n_entries, cb_off, bias_off, w_off, idx_off, k) = fields  # fmt: skip
        where = f"{source}: layer {i} (descriptor at byte offset {base})"
        name = names[i] if i < len(names) else f"layer{i}"
        if (ic, ih, iw) != tuple(shape):
            raise FormatError(f"{where}: input shape {(ic, ih, iw)} does not follow {tuple(shape)}")
        try:
            op_e = Op(op)
        except ValueError:
            raise FormatError(f"{where}: unknown op {op}; written by a newer mcu_dc?") from None
        for off in (cb_off, bias_off, w_off, idx_off):
            if off and (off >= hdr.blob_bytes or off % 4):
                raise FormatError(f"{where}: section offset {off} is outside the blob or unaligned")
        layer: Layer
        if op_e == Op.MAXPOOL2D:
            layer = MaxPool2D(name, (ic, ih, iw), (kh, kw), (sh, sw), in_zp)
        else:
            try:
                enc_e = Encoding(enc)
            except ValueError:
                raise FormatError(f"{where}: unknown weight encoding {enc}") from None
            rows = oc
            fan_in = ic * kh * kw if op_e == Op.CONV2D else ic * ih * iw
            if bias_off + 4 * rows > hdr.blob_bytes:
                raise FormatError(f"{where}: bias runs past the blob's end")
            bias = np.frombuffer(data, dtype="<i4", count=rows, offset=bias_off).astype(np.int32)
            if enc_e == Encoding.HUFFMAN_SPARSE:
                if not (1 <= k <= MAX_CODEBOOK and 1 <= ib <= 8):
                    raise FormatError(f"{where}: codebook length {k} or index width {ib} invalid")
                codebook = np.frombuffer(data, dtype=np.int8, count=k, offset=cb_off).copy()
                s = _read_huffman(data, w_off, n_entries, k + 1, where + " weight stream")
                r = _read_huffman(data, idx_off, n_entries, 1 << ib, where + " index stream")
                assign = decode_relative(r, s, rows, fan_in, k, where)
            elif enc_e == Encoding.DENSE_INT8:
                if w_off + rows * fan_in > hdr.blob_bytes:
                    raise FormatError(f"{where}: dense weights run past the blob's end")
                w = np.frombuffer(data, dtype=np.int8, count=rows * fan_in, offset=w_off)
                codebook, inverse = np.unique(w, return_inverse=True)
                assign = np.where(w != 0, inverse, -1).astype(np.int16).reshape(rows, fan_in)
                codebook = codebook.astype(np.int8)
            else:
                raise FormatError(f"{where}: a weight layer with encoding NONE")
            try:
                requant = Requant(mult, shift)
            except ConfigError as exc:
                raise FormatError(f"{where}: {exc}") from None
            common = dict(
                codebook=codebook, assign=assign, bias=bias, requant=requant, in_zp=in_zp,
                out_zp=out_zp, act_min=amin, act_max=amax, encoding=enc_e,
                index_bits=ib if enc_e == Encoding.HUFFMAN_SPARSE else 0,
            )  # fmt: skip
            if op_e == Op.CONV2D:
                layer = Conv2D(name, (ic, ih, iw), oc, (kh, kw), (sh, sw), (ph, pw), **common)
            else:
                layer = FC(name, (ic, ih, iw), oc, **common)
        if tuple(layer.out_shape) != (oc, oh, ow):
            raise FormatError(f"{where}: output shape {(oc, oh, ow)} does not match its parameters")
        layers.append(layer)
        shape = layer.out_shape
    model = IntegerModel(
        layers=layers,
        input_shape=hdr.input_shape,
        input_scale=float(meta.get("input_scale", 1.0)),
        output_scale=float(meta.get("output_scale", 1.0)),
        output_zp=int(meta.get("output_zp", 0)),
        name=str(meta.get("name", "model")),
    )
    if model.output_len != hdr.out_len:
        raise FormatError(f"{source}: header out_len {hdr.out_len} differs from the layers' output")
    if model.arena_bytes() != hdr.arena_bytes:
        raise FormatError(f"{source}: header arena_bytes {hdr.arena_bytes} differs from the layers'")
    return model
