"""The stm32f4 BSP (NUCLEO-F401RE, USART2 = ST-LINK virtual COM port) under QEMU's
netduinoplus2 machine (STM32F405: the same USART IP at the same address; QEMU's serial
port 1 is USART2). The firmware is the very ELF built for nucleo_f401re's real memory map."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import pytest
import serial
from boards_apps import HELLO, build_app

from mcu_dc.deploy.boards import QemuInfo, load_board
from mcu_dc.device.qemu import QemuBoard

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.arm,
    pytest.mark.skipif(
        shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
        reason="needs qemu-system-arm and arm-none-eabi-gcc",
    ),
]


def test_nucleo_f401re_firmware_talks_on_usart2(tmp_path: Path) -> None:
    board = load_board("nucleo_f401re")
    assert board.bsp == "stm32f4"
    fw = build_app(board, HELLO, tmp_path, name="hello")
    assert fw.fit.fits
    # STM32F405 in QEMU: flash 1 MB at 0x08000000 (aliased at 0), SRAM 128 KB at 0x20000000
    emulated = dataclasses.replace(
        board,
        qemu=QemuInfo(
            "netduinoplus2", 1, "stm32f2xx-usart", 0x40004400, "none", 0, 16_000_000, 1 << 20, 128 << 10
        ),
    )
    with QemuBoard(emulated, fw.elf) as q:
        link = serial.serial_for_url(q.url, timeout=0.2)
        try:
            buf = b""
            deadline = time.monotonic() + 30
            while b"ready\n" not in buf and time.monotonic() < deadline:
                buf += link.read(max(1, link.in_waiting))
            assert buf.startswith(b"data ok\nhello nucleo_f401re\n"), buf
            link.write(b"abq")
            tail = b""
            while b"bye\n" not in tail and time.monotonic() < deadline:
                tail += link.read(max(1, link.in_waiting))
            assert tail == b"abq\nbye\n"
        finally:
            link.close()
        # on hardware exit spins forever (no semihosting): QEMU keeps running until stopped
        assert q.running
    assert not q.running
