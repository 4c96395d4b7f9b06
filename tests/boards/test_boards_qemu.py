"""BSP smoke tests under QEMU: every emulated board boots, talks over its UART (through a
pyserial socket:// URL), counts instructions with the scale its board file states, and ends
with the semihosting exit code. QEMU always runs under a timeout and never outlives a test."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
import serial
from boards_apps import APPS, HELLO, build_app

from mcu_dc.deploy import memfit
from mcu_dc.deploy.boards import list_boards, load_board
from mcu_dc.device.qemu import QemuBoard, qemu_command, run_to_exit
from mcu_dc.errors import BoardError, DeviceError

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.arm,
    pytest.mark.skipif(
        shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
        reason="needs qemu-system-arm and arm-none-eabi-gcc",
    ),
]

EMULATED = [b.id for b in list_boards() if b.emulated]
SPIN = 500_000  # loop iterations, 2 instructions each


def build_hello(board_id: str, out: Path, spin: int = SPIN) -> Path:
    fw = build_app(load_board(board_id), HELLO, out, name="hello", defines={"HELLO_SPIN": f"{spin}u"})
    assert fw.fit.fits
    return fw.elf


@pytest.fixture(scope="module")
def hello_elfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hello")
    return {b: build_hello(b, root / b) for b in EMULATED}


def read_until(link: serial.SerialBase, marker: bytes, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    buf = b""
    while marker not in buf:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {marker!r} within {timeout} s; got {buf!r}")
        try:
            buf += link.read(max(1, link.in_waiting))
        except serial.SerialException:  # QEMU closed the socket: the firmware has exited
            break
    assert marker in buf, buf
    return buf


@pytest.mark.parametrize("board_id", EMULATED)
def test_hello_boots_echoes_counts_and_exits(board_id: str, hello_elfs: dict[str, Path]) -> None:
    board = load_board(board_id)
    with QemuBoard(board, hello_elfs[board_id]) as q:
        assert q.url.startswith("socket://127.0.0.1:")
        link = serial.serial_for_url(q.url, timeout=0.2)
        try:
            text = read_until(link, b"ready\n", timeout=30)
            link.write(b"xyzq")
            tail = read_until(link, b"bye\n", timeout=30)
        finally:
            link.close()
        code = q.wait(timeout=30)
    assert code == 42
    assert text.startswith(f"data ok\nhello {board_id}\n".encode())
    assert tail.startswith(b"xyzq")
    m = re.search(rb"spin (\d+) counter (\d+) unit (\d+)", text)
    assert m is not None, text
    counted, unit = int(m.group(2)), int(m.group(3))
    assert unit == 1  # MCU_DC_COUNTER_INSTRUCTIONS
    # 2 instructions per iteration; the counter's scale is the board file's mul/div, so the
    # reading is exact up to one timer tick plus the few instructions of the reads themselves.
    tick = -(-board.counter_mul // board.counter_div)
    assert abs(counted - 2 * SPIN) <= tick + 64, (counted, 2 * SPIN, tick)
    assert not q.running


def test_counter_is_deterministic(hello_elfs: dict[str, Path]) -> None:
    """-icount shift=0 makes the figure a property of the code, not of the host's speed."""
    readings = []
    for _ in range(2):
        code, out = run_to_exit(
            "qemu-mps2-an386",
            hello_elfs["qemu-mps2-an386"],
            timeout=30,
            send=b"",
            until=b"ready\n",
            then=b"q",
        )
        assert code == 42
        readings.append(re.search(rb"counter (\d+)", out).group(1))  # type: ignore[union-attr]
    assert readings[0] == readings[1]


def test_qemu_is_stopped_when_the_block_raises(hello_elfs: dict[str, Path]) -> None:
    q = QemuBoard("qemu-mps2-an386", hello_elfs["qemu-mps2-an386"])
    with pytest.raises(RuntimeError, match="boom"), q:
        assert q.running
        pid = q.pid
        raise RuntimeError("boom")
    assert not q.running
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_qemu_is_stopped_on_ctrl_c(hello_elfs: dict[str, Path]) -> None:
    q = QemuBoard("qemu-microbit", hello_elfs["qemu-microbit"])
    with pytest.raises(KeyboardInterrupt), q:
        raise KeyboardInterrupt
    assert not q.running


def test_wait_timeout_raises_and_still_stops(hello_elfs: dict[str, Path]) -> None:
    with QemuBoard("qemu-lm3s6965evb", hello_elfs["qemu-lm3s6965evb"]) as q:
        link = serial.serial_for_url(q.url, timeout=0.2)
        try:
            read_until(link, b"ready\n", timeout=30)
            with pytest.raises(DeviceError, match="did not exit"):
                q.wait(timeout=0.5)  # the firmware waits for 'q' forever
        finally:
            link.close()
    assert not q.running
    assert q.exit_code is None


def test_missing_firmware_and_real_board_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="does not exist"):
        QemuBoard("qemu-microbit", tmp_path / "nope.elf").start()
    (tmp_path / "junk.elf").write_bytes(b"not an elf")
    with pytest.raises(DeviceError, match="not an ELF"):
        QemuBoard("qemu-microbit", tmp_path / "junk.elf").start()
    with pytest.raises(BoardError, match="not emulated"):
        qemu_command(load_board("nucleo_f401re"), tmp_path / "x.elf")


def test_stack_overflow_faults_instead_of_corrupting(tmp_path: Path) -> None:
    board = load_board("qemu-mps2-an386")
    fw = build_app(board, APPS / "deep.c", tmp_path, name="deep")
    sizes = {s.name: s for s in memfit.parse_map(fw.map_file.read_text())}
    assert ".bss.sink" in sizes and sizes[".bss.sink"].address > board.ram_origin + board.stack_size - 1
    code, out = run_to_exit(board, fw.elf, timeout=30)
    assert out.startswith(b"go\n") and b"survived" not in out
    assert code != 0


def test_qemu_command_line() -> None:
    cmd = qemu_command(load_board("qemu-mps2-an386"), Path("fw.elf"))
    assert cmd[:3] == ["qemu-system-arm", "-M", "mps2-an386"]
    assert "shift=0,align=off,sleep=off" in cmd
    assert "enable=on,target=native" in cmd
    assert cmd[-1] == "tcp:127.0.0.1:0,server=on,wait=on,nodelay=on"
