"""The RP2040 boot stage 2: the committed mcu_dc_boot2.c is what boot2.py generates from the
assembly, its CRC is what the bootrom checks, and the linked pico image has the 256 boot2
bytes at 0x10000000 and the vector table at 0x10000100."""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from boards_apps import HELLO, build_app

from mcu_dc.deploy import boot2
from mcu_dc.deploy.armbuild import build_firmware
from mcu_dc.deploy.boards import load_board
from mcu_dc.errors import BuildError
from mcu_dc.resources import resource_dir

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")


def committed_image() -> bytes:
    text = boot2.output_path().read_text()
    body = text[text.index("= {") : text.index("};")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9A-F]{2})", body))


def _bitrev(x: int, width: int) -> int:
    return int(f"{x:0{width}b}"[::-1], 2)


def crc32_via_zlib(data: bytes) -> int:
    """Independent CRC-32/MPEG-2: zlib's reflected CRC-32 on bit-reversed bytes, reversed back."""
    reflected = bytes(_bitrev(b, 8) for b in data)
    return _bitrev(zlib.crc32(reflected) ^ 0xFFFFFFFF, 32)


def test_crc_matches_an_independent_implementation() -> None:
    assert crc32_via_zlib(b"123456789") == 0x0376E6E7  # CRC-32/MPEG-2 check value
    assert boot2.crc32_mpeg2(b"123456789") == 0x0376E6E7
    img = committed_image()
    assert len(img) == 256
    assert int.from_bytes(img[252:], "little") == crc32_via_zlib(img[:252])
    broken = bytes([img[0] ^ 1]) + img[1:252]
    assert crc32_via_zlib(broken) != int.from_bytes(img[252:], "little")  # one flipped bit is caught


def test_committed_boot2_enters_the_image_at_0x10000100() -> None:
    img = committed_image()
    words = {int.from_bytes(img[i : i + 4], "little") for i in range(0, 252, 4)}
    board = load_board("pico")
    assert board.flash_origin in words  # literal: the vector table address it jumps to
    assert 0xE000ED08 in words and 0x18000000 in words  # VTOR, XIP SSI
    assert board.boot2_origin == 0x10000000 and board.boot2_size == 256


def test_image_refuses_oversized_code() -> None:
    with pytest.raises(BuildError, match="at most 252"):
        boot2.image(bytes(253))
    assert len(boot2.image(b"\x00\xbf")) == 256


@needs_arm
@pytest.mark.arm
def test_regenerating_gives_the_committed_file() -> None:
    assert boot2.generate() == boot2.output_path().read_text(), (
        "firmware/bsp/rp2040/mcu_dc_boot2.c is stale: run `python3 mcu_dc/deploy/boot2.py`"
    )


def _nm(elf: Path) -> dict[str, int]:
    out = subprocess.run(
        ["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return {
        parts[2]: int(parts[0], 16)
        for parts in (line.split() for line in out.splitlines())
        if len(parts) == 3
    }


@needs_arm
@pytest.mark.arm
def test_linked_pico_image_has_boot2_then_vectors(tmp_path: Path) -> None:
    board = load_board("pico")
    fw = build_app(board, HELLO, tmp_path, name="hello")
    assert fw.fit.fits
    syms = _nm(fw.elf)
    assert syms["mcu_dc_boot2"] == 0x10000000
    assert syms["mcu_dc_vectors"] == 0x10000100
    raw = tmp_path / "boot2.bin"
    subprocess.run(
        ["arm-none-eabi-objcopy", "-O", "binary", "-j", ".boot2", str(fw.elf), str(raw)],
        check=True,
        timeout=60,
    )
    assert raw.read_bytes() == committed_image()
    vec = tmp_path / "vec.bin"
    subprocess.run(
        ["arm-none-eabi-objcopy", "-O", "binary", "-j", ".isr_vector", str(fw.elf), str(vec)],
        check=True,
        timeout=60,
    )
    sp, reset = (
        int.from_bytes(vec.read_bytes()[0:4], "little"),
        int.from_bytes(vec.read_bytes()[4:8], "little"),
    )
    assert reset == syms["mcu_dc_reset_handler"] | 1  # Thumb bit: what boot2 branches to
    assert sp == syms["_estack"]
    # readelf agrees: .boot2 is 256 bytes at 0x10000000, loaded (PROGBITS, in a LOAD segment)
    sections = subprocess.run(
        ["arm-none-eabi-readelf", "-S", "-W", str(fw.elf)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    line = next(li for li in sections.splitlines() if " .boot2 " in li)
    assert "PROGBITS" in line and "10000000" in line and " 000100 " in line


@needs_arm
@pytest.mark.arm
def test_pico_link_without_boot2_fails_clearly(tmp_path: Path) -> None:
    board = load_board("pico")
    bsp = resource_dir("firmware") / "bsp"
    sources = [HELLO, bsp / "cortexm" / "mcu_dc_startup.c", bsp / "rp2040" / "mcu_dc_bsp_rp2040.c"]
    with pytest.raises(BuildError, match="boot stage 2"):
        build_firmware(
            sources,
            [bsp, bsp / "cortexm"],
            board,
            tmp_path,
            defines=board.bsp_defines(),
            werror=True,
            roots=[HELLO.parent, bsp],
            name="noboot2",
        )
