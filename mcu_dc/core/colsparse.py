"""COLUMN_SPARSE: the speed encoding of an FC layer's weights (docs/format.md, "Column-sparse stream").

The matrix ``W[rows][fan_in]`` is stored column by column. Each input column ``j`` holds a
byte count and then one byte per kept weight, so a kernel reads input ``x[j]`` once, skips
the whole column when ``x[j]`` equals the zero point (a zero activation: most MNIST pixels,
about half of a ReLU layer's outputs), and otherwise adds ``codebook[g] * (x[j] - zp)`` to
each kept weight's row accumulator. No bit-level decoding: one byte per kept weight.

Column ``j``::

    count   varint: bytes c0 [c1 ...]; the count is their sum, each 255 meaning "and another byte"
    entries count bytes; entry e = (h << 4) | g, row starts at -1:
              h in 1..15: row += h, then acc[row] += codebook[g] * (x[j] - zp)   (g < k)
              h == 0:     row += 15 * (g + 1), nothing added (a skip over 15..240 pruned rows)

The section is ``u32 n_bytes`` then the ``n_bytes`` stream bytes, zero-padded to a
multiple of 4. ``n_entries`` in the op descriptor is the number of kept weights (skips
not counted); a reader walks the stream once and refuses a row outside ``[0, rows)``, a
codebook index ``g >= k``, a skip as a column's last byte (the kernel reads the entry
after every skip without another bounds check), a kept count other than ``n_entries``
or a stream that does not end exactly at ``n_bytes``. The codebook has at most 16 entries (a 4-bit index).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from mcu_dc.errors import ConfigError, FormatError

MAX_K = 16
SKIP = 15  # rows one skip unit passes over; a skip byte passes 15 * (g + 1) = 15..240 rows
MAX_DELTA = 15  # an entry byte advances 1..15 rows


@dataclass(frozen=True)
class ColumnStats:
    kept: int  # entries that add (the descriptor's n_entries)
    skips: int  # skip bytes
    count_bytes: int  # bytes of the per-column counts
    stream_bytes: int  # everything: counts + entries + skips

    @property
    def entry_bytes(self) -> int:
        return self.kept + self.skips


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 255:
        out.append(255)
        n -= 255
    out.append(n)
    return bytes(out)


def encode_columns(assign: np.ndarray, k: int) -> tuple[bytes, ColumnStats]:
    """The column-sparse stream (without the u32 length) of an assignment matrix (-1 = pruned)."""
    a = np.asarray(assign)
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"COLUMN_SPARSE needs a codebook of 1..{MAX_K} entries (a 4-bit index); it has {k}")
    fan_in = a.shape[1]
    out = bytearray()
    kept = skips = count_bytes = 0
    for j in range(fan_in):
        col = a[:, j]
        body = bytearray()
        prev = -1
        for r in np.flatnonzero(col >= 0).tolist():
            d = r - prev
            while d > MAX_DELTA:
                m = min(16, (d - 1) // SKIP)  # leaves 1..15 (or more skips past 240)
                body.append(m - 1)
                d -= SKIP * m
                skips += 1
            body.append((d << 4) | int(col[r]))
            kept += 1
            prev = r
        head = _varint(len(body))
        count_bytes += len(head)
        out += head + body
    return bytes(out), ColumnStats(kept, skips, count_bytes, len(out))


def pack_section(assign: np.ndarray, k: int) -> tuple[bytes, ColumnStats]:
    """The whole section: u32 n_bytes, the stream, zero padding to a multiple of 4."""
    stream, stats = encode_columns(assign, k)
    sec = struct.pack("<I", len(stream)) + stream
    return sec + bytes(-len(sec) % 4), stats


def decode_columns(
    data: bytes, off: int, blob_bytes: int, rows: int, fan_in: int, k: int, n_entries: int, where: str
) -> np.ndarray:
    """The assignment matrix (int16, -1 = pruned) of the section at ``off``; FormatError when malformed."""
    if not 1 <= k <= MAX_K:
        raise FormatError(f"{where}: COLUMN_SPARSE codebook length {k} is outside 1..{MAX_K}")
    if off <= 0 or off % 4 or off + 4 > blob_bytes:
        raise FormatError(f"{where}: the section at byte offset {off} is outside the blob or unaligned")
    (n_bytes,) = struct.unpack_from("<I", data, off)
    start = off + 4
    if n_bytes > blob_bytes - start:
        raise FormatError(
            f"{where}: column-sparse section at byte offset {off} claims {n_bytes} stream bytes; "
            f"the blob has {blob_bytes - start} after it"
        )
    if n_entries > rows * fan_in:
        raise FormatError(f"{where}: {n_entries} kept weights for a {rows}x{fan_in} matrix")
    s = memoryview(data)[start : start + n_bytes]
    assign = np.full((rows, fan_in), -1, dtype=np.int16)
    p = kept = 0
    for j in range(fan_in):
        count = 0
        while True:
            if p >= n_bytes:
                raise FormatError(f"{where}: column {j}'s count (byte offset {start + p}) is past the stream")
            b = s[p]
            p += 1
            count += b
            if b != 255:
                break
        if count > n_bytes - p:
            raise FormatError(
                f"{where}: column {j} at byte offset {start + p} has {count} bytes; "
                f"the stream has {n_bytes - p} left"
            )
        row = -1
        for q in range(p, p + count):
            e = s[q]
            h, g = e >> 4, e & 15
            row += SKIP * (g + 1) if h == 0 else h
            if row >= rows:
                raise FormatError(
                    f"{where}: entry at byte offset {start + q} (column {j}) reaches row {row}; "
                    f"the layer has {rows}"
                )
            if h != 0:
                if g >= k:
                    raise FormatError(
                        f"{where}: entry at byte offset {start + q} uses codebook index {g}; "
                        f"the codebook has {k}"
                    )
                assign[row, j] = g
                kept += 1
        if count and s[p + count - 1] >> 4 == 0:
            raise FormatError(
                f"{where}: column {j} ends with a skip at byte offset {start + p + count - 1}; "
                "a skip must be followed by an entry of its column"
            )
        p += count
    if p != n_bytes:
        raise FormatError(f"{where}: column-sparse stream ends at byte {p} of {n_bytes} (trailing bytes)")
    if kept != n_entries:
        raise FormatError(f"{where}: the stream holds {kept} kept weights; the descriptor says {n_entries}")
    return assign
