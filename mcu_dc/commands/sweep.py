"""``mcu-dc sweep``: explore per-layer sparsity, codebook bits and encoding on Ray Tune; write the
Pareto front (bytes vs accuracy vs instructions per inference)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="search per-layer sparsity, bits and encoding on Ray Tune; write the Pareto front",
        description="Run N compression trials, each with its own per-layer sparsity, codebook bits and "
        "encoding objective, all starting from the same dense weights (trained once, or --weights / "
        "--pretrained), measured on a validation split carved from the training set (the test set is never "
        "used): the integer model's accuracy (bit-exact simulator), the blob's bytes and the predicted "
        "Cortex-M4 instructions per inference. Writes trials.json, pareto.json, pareto.png and, for each "
        "Pareto trial, its model file and a `mcu-dc compress` config that reproduces it. Trials run on a "
        "local Ray instance, or on an existing cluster with --ray-address. See docs/sweep.md.",
    )
    p.add_argument(
        "--model", required=True, help="as for `mcu-dc compress` (a built-in name or file.py:factory)"
    )
    p.add_argument(
        "--dataset", required=True, help="as for `mcu-dc compress` (only its training set is read)"
    )
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding the dataset's files")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML: `mcu-dc compress` settings (epochs of retraining and fine-tuning, ...) laid over the "
        "model's recipe, plus an optional [sweep] table with the search space (flags override it)",
    )
    p.add_argument(
        "--weights", type=Path, default=None, help="your trained state dict (dense training skipped)"
    )
    p.add_argument(
        "--pretrained",
        type=Path,
        default=None,
        help="mcu_dc's dense cache: loaded if FILE exists, else the dense model is trained and saved there",
    )
    p.add_argument("--name", default=None, help="model name (C symbol prefix); default from --model")
    p.add_argument("--out", type=Path, required=True, help="the folder to write (made atomically)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    space = p.add_argument_group("search space (override the config's [sweep] table)")
    space.add_argument("--sparsity", metavar="S,S,...", help="every layer's sparsity choices, in [0, 1)")
    space.add_argument(
        "--layer-sparsity",
        action="append",
        default=None,
        metavar="LAYER=S,S,...",
        help="one layer's own sparsity choices (repeatable)",
    )
    space.add_argument("--fc-bits", metavar="B,B,...", help="codebook bits of Linear layers, each in 1..8")
    space.add_argument("--conv-bits", metavar="B,B,...", help="codebook bits of convolutions, each in 1..8")
    space.add_argument("--objective", metavar="O,O,...", help="encoding objectives: size, speed, balanced")
    space.add_argument("--slack", type=float, default=None, help="balanced: size margin (default 0.05)")
    space.add_argument("--samples", type=int, default=None, help="number of trials (default 8)")
    space.add_argument("--seed", type=int, default=None, help="seed of the trials and the split (default 0)")
    space.add_argument(
        "--val-size", type=int, default=None, help="validation samples (default a fifth, at most 5,000)"
    )
    res = p.add_argument_group("resources")
    res.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    res.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="connect to an existing Ray cluster (host:port from `ray start --head`, or auto) instead of "
        "starting a local Ray instance",
    )
    res.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs of the local Ray instance (default all)"
    )
    res.add_argument(
        "--ray-temp-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the local Ray instance keeps its sockets and logs while the sweep runs (removed at the "
        "end; default the system's temp folder); at most 20 characters: Unix socket paths are short",
    )
    res.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs (torch threads) per trial")
    res.add_argument(
        "--gpus-per-trial", type=float, default=None, help="GPUs per trial with --device cuda (default 1)"
    )
    res.add_argument(
        "--max-concurrent", type=int, default=0, help="trials at once (default 0: as many as the CPUs allow)"
    )
    from mcu_dc.progress import add_quiet_argument

    add_quiet_argument(p, what="nor per-trial lines")
    p.set_defaults(func=run)


def _spec(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The search space (the config's [sweep] table, then the flags) and the compress settings."""
    from mcu_dc.sweep.settings import apply_flags, read_config_file, spec_from_table

    config: dict[str, Any] = {}
    table = None
    if args.config is not None:
        config, table = read_config_file(args.config)
    spec = spec_from_table(table, str(args.config))
    flags = {
        "--sparsity": args.sparsity,
        "--layer-sparsity": args.layer_sparsity,
        "--fc-bits": args.fc_bits,
        "--conv-bits": args.conv_bits,
        "--objective": args.objective,
        "--samples": args.samples,
        "--seed": args.seed,
        "--val-size": args.val_size,
    }
    return apply_flags(spec, flags), config


def run(args: argparse.Namespace) -> int:
    from mcu_dc.sweep.engine import RayOptions
    from mcu_dc.sweep.runner import SweepRequest, run_sweep

    spec, config = _spec(args)  # a bad search space fails here, before any data is read

    def say(msg: str) -> None:
        if not args.quiet:  # tqdm.write: a progress bar on the terminal stays intact
            from tqdm import tqdm

            tqdm.write(f"mcu-dc sweep: {msg}", file=sys.stderr)

    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if args.device == "cuda" else 0.0)
    req = SweepRequest(
        model=args.model,
        dataset=args.dataset,
        out=args.out,
        spec=spec,
        ray=RayOptions(
            address=args.ray_address,
            num_cpus=args.num_cpus,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=gpus,
            max_concurrent=args.max_concurrent,
            temp_dir=args.ray_temp_dir,
        ),
        config=config,
        config_path=args.config,
        data_dir=args.data_dir,
        weights=args.weights,
        pretrained=args.pretrained,
        name=args.name,
        slack=args.slack,
        device=args.device,
        force=args.force,
        quiet=args.quiet,
        argv=sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "sweep" else None,
    )
    result = run_sweep(req, say)
    print(summary(result))
    return 0 if result.front else 1  # every trial failed: the outputs say why, the exit code says so


def summary(result: Any) -> str:
    """The Pareto front as a Markdown table (stdout), then where the files are."""
    by_id = {o.id: o for o in result.outcomes}
    ok = sum(o.status == "ok" for o in result.outcomes)
    lines = [
        f"{len(result.outcomes)} trials ({ok} ok) in {result.seconds:.0f} s; Pareto front "
        f"({len(result.front)}), measured on the validation split:",
        "",
        "| trial | score | blob bytes | instructions | arena bytes | settings |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for i in result.front:
        o = by_id[i]
        m = o.metrics
        score = f"{100 * m['accuracy']:.2f} %" if m.get("accuracy") is not None else f"{m['score']:.4g}"
        lines.append(
            f"| {i} | {score} | {m['blob_bytes']:,} | {m['instructions']:,} | {m['arena_bytes']:,} | "
            f"{o.params.describe()} |"
        )
    out = result.out
    if not result.front:
        lines[-2:] = ["no trial succeeded: see the errors in trials.json"]
    written = [f"{out}/trials.json", f"{out}/pareto.json", f"{out}/pareto.png"]
    if result.front:
        written.append(f"{out}/pareto/")
    lines += ["", "wrote " + ", ".join(written[:-1]) + " and " + written[-1]]
    return "\n".join(lines)
