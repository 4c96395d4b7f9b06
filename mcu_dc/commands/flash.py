"""``mcu-dc flash DIR --board B``: upload a generated project's firmware with PlatformIO."""

from __future__ import annotations

import argparse

from mcu_dc.deploy.boards import load_board
from mcu_dc.deploy.mcuproject import read_project_info
from mcu_dc.deploy.platformio import upload
from mcu_dc.errors import BoardError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("flash", help="upload a generated project to a real board (pio run -t upload)")
    p.add_argument("project", help="project directory written by `mcu-dc generate`")
    p.add_argument("--board", help="board id (default: the project's board)")
    p.add_argument("--timeout", type=float, default=900, help="seconds before giving up (default 900)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = read_project_info(args.project)
    board = load_board(args.board or str(info["board"]))
    if board.emulated and not board.pio_board:
        raise BoardError(
            f"{board.id} exists only as an emulator (QEMU -M {board.qemu.machine if board.qemu else '?'}); "
            f"there is nothing to flash. Run it with `mcu-dc verify MODEL --board {board.id}`, or pick a "
            "real board (`mcu-dc boards`)."
        )
    proc = upload(args.project, board.id, platform=board.pio_platform, timeout=args.timeout)
    print(proc.stdout[-2000:])
    print(f"flashed {args.project} to {board.id}")
    return 0
