"""Write a microcontroller project for a compressed model.

``write_mcu_project(compressed, board, out_dir, name=None) -> Path`` writes::

    out_dir/
      mcu_dc_project.json          {"board", "name", "kind": "mcu"}
      README.md                    how to build, flash and verify it
      mcu_dc_model_layout.json     the model blob's bytes by kind (codebooks, biases, streams)
      platformio.ini               one [env:<board id>] per board in boards/ (default: `board`)
      mcu_dc_link.py               PlatformIO extra script: the linker-only flags of each env
      boards/<id>.json             PlatformIO manifests for boards PlatformIO lacks (QEMU ones)
      linker/<id>.ld               per board: its real flash and RAM, a stack, heap 0
      include/                     mcu_dc_bsp.h, the Cortex-M BSP headers, mcu_dc_board.h
      src/                         the firmware app (firmware/app/) and protocol (firmware/protocol/),
                                   the generated N_model.{c,h} + mcu_dc_models.h (mcu_dc.deploy.codegen)
      src/bsp/<family>/            startup (cortexm) and each BSP family; an env builds its own
      lib/mcu_dc/                  the runtime as a PlatformIO library (library.json + src/)

Both builds use the same files: PlatformIO (``pio run -e <board>``, bare metal: no
framework, the mcu_dc startup and linker script) and ``mcu-dc build DIR``
(:mod:`mcu_dc.deploy.armbuild`, the system arm-none-eabi-gcc). A board is selected by
``-DMCU_DC_BOARD_<ID>``, which picks its block in ``include/mcu_dc_board.h``.

The project is written into a temporary directory next to ``out_dir`` and renamed into
place, so a failed write leaves nothing half-written; an existing ``out_dir`` is replaced
only if it is an mcu_dc project (it has ``mcu_dc_project.json``) or empty.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mcu_dc.deploy.boards import Board, list_boards, load_board
from mcu_dc.errors import ConfigError
from mcu_dc.resources import resource_dir

PROJECT_FILE = "mcu_dc_project.json"
MODEL_LAYOUT_FILE = "mcu_dc_model_layout.json"  # model bytes by kind, for the memory-fit table
COMMON_CFLAGS = ("-std=c99", "-Os", "-ffunction-sections", "-fdata-sections")
COMMON_LDFLAGS = (
    "-nostartfiles",
    "--specs=nano.specs",
    "--specs=nosys.specs",
    "-Wl,--gc-sections",
    "-Wl,--print-memory-usage",
)
BSP_HEADERS = ("mcu_dc_bsp_config.h", "mcu_dc_semihost.h", "mcu_dc_systick.h", "mcu_dc_dwt.h")


def board_macro(board_id: str) -> str:
    """``qemu-mps2-an386`` → ``MCU_DC_BOARD_QEMU_MPS2_AN386``."""
    return "MCU_DC_BOARD_" + re.sub(r"[^0-9A-Za-z]", "_", board_id).upper()


def _env():  # type: ignore[no-untyped-def]
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "project")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_linker_script(board: Board, *, flash_size: int | None = None, ram_size: int | None = None) -> str:
    """The linker script for ``board``; sizes may be overridden (to measure an overflow)."""
    return (
        _env()
        .get_template("linker.ld.j2")
        .render(
            board=board,
            flash_origin=board.flash_origin,
            flash_size=board.flash_size if flash_size is None else flash_size,
            ram_origin=board.ram_origin,
            ram_size=board.ram_size if ram_size is None else ram_size,
            stack_size=board.stack_size,
        )
    )


def render_board_header(boards: Iterable[Board]) -> str:
    blocks = [
        {"macro": board_macro(b.id), "id": b.id, "defines": sorted(b.bsp_defines().items())} for b in boards
    ]
    return _env().get_template("mcu_dc_board.h.j2").render(boards=blocks)


def _pio_flags(board: Board) -> list[str]:
    """Compiler flags, plus the -Wl,... flags PlatformIO routes to the linker itself."""
    wl = [f for f in COMMON_LDFLAGS if f.startswith("-Wl,")]
    return [f"-D {board_macro(board.id)}", *COMMON_CFLAGS, *board.cflags, *wl]


def _pio_linkflags(board: Board) -> list[str]:
    """Linker flags PlatformIO would not pass from build_flags (see mcu_dc_link.py)."""
    return [*board.cflags, *(f for f in COMMON_LDFLAGS if not f.startswith("-Wl,"))]


def render_platformio_ini(boards: list[Board], default: Board, name: str) -> str:
    envs = []
    for b in boards:
        envs.append(
            {
                "id": b.id,
                "name": b.name,
                "platform": b.pio_platform,
                "board": b.pio_board or b.id,
                "custom_board": not b.pio_board,
                "framework": b.pio_framework,
                "flags": _pio_flags(b),
                "linkflags": _pio_linkflags(b),
                "src_filter": f"+<*> -<bsp/> +<bsp/cortexm/> +<bsp/{b.bsp}/>",
                "flash_size": b.flash_size,
                "ram_size": b.ram_size,
                "emulated": b.emulated,
            }
        )
    return _env().get_template("platformio.ini.j2").render(envs=envs, default=default.id, name=name)


def custom_board_manifest(board: Board) -> dict[str, Any]:
    """A PlatformIO board manifest (``boards/<id>.json``) for a board PlatformIO lacks."""
    return {
        "build": {
            "cpu": board.core,
            "f_cpu": f"{board.clock_hz}L",
            "mcu": board.id,
        },
        "frameworks": [],
        "name": board.name,
        "upload": {"maximum_ram_size": board.ram_size, "maximum_size": board.flash_size, "protocols": []},
        "url": "https://www.qemu.org/docs/master/system/target-arm.html",
        "vendor": board.vendor,
        "debug": {},
    }


def library_json(name: str, description: str) -> str:
    return (
        json.dumps(
            {
                "name": name,
                "version": _version(),
                "description": description,
                "keywords": ["deep-compression", "tinyml", "huffman", "sparse"],
                "license": "Apache-2.0",
                "frameworks": "*",
                "platforms": "*",
                "build": {"flags": ["-std=c99"]},
            },
            indent=2,
        )
        + "\n"
    )


def _version() -> str:
    try:
        from mcu_dc import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "0.0.0"


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")


def _app_files(app_dir: Path | None) -> list[Path]:
    fw = resource_dir("firmware")
    app = Path(app_dir) if app_dir is not None else fw / "app"
    files = sorted(p for p in app.glob("*") if p.suffix in (".c", ".h"))
    if not any(p.suffix == ".c" for p in files):
        raise ConfigError(f"no firmware app sources in {app}: the project needs a main (firmware/app/main.c)")
    if app_dir is None:
        files += sorted(p for p in (fw / "protocol").glob("*") if p.suffix in (".c", ".h"))
    return files


def project_board(project_dir: Path) -> str:
    """The board id a generated project was written for (from mcu_dc_project.json)."""
    info = read_project_info(project_dir)
    return str(info["board"])


def read_project_info(project_dir: Path) -> dict[str, Any]:
    path = Path(project_dir) / PROJECT_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{project_dir} is not an mcu_dc project (no {PROJECT_FILE}); generate one with "
            "`mcu-dc generate MODEL --board B --out DIR`"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}; regenerate the project") from exc
    if not isinstance(info, dict) or info.get("kind") != "mcu" or "board" not in info:
        raise ConfigError(f"{path} does not describe an MCU project (kind 'mcu' with a board)")
    return info


def write_mcu_project(
    compressed_model: Any,
    board: str | Board,
    out_dir: str | os.PathLike[str],
    name: str | None = None,
    *,
    app_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the project (see the module docstring); returns ``out_dir``.

    ``compressed_model`` is a ``CompressedModel`` (anything with ``.blob``); ``name`` the C
    prefix of its symbols (default: the model's name). ``app_dir`` replaces firmware/app/ and
    firmware/protocol/ by the ``.c``/``.h`` files of another directory (tests use a tiny app).
    """
    from mcu_dc.deploy import codegen

    target = board if isinstance(board, Board) else load_board(board)
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / PROJECT_FILE).is_file())):
        raise ConfigError(
            f"{out} exists and is not an mcu_dc project; choose a new --out directory or empty this one"
        )
    boards = list_boards()
    if target.id not in {b.id for b in boards}:
        boards.append(target)  # a board file outside boards/ (tests)
    model_name = name or getattr(compressed_model, "name", None) or "model"

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fw = resource_dir("firmware")
        for f in _app_files(Path(app_dir) if app_dir is not None else None):
            _copy(f, tmp / "src" / f.name)
        codegen.write_model_sources([compressed_model], tmp / "src", [model_name])
        codegen.copy_runtime(tmp / "lib" / "mcu_dc" / "src", [compressed_model])
        _write(
            tmp / "lib" / "mcu_dc" / "library.json",
            library_json("mcu_dc", "mcu_dc runtime: inference on Deep-Compression (Huffman, sparse) weights"),
        )
        _copy(fw / "bsp" / "mcu_dc_bsp.h", tmp / "include" / "mcu_dc_bsp.h")
        for h in BSP_HEADERS:
            _copy(fw / "bsp" / "cortexm" / h, tmp / "include" / h)
        for family in sorted({b.bsp for b in boards} | {"cortexm"}):
            for c in sorted((fw / "bsp" / family).glob("*.c")):
                _copy(c, tmp / "src" / "bsp" / family / c.name)
        _write(tmp / "include" / "mcu_dc_board.h", render_board_header(boards))
        for b in boards:
            _write(tmp / "linker" / f"{b.id}.ld", render_linker_script(b))
            if not b.pio_board:
                _write(tmp / "boards" / f"{b.id}.json", json.dumps(custom_board_manifest(b), indent=2) + "\n")
        _write(tmp / "platformio.ini", render_platformio_ini(boards, target, str(model_name)))
        _write(tmp / ".gitignore", "build/\n.pio/\n")
        _write(tmp / "mcu_dc_link.py", _env().get_template("mcu_dc_link.py.j2").render())
        _write(tmp / "README.md", _env().get_template("README.md.j2").render(board=target, name=model_name))
        from mcu_dc.deploy.memfit import model_breakdown

        names = list(getattr(compressed_model, "meta", {}).get("layer_names") or []) or None
        layout = {
            "blob_bytes": len(compressed_model.blob),
            "parts": model_breakdown(compressed_model.blob, names),
        }
        _write(tmp / MODEL_LAYOUT_FILE, json.dumps(layout, indent=2) + "\n")
        info = {"board": target.id, "name": str(model_name), "kind": "mcu"}
        _write(tmp / PROJECT_FILE, json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
