"""``mcu-dc sweep``: the Pareto front, seeded sampling, search-space errors, and a tiny real sweep
on a local Ray instance (digits, a two-layer MLP, 4 trials)."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mcu_dc.cli import main
from mcu_dc.compression.config import CompressConfig, load_config
from mcu_dc.errors import ConfigError
from mcu_dc.sweep.outputs import check_out
from mcu_dc.sweep.pareto import Point, dominates, pareto_front
from mcu_dc.sweep.settings import apply_flags, spec_from_table
from mcu_dc.sweep.space import Layer, SweepSpec, sample_trials, space_size
from mcu_dc.sweep.tomlw import config_toml
from mcu_dc.sweep.trial import TrialOutcome

# ---------------------------------------------------------------------------- the front itself


def test_pareto_front_of_hand_made_points():
    pts = [
        Point(1000, 0.90, 500),  # 0: front (smallest)
        Point(2000, 0.95, 400),  # 1: front (best score)
        Point(2000, 0.94, 400),  # 2: dominated by 1 (same bytes and instructions, lower score)
        Point(1500, 0.90, 600),  # 3: dominated by 0 (more bytes, same score, more instructions)
        Point(3000, 0.80, 100),  # 4: front (fewest instructions)
        Point(1000, 0.90, 500),  # 5: equal to 0: neither dominates, both stay
        Point(5000, 0.95, 400),  # 6: dominated by 1 (more bytes only)
    ]
    assert pareto_front(pts) == [0, 1, 4, 5]
    assert dominates(pts[1], pts[2]) and not dominates(pts[2], pts[1])
    assert not dominates(pts[0], pts[5]) and not dominates(pts[0], pts[0])
    assert not dominates(pts[0], pts[4]) and not dominates(pts[4], pts[0])  # a real trade-off
    assert pareto_front([]) == []
    assert pareto_front([Point(1, 0.5, 1)]) == [0]


# ---------------------------------------------------------------------------- the search space

LAYERS = [Layer("conv1", "conv"), Layer("conv2", "conv"), Layer("fc1", "fc"), Layer("fc2", "fc")]


def test_same_seed_gives_the_same_trials_and_another_seed_others():
    spec = SweepSpec(samples=12, seed=7, sparsity=[0.3, 0.5, 0.7, 0.9], layer_sparsity={"fc2": [0.0, 0.5]})
    a, b = sample_trials(spec, LAYERS), sample_trials(spec, LAYERS)
    assert a == b
    assert [t.id for t in a] == [f"t{i:03d}" for i in range(12)]
    keys = [(tuple(t.sparsity.items()), t.fc_bits, t.conv_bits, t.objective) for t in a]
    assert len(set(keys)) == 12  # distinct trials
    for t in a:
        assert set(t.sparsity) == {"conv1", "conv2", "fc1", "fc2"}
        assert t.sparsity["fc2"] in (0.0, 0.5) and t.sparsity["fc1"] in spec.sparsity
        assert t.fc_bits in spec.fc_bits and t.conv_bits in spec.conv_bits and t.objective in spec.objective
    other = sample_trials(SweepSpec(**{**spec.to_dict(), "seed": 8}), LAYERS)
    assert other != a


def test_a_small_space_is_run_whole_and_absent_kinds_are_not_sampled():
    mlp = [Layer("1", "fc"), Layer("3", "fc")]
    spec = SweepSpec(samples=50, sparsity=[0.5, 0.9], fc_bits=[4], objective=["size", "speed"])
    assert space_size(spec, mlp) == 8
    trials = sample_trials(spec, mlp)
    assert len(trials) == 8 and all(t.conv_bits is None and t.fc_bits == 4 for t in trials)
    assert len({(tuple(t.sparsity.values()), t.objective) for t in trials}) == 8


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (SweepSpec(sparsity=[0.5, 1.0]), ["sweep.sparsity[1] = 1.0", "[0, 1)"]),
        (SweepSpec(layer_sparsity={"fc1": [-0.1]}), ["sweep.layer_sparsity.fc1[0] = -0.1", "[0, 1)"]),
        (SweepSpec(fc_bits=[4, 9]), ["sweep.fc_bits[1] = 9", "1..8"]),
        (SweepSpec(conv_bits=[]), ["sweep.conv_bits is empty", "1..8"]),
        (SweepSpec(objective=["size", "fast"]), ["sweep.objective[1] = 'fast'", "size, speed, balanced"]),
        (SweepSpec(samples=0), ["sweep.samples = 0", "1..10,000"]),
        (SweepSpec(layer_sparsity={"fc9": [0.5]}), ["unknown layer(s) 'fc9'", "'conv1', 'conv2'"]),
    ],
)
def test_bad_search_space_names_the_key_and_the_range(spec, words):
    with pytest.raises(ConfigError) as exc:
        sample_trials(spec, LAYERS)
    for w in words:
        assert w in str(exc.value)


def test_flags_override_the_table_and_errors_name_the_flag(tmp_path):
    spec = spec_from_table({"samples": 3, "fc_bits": [4, 5], "sparsity": [0.5]}, "s.toml")
    out = apply_flags(spec, {"--fc-bits": "6,7", "--samples": None, "--layer-sparsity": ["fc1=0.8,0.9"]})
    assert out.fc_bits == [6, 7] and out.samples == 3 and out.layer_sparsity == {"fc1": [0.8, 0.9]}
    with pytest.raises(ConfigError, match=r"--fc-bits\[1\] = 9 is out of range.*1\.\.8"):
        apply_flags(spec, {"--fc-bits": "4,9"})
    with pytest.raises(ConfigError, match=r"--sparsity '0.5,x': 'x' is not a number"):
        apply_flags(spec, {"--sparsity": "0.5,x"})
    with pytest.raises(ConfigError, match=r"s.toml \[sweep\] sparsity\[0\] = 1.5"):
        spec_from_table({"sparsity": [1.5]}, "s.toml").validate()
    with pytest.raises(ConfigError, match=r"unknown key.*bitz"):
        spec_from_table({"bitz": [4]}, "s.toml")
    # on the command line: a one-paragraph error and exit code 2, before any data is read or Ray started
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[sweep]\nobjective = ['size', 'tiny']\n")
    out_dir = tmp_path / "never"
    argv = [
        "sweep",
        "--model",
        "lenet300",
        "--dataset",
        "digits",
        "--config",
        str(cfg),
        "--out",
        str(out_dir),
    ]
    assert main(argv) == 2
    assert not out_dir.exists()


def test_bad_search_space_on_the_command_line(capsys, tmp_path):
    argv = ["sweep", "--model", "lenet300", "--dataset", "digits", "--out", str(tmp_path / "o")]
    assert main([*argv, "--sparsity", "0.5,0.99,1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcu-dc sweep: error: --sparsity[2] = 1.0 is out of range") and "[0, 1)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_config_toml_round_trips_through_load_config(tmp_path):
    cfg = CompressConfig()
    cfg.prune.sparsity = {"1": 0.5, "features.0": 0.9}
    cfg.cluster.fc_bits, cfg.objective, cfg.finetune.lr = 3, "speed", 1e-5
    p = tmp_path / "c.toml"
    p.write_text(config_toml(cfg, header="a header\nin two lines"))
    assert load_config(p) == cfg


# ---------------------------------------------------------------------------- a real sweep

MLP = """
from torch import nn


def make():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.ReLU(), nn.Linear(24, 10))
"""

CONFIG = """
val_size = 100
[dense]
epochs = 8
lr = 0.1
batch_size = 32
[prune]
rounds = 1
[prune.retrain]
epochs = 1
lr = 0.02
batch_size = 32
[finetune]
epochs = 1
batch_size = 32
[sweep]
samples = 4
seed = 3
sparsity = [0.5, 0.9]
fc_bits = [3, 6]
objective = ["size", "speed"]
"""


# a real sweep starts Ray (about 10 s of the test's 30 on 2 cores): the `sweep` extra, ray[tune]
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="needs ray[tune] (pip install '.[sweep]')"
)


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    (d / "mlp.py").write_text(MLP)
    (d / "sweep.toml").write_text(CONFIG)
    out = d / "out"
    ray_tmp = Path(tempfile.mkdtemp(prefix="mcs", dir="/tmp"))  # short: Ray's socket paths
    argv = [
        "sweep", "--model", f"{d / 'mlp.py'}:make", "--dataset", "digits", "--config", str(d / "sweep.toml"),
        "--out", str(out), "--max-concurrent", "2", "--num-cpus", "2", "--ray-temp-dir", str(ray_tmp),
    ]  # fmt: skip
    try:
        rc = main(argv)
        leftovers = list(ray_tmp.iterdir())
        ray_procs = _processes_mentioning(str(ray_tmp))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    return rc, out, leftovers, ray_procs


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = p.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(cmd)
    return found


def _point(t: dict) -> Point:
    m = t["metrics"]
    return Point(m["blob_bytes"], m["score"], m["instructions"])


@pytest.mark.slow
@needs_ray
def test_sweep_writes_every_trial_with_plausible_metrics(sweep_run):
    rc, out, leftovers, ray_procs = sweep_run
    assert rc == 0
    assert leftovers == [] and ray_procs == []  # Ray's folder removed, no Ray process left behind
    assert not list(out.parent.glob(".out.tmp-*"))  # the staging folder was renamed, not left behind
    data = json.loads((out / "trials.json").read_text())
    trials = data["trials"]
    assert [t["id"] for t in trials] == ["t000", "t001", "t002", "t003"]
    assert data["validation"]["from"] == "training set" and data["validation"]["size"] == 269
    expected = sample_trials(
        SweepSpec(samples=4, seed=3, sparsity=[0.5, 0.9], fc_bits=[3, 6], objective=["size", "speed"]),
        [Layer("1", "fc"), Layer("3", "fc")],
    )
    assert [t["params"] for t in trials] == [p.to_dict() for p in expected]  # seeded, as the unit test says
    original = 4 * (64 * 24 + 24 + 24 * 10 + 10)
    for t in trials:
        assert t["status"] == "ok", t["error"]
        m = t["metrics"]
        assert 0.5 < m["accuracy"] <= 1.0 and m["score"] == m["accuracy"] == m["integer"]["accuracy"]
        assert 0 < m["blob_bytes"] < original == m["original_bytes"]
        assert m["file_bytes"] > m["blob_bytes"]
        assert m["instructions"] == sum(v["instructions_m4"] for v in m["layers"].values()) > 0
        assert m["arena_bytes"] > 0
        for layer, s in t["params"]["sparsity"].items():
            assert abs(m["sparsity"][layer] - s) < 0.01  # pruned to the trial's sparsity


@pytest.mark.slow
@needs_ray
def test_pareto_set_is_non_dominated_and_complete(sweep_run):
    _, out, _, _ = sweep_run
    trials = json.loads((out / "trials.json").read_text())["trials"]
    front = json.loads((out / "pareto.json").read_text())["front"]
    ids = {f["id"] for f in front}
    assert ids and ids == {t["id"] for t in trials if t["pareto"]}
    for t in trials:
        beaten = any(dominates(_point(u), _point(t)) for u in trials)
        assert beaten == (t["id"] not in ids), t["id"]
    best = max(t["metrics"]["score"] for t in trials)
    smallest = min(t["metrics"]["blob_bytes"] for t in trials)
    assert any(f["metrics"]["score"] == best for f in front)
    assert any(f["metrics"]["blob_bytes"] == smallest for f in front)
    assert [f["metrics"]["blob_bytes"] for f in front] == sorted(f["metrics"]["blob_bytes"] for f in front)
    png = (out / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert (out / "dense.pt").stat().st_size > 0


@pytest.mark.slow
@needs_ray
def test_a_pareto_model_reloads_with_the_recorded_accuracy(sweep_run):
    from mcu_dc.core.model_file import load
    from mcu_dc.core.simulator import simulate
    from mcu_dc.data.datasets import load_dataset
    from mcu_dc.sweep.runner import carve_validation

    _, out, _, _ = sweep_run
    data = json.loads((out / "trials.json").read_text())
    _, val = carve_validation(load_dataset("digits", "train"), data["validation"]["size"], data["seed"])
    for f in json.loads((out / "pareto.json").read_text())["front"]:
        cm = load(out / f["model"])
        assert len(cm.blob) == f["metrics"]["blob_bytes"]
        y = simulate(cm.model, val.images)
        assert float(np.mean(y.argmax(1) == val.labels)) == f["metrics"]["accuracy"]
        assert cm.meta["sweep"]["trial"] == f["params"]
        assert cm.meta["objective"]["objective"] == f["params"]["objective"]
        assert cm.meta["objective"]["layers"] == f["metrics"]["layers"]
        cfg = load_config(out / f["config"])
        assert cfg.prune.sparsity == f["params"]["sparsity"] and cfg.cluster.fc_bits == f["params"]["fc_bits"]
        assert cfg.objective == f["params"]["objective"]


@pytest.mark.slow
@needs_ray
def test_the_reproduce_command_runs(sweep_run, tmp_path, monkeypatch):
    _, out, _, _ = sweep_run
    f = json.loads((out / "pareto.json").read_text())["front"][0]
    argv = shlex.split(f["command"])
    assert argv[:2] == ["mcu-dc", "compress"] and "--pretrained" in argv
    monkeypatch.chdir(tmp_path)
    assert main([*argv[1:], "--quiet", "--json"]) == 0
    assert (tmp_path / f"{f['id']}.mcudc").is_file()


def test_outcome_survives_the_trip_through_ray():
    t = sample_trials(SweepSpec(samples=1), [Layer("1", "fc")])[0]
    o = TrialOutcome(t, "ok", metrics={"score": 0.5}, seconds=1.5, node="n", model=b"\x00\x01mcudc")
    back = TrialOutcome.from_report(json.loads(json.dumps(o.to_report())))
    assert back == o
    assert "model_b64" not in o.to_json()


def test_existing_out_is_refused_without_force(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"already exists.*--force"):
        check_out(tmp_path / "o", force=False)
    assert os.path.exists(tmp_path / "o" / "keep.txt")


def test_a_trial_with_a_bad_model_is_an_error_outcome_not_a_crash(tmp_path):
    from mcu_dc.data.datasets import load_dataset
    from mcu_dc.sweep.trial import SweepJob, run_trial

    tr = load_dataset("digits", "train")
    job = SweepJob(
        model=f"{tmp_path / 'missing.py'}:make",
        name="m",
        input_shape=tr.input_shape,
        num_classes=10,
        config=CompressConfig().to_dict(),
        fit=tr,
        val=tr,
        dense_cache=b"",
    )
    params = sample_trials(SweepSpec(samples=1), [Layer("1", "fc")])[0]
    o = run_trial(job, params)
    assert o.status == "error" and "missing.py does not exist" in str(o.error) and o.model is None


def test_outputs_appear_whole_or_not_at_all(tmp_path):
    from mcu_dc.sweep.outputs import staging

    out = tmp_path / "o"
    with pytest.raises(RuntimeError), staging(out, force=False) as folder:
        (folder / "trials.json").write_text("{}")
        raise RuntimeError("a trial crashed the driver")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with staging(out, force=False) as folder:
        (folder / "trials.json").write_text("{}")
    assert (out / "trials.json").is_file() and [p.name for p in tmp_path.iterdir()] == ["o"]
    with staging(out, force=True) as folder:  # --force replaces the old folder
        (folder / "pareto.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["pareto.json"]
