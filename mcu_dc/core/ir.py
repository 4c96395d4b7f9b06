"""The integer model: what a device runs, torch-free.

An :class:`IntegerModel` is a straight chain of layers over int8 tensors in CHW order
(the order of ``torch.flatten``). The device's input is raw ``uint8`` bytes; the runtime
turns byte ``b`` into the int8 value ``b - 128`` (so the first layer's ``in_zp`` is
-128 and ``input_scale`` is the real value of one byte step, e.g. 1/255 for MNIST).

Conv2D and FC layers carry their weights as a per-layer int8 **codebook** plus an
**assignment** matrix of codebook indices, ``-1`` where the weight is pruned. The
weight of output row ``o`` and flattened input position ``j`` is
``codebook[assign[o, j]]`` or 0 when ``assign[o, j] == -1``. For Conv2D the row is
flattened as ``(in_c, kernel_h, kernel_w)`` (torch's weight layout).

Requantization (the one rounding rule, ``ROUNDING_HALF_UP``)::

    acc = bias[o] + sum_j w[o, j] * (x[j] - in_zp)          # int32, exact
    y   = (acc * multiplier + (1 << (shift - 1))) >> shift  # int64, arithmetic shift
    out = clamp(y + out_zp, act_min, act_max)               # int8

``multiplier`` is in ``[0, 2**31)`` and ``shift`` in ``[1, 62]``. A fused ReLU is
``act_min = out_zp``. MaxPool2D keeps scale and zero point (``out_zp == in_zp``).
The full definition, with the file layout, is ``docs/format.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from mcu_dc.errors import ConfigError


class Op(IntEnum):
    CONV2D = 1
    FC = 2
    MAXPOOL2D = 3


class Encoding(IntEnum):
    """How a layer's weights are stored in the blob."""

    NONE = 0  # no weights (MaxPool2D)
    DENSE_INT8 = 1  # the baseline: every weight as int8, row-major [out][fan_in]
    HUFFMAN_SPARSE = 2  # relative-index sparse stream, both streams canonical-Huffman coded


ROUNDING_HALF_UP = 1  # the only rounding rule; recorded in the blob header

MAX_CODEBOOK = 256  # codebook entries (the weight alphabet has one more: the filler)
MAX_INDEX_BITS = 8
MAX_HUFFMAN_LEN = 15


@dataclass(frozen=True)
class Requant:
    """Integer requantization parameters of one layer."""

    multiplier: int
    shift: int

    def __post_init__(self) -> None:
        if not 0 <= self.multiplier < 2**31:
            raise ConfigError(f"requant multiplier {self.multiplier} outside [0, 2**31)")
        if not 1 <= self.shift <= 62:
            raise ConfigError(f"requant shift {self.shift} outside [1, 62]")

    @staticmethod
    def from_real(real: float) -> Requant:
        """Best (multiplier, shift) with multiplier in [2**30, 2**31) for ``real`` > 0.

        ``real`` is ``in_scale * weight_scale / out_scale``; the result approximates
        ``real == multiplier / 2**shift``.
        """
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
        while shift < 1:
            raise ConfigError(
                f"requant scale {real:g} is too large (>= 2**30): the layer's output scale is far "
                "smaller than its input*weight scale; check calibration data"
            )
        return Requant(int(q), int(shift))


@dataclass
class Conv2D:
    name: str
    in_shape: tuple[int, int, int]  # (C, H, W)
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    codebook: np.ndarray  # int8 (k,)
    assign: np.ndarray  # int16 (out_c, in_c*kh*kw); -1 = pruned
    bias: np.ndarray  # int32 (out_c,)
    requant: Requant
    in_zp: int
    out_zp: int
    act_min: int = -128
    act_max: int = 127
    encoding: Encoding = Encoding.HUFFMAN_SPARSE
    index_bits: int = 8  # relative-index width (paper: 8 for conv)
    op: Op = field(default=Op.CONV2D, init=False)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        kh, kw = self.kernel
        sh, sw = self.stride
        ph, pw = self.padding
        return (self.out_channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)

    @property
    def fan_in(self) -> int:
        return self.in_shape[0] * self.kernel[0] * self.kernel[1]


@dataclass
class FC:
    name: str
    in_shape: tuple[int, int, int]  # the (C, H, W) tensor it flattens
    out_features: int
    codebook: np.ndarray  # int8 (k,)
    assign: np.ndarray  # int16 (out, fan_in); -1 = pruned
    bias: np.ndarray  # int32 (out,)
    requant: Requant
    in_zp: int
    out_zp: int
    act_min: int = -128
    act_max: int = 127
    encoding: Encoding = Encoding.HUFFMAN_SPARSE
    index_bits: int = 5  # relative-index width (paper: 5 for FC)
    op: Op = field(default=Op.FC, init=False)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.out_features, 1, 1)

    @property
    def fan_in(self) -> int:
        c, h, w = self.in_shape
        return c * h * w


@dataclass
class MaxPool2D:
    name: str
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    zp: int
    op: Op = field(default=Op.MAXPOOL2D, init=False)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        kh, kw = self.kernel
        sh, sw = self.stride
        return (c, (h - kh) // sh + 1, (w - kw) // sw + 1)


Layer = Conv2D | FC | MaxPool2D
WeightLayer = Conv2D | FC


def dense_weights(layer: WeightLayer) -> np.ndarray:
    """The int8 weight matrix ``(rows, fan_in)`` a layer's codebook and assignment stand for."""
    cb = np.asarray(layer.codebook, dtype=np.int32)
    a = np.asarray(layer.assign)
    w = np.where(a >= 0, cb[np.clip(a, 0, None)], 0)
    return w.astype(np.int8)


@dataclass
class IntegerModel:
    """A chain of integer layers; the device-side truth."""

    layers: list[Layer]
    input_shape: tuple[int, int, int]
    input_scale: float  # real value of one input byte step (input is uint8)
    output_scale: float  # real value of one output LSB
    output_zp: int
    name: str = "model"

    @property
    def output_len(self) -> int:
        c, h, w = self.layers[-1].out_shape if self.layers else self.input_shape
        return c * h * w

    @property
    def input_len(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    def tensor_shapes(self) -> list[tuple[int, int, int]]:
        """Shapes of T0 (the input) .. Tn (the output)."""
        return [self.input_shape] + [layer.out_shape for layer in self.layers]

    def arena_bytes(self) -> int:
        """Exact arena size the C runtime needs (docs/format.md, 'Arena')."""
        sizes = [c * h * w for (c, h, w) in self.tensor_shapes()]
        buf = [0, 0]
        for i, s in enumerate(sizes):
            buf[i % 2] = max(buf[i % 2], s)
        scratch = 0
        for layer in self.layers:
            if isinstance(layer, Conv2D):
                _, oh, ow = layer.out_shape
                scratch = max(scratch, oh * ow * 4)
        return _align4(buf[0]) + _align4(buf[1]) + scratch


def _align4(n: int) -> int:
    return (n + 3) & ~3
