"""Integer arithmetic shared by every op: enums, limits and the one rounding rule.

Torch-free and numpy-only. ``docs/format.md`` ("Numbers") is the definition; the C
runtime implements the same rule in ``mcu_dc_requant_s8`` and the ADD kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from mcu_dc.errors import ConfigError


class Op(IntEnum):
    """Op codes (op descriptor byte 0). Each has one module in :mod:`mcu_dc.core.ops`."""

    CONV2D = 1
    FC = 2
    MAXPOOL2D = 3
    DEPTHWISE_CONV2D = 4
    AVGPOOL2D = 5
    ADD = 6


class Encoding(IntEnum):
    """How a weight op's weights are stored in the blob."""

    NONE = 0  # no weights (pools, add)
    DENSE_INT8 = 1  # the baseline: every weight as int8, row-major [rows][fan_in]
    HUFFMAN_SPARSE = 2  # relative-index sparse stream, both streams canonical-Huffman coded
    COLUMN_SPARSE = 3  # FC only: per input column, one byte per kept weight (the speed encoding)
    TERNARY = 4  # k <= 2 (codebook {-a, +b}, pruned = 0): one bit-plane per codebook entry per row
    BINARY = 5  # k <= 2, nothing pruned (codebook {-a, +a}): one sign bit-plane per row
    HUFFMAN_JOINT = 6  # the relative-index entries of HUFFMAN_SPARSE, (run, symbol) as one Huffman code


def joint_ok(k: int, index_bits: int) -> bool:
    """Whether HUFFMAN_JOINT can store a codebook of ``k`` entries with ``index_bits``-bit runs: its
    alphabet ``(k + 1) << index_bits`` (the filler included) must fit the 12-bit lookup-table symbols."""
    return 1 <= k <= MAX_CODEBOOK and 1 <= index_bits <= MAX_INDEX_BITS and (k + 1) << index_bits <= 4096


def joint_index_bits(k: int, index_bits: int) -> int:
    """The widest run width ``<= index_bits`` HUFFMAN_JOINT can use with ``k`` entries (0: none)."""
    b = min(index_bits, MAX_INDEX_BITS)
    while b >= 1 and not joint_ok(k, b):
        b -= 1
    return max(b, 0)


class InputKind(IntEnum):
    """What the device's input bytes are (header byte 22, format v2)."""

    UINT8 = 0  # raw bytes (pixels); the runtime turns byte b into the int8 b - 128 (zero point -128)
    INT8 = 1  # int8 values, already quantized on the host with the model's input scale and zero point


# Recorded in the metadata; drives training loss and metrics.
TASKS = ("classification", "regression", "reconstruction")

ROUNDING_HALF_UP = 1  # the only rounding rule; recorded in the blob header

MAX_CODEBOOK = 256  # codebook entries (the weight alphabet has one more: the filler)
MAX_INDEX_BITS = 8
MAX_HUFFMAN_LEN = 15
NO_TENSOR = 0xFFFF  # an absent input in an op descriptor


@dataclass(frozen=True)
class Requant:
    """Integer requantization parameters: ``real ≈ multiplier / 2**shift``."""

    multiplier: int
    shift: int

    def __post_init__(self) -> None:
        if not 0 <= self.multiplier < 2**31:
            raise ConfigError(f"requant multiplier {self.multiplier} outside [0, 2**31)")
        if not 1 <= self.shift <= 62:
            raise ConfigError(f"requant shift {self.shift} outside [1, 62]")

    @staticmethod
    def from_real(real: float) -> Requant:
        """Best (multiplier, shift) with multiplier in [2**30, 2**31) for ``real`` > 0."""
        if not (real > 0 and math.isfinite(real)):
            raise ConfigError(f"requant scale {real!r} must be a positive finite number")
        mant, exp = math.frexp(real)  # real = mant * 2**exp, mant in [0.5, 1)
        q = round(mant * 2**31)
        if q == 2**31:
            q //= 2
            exp += 1
        shift = 31 - exp
        while shift > 62:  # tiny scale: lose precision rather than range
            q >>= 1
            shift -= 1
        if shift < 1:
            raise ConfigError(
                f"requant scale {real:g} is too large (>= 2**30): the op's output scale is far "
                "smaller than its input*weight scale; check calibration data"
            )
        return Requant(int(q), int(shift))


def pair_requant(real_a: float, real_b: float) -> tuple[int, int, int]:
    """(multiplier_a, multiplier_b, shift) with one shared shift, for ADD.

    ``multiplier_x / 2**shift ≈ real_x``; the larger multiplier lies in [2**30, 2**31).
    """
    big = max(real_a, real_b)
    rq = Requant.from_real(big)
    ma = round(real_a * 2.0**rq.shift)
    mb = round(real_b * 2.0**rq.shift)
    ma, mb = min(ma, 2**31 - 1), min(mb, 2**31 - 1)
    return int(ma), int(mb), rq.shift


def round_shift(acc: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """``(acc * multiplier + 2**(shift-1)) >> shift`` in int64 (arithmetic shift: round half up)."""
    return (acc.astype(np.int64) * int(multiplier) + (1 << (shift - 1))) >> shift


def clamp_out(y: np.ndarray, out_zp: int, act_min: int, act_max: int) -> np.ndarray:
    return np.clip(y + int(out_zp), int(act_min), int(act_max))


def wrap_int32(v: np.ndarray) -> np.ndarray:
    """The C runtime's int32 accumulator (wrapping; exact for valid models)."""
    return ((v + 2**31) & 0xFFFFFFFF) - 2**31


_EXACT_F64 = 2**53


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer ``a @ b`` (int64 in, int64 out): float64 BLAS when every partial sum is < 2**53."""
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    bound = int(np.abs(a).max()) * int(np.abs(b).max()) * a.shape[1]
    if bound < _EXACT_F64:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def check_int8(where: str, **values: int) -> None:
    for nm, v in values.items():
        if not -128 <= int(v) <= 127:
            raise ConfigError(f"{where}: {nm}={v} is not an int8")
