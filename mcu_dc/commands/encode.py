"""``mcu-dc encode IN OUT --objective speed``: re-choose each weight op's encoding (torch-free)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mcu_dc.commands.kernel_options import add_conv_kernel_argument
from mcu_dc.progress import add_quiet_argument, settings_from_args


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "encode",
        help="re-encode a .mcudc file for size, speed or a balance (the weights stay the same)",
        description="Choose each weight op's encoding again: size = the smallest, speed = the fastest on "
        "a Cortex-M4 (column-sparse FC layers skip zero inputs), balanced = the fastest within --slack of "
        "the smallest. Only the storage changes: the outputs are checked unchanged on the test images "
        "(or probe inputs) before the file is written. With --dataset, the inputs' activity (how often an "
        "input is non-zero) is measured on its test images; without, the worst case is assumed.",
    )
    p.add_argument("file", type=Path, help="the .mcudc model file to read")
    p.add_argument("out", type=Path, help="the .mcudc file to write")
    p.add_argument("--objective", choices=["size", "speed", "balanced"], required=True)
    p.add_argument("--slack", type=float, default=0.05, help="balanced: size margin (default 0.05 = 5 %%)")
    p.add_argument(
        "--flash-tables",
        action="store_true",
        help="keep Huffman tables in flash instead of building the joint code's decode table in up to "
        "8 KB of arena scratch",
    )
    p.add_argument(
        "--dataset", default=None, help="measure the inputs' activity on this dataset's test images"
    )
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset's files")
    add_conv_kernel_argument(p, "gather")
    add_quiet_argument(p)
    p.set_defaults(func=run)


def _probe_inputs(model: Any) -> Any:
    """64 random inputs of the model's kind (raw bytes, or int8 values)."""
    import numpy as np

    from mcu_dc.core.qmath import InputKind

    rng = np.random.default_rng(0)
    if model.input_kind == InputKind.UINT8:
        return rng.integers(0, 256, size=(64, *model.input_shape)).astype(np.uint8)
    return rng.integers(-128, 128, size=(64, *model.input_shape)).astype(np.int8)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from mcu_dc.commands.simulate import simulate_outputs
    from mcu_dc.compression.report import coding_settings
    from mcu_dc.core.model_file import CompressedModel, load
    from mcu_dc.core.objective import choose, input_activity, objective_meta
    from mcu_dc.errors import MismatchError

    cm = load(args.file)
    if args.dataset:
        from mcu_dc.commands.simulate import for_model
        from mcu_dc.data.datasets import load_dataset

        x = for_model(cm, load_dataset(args.dataset, "test", args.data_dir), 512, f"dataset {args.dataset}").x
        activity = input_activity(cm.model, x)
    else:
        x = _probe_inputs(cm.model)
        activity = None
    max_len, lut = coding_settings(cm)
    model, picks = choose(
        cm.model, args.objective, activity=activity, slack=args.slack, max_code_len=max_len, lut_bits=lut,
        ram_tables=not args.flash_tables, conv_kernel=args.conv_kernel,
    )
    meta = {k: v for k, v in cm.meta.items() if k not in ("blob_layout", "report")}
    activity_from = f"{args.dataset} test images" if args.dataset else "none (worst case: no input is zero)"
    meta["objective"] = objective_meta(model, picks, args.objective, args.slack, activity_from)
    new = CompressedModel(model, meta, max_code_len=max_len, lut_bits=lut)
    # progress on the test images only: the 64 probe inputs take no time
    progress = settings_from_args(args) if args.dataset else False
    got, want = simulate_outputs([new.model, cm.model], x, "encode: checking the outputs", progress)
    if not np.array_equal(got, want):
        raise MismatchError(
            f"{args.file}: re-encoding changed the outputs; nothing was written (a bug in mcu_dc: report it)"
        )
    new.save(args.out)
    parts = ", ".join(f"{model.layers[i].name} {o.encoding.name}" for i, o in sorted(picks.items()))
    print(
        f"{args.out}: {args.objective}: {parts}; blob {len(cm.blob)} -> {len(new.blob)} bytes; "
        f"predicted weight-op instructions (Cortex-M4) {sum(o.instructions for o in picks.values()):,}; "
        f"outputs unchanged on {len(x)} inputs"
    )
    return 0
