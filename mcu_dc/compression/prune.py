"""Stage 1: magnitude pruning (Han et al., *Learning both Weights and Connections*).

The threshold of a layer is ``quality * std(weights)`` (std over the layer's surviving
weights). Masks only ever shrink: a pruned weight never comes back.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from mcu_dc.compression.graph import GraphNet, WeightLayer
from mcu_dc.errors import ModelError


def layer_std(wl: WeightLayer) -> float:
    w = wl.weight.detach()[wl.mask.bool()]
    return float(w.std().item()) if w.numel() > 1 else float(w.abs().mean().item() if w.numel() else 0.0)


def quality_for_sparsity(wl: WeightLayer, sparsity: float) -> float:
    """The quality parameter whose threshold reaches ``sparsity`` (fraction of all weights pruned)."""
    n = wl.n_weights
    n_prune = round(sparsity * n)
    if n_prune <= 0:
        return 0.0
    mag = np.sort((wl.weight.detach() * wl.mask).abs().flatten().cpu().numpy())
    n_prune = min(n_prune, n)
    # threshold halfway between the last pruned and the first kept magnitude
    thr = float(mag[n_prune - 1]) if n_prune >= n else float((mag[n_prune - 1] + mag[n_prune]) / 2)
    std = layer_std(wl)
    return thr / std if std > 0 else 0.0


def prune_layer(wl: WeightLayer, quality: float) -> float:
    """Prune ``|w| < quality * std`` in place; returns the layer's sparsity after pruning."""
    thr = quality * layer_std(wl)
    with torch.no_grad():
        keep = (wl.weight.abs() >= thr).float() if thr > 0 else torch.ones_like(wl.mask)
        new_mask = wl.mask * keep
        if new_mask.sum().item() == 0:
            raise ModelError(
                f"layer {wl.name!r} would be pruned to 100 % (quality {quality:g} x std "
                f"{layer_std(wl):.4g} = "
                f"threshold {thr:.4g} removes all {wl.n_weights} weights); lower its quality/sparsity so at "
                "least one weight survives."
            )
        wl.mask.copy_(new_mask)
        wl.weight.mul_(wl.mask)
    return 1.0 - wl.kept() / wl.n_weights


def prune_to_sparsity(wl: WeightLayer, sparsity: float) -> tuple[float, float]:
    """Prune to (about) ``sparsity``; returns (quality used, sparsity reached)."""
    if not 0.0 <= sparsity < 1.0:
        raise ModelError(
            f"layer {wl.name!r}: sparsity {sparsity:g} is out of range; it must be in [0, 1) "
            "(1 would prune the layer to 100 %)"
        )
    q = quality_for_sparsity(wl, sparsity)
    return q, prune_layer(wl, q)


def sparsity(net: GraphNet) -> dict[str, float]:
    return {wl.name: 1.0 - wl.kept() / wl.n_weights for wl in net.weight_layers()}


def adjust_dropout(net: GraphNet, base_p: dict[str, float]) -> dict[str, float]:
    """The paper's dropout adjustment: D_r = D_o * sqrt(C_ir / C_io) for the layer a dropout feeds."""
    out: dict[str, float] = {}
    for name, drop in net.dropouts_before().items():
        wl = net.layer(name)
        p = base_p.get(name, drop.p) * math.sqrt(wl.kept() / wl.n_weights)
        drop.p = p
        out[name] = p
    return out


def original_dropout(net: GraphNet) -> dict[str, float]:
    return {name: d.p for name, d in net.dropouts_before().items()}


def masks(net: GraphNet) -> dict[str, torch.Tensor]:
    return {wl.name: wl.mask.detach().clone() for wl in net.weight_layers()}


def check_masks_hold(net: nn.Module) -> bool:
    """True when every pruned weight is exactly zero."""
    assert isinstance(net, GraphNet)
    return all(bool((wl.weight.detach()[wl.mask == 0] == 0).all()) for wl in net.weight_layers())
