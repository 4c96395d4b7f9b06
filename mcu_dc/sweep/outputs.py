"""A sweep's output folder, written whole or not at all.

Everything goes into a temporary folder beside ``--out`` that is renamed to ``--out`` once
complete (and removed on any failure, Ctrl-C included)::

    trials.json            every trial: params, status, metrics (or the error), seconds
    pareto.json            the non-dominated trials, each with its config, model file and command
    pareto.png             validation score vs bytes, coloured by instructions, the front ringed
    pareto/<trial>.toml    a `mcu-dc compress --config` file with the trial's settings
    pareto/<trial>.mcudc   the trial's model exactly as measured
    dense.pt               the dense weights every trial started from (a --pretrained cache)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mcu_dc.compression.config import CompressConfig
from mcu_dc.errors import ConfigError
from mcu_dc.fileio import write_bytes_atomic, write_text_atomic
from mcu_dc.sweep.pareto import Point, pareto_front
from mcu_dc.sweep.tomlw import config_toml
from mcu_dc.sweep.trial import TrialOutcome, trial_config

OBJECTIVES = {"blob_bytes": "min", "score": "max", "instructions": "min"}


def check_out(out: Path, force: bool) -> None:
    """Refuse to overwrite a non-empty folder (or any file) without ``--force``, before any work."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; the sweep writes a folder there: choose another path")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(
            f"--out {out} already exists and is not empty; choose another folder, or pass --force to "
            "replace it when the sweep has finished"
        )


@contextlib.contextmanager
def staging(out: Path, force: bool) -> Iterator[Path]:
    """A temporary folder beside ``out``, renamed to ``out`` on success, removed on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        check_out(out, force)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "out")
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def front_ids(outcomes: Sequence[TrialOutcome]) -> list[str]:
    """Ids of the successful trials on the Pareto front (bytes down, score up, instructions down)."""
    ok = [o for o in outcomes if o.status == "ok"]
    points = [
        Point(int(o.metrics["blob_bytes"]), float(o.metrics["score"]), int(o.metrics["instructions"]))
        for o in ok
    ]
    return [ok[i].id for i in pareto_front(points)]


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def write_all(
    folder: Path,
    *,
    header: dict[str, Any],
    outcomes: Sequence[TrialOutcome],
    base: CompressConfig,
    command: Callable[[str], str],
    title: str,
) -> list[str]:
    """Write every output into ``folder``; returns the front's trial ids (by blob bytes).
    ``command(trial_id)``: the shell command that reproduces a trial with ``mcu-dc compress``."""
    from mcu_dc.sweep.plot import score_label, write_pareto_png

    ids = front_ids(outcomes)
    by_id = {o.id: o for o in outcomes}
    front = sorted((by_id[i] for i in ids), key=lambda o: (o.metrics["blob_bytes"], -o.metrics["score"]))
    entries = []
    for o in front:
        toml_rel, model_rel = f"pareto/{o.id}.toml", f"pareto/{o.id}.mcudc"
        cmd = command(o.id)
        label, factor = score_label(str(o.metrics.get("task", "classification")))
        head = (
            f"mcu-dc sweep, trial {o.id}: {o.params.describe()}\n"
            f"measured on the sweep's validation split: {label} {factor * o.metrics['score']:.4g}, "
            f"{o.metrics['blob_bytes']:,} B blob, {o.metrics['instructions']:,} predicted instructions per "
            f"inference, {o.metrics['arena_bytes']:,} B arena\n"
            f"the exact model measured: {model_rel}\n"
            f"reproduce with `mcu-dc compress` (which trains on the training set as it splits it and "
            f"measures on the test set, so its figures differ a little):\n  {cmd}"
        )
        write_text_atomic(folder / toml_rel, config_toml(trial_config(base, o.params), header=head))
        assert o.model is not None  # an "ok" outcome carries its model file
        write_bytes_atomic(folder / model_rel, o.model)
        entries.append(
            {
                "id": o.id,
                "params": o.params.to_dict(),
                "metrics": o.metrics,
                "config": toml_rel,
                "model": model_rel,
                "command": cmd,
            }
        )
    trials = [o.to_json() for o in outcomes]
    for t in trials:
        t["pareto"] = t["id"] in ids
    write_text_atomic(folder / "trials.json", _dump({**header, "trials": trials}))
    pareto = {
        "objectives": OBJECTIVES,
        "note": "non-dominated successful trials: no other trial has a blob as small or smaller, a score as "
        "high or higher and as few or fewer predicted instructions, and is strictly better on one of them",
        "front": entries,
    }
    write_text_atomic(folder / "pareto.json", _dump(pareto))
    write_pareto_png(folder / "pareto.png", outcomes, ids, title)
    return [o.id for o in front]
