"""MSB-first bit packing (docs/format.md: the first bit is bit 7 of the first byte)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def pack_codes(codes: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Concatenate codes (each ``lengths[i]`` bits, MSB-first) into bytes.

    Returns ``(data, n_bits)``; the last byte is zero-padded. Vectorised: one pass of
    numpy over the total bit count.
    """
    codes = np.asarray(codes, dtype=np.uint32)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_bits = int(lengths.sum())
    if n_bits == 0:
        return b"", 0
    # For every output bit: which code it belongs to and its position inside that code.
    owner = np.repeat(np.arange(len(codes)), lengths)
    starts = np.cumsum(lengths) - lengths
    offset_in_code = np.arange(n_bits) - starts[owner]
    shift = (lengths[owner] - 1 - offset_in_code).astype(np.uint32)
    bits = ((codes[owner] >> shift) & 1).astype(np.uint8)
    return np.packbits(bits).tobytes(), n_bits


class BitReader:
    """Reads bits MSB-first from bytes; reading past ``n_bits`` raises ``EOFError``."""

    def __init__(self, data: bytes, n_bits: int) -> None:
        if n_bits > 8 * len(data):
            raise ValueError(f"{n_bits} bits do not fit in {len(data)} bytes")
        self._bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:n_bits]
        self.pos = 0
        self.n_bits = n_bits

    def bit(self) -> int:
        if self.pos >= self.n_bits:
            raise EOFError("read past the end of the bit stream")
        b = int(self._bits[self.pos])
        self.pos += 1
        return b

    def peek(self, k: int) -> int:
        """The next ``k`` bits as an integer, bits past the end read as 0."""
        v = 0
        for i in range(k):
            p = self.pos + i
            v = (v << 1) | (int(self._bits[p]) if p < self.n_bits else 0)
        return v

    def skip(self, k: int) -> None:
        if self.pos + k > self.n_bits:
            raise EOFError("read past the end of the bit stream")
        self.pos += k


def bits_from_iter(values: Iterable[int]) -> np.ndarray:
    return np.fromiter(values, dtype=np.uint8)
