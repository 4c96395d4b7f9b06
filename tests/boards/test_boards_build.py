"""Generated MCU projects: every board builds a small model with the system toolchain, the
weights survive --gc-sections, platformio.ini validates with PlatformIO, and `mcu-dc flash`
fails clearly without a reachable PlatformIO registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mcu_dc.cli import main
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.random_models import random_model
from mcu_dc.deploy import memfit
from mcu_dc.deploy.armbuild import build_project
from mcu_dc.deploy.boards import list_boards
from mcu_dc.deploy.mcuproject import PROJECT_FILE, board_macro, write_mcu_project
from mcu_dc.deploy.platformio import registry_reachable, validate_project
from mcu_dc.errors import BuildError, ConfigError

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
BOARDS = [b.id for b in list_boards()]


@pytest.fixture(scope="module")
def small_model() -> CompressedModel:
    return CompressedModel(random_model(3))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, small_model: CompressedModel) -> Path:
    return write_mcu_project(
        small_model, "qemu-mps2-an386", tmp_path_factory.mktemp("p") / "proj", name="tiny"
    )


def test_project_layout(project: Path) -> None:
    info = json.loads((project / PROJECT_FILE).read_text())
    assert info == {"board": "qemu-mps2-an386", "name": "tiny", "kind": "mcu"}
    for rel in (
        "platformio.ini",
        "src/main.c",
        "src/tiny_model.c",
        "src/tiny_model.h",
        "src/mcu_dc_models.h",
        "lib/mcu_dc/library.json",
        "lib/mcu_dc/src/mcu_dc.h",
        "include/mcu_dc_bsp.h",
        "include/mcu_dc_board.h",
        "src/bsp/cortexm/mcu_dc_startup.c",
        "linker/qemu-microbit.ld",
        "boards/qemu-mps2-an386.json",
    ):
        assert (project / rel).is_file(), rel
    lib = json.loads((project / "lib/mcu_dc/library.json").read_text())
    assert lib["name"] == "mcu_dc"
    ld = (project / "linker/qemu-microbit.ld").read_text()
    assert "ORIGIN = 0x00000000, LENGTH = 262144" in ld and "ORIGIN = 0x20000000, LENGTH = 16384" in ld
    assert "_mcu_dc_stack_size = 1792;" in ld


def test_platformio_ini_validates_with_platformio(project: Path) -> None:
    pytest.importorskip("platformio")
    envs = validate_project(project)
    assert set(envs) == set(BOARDS)
    from platformio.project.config import ProjectConfig

    cfg = ProjectConfig(str(project / "platformio.ini"))
    assert cfg.get("platformio", "default_envs") == ["qemu-mps2-an386"]
    assert cfg.get("env:nucleo_f401re", "board") == "nucleo_f401re"
    assert cfg.get("env:nucleo_f401re", "platform") == "ststm32"
    flags = cfg.get("env:qemu-microbit", "build_flags")
    assert f"-D {board_macro('qemu-microbit')}" in flags and "-mcpu=cortex-m0" in flags
    assert cfg.get("env:pico", "board_build.ldscript") == "linker/pico.ld"
    link = cfg.get("env:qemu-mps2-an386", "custom_mcu_dc_linkflags")
    assert "-mfloat-abi=hard" in link and "--specs=nano.specs" in link and "-nostartfiles" in link
    assert cfg.get("env:qemu-mps2-an386", "extra_scripts") == ["mcu_dc_link.py"]
    assert (project / "mcu_dc_link.py").is_file()


def test_broken_platformio_ini_is_reported(tmp_path: Path, project: Path) -> None:
    pytest.importorskip("platformio")
    bad = tmp_path / "bad"
    shutil.copytree(project, bad)
    ini = bad / "platformio.ini"
    ini.write_text(ini.read_text().replace("default_envs = qemu-mps2-an386", "default_envs = no-such-env"))
    with pytest.raises(ConfigError, match="not a valid PlatformIO project"):
        validate_project(bad)


@needs_arm
@pytest.mark.arm
def test_every_board_builds_and_keeps_the_weights(project: Path, small_model: CompressedModel) -> None:
    for board in BOARDS:
        fw = build_project(project, board=board, werror=True)
        assert fw.elf.is_file() and fw.fit.fits, board
        # the blob is linked whole: the map names it and the model part is exactly its size
        kept = [s for s in memfit.parse_map(fw.map_file.read_text()) if s.name == ".rodata.tiny_blob"]
        assert [s.size for s in kept] == [len(small_model.blob)], board  # linked, not discarded
        assert fw.fit.parts["model"]["flash"] == len(small_model.blob), board
        assert sum(fw.fit.model_breakdown.values()) == len(small_model.blob), board
        assert fw.fit.parts["runtime"]["flash"] > 1000, board
        assert fw.fit.parts["stack"]["ram"] == fw.board.stack_size, board
        assert sum(p["flash"] for p in fw.fit.parts.values()) == fw.fit.flash_used
        assert sum(p["ram"] for p in fw.fit.parts.values()) == fw.fit.ram_used
        stack = fw.fit.stack
        assert stack is not None and stack.exact, board
        assert stack.path[0].startswith("mcu_dc_reset_handler") and stack.worst_case <= fw.board.stack_size
        sizes = memfit.elf_sections(fw.elf)
        assert sizes[".isr_vector"][1] == fw.board.flash_origin, board  # vectors at the flash origin


@needs_arm
@pytest.mark.arm
def test_cli_build_json_keys(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `mcu-dc build` belongs to helper "runtime"; the fit JSON is ours.
    fw = build_project(project, board="qemu-microbit")
    data = fw.fit.to_json()
    for key in ("fits", "flash_used", "flash_total", "ram_used", "ram_total", "sections"):
        assert key in data
    assert data["flash_total"] == 262144 and data["ram_total"] == 16384
    assert set(data["sections"]) == set(memfit.PARTS)


def test_generate_refuses_a_foreign_directory(tmp_path: Path, small_model: CompressedModel) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not an mcu_dc project"):
        write_mcu_project(small_model, "qemu-microbit", tmp_path, name="tiny")
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_regenerating_replaces_the_project(tmp_path: Path, small_model: CompressedModel) -> None:
    out = tmp_path / "p"
    write_mcu_project(small_model, "qemu-microbit", out, name="first")
    write_mcu_project(small_model, "qemu-lm3s6965evb", out, name="second")
    assert not (out / "src" / "first_model.c").exists()
    assert json.loads((out / PROJECT_FILE).read_text())["board"] == "qemu-lm3s6965evb"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_flash_without_registry_fails_clearly(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("platformio")
    if registry_reachable(timeout=2):
        pytest.skip("PlatformIO's registry is reachable here; this test covers the offline case")
    code = main(["flash", str(project), "--board", "nucleo_f401re"])
    err = capsys.readouterr().err
    assert code != 0
    assert "registry" in err and "ststm32" in err and "not installed" in err


def test_flash_refuses_an_emulator_only_board(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flash", str(project), "--board", "qemu-mps2-an386"]) != 0
    assert "exists only as an emulator" in capsys.readouterr().err


def test_flash_without_platformio_fails_clearly(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcu_dc.deploy import platformio as pio

    monkeypatch.setattr(pio.shutil, "which", lambda _name: None)
    monkeypatch.setitem(__import__("sys").modules, "platformio", None)
    with pytest.raises(BuildError, match="PlatformIO is not installed"):
        pio.pio_command()


def test_flash_unknown_env(project: Path) -> None:
    pytest.importorskip("platformio")
    from mcu_dc.deploy.platformio import upload

    with pytest.raises(ConfigError, match="no env 'bogus'"):
        upload(project, "bogus", platform="ststm32")
