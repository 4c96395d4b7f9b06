"""Issue 11: the committed LeNet-5 of the methods benchmark, whole firmware, on the micro:bit
(Cortex-M0 without DSP or hardware divide, 16 KB RAM) under QEMU: it links within the board's
flash and RAM, and every output on real MNIST test images equals the simulator's."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import QEMU_ARM_MARKS, qemu_children

from mcu_dc.core.model_file import load
from mcu_dc.device.harness import LinkSettings
from mcu_dc.device.verify import VerifySettings, build_firmware, load_test_inputs, run_on_qemu

pytestmark = QEMU_ARM_MARKS

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
BOARD = "qemu-microbit"
N = 12


def _lenet5_models() -> list[Path]:
    return sorted(RESULTS.glob("methods_lenet5_*.mcudc"))


def test_a_lenet5_model_is_committed() -> None:
    assert _lenet5_models(), "bench/results/methods_lenet5_*.mcudc is missing (bench/methods.py writes it)"


@pytest.mark.parametrize("path", _lenet5_models(), ids=lambda p: p.stem)
def test_lenet5_whole_firmware_on_microbit(path: Path, tmp_path: Path) -> None:
    before = set(qemu_children())
    cm = load(path)
    assert math.prod(cm.model.input_shape) == 28 * 28  # an MNIST model
    fw = build_firmware(cm, BOARD, tmp_path)
    assert fw.fit.fits
    assert fw.fit.ram_used <= 16 * 1024 and fw.fit.flash_used <= 256 * 1024
    x, y = load_test_inputs(
        "mnist",
        tuple(cm.model.input_shape),
        limit=N,
        input_norm=cm.meta.get("input_norm"),
        input_kind=cm.model.input_kind,
    )
    settings = VerifySettings(board=BOARD, progress=False, link=LinkSettings(reply_timeout_s=60.0))
    report = run_on_qemu(cm, BOARD, fw.elf, x, y, settings)
    assert report.n == N and report.bit_exact == N and report.mismatches == 0
    assert report.device_accuracy == report.sim_accuracy and report.sim_accuracy >= 10 / 12
    assert report.counter_unit == "instructions" and report.instructions_per_inference > 1_000_000
    assert set(qemu_children()) <= before, "a QEMU process outlived the test"
