"""``mcu-dc verify FILE|DIR [--board B] [--port URL]``: prove the device bit-exact against the simulator.

``--board`` may be left out when DIR is a generated project: the project records its board."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mcu_dc.progress import add_quiet_argument, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="run a test set on a board (real or emulated) and compare every output with the simulator",
        description="Stream test images to the firmware on a board and check each output against the "
        "bit-exact simulator. Without --port, an emulated board (qemu-*) is generated, built and booted "
        "under qemu-system-arm. Exits non-zero (4) on any mismatch.",
    )
    p.add_argument("source", metavar="FILE|DIR", help="a .mcudc model file, or a generated project directory")
    p.add_argument(
        "--board",
        default=None,
        help="board id (see `mcu-dc boards`), e.g. qemu-mps2-an386 (default for a generated project: the "
        "board it was generated for)",
    )
    p.add_argument(
        "--port",
        help="serial port or URL of a running board: /dev/ttyACM0, socket://host:port, "
        "rfc2217://host:port (default for qemu-* boards: start QEMU)",
    )
    p.add_argument(
        "--dataset",
        default="mnist",
        help="test set to stream: mnist, fashion-mnist, digits, cifar10 or path/to/data.npz (default: "
        "mnist); images are normalized as the model file records (e.g. the CIFAR ResNets)",
    )
    p.add_argument(
        "--data-dir", help="folder holding the dataset files (default: $MCU_DC_DATA or the shared data)"
    )
    p.add_argument("--limit", type=int, help="only the first N test images (default: all)")
    p.add_argument(
        "--baud", type=int, default=115200, help="baud rate of a real serial port (default 115200)"
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for one reply (default 5)")
    p.add_argument("--work-dir", type=Path, help="where firmware builds are cached (default ~/.cache/mcu_dc)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_quiet_argument(p, "--no-progress")
    p.set_defaults(func=run)


def _project_board(source: str) -> str:
    """The board a generated project directory was written for; a model file needs --board."""
    from mcu_dc.deploy.mcuproject import PROJECT_FILE, project_board
    from mcu_dc.errors import ConfigError

    path = Path(source)
    if path.is_dir() and (path / PROJECT_FILE).is_file():
        return project_board(path)
    raise ConfigError(
        f"--board is needed to verify {source}: it is not a generated project, so nothing records which "
        "board to run on. Pass --board with an emulated board (e.g. qemu-mps2-an386) or a real one with "
        "--port (`mcu-dc boards` lists them)."
    )


def run(args: argparse.Namespace) -> int:
    from mcu_dc.device.harness import LinkSettings
    from mcu_dc.device.verify import VerifySettings, raise_on_mismatch, verify

    settings = VerifySettings(
        board=args.board or _project_board(args.source),
        port=args.port,
        dataset=args.dataset,
        data_dir=args.data_dir,
        limit=args.limit,
        work_dir=args.work_dir,
        progress=settings_from_args(args),
        link=LinkSettings(baudrate=args.baud, reply_timeout_s=args.timeout),
    )
    report = verify(args.source, settings)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    raise_on_mismatch(report)
    return 0
