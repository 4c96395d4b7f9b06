"""What every weight op (conv, depthwise conv, FC) shares: the weight fields of the IR,
their checks, the product with the weights, and packing to and from the blob.

A weight op stores ``W[rows][fan_in]`` as a per-op int8 codebook plus an assignment
matrix (codebook index, -1 = pruned), an int32 bias per row, and the requantization of
its accumulators. The encodings (docs/format.md) are DENSE_INT8, HUFFMAN_SPARSE (two
Huffman streams), HUFFMAN_JOINT (the same entries, each (run, symbol) pair one Huffman code:
one decode per entry, and usually smaller still), COLUMN_SPARSE (FC only, the fastest:
mcu_dc/core/colsparse.py) and the bit-plane encodings TERNARY and BINARY for codebooks of at most 2 entries
(mcu_dc/core/bitplanes.py); the reference kernels on the device read any of them through one
weight-reader interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcu_dc.core import bitplanes, colsparse, huffman
from mcu_dc.core.layout import HUFF
from mcu_dc.core.ops.base import PackOptions, SectionReader, SectionWriter
from mcu_dc.core.qmath import MAX_CODEBOOK, MAX_INDEX_BITS, Encoding, Op, Requant, check_int8, joint_ok
from mcu_dc.core.sparse import decode_relative, encode_relative
from mcu_dc.errors import ConfigError, FormatError

STREAM_SLACK_BYTES = 4
MAX_TABLE_BITS = 12  # widest decode table a compact HUFFMAN_JOINT FC builds in its scratch (8 KB)


def align4(n: int) -> int:
    return (n + 3) & ~3


def pad4(b: bytes) -> bytes:
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
    """Bytes an op takes in the blob, by part; ``total`` sums them."""

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
    descriptor: int = 0
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


def dense_weights(op: Any) -> np.ndarray:
    """The int8 weight matrix ``(rows, fan_in)`` a weight op's codebook and assignment stand for."""
    cb = np.asarray(op.codebook, dtype=np.int32)
    a = np.asarray(op.assign)
    if cb.size == 0:
        return np.zeros(a.shape, dtype=np.int8)
    w = np.where(a >= 0, cb[np.clip(a, 0, None)], 0)
    return w.astype(np.int8)


def check_weights(op: Any, rows: int, fan_in: int, where: str) -> None:
    k = len(op.codebook)
    if op.encoding == Encoding.HUFFMAN_SPARSE:
        if not 1 <= k <= MAX_CODEBOOK:
            raise ConfigError(f"{where}: codebook has {k} entries; it must have 1..{MAX_CODEBOOK}")
        if not 1 <= int(op.index_bits) <= MAX_INDEX_BITS:
            raise ConfigError(f"{where}: relative-index width {op.index_bits} is outside 1..{MAX_INDEX_BITS}")
    elif op.encoding == Encoding.HUFFMAN_JOINT:
        tb = int(getattr(op, "table_bits", 0))
        if not 0 <= tb <= MAX_TABLE_BITS:
            raise ConfigError(f"{where}: decode table width table_bits {tb} is outside 0..{MAX_TABLE_BITS}")
        if not joint_ok(k, int(op.index_bits)):
            raise ConfigError(
                f"{where}: HUFFMAN_JOINT needs (codebook entries + 1) << index_bits <= 4096 (12-bit "
                f"symbols) with 1..{MAX_CODEBOOK} entries and index_bits 1..{MAX_INDEX_BITS}; this op has "
                f"{k} entries and index_bits {op.index_bits}: use fewer index bits or HUFFMAN_SPARSE"
            )
    elif op.encoding == Encoding.COLUMN_SPARSE:
        if not 1 <= k <= colsparse.MAX_K:
            raise ConfigError(
                f"{where}: COLUMN_SPARSE needs a codebook of 1..{colsparse.MAX_K} entries (a 4-bit index); "
                f"it has {k}: use HUFFMAN_SPARSE or fewer clusters"
            )
        if getattr(op, "op", None) != Op.FC:
            raise ConfigError(f"{where}: COLUMN_SPARSE is an FC encoding; this op is {op.op.name}")
    elif op.encoding in (Encoding.TERNARY, Encoding.BINARY):
        bitplanes.check_assign(op.assign, k, op.encoding, where)
    elif op.encoding != Encoding.DENSE_INT8:
        raise ConfigError(f"{where}: weight encoding {op.encoding!r} is not one a weight op can use")
    if int(getattr(op, "table_bits", 0)) and op.encoding != Encoding.HUFFMAN_JOINT:
        raise ConfigError(f"{where}: table_bits (a RAM decode table) is for HUFFMAN_JOINT weights only")
    cb = np.asarray(op.codebook, dtype=np.int64)
    if cb.size and (cb.min() < -128 or cb.max() > 127):
        raise ConfigError(f"{where}: codebook entries must be int8")
    a = np.asarray(op.assign)
    if a.shape != (rows, fan_in):
        raise ConfigError(f"{where}: assignment matrix is {a.shape}, expected {(rows, fan_in)}")
    if a.size and (a.max() >= max(k, 1) or a.min() < -1):
        raise ConfigError(f"{where}: assignment indices must be -1 (pruned) or 0..{k - 1}")
    bias = np.asarray(op.bias, dtype=np.int64)
    if bias.shape != (rows,):
        raise ConfigError(f"{where}: bias has shape {bias.shape}, expected {(rows,)}")
    if bias.size and (bias.min() < -(2**31) or bias.max() >= 2**31):
        raise ConfigError(f"{where}: a bias does not fit int32")
    check_int8(where, in_zp=op.in_zp, out_zp=op.out_zp, act_min=op.act_min, act_max=op.act_max)
    if op.act_min > op.act_max:
        raise ConfigError(f"{where}: act_min {op.act_min} > act_max {op.act_max}")


def accumulate(op: Any, cols: np.ndarray) -> np.ndarray:
    """int32 accumulators ``bias + cols @ W.T`` for im2col rows ``cols`` (M, fan_in) of ``x - in_zp``."""
    from mcu_dc.core.qmath import int_matmul, wrap_int32

    w = dense_weights(op).astype(np.int64)
    acc = int_matmul(np.ascontiguousarray(cols), w.T) + np.asarray(op.bias, dtype=np.int64)[None, :]
    return wrap_int32(acc)


def requant_out(op: Any, acc: np.ndarray) -> np.ndarray:
    from mcu_dc.core.qmath import clamp_out, round_shift

    return clamp_out(
        round_shift(acc, op.requant.multiplier, op.requant.shift), op.out_zp, op.act_min, op.act_max
    )


def _huffman_section(
    symbols: np.ndarray, alphabet: int, opts: PackOptions, where: str, table_bits: int = 0
) -> tuple[bytes, StreamLayout]:
    """One Huffman section; ``table_bits`` > 0 writes the compact form (code lengths, no lookup table,
    codes of at most ``table_bits`` bits: the kernel builds its table in the op's scratch)."""
    limit = min(opts.max_code_len, table_bits) if table_bits else opts.max_code_len
    try:
        table = huffman.build_table(symbols, alphabet, limit)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    max_len = table.max_len
    data, n_bits = huffman.encode(symbols, table)
    counts = table.counts.astype("<u2")
    if table_bits:
        layout = stream_layout(int((table.lengths > 0).sum()), n_bits, max_len, 0, compact_alphabet=alphabet)
        head = pad4(
            HUFF.struct.pack(max_len, huffman.COMPACT_FLAG, layout.n_symbols, n_bits)
            + counts.tobytes()
            + huffman.compact_table(table.lengths, alphabet)
        )
        lut = b""
    else:
        syms = table.symbols.astype("<u2")
        layout = stream_layout(len(syms), n_bits, max_len, opts.lut_bits)
        k = layout.lut_bits
        head = pad4(HUFF.struct.pack(max_len, k, len(syms), n_bits) + counts.tobytes() + syms.tobytes())
        lut = pad4(table.lut(k).astype("<u2").tobytes()) if k else b""
    payload = data + bytes(align4(len(data)) - len(data) + STREAM_SLACK_BYTES)
    assert (len(head), len(lut), len(payload)) == (layout.table_bytes, layout.lut_bytes, layout.data_bytes)
    return head + lut + payload, layout


def stream_layout(
    n_symbols: int, n_bits: int, max_len: int, lut_bits: int, *, compact_alphabet: int = 0
) -> StreamLayout:
    """The bytes of a Huffman section (docs/format.md) with these codes and at most ``lut_bits``;
    with ``compact_alphabet`` the compact form over that alphabet (no lookup table)."""
    if compact_alphabet:
        table = HUFF.size + 2 * max_len + huffman.compact_table_bytes(compact_alphabet, n_symbols)
        k, lut_bytes = 0, 0
    else:
        table = HUFF.size + 2 * max_len + 2 * n_symbols
        k = min(lut_bits, max_len)
        lut_bytes = align4(2 << k) if k else 0
    return StreamLayout(
        n_symbols=n_symbols, n_bits=n_bits, max_len=max_len, lut_bits=k,
        table_bytes=align4(table), lut_bytes=lut_bytes,
        data_bytes=align4((n_bits + 7) // 8) + STREAM_SLACK_BYTES,
    )  # fmt: skip


def _joint_lengths(
    assign: np.ndarray, k: int, index_bits: int, max_code_len: int
) -> tuple[np.ndarray, np.ndarray]:
    r, s = encode_relative(assign, index_bits, k)
    freqs = np.bincount((s.astype(np.int64) << index_bits) | r, minlength=(k + 1) << index_bits)
    return freqs, huffman.code_lengths(freqs, max_code_len)


def joint_section_bytes(
    assign: np.ndarray, k: int, index_bits: int, max_code_len: int, lut_bits: int, *, compact: bool = False
) -> int:
    """Bytes of the HUFFMAN_JOINT section of ``assign`` with ``index_bits``-bit runs (table, lookup
    table and coded data, as :func:`pack_weights` writes it), from the code lengths alone; ``compact``:
    the compact form with codes of at most ``min(max_code_len, MAX_TABLE_BITS)`` bits."""
    if compact:
        max_code_len = min(max_code_len, MAX_TABLE_BITS)
    freqs, lengths = _joint_lengths(assign, k, index_bits, max_code_len)
    used = int((lengths > 0).sum())
    max_len = int(lengths.max()) if used else 0
    alphabet = ((k + 1) << index_bits) if compact else 0
    n_bits = int((freqs * lengths).sum())
    return stream_layout(used, n_bits, max_len, lut_bits, compact_alphabet=alphabet).total


def joint_table_bits(assign: np.ndarray, k: int, index_bits: int, max_code_len: int = 12) -> int:
    """The decode-table width a compact HUFFMAN_JOINT FC needs: its longest code (at least 1), with
    codes limited to ``min(max_code_len, MAX_TABLE_BITS)`` bits."""
    _, lengths = _joint_lengths(assign, k, index_bits, min(max_code_len, MAX_TABLE_BITS))
    return max(int(lengths.max(initial=0)), 1)


def best_joint_index_bits(
    assign: np.ndarray, k: int, *, max_code_len: int = 12, lut_bits: int = 6, compact: bool = False
) -> int:
    """The run width (1..8, within HUFFMAN_JOINT's 12-bit alphabet) that stores ``assign`` in the
    fewest bytes; 0 when no width fits (``k`` over 255 needs at most 3 bits, so never for k <= 256 with
    12-bit codes; a shorter ``max_code_len`` skips the widths with more distinct pairs than its codes).
    Dense-ish layers take 1 bit (a run of 0 or 1, longer gaps through fillers): the pair code then
    spends no whole bit per entry on runs that are almost always 0, as a separate run stream must."""
    best: tuple[int, int] | None = None
    for b in range(1, MAX_INDEX_BITS + 1):
        if not joint_ok(k, b):
            break
        try:
            size = joint_section_bytes(assign, k, b, max_code_len, lut_bits, compact=compact)
        except ConfigError:  # more distinct (run, symbol) pairs than codes of max_code_len bits
            continue
        if best is None or size < best[0]:
            best = (size, b)
    return best[1] if best else 0


def pack_weights(
    op: Any, rows: int, fan_in: int, w: SectionWriter, opts: PackOptions, lay: Any
) -> dict[str, int]:
    """Write codebook, bias and weight sections; fill ``lay`` (a LayerLayout); return descriptor fields."""
    enc = Encoding(op.encoding)
    f: dict[str, int] = {"encoding": int(enc), "shift": op.requant.shift, "multiplier": op.requant.multiplier}
    f["act_min"], f["act_max"] = int(op.act_min), int(op.act_max)
    lay.encoding = enc.name
    lay.rows, lay.fan_in = rows, fan_in
    lay.kept = int((np.asarray(op.assign) >= 0).sum())
    if enc in (Encoding.HUFFMAN_SPARSE, Encoding.HUFFMAN_JOINT):  # the same entries, coded two ways
        k = len(op.codebook)
        cb_off = w.put(np.asarray(op.codebook, dtype=np.int64).astype(np.int8).tobytes())
        lay.codebook = align4(k)
        r, s = encode_relative(op.assign, int(op.index_bits), k)
        f.update(codebook_off=cb_off, codebook_len=k, index_bits=int(op.index_bits), n_entries=len(r))
        lay.n_entries, lay.fillers = len(r), int((s == k).sum())
        lay.codebook_len, lay.index_bits = k, int(op.index_bits)
    elif enc == Encoding.COLUMN_SPARSE:
        k = len(op.codebook)
        cb_off = w.put(np.asarray(op.codebook, dtype=np.int64).astype(np.int8).tobytes())
        lay.codebook, lay.codebook_len = align4(k), k
        f.update(codebook_off=cb_off, codebook_len=k, n_entries=lay.kept)
    elif enc in (Encoding.TERNARY, Encoding.BINARY):
        k = len(op.codebook)
        cb_off = w.put(np.asarray(op.codebook, dtype=np.int64).astype(np.int8).tobytes())
        lay.codebook, lay.codebook_len = align4(k), k
        f.update(codebook_off=cb_off, codebook_len=k)
        f["n_entries"] = lay.kept if enc == Encoding.TERNARY else rows * fan_in
        lay.n_entries = f["n_entries"]
    else:
        f["n_entries"] = rows * fan_in
    bias = np.asarray(op.bias, dtype=np.int64).astype("<i4").tobytes()
    f["bias_off"] = w.put(bias)
    lay.bias = align4(len(bias))
    if enc == Encoding.HUFFMAN_SPARSE:
        sec, lay.weight_stream = _huffman_section(s, k + 1, opts, "weight stream")
        f["weights_off"] = w.put(sec)
        lay.weights = align4(len(sec))
        sec, lay.relative_index_stream = _huffman_section(r, 1 << int(op.index_bits), opts, "index stream")
        f["index_off"] = w.put(sec)
        lay.index_stream = align4(len(sec))
    elif enc == Encoding.HUFFMAN_JOINT:
        joint = (s.astype(np.int64) << int(op.index_bits)) | r.astype(np.int64)
        tb = int(getattr(op, "table_bits", 0))
        alphabet = (k + 1) << int(op.index_bits)
        sec, lay.weight_stream = _huffman_section(joint, alphabet, opts, "joint stream", tb)
        f["table_bits"] = tb
        f["weights_off"] = w.put(sec)
        lay.weights = align4(len(sec))
    elif enc == Encoding.COLUMN_SPARSE:
        sec, stats = colsparse.pack_section(op.assign, k)
        f["weights_off"] = w.put(sec)
        lay.weights, lay.n_entries, lay.fillers = len(sec), stats.entry_bytes, stats.skips
    elif enc in (Encoding.TERNARY, Encoding.BINARY):
        sec = bitplanes.pack_section(op.assign, k, enc)
        f["weights_off"] = w.put(sec)
        lay.weights = len(sec)
    else:
        dense = dense_weights(op).tobytes()
        f["weights_off"] = w.put(dense)
        lay.weights = align4(len(dense))
    return f


def _read_huffman(
    r: SectionReader, off: int, n: int, alphabet: int, where: str, table_bits: int = 0
) -> np.ndarray:
    r.span(off, HUFF.size, f"{where} Huffman section")
    max_len, k, n_sym, n_bits = HUFF.struct.unpack_from(r.data, off)
    compact = k == huffman.COMPACT_FLAG
    if compact != (table_bits > 0):
        raise FormatError(
            f"{where}: Huffman section at byte offset {off} is {'compact' if compact else 'not compact'} but "
            f"the op descriptor's table_bits is {table_bits}: a compact section goes with table_bits 1.."
            f"{MAX_TABLE_BITS}, any other with 0"
        )
    if compact:
        k = 0
        if max_len > table_bits:
            raise FormatError(
                f"{where}: compact Huffman section at byte offset {off} has codes of {max_len} bits, longer "
                f"than the op's {table_bits}-bit decode table"
            )
    if max_len > huffman.MAX_LEN_LIMIT or k > max_len or k > huffman.MAX_LUT_BITS:
        raise FormatError(
            f"{where}: Huffman header at byte offset {off} is invalid (max_len {max_len}, K {k})"
        )
    p = off + HUFF.size
    tab = huffman.compact_table_bytes(alphabet, n_sym) if compact else 2 * n_sym
    r.span(off, HUFF.size + 2 * max_len + tab, f"{where} Huffman table")
    counts = np.frombuffer(r.data, dtype="<u2", count=max_len, offset=p).astype(np.int64)
    p += 2 * max_len
    if compact:
        try:
            lengths = huffman.read_compact_table(r.data[p : p + tab], alphabet, n_sym, max_len)
        except ValueError as exc:
            raise FormatError(
                f"{where}: compact Huffman table at byte offset {p} is invalid: {exc}"
            ) from None
        if not np.array_equal(np.bincount(lengths[lengths > 0], minlength=max_len + 1)[1:], counts):
            raise FormatError(f"{where}: compact Huffman table at byte offset {p} disagrees with its counts")
        syms = huffman.canonical_table(lengths).symbols
    else:
        syms = np.frombuffer(r.data, dtype="<u2", count=n_sym, offset=p).astype(np.int64)
    p = align4(p + tab)
    if counts.sum() != n_sym or (len(syms) and syms.max() >= alphabet):
        raise FormatError(f"{where}: Huffman table at byte offset {off} is inconsistent")
    p = align4(p + 2 * (1 << k)) if k else p
    data_len = align4((n_bits + 7) // 8) + STREAM_SLACK_BYTES
    if p + data_len > r.blob_bytes:
        raise FormatError(f"{where}: Huffman data at byte offset {p} runs past the blob's end")
    return huffman.decode(r.data[p : p + (n_bits + 7) // 8], n_bits, counts, syms, n)


def unpack_weights(
    f: dict[str, Any], r: SectionReader, rows: int, fan_in: int, where: str, *, table_ok: bool = False,
    gather_ok: bool = False,
) -> dict[str, Any]:
    """The weight fields of the IR (codebook, assign, bias, requant, encoding, index_bits, act).
    ``table_ok``: the op may carry ``table_bits`` (an FC; the caller keeps the field); ``gather_ok``:
    it may carry ``gather`` (a CONV2D; the caller keeps and checks the field)."""
    if int(f.get("gather", 0)) and not gather_ok:
        raise FormatError(
            f"{where}: the op descriptor's gather byte is {f['gather']}, and only a CONV2D has a gather "
            "kernel; the file is corrupt"
        )
    try:
        enc = Encoding(f["encoding"])
    except ValueError:
        raise FormatError(f"{where}: unknown weight encoding {f['encoding']}") from None
    tb = int(f.get("table_bits", 0))
    if tb and not (table_ok and enc == Encoding.HUFFMAN_JOINT and tb <= MAX_TABLE_BITS):
        raise FormatError(
            f"{where}: table_bits {tb} is only valid, as 1..{MAX_TABLE_BITS}, on an FC op or a gather CONV2D "
            f"with HUFFMAN_JOINT weights (this op: {enc.name}); the file is corrupt"
        )
    r.span(f["bias_off"], 4 * rows, "bias")
    bias = np.frombuffer(r.data, dtype="<i4", count=rows, offset=f["bias_off"]).astype(np.int32)
    if enc in (Encoding.HUFFMAN_SPARSE, Encoding.HUFFMAN_JOINT):  # the same entries, coded two ways
        k, ib = f["codebook_len"], f["index_bits"]
        if not (1 <= k <= MAX_CODEBOOK and 1 <= ib <= MAX_INDEX_BITS):
            raise FormatError(f"{where}: codebook length {k} or index width {ib} invalid")
        if enc == Encoding.HUFFMAN_JOINT and not joint_ok(k, ib):
            raise FormatError(
                f"{where}: HUFFMAN_JOINT codebook length {k} with index width {ib} is invalid "
                "(1..256 entries, 1..8 bits, (k + 1) << bits <= 4096)"
            )
        if enc == Encoding.HUFFMAN_JOINT and f["index_off"] != 0:
            raise FormatError(f"{where}: HUFFMAN_JOINT has one stream; index_off must be 0")
        if f["n_entries"] > rows * fan_in:
            raise FormatError(f"{where}: {f['n_entries']} sparse entries for a {rows}x{fan_in} matrix")
        r.span(f["codebook_off"], k, "codebook")
        codebook = np.frombuffer(r.data, dtype=np.int8, count=k, offset=f["codebook_off"]).copy()
        if enc == Encoding.HUFFMAN_JOINT:
            e = _read_huffman(r, f["weights_off"], f["n_entries"], (k + 1) << ib, where + " joint stream", tb)
            rr, s = e & ((1 << ib) - 1), e >> ib
        else:
            s = _read_huffman(r, f["weights_off"], f["n_entries"], k + 1, where + " weight stream")
            rr = _read_huffman(r, f["index_off"], f["n_entries"], 1 << ib, where + " index stream")
        assign = decode_relative(rr, s, rows, fan_in, k, where)
    elif enc == Encoding.COLUMN_SPARSE:
        k = f["codebook_len"]
        if not 1 <= k <= colsparse.MAX_K:
            raise FormatError(f"{where}: COLUMN_SPARSE codebook length {k} is outside 1..{colsparse.MAX_K}")
        r.span(f["codebook_off"], k, "codebook")
        codebook = np.frombuffer(r.data, dtype=np.int8, count=k, offset=f["codebook_off"]).copy()
        where_s = where + " column-sparse stream"
        assign = colsparse.decode_columns(
            r.data, f["weights_off"], r.blob_bytes, rows, fan_in, k, f["n_entries"], where_s
        )
        ib = 0
    elif enc in (Encoding.TERNARY, Encoding.BINARY):
        k = f["codebook_len"]
        if not 1 <= k <= bitplanes.MAX_K:
            raise FormatError(f"{where}: {enc.name} codebook length {k} is outside 1..{bitplanes.MAX_K}")
        if f["index_bits"] != 0 or f["index_off"] != 0:
            raise FormatError(
                f"{where}: {enc.name} has no relative-index stream (index_bits and index_off 0)"
            )
        r.span(f["codebook_off"], k, "codebook")
        codebook = np.frombuffer(r.data, dtype=np.int8, count=k, offset=f["codebook_off"]).copy()
        if rows * fan_in > (1 << 26):
            raise FormatError(f"{where}: {rows}x{fan_in} weights is over the reader's limit")
        assign = bitplanes.decode_section(
            r.data,
            f["weights_off"],
            r.blob_bytes,
            rows,
            fan_in,
            k,
            f["n_entries"],
            enc,
            where + " bit-planes",
        )
        ib = 0
    elif enc == Encoding.DENSE_INT8:
        if f["n_entries"] != rows * fan_in:
            raise FormatError(
                f"{where}: DENSE_INT8 n_entries {f['n_entries']} is not rows*fan_in {rows * fan_in}"
            )
        r.span(f["weights_off"], rows * fan_in, "dense weights")
        wts = np.frombuffer(r.data, dtype=np.int8, count=rows * fan_in, offset=f["weights_off"])
        nz = wts != 0  # zeros are pruned weights: the codebook holds the non-zero values only
        codebook, inverse = np.unique(wts[nz], return_inverse=True)
        flat = np.full(rows * fan_in, -1, dtype=np.int16)
        flat[nz] = inverse
        assign = flat.reshape(rows, fan_in)
        codebook = codebook.astype(np.int8)
        ib = 0
    else:
        raise FormatError(f"{where}: a weight op with encoding NONE")
    try:
        requant = Requant(f["multiplier"], f["shift"])
    except ConfigError as exc:
        raise FormatError(f"{where}: {exc}") from None
    return dict(
        codebook=codebook, assign=assign, bias=bias, requant=requant, act_min=f["act_min"],
        act_max=f["act_max"], encoding=enc, index_bits=ib,
    )  # fmt: skip
