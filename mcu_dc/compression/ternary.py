"""Ternary and binary weights: the math of TTQ and BWN, and the weight layers that train them.

**Ternary** (Zhu et al. 2017, *Trained Ternary Quantization*): a layer keeps latent
full-precision weights ``w``; each forward pass assigns them by a threshold
``Δ = t · max|w|`` (over the layer's unpruned weights, ``t ≈ 0.05``)::

    w_t = +W_p   where w >  Δ
    w_t =  0     where |w| <= Δ   (and wherever the layer is pruned)
    w_t = -W_n   where w < -Δ

with two trained scales ``W_p, W_n > 0``. Gradients (the paper's eqs. 7-8; the chain rule
gives the sign of ``W_n``'s, whose weights are ``-W_n``)::

    dL/dW_p = Σ_{w > Δ} dL/dw_t        dL/dW_n = -Σ_{w < -Δ} dL/dw_t
    dL/dw   = W_p · dL/dw_t (w > Δ),   1 · dL/dw_t (|w| <= Δ),   W_n · dL/dw_t (w < -Δ)

**Binary** (Rastegari et al. 2016, BWN): ``w_b = a · sign(w)`` over every weight, with
``a = mean|w|`` recomputed each step (``binary_scale = "mean"``; the latent gradient is the
straight-through one with ``a`` differentiated too: ``a · g_i + sign(w_i)/n · Σ_j g_j sign(w_j)``,
XNOR-Net's rule) or a trained scale (``"trained"``: ``dL/da = Σ sign(w) dL/dw_b``,
``dL/dw = a · dL/dw_b``). A binary layer has no zero, so it must be unpruned: a pruned layer
is refused with an error naming it (use ternary there: pruned weights stay 0).

After fine-tuning, :func:`finalize_layer` freezes a layer into ordinary weight sharing: a
codebook ``[-W_n, 0, W_p]`` (ternary) or ``[-a, a]`` (binary) and its assignment; the
integer model keeps the scales as int8 codebook entries like any codebook, and the zero
entry's weights are pruned (mcu_dc/compression/quantize.py). Such layers (k <= 2) can be
stored TERNARY / BINARY (mcu_dc/core/bitplanes.py).

The layers switch class in place (:class:`TernaryLayer`, a :class:`WeightLayer` whose
``effective_weight`` is the quantized one) so the graph, the training loop and every other
stage see an ordinary weight layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mcu_dc.compression.graph import WeightLayer
from mcu_dc.errors import ConfigError, ModelError

MODES = ("ternary", "binary")
BINARY_SCALES = ("mean", "trained")


# ----------------------------------------------------------------------------- the math


def ternary_threshold(w: torch.Tensor, mask: torch.Tensor, t: float) -> torch.Tensor:
    """``Δ = t · max|w|`` over the unpruned weights (0 for an empty layer)."""
    kept = w.detach().abs() * mask
    return t * kept.max() if kept.numel() else torch.zeros(())


def ternary_assign(w: torch.Tensor, mask: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """+1 where ``w > Δ``, -1 where ``w < -Δ``, else 0 (and 0 wherever pruned); int8."""
    d = torch.as_tensor(delta, dtype=w.dtype)
    a = (w > d).to(torch.int8) - (w < -d).to(torch.int8)
    return a * (mask > 0).to(torch.int8)


class _TTQ(torch.autograd.Function):
    """``w_t = W_p [w > Δ] - W_n [w < -Δ]`` with the TTQ gradients (module docstring)."""

    @staticmethod
    def forward(
        ctx: Any, w: torch.Tensor, wp: torch.Tensor, wn: torch.Tensor, a: torch.Tensor
    ) -> torch.Tensor:
        pos, neg = (a > 0).to(w.dtype), (a < 0).to(w.dtype)
        ctx.save_for_backward(pos, neg, wp, wn)
        return wp * pos - wn * neg

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        pos, neg, wp, wn = ctx.saved_tensors
        zero = 1.0 - pos - neg
        gw = g * (wp * pos + wn * neg + zero)
        return gw, (g * pos).sum().reshape(wp.shape), -(g * neg).sum().reshape(wn.shape), None


def ttq_weight(
    w: torch.Tensor, mask: torch.Tensor, wp: torch.Tensor, wn: torch.Tensor, t: float
) -> torch.Tensor:
    """The ternary weight of latent ``w`` (pruned positions 0), differentiable as TTQ."""
    a = ternary_assign(w.detach(), mask, ternary_threshold(w, mask, t))
    return _TTQ.apply(w, wp, wn, a)


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return g


def bwn_weight(w: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """``a · sign(w)`` (sign(0) = +1): ``a = mean|w|`` when ``scale`` is None, else the trained ``scale``."""
    a = w.abs().mean() if scale is None else scale
    return a * _SignSTE.apply(w)


def initial_scales(w: torch.Tensor, mask: torch.Tensor, t: float) -> tuple[float, float]:
    """TTQ's start: ``W_p`` the mean of the weights above ``Δ``, ``W_n`` the mean magnitude of those
    below ``-Δ``."""
    w = w.detach()
    a = ternary_assign(w, mask, ternary_threshold(w, mask, t))
    kept = w[mask > 0].abs()
    fallback = float(kept.mean()) if kept.numel() else 1.0
    wp = float(w[a > 0].mean()) if (a > 0).any() else fallback
    wn = float(-w[a < 0].mean()) if (a < 0).any() else fallback
    return wp, wn


# ----------------------------------------------------------------------------- the layers


class TernaryLayer(WeightLayer):
    """A :class:`WeightLayer` trained as ternary (``quant_mode = "ternary"``) or binary weights.

    Not constructed directly: :func:`make_quantized` switches an existing layer's class, keeping
    its parameters, mask and wiring. ``mode`` stays ``"dqc"`` during training (the latent weights are
    trained and masked like DQC's) and becomes ``"shared"`` at :func:`finalize_layer`.
    """

    quant_mode: str
    threshold: float
    binary_scale: str

    def effective_weight(self) -> torch.Tensor:
        if self.mode != "dqc":
            return super().effective_weight()
        if self.quant_mode == "ternary":
            return (
                ttq_weight(self.weight, self.mask, self.scales[0], self.scales[1], self.threshold) * self.mask
            )
        trained = self.scales[0] if self.binary_scale == "trained" else None
        return bwn_weight(self.weight, trained)


def make_quantized(
    wl: WeightLayer, quant_mode: str, *, threshold: float = 0.05, binary_scale: str = "mean"
) -> None:
    """Switch ``wl`` to ternary or binary training in place (latent weights from its current ones)."""
    if quant_mode not in MODES:
        raise ConfigError(
            f"layer {wl.name!r}: quantization mode {quant_mode!r} is not one of {', '.join(MODES)}"
        )
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"cluster.ternary_threshold = {threshold!r} must be in (0, 1) (TTQ uses 0.05)")
    if binary_scale not in BINARY_SCALES:
        raise ConfigError(
            f"cluster.binary_scale = {binary_scale!r}; choose one of {', '.join(BINARY_SCALES)}"
        )
    mask = wl.mask.detach()
    if quant_mode == "binary" and bool((mask == 0).any()):
        frac = float((mask == 0).float().mean())
        raise ConfigError(
            f"layer {wl.name!r} is {100 * frac:.1f} % pruned but binary weights have no zero: "
            "set its sparsity "
            f"to 0 (prune.sparsity[{wl.name!r}] = 0) or cluster it as ternary (pruned weights stay 0)"
        )
    w = wl.effective_weight().detach()  # the float or shared weights it has now
    if not bool((w * mask).abs().max() > 0):
        raise ModelError(f"layer {wl.name!r} has no non-zero weight left; it cannot be made {quant_mode}")
    with torch.no_grad():
        wl.weight.copy_(w)
    if quant_mode == "ternary":
        wp, wn = initial_scales(w, mask, threshold)
        scales = torch.tensor([wp, wn])
    else:
        scales = torch.tensor([float(w.abs().mean())])
    wl.__class__ = TernaryLayer
    layer: TernaryLayer = wl  # type: ignore[assignment]
    layer.quant_mode, layer.threshold, layer.binary_scale = quant_mode, float(threshold), binary_scale
    trained = quant_mode == "ternary" or binary_scale == "trained"
    layer.scales = nn.Parameter(scales.float().to(wl.weight.device), requires_grad=trained)
    layer.mode = "dqc"  # latent weights trained (and masked by the training loop) like DQC's
    layer.weight.requires_grad_(True)
    layer.centroids.requires_grad_(False)


def finalize_layer(wl: TernaryLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """Freeze a ternary / binary layer into weight sharing; returns (codebook, assignment)."""
    w = wl.weight.detach()
    if wl.quant_mode == "ternary":
        a = ternary_assign(w, wl.mask, ternary_threshold(w, wl.mask, wl.threshold)).long()
        wp, wn = (float(v) for v in wl.scales.detach().abs())
        cent = torch.tensor([-wn, 0.0, wp])
        assign = a + 1  # -1, 0, +1 -> entries 0, 1, 2
    else:
        scale = float(wl.scales.detach().abs()[0]) if wl.binary_scale == "trained" else float(w.abs().mean())
        cent = torch.tensor([-scale, scale])
        assign = (w >= 0).long()
    wl.set_shared(cent, assign.to(w.device), mode="shared")
    with torch.no_grad():
        wl.weight.copy_(wl.effective_weight())
    del wl.scales
    wl.__class__ = WeightLayer
    return cent, assign


def is_quantized(wl: Any) -> bool:
    return isinstance(wl, TernaryLayer) and wl.mode == "dqc"
