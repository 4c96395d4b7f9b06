"""Canonical, length-limited Huffman codes (docs/format.md, 'Huffman section').

Code lengths come from package-merge (Larmore & Hirschberg 1990), which is optimal
among prefix codes whose longest code is at most ``max_len``: a microcontroller decoder
needs a bound. Codes are then assigned canonically (RFC 1951 §3.2.2), so a decoder
needs only the count of codes per length and the symbols in canonical order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcu_dc.core.bitstream import BitReader, pack_codes
from mcu_dc.errors import ConfigError, FormatError

MAX_LEN_LIMIT = 15
MAX_LUT_BITS = 12
MAX_SYMBOL = 4095  # LUT entries hold 12-bit symbols
COMPACT_FLAG = 0x80  # lut_bits byte of a compact section: code lengths instead of a symbol list


def compact_table(lengths: np.ndarray, alphabet: int) -> bytes:
    """A compact section's table after its counts (docs/format.md, "Compact Huffman table"): a
    bitmap of the symbols that have a code (``ceil(alphabet / 8)`` bytes, symbol ``8j + i`` in bit
    ``i`` of byte ``j``), then each such symbol's code length, ascending symbols, two 4-bit lengths
    per byte (low nibble first)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    used = np.flatnonzero(lengths > 0)
    if len(lengths) != alphabet or (len(used) and int(lengths.max()) > 15):
        raise ValueError("compact tables hold code lengths 1..15 for every symbol of the alphabet")
    bits = np.zeros(-(-alphabet // 8) * 8, dtype=np.uint8)
    bits[used] = 1
    bitmap = np.packbits(bits, bitorder="little").tobytes()
    nib = lengths[used].astype(np.uint8)
    if len(nib) % 2:
        nib = np.concatenate([nib, np.zeros(1, dtype=np.uint8)])
    return bitmap + (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8).tobytes()


def compact_table_bytes(alphabet: int, n_symbols: int) -> int:
    """Bytes of :func:`compact_table` for an alphabet with ``n_symbols`` coded symbols."""
    return -(-alphabet // 8) + -(-n_symbols // 2)


def read_compact_table(buf: bytes, alphabet: int, n_symbols: int, max_len: int) -> np.ndarray:
    """Code length per alphabet symbol from a compact table; ``ValueError`` when it is inconsistent
    (not ``n_symbols`` bits set, a bit past the alphabet, a length outside 1..``max_len``)."""
    nb = -(-alphabet // 8)
    if len(buf) < compact_table_bytes(alphabet, n_symbols):
        raise ValueError("compact table runs past its section")
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8, count=nb), bitorder="little")
    used = np.flatnonzero(bits)
    if len(used) != n_symbols or (len(used) and int(used[-1]) >= alphabet):
        raise ValueError(f"its bitmap marks {len(used)} symbols (want {n_symbols} below {alphabet})")
    nib = np.frombuffer(buf, dtype=np.uint8, count=-(-n_symbols // 2), offset=nb)
    ls = np.stack([nib & 15, nib >> 4], axis=1).ravel()[:n_symbols].astype(np.int64)
    if n_symbols and (ls.min() < 1 or ls.max() > max_len):
        raise ValueError(f"a code length is outside 1..{max_len}")
    out = np.zeros(alphabet, dtype=np.int64)
    out[used] = ls
    return out


def code_lengths(freqs: np.ndarray, max_len: int) -> np.ndarray:
    """Optimal code length per symbol (0 for symbols that never occur), each ≤ ``max_len``."""
    if not 1 <= max_len <= MAX_LEN_LIMIT:
        raise ConfigError(f"Huffman max code length {max_len} is outside 1..{MAX_LEN_LIMIT}")
    freqs = np.asarray(freqs, dtype=np.int64)
    if (freqs < 0).any():
        raise ValueError("symbol frequencies must be non-negative")
    used = np.flatnonzero(freqs > 0)
    lengths = np.zeros(len(freqs), dtype=np.int64)
    n = len(used)
    if n == 0:
        return lengths
    if n == 1:
        lengths[used[0]] = 1
        return lengths
    if n > (1 << max_len):
        raise ConfigError(
            f"{n} distinct symbols cannot be coded with codes of at most {max_len} bits "
            f"(at most {1 << max_len}); raise the maximum code length"
        )
    # Leaves sorted by (weight, symbol): deterministic ties.
    order = used[np.lexsort((used, freqs[used]))]
    leaf_w = freqs[order]
    leaf_sets = np.eye(n, dtype=np.int64)  # leaf i contains symbol order[i] once
    cur_w, cur_sets = leaf_w.copy(), leaf_sets.copy()
    for _ in range(max_len - 1):
        m = len(cur_w) // 2
        pkg_w = cur_w[0 : 2 * m : 2] + cur_w[1 : 2 * m : 2]
        pkg_sets = cur_sets[0 : 2 * m : 2] + cur_sets[1 : 2 * m : 2]
        # Merge leaves and packages by weight; on ties leaves first (stable).
        all_w = np.concatenate([leaf_w, pkg_w])
        all_sets = np.concatenate([leaf_sets, pkg_sets])
        kind = np.concatenate([np.zeros(n, dtype=np.int64), np.ones(m, dtype=np.int64)])
        idx = np.lexsort((np.arange(len(all_w)), kind, all_w))
        cur_w, cur_sets = all_w[idx], all_sets[idx]
    chosen = cur_sets[: 2 * n - 2].sum(axis=0)
    lengths[order] = chosen
    return lengths


@dataclass(frozen=True)
class HuffmanTable:
    """A canonical code: everything the encoder and the decoder need."""

    lengths: np.ndarray  # per symbol of the alphabet; 0 = no code
    codes: np.ndarray  # per symbol; meaningful where lengths > 0

    @property
    def max_len(self) -> int:
        return int(self.lengths.max()) if len(self.lengths) and self.lengths.max() > 0 else 0

    @property
    def counts(self) -> np.ndarray:
        """``counts[i]`` = number of codes of length ``i + 1``, for i < max_len."""
        return np.bincount(self.lengths[self.lengths > 0], minlength=self.max_len + 1)[1:].astype(np.int64)

    @property
    def symbols(self) -> np.ndarray:
        """Symbols with a code, in canonical order (length, then symbol value)."""
        used = np.flatnonzero(self.lengths > 0)
        return used[np.lexsort((used, self.lengths[used]))]

    def kraft_sum(self) -> float:
        ls = self.lengths[self.lengths > 0]
        return float(np.sum(2.0 ** (-ls.astype(np.float64))))

    def lut(self, lut_bits: int) -> np.ndarray:
        """Primary lookup table: ``lut[v] = (L << 12) | symbol`` or 0 for longer codes."""
        if lut_bits == 0:
            return np.zeros(0, dtype=np.uint16)
        table = np.zeros(1 << lut_bits, dtype=np.uint16)
        for sym in self.symbols:
            length = int(self.lengths[sym])
            if length > lut_bits:
                continue
            lo = int(self.codes[sym]) << (lut_bits - length)
            table[lo : lo + (1 << (lut_bits - length))] = (length << 12) | int(sym)
        return table


def canonical_table(lengths: np.ndarray) -> HuffmanTable:
    """Assign canonical codes to the given lengths (RFC 1951 §3.2.2)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.int64)
    if (lengths > 0).any():
        max_len = int(lengths.max())
        bl_count = np.bincount(lengths[lengths > 0], minlength=max_len + 1)
        next_code = np.zeros(max_len + 2, dtype=np.int64)
        code = 0
        for bits in range(1, max_len + 1):  # bl_count[0] == 0
            code = (code + int(bl_count[bits - 1])) << 1
            next_code[bits] = code
        for sym in np.flatnonzero(lengths > 0):  # ascending symbol order within a length
            length = int(lengths[sym])
            codes[sym] = next_code[length]
            next_code[length] += 1
    return HuffmanTable(lengths=lengths, codes=codes)


def build_table(symbols: np.ndarray, alphabet: int, max_len: int) -> HuffmanTable:
    """The optimal length-limited canonical code for a symbol stream."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if alphabet - 1 > MAX_SYMBOL:
        raise ConfigError(f"alphabet of {alphabet} symbols exceeds {MAX_SYMBOL + 1}")
    if len(symbols) and (symbols.min() < 0 or symbols.max() >= alphabet):
        raise ValueError(f"symbols must lie in [0, {alphabet})")
    freqs = np.bincount(symbols, minlength=alphabet)
    return canonical_table(code_lengths(freqs, max_len))


def encode(symbols: np.ndarray, table: HuffmanTable) -> tuple[bytes, int]:
    """Huffman-code a stream; returns ``(data, n_bits)`` packed MSB-first."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if len(symbols) and (table.lengths[symbols] == 0).any():
        raise ValueError("a symbol in the stream has no code in the table")
    return pack_codes(table.codes[symbols], table.lengths[symbols])


def decode(data: bytes, n_bits: int, counts: np.ndarray, symbols: np.ndarray, n: int) -> np.ndarray:
    """Reference bit-serial canonical decode of ``n`` symbols (the C runtime's twin).

    Checked before anything is allocated: the ``n_bits`` bits lie in ``data``, and ``n`` symbols of at
    least one bit each fit in them."""
    if n_bits > 8 * len(data):
        raise FormatError(f"Huffman stream of {n_bits} bits (field n_bits) does not fit in {len(data)} bytes")
    if n > n_bits:
        raise FormatError(
            f"{n} symbols cannot be coded in a Huffman stream of {n_bits} bits (field n_bits): every code "
            "is at least one bit"
        )
    reader = BitReader(data, n_bits)
    out = np.empty(n, dtype=np.int64)
    counts = [int(c) for c in counts]
    for i in range(n):
        code = first = index = 0
        for length in range(1, len(counts) + 1):
            try:
                code |= reader.bit()
            except EOFError as exc:
                raise FormatError(f"Huffman stream ends inside symbol {i} of {n}") from exc
            count = counts[length - 1]
            if code - first < count:
                out[i] = symbols[index + code - first]
                break
            index += count
            first = (first + count) << 1
            code <<= 1
        else:
            raise FormatError(f"invalid Huffman code at symbol {i} (bit {reader.pos})")
    return out
