"""Board files: every file loads with sane figures; malformed files get clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mcu_dc.cli import main
from mcu_dc.deploy.boards import KNOWN_CORES, board_ids, list_boards, load_board
from mcu_dc.errors import BoardError

EXPECTED = {
    # id: (core, flash bytes, RAM bytes)
    "qemu-mps2-an385": ("cortex-m3", 512 * 1024, 64 * 1024),
    "qemu-mps2-an386": ("cortex-m4", 512 * 1024, 96 * 1024),
    "qemu-mps2-an500": ("cortex-m7", 1024 * 1024, 320 * 1024),
    "qemu-lm3s6965evb": ("cortex-m3", 256 * 1024, 64 * 1024),
    "qemu-microbit": ("cortex-m0", 256 * 1024, 16 * 1024),
    "nucleo_f401re": ("cortex-m4", 512 * 1024, 96 * 1024),
    "nucleo_l4r5zi": ("cortex-m4", 2048 * 1024, 640 * 1024),
    "nucleo_f746zg": ("cortex-m7", 1024 * 1024, 320 * 1024),
    "nucleo_h743zi": ("cortex-m7", 2048 * 1024, 512 * 1024),
    "nano33ble": ("cortex-m4", 960 * 1024, 256 * 1024),
    "pico": ("cortex-m0plus", 2048 * 1024 - 256, 264 * 1024),
}


def test_every_expected_board_is_there_and_loads() -> None:
    assert set(EXPECTED) <= set(board_ids())
    boards = {b.id: b for b in list_boards()}
    for board_id, (core, flash, ram) in EXPECTED.items():
        b = boards[board_id]
        assert (b.core, b.flash_size, b.ram_size) == (core, flash, ram), board_id
        assert b.source and b.clock_hz > 0
        assert f"-mcpu={core}" in b.cflags
        assert b.emulated == board_id.startswith("qemu-")
        assert (b.qemu is not None) == b.emulated
        assert b.emulated or b.pio_board == board_id  # real boards: PlatformIO board id == our id
        assert b.counter_unit == ("instructions" if b.emulated else "cycles")


def test_board_files_cite_their_source() -> None:
    for b in list_boards():
        text = b.path.read_text()
        assert re.search(
            r"(datasheet|Datasheet|Data Sheet|Reference Manual|Product Specification|Application Note|RM\d+)",
            text,
        ), b.id


def test_mps2_budgets_are_explicit_and_below_what_qemu_maps() -> None:
    for b in list_boards():
        if b.id.startswith("qemu-mps2"):
            assert b.qemu is not None
            assert b.flash_size < b.qemu.mapped_flash and b.ram_size < b.qemu.mapped_ram
            assert "budget" in b.memory_note


def test_bsp_defines_carry_the_counter_scale() -> None:
    d = load_board("qemu-microbit").bsp_defines()
    assert d["MCU_DC_BSP_COUNTER_MUL"] == "125u" and d["MCU_DC_BSP_COUNTER_DIV"] == "2u"
    assert d["MCU_DC_BSP_BOARD"] == '"qemu-microbit"'
    assert load_board("qemu-mps2-an386").bsp_defines()["MCU_DC_BSP_UART_BASE"] == "0x40004000u"


def test_unknown_board_names_the_known_ones() -> None:
    with pytest.raises(BoardError, match=r"unknown board 'nope'.*qemu-microbit"):
        load_board("nope")


def _variant(tmp_path: Path, name: str, edit) -> Path:  # type: ignore[no-untyped-def]
    src = load_board("qemu-microbit").path.read_text()
    text = edit(src)
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace('id = "qemu-microbit"', f'id = "{name}"'))
    return path


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda s: s.replace("ram_size = 16_384\n", ""), "memory.ram_size", "missing"),
        (lambda s: s.replace("flash_size = 262_144\n", ""), "memory.flash_size", "missing"),
        (lambda s: s.replace('core = "cortex-m0"', 'core = "cortex-a53"'), "core", "unknown core"),
        (
            lambda s: s.replace("ram_size = 16_384", "ram_size = 0x30000000"),
            "memory.ram_size",
            "larger than its address range",
        ),
        (
            lambda s: s.replace("ram_size = 16_384", "ram_size = 32_768"),
            "memory.ram_size",
            "larger than the 16384 B QEMU maps",
        ),
        (
            lambda s: s.replace("ram_origin = 0x20000000", "ram_origin = 0x40000000"),
            "memory.ram_origin",
            "not inside the SRAM",
        ),
        (lambda s: s.replace("flash_size = 262_144", "flash_size = -4"), "memory.flash_size", "positive"),
        (lambda s: s.replace("stack_size = 1792", "stack_size = 1796"), "memory.stack_size", "multiple of 8"),
        (
            lambda s: s.replace('cflags = ["-mcpu=cortex-m0", "-mthumb"]', 'cflags = ["-mthumb"]'),
            "compiler.cflags",
            "-mcpu=cortex-m0",
        ),
        (lambda s: s.replace("clock_hz = 16_000_000", 'clock_hz = "fast"'), "clock_hz", "must be a int"),
        (lambda s: s.replace("[qemu]", "[qemux]"), "qemu.machine", "missing"),
        (lambda s: s + "\n[[broken", "", "not valid TOML"),
    ],
)
def test_malformed_board_file_names_file_and_field(tmp_path: Path, edit, field: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = _variant(tmp_path, "broken-board", edit)
    with pytest.raises(BoardError) as info:
        load_board(path)
    text = str(info.value)
    assert str(path) in text
    assert f"`{field}`" in text or not field
    assert message in text


def test_overlapping_flash_and_ram_is_refused(tmp_path: Path) -> None:
    src = load_board("nucleo_f401re").path.read_text()
    path = tmp_path / "nucleo_f401re.toml"
    path.write_text(src.replace("ram_origin = 0x20000000", "ram_origin = 0x08010000"))
    with pytest.raises(BoardError, match=r"`memory.ram_origin` makes RAM \[0x08010000, .*overlap flash"):
        load_board(path)
    # same region: flash and RAM both in the SRAM area and overlapping
    path.write_text(
        src.replace("flash_origin = 0x08000000", "flash_origin = 0x1FFF0000")
        .replace("flash_size = 524_288", "flash_size = 65_536")
        .replace("ram_origin = 0x20000000", "ram_origin = 0x20000000")
    )
    assert load_board(path).flash_end == 0x20000000  # touching, not overlapping: fine


def test_id_must_match_file_name(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text(load_board("pico").path.read_text())
    with pytest.raises(BoardError, match=r"`id`.*must equal the file name"):
        load_board(path)


def test_cli_boards_lists_flash_and_ram(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert "qemu-microbit" in out and "256 KB" in out and "16 KB" in out
    assert main(["boards", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_id = {r["id"]: r for r in rows}
    assert by_id["qemu-microbit"]["flash_size"] == 262144 and by_id["qemu-microbit"]["ram_size"] == 16384
    assert by_id["qemu-mps2-an386"]["qemu_machine"] == "mps2-an386"
    assert all(r["core"] in KNOWN_CORES for r in rows)
