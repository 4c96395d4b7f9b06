"""Running a sweep's trials on Ray Tune: a local Ray instance, or an existing cluster.

Locally, Ray is started with ``ray.init(num_cpus=...)`` (its old ``local_mode`` is deprecated) in a
short temporary folder of its own (Unix socket paths are limited to 107 bytes), with Tune's results
beside it, and both are removed when the sweep ends; ``ray.shutdown()`` runs in a ``finally`` so no
Ray process outlives the sweep. With an address (``ray start --head`` on a cluster, or ``auto``) the
sweep connects to it instead and only disconnects at the end.

The trials are fixed beforehand (:func:`mcu_dc.sweep.space.sample_trials`): Tune runs them as a grid
over the trial list, at most ``max_concurrent`` at a time with ``cpus_per_trial`` CPUs (and
``gpus_per_trial`` GPUs) each. Each trial's outcome, model file included, comes back as its one
reported result, so a cluster's nodes need no shared storage.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcu_dc.errors import ConfigError
from mcu_dc.sweep.space import TrialParams
from mcu_dc.sweep.trial import SweepJob, TrialOutcome, run_trial

# Tune's own console tables and its CSV/JSON/TensorBoard loggers: off (the sweep reports each
# trial itself and writes its own files)
_TUNE_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}


# Ray's socket paths add about 80 characters (session_<date>_<pid>/sockets/plasma_store and our own
# mcudc-ray-XXXXXXXX/r/) to the folder; Unix domain sockets allow 107 bytes
MAX_TEMP_PATH = 20


@dataclass
class RayOptions:
    address: str | None = None  # None: start a local Ray instance
    num_cpus: int | None = None  # local instance only; None: every core of this machine
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0: as many as the resources allow
    temp_dir: Path | None = None  # where the local instance's folder goes; None: the system's temp folder

    def validate(self) -> None:
        if not self.cpus_per_trial > 0:
            raise ConfigError(f"--cpus-per-trial = {self.cpus_per_trial} is out of range: it must be > 0")
        if self.gpus_per_trial < 0:
            raise ConfigError(f"--gpus-per-trial = {self.gpus_per_trial} is out of range: it must be >= 0")
        if self.max_concurrent < 0:
            raise ConfigError(
                f"--max-concurrent = {self.max_concurrent} is out of range: it must be >= 0 (0: as many "
                "trials at once as the CPUs allow)"
            )
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"--num-cpus = {self.num_cpus} is out of range: it must be >= 1")
        if self.temp_dir is not None and len(str(self.temp_dir.resolve())) > MAX_TEMP_PATH:
            raise ConfigError(
                f"--ray-temp-dir {self.temp_dir}: the path is {len(str(self.temp_dir.resolve()))} characters "
                f"long; Ray puts Unix sockets under it, whose paths are limited to 107 bytes, so keep it at "
                f"most {MAX_TEMP_PATH} characters (e.g. /tmp/ray-sweep)"
            )
        if self.address is not None and self.num_cpus is not None:
            raise ConfigError(
                "--num-cpus sizes a local Ray instance, but --ray-address connects to an existing cluster "
                "(whose resources are set by `ray start`); drop one of them"
            )


OnDone = Callable[[TrialOutcome, int, int], None]  # (outcome, trials done, trials in all)


def run_trials(
    job: SweepJob, trials: list[TrialParams], opts: RayOptions, on_done: OnDone | None = None
) -> list[TrialOutcome]:
    """Run every trial on Ray Tune; outcomes in the order of ``trials`` (a trial that raised is an
    ``error`` outcome with the exception's message)."""
    ray = require_ray()

    opts.validate()
    tmp = Path(tempfile.mkdtemp(prefix="mcudc-ray-", dir=_temp_root(opts)))
    started = False
    auth_mode = os.environ.get("RAY_AUTH_MODE")  # a local ray.init() sets it in this process
    try:
        if not ray.is_initialized():
            _init(ray, opts, tmp)
            started = True
        _check_resources(ray, opts)
        with _env(_TUNE_ENV):
            by_id = _fit(job, trials, opts, tmp / "tune", on_done)
    finally:
        if started:
            ray.shutdown()
            _restore_env({"RAY_AUTH_MODE": auth_mode})
        shutil.rmtree(tmp, ignore_errors=True)
    return [by_id.get(p.id) or TrialOutcome(p, "error", error="the trial did not run") for p in trials]


def require_ray() -> Any:
    """The ``ray`` module, or a ConfigError saying how to install it (checked before any training)."""
    try:
        import ray
        from ray import tune  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError(
            "mcu-dc sweep runs its trials on Ray Tune, which is not installed: pip install 'mcu_dc[sweep]' "
            "(or pip install 'ray[tune]')"
        ) from None
    return ray


def _temp_root(opts: RayOptions) -> Path:
    """``--ray-temp-dir``, else the system's temp folder (``/tmp`` where that path is too long)."""
    if opts.temp_dir is not None:
        opts.temp_dir.mkdir(parents=True, exist_ok=True)
        return opts.temp_dir
    root = Path(tempfile.gettempdir())
    return root if len(str(root)) <= MAX_TEMP_PATH or not Path("/tmp").is_dir() else Path("/tmp")


def _init(ray: Any, opts: RayOptions, tmp: Path) -> None:
    common: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
    if opts.address:
        try:
            ray.init(address=opts.address, **common)
        except ConnectionError as exc:
            auth = ""
            if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" and opts.address != "auto":
                auth = (
                    " A cluster that `ray start` made uses token authentication (Ray 2.60 turns it on): set "
                    "RAY_AUTH_MODE=token and give this machine the head's token (its ~/.ray/auth_token, or "
                    "RAY_AUTH_TOKEN), or pass --ray-address auto on a node of the cluster."
                )
            raise ConfigError(
                f"--ray-address {opts.address}: no Ray cluster answered ({exc}). Start one with `ray start "
                "--head` on the head node (it prints the address to pass), or leave --ray-address out to run "
                f"on a local Ray instance.{auth}"
            ) from None
        return
    ray.init(
        num_cpus=opts.num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        _temp_dir=str(tmp / "r"),
        **common,
    )


def _check_resources(ray: Any, opts: RayOptions) -> None:
    """A trial that asks for more than the cluster has would wait forever: say so now."""
    have = ray.cluster_resources()
    cpus, gpus = float(have.get("CPU", 0)), float(have.get("GPU", 0))
    where = f"the Ray cluster at {opts.address}" if opts.address else "the local Ray instance"
    if opts.cpus_per_trial > cpus:
        raise ConfigError(
            f"--cpus-per-trial = {opts.cpus_per_trial:g} but {where} has {cpus:g} CPUs; ask for at most "
            f"{cpus:g}" + ("" if opts.address else " (or raise --num-cpus)")
        )
    if opts.gpus_per_trial > gpus:
        raise ConfigError(
            f"--device cuda asks for {opts.gpus_per_trial:g} GPU per trial but {where} has {gpus:g} GPUs; "
            "use --device cpu, or a machine (or cluster) with a CUDA GPU"
        )


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        _restore_env(old)


def _restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _trainable(config: dict[str, Any], job: SweepJob | None = None) -> None:
    """Tune's function trainable: one trial, one reported result."""
    from ray import tune

    assert job is not None  # tune.with_parameters supplies it
    tune.report(run_trial(job, TrialParams.from_dict(config["trial"])).to_report())


def _trial_name(trial: Any) -> str:
    return str(trial.config["trial"]["id"])


def _fit(
    job: SweepJob, trials: list[TrialParams], opts: RayOptions, storage: Path, on_done: OnDone | None
) -> dict[str, TrialOutcome]:
    from ray import tune

    from mcu_dc.sweep.ray_callback import Collector

    params = {p.id: p for p in trials}
    by_id: dict[str, TrialOutcome] = {}

    def done(outcome: TrialOutcome) -> None:
        by_id[outcome.id] = outcome
        if on_done is not None:
            on_done(outcome, len(by_id), len(trials))

    def completed(trial: Any) -> None:
        result = trial.last_result or {}
        if "params" in result:
            done(TrialOutcome.from_report(result))
        else:
            done(TrialOutcome(params[_trial_name(trial)], "error", error="the trial reported no result"))

    def failed(trial: Any) -> None:
        done(TrialOutcome(params[_trial_name(trial)], "error", error=_error_text(trial)))

    resources = {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(_trainable, job=job), resources)
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search([p.to_dict() for p in trials])},
        tune_config=tune.TuneConfig(
            num_samples=1,
            max_concurrent_trials=opts.max_concurrent or None,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name="sweep",
            storage_path=str(storage),
            verbose=0,
            callbacks=[Collector(completed, failed)],
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    tuner.fit()
    return by_id


def _error_text(trial: Any) -> str:
    """The last line of a failed trial's exception (its type and message), not Ray's traceback: from
    the error file Tune writes in the trial's local folder before it calls the callbacks."""
    path = getattr(trial, "error_file", None)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace") if path else ""
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "the trial failed (Ray gave no error message)"
