"""The demo firmware under QEMU through `mcu-dc run`: on the Cortex-M4 mps2-an386 and the
Cortex-M0 micro:bit it prints the simulator's classes and the dataset's labels and exits 0; a
tampered expected value makes it exit 1; a firmware that never ends is stopped at --timeout.
Every test checks that no QEMU process outlives it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import parse_demo, qemu_children, tamper_expected

from mcu_dc.cli import main
from mcu_dc.core.simulator import simulate
from mcu_dc.data.datasets import load_dataset
from mcu_dc.deploy.armbuild import build_project
from mcu_dc.deploy.generate import generate

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.arm,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
        reason="needs qemu-system-arm and arm-none-eabi-gcc",
    ),
]

N = 5


@pytest.fixture(autouse=True)
def no_qemu_left():
    before = set(qemu_children())
    yield
    assert set(qemu_children()) <= before, "a QEMU process outlived its test"


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory, digits_cm) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo_qemu")
    out = {}
    for board in ("qemu-mps2-an386", "qemu-microbit"):
        project = generate(digits_cm, board, root / board, app="demo", samples=N)
        fw = build_project(project, werror=True)  # the demo builds warning-free for the board
        assert fw.fit.fits
        out[board] = project
    return out


@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-microbit"])
def test_demo_runs_under_qemu(board: str, projects, digits_cm, capsys) -> None:
    rc = main(["run", str(projects[board]), "--timeout", "30"])
    cap = capsys.readouterr()
    assert rc == 0, cap.out + cap.err
    assert "exited with code 0" in cap.err
    out = parse_demo(cap.out)
    ds = load_dataset("digits", "test")
    sim = simulate(digits_cm, ds.images[:N].reshape(N, -1)).argmax(1)
    assert [s["index"] for s in out["samples"]] == list(range(N))
    assert [s["pred"] for s in out["samples"]] == list(sim)
    assert [s["sim"] for s in out["samples"]] == list(sim)
    assert [s["label"] for s in out["samples"]] == list(ds.labels[:N])
    assert all(s["equal"] and s["unit"] == "instructions" for s in out["samples"])
    assert all(1_000 < s["count"] < 200_000 for s in out["samples"])
    correct = int(np.sum(sim == ds.labels[:N]))
    assert out["summary"] == {"correct": correct, "agree": N, "n": N, "round": 1}
    assert f"on {board}," in cap.out and "model: ok (status MCU_DC_OK, CRC ok" in cap.out
    assert cap.out.rstrip().endswith("done: exit 0")


def test_tampered_expected_value_exits_1(projects, tmp_path: Path, capsys) -> None:
    project = tmp_path / "tampered"
    shutil.copytree(projects["qemu-mps2-an386"], project)
    tamper_expected(project, sample=2)  # newer than the copied ELF: `mcu-dc run` rebuilds
    rc = main(["run", str(project), "--timeout", "30"])
    cap = capsys.readouterr()
    assert rc == 1, cap.out + cap.err
    assert "building" in cap.err
    out = parse_demo(cap.out)
    assert [s["equal"] for s in out["samples"]] == [i != 2 for i in range(N)]
    assert out["summary"]["agree"] == N - 1
    assert "done: exit 1" in cap.out


def test_a_firmware_that_never_exits_is_stopped_at_the_timeout(projects, tmp_path: Path, capsys) -> None:
    project = tmp_path / "forever"
    shutil.copytree(projects["qemu-mps2-an386"], project)
    header = project / "src" / "mcu_dc_demo_data.h"
    text = header.read_text()
    header.write_text(text.replace("#ifndef MCU_DC_DEMO_ROUNDS", "#define MCU_DC_DEMO_ROUNDS 0u\n#if 0", 1))
    rc = main(["run", str(project), "--timeout", "3"])
    cap = capsys.readouterr()
    assert rc == 2 and "did not exit within 3 s" in cap.err, cap.err
    assert parse_demo(cap.out)["summary"]["round"] >= 1  # it printed while it ran


def test_verify_takes_the_board_from_a_project(digits_cm, tmp_path: Path, capsys) -> None:
    import json

    project = generate(digits_cm, "qemu-microbit", tmp_path / "v")  # the protocol server
    rc = main(["verify", str(project), "--dataset", "digits", "--limit", "10", "--json", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["board"] == "qemu-microbit" and report["bit_exact"] == 10
