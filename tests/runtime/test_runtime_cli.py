"""`mcu-dc simulate`, `mcu-dc generate --board host` and `mcu-dc build` end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from runtime_modelgen import WeightSpec, random_model

from mcu_dc.cli import main
from mcu_dc.core.model_file import CompressedModel, load
from mcu_dc.core.simulator import simulate
from mcu_dc.deploy.hostbuild import run_program


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    model = random_model(
        8, WeightSpec(density=0.4, k=16, index_bits=4), (1, 8, 8), [("conv", 4, 3, 3, 1, 1, 1, 1), ("fc", 10)]
    )
    path = tmp_path_factory.mktemp("cli") / "digits.mcudc"
    CompressedModel(model, {"name": "digits-net"}).save(path)
    return path


def test_simulate_json_on_digits(digits_model, capsys):
    assert main(["simulate", str(digits_model), "--dataset", "digits", "--limit", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 50
    from mcu_dc.data.datasets import load_dataset

    ds = load_dataset("digits", "test")
    pred = simulate(load(digits_model), ds.images[:50]).argmax(axis=1)
    assert result["accuracy"] == pytest.approx(float(np.mean(pred == ds.labels[:50])))


def test_simulate_refuses_mismatched_dataset(digits_model, capsys):
    rc = main(["simulate", str(digits_model), "--dataset", "mnist", "--limit", "5"])
    err = capsys.readouterr().err
    assert rc != 0 and "error" in err and "Traceback" not in err


def test_generate_build_and_run_host_program(digits_model, tmp_path, capsys):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path / "proj"
    assert main(["generate", str(digits_model), "--board", "host", "--out", str(out)]) == 0
    info = json.loads((out / "mcu_dc_project.json").read_text())
    assert info["kind"] == "host" and info["board"] == "host" and info["name"] == "digits_net"
    assert main(["build", str(out), "--sanitize"]) == 0
    cm = load(digits_model)
    x = np.random.default_rng(1).integers(0, 256, (30, 64), dtype=np.uint8)
    got = run_program(out / "build" / "digits_net", [], x, cm.model.output_len)
    assert np.array_equal(got, simulate(cm, x))


def test_build_without_project_file_is_a_clear_error(tmp_path, capsys):
    rc = main(["build", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc != 0 and "mcu_dc_project.json" in err


@pytest.mark.arm
def test_build_dispatches_mcu_projects(digits_model, tmp_path, capsys):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    out = tmp_path / "mcu"
    assert main(["generate", str(digits_model), "--board", "qemu-mps2-an386", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["build", str(out), "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["board"] == "qemu-mps2-an386" and fit["fits"] is True


def test_report_into_a_closed_pipe_is_quiet(digits_model):
    """`mcu-dc report m.mcudc | true`: the reader is gone before the first write; no traceback, exit 0."""
    import subprocess
    import sys

    cmd = f"set -o pipefail; {sys.executable} -m mcu_dc report {digits_model} | true"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
