"""``mcu-dc run DIR [--timeout S]``: build a demo project if needed and run it on its emulated
board under QEMU, printing what the firmware prints; the exit code is the firmware's.

The project must hold the demo firmware (``mcu-dc generate MODEL --board B --out DIR --app
demo``). The firmware is rebuilt when ``DIR/build/<board>/firmware.elf`` is missing or older
than a source; build messages go to stderr so stdout is exactly the firmware's text (its
``\\r\\n`` line ends as ``\\n``). A real board is not run: flash it and read it with
``pio device monitor``.
"""

from __future__ import annotations

import argparse
import codecs
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from mcu_dc.errors import ConfigError, DeviceError

DEFAULT_TIMEOUT_S = 60.0
SOURCE_DIRS = ("src", "lib", "include", "linker")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="run a demo project (--app demo) on its emulated board under QEMU and show its output",
        description="Build (if needed) a project written by `mcu-dc generate ... --app demo` and boot it "
        "under qemu-system-arm, printing the firmware's text output as it comes. Exits with the "
        "firmware's own exit code: 0 when every output equals the simulator's, 1 when one differs. "
        "For a real board, flash it (`mcu-dc flash DIR`) and read it with `pio device monitor`.",
    )
    p.add_argument("dir", type=Path, help="the demo project directory")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds the firmware may run before QEMU is stopped (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.add_argument(
        "--board",
        default=None,
        help="another emulated board of the project's BSP families (default: the project's board)",
    )
    p.set_defaults(func=run)


def _newest_source(project: Path) -> float:
    times = [p.stat().st_mtime for d in SOURCE_DIRS for p in (project / d).rglob("*") if p.is_file()]
    return max(times, default=0.0)


def ensure_built(project: Path, board: Any) -> Path:
    """``project``'s firmware for ``board``, built first if it is missing or out of date."""
    from mcu_dc.deploy.armbuild import build_project

    elf = project / "build" / board.id / "firmware.elf"
    if elf.is_file() and elf.stat().st_mtime >= _newest_source(project):
        return elf
    print(f"mcu-dc run: building {project} for {board.id}", file=sys.stderr, flush=True)
    result = build_project(project, board=board)
    print(result.summary(), file=sys.stderr, flush=True)
    return result.elf


def stream_qemu(board: Any, elf: Path, timeout: float, out: TextIO) -> int:
    """Boot ``elf`` under QEMU, copy its UART text to ``out`` as it comes, return its exit code.

    QEMU is always stopped when this returns or raises (a timeout is a DeviceError)."""
    import serial  # pyserial; only this command needs it

    from mcu_dc.device.qemu import QemuBoard

    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    deadline = time.monotonic() + timeout
    with QemuBoard(board, elf) as q:
        link = serial.serial_for_url(q.url, timeout=0.05)
        try:
            while True:
                try:
                    # Read what is waiting (at least one byte): pyserial's socket read drops
                    # what it has read when the peer closes mid-call.
                    data = link.read(max(1, link.in_waiting))
                except serial.SerialException:  # QEMU closed the socket: the firmware exited
                    break
                if data:
                    out.write(decoder.decode(data).replace("\r", ""))
                    out.flush()
                elif not q.running:
                    break
                if time.monotonic() >= deadline:
                    raise DeviceError(
                        f"the firmware on {q.board.id} did not exit within {timeout:g} s; QEMU was stopped. "
                        "The demo exits after one round on emulated boards: pass a larger --timeout for a "
                        "big model, or regenerate the project if it was built with MCU_DC_DEMO_ROUNDS=0."
                    )
            out.write(decoder.decode(b"", final=True))
            out.flush()
            return q.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            link.close()


def run(args: argparse.Namespace) -> int:
    from mcu_dc.deploy.boards import load_board
    from mcu_dc.deploy.mcuproject import read_project_info, require_app

    if not args.timeout > 0:
        raise ConfigError(f"--timeout {args.timeout:g}: pass a positive number of seconds")
    project = Path(args.dir)
    info = read_project_info(project)
    require_app(project, info, "demo")
    board = load_board(args.board or str(info["board"]))
    if board.qemu is None:
        raise DeviceError(
            f"board {board.id!r} is real hardware, which `mcu-dc run` cannot start: flash the demo "
            f"(`mcu-dc flash {project} --board {board.id}`, or `pio run -e {board.id} -t upload` in "
            f"{project}) and read its output with `pio device monitor -e {board.id}` (115200 baud); it "
            "prints one round about every second. `mcu-dc run` runs emulated qemu-* boards."
        )
    elf = ensure_built(project, board)
    code = stream_qemu(board, elf, args.timeout, sys.stdout)
    print(f"mcu-dc run: the firmware on {board.id} exited with code {code}", file=sys.stderr)
    return code
