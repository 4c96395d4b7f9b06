"""Write a microcontroller project for a compressed model.

``write_mcu_project(compressed, board, out_dir, name=None, app="verify", demo=None) -> Path``
writes::

    out_dir/
      mcu_dc_project.json          {"board", "name", "kind": "mcu"} (+ "app": "demo", "dataset", "samples")
      README.md                    how to build, flash and verify (or run) it
      mcu_dc_model_layout.json     the model blob's bytes by kind (codebooks, biases, streams)
      platformio.ini               one [env:<board id>] per board in boards/ (default: `board`)
      mcu_dc_link.py               PlatformIO extra script: the linker-only flags of each env
      boards/<id>.json             PlatformIO manifests for boards PlatformIO lacks (QEMU ones)
      linker/<id>.ld               per board: its real flash and RAM, a stack, heap 0
      include/                     mcu_dc_bsp.h, the Cortex-M BSP headers, mcu_dc_board.h
      src/                         the firmware app (firmware/app/) and protocol (firmware/protocol/),
                                   the generated N_model.{c,h} + mcu_dc_models.h (mcu_dc.deploy.codegen);
                                   app "demo": firmware/app_demo/ and mcu_dc_demo_data.h instead
                                   (the embedded test inputs, mcu_dc.deploy.demo_data)
      src/bsp/<family>/            startup (cortexm) and each BSP family; an env builds its own
      lib/mcu_dc/                  the runtime as a PlatformIO library (library.json + src/)

Two firmware apps: ``verify`` (default) is the binary protocol server that ``mcu-dc verify``
talks to; ``demo`` prints, in text, the model's answers on a few embedded test inputs next to
the simulator's and, on an emulated board, exits with 0 when all agree (``mcu-dc run DIR``).

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
APPS = ("verify", "demo")  # the firmware mains: protocol server (firmware/app/), text demo (app_demo/)
DEMO_HEADER = "mcu_dc_demo_data.h"
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
                "upload_protocol": b.pio_upload_protocol,
                "monitor_speed": b.monitor_speed,
                "serial": b.serial,
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
    """The board id a project with the protocol-server firmware was written for (``mcu-dc
    verify``); a demo project (``--app demo``) is refused with a clear message."""
    info = read_project_info(project_dir)
    require_app(project_dir, info, "verify")
    return str(info["board"])


def project_app(info: dict[str, Any]) -> str:
    """The firmware app of a project (``verify`` for projects written before apps existed)."""
    return str(info.get("app") or "verify")


def require_app(project_dir: Path, info: dict[str, Any], app: str) -> None:
    """Raise :class:`ConfigError` unless the project at ``project_dir`` holds firmware ``app``."""
    have = project_app(info)
    if have == app:
        return
    if app == "verify":
        raise ConfigError(
            f"{project_dir} holds the demo firmware (generated with --app demo), which prints its results "
            "as text and does not speak the binary protocol `mcu-dc verify` needs; run it with "
            f"`mcu-dc run {project_dir}` (emulated boards) or read it with `pio device monitor`, or "
            "generate a verify project (`mcu-dc generate MODEL --board B --out DIR`, the default --app "
            "verify) or pass the .mcudc file to `mcu-dc verify`."
        )
    raise ConfigError(
        f"{project_dir} holds the {have!r} firmware (the binary protocol server for `mcu-dc verify`), "
        "which prints nothing a person can read; `mcu-dc run` runs demo firmware: regenerate with "
        "`mcu-dc generate MODEL --board B --out DIR --app demo`, or check this one with "
        f"`mcu-dc verify {project_dir} --board B`."
    )


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
    if project_app(info) not in APPS:
        raise ConfigError(
            f"{path} names firmware app {info.get('app')!r}, which this mcu_dc does not know "
            f"(it knows {', '.join(APPS)}); regenerate the project or upgrade mcu_dc"
        )
    return info


def check_serial_driver(board: Board, app: str, allow_no_serial: bool) -> None:
    """Refuse a board whose BSP has no UART driver (bsp ``generic``): both apps talk only through
    the serial port, so such firmware would run and say nothing. ``allow_no_serial`` (the CLI's
    ``--no-serial-ok``, for a user who links a vendor UART driver over the BSP's weak functions)
    turns the refusal into a warning on stderr."""
    if board.serial_driver:
        return
    what = "`mcu-dc verify --port`" if app == "verify" else "the demo's text output"
    message = (
        f"board {board.id!r} ({board.path}) uses the generic BSP, whose UART functions drop every byte: "
        f"the firmware would run but {what} would never arrive. Give the board a BSP with a serial driver "
        f"(bsp = one of the families in firmware/bsp/, see docs/boards.md), or pass --no-serial-ok if "
        f"you link your own mcu_dc_bsp_getc/mcu_dc_bsp_write over the generic BSP's weak ones."
    )
    if not allow_no_serial:
        raise ConfigError(message)
    import sys

    print(f"WARNING: {message}", file=sys.stderr)


def write_mcu_project(
    compressed_model: Any,
    board: str | Board,
    out_dir: str | os.PathLike[str],
    name: str | None = None,
    *,
    app_dir: str | os.PathLike[str] | None = None,
    app: str = "verify",
    demo: Any = None,
    allow_no_serial: bool = False,
) -> Path:
    """Write the project (see the module docstring); returns ``out_dir``.

    ``compressed_model`` is a ``CompressedModel`` (anything with ``.blob``); ``name`` the C
    prefix of its symbols (default: the model's name). ``app_dir`` replaces firmware/app/ and
    firmware/protocol/ by the ``.c``/``.h`` files of another directory (tests use a tiny app).
    ``app="demo"`` writes the text demo (firmware/app_demo/) with ``demo``, a
    :class:`mcu_dc.deploy.demo_data.DemoData`, as ``src/mcu_dc_demo_data.h``.
    """
    from mcu_dc.deploy import codegen

    if app not in APPS:
        raise ConfigError(f"--app {app!r}: choose one of {', '.join(APPS)}")
    if app == "demo" and demo is None:
        raise ConfigError("the demo app needs its test inputs (mcu_dc.deploy.demo_data.demo_data(...))")
    if app == "demo" and app_dir is None:
        app_dir = resource_dir("firmware") / "app_demo"

    target = board if isinstance(board, Board) else load_board(board)
    check_serial_driver(target, app, allow_no_serial)
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
        if app == "demo":
            from mcu_dc.deploy.demo_data import header_context

            ctx = header_context(demo, boards, str(model_name))
            _write(tmp / "src" / DEMO_HEADER, _env().get_template(f"{DEMO_HEADER}.j2").render(**ctx))
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
        readme = _env().get_template("README.md.j2")
        _write(
            tmp / "README.md",
            readme.render(
                board=target,
                name=model_name,
                app=app,
                dataset=getattr(demo, "dataset", None),
                samples=len(demo) if demo is not None else 0,
            ),
        )
        from mcu_dc.deploy.memfit import gather_arena, model_breakdown

        names = list(getattr(compressed_model, "meta", {}).get("layer_names") or []) or None
        layout = {
            "blob_bytes": len(compressed_model.blob),
            "parts": model_breakdown(compressed_model.blob, names),
            "gather_arena": gather_arena(compressed_model.model),
        }
        _write(tmp / MODEL_LAYOUT_FILE, json.dumps(layout, indent=2) + "\n")
        info: dict[str, Any] = {"board": target.id, "name": str(model_name), "kind": "mcu"}
        if app != "verify":
            info.update(app=app, dataset=demo.dataset, samples=len(demo))
        _write(tmp / PROJECT_FILE, json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
