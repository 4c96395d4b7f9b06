"""The compression report, in the spirit of Deep Compression's Tables 2–4.

Byte counts come from :func:`mcu_dc.core.blob.layer_byte_breakdown`, so the total is the
serialized blob's length: everything a device needs (header, layer descriptors,
codebooks, biases, Huffman tables, bitstreams and padding) is counted.
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


def _coding(cm: CompressedModel) -> tuple[int, int]:
    cfg = cm.meta.get("config") or {}
    return int(cfg.get("max_code_len", 12)), int(cfg.get("lut_bits", 6))


def build_report(cm: CompressedModel) -> dict[str, Any]:
    """Per-layer and total figures of a compressed model (JSON-ready)."""
    max_len, lut = _coding(cm)
    parts = layer_byte_breakdown(cm.model, max_code_len=max_len, lut_bits=lut)
    by_index = {p["index"]: p for p in parts}
    names = cm.meta.get("layer_names") or [layer.name for layer in cm.model.layers]
    layers: list[dict[str, Any]] = []
    for i, layer in enumerate(cm.model.layers):
        p = by_index[i]
        row: dict[str, Any] = {"name": names[i] if i < len(names) else layer.name, "op": layer.op.name}
        row["bytes"] = int(p["total"])
        if isinstance(layer, (ir.Conv2D, ir.FC)):
            a = np.asarray(layer.assign)
            n = int(a.size)
            kept = int((a >= 0).sum())
            k = len(layer.codebook)
            entries = int(p.get("n_entries", kept))
            w_bits = p["weight_stream"]["n_bits"]
            i_bits = p["relative_index_stream"]["n_bits"]
            orig = 4 * (n + len(layer.bias))
            row.update(
                {
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
    total = int(sum(p["total"] for p in parts))
    original = int(cm.meta.get("original_bytes") or sum(r.get("original_bytes", 0) for r in layers))
    n_w = sum(r.get("weights", 0) for r in layers)
    kept = sum(r.get("kept", 0) for r in layers)
    return {
        "name": cm.name,
        "dataset": cm.meta.get("dataset"),
        "original_bytes": original,
        "total_bytes": total,
        "blob_bytes": len(cm.blob),
        "header_bytes": int(by_index[-1]["total"]),
        "ratio": original / total if total else 0.0,
        "weights": n_w,
        "kept": kept,
        "kept_pct": 100.0 * kept / n_w if n_w else 0.0,
        "accuracy": _in_stage_order(cm.meta.get("accuracy", {})),
        "layers": layers,
        "model_hash": f"0x{cm.model_hash:08x}",
        "arena_bytes": cm.model.arena_bytes(),
    }


def to_markdown(rep: dict[str, Any]) -> str:
    lines = [
        f"# Compression report: {rep['name']} ({rep.get('dataset') or 'unknown dataset'})",
        "",
        "| layer | op | weights | kept % | k | weight bits P+Q | +Huffman | index bits P+Q | +Huffman "
        "| bytes | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rep["layers"]:
        if "weights" in r:
            lines.append(
                f"| {r['name']} | {r['op']} | {r['weights']} | {r['kept_pct']:.1f} | {r['codebook_len']} | "
                f"{r['weight_bits_pq']} | {r['weight_bits_huffman']:.2f} | {r['index_bits_pq']} | "
                f"{r['index_bits_huffman']:.2f} | {r['bytes']} | {r['ratio']:.1f}× |"
            )
        else:
            lines.append(f"| {r['name']} | {r['op']} | | | | | | | | {r['bytes']} | |")
    lines.append(
        f"| **total** | | {rep['weights']} | {rep['kept_pct']:.1f} | | | | | | **{rep['total_bytes']}** "
        f"(header {rep['header_bytes']}) | **{rep['ratio']:.1f}×** |"
    )
    lines += [
        "",
        f"Original (fp32 weights + biases): {rep['original_bytes']} bytes; "
        f"compressed blob: {rep['total_bytes']} bytes (= serialized size); ratio {rep['ratio']:.1f}×.",
        f"Arena (RAM for activations): {rep['arena_bytes']} bytes. Model hash {rep['model_hash']}.",
        "",
    ]
    acc = rep.get("accuracy") or {}
    if acc:
        lines += ["| stage | test accuracy | test error |", "|---|---:|---:|"]
        for stage, a in acc.items():
            lines.append(f"| {stage} | {100 * a:.2f} % | {100 * (1 - a):.2f} % |")
        lines.append("")
    return "\n".join(lines)


# The pipeline's order; the .mcudc metadata is stored with sorted keys, so order here.
STAGE_ORDER = ("dense", "pruned", "clustered", "quantized", "integer")


def _in_stage_order(acc: dict[str, float]) -> dict[str, float]:
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    return {k: acc[k] for k in sorted(acc, key=lambda k: (rank.get(k, len(rank)), k))}


def to_json(rep: dict[str, Any]) -> str:
    return json.dumps(rep, indent=2, sort_keys=False)
