"""DEPTHWISE_CONV2D: ``groups == in_channels`` with channel multiplier ``m >= 1``.

Output channel ``o`` (``out_c = in_c * m``) convolves input channel ``o // m`` with its
own ``kh*kw`` kernel, so weights are ``W[out_c][kh*kw]`` (torch's ``(out_c, 1, kh, kw)``
flattened). Padding, strides, activation bounds and the fused max pool are as CONV2D's;
the scratch is one output channel of int32 accumulators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcu_dc.core.ops import weights as wt
from mcu_dc.core.ops.base import (
    IO,
    SectionReader,
    Shape,
    maxpool,
    register,
    windows,
)
from mcu_dc.core.ops.conv2d import ConvFamilySpec, ConvGeometry, geometry_from
from mcu_dc.core.qmath import Encoding, Op, Requant, int_matmul, wrap_int32
from mcu_dc.errors import ConfigError


@dataclass
class DepthwiseConv2D(ConvGeometry):
    name: str
    in_shape: Shape
    multiplier: int  # output channels per input channel
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    codebook: np.ndarray
    assign: np.ndarray  # int16 (in_c*multiplier, kh*kw); -1 = pruned
    bias: np.ndarray
    requant: Requant
    in_zp: int
    out_zp: int
    act_min: int = -128
    act_max: int = 127
    encoding: Encoding = Encoding.HUFFMAN_SPARSE
    index_bits: int = 4
    op: Op = field(default=Op.DEPTHWISE_CONV2D, init=False)
    padding_end: tuple[int, int] | None = None
    pool: tuple[int, int, int, int] | None = None
    inputs: tuple[int, ...] = ()
    output: int = -1

    @property
    def out_channels(self) -> int:  # type: ignore[override]
        return self.in_shape[0] * self.multiplier

    @property
    def rows(self) -> int:
        return self.out_channels

    @property
    def fan_in(self) -> int:
        return self.kernel[0] * self.kernel[1]


class DepthwiseConv2DSpec(ConvFamilySpec):
    code = Op.DEPTHWISE_CONV2D
    ir_type = DepthwiseConv2D

    def check(self, op: DepthwiseConv2D, where: str) -> None:
        if op.multiplier < 1:
            raise ConfigError(f"{where}: channel multiplier {op.multiplier} must be >= 1")
        super().check(op, where)

    def simulate(self, op: DepthwiseConv2D, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        n = x.shape[0]
        oc, oh, ow = op.conv_shape
        win = windows(x - int(op.in_zp), op.kernel, op.stride, op.pads)  # (N, C, oh, ow, kh, kw)
        src = np.arange(oc) // op.multiplier
        w = wt.dense_weights(op).astype(np.int64)  # (oc, kh*kw)
        acc = np.empty((n, oc, oh, ow), dtype=np.int64)
        for o in range(oc):
            cols = win[:, src[o]].reshape(n * oh * ow, -1)
            acc[:, o] = int_matmul(np.ascontiguousarray(cols), w[o][:, None]).reshape(n, oh, ow)
        acc = wrap_int32(acc + np.asarray(op.bias, dtype=np.int64)[None, :, None, None])
        y = wt.requant_out(op, acc)
        return y if op.pool is None else maxpool(y, op.pool[:2], op.pool[2:])

    def unpack(self, f: dict[str, Any], r: SectionReader, name: str, io: IO) -> DepthwiseConv2D:
        from mcu_dc.errors import FormatError

        c = io.in_shapes[0][0]
        oc = io.out_shape[0]
        if oc % c:
            raise FormatError(
                f"{name}: depthwise output channels {oc} are not a multiple of input channels {c}"
            )
        g = geometry_from(f)
        common = wt.unpack_weights(f, r, oc, g["kernel"][0] * g["kernel"][1], name)
        return DepthwiseConv2D(
            name, io.in_shapes[0], oc // c, in_zp=io.in_zps[0], out_zp=io.out_zp, **g, **common
        )


register(DepthwiseConv2DSpec())
