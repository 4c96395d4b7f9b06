"""A whole sweep: settings → validation split → dense weights (once) → trials on Ray → outputs.

The compression settings are resolved exactly as ``mcu-dc compress`` resolves them (the model's
recipe or the dataset's defaults, then the config file's keys); the validation split is carved
from the training set with the sweep's seed (the test set is never loaded); the dense model is
trained once, or loaded from ``--weights`` or a ``--pretrained`` cache, and its weights are what
every trial starts from.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcu_dc.compression.config import CIFAR_RESNETS, CompressConfig, from_dict
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError
from mcu_dc.sweep.engine import RayOptions
from mcu_dc.sweep.space import Layer, SweepSpec, TrialParams, sample_trials, space_size
from mcu_dc.sweep.trial import SweepJob, TrialOutcome

MAX_AUTO_VAL = 5000


@dataclass
class SweepRequest:
    """Everything a sweep needs (the command line builds one; Python callers may too)."""

    model: str
    dataset: str
    out: Path
    spec: SweepSpec = field(default_factory=SweepSpec)
    ray: RayOptions = field(default_factory=RayOptions)
    config: dict[str, Any] = field(default_factory=dict)  # compress settings from the config file
    config_path: Path | None = None
    data_dir: Path | None = None
    weights: Path | None = None
    pretrained: Path | None = None
    name: str | None = None
    slack: float | None = None
    device: str = "cpu"
    force: bool = False
    quiet: bool = False
    argv: Sequence[str] | None = None  # the command line, recorded in trials.json


@dataclass
class SweepResult:
    out: Path
    outcomes: list[TrialOutcome]
    front: list[str]  # trial ids, by blob bytes
    seconds: float


Say = Callable[[str], None]


def default_name(spec: str) -> str:
    """The C symbol prefix ``mcu-dc compress`` derives from ``--model`` (so reproductions match)."""
    base = Path(spec.split(":")[-1] if ":" in spec else spec).stem
    return "".join(ch if ch.isalnum() else "_" for ch in base).strip("_") or "model"


def resolve_config(req: SweepRequest, train: Dataset) -> CompressConfig:
    """``mcu-dc compress``'s settings for this model and dataset, with the config file laid over."""
    from mcu_dc.commands.compress import choose_config

    if req.model in CIFAR_RESNETS and req.weights is None and req.pretrained is None:
        raise ConfigError(
            f"a sweep of {req.model} starts from trained weights: pass --weights FILE (He et al.'s CIFAR-10 "
            "weights are in ../shared/data/cifar10_resnets/), or --pretrained CACHE written by an earlier "
            "`mcu-dc compress` or sweep"
        )
    ns = argparse.Namespace(
        model=req.model,
        dataset=req.dataset,
        config=None,
        quick=False,
        weights=req.weights,
        pretrained=req.pretrained,
        train_subset=None,
        test_subset=None,
        objective=None,
        slack=None,
    )
    cfg: CompressConfig = choose_config(ns, train)
    if req.config:
        cfg = from_dict(CompressConfig, req.config, str(req.config_path or "config"), cfg)
    if req.slack is not None:
        cfg.slack = req.slack
    cfg.validate()
    return cfg


def carve_validation(train: Dataset, size: int, seed: int) -> tuple[Dataset, Dataset]:
    """``(the rest, the validation split)``: ``size`` random training samples (seeded)."""
    from mcu_dc.compression.pipeline import split_validation

    return split_validation(train, size, seed)


def validation_size(spec: SweepSpec, n_train: int) -> int:
    size = spec.val_size or min(MAX_AUTO_VAL, n_train // 5)
    if not 1 <= size < n_train:
        raise ConfigError(
            f"{spec.label('val_size')} = {spec.val_size} is out of range: the validation split is carved "
            f"from the {n_train} training samples, so it must be in 1..{n_train - 1} (0: a fifth of them, "
            f"at most {MAX_AUTO_VAL:,})"
        )
    return size


def _model_spec(spec: str) -> str:
    """A user's ``file.py:factory`` with the file's absolute path (trials run in other folders)."""
    path, sep, func = spec.rpartition(":")
    if sep and path.endswith(".py"):
        return f"{Path(path).resolve()}:{func}"
    return spec


def _layers(model_spec: str, train: Dataset, seed: int) -> list[Layer]:
    from mcu_dc.compression.capture import capture
    from mcu_dc.compression.models import build_model
    from mcu_dc.compression.seeding import seed_everything

    seed_everything(seed)
    net = capture(build_model(model_spec, train.input_shape, train.num_classes), train.input_shape)
    return [Layer(wl.name, wl.kind) for wl in net.weight_layers()]


def _dense(
    req: SweepRequest, model_spec: str, fit: Dataset, val: Dataset, cfg: CompressConfig, cache: Path, say: Say
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train (or load) the dense model once and write its weights to ``cache``; returns its metrics
    on the validation split and where the weights came from."""
    from mcu_dc.compression.models import build_model
    from mcu_dc.compression.pipeline import dense_and_prune, save_pretrained
    from mcu_dc.compression.seeding import seed_everything
    from mcu_dc.data.metrics import format_metrics

    dense_cfg = copy.deepcopy(cfg)
    dense_cfg.prune.enabled = False
    seed_everything(cfg.seed)
    model = build_model(model_spec, fit.input_shape, fit.num_classes)
    s1 = dense_and_prune(
        model,
        fit,
        val,
        dense_cfg,
        device=req.device,
        pretrained=req.pretrained,
        weights=req.weights,
        progress=not req.quiet,
    )
    save_pretrained(s1.net, cache)
    metrics, source = dict(s1.art.metrics.get("dense", {})), dict(s1.art.dense_weights)
    say(f"dense model ({_source_text(source)}): validation {format_metrics(val.task, metrics)}")
    return metrics, source


def _source_text(source: dict[str, Any]) -> str:
    kind = str(source.get("source", "trained"))
    if kind == "trained":
        return "trained here" + (f", cached in {source['cache']}" if source.get("cache") else "")
    return f"{kind} {source.get('path')}" if source.get("path") else kind


def reproduce_command(req: SweepRequest, trial_id: str) -> str:
    out = req.out
    parts = ["mcu-dc", "compress", "--model", req.model, "--dataset", req.dataset]
    if req.data_dir is not None:
        parts += ["--data-dir", str(req.data_dir)]
    parts += ["--config", str(out / "pareto" / f"{trial_id}.toml"), "--pretrained", str(out / "dense.pt")]
    if req.name:
        parts += ["--name", req.name]
    if req.device != "cpu":
        parts += ["--device", req.device]
    parts += ["--out", f"{trial_id}.mcudc"]
    return shlex.join(parts)


def trial_line(o: TrialOutcome, done: int, total: int) -> str:
    head = f"[{done}/{total}] {o.id}"
    if o.status != "ok":
        return f"{head} failed after {o.seconds:.1f} s: {o.error}"
    m = o.metrics
    score = (
        f"accuracy {100 * m['accuracy']:.2f} %"
        if m.get("accuracy") is not None
        else f"score {m['score']:.4g}"
    )
    return (
        f"{head} {score}, {m['blob_bytes']:,} B, {m['instructions']:,} instructions, arena "
        f"{m['arena_bytes']:,} B ({o.params.describe()}; {o.seconds:.1f} s)"
    )


def run_sweep(req: SweepRequest, say: Say | None = None) -> SweepResult:
    """Run the sweep ``req`` describes and write its outputs to ``req.out``."""
    from mcu_dc.data.datasets import load_dataset
    from mcu_dc.progress import track
    from mcu_dc.sweep.engine import require_ray, run_trials
    from mcu_dc.sweep.outputs import check_out, staging, write_all

    t0 = time.perf_counter()
    say = say or (lambda msg: None)
    req.spec.validate()
    req.ray.validate()
    require_ray()
    if req.device not in ("cpu", "cuda"):
        raise ConfigError(f"--device {req.device!r}: choose cpu or cuda")
    check_out(req.out, req.force)
    train = load_dataset(req.dataset, "train", req.data_dir)
    cfg = resolve_config(req, train)
    model_spec = _model_spec(req.model)
    layers = _layers(model_spec, train, cfg.seed)
    trials = sample_trials(req.spec, layers)
    n_space = space_size(req.spec, layers)
    if len(trials) < req.spec.samples:
        say(f"the search space has only {n_space} combinations: running all of them, not {req.spec.samples}")
    fit, val = carve_validation(train, validation_size(req.spec, len(train)), req.spec.seed)
    say(
        f"{len(trials)} trials; validation split: {len(val)} of {len(train)} training samples "
        "(the test set is not used)"
    )

    with staging(req.out, req.force) as folder:
        cache = folder / "dense.pt"
        dense_metrics, dense_from = _dense(req, model_spec, fit, val, cfg, cache, say)
        job = SweepJob(
            model=model_spec,
            name=req.name or default_name(req.model),
            input_shape=tuple(train.input_shape),  # type: ignore[arg-type]
            num_classes=int(train.num_classes or 0),
            config=cfg.to_dict(),
            fit=fit,
            val=val,
            dense_cache=cache.read_bytes(),
            device=req.device,
            threads=max(1, int(req.ray.cpus_per_trial)),
            meta={
                "dense_weights": dense_from,
                "sweep": {"validation": {"size": len(val), "seed": req.spec.seed, "from": "training set"}},
            },
        )
        best: list[float] = []  # the best score so far, once a trial succeeded
        with track("sweep", total=len(trials), unit="trial", settings=not req.quiet) as bar:

            def on_done(o: TrialOutcome, done: int, total: int) -> None:
                say(trial_line(o, done, total))
                if o.status == "ok":
                    best[:] = [max([*best, float(o.metrics["score"])])]
                bar.update(1, **({"best": round(best[0], 4)} if best else {}))

            outcomes = run_trials(job, trials, req.ray, on_done)
        header = _header(req, cfg, layers, trials, n_space, fit, val, dense_metrics, dense_from, outcomes, t0)
        front = write_all(
            folder,
            header=header,
            outcomes=outcomes,
            base=cfg,
            command=lambda i: reproduce_command(req, i),
            title=f"mcu-dc sweep: {req.model} on {req.dataset}, {len(outcomes)} trials "
            f"(seed {req.spec.seed})",
        )
    return SweepResult(req.out, outcomes, front, time.perf_counter() - t0)


def _header(
    req: SweepRequest,
    cfg: CompressConfig,
    layers: list[Layer],
    trials: list[TrialParams],
    n_space: int,
    fit: Dataset,
    val: Dataset,
    dense_metrics: dict[str, Any],
    dense_from: dict[str, Any],
    outcomes: list[TrialOutcome],
    t0: float,
) -> dict[str, Any]:
    ok = sum(o.status == "ok" for o in outcomes)
    return {
        "tool": "mcu-dc sweep",
        "command": shlex.join(["mcu-dc", "sweep", *req.argv]) if req.argv is not None else None,
        "model": req.model,
        "dataset": req.dataset,
        "seed": req.spec.seed,
        "samples": len(trials),
        "space": req.spec.to_dict(),
        "space_size": n_space,
        "layers": [{"name": lay.name, "kind": lay.kind} for lay in layers],
        "validation": {"from": "training set", "size": len(val), "seed": req.spec.seed, "fit_size": len(fit)},
        "dense": {"metrics": dense_metrics, "weights": dense_from, "cache": "dense.pt"},
        "config": cfg.to_dict(),
        "device": req.device,
        "ray": {
            "address": req.ray.address or "local",
            "num_cpus": req.ray.num_cpus,
            "cpus_per_trial": req.ray.cpus_per_trial,
            "gpus_per_trial": req.ray.gpus_per_trial,
            "max_concurrent": req.ray.max_concurrent,
        },
        "metrics_note": "score: the integer model's (bit-exact simulator) accuracy on the validation split "
        "(-nmse for regression and reconstruction); blob_bytes: the device blob; instructions: the encoding "
        "objective's Cortex-M4 cost model of the weight ops, per inference; arena_bytes: the planned arena",
        "counts": {"ok": ok, "error": len(outcomes) - ok},
        "elapsed_s": round(time.perf_counter() - t0, 1),
        "python": sys.version.split()[0],
    }
