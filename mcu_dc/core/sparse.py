"""Relative-index sparse storage with zero filler (Deep Compression §2; docs/format.md).

A weight matrix ``assign[rows][fan_in]`` (codebook index, -1 = pruned) is walked
row-major as one flat sequence. Each kept weight becomes an entry ``(r, s)``: ``r`` zeros
skipped since the previous entry, ``s`` its codebook index. A gap longer than
``R = 2**index_bits - 1`` is bridged by filler entries ``(R, k)`` that advance ``R + 1``
positions and multiply nothing (``k`` = codebook length, the filler symbol).
"""

from __future__ import annotations

import numpy as np

from mcu_dc.errors import ConfigError, FormatError


def encode_relative(assign: np.ndarray, index_bits: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the relative-index stream ``r`` and the weight-symbol stream ``s``."""
    if not 1 <= index_bits <= 8:
        raise ConfigError(f"relative index width {index_bits} bits is outside 1..8")
    flat = np.asarray(assign, dtype=np.int64).ravel()
    if len(flat) and flat.max(initial=-1) >= k:
        raise ValueError(f"codebook index {flat.max()} out of range for a codebook of {k}")
    pos = np.flatnonzero(flat >= 0)
    if len(pos) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    span = 1 << index_bits  # R + 1
    gaps = np.diff(np.concatenate([[-1], pos])) - 1
    n_fill = gaps // span
    total = len(pos) + int(n_fill.sum())
    # Each kept weight occupies slot (its own index + fillers before it, cumulative).
    last_slot = np.cumsum(n_fill + 1) - 1
    r = np.full(total, span - 1, dtype=np.int64)
    s = np.full(total, k, dtype=np.int64)
    r[last_slot] = gaps % span
    s[last_slot] = flat[pos]
    return r, s


def decode_relative(
    r: np.ndarray, s: np.ndarray, rows: int, fan_in: int, k: int, where: str = "layer"
) -> np.ndarray:
    """Inverse of :func:`encode_relative`: the ``assign`` matrix (-1 = pruned)."""
    r = np.asarray(r, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    out = np.full(rows * fan_in, -1, dtype=np.int16)
    if len(r) == 0:
        return out.reshape(rows, fan_in)
    positions = np.cumsum(r + 1) - 1
    if positions[-1] >= rows * fan_in:
        raise FormatError(
            f"{where}: the sparse stream walks to position {int(positions[-1])}, past the "
            f"{rows}x{fan_in} weight matrix; the file is corrupt"
        )
    if (s > k).any():
        raise FormatError(f"{where}: weight symbol above the filler symbol {k}; the file is corrupt")
    kept = s < k
    out[positions[kept]] = s[kept]
    return out.reshape(rows, fan_in)
