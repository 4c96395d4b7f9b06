"""One trial of a sweep, with no Ray in sight: the pipeline's stages with the trial's settings.

Every trial starts from the same dense weights (the sweep's dense cache, the bytes of a
``--pretrained`` file), prunes each layer to the trial's sparsity with the config's retraining,
clusters with the trial's codebook bits and fine-tunes, encodes with the trial's objective, and is
measured on the sweep's validation split, which :func:`mcu_dc.compression.pipeline.run_pipeline`
sees as its "test" set (the real test set is never loaded): the integer model's metrics come from
the bit-exact simulator, the bytes from the blob, the instructions from the encoding objective's
Cortex-M4 cost model.
"""

from __future__ import annotations

import base64
import copy
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcu_dc.compression.config import CompressConfig, from_dict
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import McuDcError
from mcu_dc.sweep.space import TrialParams


@dataclass
class SweepJob:
    """What every trial shares (it travels once, through Ray's object store)."""

    model: str  # a built-in name or path/to/file.py:factory (absolute)
    name: str  # the C symbol prefix of the model
    input_shape: tuple[int, int, int]
    num_classes: int
    config: dict[str, Any]  # the base CompressConfig as a dict
    fit: Dataset  # the training set less the validation split
    val: Dataset  # the validation split (what trials are measured on)
    dense_cache: bytes  # the captured graph's dense weights (a --pretrained cache file)
    device: str = "cpu"
    threads: int = 1  # torch threads per trial
    meta: dict[str, Any] = field(default_factory=dict)  # recorded in each model file under "sweep"


@dataclass
class TrialOutcome:
    """A trial's parameters, status and measurements (``model``: the .mcudc file's bytes)."""

    params: TrialParams
    status: str  # "ok" | "error"
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    node: str | None = None
    model: bytes | None = None

    @property
    def id(self) -> str:
        return self.params.id

    def to_json(self) -> dict[str, Any]:
        """The trial as trials.json records it (no model bytes)."""
        return {
            "id": self.id,
            "status": self.status,
            "params": self.params.to_dict(),
            "metrics": self.metrics,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "node": self.node,
        }

    def to_report(self) -> dict[str, Any]:
        """A flat dict of JSON values that Ray Tune carries back to the driver (the model file as
        base64: no shared storage needed between the nodes of a cluster)."""
        out = self.to_json()
        out["model_b64"] = base64.b64encode(self.model).decode("ascii") if self.model is not None else None
        return out

    @classmethod
    def from_report(cls, r: dict[str, Any]) -> TrialOutcome:
        b64 = r.get("model_b64")
        return cls(
            params=TrialParams.from_dict(r["params"]),
            status=str(r["status"]),
            metrics=dict(r.get("metrics") or {}),
            error=r.get("error"),
            seconds=float(r.get("seconds") or 0.0),
            node=r.get("node"),
            model=base64.b64decode(b64) if b64 else None,
        )


def trial_config(base: CompressConfig, params: TrialParams) -> CompressConfig:
    """``base`` with the trial's per-layer sparsity (every layer named: no sensitivity analysis),
    codebook bits and objective; measured on the whole validation split (``test_subset = 0``)."""
    cfg = copy.deepcopy(base)
    cfg.prune.enabled = True
    cfg.prune.sparsity = dict(params.sparsity)
    if params.fc_bits is not None:
        cfg.cluster.fc_bits = params.fc_bits
    if params.conv_bits is not None:
        cfg.cluster.conv_bits = params.conv_bits
    cfg.objective = params.objective
    cfg.test_subset = 0
    cfg.validate()
    return cfg


def run_trial(job: SweepJob, params: TrialParams) -> TrialOutcome:
    """Compress with the trial's settings and measure; an :class:`McuDcError` becomes an ``error``
    outcome with its message (other exceptions are bugs and propagate)."""
    import socket

    t0 = time.perf_counter()
    node = socket.gethostname()
    try:
        cm, art = _compress(job, params)
    except McuDcError as exc:
        return TrialOutcome(params, "error", error=str(exc), seconds=time.perf_counter() - t0, node=node)
    metrics = measure(cm, art)
    return TrialOutcome(
        params, "ok", metrics=metrics, seconds=time.perf_counter() - t0, node=node, model=cm.to_bytes()
    )


def _compress(job: SweepJob, params: TrialParams) -> tuple[Any, Any]:
    import torch

    from mcu_dc.compression.models import build_model
    from mcu_dc.compression.pipeline import run_pipeline
    from mcu_dc.compression.seeding import seed_everything

    base = from_dict(CompressConfig, job.config, "sweep config")
    cfg = trial_config(base, params)
    torch.set_num_threads(max(1, job.threads))
    seed_everything(cfg.seed)  # as `mcu-dc compress`: the model's initial weights are random too
    model = build_model(job.model, job.input_shape, job.num_classes)
    if getattr(model, "weights_source", None):  # MLPerf reference weights: start from the cache instead
        model.weights_source = None
    with tempfile.TemporaryDirectory(prefix="mcudc-trial-") as d:
        cache = Path(d) / "dense.pt"
        cache.write_bytes(job.dense_cache)
        cm, art = run_pipeline(
            model, job.fit, job.val, cfg, device=job.device, name=job.name, pretrained=cache, progress=False
        )
    cm.meta["dense_weights"] = dict(job.meta.get("dense_weights") or cm.meta.get("dense_weights", {}))
    cm.meta["sweep"] = {**job.meta.get("sweep", {}), "trial": params.to_dict()}
    return cm, art


def measure(cm: Any, art: Any) -> dict[str, Any]:
    """What the sweep compares: the integer model's metrics on the validation split (bit-exact
    simulator), the blob's exact bytes, the predicted instructions per inference, the arena."""
    from mcu_dc.core.simulator import arena_bytes
    from mcu_dc.data.metrics import score

    task = str(cm.meta.get("task", "classification"))
    integer = dict(art.metrics["integer"])
    layers = cm.meta["objective"]["layers"]
    instructions = sum(int(v["instructions_m4"]) for v in layers.values())
    return {
        "task": task,
        "score": score(task, integer),
        "accuracy": integer.get("accuracy"),
        "integer": integer,
        "stages": {k: dict(v) for k, v in art.metrics.items()},
        "blob_bytes": len(cm.blob),
        "file_bytes": len(cm.to_bytes()),
        "original_bytes": int(cm.meta.get("original_bytes", 0)),
        "instructions": instructions,
        "arena_bytes": arena_bytes(cm.model),
        "sparsity": {k: round(float(v), 6) for k, v in art.sparsity.items()},
        "layers": {k: dict(v) for k, v in layers.items()},
    }
