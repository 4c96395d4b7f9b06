"""The ``mcu-dc`` command line.

Each subcommand lives in its own module under :mod:`mcu_dc.commands`; the module defines
``register(subparsers)`` which adds a parser and sets ``func=run`` where
``run(args: argparse.Namespace) -> int`` returns the exit code. This file only wires them
together and turns :class:`~mcu_dc.errors.McuDcError` into a one-paragraph message and a
non-zero exit code (never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mcu_dc.errors import McuDcError

# Order is the order shown in --help. A module missing here is simply not offered.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "compress",
    "report",
    "simulate",
    "upgrade",
    "encode",
    "sweep",
    "generate",
    "library",
    "build",
    "boards",
    "flash",
    "verify",
    "run",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcu-dc",
        description="Compress a PyTorch model (Deep Compression), generate C that runs on the "
        "compressed weights, and verify it bit-exact on a microcontroller or an emulated one.",
    )
    from mcu_dc import __version__

    parser.add_argument("--version", action="version", version=f"mcu-dc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"mcu_dc.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mcu_dc.commands.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except McuDcError as exc:
        print(f"mcu-dc {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"mcu-dc {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`mcu-dc report m.mcudc | head`): not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
