"""TERNARY and BINARY: bit-plane encodings of a weight op whose codebook has at most 2 entries
(docs/format.md, "Bit-plane section").

A weight op ``W[rows][fan_in]`` with codebook ``cb`` (``k <= 2`` int8 entries) is stored as
**planes** of bits, one bit per weight. Each row of a plane is ``wpr = ceil(fan_in / 32)``
little-endian ``u32`` words; weight ``j`` of row ``r`` is bit ``j % 32`` (LSB first) of word
``j / 32``; bits at ``j >= fan_in`` are 0. Planes are stored one after the other,
``plane[p][r][w]``.

* TERNARY (trained ternary quantization, codebook ``{-a, +b}``, pruned weights 0): ``k``
  planes; bit ``j`` of plane ``g`` set means ``w[r][j] = cb[g]``; the planes are disjoint and a
  weight in no plane is pruned. ``n_entries`` = the set bits of all planes (kept weights).
* BINARY (binary weights, codebook ``{-a, +a}``, nothing pruned): one plane; a set bit means
  ``cb[1]``, a clear bit ``cb[0]`` (with ``k = 1`` every bit is clear). ``n_entries`` =
  ``rows * fan_in``.

A kernel needs no multiplication per weight: per row it sums the inputs each plane selects
and multiplies once by the codebook entry, ``acc = bias + Σ_g cb[g] · Σ_{j in plane g} (x[j] - zp)``
(BINARY: ``cb[0]·Σ_all + (cb[1] - cb[0])·Σ_set``) — in wrapping int32 arithmetic the same
value as the generic dot product.
"""

from __future__ import annotations

import numpy as np

from mcu_dc.core.qmath import Encoding
from mcu_dc.errors import ConfigError, FormatError

MAX_K = 2


def words_per_row(fan_in: int) -> int:
    return (int(fan_in) + 31) // 32


def n_planes(encoding: Encoding, k: int) -> int:
    """Planes stored: TERNARY one per codebook entry, BINARY always one."""
    return 1 if Encoding(encoding) == Encoding.BINARY else int(k)


def section_bytes(encoding: Encoding, k: int, rows: int, fan_in: int) -> int:
    return 4 * n_planes(encoding, k) * int(rows) * words_per_row(fan_in)


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """(rows, fan_in) bool -> (rows, wpr) uint32, weight j at bit j % 32 of word j // 32."""
    rows, fan_in = bits.shape
    wpr = words_per_row(fan_in)
    padded = np.zeros((rows, wpr * 32), dtype=np.uint8)
    padded[:, :fan_in] = bits
    by = np.packbits(padded.reshape(rows, wpr * 4, 8), axis=2, bitorder="little").reshape(rows, wpr * 4)
    return by.view("<u4").reshape(rows, wpr)


def _unpack_bits(words: np.ndarray, fan_in: int) -> np.ndarray:
    rows, wpr = words.shape
    by = np.ascontiguousarray(words.astype("<u4")).view(np.uint8).reshape(rows, wpr * 4)
    return np.unpackbits(by, axis=1, bitorder="little").astype(bool)


def check_assign(assign: np.ndarray, k: int, encoding: Encoding, where: str) -> None:
    """ConfigError unless ``assign`` can be stored with ``encoding``."""
    enc = Encoding(encoding)
    if not 1 <= k <= MAX_K:
        raise ConfigError(
            f"{where}: {enc.name} needs a codebook of 1..{MAX_K} entries ({{-a, +b}}); it has {k}: "
            "use HUFFMAN_SPARSE or cluster the layer as ternary/binary"
        )
    a = np.asarray(assign)
    if enc == Encoding.BINARY and a.size and int(a.min()) < 0:
        n = int((a < 0).sum())
        raise ConfigError(
            f"{where}: BINARY has no zero weight but {n} of its {a.size} weights are pruned; "
            "use TERNARY (pruned weights stay 0) or do not prune a binary layer"
        )


def pack_section(assign: np.ndarray, k: int, encoding: Encoding) -> bytes:
    """The planes of ``assign`` (-1 = pruned) as stored (a multiple of 4 bytes)."""
    a = np.asarray(assign)
    check_assign(a, k, encoding, "bit-planes")
    if Encoding(encoding) == Encoding.BINARY:
        planes = [_pack_bits(a == 1)]
    else:
        planes = [_pack_bits(a == g) for g in range(k)]
    return b"".join(p.astype("<u4").tobytes() for p in planes)


def decode_section(
    data: bytes, off: int, blob_bytes: int, rows: int, fan_in: int, k: int, n_entries: int,
    encoding: Encoding, where: str,
) -> np.ndarray:  # fmt: skip
    """The assignment matrix (int16, -1 = pruned) of the section at ``off``; FormatError when malformed."""
    enc = Encoding(encoding)
    if not 1 <= k <= MAX_K:
        raise FormatError(f"{where}: {enc.name} codebook length {k} is outside 1..{MAX_K}")
    size = section_bytes(enc, k, rows, fan_in)
    if off <= 0 or off % 4 or off + size > blob_bytes:
        raise FormatError(
            f"{where}: the {size}-byte bit-plane section at byte offset {off} is outside the blob "
            "or unaligned"
        )
    wpr = words_per_row(fan_in)
    words = np.frombuffer(data, dtype="<u4", count=size // 4, offset=off).reshape(-1, rows, wpr)
    bits = [_unpack_bits(p, fan_in) for p in words]
    for g, b in enumerate(bits):
        pad = b[:, fan_in:]
        if pad.any():
            r = int(np.argwhere(pad)[0][0])
            pos = off + 4 * (g * rows * wpr + r * wpr + wpr - 1)
            raise FormatError(
                f"{where}: plane {g} row {r} has bits set past fan_in {fan_in} (byte offset {pos})"
            )
    bits = [b[:, :fan_in] for b in bits]
    if enc == Encoding.BINARY:
        if k == 1 and bits[0].any():
            r = int(np.argwhere(bits[0])[0][0])
            raise FormatError(
                f"{where}: BINARY with one codebook entry has a set bit in row {r} "
                f"(byte offset {off + 4 * r * wpr})"
            )
        if n_entries != rows * fan_in:
            raise FormatError(f"{where}: BINARY n_entries {n_entries} is not rows*fan_in {rows * fan_in}")
        return bits[0].astype(np.int16)
    assign = np.full((rows, fan_in), -1, dtype=np.int16)
    if k == 2:
        both = bits[0] & bits[1]
        if both.any():
            r, j = (int(v) for v in np.argwhere(both)[0])
            raise FormatError(
                f"{where}: weight ({r}, {j}) is set in both planes (byte offset "
                f"{off + 4 * (rows * wpr + r * wpr + j // 32)}); the planes must be disjoint"
            )
    for g, b in enumerate(bits):
        assign[b] = g
    kept = int((assign >= 0).sum())
    if kept != n_entries:
        raise FormatError(f"{where}: the planes hold {kept} kept weights but n_entries is {n_entries}")
    return assign
