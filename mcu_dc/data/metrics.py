"""Task metrics, numpy only (no torch, no scikit-learn): what training, the pipeline and
``mcu-dc simulate`` report for a model's outputs on a :class:`~mcu_dc.data.datasets.Dataset`.

* classification: ``accuracy`` (top-1; ties go to the first index, as on the device);
* regression: ``mse``, ``mae`` and ``nmse`` (MSE divided by the variance of the targets,
  so 0 is perfect and 1 is "predicts the mean");
* reconstruction: the same against the targets (by default the float inputs), plus
  ``auc`` of the per-sample reconstruction error when the dataset carries anomaly labels
  of both kinds (1 = anomalous should have the larger error).

:func:`score` turns a metrics dict into one number where higher is better (accuracy, or
``-nmse``): what pruning's sensitivity analysis compares against its budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mcu_dc.errors import DataError

if TYPE_CHECKING:
    from mcu_dc.data.datasets import Dataset

# Keys of each task's metrics, in display order; the first one is the headline.
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy",),
    "regression": ("mse", "mae", "nmse"),
    "reconstruction": ("mse", "mae", "nmse", "auc"),
}


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` for the binary labels ``positive``.

    The Mann-Whitney rank statistic with tied scores given their average rank (so a
    constant score gives 0.5). None when one of the two classes is empty.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    p = np.asarray(positive).ravel().astype(bool)
    n_pos = int(p.sum())
    n_neg = int(p.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # average 1-based rank of each distinct value: its last rank minus half the ties
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = avg_rank[inverse]
    u = float(ranks[p].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """mse, mae and nmse of ``pred`` vs ``target`` (both flattened per sample)."""
    n = len(target)
    p = np.asarray(pred, dtype=np.float64).reshape(n, -1)
    t = np.asarray(target, dtype=np.float64).reshape(n, -1)
    if n == 0:
        return {"mse": 0.0, "mae": 0.0, "nmse": 0.0}
    err = p - t
    mse = float(np.mean(err**2))
    var = float(np.var(t))
    return {"mse": mse, "mae": float(np.mean(np.abs(err))), "nmse": mse / var if var > 0 else mse}


def reconstruction_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-sample mean squared error (the anomaly score of an autoencoder)."""
    n = len(target)
    p = np.asarray(pred, dtype=np.float64).reshape(n, -1)
    t = np.asarray(target, dtype=np.float64).reshape(n, -1)
    return np.mean((p - t) ** 2, axis=1)


def task_metrics(outputs: np.ndarray, data: Dataset) -> dict[str, float]:
    """Metrics of the (float, dequantized) ``outputs`` ``(N, ...)`` on ``data``."""
    n = len(data)
    if n == 0:
        return {k: 0.0 for k in METRIC_KEYS[data.task] if k != "auc"}
    out = np.asarray(outputs).reshape(n, -1)
    if data.task == "classification":
        return {"accuracy": float(np.mean(np.argmax(out, axis=1) == data.targets()))}
    target = data.targets()
    m = regression_metrics(out, target)
    if data.task == "reconstruction" and data.anomaly is not None:
        a = auc(reconstruction_errors(out, target), data.anomaly)
        if a is not None:
            m["auc"] = a
    return m


def score(task: str, metrics: dict[str, float]) -> float:
    """One number, higher is better: accuracy, or ``-nmse`` for regression/reconstruction."""
    if task == "classification":
        return float(metrics["accuracy"])
    return -float(metrics["nmse"])


def format_metrics(task: str, metrics: dict[str, Any]) -> str:
    """``accuracy 98.43 %`` or ``mse 0.0123, mae 0.0871, nmse 0.0456, auc 0.912``."""
    if task == "classification":
        return f"accuracy {100 * float(metrics['accuracy']):.2f} %"
    keys = [k for k in METRIC_KEYS.get(task, ()) if k in metrics]
    return ", ".join(f"{k} {float(metrics[k]):.4g}" for k in keys)


def metrics_markdown(task: str, by_stage: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of every stage's metrics (for reports)."""
    keys = [k for k in METRIC_KEYS.get(task, ()) if any(k in m for m in by_stage.values())]
    if not keys or not by_stage:
        return ""
    head = "| stage | " + " | ".join(f"test {k}" for k in keys) + " |"
    lines = [f"Task: {task}.", "", head, "|---|" + "---:|" * len(keys)]
    for stage, m in by_stage.items():
        cells = []
        for k in keys:
            v = m.get(k)
            if v is None:
                cells.append("")
            elif k == "accuracy":
                cells.append(f"{100 * float(v):.2f} %")
            else:
                cells.append(f"{float(v):.4g}")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def check_input_kind(model: Any, data: Dataset, where: str = "simulate()") -> None:
    """A uint8-input model takes raw bytes, an int8-input one float features (DataError otherwise)."""
    from mcu_dc.core.qmath import InputKind

    kind = InputKind(int(getattr(model, "input_kind", InputKind.UINT8)))
    if kind == InputKind.UINT8 and data.is_float_input:
        raise DataError(
            f"{where}: model {getattr(model, 'name', '?')!r} takes raw uint8 bytes (images) but dataset "
            f"{data.name!r} holds float features; use the dataset the model was compressed for"
        )
    if kind == InputKind.INT8 and not data.is_float_input:
        raise DataError(
            f"{where}: model {getattr(model, 'name', '?')!r} takes float features (quantized to int8 with "
            f"its input scale and zero point) but dataset {data.name!r} holds uint8 bytes; use the "
            "dataset the model was compressed for"
        )


def dequantize(model: Any, y: np.ndarray) -> np.ndarray:
    """The real values of int8 outputs: ``(y - output_zp) * output_scale``."""
    return (np.asarray(y, dtype=np.float64) - int(model.output_zp)) * float(model.output_scale)


def simulator_metrics(model: Any, data: Dataset) -> tuple[np.ndarray, dict[str, float]]:
    """Run the bit-exact simulator on ``data``; returns (int8 outputs ``(N, out_len)``, metrics).

    Classification uses the int8 outputs' argmax (first maximum, as on the device); the
    other tasks the dequantized outputs.
    """
    from mcu_dc.core.simulator import simulate

    check_input_kind(model, data)
    y = np.asarray(simulate(model, data.simulator_inputs()))
    return y, output_metrics(model, y, data)


def output_metrics(model: Any, y: np.ndarray, data: Dataset) -> dict[str, float]:
    """The task's metrics of the int8 outputs ``y`` the model gave on ``data``: classification
    from the outputs themselves (argmax), the other tasks from the dequantized outputs."""
    return task_metrics(y if data.task == "classification" else dequantize(model, y), data)
