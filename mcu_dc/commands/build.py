"""``mcu-dc build DIR``: compile a project written by ``mcu-dc generate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mcu_dc.errors import BuildError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "build",
        help="compile a generated project (host: gcc; boards: arm-none-eabi-gcc)",
        description="Compile a project directory written by `mcu-dc generate` (it reads "
        "mcu_dc_project.json to know the board).",
    )
    p.add_argument("dir", type=Path, help="the project directory")
    p.add_argument("--sanitize", action="store_true", help="host only: build with ASan and UBSan")
    p.add_argument("--json", action="store_true", help="print the result (program, or memory fit) as JSON")
    p.add_argument(
        "--board",
        default=None,
        help="boards only: build for this board instead of the one the project was generated for "
        "(it must use the same BSP family)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcu_dc.deploy.hostbuild import build_host_project, read_project

    info = read_project(args.dir)
    kind = info.get("kind")
    if kind == "host":
        program = build_host_project(args.dir, sanitize=args.sanitize)
        if args.json:
            print(json.dumps({"board": "host", "kind": "host", "program": str(program)}))
        else:
            print(f"built {program}: feed raw inputs on stdin, read int8 outputs on stdout")
        return 0
    if kind == "mcu":
        if args.sanitize:
            raise BuildError("--sanitize applies to host projects only")
        try:
            from mcu_dc.deploy.armbuild import build_project
        except ImportError as exc:
            raise BuildError(
                f"{args.dir} is a project for board {info.get('board')!r} but the microcontroller build "
                f"support (mcu_dc.deploy.armbuild) is unavailable ({exc}); reinstall mcu_dc"
            ) from None
        from mcu_dc.deploy.memfit import check_fit

        # Measure first, print the figures (JSON keeps `fits: false`), then fail on overflow.
        result = build_project(args.dir, board=args.board, check_fit=False)
        print(result.summary(as_json=args.json))
        check_fit(result.fit)
        if info.get("app") == "demo" and not args.json:
            print(
                f"demo firmware: `mcu-dc run {args.dir}` runs it on an emulated board; on a real one, "
                "flash it and read it with `pio device monitor`"
            )
        return 0
    raise BuildError(
        f"{args.dir}/mcu_dc_project.json has kind {kind!r}; expected 'host' or 'mcu' — regenerate the "
        "project with `mcu-dc generate`"
    )
