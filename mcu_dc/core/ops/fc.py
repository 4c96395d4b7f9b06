"""FC: a fully connected layer over its input tensor flattened in CHW order.

Weights are ``W[out][in_c*in_h*in_w]``; output shape ``(out, 1, 1)``. No scratch, except
with COLUMN_SPARSE weights: one int32 accumulator per output (the kernel walks columns), and
with compact HUFFMAN_JOINT weights: the decode table the kernel builds (``table_bits``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mcu_dc.core.ops import weights as wt
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
from mcu_dc.core.qmath import Encoding, Op, Requant


@dataclass
class FC:
    name: str
    in_shape: Shape  # the (C, H, W) tensor it flattens
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
    # HUFFMAN_JOINT: 0 = the section carries its symbol list and lookup table; 1..12 = a compact
    # section (code lengths only, codes <= table_bits) whose kernel builds a 2**table_bits-entry
    # decode table in the op's scratch (2 << table_bits bytes) at each inference
    table_bits: int = 0
    op: Op = field(default=Op.FC, init=False)
    inputs: tuple[int, ...] = ()
    output: int = -1

    @property
    def out_shape(self) -> Shape:
        return (self.out_features, 1, 1)

    @property
    def rows(self) -> int:
        return self.out_features

    @property
    def fan_in(self) -> int:
        c, h, w = self.in_shape
        return c * h * w


class FCSpec(OpSpec):
    code = Op.FC
    ir_type = FC
    has_weights = True

    def scratch_bytes(self, op: FC) -> int:
        if op.encoding == Encoding.COLUMN_SPARSE:
            return 4 * op.out_features
        if op.encoding == Encoding.HUFFMAN_JOINT and op.table_bits:
            return 2 << op.table_bits  # the decode table, u16 entries
        return 0

    def macs(self, op: FC) -> int:
        return int((np.asarray(op.assign) >= 0).sum())

    def check(self, op: FC, where: str) -> None:
        check_shape(where, tuple(op.in_shape))
        check_shape(where, op.out_shape)
        wt.check_weights(op, op.out_features, op.fan_in, where)

    def simulate(self, op: FC, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        n = x.shape[0]
        y = wt.requant_out(op, wt.accumulate(op, x.reshape(n, -1) - int(op.in_zp)))
        return y.reshape(n, op.out_features, 1, 1)

    def pack(self, op: FC, w: SectionWriter, opts: PackOptions) -> tuple[dict[str, int], Any]:
        lay = wt.LayerLayout(index=-1, op=self.code.name, encoding="")
        return wt.pack_weights(op, op.out_features, op.fan_in, w, opts, lay), lay

    def unpack(self, f: dict[str, Any], r: SectionReader, name: str, io: IO) -> FC:
        c, h, w = io.in_shapes[0]
        out = io.out_shape[0]
        common = wt.unpack_weights(f, r, out, c * h * w, name, table_ok=True)
        tb = int(f.get("table_bits", 0))
        return FC(name, io.in_shapes[0], out, in_zp=io.in_zps[0], out_zp=io.out_zp, table_bits=tb, **common)


register(FCSpec())
