"""Build firmware with the system ``arm-none-eabi-gcc`` and measure its memory fit.

* :func:`build_firmware` compiles C sources one object per file (so the map file names
  every part), links them with a linker script generated for the board's real flash and
  RAM (``templates/project/linker.ld.j2``: stack reserved, heap 0), with
  ``-Os -ffunction-sections -fdata-sections -Wl,--gc-sections -Wl,--print-memory-usage
  -Wl,-Map`` and ``--specs=nano.specs --specs=nosys.specs -nostartfiles`` (the startup is
  mcu_dc's, ``firmware/bsp/cortexm``), and the board's ``-mcpu``/``-mfpu``/``-mfloat-abi``.
  If the linker refuses because a region overflows, it links again against an oversized
  memory map (64 MB per region) to measure the firmware; the returned
  :class:`~mcu_dc.deploy.memfit.FitReport` then says ``fits == False`` with exact figures.
* :func:`build_project` builds a project written by
  :func:`mcu_dc.deploy.mcuproject.write_mcu_project` for its board (or another one) into
  ``DIR/build/<board>/firmware.elf`` and, with ``check_fit=True``, raises
  :class:`~mcu_dc.errors.FitError` (non-zero exit in the CLI) when it does not fit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mcu_dc.deploy import memfit
from mcu_dc.deploy.boards import Board, load_board
from mcu_dc.deploy.mcuproject import (
    COMMON_CFLAGS,
    COMMON_LDFLAGS,
    MODEL_LAYOUT_FILE,
    board_macro,
    read_project_info,
    render_linker_script,
)
from mcu_dc.errors import BuildError, ConfigError

MEASURE_REGION = 64 * 1024 * 1024
WARN_FLAGS = ("-Wall", "-Wextra")
STACK_FLAGS = ("-fstack-usage", "-fcallgraph-info=su")  # .su/.ci beside each object: worst-case stack
_OVERFLOW_RE = re.compile(r"region `(\w+)' overflowed by (\d+) bytes|will not fit in region")


@dataclass(frozen=True)
class Toolchain:
    gcc: str = "arm-none-eabi-gcc"
    size: str = "arm-none-eabi-size"

    def check(self) -> None:
        for tool in (self.gcc, self.size):
            if shutil.which(tool) is None:
                raise BuildError(
                    f"{tool} is not installed. Install the Arm GNU toolchain, e.g. on Debian/Ubuntu "
                    "`apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi`, "
                    "or build with PlatformIO (`pio run` in the project directory)."
                )


@dataclass(repr=False)
class FirmwareBuild:
    board: Board
    elf: Path
    map_file: Path
    linker_script: Path
    memory_usage: str  # the linker's --print-memory-usage text
    fit: memfit.FitReport
    objects: list[Path] = field(default_factory=list)

    def summary(self, as_json: bool = False) -> str:
        """What `mcu-dc build` prints: the ELF and the fit table, or the fit as JSON."""
        if as_json:
            return json.dumps({**self.fit.to_json(), "elf": str(self.elf)}, indent=2)
        return f"built {self.elf} for {self.board.id}\n{self.fit.table()}"

    def __str__(self) -> str:
        return self.summary()


def _run(
    cmd: Sequence[str], what: str, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, check=True, timeout=timeout, cwd=cwd)
    except subprocess.CalledProcessError as exc:
        raise BuildError(
            f"{what} failed (exit {exc.returncode}):\n{(exc.stderr or exc.stdout).strip()[-4000:]}\n"
            f"command: {' '.join(cmd)}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{what} took longer than {timeout:g} s; command: {' '.join(cmd)}") from exc


def _object_name(src: Path, roots: Sequence[Path]) -> Path:
    for root in roots:
        try:
            return src.resolve().relative_to(root.resolve()).with_suffix(".o")
        except ValueError:
            continue
    return Path("ext") / src.with_suffix(".o").name


def compile_objects(
    sources: Iterable[Path],
    include_dirs: Iterable[Path],
    board: Board,
    obj_dir: Path,
    *,
    defines: Mapping[str, str] | Iterable[str] = (),
    extra_cflags: Sequence[str] = (),
    werror: bool = False,
    roots: Sequence[Path] = (),
    toolchain: Toolchain | None = None,
    timeout: float = 120,
) -> list[Path]:
    """Compile each source to ``obj_dir/<path relative to a root>.o``; returns the objects."""
    tc = toolchain or Toolchain()
    if isinstance(defines, Mapping):
        dflags = [f"-D{k}={v}" for k, v in defines.items()]
    else:
        dflags = [f"-D{d}" for d in defines]
    flags = [
        *COMMON_CFLAGS,
        *board.cflags,
        *WARN_FLAGS,
        *STACK_FLAGS,
        *(["-Werror"] if werror else []),
        *dflags,
        *[f"-I{d}" for d in include_dirs],
        *extra_cflags,
    ]
    jobs: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for src in sources:
        obj = obj_dir / _object_name(Path(src), roots)
        if obj in seen:
            raise BuildError(f"two sources compile to the same object {obj}; rename {src}")
        seen.add(obj)
        obj.parent.mkdir(parents=True, exist_ok=True)
        jobs.append((Path(src), obj))
    if not jobs:
        raise BuildError("no C sources to compile")

    def one(job: tuple[Path, Path]) -> Path:
        src, obj = job
        _run([tc.gcc, *flags, "-c", str(src), "-o", str(obj)], f"compiling {src} for {board.id}", timeout)
        return obj

    workers = max(1, min(len(jobs), os.cpu_count() or 1, 4))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


def link(
    objects: Sequence[Path],
    board: Board,
    out_dir: Path,
    *,
    name: str = "firmware",
    measure: bool = False,
    toolchain: Toolchain | None = None,
    timeout: float = 120,
) -> tuple[subprocess.CompletedProcess[str], Path, Path, Path]:
    """Link once; returns (process, elf, map, script). Does not raise on a region overflow."""
    tc = toolchain or Toolchain()
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-measure" if measure else ""
    script = out_dir / f"{board.id}{suffix}.ld"
    size = MEASURE_REGION if measure else None
    script.write_text(render_linker_script(board, flash_size=size, ram_size=size), encoding="utf-8")
    elf = out_dir / f"{name}{suffix}.elf"
    map_file = out_dir / f"{name}{suffix}.map"
    cmd = [
        tc.gcc,
        *COMMON_CFLAGS,
        *board.cflags,
        *[str(o) for o in objects],
        "-T",
        str(script),
        f"-Wl,-Map={map_file}",
        *COMMON_LDFLAGS,
        "-o",
        str(elf),
        "-lgcc",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"linking {elf} took longer than {timeout:g} s") from exc
    return proc, elf, map_file, script


def link_and_measure(
    objects: Sequence[Path],
    board: Board,
    out_dir: Path,
    *,
    name: str = "firmware",
    toolchain: Toolchain | None = None,
    timeout: float = 120,
) -> FirmwareBuild:
    """Link against the board's real budget; on overflow measure with an oversized map."""
    tc = toolchain or Toolchain()
    proc, elf, map_file, script = link(objects, board, out_dir, name=name, toolchain=tc, timeout=timeout)
    text = proc.stdout + proc.stderr
    measured = False
    if proc.returncode != 0:
        if not _OVERFLOW_RE.search(text):
            raise BuildError(f"linking {elf} for {board.id} failed:\n{text.strip()[-4000:]}")
        measured = True
        elf.unlink(missing_ok=True)
        proc, elf, map_file, script = link(
            objects, board, out_dir, name=name, measure=True, toolchain=tc, timeout=timeout
        )
        text = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise BuildError(
                f"linking {elf} for {board.id} (measuring, 64 MB regions) failed:\n{text[-4000:]}"
            )
    report = memfit.analyze(
        board,
        elf,
        map_file,
        text,
        measured_oversize=measured,
        size_tool=tc.size,
        callgraphs=[Path(o).with_suffix(".ci") for o in objects],
    )
    return FirmwareBuild(board, elf, map_file, script, text, report, list(objects))


def build_firmware(
    sources: Iterable[Path],
    include_dirs: Iterable[Path],
    board: Board | str,
    out_dir: Path,
    *,
    defines: Mapping[str, str] | Iterable[str] = (),
    roots: Sequence[Path] = (),
    werror: bool = False,
    name: str = "firmware",
    timeout: float = 120,
) -> FirmwareBuild:
    """Compile and link ``sources`` for ``board``; the fit is in ``.fit`` (not checked)."""
    b = board if isinstance(board, Board) else load_board(board)
    tc = Toolchain()
    tc.check()
    out_dir = Path(out_dir)
    objs = compile_objects(
        sources,
        include_dirs,
        b,
        out_dir / "obj",
        defines=defines,
        werror=werror,
        roots=roots,
        toolchain=tc,
        timeout=timeout,
    )
    return link_and_measure(objs, b, out_dir, name=name, toolchain=tc, timeout=timeout)


def project_sources(project_dir: Path, board: Board) -> tuple[list[Path], list[Path]]:
    """(sources, include dirs) of a generated project for ``board``."""
    d = Path(project_dir)
    srcs = sorted((d / "src").glob("*.c"))
    srcs += sorted((d / "src" / "bsp" / "cortexm").glob("*.c"))
    srcs += sorted((d / "src" / "bsp" / board.bsp).glob("*.c"))
    incs = [d / "include", d / "src"]
    for lib in sorted((d / "lib").glob("*/")):
        lib_src = lib / "src" if (lib / "src").is_dir() else lib
        srcs += sorted(lib_src.glob("*.c"))
        incs.append(lib_src)
        if (lib / "include").is_dir():
            incs.append(lib / "include")
    if not srcs:
        raise ConfigError(f"{d} has no C sources; regenerate it with `mcu-dc generate`")
    return srcs, incs


def build_project(
    project_dir: str | os.PathLike[str],
    *,
    board: str | Board | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    check_fit: bool = True,
    werror: bool = False,
    timeout: float = 300,
) -> FirmwareBuild:
    """Build a generated MCU project with the system toolchain; see the module docstring."""
    d = Path(project_dir)
    info = read_project_info(d)
    b = board if isinstance(board, Board) else load_board(board or str(info["board"]))
    if not (d / "src" / "bsp" / b.bsp).is_dir():
        raise ConfigError(f"{d} has no BSP for board {b.id} (src/bsp/{b.bsp}); regenerate the project")
    srcs, incs = project_sources(d, b)
    out = Path(out_dir) if out_dir is not None else d / "build" / b.id
    result = build_firmware(
        srcs,
        incs,
        b,
        out,
        defines=[board_macro(b.id)],
        roots=[d],
        werror=werror,
        timeout=timeout,
    )
    layout = d / MODEL_LAYOUT_FILE
    if layout.is_file():
        try:
            facts = json.loads(layout.read_text(encoding="utf-8"))
            result.fit.model_breakdown = dict(facts["parts"])
            result.fit.gather_arena = int(facts.get("gather_arena", 0))
        except (ValueError, KeyError, TypeError):
            pass  # the breakdown is informative only
    if check_fit:
        memfit.check_fit(result.fit)
    return result
