"""``mcu-dc generate FILE --board BOARD --out DIR [--app verify|demo]``: C sources and a buildable
project; ``--model-only`` writes just the model's C arrays for a project of the user's own."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mcu_dc.errors import ConfigError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate C (model arrays, runtime, project) for a board or the host",
        description="Generate a project that runs the model: the runtime, the model blob as const C "
        "arrays and a main program. --board host gives a native program that reads raw inputs on "
        "stdin and writes int8 outputs on stdout; build it with `mcu-dc build DIR`. For a board, "
        "--app verify (default) is the protocol server `mcu-dc verify` talks to; --app demo prints, "
        "in text, the model's answers on a few embedded test inputs (run it with `mcu-dc run DIR` on "
        "an emulated board, or read it with `pio device monitor`). --model-only writes only the model's "
        "C sources, for an existing project that uses the runtime library (`mcu-dc library`).",
    )
    p.add_argument("file", type=Path, help="the .mcudc model file")
    p.add_argument("--board", default=None, help="board id (see `mcu-dc boards`) or 'host' (default)")
    p.add_argument("--out", type=Path, required=True, help="project directory to write")
    p.add_argument("--name", default=None, help="C name prefix of the model (default: the model's name)")
    p.add_argument(
        "--app",
        choices=("verify", "demo"),
        default="verify",
        help="boards only: the firmware; verify (default) serves `mcu-dc verify`, demo prints results",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="--app demo: the test inputs to embed: mnist, fashion-mnist, digits, cifar10 or "
        "path/to/data.npz (default: the dataset the model file records)",
    )
    p.add_argument("--data-dir", default=None, help="--app demo: folder holding the dataset files")
    p.add_argument(
        "--samples", type=int, default=None, help="--app demo: how many test inputs to embed (default 4)"
    )
    p.add_argument(
        "--no-serial-ok",
        action="store_true",
        help="generate for a board whose BSP has no serial driver (generic) with a warning instead of "
        "refusing; you link your own UART functions",
    )
    p.add_argument(
        "--model-only",
        action="store_true",
        help="write only N_model.c, N_model.h and mcu_dc_models.h into --out (other files there are kept)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcu_dc.core.model_file import load
    from mcu_dc.deploy.generate import export_model, generate

    if args.model_only:
        extra = [
            opt
            for opt, given in (
                ("--board", args.board is not None),
                ("--app demo", args.app != "verify"),
                ("--dataset", args.dataset is not None),
                ("--samples", args.samples is not None),
                ("--data-dir", args.data_dir is not None),
            )
            if given
        ]
        if extra:
            raise ConfigError(
                f"--model-only writes only the model's C sources, which are the same for every board and "
                f"app; leave out {', '.join(extra)}, or drop --model-only to generate a whole project"
            )
        files = export_model(load(args.file), args.out, args.name)
        print(
            f"wrote {', '.join(f.name for f in files)} for {args.file} to {args.out}; add them to your "
            "project beside the runtime library (`mcu-dc library --out DIR`), then call mcu_dc_model_init "
            "and mcu_dc_infer (see the model header for the sizes)"
        )
        return 0
    board = args.board or "host"
    cm = load(args.file)
    out = generate(
        cm,
        board=board,
        out_dir=args.out,
        name=args.name,
        app=args.app,
        dataset=args.dataset,
        samples=args.samples,
        data_dir=args.data_dir,
        allow_no_serial=args.no_serial_ok,
    )
    if args.app == "demo":
        print(
            f"wrote a {board} demo project for {args.file} to {out}; build and run it with "
            f"`mcu-dc run {out}` (emulated boards) or flash it and read it with `pio device monitor`"
        )
    else:
        print(f"wrote a {board} project for {args.file} to {out}; build it with `mcu-dc build {out}`")
    return 0
