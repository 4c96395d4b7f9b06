"""``mcu-dc upgrade IN OUT``: re-encode a .mcudc file in the newest format (torch-free)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "upgrade",
        help="re-encode a .mcudc file in the newest format (fused conv+pool, planned arena)",
        description="Re-encode a model file as format version 2: the same integer weights, conv -> max-pool "
        "pairs fused so the full conv output is never stored, and the arena planned from tensor lifetimes. "
        "Outputs are checked unchanged on probe inputs before the file is written. The model hash changes.",
    )
    p.add_argument("file", type=Path, help="the .mcudc model file to read")
    p.add_argument("out", type=Path, help="the .mcudc file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mcu_dc.core.model_file import load
    from mcu_dc.core.upgrade import upgrade

    cm = load(args.file)
    new = upgrade(cm)
    new.save(args.out)
    old = new.meta["upgraded_from"]
    print(
        f"{args.out}: format {old['format_version']} -> 2, "
        f"blob {old['blob_bytes']} -> {len(new.blob)} bytes, "
        f"arena {old['arena_bytes']} -> {new.model.arena_bytes()} bytes, model hash {old['model_hash']} -> "
        f"0x{new.model_hash:08x}; outputs unchanged on probe inputs"
    )
    return 0
