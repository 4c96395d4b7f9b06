"""PNG figures of a compression run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mcu_dc.fileio import atomic_path


def _figure_module() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def plot_weight_distributions(
    weights: dict[str, dict[str, np.ndarray]], path: str | os.PathLike[str]
) -> Path:
    """One row per layer, one column per stage (dense, pruned, quantized): histograms of kept weights."""
    plt = _figure_module()
    stages = [s for s in ("dense", "pruned", "quantized") if s in weights]
    layers = list(next(iter(weights.values())).keys()) if weights else []
    fig, axes = plt.subplots(
        max(1, len(layers)), max(1, len(stages)), figsize=(4 * len(stages), 2.4 * len(layers)), squeeze=False
    )
    for i, layer in enumerate(layers):
        for j, stage in enumerate(stages):
            ax = axes[i][j]
            w = np.asarray(weights[stage].get(layer, np.zeros(0)))
            if stage == "quantized":
                vals, counts = np.unique(w, return_counts=True)
                ax.vlines(vals, 0, counts, linewidth=1.5)
            else:
                ax.hist(w, bins=100)
            ax.set_title(f"{layer} — {stage} ({len(w)} weights)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle("Weight distribution before/after pruning and after quantization", fontsize=10)
    fig.tight_layout()
    out = _save(fig, Path(path))
    plt.close(fig)
    return out


def plot_sensitivity(sens: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Accuracy vs sparsity when pruning each layer alone."""
    plt = _figure_module()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, d in sens["layers"].items():
        ax.plot(np.asarray(d["sparsity"]) * 100, np.asarray(d["accuracy"]) * 100, marker="o", label=name)
    ax.axhline(sens["baseline"] * 100, color="gray", linestyle="--", linewidth=1, label="unpruned")
    ax.set_xlabel("sparsity of the layer (%)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Pruning sensitivity (each layer alone, no retraining)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    out = _save(fig, Path(path))
    plt.close(fig)
    return out


def write_plots(art: Any, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write every figure of a run (and the sensitivity JSON) into ``out_dir``."""
    import json

    from mcu_dc.fileio import write_text_atomic

    d = Path(out_dir)
    files = [plot_weight_distributions(art.weights, d / "weight_distribution.png")]
    if art.sensitivity:
        files.append(plot_sensitivity(art.sensitivity[0], d / "sensitivity.png"))
        files.append(write_text_atomic(d / "sensitivity.json", json.dumps(art.sensitivity, indent=2)))
    return files
