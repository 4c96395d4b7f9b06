"""``mcu-dc boards``: list the boards mcu_dc knows, with flash, RAM and the serial port."""

from __future__ import annotations

import argparse
import json

from mcu_dc.deploy.boards import Board, list_boards


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("boards", help="list the supported boards with flash and RAM")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _row(b: Board) -> dict[str, object]:
    return {
        "id": b.id,
        "name": b.name,
        "core": b.core,
        "fpu": b.fpu,
        "clock_hz": b.clock_hz,
        "flash_origin": b.flash_origin,
        "flash_size": b.flash_size,
        "ram_origin": b.ram_origin,
        "ram_size": b.ram_size,
        "emulated": b.emulated,
        "qemu_machine": b.qemu.machine if b.qemu else None,
        "platformio_board": b.pio_board or None,
        "counter_unit": b.counter_unit,
        "bsp": b.bsp,
        "serial_driver": b.serial_driver,
        "serial": b.serial,
        "upload_protocol": b.pio_upload_protocol or None,
        "note": b.memory_note,
    }


def run(args: argparse.Namespace) -> int:
    boards = list_boards()
    if args.json:
        print(json.dumps([_row(b) for b in boards], indent=2))
        return 0
    print(f"{'board':18s} {'core':14s} {'flash':>10s} {'RAM':>9s}  {'clock':>8s}  how")
    for b in boards:
        how = (
            f"QEMU -M {b.qemu.machine}"
            if b.qemu
            else f"PlatformIO {b.pio_board}, upload {b.pio_upload_protocol or '?'}"
        )
        print(
            f"{b.id:18s} {b.core:14s} {_kb(b.flash_size):>10s} {_kb(b.ram_size):>9s}  "
            f"{b.clock_hz / 1e6:>4.0f} MHz  {how}"
        )
        print(f"{'':18s} serial: {b.serial}")
    return 0


def _kb(n: int) -> str:
    return f"{n // 1024} KB" if n % 1024 == 0 else f"{n / 1024:.2f} KB"
