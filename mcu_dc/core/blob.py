"""The model blob: encode an :class:`IntegerModel` to bytes and decode it back.

Format version 2 (written): a header, a tensor table (shape, zero point, arena offset,
scale), an op table (64-byte descriptors naming input and output tensors) and each op's
sections; every record comes from the one field table :mod:`mcu_dc.core.layout`, and
every op packs and unpacks itself through the registry :mod:`mcu_dc.core.ops`. Version
1 blobs (a chain of 64-byte layer descriptors) are still read. docs/format.md is the
definition; the blob's length is, by construction, the sum of the byte breakdown the
compression report shows.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from mcu_dc.core import layout as L
from mcu_dc.core.ir import IntegerModel, Layer
from mcu_dc.core.ops import IO, REGISTRY, OpSpec, PackOptions, SectionReader, spec_of
from mcu_dc.core.ops.weights import STREAM_SLACK_BYTES, LayerLayout, StreamLayout, align4, pad4
from mcu_dc.core.planner import ArenaPlan, check_plan, plan_of, v1_plan
from mcu_dc.core.qmath import NO_TENSOR, ROUNDING_HALF_UP, Encoding, InputKind, Op
from mcu_dc.errors import ConfigError, FormatError

MAGIC = b"MCDC"
FORMAT_VERSION = 2
HEADER_BYTES = L.HEADER.size
TENSOR_BYTES = L.TENSOR.size
OP_BYTES = L.OP.size
LAYER_BYTES = OP_BYTES  # a v2 op descriptor and a v1 layer descriptor are both 64 bytes
HUFF_HEADER_BYTES = L.HUFF.size
# Weights one op may hold (rows x fan-in). The reader checks it before it decodes a matrix, and the
# writer before it writes one: 2^26 is far beyond any microcontroller's flash (the C runtime's own
# bound is 2^31 - 1), and keeps what a corrupt file can make the reader allocate to 128 MiB.
MAX_OP_WEIGHTS = 1 << 26

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "STREAM_SLACK_BYTES",
    "BlobHeader",
    "BlobLayout",
    "LayerLayout",
    "StreamLayout",
    "align4",
    "blob_sections",
    "decode_blob",
    "encode_blob",
    "encode_blob_with_layout",
    "layer_byte_breakdown",
    "read_header",
]


@dataclass
class BlobLayout:
    header: int
    tensor_table: int
    layers: list[LayerLayout] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.header + self.tensor_table + sum(layer.total for layer in self.layers)


class _Writer:
    def __init__(self, body: bytearray) -> None:
        self.body = body

    def put(self, data: bytes) -> int:
        off = len(self.body)
        self.body.extend(pad4(data))
        return off


def encode_blob_with_layout(
    model: IntegerModel, *, max_code_len: int = 12, lut_bits: int = 6
) -> tuple[bytes, BlobLayout]:
    """Serialize ``model`` (format version 2); return the blob and where its bytes went."""
    from mcu_dc.core import huffman

    if not 0 <= lut_bits <= huffman.MAX_LUT_BITS:
        raise ConfigError(f"Huffman lookup-table width {lut_bits} is outside 0..{huffman.MAX_LUT_BITS}")
    model.validate(model.name)
    for op in model.layers:
        n = int(getattr(op, "rows", 0)) * int(getattr(op, "fan_in", 0))
        if n > MAX_OP_WEIGHTS:
            raise ConfigError(
                f"{model.name}: {op.name} has {n} weights, over the {MAX_OP_WEIGHTS} one op of a model file "
                "may hold (no microcontroller's flash takes it); make the layer smaller"
            )
    plan = plan_of(model)
    check_plan(model, plan, f"{model.name}: arena plan")
    n_t, n_ops = model.n_tensors, len(model.layers)
    t_off = HEADER_BYTES
    op_off = t_off + n_t * TENSOR_BYTES
    body = bytearray(op_off + n_ops * OP_BYTES)
    w = _Writer(body)
    opts = PackOptions(max_code_len=max_code_len, lut_bits=lut_bits)
    layouts: list[LayerLayout] = []
    for i, op in enumerate(model.layers):
        spec = spec_of(op)
        try:
            f, lay = spec.pack(op, w, opts)
        except ConfigError as exc:
            raise ConfigError(f"{model.name}: op {i} ({op.name}, {spec.code.name}): {exc}") from None
        ins = list(op.inputs) + [NO_TENSOR] * (2 - len(op.inputs))
        scratch = plan.scratch_offsets[i] if spec.scratch_bytes(op) else 0
        f.update(
            op=int(spec.code),
            n_inputs=len(op.inputs),
            input0=ins[0],
            input1=ins[1],
            output=op.output,
            scratch_off=scratch,
        )
        L.OP.pack_into(body, op_off + i * OP_BYTES, f)
        lay.index, lay.op, lay.descriptor = i, spec.code.name, OP_BYTES
        layouts.append(lay)
    shapes, zps = model.tensor_shapes(), model.tensor_zps()
    scales = list(model.tensor_scales or [0.0] * n_t)
    if not model.tensor_scales:  # without a full list, the two scales every model knows
        scales[model.input_tensor], scales[model.output_tensor] = model.input_scale, model.output_scale
    for t in range(n_t):
        c, h, wd = shapes[t]
        scale = float(scales[t]) if t < len(scales) else 0.0
        L.TENSOR.pack_into(
            body,
            t_off + t * TENSOR_BYTES,
            dict(c=c, h=h, w=wd, zp=zps[t], arena_off=plan.tensor_offsets[t], scale=scale),
        )
    L.HEADER.pack_into(
        body,
        0,
        dict(
            magic=MAGIC,
            format_version=FORMAT_VERSION,
            n_ops=n_ops,
            blob_bytes=len(body),
            n_tensors=n_t,
            input_tensor=model.input_tensor,
            output_tensor=model.output_tensor,
            input_kind=int(model.input_kind),
            rounding=ROUNDING_HALF_UP,
            arena_bytes=plan.arena_bytes,
            tensor_table_off=t_off,
            op_table_off=op_off,
        ),
    )
    body = bytearray(with_crc(body))
    layout = BlobLayout(HEADER_BYTES, n_t * TENSOR_BYTES, layouts)
    assert layout.total == len(body), (layout.total, len(body))
    return bytes(body), layout


def with_crc(blob: bytes | bytearray) -> bytes:
    """``blob`` (either version) with its header CRC-32 (the model hash) set over ``[16, blob_bytes)``."""
    b = bytearray(blob)
    bb = int.from_bytes(b[8:12], "little")
    end = bb if 16 <= bb <= len(b) else len(b)
    b[12:16] = (zlib.crc32(bytes(b[16:end])) & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(b)


def encode_blob(model: IntegerModel, *, max_code_len: int = 12, lut_bits: int = 6) -> bytes:
    """Serialize ``model`` to the device blob (docs/format.md)."""
    return encode_blob_with_layout(model, max_code_len=max_code_len, lut_bits=lut_bits)[0]


def layer_byte_breakdown(
    model: IntegerModel, *, max_code_len: int = 12, lut_bits: int = 6
) -> list[dict[str, Any]]:
    """Per-op byte accounting; with the header and tensor-table entries it sums to the blob's length."""
    _, lay = encode_blob_with_layout(model, max_code_len=max_code_len, lut_bits=lut_bits)
    return [
        {"index": -2, "op": "HEADER", "total": lay.header},
        {"index": -1, "op": "TENSOR_TABLE", "total": lay.tensor_table},
    ] + [x.as_dict() for x in lay.layers]


# ----------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class BlobHeader:
    version: int
    n_layers: int  # ops (v2) or layers (v1)
    blob_bytes: int
    crc32: int
    input_shape: tuple[int, int, int]
    out_len: int
    arena_bytes: int
    rounding: int
    input_kind: int = int(InputKind.UINT8)


def _fail(source: str, msg: str) -> FormatError:
    return FormatError(f"{source}: {msg}")


def read_header(data: bytes, source: str = "<blob>") -> BlobHeader:
    """Parse and check the header (either version); the CRC is checked too."""
    if len(data) < 16:
        raise _fail(
            source,
            f"{len(data)} bytes is shorter than a model header; the file is truncated or not a .mcudc file",
        )
    magic = bytes(data[:4])
    if magic != MAGIC:
        raise _fail(
            source,
            f"bytes 0..3 are {magic!r}, not the magic {MAGIC!r}; this is not an mcu_dc model file "
            "(write one with `mcu-dc compress`)",
        )
    version = int.from_bytes(data[4:6], "little")
    if version > FORMAT_VERSION:
        raise _fail(
            source,
            f"format version {version} at byte offset 4 is newer than this mcu_dc reads "
            f"({FORMAT_VERSION}); upgrade mcu_dc",
        )
    if version < 1:
        raise _fail(source, f"format version {version} at byte offset 4 is invalid")
    rec = L.HEADER_V1 if version == 1 else L.HEADER
    if len(data) < rec.size:
        raise _fail(
            source,
            f"{len(data)} bytes is shorter than the {rec.size}-byte version {version} header; "
            "the file is truncated",
        )
    h = rec.unpack_from(data)
    bb = h["blob_bytes"]
    if bb > len(data):
        raise _fail(
            source,
            f"the header (byte offset 8) says the model blob is {bb} bytes but only {len(data)} "
            "are present; the file is truncated — copy or regenerate it",
        )
    n = h["n_layers"] if version == 1 else h["n_ops"]
    tables = HEADER_BYTES + n * OP_BYTES if version == 2 else L.HEADER_V1.size + n * L.LAYER_V1.size
    if bb < tables or bb % 4:
        raise _fail(source, f"blob length {bb} (byte offset 8) is inconsistent with {n} ops")
    actual = zlib.crc32(data[16:bb]) & 0xFFFFFFFF
    if actual != h["crc32"]:
        raise _fail(
            source,
            f"CRC mismatch (header at byte offset 12 says {h['crc32']:#010x}, bytes 16..{bb} give "
            f"{actual:#010x}); the file is corrupt — regenerate it",
        )
    if h["rounding"] != ROUNDING_HALF_UP:
        off = rec.offsets["rounding"]
        raise _fail(source, f"unknown rounding rule {h['rounding']} at byte offset {off}")
    if version == 1:
        return BlobHeader(
            1,
            n,
            bb,
            h["crc32"],
            (h["in_c"], h["in_h"], h["in_w"]),
            h["out_len"],
            h["arena_bytes"],
            h["rounding"],
        )
    tt = _tensor_table(data, h, bb, source)
    try:
        ins, outs = tt[h["input_tensor"]], tt[h["output_tensor"]]
    except IndexError:
        raise _fail(
            source,
            f"input tensor {h['input_tensor']} or output tensor {h['output_tensor']} (byte offsets "
            f"18, 20) is not in the {len(tt)}-entry tensor table",
        ) from None
    if h["input_kind"] not in tuple(InputKind):
        raise _fail(source, f"unknown input kind {h['input_kind']} at byte offset 22")
    return BlobHeader(
        2,
        n,
        bb,
        h["crc32"],
        (ins["c"], ins["h"], ins["w"]),
        outs["c"] * outs["h"] * outs["w"],
        h["arena_bytes"],
        h["rounding"],
        h["input_kind"],
    )


def _tensor_table(data: bytes, h: dict[str, Any], bb: int, source: str) -> list[dict[str, Any]]:
    n_t, off = h["n_tensors"], h["tensor_table_off"]
    if off != HEADER_BYTES or off + n_t * TENSOR_BYTES > bb:
        raise _fail(
            source,
            f"tensor table at byte offset {off} ({n_t} entries, field at byte offset 28) does not "
            "fit the blob",
        )
    if h["op_table_off"] != off + n_t * TENSOR_BYTES:
        raise _fail(
            source, f"op table offset {h['op_table_off']} (byte offset 32) does not follow the tensor table"
        )
    out = []
    for t in range(n_t):
        e = L.TENSOR.unpack_from(data, off + t * TENSOR_BYTES)
        if min(e["c"], e["h"], e["w"]) == 0:
            raise _fail(source, f"tensor {t} (byte offset {off + t * TENSOR_BYTES}) has an empty shape")
        out.append(e)
    return out


def decode_blob(data: bytes, source: str = "<blob>", meta: dict[str, Any] | None = None) -> IntegerModel:
    """Parse a blob (version 1 or 2) back into an :class:`IntegerModel` (raises :class:`FormatError`)."""
    hdr = read_header(data, source)
    meta = meta or {}
    if hdr.version == 1:
        return _decode_v1(data, hdr, source, meta)
    h = L.HEADER.unpack_from(data)
    tt = _tensor_table(data, h, hdr.blob_bytes, source)
    names = list(meta.get("layer_names") or [])
    reader = SectionReader(data, hdr.blob_bytes, source)
    ops: list[Layer] = []
    scratch: list[int] = []
    for i in range(hdr.n_layers):
        base = h["op_table_off"] + i * OP_BYTES
        f = L.OP.unpack_from(data, base)
        name = str(names[i]) if i < len(names) else f"op{i}"
        where = f"{source}: op {i} ({name}, descriptor at byte offset {base})"
        try:
            spec = REGISTRY[Op(f["op"])]
        except ValueError:
            raise FormatError(f"{where}: unknown op code {f['op']}; written by a newer mcu_dc?") from None
        ins = [f["input0"], f["input1"]][: f["n_inputs"]]
        if f["n_inputs"] != spec.n_inputs or any(t >= len(tt) for t in [*ins, f["output"]]):
            raise FormatError(
                f"{where}: inputs {ins} / output {f['output']} do not name {spec.n_inputs} input "
                f"tensor(s) of the {len(tt)}-entry tensor table"
            )
        io = IO(
            [(tt[t]["c"], tt[t]["h"], tt[t]["w"]) for t in ins],
            [tt[t]["zp"] for t in ins],
            (tt[f["output"]]["c"], tt[f["output"]]["h"], tt[f["output"]]["w"]),
            tt[f["output"]]["zp"],
        )
        reader.where = where
        op = _unpack(spec, f, reader, name, io, where, base, L.OP)
        op.inputs, op.output = tuple(ins), f["output"]
        try:
            spec.check(op, where)
        except ConfigError as exc:
            raise FormatError(str(exc)) from None
        if tuple(spec.out_shape(op)) != io.out_shape:
            raise FormatError(
                f"{where}: its parameters give output shape {spec.out_shape(op)} but tensor "
                f"{f['output']} is {io.out_shape}"
            )
        if not spec.scratch_bytes(op) and f["scratch_off"]:
            raise FormatError(f"{where}: scratch offset {f['scratch_off']} for an op that needs no scratch")
        scratch.append(f["scratch_off"])
        ops.append(op)
    inp = tt[h["input_tensor"]]
    outp = tt[h["output_tensor"]]
    model = IntegerModel(
        layers=ops,
        input_shape=(inp["c"], inp["h"], inp["w"]),
        input_scale=float(meta.get("input_scale", inp["scale"] or 1.0)),
        output_scale=float(meta.get("output_scale", outp["scale"] or 1.0)),
        output_zp=int(outp["zp"]),
        name=str(meta.get("name", "model")),
        input_kind=InputKind(h["input_kind"]),
        input_zp=int(inp["zp"]),
        input_tensor=h["input_tensor"],
        output_tensor=h["output_tensor"],
        tensor_scales=[float(e["scale"]) for e in tt],
        plan=ArenaPlan(tuple(e["arena_off"] for e in tt), tuple(scratch), h["arena_bytes"]),
        task=str(meta.get("task", "classification")),
    )
    _check_decoded(model, source)
    return model


def _unpack(
    spec: OpSpec,
    f: dict[str, Any],
    reader: SectionReader,
    name: str,
    io: IO,
    where: str,
    base: int,
    rec: L.Record,
) -> Layer:
    """``spec.unpack`` once the op's weight matrix is known to be of a size a model file can hold; its
    errors name the file and the descriptor's byte offset."""
    fan_in_of = getattr(spec.ir_type, "fan_in", None)
    if spec.has_weights and isinstance(fan_in_of, property) and fan_in_of.fget is not None:
        probe = SimpleNamespace(in_shape=io.in_shapes[0], kernel=(f["kernel_h"], f["kernel_w"]))
        rows, fan_in = io.out_shape[0], int(fan_in_of.fget(probe))
        if rows * fan_in > MAX_OP_WEIGHTS:
            unit = int(fan_in_of.fget(SimpleNamespace(in_shape=io.in_shapes[0], kernel=(1, 1))))
            kernel = ""
            if unit != fan_in:  # the kernel fields count in this op's fan-in
                kh, kw = base + rec.offsets["kernel_h"], base + rec.offsets["kernel_w"]
                kernel = f" and kernel_h {f['kernel_h']}, kernel_w {f['kernel_w']} (byte offsets {kh}, {kw})"
            raise FormatError(
                f"{where}: its weight matrix would be {rows}x{fan_in} = {rows * fan_in} weights (rows: the "
                f"output tensor's channels; fan-in from the input tensor's shape {tuple(io.in_shapes[0])}"
                f"{kernel}), over the {MAX_OP_WEIGHTS} one op may hold; the file is corrupt"
            )
    try:
        return spec.unpack(f, reader, name, io)
    except FormatError as exc:
        msg = str(exc)
        if msg.startswith(where):
            raise
        msg = msg[len(name) + 2 :] if msg.startswith(f"{name}: ") else msg
        raise FormatError(f"{where}: {msg}") from None


def _check_decoded(model: IntegerModel, source: str) -> None:
    from mcu_dc.core.planner import buffers

    try:
        model.validate(source)
        check_plan(model, model.plan, f"{source}: stored arena plan")
    except ConfigError as exc:
        raise FormatError(
            f"{exc}; the file is corrupt or was written by a buggy encoder — regenerate it"
        ) from None
    tensors, scratch = buffers(model)
    offs = list(model.plan.tensor_offsets) + list(model.plan.scratch_offsets)
    end = max(off + align4(b.size) for b, off in zip(tensors + scratch, offs, strict=True) if b.size)
    if end != model.plan.arena_bytes:
        raise FormatError(
            f"{source}: header arena_bytes {model.plan.arena_bytes} (byte offset 24) is not the plan's "
            f"extent {end}"
        )


def _decode_v1(data: bytes, hdr: BlobHeader, source: str, meta: dict[str, Any]) -> IntegerModel:
    """Version 1: a chain of layer descriptors; the arena is the fixed ping-pong layout."""
    names = list(meta.get("layer_names") or [])
    reader = SectionReader(data, hdr.blob_bytes, source)
    ops: list[Layer] = []
    shape = hdr.input_shape
    zp = -128
    for i in range(hdr.n_layers):
        base = L.HEADER_V1.size + i * L.LAYER_V1.size
        f = L.LAYER_V1.unpack_from(data, base)
        name = str(names[i]) if i < len(names) else f"layer{i}"
        where = f"{source}: layer {i} (descriptor at byte offset {base})"
        if (f["in_c"], f["in_h"], f["in_w"]) != tuple(shape):
            raise FormatError(
                f"{where}: input shape {(f['in_c'], f['in_h'], f['in_w'])} does not follow {shape}"
            )
        if f["op"] not in (Op.CONV2D, Op.FC, Op.MAXPOOL2D):
            raise FormatError(f"{where}: unknown op {f['op']}; written by a newer mcu_dc?")
        spec = REGISTRY[Op(f["op"])]
        if f["encoding"] > Encoding.HUFFMAN_SPARSE:
            raise FormatError(f"{where}: encoding {f['encoding']} did not exist in format version 1")
        if f["in_zp"] != zp:
            raise FormatError(
                f"{where}: input zero point {f['in_zp']} differs from the previous output's {zp}"
            )
        g = dict(f)  # v1 fields -> v2 names
        g.update(pad_top=f["pad_h"], pad_bottom=f["pad_h"], pad_left=f["pad_w"], pad_right=f["pad_w"])
        g.update(pool_kh=0, pool_kw=0, pool_sh=0, pool_sw=0, multiplier_b=0)
        out_shape = (f["out_c"], f["out_h"], f["out_w"])
        reader.where = where
        io = IO([tuple(shape)], [zp], out_shape, f["out_zp"])  # type: ignore[list-item]
        op = _unpack(spec, g, reader, name, io, where, base, L.LAYER_V1)
        try:
            spec.check(op, where)
        except ConfigError as exc:
            raise FormatError(str(exc)) from None
        if tuple(spec.out_shape(op)) != out_shape:
            raise FormatError(f"{where}: output shape {out_shape} does not match its parameters")
        ops.append(op)
        shape, zp = out_shape, spec.out_zp(op)
    model = IntegerModel(
        layers=ops,
        input_shape=hdr.input_shape,
        input_scale=float(meta.get("input_scale", 1.0)),
        output_scale=float(meta.get("output_scale", 1.0)),
        output_zp=int(meta.get("output_zp", zp)),
        name=str(meta.get("name", "model")),
        task=str(meta.get("task", "classification")),
    )
    model.plan = v1_plan(model)
    model.tensor_scales = [0.0] * model.n_tensors
    model.tensor_scales[0], model.tensor_scales[-1] = model.input_scale, model.output_scale
    if model.output_len != hdr.out_len:
        raise FormatError(f"{source}: header out_len {hdr.out_len} differs from the layers' output")
    if model.plan.arena_bytes != hdr.arena_bytes:
        raise FormatError(f"{source}: header arena_bytes {hdr.arena_bytes} differs from the layers'")
    return model


def blob_sections(blob: bytes, names: list[str] | None = None) -> list[tuple[int, str]]:
    """(start offset, label) of every part of a blob (either version), sorted by offset."""
    hdr = read_header(blob, "<blob>")
    names = names or []
    out: list[tuple[int, str]] = [(0, "header")]
    if hdr.version == 1:
        table, rec, label = L.HEADER_V1.size, L.LAYER_V1, "layer"
        out.append((table, f"layer table ({hdr.n_layers} x {rec.size}-byte descriptors)"))
    else:
        h = L.HEADER.unpack_from(blob)
        out.append((h["tensor_table_off"], f"tensor table ({h['n_tensors']} x {TENSOR_BYTES}-byte entries)"))
        table, rec, label = h["op_table_off"], L.OP, "op"
        out.append((table, f"op table ({hdr.n_layers} x {rec.size}-byte descriptors)"))
    for i in range(hdr.n_layers):
        f = rec.unpack_from(blob, table + i * rec.size)
        try:
            opname = Op(f["op"]).name
        except ValueError:
            opname = f"op {f['op']}"
        tag = f"{label} {i} ({names[i]}, {opname})" if i < len(names) else f"{label} {i} ({opname})"
        weights = {
            Encoding.DENSE_INT8: "weights (int8, row-major)",
            Encoding.COLUMN_SPARSE: "column-sparse stream",
            Encoding.TERNARY: "ternary bit-planes (u32 words)",
            Encoding.BINARY: "binary sign bit-plane (u32 words)",
            Encoding.HUFFMAN_JOINT: "joint (run, symbol) stream (Huffman section)",
        }.get(f["encoding"], "weight-symbol stream (Huffman section)")
        for key, part in (
            ("codebook_off", "codebook (int8)"),
            ("bias_off", "bias (int32 LE)"),
            ("weights_off", weights),
            ("index_off", "relative-index stream (Huffman section)"),
        ):
            if f[key]:
                out.append((f[key], f"{tag}: {part}"))
    out.sort()
    return out
