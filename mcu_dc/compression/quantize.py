"""Float compressed graph → :class:`mcu_dc.core.ir.IntegerModel` (docs/format.md).

* Activations: the range of every tensor is calibrated on training inputs (per-tensor
  min/max, or the configured percentile). A tensor bounded below by 0 (a fused ReLU) uses
  ``zp = -128, scale = max/255``; a tensor with finite bounds on both sides (ReLU6,
  Hardtanh, clamp) uses its bounds as its range (ReLU6: ``[0, 6]``); any other tensor is
  asymmetric int8 from min/max (the range always contains 0). Activation bounds become
  ``act_min``/``act_max``: the bounds quantized and clamped to int8. Max pooling, dropout
  and the option-A shortcut keep their input's scale and zero point.
* The input: raw bytes for uint8 datasets (``zp = -128``, ``scale = input_scale``,
  :attr:`InputKind.UINT8`); for float features a calibrated scale and zero point
  (:attr:`InputKind.INT8`; the device takes the int8 values).
* Weights: each layer's codebook becomes int8 with the scale ``s_w = max|c| / m`` (``64 <= m <=
  127``) that rounds its entries least (:func:`best_weight_scale`); weights whose
  int8 code is 0 are dropped from the sparse stream (they multiply nothing); unused
  codebook entries are removed.
* Bias: int32 ``round(b / (s_in * s_w))``; requantization ``Requant.from_real(s_in*s_w/s_out)``.
* Average pooling: ``Requant.from_real(s_in / (s_out * kh * kw))``; a residual add: both
  inputs rescaled to the output scale with one shared shift
  (:func:`mcu_dc.core.qmath.pair_requant`).
* The option-A shortcut: a 1×1 strided convolution with codebook ``{1}``, zero bias and
  ``Requant.from_real(1.0)`` whose output scale and zero point are its input's: exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mcu_dc.compression.graph import AddNode, AvgPool, ChannelPad, DropoutNode, GraphNet, Pool, WeightLayer
from mcu_dc.core import ir
from mcu_dc.core.huffman import code_lengths
from mcu_dc.core.qmath import pair_requant
from mcu_dc.core.sparse import encode_relative
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError, ModelError

CALIB_ELEMENTS = 48_000_000  # float activations kept at once during calibration
PERCENTILE_SAMPLE = 4_000_000  # values per tensor kept for a percentile


@dataclass
class QuantConfig:
    calib_samples: int = 2000
    calib_percentile: float = 100.0  # of ReLU outputs / min-max of the others
    conv_index_bits: int = 8
    fc_index_bits: int = 5
    dw_index_bits: int = 4  # depthwise: fan-in is only kh*kw, so rows are short
    auto_index_bits: bool = False  # pick each layer's index width (1..8) that codes smallest
    max_code_len: int = 12
    index_bits: dict[str, int] = field(default_factory=dict)  # per-layer override

    def validate(self) -> None:
        for what, b in (
            ("conv_index_bits", self.conv_index_bits),
            ("fc_index_bits", self.fc_index_bits),
            ("dw_index_bits", self.dw_index_bits),
        ):
            if not 1 <= b <= ir.MAX_INDEX_BITS:
                raise ConfigError(f"quantize.{what} = {b} is out of range 1..{ir.MAX_INDEX_BITS}")
        for name, b in self.index_bits.items():
            if not 1 <= b <= ir.MAX_INDEX_BITS:
                raise ConfigError(
                    f"quantize.index_bits[{name!r}] = {b} is out of range 1..{ir.MAX_INDEX_BITS}"
                )
        if not 50.0 <= self.calib_percentile <= 100.0 or self.calib_samples < 1:
            raise ConfigError("quantize.calib_percentile must be in [50, 100] and calib_samples >= 1")

    def bits_for(self, kind: str) -> int:
        return {"conv": self.conv_index_bits, "dw": self.dw_index_bits}.get(kind, self.fc_index_bits)


# --------------------------------------------------------------------------- calibration


def float_inputs(data: Dataset, idx: np.ndarray) -> np.ndarray:
    """What the float model sees for samples ``idx``."""
    return data.float_inputs(idx)


class _Range:
    """Running min/max of a tensor, plus every ``stride``-th value for a percentile."""

    def __init__(self, percentile: float, stride: int) -> None:
        self.percentile, self.stride = percentile, max(1, stride)
        self.lo, self.hi = math.inf, -math.inf
        self.parts: list[np.ndarray] = []

    def add(self, v: torch.Tensor) -> None:
        a = v.detach().flatten().cpu().numpy()
        if a.size == 0:
            return
        self.lo, self.hi = min(self.lo, float(a.min())), max(self.hi, float(a.max()))
        if self.percentile < 100.0:
            self.parts.append(a[:: self.stride].astype(np.float64))

    def result(self) -> tuple[float, float]:
        if self.percentile >= 100.0 or not self.parts:
            return self.lo, self.hi
        lo, hi = np.percentile(np.concatenate(self.parts), [100.0 - self.percentile, self.percentile])
        return float(lo), float(hi)


@torch.no_grad()
def calibrate(
    net: GraphNet, data: Dataset, cfg: QuantConfig, device: torch.device
) -> dict[int, tuple[float, float]]:
    """(min, max) of every tensor of ``net`` (after its activation bounds) on ``data``."""
    net.eval().to(device)
    n = min(cfg.calib_samples, len(data))
    idx = np.sort(np.random.default_rng(0).permutation(len(data))[:n])
    sizes = {t: c * h * w for t, (c, h, w) in net.tensor_shapes().items()}
    batch = max(1, min(n, CALIB_ELEMENTS // max(sum(sizes.values()), 1)))
    ranges = {t: _Range(cfg.calib_percentile, -(-sz * n // PERCENTILE_SAMPLE)) for t, sz in sizes.items()}
    for i in range(0, n, batch):
        x = torch.from_numpy(np.ascontiguousarray(float_inputs(data, idx[i : i + batch]))).to(device)
        for t, v in net.forward_all(x).items():
            ranges[t].add(v)
    return {t: r.result() for t, r in ranges.items()}


# A tensor whose calibrated range is narrower than this is degenerate (typically a dead ReLU:
# all zeros on the calibration data). It gets this width instead of a near-zero scale, which
# would make the int32 bias of every op reading it overflow (bias / (in_scale * w_scale)).
MIN_RANGE = 1e-3


def _out_qparams(relu: bool, lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point from a range: ``relu`` (bounded below by 0) -> zp -128."""
    if relu:
        hi = max(hi, MIN_RANGE)
        return hi / 255.0, -128
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < MIN_RANGE:
        hi = lo + MIN_RANGE
    scale = (hi - lo) / 255.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zp


def tensor_qparams(bounds: tuple[float, float], calibrated: tuple[float, float]) -> tuple[float, int]:
    """A tensor's (scale, zero point) from its activation bounds and its calibrated range."""
    blo, bhi = bounds
    lo, hi = calibrated
    if math.isfinite(blo) and math.isfinite(bhi):
        lo, hi = blo, bhi  # a known range (ReLU6: [0, 6])
    return _out_qparams(blo >= 0.0, lo, hi)


def act_limits(bounds: tuple[float, float], scale: float, zp: int) -> tuple[int, int]:
    """Activation bounds as int8 ``(act_min, act_max)`` on a tensor of ``scale``, ``zp``."""

    def q(v: float) -> int:
        return int(np.clip(math.floor(v / scale + 0.5) + zp, -128, 127))

    lo, hi = bounds
    return (-128 if lo == -math.inf else q(lo)), (127 if hi == math.inf else q(hi))


# --------------------------------------------------------------------------- weights


def stream_bits(assign: np.ndarray, index_bits: int, k: int, max_len: int) -> int:
    """Huffman-coded bits of both streams of a layer at ``index_bits``."""
    r, s = encode_relative(assign, index_bits, k)
    if len(r) == 0:
        return 0
    lr = code_lengths(np.bincount(r, minlength=2**index_bits), max_len)
    ls = code_lengths(np.bincount(s, minlength=k + 1), max_len)
    return int((lr[r]).sum() + (ls[s]).sum() + 16 * (np.count_nonzero(lr) + np.count_nonzero(ls)))


def best_index_bits(assign: np.ndarray, k: int, max_len: int) -> int:
    costs = {b: stream_bits(assign, b, k, max_len) for b in range(1, ir.MAX_INDEX_BITS + 1)}
    return min(costs, key=lambda b: (costs[b], -b))


def best_weight_scale(c: np.ndarray, counts: np.ndarray, amax: float) -> float:
    """The weight scale that puts a layer's codebook closest to the int8 grid.

    ``amax / 127`` spreads the largest entry over the whole range, but a small codebook's other
    entries then round by up to half a step: a 3-bit codebook's entries nearest zero (which hold
    most weights) move by several percent. Scales ``amax / m`` for ``m`` in ``[64, 127]`` (a
    quarter-step grid) are tried; the one with the least squared error, weighted by how many
    weights use each entry, wins (ties: the finest).
    """
    used = counts > 0
    cu, n = c[used], counts[used].astype(np.float64)
    best, best_err = amax / 127.0, math.inf
    for m in np.arange(127.0, 63.9, -0.25):
        s = amax / m
        err = float(np.sum(n * (cu - s * np.clip(np.round(cu / s), -127, 127)) ** 2))
        if err < best_err * (1 - 1e-9):
            best, best_err = s, err
    return best


def _int_codebook(wl: WeightLayer) -> tuple[np.ndarray, np.ndarray, float]:
    """(int8 codebook, int16 assign with -1 pruned, weight scale)."""
    c = wl.centroids.detach().cpu().numpy().astype(np.float64)
    mask = wl.mask.detach().cpu().numpy().reshape(wl.weight.shape[0], -1) > 0
    a = wl.assign.detach().cpu().numpy().reshape(wl.weight.shape[0], -1)
    amax = float(np.abs(c[np.unique(a[mask])]).max()) if mask.any() else 0.0
    if amax == 0.0:
        raise ModelError(
            f"layer {wl.name!r} has no non-zero weight left (pruned to 100 %); prune it less or remove it."
        )
    s_w = best_weight_scale(c, np.bincount(a[mask], minlength=len(c)), amax)
    cb = np.clip(np.round(c / s_w), -127, 127).astype(np.int64)
    keep = mask & (cb[a] != 0)
    used = np.unique(a[keep])
    remap = np.full(len(c), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    assign = np.where(keep, remap[a], -1).astype(np.int16)
    return cb[used].astype(np.int8), assign, s_w


# --------------------------------------------------------------------------- the graph


@dataclass
class _Q:
    """A tensor of the integer model: its id, scale and zero point."""

    tid: int
    scale: float
    zp: int


class _Builder:
    def __init__(
        self, net: GraphNet, calib: Dataset, cfg: QuantConfig, ranges: dict[int, tuple[float, float]]
    ):
        self.net, self.calib, self.cfg, self.ranges = net, calib, cfg, ranges
        self.q: dict[int, _Q] = {}  # net tensor id -> integer tensor
        self.ops: list[ir.Layer] = []
        self.scales: list[float] = []

    def new_tensor(self, scale: float, zp: int) -> _Q:
        self.scales.append(float(scale))
        return _Q(len(self.scales) - 1, float(scale), int(zp))

    def input(self) -> tuple[ir.InputKind, _Q]:
        if self.calib.is_float_input:
            scale, zp = tensor_qparams(self.net.input_bounds, self.ranges[self.net.input_tensor])
            return ir.InputKind.INT8, self.new_tensor(scale, zp)
        lo, hi = self.net.input_bounds
        top = 255.0 * float(self.calib.input_scale)
        if lo > 0.0 or hi < top:
            raise ModelError(
                f"the model clamps its input to [{lo:g}, {hi:g}] but the uint8 inputs of dataset "
                f"{self.calib.name!r} span [0, {top:g}] (byte * input_scale); the device takes the raw bytes "
                "and cannot clamp them. Remove the clamp on the input or move it after the first layer."
            )
        return ir.InputKind.UINT8, self.new_tensor(float(self.calib.input_scale), -128)

    def calibrated(self, node: Any) -> tuple[_Q, tuple[int, int]]:
        bounds = (node.act_min, node.act_max)
        scale, zp = tensor_qparams(bounds, self.ranges[node.output])
        return self.new_tensor(scale, zp), act_limits(bounds, scale, zp)

    def index_bits(self, name: str, kind: str, assign: np.ndarray, k: int) -> int:
        if name in self.cfg.index_bits:
            return int(self.cfg.index_bits[name])
        if self.cfg.auto_index_bits:
            return best_index_bits(assign, k, self.cfg.max_code_len)
        return self.cfg.bits_for(kind)

    def add(self, node: Any) -> None:
        ins = [self.q[t] for t in node.inputs]
        if isinstance(node, DropoutNode):
            self.q[node.output] = ins[0]  # the identity at inference
            return
        if isinstance(node, WeightLayer):
            op, out = self.weight_layer(node, ins[0])
        elif isinstance(node, Pool):
            out = self.new_tensor(ins[0].scale, ins[0].zp)
            op = ir.MaxPool2D(node.name, node.in_shape, node.kernel, node.stride, ins[0].zp)
        elif isinstance(node, AvgPool):
            out, (amin, amax) = self.calibrated(node)
            kh, kw = node.kernel
            pt, pl, pb, pr = node.pads
            op = ir.AvgPool2D(
                node.name, node.in_shape, node.kernel, node.stride, (pt, pl),
                ir.Requant.from_real(ins[0].scale / (out.scale * kh * kw)), ins[0].zp, out.zp, amin, amax,
                padding_end=(pb, pr),
            )  # fmt: skip
        elif isinstance(node, AddNode):
            out, (amin, amax) = self.calibrated(node)
            a, b = ins
            ma, mb, shift = pair_requant(a.scale / out.scale, b.scale / out.scale)
            op = ir.Add(node.name, node.shape, a.zp, b.zp, out.zp, ma, mb, shift, amin, amax)
        elif isinstance(node, ChannelPad):
            op, out = self.channel_pad(node, ins[0])
        else:  # pragma: no cover - capture builds no other node
            raise ModelError(f"node {node.name!r} of type {type(node).__name__} cannot be quantized")
        op.inputs = tuple(i.tid for i in ins)
        op.output = out.tid
        self.ops.append(op)
        self.q[node.output] = out

    def weight_layer(self, wl: WeightLayer, x: _Q) -> tuple[ir.Layer, _Q]:
        if wl.mode != "shared":
            raise ModelError(f"layer {wl.name!r} is not clustered (mode {wl.mode}); run stage 2 first")
        cb, assign, s_w = _int_codebook(wl)
        out, (amin, amax) = self.calibrated(wl)
        acc_scale = x.scale * s_w
        b = wl.bias.detach().cpu().numpy().astype(np.float64) / acc_scale
        if np.abs(b).max(initial=0) >= 2**31 - 1:
            raise ModelError(f"layer {wl.name!r}: a bias does not fit int32 at scale {acc_scale:g}")
        common: dict[str, Any] = dict(
            codebook=cb, assign=assign, bias=np.round(b).astype(np.int32),
            requant=ir.Requant.from_real(acc_scale / out.scale), in_zp=x.zp, out_zp=out.zp, act_min=amin,
            act_max=amax, encoding=ir.Encoding.HUFFMAN_SPARSE,
            index_bits=self.index_bits(wl.name, wl.kind, assign, len(cb)),
        )  # fmt: skip
        if wl.kind == "fc":
            return ir.FC(wl.name, wl.in_shape, int(wl.weight.shape[0]), **common), out
        pt, pl, pb, pr = wl.pads
        geo: dict[str, Any] = dict(
            kernel=wl.kernel, stride=wl.stride, padding=(pt, pl),
            padding_end=None if (pt, pl) == (pb, pr) else (pb, pr),
        )  # fmt: skip
        if wl.kind == "dw":
            return ir.DepthwiseConv2D(wl.name, wl.in_shape, wl.multiplier, **geo, **common), out
        return ir.Conv2D(wl.name, wl.in_shape, int(wl.weight.shape[0]), **geo, **common), out

    def channel_pad(self, node: ChannelPad, x: _Q) -> tuple[ir.Layer, _Q]:
        out = self.new_tensor(x.scale, x.zp)  # an exact pass-through of the input's values
        w = node.embedding().reshape(node.out_shape[0], -1).numpy()
        assign = np.where(w > 0, 0, -1).astype(np.int16)
        bits = int(self.cfg.index_bits.get(node.name, best_index_bits(assign, 1, self.cfg.max_code_len)))
        op = ir.Conv2D(
            node.name, node.in_shape, node.out_shape[0], (1, 1), node.stride, (0, 0),
            codebook=np.ones(1, dtype=np.int8), assign=assign, bias=np.zeros(node.out_shape[0], np.int32),
            requant=ir.Requant.from_real(1.0), in_zp=x.zp, out_zp=x.zp, index_bits=bits,
        )  # fmt: skip
        return op, out


def to_integer_model(
    net: GraphNet, calib: Dataset, cfg: QuantConfig, device: torch.device, name: str = "model"
) -> ir.IntegerModel:
    """Build the integer model from a graph whose weight layers are in ``shared`` mode."""
    cfg.validate()
    for wl in net.weight_layers():
        if wl.mode != "shared":
            raise ModelError(f"layer {wl.name!r} is not clustered (mode {wl.mode}); run stage 2 first")
    ranges = calibrate(net, calib, cfg, device)
    b = _Builder(net, calib, cfg, ranges)
    kind, x = b.input()
    b.q[net.input_tensor] = x
    for node in net.nodes:
        b.add(node)
    out = b.q[net.output_tensor]
    if out.tid == x.tid:
        raise ModelError("the model's output is its input; there is nothing to compute")
    model = ir.IntegerModel(
        b.ops, tuple(net.input_shape), x.scale, out.scale, out.zp, name, input_kind=kind, input_zp=x.zp,  # type: ignore[arg-type]
        input_tensor=0, output_tensor=out.tid, tensor_scales=b.scales, task=calib.task,
    )  # fmt: skip
    model.validate(f"integer model {name!r}")
    from mcu_dc.core.passes import fuse_conv_pool

    return fuse_conv_pool(model)


def dequantize_outputs(model: ir.IntegerModel, y: np.ndarray) -> np.ndarray:
    return (y.astype(np.float64) - model.output_zp) * model.output_scale
