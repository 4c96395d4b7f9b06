"""ADD: the element-wise sum of two tensors of one shape, each with its own scale (a residual add).

Both inputs are rescaled to the output scale with one shared shift, summed in int64 and
rounded once (the one rounding rule)::

    acc = (a - zp_a) * multiplier_a + (b - zp_b) * multiplier_b     # int64, exact
    out = clamp(((acc + 2**(shift-1)) >> shift) + out_zp, act_min, act_max)

with ``multiplier_x / 2**shift ≈ scale_x / out_scale`` (:func:`mcu_dc.core.qmath.pair_requant`).
A ReLU after the add is fused as ``act_min = out_zp``.
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
    check_shape,
    register,
)
from mcu_dc.core.ops.weights import LayerLayout
from mcu_dc.core.qmath import Op, check_int8, clamp_out
from mcu_dc.errors import ConfigError, FormatError


@dataclass
class Add:
    name: str
    shape: Shape
    zp_a: int
    zp_b: int
    out_zp: int
    multiplier_a: int
    multiplier_b: int
    shift: int
    act_min: int = -128
    act_max: int = 127
    op: Op = field(default=Op.ADD, init=False)
    inputs: tuple[int, ...] = ()
    output: int = -1

    @property
    def in_shape(self) -> Shape:
        return self.shape

    @property
    def out_shape(self) -> Shape:
        return self.shape


class AddSpec(OpSpec):
    code = Op.ADD
    ir_type = Add
    n_inputs = 2

    def in_shapes(self, op: Add) -> list[Shape]:
        return [tuple(op.shape), tuple(op.shape)]  # type: ignore[list-item]

    def in_zps(self, op: Add) -> list[int]:
        return [int(op.zp_a), int(op.zp_b)]

    def check(self, op: Add, where: str) -> None:
        check_shape(where, tuple(op.shape))
        check_int8(
            where, zp_a=op.zp_a, zp_b=op.zp_b, out_zp=op.out_zp, act_min=op.act_min, act_max=op.act_max
        )
        if op.act_min > op.act_max:
            raise ConfigError(f"{where}: act_min {op.act_min} > act_max {op.act_max}")
        for nm, m in (("multiplier_a", op.multiplier_a), ("multiplier_b", op.multiplier_b)):
            if not 0 <= m < 2**31:
                raise ConfigError(f"{where}: {nm} {m} outside [0, 2**31)")
        if not 1 <= op.shift <= 62:
            raise ConfigError(f"{where}: shift {op.shift} outside [1, 62]")

    def simulate(self, op: Add, xs: list[np.ndarray]) -> np.ndarray:
        a, b = xs
        acc = (a - int(op.zp_a)) * int(op.multiplier_a) + (b - int(op.zp_b)) * int(op.multiplier_b)
        y = (acc + (1 << (op.shift - 1))) >> op.shift
        return clamp_out(y, op.out_zp, op.act_min, op.act_max)

    def pack(self, op: Add, w: SectionWriter, opts: PackOptions) -> tuple[dict[str, int], Any]:
        f = dict(
            act_min=op.act_min, act_max=op.act_max, shift=op.shift,
            multiplier=op.multiplier_a, multiplier_b=op.multiplier_b,
        )  # fmt: skip
        return f, LayerLayout(index=-1, op=self.code.name, encoding="NONE")

    def unpack(self, f: dict[str, Any], r: SectionReader, name: str, io: IO) -> Add:
        if io.in_shapes[0] != io.in_shapes[1] or io.in_shapes[0] != io.out_shape:
            raise FormatError(f"{name}: ADD of shapes {io.in_shapes} into {io.out_shape}")
        op = Add(
            name, io.out_shape, io.in_zps[0], io.in_zps[1], io.out_zp, f["multiplier"], f["multiplier_b"],
            f["shift"], f["act_min"], f["act_max"],
        )  # fmt: skip
        try:
            AddSpec.check(AddSpec(), op, name)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise FormatError(str(exc)) from None
        return op


register(AddSpec())
