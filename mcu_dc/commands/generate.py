"""``mcu-dc generate FILE --board BOARD --out DIR``: C sources and a buildable project."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate C (model arrays, runtime, project) for a board or the host",
        description="Generate a project that runs the model: the runtime, the model blob as const C "
        "arrays and a main program. --board host gives a native program that reads raw inputs on "
        "stdin and writes int8 outputs on stdout; build it with `mcu-dc build DIR`.",
    )
    p.add_argument("file", type=Path, help="the .mcudc model file")
    p.add_argument("--board", default="host", help="board id (see `mcu-dc boards`) or 'host'")
    p.add_argument("--out", type=Path, required=True, help="project directory to write")
    p.add_argument("--name", default=None, help="C name prefix of the model (default: the model's name)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcu_dc.core.model_file import load
    from mcu_dc.deploy.generate import generate

    cm = load(args.file)
    out = generate(cm, board=args.board, out_dir=args.out, name=args.name)
    print(f"wrote a {args.board} project for {args.file} to {out}; build it with `mcu-dc build {out}`")
    return 0
