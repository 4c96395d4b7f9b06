"""`generate` refuses a board whose BSP has no serial driver (bsp "generic"): both apps speak only
through the UART, so the firmware would run and say nothing. --no-serial-ok turns it into a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mcu_dc.cli import main
from mcu_dc.deploy.boards import load_board
from mcu_dc.deploy.generate import generate
from mcu_dc.errors import ConfigError


def _generic_board(tmp_path: Path) -> Path:
    src = load_board("nucleo_f401re").path.read_text()
    assert 'bsp = "stm32f4"' in src
    path = tmp_path / "my_board.toml"
    path.write_text(
        src.replace('bsp = "stm32f4"', 'bsp = "generic"', 1).replace(
            'id = "nucleo_f401re"', 'id = "my_board"', 1
        )
    )
    return path


def test_generate_refuses_a_board_without_serial_driver(tmp_path: Path, digits_cm: Any) -> None:
    board = _generic_board(tmp_path)
    out = tmp_path / "proj"
    with pytest.raises(ConfigError) as exc:
        generate(digits_cm, board=str(board), out_dir=out)
    msg = str(exc.value)
    assert "my_board" in msg and "generic BSP" in msg and "--no-serial-ok" in msg
    assert not out.exists()  # nothing half-written
    assert not list(tmp_path.glob(".proj.*"))


def test_no_serial_ok_warns_and_writes(
    tmp_path: Path, digits_cm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    board = _generic_board(tmp_path)
    model = tmp_path / "m.mcudc"
    digits_cm.save(model)
    out = tmp_path / "proj"
    assert main(["generate", str(model), "--board", str(board), "--out", str(out)]) != 0
    assert "generic BSP" in capsys.readouterr().err and not out.exists()
    assert main(["generate", str(model), "--board", str(board), "--out", str(out), "--no-serial-ok"]) == 0
    assert "WARNING" in capsys.readouterr().err
    assert (out / "platformio.ini").is_file()


def test_every_shipped_real_board_has_a_serial_driver() -> None:
    from mcu_dc.deploy.boards import list_boards

    missing = [b.id for b in list_boards() if not b.serial_driver]
    assert missing == []
