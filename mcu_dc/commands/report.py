"""``mcu-dc report FILE``: the compression report of a .mcudc file (torch-free)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "report",
        help="print the compression report of a .mcudc file",
        description="Per-layer weights, % kept, weight and index bits (P+Q and +Huffman), bytes and ratio, "
        "totals and accuracy after each stage. Byte counts are recomputed from the blob itself.",
    )
    p.add_argument("file", type=Path, help="the .mcudc model file")
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON (keys original_bytes, total_bytes, ratio, accuracy, layers, ...)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcu_dc.compression.report import build_report, to_json, to_markdown
    from mcu_dc.core.model_file import load

    rep = build_report(load(args.file))
    print(to_json(rep) if args.json else to_markdown(rep))
    return 0
