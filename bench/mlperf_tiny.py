"""MLPerf Tiny reference networks, compressed from their published weights, on the emulated Cortex-M4.

For each reference model (Banbury et al., *MLPerf Tiny Benchmark*, NeurIPS 2021 datasets track;
weights imported from ``../shared/data/mlperf_tiny`` by :mod:`mcu_dc.compression.mlperf`), this
captures the float network, shares its weights with k-means (the trained weights, no pruning and
no retraining: no training data is available here except CIFAR-10), quantizes it (int8 tensors,
Huffman-coded sparse streams) and measures:

* the model blob in bytes against the reference int8 ``.tflite``;
* on ``qemu-mps2-an386`` under ``-icount``: bit-exact agreement with the simulator, instructions
  per inference, and the linker's whole-firmware flash and RAM;
* ResNet-8 only: CIFAR-10 accuracy of the integer model (all 10,000 test images and the MLPerf
  200 ``perf_samples_idxs.npy``). DS-CNN, MobileNet and the autoencoder: accuracy is NOT
  measured (no Speech Commands, Visual Wake Words or ToyCar data here); their calibration data
  is stated per model and affects only the activation ranges.

TFLM + CMSIS-NN figures are the issue's, measured on the same emulated board with the same icount
method. ``python bench/mlperf_tiny.py [--models a,b] [--bits 5] [--n 200] [--out bench/results]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mcu_dc.compression import cluster  # noqa: E402
from mcu_dc.compression.capture import capture  # noqa: E402
from mcu_dc.compression.cluster import ClusterConfig  # noqa: E402
from mcu_dc.compression.mlperf import MLPERF_MODELS, build_mlperf, default_weights  # noqa: E402
from mcu_dc.compression.quantize import QuantConfig, to_integer_model  # noqa: E402
from mcu_dc.core.model_file import CompressedModel  # noqa: E402
from mcu_dc.core.simulator import simulate  # noqa: E402
from mcu_dc.data import load_dataset  # noqa: E402
from mcu_dc.data.datasets import Dataset  # noqa: E402
from mcu_dc.device.harness import LinkSettings  # noqa: E402
from mcu_dc.device.verify import VerifySettings, build_firmware, run_on_qemu  # noqa: E402

BOARD = "qemu-mps2-an386"
SHARED = ROOT.parent / "shared" / "data" / "mlperf_tiny"
# The table: TFLM + CMSIS-NN on qemu-mps2-an386 (instructions, whole-firmware flash, RAM incl.
# arena, int8 .tflite bytes) and the MACs of each reference model.
_COLS = ("macs", "instructions", "flash", "ram", "tflite")
TFLM = {
    name: dict(zip(_COLS, vals, strict=True))
    for name, vals in {
        "dscnn": (2_656_768, 7_700_726, 107_724, 22_940, 53_936),
        "resnet8": (12_501_632, 29_864_177, 150_088, 55_116, 98_496),
        "mobilenet_v1_025": (7_489_664, 24_104_074, 387_076, 100_828, 333_288),
        "fc_autoencoder": (264_192, 583_512, 305_460, 3_024, 276_976),
    }.items()
}
INT8_TFLITE = {
    "dscnn": "keyword_spotting/kws_ref_model.tflite",
    "resnet8": "image_classification/pretrainedResnet_quant.tflite",
    "mobilenet_v1_025": "visual_wake_words/vww_96_int8.tflite",
    "fc_autoencoder": "anomaly_detection/ad01_int8.tflite",
}


def calibration(name: str, n: int, seed: int = 0) -> tuple[Dataset, str]:
    """Calibration inputs for ``name`` and what they are."""
    rng = np.random.default_rng(seed)
    if name == "resnet8":
        ds = load_dataset("cifar10", "train")
        ds = ds.subset(np.sort(rng.permutation(len(ds))[:n]))
        return dataclasses.replace(ds, input_scale=1.0), f"{n} random CIFAR-10 training images (raw pixels)"
    if name == "mobilenet_v1_025":
        ds = load_dataset("cifar10", "train")
        x = ds.images[np.sort(rng.permutation(len(ds))[:n])].repeat(3, axis=2).repeat(3, axis=3)
        return Dataset("cifar-96", x, np.zeros(n, np.int64), 1 / 255, num_classes=2), (
            f"{n} CIFAR-10 training images upscaled 3x to 96x96 (stand-ins for Visual Wake Words)"
        )
    if name == "dscnn":
        lo, hi = (-128 - 83) * 0.5847, (127 - 83) * 0.5847  # the int8 .tflite's input range
        x = rng.uniform(lo, hi, (n, 1, 49, 10)).astype(np.float32)
        return Dataset("uniform-mfcc", x, np.zeros(n, np.int64), num_classes=12), (
            f"{n} uniform random 49x10 feature maps over the int8 reference's input range "
            f"[{lo:.1f}, {hi:.1f}]"
        )
    raw = np.fromfile(SHARED / "anomaly_detection" / "normal_id_01_00000000_hist_librosa.bin", dtype="<f4")
    x = raw.reshape(-1, 640)
    return Dataset("toycar", x, x.copy(), task="regression"), (
        f"the {len(x)} consecutive 640-value slices of the shared ToyCar sample"
    )


def compress_reference(name: str, bits: int, n_calib: int) -> tuple[CompressedModel, str, Dataset]:
    torch.manual_seed(0)
    model = build_mlperf(name, pretrained=True)
    calib, what = calibration(name, n_calib)
    net = capture(model, calib.input_shape)
    cluster.cluster_net(net, ClusterConfig(conv_bits=bits, fc_bits=bits))
    im = to_integer_model(net, calib, QuantConfig(auto_index_bits=True), torch.device("cpu"), name)
    meta = {
        "name": name,
        "dense_weights": {"source": "reference", "path": str(default_weights(name))},
        "notes": [
            f"k-means {bits}-bit weight sharing of the reference weights, no pruning, no retraining",
            f"calibration: {what}",
        ],
    }
    return CompressedModel(im, meta), what, calib


def device_inputs(
    name: str, cm: CompressedModel, calib: Dataset, n: int
) -> tuple[np.ndarray, np.ndarray | None]:
    if name == "resnet8":
        idx = np.load(SHARED / "image_classification" / "perf_samples_idxs.npy")[:n]
        test = load_dataset("cifar10", "test")
        return test.images[idx].reshape(len(idx), -1), test.labels[idx]
    if name == "mobilenet_v1_025":
        test = load_dataset("cifar10", "test")
        x = test.images[:n].repeat(3, axis=2).repeat(3, axis=3)
        return x.reshape(n, -1), None
    if name == "fc_autoencoder":
        x = calib.x[:n]
    else:
        x = np.random.default_rng(1).uniform(-123.4, 25.7, (n, *cm.model.input_shape)).astype(np.float32)
    return x.reshape(len(x), -1), None


def measure(name: str, bits: int, n: int, work: Path, out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    cm, calib_what, calib = compress_reference(name, bits, 2000 if name != "mobilenet_v1_025" else 500)
    cm.save(out / f"mlperf_{name}.mcudc")
    row: dict[str, Any] = {
        "model": name,
        "calibration": calib_what,
        "blob_bytes": len(cm.blob),
        "tflite_int8_bytes": (SHARED / INT8_TFLITE[name]).stat().st_size,
        "macs": cm.model.macs(),
        "weights": sum(int(np.asarray(op.assign).size) for op in cm.model.weight_ops()),
        "arena_bytes": cm.model.arena_bytes(),
        "model_hash": f"0x{cm.model_hash:08x}",
    }
    row["ratio_vs_tflite"] = row["tflite_int8_bytes"] / row["blob_bytes"]
    fw = build_firmware(cm, BOARD, work)
    row["flash"], row["ram"] = fw.fit.flash_used, fw.fit.ram_used
    x, y = device_inputs(name, cm, calib, n)
    settings = VerifySettings(board=BOARD, progress=False, link=LinkSettings(reply_timeout_s=60.0))
    rep = run_on_qemu(cm, BOARD, fw.elf, x, y, settings)
    row.update(device_n=rep.n, bit_exact=rep.bit_exact, instructions=rep.instructions_per_inference)
    if name == "resnet8":
        test = load_dataset("cifar10", "test")
        pred = simulate(cm, test.images).argmax(1)
        row["accuracy_10000"] = float((pred == test.labels).mean())
        idx = np.load(SHARED / "image_classification" / "perf_samples_idxs.npy")
        row["accuracy_perf_samples"] = float((pred[idx] == test.labels[idx]).mean())
        row["device_accuracy_perf_samples"] = rep.device_accuracy
    row["tflm"] = TFLM[name]
    row["seconds"] = time.perf_counter() - t0
    print(f"{name}: {json.dumps({k: v for k, v in row.items() if k != 'tflm'})}", flush=True)
    return row


INTRO = (
    "Each model: the published weights (imported and checked against the float `.tflite` under LiteRT, "
    "`tests/mlperf/`), k-means {bits}-bit weight sharing per layer, **no pruning and no retraining** (no "
    "training data here except CIFAR-10), int8 tensors, Huffman-coded streams (the only encoding so far). "
    "QEMU `-icount shift=0`: instructions are deterministic. Every device output is compared with the "
    "simulator. TFLM + CMSIS-NN columns are the issue's figures on the same board."
)
HEAD = (
    "| model | MACs | blob B | int8 .tflite B | smaller | bit-exact | instructions / inference "
    "| TFLM + CMSIS-NN | flash B (TFLM) | RAM B (TFLM) | accuracy |"
)
OUTRO = (
    "Reading the table: without pruning, the Huffman-sparse kernels decode two streams per weight of a "
    "dense layer, so they are slower than CMSIS-NN's dense SIMD here; the fast encoding and the pruned, "
    "retrained models are issues 9 and 10. The `.mcudc` files are committed as "
    "`bench/results/mlperf_<model>.mcudc`."
)


def _accuracy(r: dict[str, Any]) -> str:
    if "accuracy_10000" not in r:
        return "unmeasured (no data here)"
    return (
        f"{100 * r['accuracy_10000']:.2f} % (10,000 test images), "
        f"{100 * r['accuracy_perf_samples']:.1f} % (MLPerf 200 perf samples)"
    )


def markdown(rows: list[dict[str, Any]], cmd: str, bits: int) -> str:
    machine = f"Machine: {platform.machine()}, CPython {platform.python_version()}."
    lines = ["```", cmd, "```", "", f"# MLPerf Tiny reference networks on {BOARD} (mcu_dc)", ""]
    lines += [
        f"{machine} {INTRO.format(bits=bits)}",
        "",
        HEAD,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        t = r["tflm"]
        cells = [
            r["model"], f"{r['macs']:,}", f"{r['blob_bytes']:,}", f"{r['tflite_int8_bytes']:,}",
            f"{r['ratio_vs_tflite']:.2f}×", f"{r['bit_exact']}/{r['device_n']}", f"{r['instructions']:,.0f}",
            f"{t['instructions']:,} ({r['instructions'] / t['instructions']:.2f}×)",
            f"{r['flash']:,} ({t['flash']:,})", f"{r['ram']:,} ({t['ram']:,})", _accuracy(r),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Calibration data (activation ranges only):", ""]
    lines += [f"* {r['model']}: {r['calibration']}" for r in rows]
    lines += ["", OUTRO, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MLPERF_MODELS))
    ap.add_argument("--bits", type=int, default=5, help="codebook bits per layer (k-means, no retraining)")
    ap.add_argument("--n", type=int, default=200, help="inputs streamed to the device per model (max)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    cmd = "python bench/mlperf_tiny.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            n = min(args.n, 20) if name == "mobilenet_v1_025" else args.n
            n = min(n, 40) if name == "fc_autoencoder" else n
            rows.append(measure(name, args.bits, n, Path(tmp), args.out))
    (args.out / "mlperf_tiny.json").write_text(json.dumps({"command": cmd.strip(), "rows": rows}, indent=1))
    (args.out / "mlperf_tiny.md").write_text(markdown(rows, cmd.strip(), args.bits))
    print(f"wrote {args.out / 'mlperf_tiny.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
