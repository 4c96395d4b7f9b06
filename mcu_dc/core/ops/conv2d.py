"""CONV2D: a standard convolution (groups = 1), any stride, zero padding (asymmetric
allowed), fused activation bounds and an optional fused max pool.

Weights are ``W[out_c][in_c*kh*kw]`` (torch's layout flattened). With ``pool`` set, the
op writes the max-pooled output and never stores the full conv output: the device keeps
one conv output channel of int32 accumulators in its scratch, pools it, requantizes.
Requantization and the clamp are monotone, so pooling before or after them is equal.

``gather`` selects the gather kernel (docs/format.md, "Gather convolution"): the same outputs,
computed per block of output positions from the input padded with its zero point and one
channel's taps grouped by codebook symbol (adds per tap, one multiply per group); it costs the
RAM of :func:`gather_scratch_bytes` and no flash.
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
    check_geometry,
    check_shape,
    conv_out_hw,
    maxpool,
    pads4,
    register,
    windows,
)  # fmt: skip
from mcu_dc.core.qmath import Encoding, Op, Requant
from mcu_dc.errors import ConfigError, FormatError


class ConvGeometry:
    """Output shapes of a conv-like op from ``in_shape``, ``kernel``, ``stride``, the pads, the
    optional fused max ``pool`` and the op's ``out_channels`` (shared by CONV2D and DEPTHWISE_CONV2D)."""

    in_shape: Shape
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    padding_end: tuple[int, int] | None
    pool: tuple[int, int, int, int] | None
    out_channels: int

    @property
    def pads(self) -> tuple[int, int, int, int]:
        return pads4(self.padding, self.padding_end)

    @property
    def conv_shape(self) -> Shape:
        """The convolution's output before the fused pool."""
        _, h, w = self.in_shape
        oh, ow = conv_out_hw(h, w, self.kernel, self.stride, self.pads)
        return (self.out_channels, oh, ow)

    @property
    def out_shape(self) -> Shape:
        return pooled(self.conv_shape, self.pool)


@dataclass
class Conv2D(ConvGeometry):
    name: str
    in_shape: Shape  # (C, H, W)
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]  # (top, left); bottom/right too unless padding_end is set
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
    padding_end: tuple[int, int] | None = None  # (bottom, right) when asymmetric
    pool: tuple[int, int, int, int] | None = None  # fused max pool (kh, kw, sh, sw)
    inputs: tuple[int, ...] = ()
    output: int = -1
    gather: int = 0  # 1 = the gather kernel (scratch: gather_scratch_bytes)
    # HUFFMAN_JOINT with gather: 1..12 = a compact section whose 2**table_bits-entry decode table the
    # gather kernel builds in its scratch (as an FC's); else 0
    table_bits: int = 0

    @property
    def rows(self) -> int:
        return self.out_channels

    @property
    def fan_in(self) -> int:
        return self.in_shape[0] * self.kernel[0] * self.kernel[1]


def pooled(shape: Shape, pool: tuple[int, int, int, int] | None) -> Shape:
    if pool is None:
        return shape
    c, h, w = shape
    kh, kw, sh, sw = pool
    return (c, (h - kh) // sh + 1, (w - kw) // sw + 1)


# The gather kernel's tap offsets are 16-bit: the (padded) input must hold at most this many bytes.
GATHER_MAX_INPUT = 0xFFFF


def gather_input_bytes(op: Any) -> int:
    """Bytes of the input the gather kernel reads: padded with the zero point when the op pads."""
    c, h, w = op.in_shape
    pt, pl, pb, pr = op.pads
    return c * (h + pt + pb) * (w + pl + pr)


def gather_scratch_bytes(op: Any) -> int:
    """The gather kernel's scratch (the C runtime's ``gather_scratch``, byte for byte): one channel of
    int32 accumulators, the groups (u32, at most min(256, fan_in) + fan_in // 256 + 1), one channel's
    taps in decode order (u32[fan_in]), per-symbol counts (u16[256]), each weight column's tap offset and
    one channel's grouped tap offsets (u16[fan_in] each), then the padded input when the op pads, then a
    compact joint section's decode table (u16[2**table_bits]) when it has one (docs/format.md, "Gather
    convolution")."""
    _, oh, ow = op.conv_shape
    f = op.fan_in
    padded = wt.align4(gather_input_bytes(op)) if any(op.pads) else 0
    groups = min(256, f) + f // 256 + 1
    tb = int(op.table_bits)
    table = 2 << tb if tb else 0
    return 4 * oh * ow + 4 * groups + 4 * f + 512 + 2 * wt.align4(2 * f) + padded + table


def check_gather(op: Any, where: str) -> None:
    g = int(getattr(op, "gather", 0))
    if g not in (0, 1):
        raise ConfigError(f"{where}: gather is {g}; it is 0 (scatter kernel) or 1 (gather kernel)")
    if int(getattr(op, "table_bits", 0)) and not g:
        raise ConfigError(
            f"{where}: a conv's decode table in RAM (table_bits {op.table_bits}) is built by the gather "
            "kernel: set gather = 1 (`--conv-kernel gather`), or store the table in flash (table_bits 0)"
        )
    if g and gather_input_bytes(op) > GATHER_MAX_INPUT:
        raise ConfigError(
            f"{where}: the gather kernel addresses its input with 16-bit offsets, and this op's padded "
            f"input is {gather_input_bytes(op):,} bytes (at most {GATHER_MAX_INPUT:,}); use the scatter "
            "kernel for it (gather = 0, `--conv-kernel scatter`)"
        )


def check_conv_geometry(op: Any, where: str) -> None:
    check_shape(where, tuple(op.in_shape))
    kh, kw = op.kernel
    sh, sw = op.stride
    if kh < 1 or kw < 1 or kh > 0xFFFF or kw > 0xFFFF or sh < 1 or sw < 1:
        raise ConfigError(f"{where}: kernel {op.kernel} and stride {op.stride} must be positive")
    pt, pl, pb, pr = op.pads
    check_geometry(where, stride_h=sh, stride_w=sw, pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr)
    if min(op.conv_shape) <= 0:
        raise ConfigError(
            f"{where}: input {tuple(op.in_shape)} is smaller than the kernel {op.kernel} with its padding"
        )
    if op.pool is not None:
        pkh, pkw, psh, psw = op.pool
        check_geometry(where, pool_kh=pkh, pool_kw=pkw, pool_sh=psh, pool_sw=psw)
        if min(op.pool) < 1 or min(op.out_shape) <= 0:
            raise ConfigError(f"{where}: fused pool {op.pool} does not fit the conv output {op.conv_shape}")
    check_shape(where, tuple(op.out_shape))


def geometry_fields(op: Any) -> dict[str, int]:
    pt, pl, pb, pr = op.pads
    f = dict(
        kernel_h=op.kernel[0], kernel_w=op.kernel[1], stride_h=op.stride[0], stride_w=op.stride[1],
        pad_top=pt, pad_left=pl, pad_bottom=pb, pad_right=pr,
    )  # fmt: skip
    if op.pool is not None:
        f.update(pool_kh=op.pool[0], pool_kw=op.pool[1], pool_sh=op.pool[2], pool_sw=op.pool[3])
    return f


def geometry_from(f: dict[str, Any]) -> dict[str, Any]:
    pool = None
    if f["pool_kh"]:
        pool = (f["pool_kh"], f["pool_kw"], f["pool_sh"], f["pool_sw"])
    return dict(
        kernel=(f["kernel_h"], f["kernel_w"]), stride=(f["stride_h"], f["stride_w"]),
        padding=(f["pad_top"], f["pad_left"]), padding_end=(f["pad_bottom"], f["pad_right"]), pool=pool,
    )  # fmt: skip


class ConvFamilySpec(OpSpec):
    """What CONV2D and DEPTHWISE_CONV2D share: shapes, scratch, MACs, checks and packing."""

    has_weights = True

    def scratch_bytes(self, op: Any) -> int:
        if int(getattr(op, "gather", 0)):
            return gather_scratch_bytes(op)
        _, oh, ow = op.conv_shape
        if op.encoding in (Encoding.TERNARY, Encoding.BINARY):
            return 8 * oh * ow  # two int32 maps: the input sums each bit-plane selects
        return 4 * oh * ow  # one output channel of int32 accumulators

    def macs(self, op: Any) -> int:
        _, oh, ow = op.conv_shape
        return int((np.asarray(op.assign) >= 0).sum()) * oh * ow

    def check(self, op: Any, where: str) -> None:
        check_conv_geometry(op, where)
        wt.check_weights(op, op.out_channels, op.fan_in, where)

    def pack(self, op: Any, w: SectionWriter, opts: PackOptions) -> tuple[dict[str, int], Any]:
        lay = wt.LayerLayout(index=-1, op=self.code.name, encoding="")
        f = wt.pack_weights(op, op.out_channels, op.fan_in, w, opts, lay)
        f.update(geometry_fields(op))
        if int(getattr(op, "gather", 0)):
            f["gather"] = 1
        return f, lay


class Conv2DSpec(ConvFamilySpec):
    code = Op.CONV2D
    ir_type = Conv2D

    def check(self, op: Conv2D, where: str) -> None:
        super().check(op, where)
        check_gather(op, where)

    def simulate(self, op: Conv2D, xs: list[np.ndarray]) -> np.ndarray:
        x = xs[0]
        n = x.shape[0]
        oc, oh, ow = op.conv_shape
        win = windows(x - int(op.in_zp), op.kernel, op.stride, op.pads)  # (N, C, oh, ow, kh, kw)
        cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, -1)
        y = wt.requant_out(op, wt.accumulate(op, cols))
        y = y.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)
        return y if op.pool is None else maxpool(y, op.pool[:2], op.pool[2:])

    def unpack(self, f: dict[str, Any], r: SectionReader, name: str, io: IO) -> Conv2D:
        oc = io.out_shape[0]  # out_c is the output tensor's channel count
        g = geometry_from(f)
        fan_in = io.in_shapes[0][0] * g["kernel"][0] * g["kernel"][1]
        gather = int(f.get("gather", 0))
        common = wt.unpack_weights(f, r, oc, fan_in, name, gather_ok=True, table_ok=gather == 1)
        op = Conv2D(
            name, io.in_shapes[0], oc, in_zp=io.in_zps[0], out_zp=io.out_zp, gather=gather,
            table_bits=int(f.get("table_bits", 0)), **g, **common,
        )  # fmt: skip
        try:
            check_gather(op, name)
        except ConfigError as e:
            raise FormatError(f"{e} (the op descriptor's gather byte; the file is corrupt)") from None
        return op


register(Conv2DSpec())
