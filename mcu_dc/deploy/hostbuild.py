"""Compile the C runtime and generated models for the host with gcc.

Two products:

* the **host runner** (``firmware/runtime/host/mcu_dc_runner.c``): loads any blob file at
  run time, so one compiled binary checks any number of models against the simulator;
* a generated **host project** (``mcu-dc generate --board host``): the model compiled in
  as const arrays, reading raw inputs on stdin and writing int8 outputs on stdout.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcu_dc.deploy.cheaders import Status, status_text
from mcu_dc.errors import BuildError, DataError, FormatError, McuDcError

CFLAGS_STRICT: tuple[str, ...] = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
SANITIZE_FLAGS: tuple[str, ...] = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g")
COMPILE_TIMEOUT_S = 300


@dataclass
class HostBuildSettings:
    """How to compile for the host."""

    cc: str = "gcc"
    opt: str = "-O2"
    sanitize: bool = False
    extra_flags: list[str] = field(default_factory=list)

    def flags(self) -> list[str]:
        f = [*CFLAGS_STRICT, self.opt]
        if self.sanitize:
            f += SANITIZE_FLAGS
        return f + list(self.extra_flags)


def runtime_dir() -> Path:
    from mcu_dc.resources import resource_dir

    return resource_dir("firmware") / "runtime"


def compile_program(
    sources: Sequence[Path],
    include_dirs: Sequence[Path],
    output: Path,
    settings: HostBuildSettings | None = None,
) -> Path:
    """Compile and link ``sources`` into ``output``; raise :class:`BuildError` on failure."""
    settings = settings or HostBuildSettings()
    if shutil.which(settings.cc) is None:
        raise BuildError(
            f"the C compiler {settings.cc!r} is not on PATH; install gcc (e.g. apt-get install gcc) "
            "to build host programs"
        )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    includes = [f"-I{d}" for d in include_dirs]
    cmd = [settings.cc, *settings.flags(), *includes, *map(str, sources), "-o", str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{settings.cc} took longer than {COMPILE_TIMEOUT_S} s building {output}") from None
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(
            f"{settings.cc} failed (exit {proc.returncode}) building {output}: {proc.stderr.strip()[-3000:]}"
            f" — command: {' '.join(cmd)}"
        )
    tmp.replace(output)
    return output


def build_runner(output: Path, *, sanitize: bool = False, opt: str = "-O2") -> Path:
    """Compile the blob-loading host runner against the runtime in ``firmware/runtime``.

    The sources are every ``firmware/runtime/*.c`` (:func:`mcu_dc.deploy.codegen.runtime_sources`: the
    model walker, the op registry and one file per op family), plus ``host/mcu_dc_runner.c``.
    """
    from mcu_dc.deploy.codegen import runtime_sources

    rt = runtime_dir()
    sources = [*runtime_sources(), rt / "host" / "mcu_dc_runner.c"]
    return compile_program(sources, [rt], output, HostBuildSettings(opt=opt, sanitize=sanitize))


class RuntimeStatusError(McuDcError):
    """The C runtime returned a status code other than MCU_DC_OK."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _parse_status(stderr: str) -> int | None:
    marker = "status="
    at = stderr.rfind(marker)
    if at < 0:
        return None
    digits = ""
    for ch in stderr[at + len(marker) :]:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None


def run_program(
    program: Path,
    args: Sequence[str],
    inputs: np.ndarray | bytes,
    out_len: int,
    *,
    timeout: float = 600.0,
) -> np.ndarray:
    """Feed raw inputs on stdin to a host program; return its int8 outputs (N, out_len).

    Raises :class:`RuntimeStatusError` (with ``.status``) when the runtime returns an error
    status, :class:`DataError` when the input length is wrong, :class:`BuildError` otherwise.
    """
    data = inputs if isinstance(inputs, bytes) else np.ascontiguousarray(inputs, dtype=np.uint8).tobytes()
    try:
        proc = subprocess.run(
            [str(program), *args], input=data, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"{program} did not finish within {timeout} s") from None
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode == 3:
        code = _parse_status(err)
        text = status_text(code) if code is not None else "unknown status"
        raise RuntimeStatusError(f"{program.name}: the C runtime returned {text} ({err})", code or -1)
    if proc.returncode == 4:
        raise DataError(f"{program.name}: wrong input length: {err}")
    if proc.returncode != 0:
        raise BuildError(f"{program} failed with exit code {proc.returncode}: {err[-2000:]}")
    out = np.frombuffer(proc.stdout, dtype=np.int8)
    if out_len <= 0 or out.size % out_len:
        raise FormatError(
            f"{program.name} wrote {out.size} bytes, not a multiple of the output length {out_len}"
        )
    return out.reshape(-1, out_len)


def run_blob(
    runner: Path,
    blob_path: Path,
    inputs: np.ndarray | bytes,
    out_len: int,
    *,
    ref: bool = False,
    arena_bytes: int | None = None,
    check_crc: bool = True,
    timeout: float = 600.0,
) -> np.ndarray:
    """Run a model file (format version 1 or 2) with the host runner (see :func:`build_runner`).

    ``inputs`` are the bytes the device receives, ``input_len`` per input: raw bytes for a
    UINT8-input model, the int8 values as bytes for an INT8-input model
    (:func:`mcu_dc.core.simulator.device_input` gives them for either).
    """
    args: list[str] = []
    if ref:
        args.append("--ref")
    if not check_crc:
        args.append("--no-crc")
    if arena_bytes is not None:
        args += ["--arena-bytes", str(arena_bytes)]
    return run_program(runner, [*args, str(blob_path)], inputs, out_len, timeout=timeout)


def read_project(project_dir: Path) -> dict:
    import json

    path = Path(project_dir) / "mcu_dc_project.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BuildError(
            f"{project_dir} has no mcu_dc_project.json; it is not a project written by `mcu-dc generate`"
        ) from None
    except (OSError, ValueError) as exc:
        raise BuildError(f"{path} is unreadable or not JSON ({exc}); regenerate the project") from None


def build_host_project(project_dir: Path, *, sanitize: bool = False, opt: str = "-O2") -> Path:
    """Compile a generated host project; returns the program's path (``DIR/build/<name>``)."""
    project_dir = Path(project_dir)
    info = read_project(project_dir)
    if info.get("kind") != "host":
        raise BuildError(f"{project_dir} is a {info.get('kind')!r} project, not a host project")
    name = str(info["name"])
    sources = sorted((project_dir / "src").glob("*.c")) + sorted((project_dir / "runtime").glob("*.c"))
    if not sources:
        raise BuildError(f"{project_dir} has no C sources under src/ and runtime/; regenerate it")
    out = project_dir / "build" / name
    settings = HostBuildSettings(opt=opt, sanitize=sanitize)
    return compile_program(sources, [project_dir / "src", project_dir / "runtime"], out, settings)


__all__ = [
    "HostBuildSettings",
    "RuntimeStatusError",
    "Status",
    "build_host_project",
    "build_runner",
    "compile_program",
    "run_blob",
    "run_program",
]
