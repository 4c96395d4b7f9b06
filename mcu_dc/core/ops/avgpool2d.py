"""AVGPOOL2D: average pooling, global average pooling included (kernel = the whole map).

Zero padding counts towards the divisor (torch's ``count_include_pad=True``): every
window divides by ``kh*kw``. The device sums ``x - in_zp`` over the window's in-bounds
values in int32 (padding adds nothing) and requantizes with the one rounding rule;
``multiplier / 2**shift ≈ in_scale / (out_scale * kh * kw)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcu_dc.core.ops.base import (
    IO,
    OpSpec,
    PackOptions,
    SectionReader,
    SectionWriter,
    Shape,
    check_geometry,
    check_shape,
    check_window,
    conv_out_hw,
    pads4,
    register,
    windows,
)  # fmt: skip
from mcu_dc.core.ops.weights import LayerLayout
from mcu_dc.core.qmath import Op, Requant, check_int8, clamp_out, round_shift
from mcu_dc.errors import ConfigError, FormatError


@dataclass
class AvgPool2D:
    name: str
    in_shape: Shape
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    requant: Requant
    in_zp: int
    out_zp: int
    act_min: int = -128
    act_max: int = 127
    op: Op = field(default=Op.AVGPOOL2D, init=False)
    padding_end: tuple[int, int] | None = None
    inputs: tuple[int, ...] = ()
    output: int = -1

    @property
    def pads(self) -> tuple[int, int, int, int]:
        return pads4(self.padding, self.padding_end)

    @property
    def out_shape(self) -> Shape:
        c, h, w = self.in_shape
        oh, ow = conv_out_hw(h, w, self.kernel, self.stride, self.pads)
        return (c, oh, ow)


class AvgPool2DSpec(OpSpec):
    code = Op.AVGPOOL2D
    ir_type = AvgPool2D

    def check(self, op: AvgPool2D, where: str) -> None:
        check_window(where, op.in_shape, op.kernel, op.stride)
        kh, kw = op.kernel
        if kh * kw * 255 >= 2**31:
            raise ConfigError(f"{where}: a {kh}x{kw} window can overflow the int32 sum")
        pt, pl, pb, pr = op.pads
        check_geometry(where, pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr)
        if min(op.out_shape) <= 0:
            raise ConfigError(f"{where}: input {tuple(op.in_shape)} is smaller than the kernel {op.kernel}")
        check_shape(where, op.out_shape)
        check_int8(where, in_zp=op.in_zp, out_zp=op.out_zp, act_min=op.act_min, act_max=op.act_max)
        if op.act_min > op.act_max:
            raise ConfigError(f"{where}: act_min {op.act_min} > act_max {op.act_max}")

    def simulate(self, op: AvgPool2D, xs: list[np.ndarray]) -> np.ndarray:
        acc = windows(xs[0] - int(op.in_zp), op.kernel, op.stride, op.pads).sum(axis=(4, 5))
        return clamp_out(
            round_shift(acc, op.requant.multiplier, op.requant.shift), op.out_zp, op.act_min, op.act_max
        )

    def pack(self, op: AvgPool2D, w: SectionWriter, opts: PackOptions) -> tuple[dict[str, int], Any]:
        pt, pl, pb, pr = op.pads
        f = dict(
            kernel_h=op.kernel[0], kernel_w=op.kernel[1], stride_h=op.stride[0], stride_w=op.stride[1],
            pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr, act_min=op.act_min, act_max=op.act_max,
            shift=op.requant.shift, multiplier=op.requant.multiplier,
        )  # fmt: skip
        return f, LayerLayout(index=-1, op=self.code.name, encoding="NONE")

    def unpack(self, f: dict[str, Any], r: SectionReader, name: str, io: IO) -> AvgPool2D:
        try:
            rq = Requant(f["multiplier"], f["shift"])
        except ConfigError as exc:
            raise FormatError(f"{name}: {exc}") from None
        return AvgPool2D(
            name, io.in_shapes[0], (f["kernel_h"], f["kernel_w"]), (f["stride_h"], f["stride_w"]),
            (f["pad_top"], f["pad_left"]), rq, io.in_zps[0], io.out_zp, f["act_min"], f["act_max"],
            padding_end=(f["pad_bottom"], f["pad_right"]),
        )  # fmt: skip


register(AvgPool2DSpec())
