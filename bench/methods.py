"""Compression methods alone and combined with Deep Compression (issue 11's benchmark).

For LeNet-300-100 and LeNet-5 on MNIST and ResNet-20 on CIFAR-10 (from the shared pretrained
weights), each method is one run of the whole pipeline (:func:`mcu_dc.compression.pipeline.run_pipeline`)
with its own config laid over the network's recipe:

==================  ===================================================================================
``dc``              Deep Compression: unstructured pruning (sensitivity-chosen per layer) + k-means
                    weight sharing with trained centroids + Huffman coding (the default pipeline)
``dc_distill``      ``dc`` with knowledge distillation from the dense model (``[distill]``) in the
                    pruning retraining and the centroid fine-tuning
``filter``          L1 filter / neuron pruning alone (``[filter_prune]``, fractions chosen per group on
                    the validation split), no unstructured pruning, 8-bit codebooks (int8-like weights)
``filter_dc``       filter / neuron pruning, then ``dc``
``slim_dc``         network slimming (``[slimming]``, BatchNorm-scale L1 penalty, global ranking), then
                    ``dc``
``slim_dc_distill`` ``slim_dc`` with distillation from the dense model in every retraining stage
``ternary``         TTQ ternary weights in every layer (``cluster.mode = "ternary"``), no pruning
``ternary_prune``   unstructured pruning (as ``dc``), then ternary weights
``binary``          BWN binary weights in every layer (``cluster.mode = "binary"``), no pruning
``binary_filter``   filter / neuron pruning, then binary weights (a binary layer has no zero, so it
                    cannot be pruned unstructured; structured pruning removes whole rows instead)
``slim_dc_distill_3b``  ``slim_dc_distill`` with 3-bit codebooks in every layer (the DQC paper's
                    LeNet keeps its accuracy at 3 bits, its Table 1)
``slim_ternary``    network slimming, unstructured pruning, then ternary weights
``slim_ternary_distill``  ``slim_ternary`` with distillation from the dense model
==================  ===================================================================================

Per run: the **integer** model's accuracy on all test images (the bit-exact simulator), the bytes
of the ``.mcudc`` blob (what the firmware links), the compression ratio against float32
parameters, the planned arena bytes, MACs (of kept weights, and of the remaining channels
dense), and instructions per inference on the emulated Cortex-M4 (``qemu-mps2-an386``, QEMU
``-icount``: the median over the first ``--verify-n`` test images, every output checked
bit-exact against the simulator) with the whole firmware's flash and RAM. Every choice
(per-layer sparsity, channel fractions) is made by the pipeline on a validation split carved
from the training set (``val_size``), never on the test set.

Schedules: ``--schedule full`` is the networks' recipes (for a GPU, ``--device cuda``); ``--schedule
cpu`` is a short one that fits a 2-core machine (ResNet-20: a few epochs per stage on a training
subset). Each network's dense training runs once per schedule and is cached (the pipeline's
``--pretrained`` cache, under ``.cache/bench/``); ResNet-20 starts from the shared weights. Each run
writes ``bench/results/methods_runs/<schedule>/<network>_<method>.json`` (atomically) and is skipped
when that file exists (``--force`` reruns), so an interrupted run continues where it stopped. After
every run the summary is rewritten: ``bench/results/methods.{json,md,png}`` (accuracy vs bytes per
method, the Pareto front marked, one panel per network) and the Pareto-front LeNet models as
``bench/results/methods_<network>_<method>.mcudc`` (``mcu-dc simulate FILE --dataset mnist``
re-checks them).

    python bench/methods.py --schedule cpu --networks lenet300 --threads 2
    python bench/methods.py --schedule cpu --networks lenet5 --methods dc,filter_dc,ternary_prune
    python bench/methods.py --schedule full --networks lenet300,lenet5,resnet20 --device cuda
    python bench/methods.py --render-only
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / ".cache" / "bench"
BOARD = "qemu-mps2-an386"
# Issue 11: LeNet-5's whole firmware on the micro:bit (Cortex-M0, 16 KB RAM).
SMALL_BOARD = "qemu-microbit"
SMALL_BOARD_NETWORKS = ("lenet5",)
SCHEDULES = ("cpu", "full")

NETWORKS: dict[str, dict[str, Any]] = {
    "lenet300": {"title": "LeNet-300-100", "dataset": "mnist", "input_shape": (1, 28, 28)},
    "lenet5": {"title": "LeNet-5", "dataset": "mnist", "input_shape": (1, 28, 28)},
    "resnet20": {
        "title": "ResNet-20",
        "dataset": "cifar10",
        "input_shape": (3, 32, 32),
        "weights": "cifar10_resnets/resnet20-12fca82f.th",
    },
}
METHODS: dict[str, str] = {
    "dc": "Deep Compression (prune + k-means + Huffman)",
    "dc_distill": "DC + distillation",
    "filter": "filter/neuron pruning (L1) alone, 8-bit sharing",
    "filter_dc": "filter/neuron pruning + DC",
    "slim_dc": "slimming + DC",
    "slim_dc_distill": "slimming + DC + distillation",
    "slim_dc_distill_3b": "slimming + DC (3-bit codebooks) + distillation",
    "ternary": "ternary (TTQ), no pruning",
    "ternary_prune": "pruning + ternary",
    "binary": "binary (BWN), no pruning",
    "binary_filter": "filter/neuron pruning + binary",
    "slim_ternary": "slimming + pruning + ternary",
    "slim_ternary_distill": "slimming + pruning + ternary + distillation",
}
TERNARY_METHODS = (
    "ternary",
    "ternary_prune",
    "binary",
    "binary_filter",
    "slim_ternary",
    "slim_ternary_distill",
)

# the goals
GOALS = {
    "lenet300": {"min_ratio": 64.0, "max_error_pct": 1.58},
    "lenet5": {"min_ratio": 100.0, "max_error_pct": 0.74},
    "resnet20": {"min_mac_reduction": 2.0, "min_accuracy_pct": 91.0},
}

# Training lengths per schedule and network. cpu: a few epochs per stage (2 shared cores);
# full: the recipes (mcu_dc/compression/config.py) and the structured-pruning docs' settings.
PLANS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu": {
        "lenet300": {
            "dense": 10,
            "prune_rounds": 3,
            "prune_epochs": 2,
            "finetune": 2,
            "fp_rounds": 2,
            "fp_epochs": 2,
            "slim_sparse": 2,
            "slim_retrain": 2,
            "tq_epochs": 4,
            "dense_subset": 0,
            "train_subset": 0,
        },
        "lenet5": {
            "dense": 3,
            "prune_rounds": 2,
            "prune_epochs": 1,
            "finetune": 1,
            "fp_rounds": 1,
            "fp_epochs": 1,
            "slim_sparse": 1,
            "slim_retrain": 1,
            "tq_epochs": 2,
            "dense_subset": 0,
            "train_subset": 20000,
        },
        # from the shared pretrained weights: a few epochs per stage on 20,000 training images (about
        # 30 minutes per method on 2 shared cores); the recipes' lengths are the "full" schedule's
        "resnet20": {
            "dense": 0,
            "prune_rounds": 1,
            "prune_epochs": 2,
            "finetune": 2,
            "fp_rounds": 2,
            "fp_epochs": 3,
            "slim_sparse": 2,
            "slim_retrain": 2,
            "tq_epochs": 3,
            "dense_subset": 0,
            "train_subset": 20000,
        },
    },
    "full": {
        "lenet300": {
            "dense": 25,
            "prune_rounds": 3,
            "prune_epochs": 5,
            "finetune": 2,
            "fp_rounds": 2,
            "fp_epochs": 3,
            "slim_sparse": 5,
            "slim_retrain": 3,
            "tq_epochs": 10,
            "dense_subset": 0,
            "train_subset": 0,
        },
        "lenet5": {
            "dense": 10,
            "prune_rounds": 3,
            "prune_epochs": 3,
            "finetune": 2,
            "fp_rounds": 2,
            "fp_epochs": 3,
            "slim_sparse": 5,
            "slim_retrain": 3,
            "tq_epochs": 10,
            "dense_subset": 0,
            "train_subset": 0,
        },
        "resnet20": {
            "dense": 0,
            "prune_rounds": 3,
            "prune_epochs": 15,
            "finetune": 8,
            "fp_rounds": 3,
            "fp_epochs": 20,
            "slim_sparse": 10,
            "slim_retrain": 20,
            "tq_epochs": 30,
            "dense_subset": 0,
            "train_subset": 0,
        },
    },
}


def _say(msg: str) -> None:
    print(f"[methods {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ternary_available() -> bool:
    """Whether this checkout's clustering accepts ``mode = "ternary"`` / ``"binary"``."""
    try:
        from mcu_dc.compression import ternary  # noqa: F401
        from mcu_dc.compression.cluster import ClusterConfig

        ClusterConfig(mode="ternary").validate()
        ClusterConfig(mode="binary").validate()
        return True
    except Exception:
        return False


def gpu_command(networks: str = "resnet20") -> str:
    return f"python bench/methods.py --schedule full --networks {networks} --device cuda"


# ------------------------------------------------------------------------------------ configs


def method_config(network: str, method: str, schedule: str) -> Any:
    """The :class:`CompressConfig` of one run: the network's recipe, sized by the schedule, with the
    method's stages turned on."""
    from mcu_dc.compression.config import recipe
    from mcu_dc.compression.train import TrainConfig

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    plan = PLANS[schedule][network]
    cfg = recipe(network)
    cifar = network == "resnet20"
    if plan["dense"]:
        cfg.dense.epochs = plan["dense"]
    cfg.prune.rounds, cfg.prune.retrain.epochs = plan["prune_rounds"], plan["prune_epochs"]
    cfg.finetune.epochs = plan["finetune"]
    cfg.train_subset = plan["train_subset"]
    retrain = cfg.prune.retrain  # the recipe's retraining optimizer, lr and augmentation
    fc = not cifar  # LeNets: prune neurons of fully connected layers too (LeNet-300 has nothing else)

    def structured_retrain(epochs: int) -> TrainConfig:
        t = copy.deepcopy(retrain)
        t.epochs = epochs
        return t

    if method in ("filter", "filter_dc", "binary_filter"):
        fp = cfg.filter_prune
        fp.enabled, fp.fc, fp.residual = True, fc, True
        fp.rounds, fp.retrain = plan["fp_rounds"], structured_retrain(plan["fp_epochs"])
        fp.budget = 0.01 if cifar else 0.005
        fp.max_fraction = 0.75
        if cifar:
            fp.grid = [0.25, 0.4, 0.5, 0.6, 0.7, 0.75]
    if method in ("slim_dc", "slim_dc_distill", "slim_dc_distill_3b", "slim_ternary", "slim_ternary_distill"):
        sl = cfg.slimming
        sl.enabled, sl.fc, sl.residual = True, fc, True
        sl.percent, sl.max_fraction, sl.scope = (0.4 if cifar else 0.5), 0.8, "global"
        sl.penalty = 1e-4
        sl.sparse_train = structured_retrain(plan["slim_sparse"])
        sl.retrain = structured_retrain(plan["slim_retrain"])
    if method in ("dc_distill", "slim_dc_distill", "slim_dc_distill_3b", "slim_ternary_distill"):
        cfg.distill.enabled = True
        cfg.distill.temperature, cfg.distill.alpha = 4.0, 0.5
    if method == "slim_dc_distill_3b":  # DQC's Table 1: LeNet holds its accuracy with 3-bit codebooks
        cfg.cluster.conv_bits, cfg.cluster.fc_bits = 3, 3
    if method in ("filter", "ternary", "binary", "binary_filter"):
        cfg.prune.enabled = False
    if method == "filter":
        cfg.cluster.conv_bits, cfg.cluster.fc_bits = 8, 8
        cfg.cluster.mode, cfg.cluster.dqc_zero = "shared", False
    if method in TERNARY_METHODS:
        cfg.cluster.mode = "binary" if method.startswith("binary") else "ternary"
        cfg.cluster.dqc_zero = False
        if cifar:
            cfg.finetune = TrainConfig(
                epochs=plan["tq_epochs"],
                lr=1e-3,
                momentum=0.9,
                weight_decay=0.0,
                batch_size=128,
                grad_clip=1.0,
                augment_crop=4,
                augment_flip=True,
            )
        else:
            cfg.finetune = TrainConfig(
                epochs=plan["tq_epochs"], lr=1e-3, optimizer="adam", weight_decay=0.0, augment_shift=2
            )
    cfg.validate()
    return cfg


def _settings(cfg: Any) -> dict[str, Any]:
    d = cfg.to_dict()
    keep = ("dense", "prune", "cluster", "finetune", "val_size", "train_subset", "seed")
    out = {k: d[k] for k in keep}
    for k in ("filter_prune", "slimming", "distill"):
        if d[k]["enabled"]:
            out[k] = d[k]
    return out


# ------------------------------------------------------------------------------------ one run


def run_path(results_dir: Path, schedule: str, network: str, method: str) -> Path:
    return results_dir / "methods_runs" / schedule / f"{network}_{method}.json"


def model_cache(schedule: str, network: str, method: str) -> Path:
    return CACHE / "methods" / schedule / f"{network}_{method}.mcudc"


def _dense_macs(layer: Any) -> int:
    """MACs of the layer with every weight of its remaining channels kept."""
    import numpy as np

    from mcu_dc.core.ops import spec_of

    m = int(spec_of(layer).macs(layer))
    a = getattr(layer, "assign", None)
    if a is None:
        return m
    a = np.asarray(a)
    kept = int((a >= 0).sum())
    return round(m * a.size / kept) if kept else 0


def measure_device(cm: Any, dataset: str, n: int, data_dir: str | None, board: str = BOARD) -> dict[str, Any]:
    """Build the whole firmware for ``board`` and run the first ``n`` test images under QEMU
    (``-icount``)."""
    from mcu_dc.device.harness import LinkSettings
    from mcu_dc.device.verify import VerifySettings, build_firmware, load_test_inputs, run_on_qemu
    from mcu_dc.errors import FitError

    with tempfile.TemporaryDirectory(prefix="methods_fw_") as tmp:
        try:
            fw = build_firmware(cm, board, Path(tmp))
        except FitError as exc:
            return {"board": board, "fits": False, "why": str(exc).split(". ")[0]}
        x, y = load_test_inputs(
            dataset,
            tuple(cm.model.input_shape),
            data_dir=data_dir,
            limit=n,
            input_norm=cm.meta.get("input_norm"),
            input_kind=cm.model.input_kind,
        )
        settings = VerifySettings(board=board, progress=False, link=LinkSettings(reply_timeout_s=60.0))
        rep = run_on_qemu(cm, board, fw.elf, x, y, settings)
        return {
            "board": board,
            "fits": True,
            "n": rep.n,
            "bit_exact": rep.bit_exact,
            "instructions_median": rep.counter_median,
            "instructions_max": rep.counter_max,
            "flash": fw.fit.flash_used,
            "ram": fw.fit.ram_used,
        }


def ensure_dense(network: str, cfg: Any, train_set: Any, test_set: Any, cache: Path, args: Any) -> None:
    """Train the network's dense model once for the schedule (on ``dense_subset`` training samples,
    0: all) and write the pipeline's ``--pretrained`` cache, which every method's run then loads."""
    from mcu_dc.compression.models import build_model
    from mcu_dc.compression.pipeline import dense_and_prune

    dcfg = copy.deepcopy(cfg)
    dcfg.train_subset = PLANS[args.schedule][network]["dense_subset"]
    dcfg.prune.enabled = dcfg.filter_prune.enabled = dcfg.slimming.enabled = dcfg.distill.enabled = False
    _say(f"{network}: dense training ({dcfg.dense.epochs} epochs), cached as {cache}")
    t0 = time.perf_counter()
    dense_and_prune(
        build_model(network, NETWORKS[network]["input_shape"]),
        train_set,
        test_set,
        dcfg,
        device=args.device,
        pretrained=cache,
        progress=not args.no_progress,
        say=lambda m: _say(f"{network}/dense: {m}"),
    )
    _say(f"{network}: dense model cached in {time.perf_counter() - t0:.0f} s")


def run_one(network: str, method: str, args: argparse.Namespace, command: str) -> dict[str, Any]:
    """One pipeline run: compress, measure, save the model to the cache; the run's record."""
    import torch

    from mcu_dc.compression.models import build_model
    from mcu_dc.compression.pipeline import run_pipeline
    from mcu_dc.data import load_train_test

    net = NETWORKS[network]
    cfg = method_config(network, method, args.schedule)
    train_set, test_set = load_train_test(net["dataset"], args.data_dir)
    weights = None
    pretrained = None
    if net.get("weights"):
        weights = Path(args.shared_dir) / net["weights"]
    else:
        plan = PLANS[args.schedule][network]  # the cache's name says how it was trained
        pretrained = CACHE / f"methods_{network}_dense{plan['dense']}_{plan['dense_subset'] or 'all'}.pt"
    tag = f"{network}/{method}"
    if pretrained is not None and not pretrained.is_file():
        ensure_dense(network, cfg, train_set, test_set, pretrained, args)
    t0 = time.perf_counter()
    cm, art = run_pipeline(
        build_model(network, net["input_shape"]),
        train_set,
        test_set,
        cfg,
        device=args.device,
        name=f"{network}_{method}",
        pretrained=pretrained,
        weights=weights,
        progress=not args.no_progress,
        log=lambda m: _say(f"{tag}: {m}"),
    )
    compress_s = time.perf_counter() - t0
    out = model_cache(args.schedule, network, method)
    out.parent.mkdir(parents=True, exist_ok=True)
    cm.save(out)
    rep = cm.meta["report"]
    t1 = time.perf_counter()
    device: dict[str, Any] = {}
    if args.verify_n > 0:
        _say(f"{tag}: {args.verify_n} test images on {BOARD} (QEMU -icount)")
        device = measure_device(cm, net["dataset"], args.verify_n, args.data_dir)
    small: dict[str, Any] = {}
    if args.verify_n > 0 and network in SMALL_BOARD_NETWORKS:
        _say(f"{tag}: {args.verify_n} test images on {SMALL_BOARD} (Cortex-M0, 16 KB RAM)")
        small = measure_device(cm, net["dataset"], args.verify_n, args.data_dir, SMALL_BOARD)
    verify_s = time.perf_counter() - t1
    st = cm.meta.get("structured") or {}
    macs_dense = sum(_dense_macs(layer) for layer in cm.model.layers)
    acc = art.accuracy
    rec: dict[str, Any] = {
        "network": network,
        "method": method,
        "schedule": args.schedule,
        "status": "done",
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "device_train": str(args.device),
        "torch_threads": torch.get_num_threads(),
        "integer_pct": 100.0 * acc["integer"],
        "error_pct": 100.0 * (1.0 - acc["integer"]),
        "n_test": len(test_set) if not cfg.test_subset else cfg.test_subset,
        "float_pct": {k: 100.0 * v for k, v in acc.items() if k != "integer"},
        "blob_bytes": len(cm.blob),
        "original_bytes": int(rep["original_bytes"]),
        "ratio": rep["original_bytes"] / len(cm.blob),
        "arena_bytes": int(rep["arena_bytes"]),
        "macs": int(rep["macs"]),
        "macs_dense": macs_dense,
        "kept_pct": float(rep["kept_pct"]),
        "encodings": {r["name"]: r["encoding"] for r in rep["layers"] if "encoding" in r},
        "codebook_len": {r["name"]: r["codebook_len"] for r in rep["layers"] if "codebook_len" in r},
        "sparsity": {k: round(float(v), 4) for k, v in art.sparsity.items()},
        "structured": {
            k: st[k]
            for k in (
                "methods",
                "macs_before",
                "macs_after",
                "arena_bytes_before",
                "arena_bytes_after",
                "params_before",
                "params_after",
                "layers",
            )
            if k in st
        },
        "device": device,
        "device_small": small,
        "model_hash": f"0x{cm.model_hash:08x}",
        "mcudc_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "wall_s": {"compress": round(compress_s, 1), "verify": round(verify_s, 1)},
        "timings_s": {k: round(v, 1) for k, v in art.timings.items()},
        "dense_weights": cm.meta.get("dense_weights"),
        "plan": PLANS[args.schedule][network],
        "settings": _settings(cfg),
    }
    return rec


# ------------------------------------------------------------------------------------ summary


def collect(results_dir: Path) -> list[dict[str, Any]]:
    runs = []
    base = results_dir / "methods_runs"
    for p in sorted(base.glob("*/*.json")) if base.is_dir() else []:
        try:
            runs.append(json.loads(p.read_text()))
        except (json.JSONDecodeError, OSError) as exc:
            _say(f"skipping unreadable {p}: {exc}")
    return runs


def run_model_file(run: dict[str, Any]) -> Path | None:
    """The run's cached model file when it is the very file the run wrote (same sha256), else None."""
    src = model_cache(run["schedule"], run["network"], run["method"])
    if src.is_file() and hashlib.sha256(src.read_bytes()).hexdigest() == run.get("mcudc_sha256"):
        return src
    return None


def fill_encodings(run: dict[str, Any]) -> dict[str, Any]:
    """Per-layer encodings of a run recorded before they were kept (a list of names): read from its
    cached model file when that is the very file the run wrote (same sha256)."""
    if isinstance(run.get("encodings"), dict) or run.get("status") != "done":
        return run
    src = run_model_file(run)
    if src is not None:
        from mcu_dc.core.model_file import load
        from mcu_dc.core.qmath import Encoding

        cm = load(src)
        names = cm.meta.get("layer_names") or [layer.name for layer in cm.model.layers]
        run = {
            **run,
            "encodings": {
                names[i]: Encoding(layer.encoding).name
                for i, layer in enumerate(cm.model.layers)
                if hasattr(layer, "encoding")
            },
        }
    return run


def fill_small_board(args: argparse.Namespace, command: str) -> None:
    """Measure on the micro:bit the runs of :data:`SMALL_BOARD_NETWORKS` recorded before that
    measurement existed, from their cached model file when it is the very file the run wrote."""
    from mcu_dc.core.model_file import load
    from mcu_dc.fileio import write_text_atomic

    for run in collect(args.results_dir):
        if run["network"] not in SMALL_BOARD_NETWORKS or run.get("status") != "done" or "device_small" in run:
            continue
        tag = f"{run['network']}/{run['method']} ({run['schedule']})"
        src = run_model_file(run)
        if src is None:
            _say(f"{tag}: no cached model, not measured on {SMALL_BOARD}")
            continue
        _say(f"{tag}: {args.verify_n} test images on {SMALL_BOARD}")
        run["device_small"] = measure_device(
            load(src), NETWORKS[run["network"]]["dataset"], args.verify_n, args.data_dir, SMALL_BOARD
        )
        run["device_small_command"] = command
        path = run_path(args.results_dir, run["schedule"], run["network"], run["method"])
        write_text_atomic(path, json.dumps(run, indent=1, default=float) + "\n")


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (bytes, accuracy) that no other point beats on both (fewer bytes or equal,
    higher accuracy or equal, one strictly)."""
    front = []
    for i, (b, a) in enumerate(points):
        if not any(
            (b2 <= b and a2 >= a) and (b2 < b or a2 > a) for j, (b2, a2) in enumerate(points) if j != i
        ):
            front.append(i)
    return front


def summarize(runs: list[dict[str, Any]], ternary_ok: bool) -> dict[str, Any]:
    """Rows for every network × method (runs, and placeholders for what was not run), the Pareto
    front per network, and the goals' verdicts."""
    rows: list[dict[str, Any]] = []
    done = {(r["network"], r["method"]) for r in runs if r.get("status") == "done"}
    for network in NETWORKS:
        net_runs = [r for r in runs if r["network"] == network and r.get("status") == "done"]
        pts = [(r["blob_bytes"], r["integer_pct"]) for r in net_runs]
        front = set(pareto(pts))
        for i, r in enumerate(net_runs):
            rows.append({**r, "pareto": i in front})
        for method in METHODS:
            if (network, method) in done:
                continue
            if method in TERNARY_METHODS and not ternary_ok:
                status = "not available yet"
            elif network == "resnet20":
                status = f"needs GPU: `{gpu_command()}`"
            else:
                status = "not run (CPU time)"
            rows.append({"network": network, "method": method, "status": status})
    order = {m: i for i, m in enumerate(METHODS)}
    net_order = {n: i for i, n in enumerate(NETWORKS)}
    rows.sort(key=lambda r: (net_order[r["network"]], order.get(r["method"], 99), r.get("schedule", "")))
    return {"rows": rows, "goals": goals(rows)}


def goals(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for network in ("lenet300", "lenet5"):
        g = GOALS[network]
        done = [r for r in rows if r["network"] == network and r.get("status") == "done"]
        text = f"≥ {g['min_ratio']:.0f}× at ≤ {g['max_error_pct']:.2f} % test error (integer model)" + (
            ", per-layer choices automatic" if network == "lenet5" else ""
        )
        meeting = [r for r in done if r["ratio"] >= g["min_ratio"] and r["error_pct"] <= g["max_error_pct"]]
        if not done:
            out[network] = {"goal": text, "met": None, "why": "no run yet"}
            continue
        ok_err = [r for r in done if r["error_pct"] <= g["max_error_pct"]]
        ok_ratio = [r for r in done if r["ratio"] >= g["min_ratio"]]
        if meeting:
            best = max(meeting, key=lambda r: r["ratio"])
            why = f"{best['method']} ({best['schedule']}): {best['ratio']:.1f}× at {best['error_pct']:.2f} %"
        else:
            parts = []
            if ok_err:
                b = max(ok_err, key=lambda r: r["ratio"])
                parts.append(
                    f"largest ratio within the error bound: {b['ratio']:.1f}× "
                    f"({b['method']}, {b['schedule']})"
                )
            else:
                b = min(done, key=lambda r: r["error_pct"])
                parts.append(
                    f"no run within {g['max_error_pct']:.2f} % error; lowest {b['error_pct']:.2f} % "
                    f"({b['method']}, {b['schedule']}, {b['ratio']:.1f}×)"
                )
            if ok_ratio:
                b = min(ok_ratio, key=lambda r: r["error_pct"])
                parts.append(
                    f"lowest error at ≥ {g['min_ratio']:.0f}×: {b['error_pct']:.2f} % ({b['method']}, "
                    f"{b['schedule']}, {b['ratio']:.1f}×)"
                )
            why = "; ".join(parts)
        schedules = sorted({r["schedule"] for r in done})
        out[network] = {"goal": text, "met": bool(meeting), "why": why, "schedules": schedules}
    g = GOALS["resnet20"]
    text = (
        f"filter pruning: ≥ {g['min_mac_reduction']:.0f}× fewer MACs "
        f"at ≥ {g['min_accuracy_pct']:.0f} % accuracy"
    )
    fp = [
        r
        for r in rows
        if r["network"] == "resnet20" and r.get("status") == "done" and r["method"] in ("filter", "filter_dc")
    ]
    if not fp:
        out["resnet20"] = {"goal": text, "met": None, "why": f"not run: needs GPU, `{gpu_command()}`"}
    else:

        def red(r: dict[str, Any]) -> float:
            st = r.get("structured") or {}
            return st["macs_before"] / st["macs_after"] if st.get("macs_after") else 1.0

        meeting = [
            r for r in fp if red(r) >= g["min_mac_reduction"] and r["integer_pct"] >= g["min_accuracy_pct"]
        ]
        best = max(meeting or fp, key=lambda r: (r["integer_pct"] >= g["min_accuracy_pct"], red(r)))
        out["resnet20"] = {
            "goal": text,
            "met": bool(meeting),
            "why": f"{best['method']} ({best['schedule']}): {red(best):.2f}× fewer MACs "
            f"at {best['integer_pct']:.2f} %",
            "schedules": sorted({r["schedule"] for r in fp}),
        }
    return out


def _fmt_int(v: Any) -> str:
    return f"{v:,.0f}" if isinstance(v, (int, float)) else "—"


def render_md(data: dict[str, Any]) -> str:
    cmds = data.get("commands") or [data.get("command", "python bench/methods.py")]
    lines = ["```", *cmds, "```", "", "# Compression methods alone and with Deep Compression (issue 11)", ""]
    lines += [
        f"{data.get('date', '')}. Machine: {data.get('machine', '?')}; torch {data.get('torch', '?')}. "
        "Every accuracy is the **integer** model's (the bit-exact simulator) on all test images "
        "(10,000 MNIST or CIFAR-10). bytes: the `.mcudc` blob the firmware links (everything the device "
        "needs); ratio: "
        "float32 parameters (weights + biases) / those bytes. Arena: the planned activation RAM of the "
        "integer model. MACs: of the kept (non-zero) weights, which the sparse kernels execute; dense MACs: "
        "of the remaining channels with every weight kept (structured pruning lowers it). Instructions: "
        f"QEMU `-icount` on the emulated Cortex-M4 ({BOARD}), the median over the first test images "
        "(bit-exact column: device outputs equal to the simulator's), flash / RAM of the whole firmware. "
        "Sparsity and channel fractions are chosen by the pipeline on a validation split of 5,000 training "
        "images (sensitivity analysis), never on the test set; slimming removes a fixed fraction of "
        "channels (by |γ|). ★: on the Pareto front of accuracy vs bytes of its network.",
        "",
    ]
    lines += ["## Goals", "", "| network | goal | schedule(s) | met? | best |", "|---|---|---|---|---|"]
    for network, g in data["goals"].items():
        met = {True: "**met**", False: "**not met**", None: "not measured"}[g["met"]]
        lines.append(
            f"| {NETWORKS[network]['title']} | {g['goal']} | {', '.join(g.get('schedules', [])) or '—'} | "
            f"{met} | {g['why']} |"
        )
    lines += [
        "",
        "The goals are the issue's, for the full schedules (the recipes). A run with `--schedule cpu` trains "
        "each stage for one or two epochs (and the dense model for a few): its figures are lower bounds of "
        "what the methods reach, not the methods' limits.",
        "",
    ]
    for network, net in NETWORKS.items():
        rows = [r for r in data["rows"] if r["network"] == network]
        lines += [f"## {net['title']}", ""]
        lines += [
            "| method | schedule | accuracy | error | bytes | ratio | kept | arena | MACs (kept) "
            "| dense MACs | instr. / inference | bit-exact | flash / RAM | train + sim. (s) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            name = f"{r['method']}" + (" ★" if r.get("pareto") else "")
            if r.get("status") != "done":
                lines.append(f"| {name} | {r['status']} |" + " |" * 12)
                continue
            d = r.get("device") or {}
            instr = _fmt_int(d.get("instructions_median")) if d.get("fits", True) else "does not fit"
            be = f"{d['bit_exact']}/{d['n']}" if d.get("n") else "—"
            fr = f"{d['flash']:,} / {d['ram']:,}" if d.get("flash") else "—"
            lines.append(
                f"| {name} | {r['schedule']} | {r['integer_pct']:.2f} % | {r['error_pct']:.2f} % | "
                f"{r['blob_bytes']:,} | {r['ratio']:.1f}× | {r['kept_pct']:.1f} % | {r['arena_bytes']:,} | "
                f"{r['macs']:,} | {r['macs_dense']:,} | {instr} | {be} | {fr} | "
                f"{r['wall_s']['compress']:.0f} |"
            )
        lines.append("")
        small = [r for r in rows if r.get("status") == "done" and r.get("device_small")]
        if small:
            lines += [
                f"Whole firmware on the micro:bit ({SMALL_BOARD}: Cortex-M0 without DSP or hardware divide, "
                "256 KB flash, 16 KB RAM), the same model file; linker figures and QEMU `-icount`:",
                "",
                "| method | schedule | fits | flash / RAM (of 262,144 / 16,384) | bit-exact "
                "| instr. / inference |",
                "|---|---|---|---:|---:|---:|",
            ]
            for r in small:
                d = r["device_small"]
                if not d.get("fits"):
                    lines.append(f"| {r['method']} | {r['schedule']} | **no**: {d.get('why', '')} | | | |")
                    continue
                lines.append(
                    f"| {r['method']} | {r['schedule']} | yes | {d['flash']:,} / {d['ram']:,} | "
                    f"{d['bit_exact']}/{d['n']} | {_fmt_int(d.get('instructions_median'))} |"
                )
            lines.append("")
        for r in rows:
            if r.get("status") != "done":
                continue
            bits = ["float: " + ", ".join(f"{k} {v:.2f} %" for k, v in r["float_pct"].items())]
            if r.get("sparsity") and any(v > 0 for v in r["sparsity"].values()):
                bits.append("sparsity " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in r["sparsity"].items()))
            st = r.get("structured") or {}
            if st.get("layers"):
                bits.append(
                    f"{' + '.join(st.get('methods', []))}: channels "
                    + ", ".join(
                        f"{k} {v['channels_before']}→{v['channels_after']}" for k, v in st["layers"].items()
                    )
                    + f"; dense MACs {st['macs_before']:,} → {st['macs_after']:,}"
                    f" ({st['macs_before'] / max(st['macs_after'], 1):.2f}× fewer)"
                )
            if isinstance(r.get("encodings"), dict) and r["encodings"]:
                bits.append("encodings " + ", ".join(f"{k} {v}" for k, v in r["encodings"].items()))
            if r.get("codebook_len"):
                bits.append("codebook entries " + ", ".join(f"{k} {v}" for k, v in r["codebook_len"].items()))
            lines.append(f"* **{r['method']}** ({r['schedule']}): " + "; ".join(bits) + ".")
        lines.append("")
    lines += ["## Settings of the schedules", ""]
    for sched, nets in PLANS.items():
        for network, p in nets.items():
            lines.append(f"* `{sched}` {network}: " + ", ".join(f"{k} {v}" for k, v in p.items()))
    lines += [
        "",
        "Epochs per stage: dense (0: the pretrained weights), unstructured pruning rounds × retraining "
        "epochs, centroid fine-tuning, filter pruning rounds × retraining epochs, slimming sparsity training "
        "and retraining, ternary/binary fine-tuning (TTQ / BWN train during it). dense_subset: training "
        "images of the dense model (0: all 55,000 or 45,000 left after the 5,000-image validation split); "
        "train_subset: the random training images every later stage retrains on (0: all); the sensitivity "
        "analyses always use the whole validation split. Each run's full settings "
        "are in `bench/results/methods_runs/<schedule>/<network>_<method>.json`.",
        "",
    ]
    if data.get("models"):
        lines += [
            "Pareto-front models kept for `mcu-dc simulate FILE --dataset mnist`: "
            + ", ".join(f"`{m}`" for m in data["models"]),
            "",
        ]
    return "\n".join(lines) + "\n"


def render_png(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = list(NETWORKS)
    fig, axes = plt.subplots(1, len(nets), figsize=(5.2 * len(nets), 4.4))
    markers = dict(zip(METHODS, "osD^v<>pP", strict=False))
    for ax, network in zip(axes, nets, strict=False):
        rows = [r for r in data["rows"] if r["network"] == network and r.get("status") == "done"]
        ax.set_title(NETWORKS[network]["title"])
        ax.set_xlabel("bytes of the .mcudc blob")
        ax.set_ylabel("integer test accuracy (%)")
        if not rows:
            ax.text(
                0.5,
                0.5,
                "not run\n(needs GPU)" if network == "resnet20" else "not run",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        for r in rows:
            ax.scatter(
                r["blob_bytes"],
                r["integer_pct"],
                marker=markers.get(r["method"], "o"),
                s=40,
                label=f"{r['method']} ({r['schedule']})",
            )
        accs = [r["integer_pct"] for r in rows]
        pad = max(0.2, (max(accs) - min(accs)) * 0.1)
        ax.set_ylim(min(accs) - pad, min(100.0, max(accs) + pad))  # never an axis above 100 %
        front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["blob_bytes"])
        if front:
            ax.step(
                [r["blob_bytes"] for r in front],
                [r["integer_pct"] for r in front],
                where="post",
                color="k",
                lw=1,
                ls="--",
                label="Pareto front",
            )
            ax.scatter(
                [r["blob_bytes"] for r in front],
                [r["integer_pct"] for r in front],
                s=140,
                facecolors="none",
                edgecolors="k",
            )
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_summary(data: dict[str, Any], results_dir: Path) -> None:
    from mcu_dc.fileio import write_text_atomic

    results_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(results_dir / "methods.json", json.dumps(data, indent=1, default=float) + "\n")
    write_text_atomic(results_dir / "methods.md", render_md(data))
    render_png(data, results_dir / "methods.png")


def publish_models(data: dict[str, Any], results_dir: Path) -> list[str]:
    """Copy the Pareto-front LeNet models (cached by their runs) into the results folder and remove
    results-folder copies of models no longer on a front."""
    keep: list[str] = []
    for r in data["rows"]:
        if r.get("status") != "done" or not r.get("pareto") or r["network"] not in ("lenet300", "lenet5"):
            continue
        src = run_model_file(r)
        dst = results_dir / f"methods_{r['network']}_{r['method']}.mcudc"
        if src is not None:
            tmp = dst.with_name(dst.name + ".tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        if dst.is_file():
            keep.append(dst.name)
        else:
            cache = model_cache(r["schedule"], r["network"], r["method"])
            _say(f"{cache} is missing or not the run's file: {dst.name} not written")
    for p in results_dir.glob("methods_*.mcudc"):
        if p.name not in keep:
            p.unlink()
    return sorted(keep)


def build_data(runs: list[dict[str, Any]], command: str) -> dict[str, Any]:
    import torch

    ternary_ok = ternary_available()
    s = summarize([fill_encodings(r) for r in runs], ternary_ok)
    cmds = []
    for r in runs:
        if r.get("command") and r["command"] not in cmds:
            cmds.append(r["command"])
    return {
        "command": command,
        "commands": cmds or [command],
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs",
        "torch": torch.__version__,
        "goals_spec": GOALS,
        "plans": PLANS,
        "ternary_available": ternary_ok,
        **s,
    }


# ------------------------------------------------------------------------------------ command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schedule", choices=SCHEDULES, default="cpu")
    ap.add_argument("--networks", default="lenet300", help=f"comma-separated: {', '.join(NETWORKS)}")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated: {', '.join(METHODS)}")
    ap.add_argument("--device", default="cpu", help="torch device for training: cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--verify-n", type=int, default=20, help="test images run on QEMU per model (0: none)")
    ap.add_argument("--data-dir", default=None, help="datasets (default: ../shared/data or MCU_DC_DATA)")
    ap.add_argument(
        "--shared-dir",
        default=str(ROOT.parent / "shared" / "data"),
        help="folder holding cifar10_resnets/ (the pretrained ResNet-20)",
    )
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--force", action="store_true", help="rerun runs whose result JSON exists")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite methods.md and methods.png from methods.json, nothing else",
    )
    args = ap.parse_args(argv)
    if args.render_only:
        return args
    nets = [n for n in args.networks.split(",") if n]
    methods = [m for m in args.methods.split(",") if m]
    bad = [n for n in nets if n not in NETWORKS]
    if bad or not nets:
        ap.error(f"--networks: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(NETWORKS)}")
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        ap.error(f"--methods: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(METHODS)}")
    if len(set(nets)) != len(nets) or len(set(methods)) != len(methods):
        ap.error("--networks and --methods must not repeat a name")
    if args.verify_n < 0 or args.threads < 0:
        ap.error("--verify-n and --threads must be >= 0")
    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        ap.error(f"--device {args.device!r}: use cpu or cuda")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: torch sees no CUDA device here; use --schedule cpu on this machine")
    args.network_list, args.method_list = nets, methods
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python bench/methods.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.render_only:
        from mcu_dc.fileio import write_text_atomic

        data = json.loads((args.results_dir / "methods.json").read_text())
        runs = data.get("runs") or [r for r in data.get("rows", []) if r.get("status") == "done"]
        runs = [{k: v for k, v in r.items() if k != "pareto"} for r in runs]
        data.update(summarize(runs, bool(data.get("ternary_available", True))))
        write_text_atomic(args.results_dir / "methods.json", json.dumps(data, indent=1, default=float) + "\n")
        write_text_atomic(args.results_dir / "methods.md", render_md(data))
        render_png(data, args.results_dir / "methods.png")
        _say(f"rendered {args.results_dir / 'methods.md'} and methods.png")
        return 0
    import torch

    from mcu_dc.fileio import write_text_atomic

    if args.threads:
        torch.set_num_threads(args.threads)
    ternary_ok = ternary_available()
    todo = [(n, m) for n in args.network_list for m in args.method_list]
    for k, (network, method) in enumerate(todo, 1):
        tag = f"[{k}/{len(todo)}] {network}/{method} ({args.schedule})"
        path = run_path(args.results_dir, args.schedule, network, method)
        if method in TERNARY_METHODS and not ternary_ok:
            _say(f"{tag}: skipped, ternary/binary weights are not available in this checkout")
            continue
        if path.is_file() and not args.force:
            _say(f"{tag}: skipped, {path.relative_to(args.results_dir)} exists (--force reruns)")
            continue
        _say(f"{tag}: start")
        t0 = time.perf_counter()
        rec = run_one(network, method, args, command)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(rec, indent=1, default=float) + "\n")
        d = rec["device"]
        _say(
            f"{tag}: done in {time.perf_counter() - t0:.0f} s: {rec['integer_pct']:.2f} % integer, "
            f"{rec['blob_bytes']:,} B ({rec['ratio']:.1f}×), arena {rec['arena_bytes']:,} B, "
            f"MACs {rec['macs']:,}, {_fmt_int(d.get('instructions_median'))} instructions, "
            f"bit-exact {d.get('bit_exact', '-')}/{d.get('n', '-')}"
        )
        data = build_data(collect(args.results_dir), command)
        data["models"] = publish_models(data, args.results_dir)
        write_summary(data, args.results_dir)
    if args.verify_n > 0:
        fill_small_board(args, command)
    data = build_data(collect(args.results_dir), command)
    data["models"] = publish_models(data, args.results_dir)
    write_summary(data, args.results_dir)
    _say(f"wrote {args.results_dir / 'methods.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
