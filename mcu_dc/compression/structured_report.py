"""The structured-pruning record of a model file as Markdown (torch-free: ``mcu-dc report`` uses it)."""

from __future__ import annotations

from typing import Any


def markdown(rec: dict[str, Any]) -> list[str]:
    """The record as a Markdown table (for reports)."""
    lines = [
        f"Structured pruning ({' + '.join(rec.get('methods', []))}): MACs {rec['macs_before']:,} → "
        f"{rec['macs_after']:,}, arena {rec['arena_bytes_before']} → {rec['arena_bytes_after']} B, "
        f"parameters {rec['params_before']:,} → {rec['params_after']:,}.",
        "",
        "| layer | channels before | after | MACs before | after |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rec["layers"].items():
        lines.append(
            f"| {name} | {r['channels_before']} | {r['channels_after']} | {r['macs_before']:,} | "
            f"{r['macs_after']:,} |"
        )
    return [*lines, ""]
