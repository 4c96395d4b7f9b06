"""``mcu-dc demo``: the whole path on one command — train, compress, build, verify on an emulated board.

1. trains LeNet-300-100 on MNIST and deep-compresses it (prune → trained quantization →
   Huffman), or reuses the model cached in the work directory;
2. generates the firmware for the board and builds it with arm-none-eabi-gcc (the
   linker's flash and RAM figures are checked against the board);
3. boots it under qemu-system-arm and streams test images through the serial harness,
   comparing every output with the bit-exact simulator;
4. prints one summary: sizes and ratio, accuracy float / simulator / device, flash and
   RAM against the board, instructions per inference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mcu_dc.progress import add_quiet_argument, settings_from_args

DEFAULT_BOARD = "qemu-mps2-an386"
DEFAULT_LIMIT = 300


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train + compress LeNet-300-100 on MNIST, build it for an emulated board and verify it there",
        description="End to end in one command: train (or reuse) and deep-compress LeNet-300-100 on MNIST, "
        "generate and build the firmware, run it under qemu-system-arm, check every output against the "
        "bit-exact simulator and print one summary.",
    )
    p.add_argument("--board", default=DEFAULT_BOARD, help=f"an emulated board (default {DEFAULT_BOARD})")
    p.add_argument("--full", action="store_true", help="verify on all 10,000 MNIST test images")
    p.add_argument(
        "--limit", type=int, default=None, help=f"test images to verify (default {DEFAULT_LIMIT})"
    )
    p.add_argument("--work-dir", type=Path, help="cache for the model and builds (default ~/.cache/mcu_dc)")
    p.add_argument("--data-dir", help="folder holding MNIST's idx .gz files (default: $MCU_DC_DATA)")
    p.add_argument("--retrain", action="store_true", help="ignore a cached model and train again")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="torch device for training")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_quiet_argument(p, what="and no stage lines")
    p.set_defaults(func=run)


def _say(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(f"mcu-dc demo: {msg}", file=sys.stderr, flush=True)


def get_model(work: Path, args: argparse.Namespace) -> Any:
    """The cached compressed LeNet-300-100, or a freshly trained and compressed one."""
    from mcu_dc.core.model_file import load

    path = work / "lenet300-mnist.mcudc"
    if path.is_file() and not args.retrain:
        _say(args, f"reusing the compressed model {path} (--retrain to train again)")
        return load(path)
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        from mcu_dc.errors import ConfigError

        raise ConfigError(
            "training the demo model needs torch, which is not installed: install the CPU build "
            "(pip install torch) as the README's set-up says, or copy a lenet300-mnist.mcudc into "
            f"{work}."
        ) from None
    from mcu_dc.compression.config import recipe
    from mcu_dc.compression.models import build_model
    from mcu_dc.compression.pipeline import run_pipeline
    from mcu_dc.compression.seeding import seed_everything
    from mcu_dc.data.datasets import load_train_test

    train, test = load_train_test("mnist", args.data_dir)
    _say(args, "training and compressing LeNet-300-100 on MNIST (a few minutes on a CPU; cached afterwards)")
    cfg = recipe("lenet300")
    seed_everything(cfg.seed)  # the model's initial weights are random too
    model = build_model("lenet300", train.input_shape, train.num_classes)
    cm, _ = run_pipeline(
        model,
        train,
        test,
        cfg,  # the recipe bench/deep_compression.py measures
        device=args.device,
        name="lenet300",
        pretrained=work / "lenet300-mnist-dense.pt",
        progress=settings_from_args(args),
        log=lambda m: _say(args, m),
    )
    cm.save(path)
    _say(args, f"wrote {path}")
    return cm


def summary(cm: Any, fw: Any, report: Any, board: str) -> dict[str, Any]:
    acc = dict(cm.meta.get("accuracy", {}))
    original = int(cm.meta.get("original_bytes") or 0)
    fit = fw.fit
    return {
        "board": board,
        "original_bytes": original,
        "compressed_bytes": len(cm.blob),
        "ratio": (original / len(cm.blob)) if original else None,
        "float_accuracy": acc.get("dense"),
        "sim_accuracy_full_test_set": acc.get("integer"),
        "n": report.n,
        "bit_exact": report.bit_exact,
        "mismatches": report.mismatches,
        "device_accuracy": report.device_accuracy,
        "sim_accuracy": report.sim_accuracy,
        "flash_used": fit.flash_used,
        "flash_total": fit.flash_total,
        "ram_used": fit.ram_used,
        "ram_total": fit.ram_total,
        "counter_unit": report.counter_unit,
        "instructions_per_inference": report.instructions_per_inference,
        "counter_median": report.counter_median,
        "counter_max": report.counter_max,
        "inferences_per_s": report.inferences_per_s,
        "model_hash": f"0x{cm.model_hash:08x}",
    }


def format_summary(s: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.2f} %"

    ratio = f"{s['ratio']:.1f}x smaller" if s["ratio"] else "ratio n/a"
    med = s["counter_median"]
    lines = [
        f"mcu-dc demo: LeNet-300-100 on MNIST, verified on {s['board']}",
        f"  size         {s['original_bytes']:,} B float32 -> {s['compressed_bytes']:,} B compressed blob "
        f"({ratio})",
        f"  accuracy     float {pct(s['float_accuracy'])} | simulator {pct(s['sim_accuracy_full_test_set'])} "
        f"(10,000 test images) | device {pct(s['device_accuracy'])} on {s['n']:,} images "
        f"(simulator on the same: {pct(s['sim_accuracy'])})",
        f"  bit-exact    {s['bit_exact']:,}/{s['n']:,} device outputs equal the simulator's",
        f"  flash        {s['flash_used']:,} / {s['flash_total']:,} B "
        f"({100 * s['flash_used'] / s['flash_total']:.1f} %)",
        f"  RAM          {s['ram_used']:,} / {s['ram_total']:,} B "
        f"({100 * s['ram_used'] / s['ram_total']:.1f} %)",
        f"  {s['counter_unit']:<12} {'n/a' if med is None else f'{med:,.0f}'} per inference "
        f"(median; max {s['counter_max']:,})",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mcu_dc.deploy.boards import load_board
    from mcu_dc.device.harness import raise_on_mismatch
    from mcu_dc.device.verify import (
        VerifySettings,
        build_firmware,
        default_work_dir,
        load_test_inputs,
        run_on_qemu,
    )
    from mcu_dc.errors import ConfigError

    board = load_board(args.board)
    if board.qemu is None:
        raise ConfigError(
            f"the demo runs on an emulated board; {board.id!r} is real hardware. Use a qemu-* board "
            "(mcu-dc boards), or `mcu-dc verify MODEL --board B --port /dev/ttyACM0` for a real one."
        )
    work = Path(args.work_dir) if args.work_dir else default_work_dir()
    work.mkdir(parents=True, exist_ok=True)
    cm = get_model(work, args)

    _say(args, f"generating and building the firmware for {board.id}")
    fw = build_firmware(cm, board.id, work)

    limit = None if args.full else (args.limit if args.limit is not None else DEFAULT_LIMIT)
    x, y = load_test_inputs("mnist", tuple(cm.model.input_shape), data_dir=args.data_dir, limit=limit)
    _say(args, f"verifying {len(x):,} test images on {board.id} under qemu-system-arm")
    settings = VerifySettings(board=board.id, progress=settings_from_args(args))
    report = run_on_qemu(cm, board.id, fw.elf, x, y, settings)

    s = summary(cm, fw, report, board.id)
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    raise_on_mismatch(report)
    return 0
