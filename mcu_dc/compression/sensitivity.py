"""Per-layer pruning sensitivity: accuracy vs sparsity when pruning one layer alone."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mcu_dc.compression.graph import GraphNet
from mcu_dc.compression.prune import layer_std, quality_for_sparsity
from mcu_dc.compression.train import evaluate
from mcu_dc.data.datasets import Dataset
from mcu_dc.progress import ProgressSettings, track

DEFAULT_GRID = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)


@dataclass
class Sensitivity:
    baseline: float
    layers: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # sparsity, quality, accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "layers": self.layers}

    def save_json(self, path: Path) -> None:
        from mcu_dc.fileio import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2))

    def choose(self, budget: float, max_sparsity: float, current: dict[str, float]) -> dict[str, float]:
        """Per layer: the largest sparsity whose accuracy drop is within ``budget`` (never below current)."""
        out: dict[str, float] = {}
        for name, d in self.layers.items():
            best = current.get(name, 0.0)
            for s, acc in zip(d["sparsity"], d["accuracy"], strict=False):
                if s <= max_sparsity and self.baseline - acc <= budget and s > best:
                    best = s
            out[name] = best
        return out


@torch.no_grad()
def analyze(
    net: GraphNet,
    data: Dataset,
    device: torch.device,
    grid: tuple[float, ...] = DEFAULT_GRID,
    layers: list[str] | None = None,
    *,
    progress: bool | ProgressSettings = False,
    desc: str = "sensitivity",
) -> Sensitivity:
    """Prune each layer alone to each sparsity of ``grid`` (above its current one) and measure accuracy.

    ``progress`` (see :mod:`mcu_dc.progress`) advances once per evaluated (layer, sparsity) point.
    """
    net.to(device)
    base = evaluate(net, data, device)
    sens = Sensitivity(baseline=base)
    todo = []
    for wl in net.weight_layers():
        if layers is not None and wl.name not in layers:
            continue
        cur = 1.0 - wl.kept() / wl.n_weights
        todo.append((wl, cur, [s for s in grid if s > cur + 1e-9]))
    with track(desc, sum(len(g) for _, _, g in todo), unit="point", settings=progress) as bar:
        for wl, _cur, points in todo:
            saved_w, saved_m = wl.weight.detach().clone(), wl.mask.detach().clone()
            std = layer_std(wl)
            rec: dict[str, list[float]] = {"sparsity": [], "quality": [], "accuracy": []}
            for s in points:
                q = quality_for_sparsity(wl, s)
                keep = (wl.weight.abs() >= q * std).float() * saved_m
                if keep.sum() > 0:
                    wl.mask.copy_(keep)
                    wl.weight.mul_(keep)
                    rec["sparsity"].append(float(s))
                    rec["quality"].append(float(q))
                    rec["accuracy"].append(evaluate(net, data, device))
                    wl.weight.copy_(saved_w)
                    wl.mask.copy_(saved_m)
                bar.update(1, layer=wl.name, sparsity=float(s))
            sens.layers[wl.name] = rec
    return sens
