"""The firmware on emulated boards: bit-exact under QEMU, faults survived, QEMU always stopped.

A small digits model (tests/device/conftest.py: make_digits_model) is generated, built with
arm-none-eabi-gcc and booted under qemu-system-arm for each board; every output of ≥ 200
test inputs must equal the simulator's. Every test checks that no QEMU process is left.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import QEMU_ARM_MARKS, qemu_children

from mcu_dc.core.simulator import simulate
from mcu_dc.device import protocol as P
from mcu_dc.device.harness import Device, LinkSettings
from mcu_dc.device.proxy import FaultProxy, FaultSettings
from mcu_dc.device.verify import VerifySettings, build_firmware, run_on_qemu
from mcu_dc.errors import DeviceError

pytestmark = QEMU_ARM_MARKS

BOARDS = ("qemu-mps2-an386", "qemu-lm3s6965evb", "qemu-microbit")
N = 200


@pytest.fixture(scope="module")
def firmware(tmp_path_factory: pytest.TempPathFactory, digits_cm) -> dict[str, object]:
    work = tmp_path_factory.mktemp("qemufw")
    return {b: build_firmware(digits_cm, b, work) for b in BOARDS}


@pytest.fixture(autouse=True)
def no_qemu_left():
    before = set(qemu_children())
    yield
    assert set(qemu_children()) <= before, "a QEMU process outlived its test"


def _settings(board: str) -> VerifySettings:
    return VerifySettings(board=board, progress=False, link=LinkSettings(reply_timeout_s=2.0))


@pytest.mark.parametrize("board", BOARDS)
def test_bit_exact_on_emulated_board(board: str, firmware, digits_cm, digits_inputs) -> None:
    x, y = digits_inputs
    fw = firmware[board]
    assert fw.fit.fits
    report = run_on_qemu(digits_cm, board, fw.elf, x[:N], y[:N], _settings(board))
    assert report.board == board
    assert report.n == N and report.bit_exact == N and report.mismatches == 0
    assert report.device_accuracy == report.sim_accuracy and report.sim_accuracy > 0.8
    assert report.counter_unit == "instructions"
    assert report.instructions_per_inference is not None and 500 < report.instructions_per_inference < 200_000


def test_dense_int8_baseline_is_bit_exact_too(tmp_path: Path, digits_dense_cm, digits_inputs) -> None:
    x, y = digits_inputs
    board = "qemu-mps2-an386"
    fw = build_firmware(digits_dense_cm, board, tmp_path)
    report = run_on_qemu(digits_dense_cm, board, fw.elf, x[:N], y[:N], _settings(board))
    assert report.bit_exact == N and report.mismatches == 0


def test_fault_proxy_between_harness_and_qemu(firmware, digits_cm, digits_inputs) -> None:
    x, y = digits_inputs
    board = "qemu-lm3s6965evb"
    faults = FaultSettings(
        seed=7,
        corrupt_rate=0.002,
        drop_rate=0.001,
        max_faults=8,
        skip_bytes=P.OVERHEAD * 2 + P.INFO_BYTES + 32,
    )
    proxies: list[FaultProxy] = []

    def via(url: str):
        host, port = url.removeprefix("socket://").rsplit(":", 1)
        proxy = FaultProxy((host, int(port)), faults)
        proxies.append(proxy)
        return proxy.url, proxy.close

    settings = VerifySettings(board=board, progress=False, link=LinkSettings(reply_timeout_s=0.4, retries=12))
    report = run_on_qemu(digits_cm, board, firmware[board].elf, x[:N], y[:N], settings, via=via)
    stats = proxies[0].stats
    assert stats.corrupted > 0 and stats.dropped > 0
    assert report.link["retries"] > 0
    assert report.bit_exact == N and report.mismatches == 0


def test_garbage_on_qemu_uart_keeps_the_firmware_responsive(firmware, digits_cm, digits_inputs) -> None:
    from mcu_dc.device.qemu import QemuBoard

    x, _ = digits_inputs
    board = "qemu-mps2-an386"
    rng = np.random.default_rng(3)
    link = LinkSettings(reply_timeout_s=0.5, retries=12)
    with QemuBoard(board, firmware[board].elf) as q, Device.open(q.url, link) as dev:
        info = dev.hello()
        assert info.board == board and info.model_hash == digits_cm.model_hash
        for _ in range(5):
            junk = bytearray(rng.bytes(int(rng.integers(100, 1500))))
            junk[::37] = b"\xa5" * len(junk[::37])
            dev._write(bytes(junk) + P.encode_frame(P.MsgType.PING, 0, bytes(5))[:-3])
            assert dev.ping(b"ok?") == b"ok?"
        assert dev.infer(x[0].tobytes())[1] == simulate(digits_cm, x[:1])[0].tobytes()
        assert dev.bye()
        assert q.wait(timeout=10) == 0
    assert not q.running


def test_qemu_is_stopped_on_error_and_on_ctrl_c(firmware, digits_cm, digits_inputs) -> None:
    from mcu_dc.core.model_file import CompressedModel

    x, y = digits_inputs
    board = "qemu-mps2-an386"
    other = CompressedModel(digits_cm.model, {"name": "other"})
    other.model.layers[0].bias = other.model.layers[0].bias + 1
    other = CompressedModel(other.model)  # a different blob: another hash
    with pytest.raises(DeviceError, match="runs model hash"):
        run_on_qemu(other, board, firmware[board].elf, x[:5], y[:5], _settings(board))
    assert qemu_children() == []

    def interrupt(i: int, dev_out: bytes, sim_out: bytes) -> None:
        if i == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_on_qemu(
            digits_cm, board, firmware[board].elf, x[:10], y[:10], _settings(board), on_result=interrupt
        )
    assert qemu_children() == []


def test_verify_cli_json(tmp_path: Path, digits_cm, capsys) -> None:
    from mcu_dc.cli import main

    model = digits_cm.save(tmp_path / "digits.mcudc")
    rc = main(
        [
            "verify",
            str(model),
            "--board",
            "qemu-mps2-an386",
            "--dataset",
            "digits",
            "--limit",
            "50",
            "--work-dir",
            str(tmp_path / "work"),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["n"] == 50 and out["bit_exact"] == 50 and out["mismatches"] == 0
    assert out["device_accuracy"] == out["sim_accuracy"]
    assert out["instructions_per_inference"] > 0
    # A generated project directory verifies the blob compiled into it.
    project = next((tmp_path / "work").glob("fw-qemu-mps2-an386-*"))
    rc = main(
        [
            "verify",
            str(project),
            "--board",
            "qemu-mps2-an386",
            "--dataset",
            "digits",
            "--limit",
            "20",
            "--json",
        ]
    )
    assert rc == 0 and json.loads(capsys.readouterr().out)["bit_exact"] == 20


def test_verify_cli_errors_are_one_paragraph(tmp_path: Path, digits_cm, capsys) -> None:
    from mcu_dc.cli import main

    model = digits_cm.save(tmp_path / "digits.mcudc")
    assert main(["verify", str(model), "--board", "nucleo_f401re", "--dataset", "digits"]) != 0
    assert "--port" in capsys.readouterr().err
    assert main(["verify", str(model), "--board", "qemu-mps2-an386", "--dataset", "mnist"]) != 0
    assert "shape" in capsys.readouterr().err


def _lenet300_shaped_model() -> object:
    """A random 784-300-100-10 sparse integer network (LeNet-300-100's shape; untrained)."""
    from mcu_dc.core.ir import FC, IntegerModel, Requant
    from mcu_dc.core.model_file import CompressedModel

    rng = np.random.default_rng(0)

    def fc(name: str, shape: tuple[int, int, int], out: int, density: float) -> FC:
        a = rng.integers(0, 32, size=(out, int(np.prod(shape)))).astype(np.int16)
        a[rng.random(a.shape) > density] = -1
        return FC(
            name,
            shape,
            out,
            rng.integers(-100, 100, size=32).astype(np.int8),
            a,
            rng.integers(-1000, 1000, size=out).astype(np.int32),
            Requant.from_real(0.002),
            -128,
            -128,
        )

    layers = [
        fc("fc1", (1, 28, 28), 300, 0.08),
        fc("fc2", (300, 1, 1), 100, 0.09),
        fc("fc3", (100, 1, 1), 10, 0.26),
    ]
    return CompressedModel(IntegerModel(layers, (1, 28, 28), 1 / 255, 0.1, -128, name="lenet300"))


def test_demo_with_a_cached_model(tmp_path: Path, capsys) -> None:
    # The demo's build + verify + summary path, with a model already in its cache (no training).
    from mcu_dc.cli import main

    work = tmp_path / "work"
    _lenet300_shaped_model().save(work / "lenet300-mnist.mcudc")
    rc = main(["demo", "--work-dir", str(work), "--limit", "25", "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["board"] == "qemu-mps2-an386"
    assert out["n"] == 25 and out["bit_exact"] == 25 and out["mismatches"] == 0
    assert out["flash_used"] <= out["flash_total"] and out["ram_used"] <= out["ram_total"]
    assert out["instructions_per_inference"] > 10_000
    assert out["compressed_bytes"] < 40_000
