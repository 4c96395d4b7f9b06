"""MAXPOOL2D: the maximum of int8 values over each window (no padding).

Scale and zero point pass through (input and output tensors share them).
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
    check_window,
    maxpool,
    register,
)
from mcu_dc.core.ops.weights import LayerLayout
from mcu_dc.core.qmath import Op, check_int8
from mcu_dc.errors import ConfigError, FormatError


@dataclass
class MaxPool2D:
    name: str
    in_shape: Shape
    kernel: tuple[int, int]
    stride: tuple[int, int]
    zp: int
    op: Op = field(default=Op.MAXPOOL2D, init=False)
    inputs: tuple[int, ...] = ()
    output: int = -1

    @property
    def out_shape(self) -> Shape:
        c, h, w = self.in_shape
        kh, kw = self.kernel
        sh, sw = self.stride
        return (c, (h - kh) // sh + 1, (w - kw) // sw + 1)

    @property
    def in_zp(self) -> int:
        return self.zp

    @property
    def out_zp(self) -> int:
        return self.zp


class MaxPool2DSpec(OpSpec):
    code = Op.MAXPOOL2D
    ir_type = MaxPool2D

    def check(self, op: MaxPool2D, where: str) -> None:
        check_window(where, op.in_shape, op.kernel, op.stride)
        if op.kernel[0] > op.in_shape[1] or op.kernel[1] > op.in_shape[2]:
            raise ConfigError(f"{where}: kernel {op.kernel} is larger than the input {tuple(op.in_shape)}")
        check_int8(where, zp=op.zp)

    def simulate(self, op: MaxPool2D, xs: list[np.ndarray]) -> np.ndarray:
        return maxpool(xs[0], op.kernel, op.stride)

    def pack(self, op: MaxPool2D, w: SectionWriter, opts: PackOptions) -> tuple[dict[str, int], Any]:
        f = dict(kernel_h=op.kernel[0], kernel_w=op.kernel[1], stride_h=op.stride[0], stride_w=op.stride[1])
        f.update(act_min=-128, act_max=127)
        return f, LayerLayout(index=-1, op=self.code.name, encoding="NONE")

    def unpack(self, f: dict[str, Any], r: SectionReader, name: str, io: IO) -> MaxPool2D:
        if io.in_zps[0] != io.out_zp:
            raise FormatError(
                f"{name}: MAXPOOL2D input and output zero points differ ({io.in_zps[0]}, {io.out_zp})"
            )
        return MaxPool2D(
            name, io.in_shapes[0], (f["kernel_h"], f["kernel_w"]), (f["stride_h"], f["stride_w"]), io.out_zp
        )


register(MaxPool2DSpec())
