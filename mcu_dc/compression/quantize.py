"""Float compressed chain → :class:`mcu_dc.core.ir.IntegerModel` (docs/format.md).

* Activations: ranges calibrated on training images. A fused-ReLU output uses
  ``zp = -128, scale = max/255``; any other output is asymmetric int8 from min/max
  (the range always contains 0). The input is the raw byte: ``zp = -128``,
  ``scale = input_scale``.
* Weights: each layer's codebook becomes int8 with ``s_w = max|c| / 127``; weights whose
  int8 code is 0 are dropped from the sparse stream (they multiply nothing); unused
  codebook entries are removed.
* Bias: int32 ``round(b / (s_in * s_w))``; requantization ``Requant.from_real(s_in*s_w/s_out)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mcu_dc.compression.chain import ChainNet, Pool, WeightLayer
from mcu_dc.core import ir
from mcu_dc.core.huffman import code_lengths
from mcu_dc.core.sparse import encode_relative
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError, ModelError


@dataclass
class QuantConfig:
    calib_samples: int = 2000
    calib_percentile: float = 100.0  # of ReLU outputs / min-max of the others
    conv_index_bits: int = 8
    fc_index_bits: int = 5
    auto_index_bits: bool = False  # pick each layer's index width (1..8) that codes smallest
    max_code_len: int = 12
    index_bits: dict[str, int] = field(default_factory=dict)  # per-layer override

    def validate(self) -> None:
        for what, b in (("conv_index_bits", self.conv_index_bits), ("fc_index_bits", self.fc_index_bits)):
            if not 1 <= b <= ir.MAX_INDEX_BITS:
                raise ConfigError(f"quantize.{what} = {b} is out of range 1..{ir.MAX_INDEX_BITS}")
        for name, b in self.index_bits.items():
            if not 1 <= b <= ir.MAX_INDEX_BITS:
                raise ConfigError(
                    f"quantize.index_bits[{name!r}] = {b} is out of range 1..{ir.MAX_INDEX_BITS}"
                )
        if not 50.0 <= self.calib_percentile <= 100.0 or self.calib_samples < 1:
            raise ConfigError("quantize.calib_percentile must be in [50, 100] and calib_samples >= 1")


@torch.no_grad()
def calibrate(
    net: ChainNet, data: Dataset, cfg: QuantConfig, device: torch.device
) -> dict[str, tuple[float, float]]:
    """(min, max) of every weight layer's output (after its fused ReLU) on ``data``."""
    net.eval().to(device)
    n = min(cfg.calib_samples, len(data))
    idx = np.random.default_rng(0).permutation(len(data))[:n]
    x = torch.from_numpy(data.images[np.sort(idx)]).to(device=device, dtype=torch.float32) * data.input_scale
    ranges: dict[str, tuple[float, float]] = {}
    for step in net.steps:
        x = step(x)
        if isinstance(step, WeightLayer):
            v = x.detach().flatten().cpu().numpy().astype(np.float64)
            if cfg.calib_percentile < 100.0:
                lo, hi = np.percentile(v, [100.0 - cfg.calib_percentile, cfg.calib_percentile])
            else:
                lo, hi = float(v.min()), float(v.max())
            ranges[step.name] = (float(lo), float(hi))
    return ranges


def _out_qparams(relu: bool, lo: float, hi: float) -> tuple[float, int]:
    if relu:
        hi = max(hi, 1e-8)
        return hi / 255.0, -128
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = (hi - lo) / 255.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zp


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
    s_w = amax / 127.0
    cb = np.clip(np.round(c / s_w), -127, 127).astype(np.int64)
    keep = mask & (cb[a] != 0)
    used = np.unique(a[keep])
    remap = np.full(len(c), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    assign = np.where(keep, remap[a], -1).astype(np.int16)
    return cb[used].astype(np.int8), assign, s_w


def to_integer_model(
    net: ChainNet, calib: Dataset, cfg: QuantConfig, device: torch.device, name: str = "model"
) -> ir.IntegerModel:
    """Build the integer model from a chain whose weight layers are in ``shared`` mode."""
    cfg.validate()
    ranges = calibrate(net, calib, cfg, device)
    s_in, zp_in = float(calib.input_scale), -128
    layers: list[ir.Layer] = []
    for step in net.steps:
        if isinstance(step, Pool):
            layers.append(ir.MaxPool2D(step.name, step.in_shape, step.kernel, step.stride, zp_in))
            continue
        if not isinstance(step, WeightLayer):
            continue  # dropout: identity at inference
        if step.mode != "shared":
            raise ModelError(f"layer {step.name!r} is not clustered (mode {step.mode}); run stage 2 first")
        cb, assign, s_w = _int_codebook(step)
        s_out, zp_out = _out_qparams(step.relu, *ranges[step.name])
        acc_scale = s_in * s_w
        b = step.bias.detach().cpu().numpy().astype(np.float64) / acc_scale
        if np.abs(b).max(initial=0) >= 2**31 - 1:
            raise ModelError(f"layer {step.name!r}: a bias does not fit int32 at scale {acc_scale:g}")
        bias = np.round(b).astype(np.int32)
        rq = ir.Requant.from_real(acc_scale / s_out)
        act_min = zp_out if step.relu else -128
        default_bits = cfg.conv_index_bits if step.kind == "conv" else cfg.fc_index_bits
        bits = cfg.index_bits.get(step.name, default_bits)
        if cfg.auto_index_bits and step.name not in cfg.index_bits:
            bits = best_index_bits(assign, len(cb), cfg.max_code_len)
        common = dict(
            codebook=cb,
            assign=assign,
            bias=bias,
            requant=rq,
            in_zp=zp_in,
            out_zp=zp_out,
            act_min=act_min,
            act_max=127,
            encoding=ir.Encoding.HUFFMAN_SPARSE,
            index_bits=int(bits),
        )
        if step.kind == "conv":
            layers.append(
                ir.Conv2D(
                    step.name,
                    step.in_shape,
                    int(step.weight.shape[0]),
                    (int(step.weight.shape[2]), int(step.weight.shape[3])),
                    step.stride,
                    step.padding,
                    **common,  # type: ignore[arg-type]
                )
            )
        else:
            layers.append(ir.FC(step.name, step.in_shape, int(step.weight.shape[0]), **common))  # type: ignore[arg-type]
        s_in, zp_in = s_out, zp_out
    return ir.IntegerModel(layers, tuple(net.input_shape), float(calib.input_scale), s_in, zp_in, name)  # type: ignore[arg-type]


def dequantize_outputs(model: ir.IntegerModel, y: np.ndarray) -> np.ndarray:
    return (y.astype(np.float64) - model.output_zp) * model.output_scale
