"""The ``--conv-kernel`` option that ``compress`` and ``encode`` share."""

from __future__ import annotations

import argparse


def add_conv_kernel_argument(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument(
        "--conv-kernel",
        choices=["gather", "scatter"],
        default=default,
        help="every CONV2D's kernel (config: conv_kernel): gather (the default) is the faster, with "
        "the zero-point-padded input and one channel's taps in arena scratch; scatter uses the least "
        "RAM; no flash either way",
    )
