"""pareto.png: the integer model's validation score against the blob's bytes, each trial coloured
by its predicted instructions per inference, the Pareto front ringed and labelled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mcu_dc.fileio import atomic_path
from mcu_dc.sweep.trial import TrialOutcome


def score_label(task: str) -> tuple[str, float]:
    """The y axis' label and the factor that turns a trial's score into it."""
    if task == "classification":
        return "validation accuracy (integer model, %)", 100.0
    return "validation -NMSE (integer model)", 1.0


def write_pareto_png(
    path: Path, outcomes: Sequence[TrialOutcome], front_ids: Sequence[str], title: str
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [o for o in outcomes if o.status == "ok"]
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    try:
        if not ok:
            ax.text(0.5, 0.5, "no trial succeeded", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
        else:
            task = str(ok[0].metrics.get("task", "classification"))
            label, factor = score_label(task)
            xs = [int(o.metrics["blob_bytes"]) for o in ok]
            ys = [factor * float(o.metrics["score"]) for o in ok]
            cs = [int(o.metrics["instructions"]) for o in ok]
            sc = ax.scatter(xs, ys, c=cs, cmap="viridis", s=36, zorder=2)
            fig.colorbar(sc, ax=ax, label="predicted instructions / inference (Cortex-M4)")
            front = sorted((o for o in ok if o.id in set(front_ids)), key=lambda o: o.metrics["blob_bytes"])
            fx = [int(o.metrics["blob_bytes"]) for o in front]
            fy = [factor * float(o.metrics["score"]) for o in front]
            ax.scatter(
                fx,
                fy,
                s=130,
                facecolors="none",
                edgecolors="crimson",
                linewidths=1.6,
                zorder=3,
                label="Pareto front (bytes, score, instructions)",
            )
            for o, x, y in zip(front, fx, fy, strict=True):
                ax.annotate(o.id, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
            ax.set_xlabel("model blob (bytes)")
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
