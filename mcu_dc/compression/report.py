"""The compression report, in the spirit of Deep Compression's Tables 2–4.

Byte counts come from :func:`mcu_dc.core.blob.layer_byte_breakdown`, and the total is the
serialized blob's length: everything a device needs (header, tensor table, op
descriptors, codebooks, biases, Huffman tables, bitstreams and padding) is counted. The
report also shows the graph: every op with its input and output tensors, every tensor
with its shape, zero point, scale and planned arena offset.
Torch-free: ``mcu-dc report`` works on any ``.mcudc`` file.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from mcu_dc.core import ir
from mcu_dc.core.blob import layer_byte_breakdown
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.ops import spec_of
from mcu_dc.core.planner import buffers, plan_of
from mcu_dc.core.qmath import Encoding


def coding_settings(cm: CompressedModel) -> tuple[int, int]:
    """(max_code_len, lut_bits) the file's Huffman streams were written with."""
    cfg = cm.meta.get("config") or {}
    return int(cfg.get("max_code_len", 12)), int(cfg.get("lut_bits", 6))


def build_report(cm: CompressedModel) -> dict[str, Any]:
    """Per-layer and total figures of a compressed model (JSON-ready)."""
    max_len, lut = coding_settings(cm)
    parts = layer_byte_breakdown(cm.model, max_code_len=max_len, lut_bits=lut)
    by_index = {p["index"]: p for p in parts}
    names = cm.meta.get("layer_names") or [layer.name for layer in cm.model.layers]
    layers: list[dict[str, Any]] = []
    for i, layer in enumerate(cm.model.layers):
        p = by_index[i]
        row: dict[str, Any] = {"name": names[i] if i < len(names) else layer.name, "op": layer.op.name}
        row["bytes"] = int(p["total"])
        row["inputs"], row["output"] = list(layer.inputs), int(layer.output)
        row["macs"] = spec_of(layer).macs(layer)
        if ir.is_weight_op(layer):
            a = np.asarray(layer.assign)
            n = int(a.size)
            kept = int((a >= 0).sum())
            k = len(layer.codebook)
            entries = int(p.get("n_entries", kept))
            w_bits = p["weight_stream"]["n_bits"]
            i_bits = p["relative_index_stream"]["n_bits"]
            orig = 4 * (n + len(layer.bias))
            enc = Encoding(layer.encoding)
            ins, measured_activity = _instructions(cm, i, layer)
            row.update(
                {
                    "encoding": enc.name,
                    # CONV2D: the gather kernel or the scatter kernels (docs/format.md, "Gather convolution")
                    "kernel": "gather" if int(getattr(layer, "gather", 0)) else "",
                    "instructions_m4": ins,  # predicted (mcu_dc/core/objective.py)
                    "activity_measured": measured_activity,
                    "weights": n,
                    "kept": kept,
                    "kept_pct": 100.0 * kept / n if n else 0.0,
                    "codebook_len": k,
                    "entries": entries,
                    "fillers": int(p.get("fillers", entries - kept)),
                    "weight_bits_pq": math.ceil(math.log2(max(k, 2))),
                    "weight_bits_huffman": w_bits / entries if entries else 0.0,
                    "index_bits_pq": int(layer.index_bits),
                    "index_bits_huffman": i_bits / entries if entries else 0.0,
                    "parts": {
                        "descriptor": p["descriptor"],
                        "codebook": p["codebook"],
                        "bias": p["bias"],
                        "weight_stream": p["weights"],
                        "index_stream": p["index_stream"],
                    },
                    "original_bytes": orig,
                    "ratio": orig / row["bytes"] if row["bytes"] else 0.0,
                }
            )
        layers.append(row)
    objective = (cm.meta.get("objective") or {}).get("objective")
    # the blob's own length: a version 1 file keeps its smaller header and no tensor table
    total = len(cm.blob)
    header = total - sum(int(r["bytes"]) for r in layers)
    original = int(cm.meta.get("original_bytes") or sum(r.get("original_bytes", 0) for r in layers))
    n_w = sum(r.get("weights", 0) for r in layers)
    kept = sum(r.get("kept", 0) for r in layers)
    return {
        "name": cm.name,
        "dataset": cm.meta.get("dataset"),
        "original_bytes": original,
        "total_bytes": total,
        "blob_bytes": len(cm.blob),
        "header_bytes": header,
        "format_version": int.from_bytes(cm.blob[4:6], "little"),
        "task": cm.model.task,
        "input_kind": cm.model.input_kind.name,
        "notes": list(cm.meta.get("notes") or []),
        "tensors": _tensors(cm),
        "macs": sum(int(r["macs"]) for r in layers),
        "ratio": original / total if total else 0.0,
        "weights": n_w,
        "kept": kept,
        "kept_pct": 100.0 * kept / n_w if n_w else 0.0,
        "accuracy": _in_stage_order(cm.meta.get("accuracy", {})),
        "metrics": _in_stage_order(cm.meta.get("metrics", {})),
        "layers": layers,
        "model_hash": f"0x{cm.model_hash:08x}",
        "objective": objective,
        "instructions_m4": sum(int(r.get("instructions_m4", 0)) for r in layers),
        "arena_bytes": cm.model.arena_bytes(),
        # structured pruning: channels, MACs and arena of the dense network before/after (or None)
        "structured": cm.meta.get("structured"),
    }


def _instructions(cm: CompressedModel, i: int, layer: Any) -> tuple[int, bool]:
    """Predicted Cortex-M4 instructions of weight op i: as the compression measured them (with the
    inputs' activity on its data) when the file records them, else for all-non-zero inputs."""
    from mcu_dc.core.objective import predict_instructions

    rec = ((cm.meta.get("objective") or {}).get("layers") or {}).get(layer.name)
    if rec and rec.get("encoding") == Encoding(layer.encoding).name and "instructions_m4" in rec:
        return int(rec["instructions_m4"]), True
    return predict_instructions(layer, Encoding(layer.encoding)), False


def _tensors(cm: CompressedModel) -> list[dict[str, Any]]:
    m = cm.model
    plan = plan_of(m)
    tbufs, _ = buffers(m)
    scales = list(m.tensor_scales or [])
    zps = m.tensor_zps()
    return [
        {
            "id": t,
            "shape": list(m.tensor_shapes()[t]),
            "bytes": b.size,
            "zp": zps[t],
            "scale": float(scales[t]) if t < len(scales) else 0.0,
            "arena_off": plan.tensor_offsets[t],
            "live": [b.first, b.last],
            "role": "input" if t == m.input_tensor else ("output" if t == m.output_tensor else ""),
        }
        for t, b in enumerate(tbufs)
    ]


def graph_markdown(rep: dict[str, Any]) -> list[str]:
    """The graph: ops with their tensors, then tensors with shape, quantization and arena offset."""
    lines = ["| # | op | name | inputs | output | MACs |", "|---:|---|---|---|---:|---:|"]
    for i, r in enumerate(rep["layers"]):
        ins = ", ".join(f"T{t}" for t in r["inputs"])
        lines.append(f"| {i} | {r['op']} | {r['name']} | {ins} | T{r['output']} | {r['macs']} |")
    lines += [
        "",
        "| tensor | shape (C×H×W) | bytes | zero point | scale | arena offset | alive (ops) |",
    ]
    lines.append("|---|---|---:|---:|---:|---:|---|")
    for t in rep["tensors"]:
        role = f" ({t['role']})" if t["role"] else ""
        first, last = t["live"]
        live = f"{'in' if first < 0 else first}..{'end' if last >= len(rep['layers']) else last}"
        lines.append(
            f"| T{t['id']}{role} | {'×'.join(map(str, t['shape']))} | {t['bytes']} | {t['zp']} | "
            f"{t['scale']:.6g} | {t['arena_off']} | {live} |"
        )
    return lines


def to_markdown(rep: dict[str, Any]) -> str:
    lines = [
        f"# Compression report: {rep['name']} ({rep.get('dataset') or 'unknown dataset'})",
        "",
        "| layer | op | encoding | weights | kept % | k | weight bits P+Q | +Huffman | index bits P+Q "
        "| +Huffman | bytes | ratio | instructions (M4) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    worst = False
    for r in rep["layers"]:
        if "weights" in r:
            enc = r.get("encoding", "HUFFMAN_SPARSE")
            huff = enc in ("HUFFMAN_SPARSE", "HUFFMAN_JOINT")
            wb = f"{r['weight_bits_huffman']:.2f}" if huff else "–"
            ib = f"{r['index_bits_huffman']:.2f}" if enc == "HUFFMAN_SPARSE" else "–"
            if enc == "HUFFMAN_JOINT":  # one code per (run, index) pair: all its bits in the weight column
                wb, ib = f"{wb} (pair)", "in pair"
            ibq = r["index_bits_pq"] if huff else "–"
            star = "" if r.get("activity_measured", True) else "*"
            worst = worst or bool(star)
            ins = f"{r['instructions_m4']:,}{star}" if "instructions_m4" in r else ""
            shown = r.get("encoding", "") + (" (gather)" if r.get("kernel") == "gather" else "")
            lines.append(
                f"| {r['name']} | {r['op']} | {shown} | {r['weights']} | "
                f"{r['kept_pct']:.1f} | {r['codebook_len']} | {r['weight_bits_pq']} | {wb} | {ibq} | {ib} | "
                f"{r['bytes']} | {r['ratio']:.1f}× | {ins} |"
            )
        else:
            lines.append(f"| {r['name']} | {r['op']} | | | | | | | | | {r['bytes']} | | |")
    lines.append(
        f"| **total** | | | {rep['weights']} | {rep['kept_pct']:.1f} | | | | | | **{rep['total_bytes']}** "
        f"(header and tensor table {rep['header_bytes']}) | **{rep['ratio']:.1f}×** | "
        f"{rep.get('instructions_m4', 0):,} |"
    )
    lines += [
        "",
        "Instructions: the weight ops' kernels on a Cortex-M4, predicted by the cost model of "
        "mcu_dc/core/objective.py (checked against QEMU in bench/results/kernel_speed.md and "
        "graph_speed.md); (gather): the conv runs the gather kernel"
        + (f"; encodings chosen for objective `{rep['objective']}`." if rep.get("objective") else ".")
        + (" *: assuming no input is zero (the file records no measured activity)." if worst else ""),
    ]
    lines += [
        "",
        f"Original (fp32 weights + biases): {rep['original_bytes']} bytes; "
        f"compressed blob: {rep['total_bytes']} bytes (= serialized size); ratio {rep['ratio']:.1f}×.",
        f"Arena (RAM for activations): {rep['arena_bytes']} bytes. Model hash {rep['model_hash']}. "
        f"Format version {rep['format_version']}; task {rep['task']}; input {rep['input_kind']}; "
        f"{rep['macs']} MACs per inference (kept weights).",
        "",
    ]
    lines += [f"Note: {n}" for n in rep.get("notes") or []]
    if rep.get("structured"):
        from mcu_dc.compression.structured_report import markdown as structured_markdown

        lines += ["## Structured pruning", "", *structured_markdown(rep["structured"])]
    lines += ["## Graph", "", *graph_markdown(rep), ""]
    acc = rep.get("accuracy") or {}
    if rep.get("metrics") and rep.get("task") != "classification":
        from mcu_dc.data.metrics import metrics_markdown

        lines.append(metrics_markdown(str(rep["task"]), rep["metrics"]))
    elif acc:
        lines += ["| stage | test accuracy | test error |", "|---|---:|---:|"]
        for stage, a in acc.items():
            lines.append(f"| {stage} | {100 * a:.2f} % | {100 * (1 - a):.2f} % |")
        lines.append("")
    return "\n".join(lines)


# The pipeline's order; the .mcudc metadata is stored with sorted keys, so order here.
STAGE_ORDER = ("dense", "structured", "pruned", "clustered", "quantized", "integer")


def _in_stage_order(acc: dict[str, Any]) -> dict[str, Any]:
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    return {k: acc[k] for k in sorted(acc, key=lambda k: (rank.get(k, len(rank)), k))}


def to_json(rep: dict[str, Any]) -> str:
    return json.dumps(rep, indent=2, sort_keys=False)
