"""The structured-pruning stage of the pipeline: network slimming and/or L1 filter pruning.

Order of the whole compression: dense → **structured pruning (+ retraining)** → unstructured
pruning → clustering → encoding. This stage runs :func:`mcu_dc.compression.slimming.slim`
(``[slimming]``) and then :func:`mcu_dc.compression.filter_prune.prune_filters`
(``[filter_prune]``) when enabled, and returns the smaller network with a record for the
model file's metadata: per layer its channels, MACs before and after, the whole network's MACs,
parameters and planned arena bytes before and after (the integer model's arena: the planner's
figure for the network as it would be quantized), and each round's choices.
"""

from __future__ import annotations

from typing import Any

import torch

from mcu_dc.compression.channel_surgery import graph_costs
from mcu_dc.compression.filter_prune import FilterPruneConfig, prune_filters
from mcu_dc.compression.graph import GraphNet
from mcu_dc.compression.slimming import SlimmingConfig, slim
from mcu_dc.compression.structured_report import markdown  # noqa: F401  (re-exported)
from mcu_dc.data.datasets import Dataset
from mcu_dc.progress import ProgressSettings


def enabled(cfg: Any) -> bool:
    """True when the config (a :class:`CompressConfig`) asks for structured pruning."""
    fp: FilterPruneConfig | None = getattr(cfg, "filter_prune", None)
    sl: SlimmingConfig | None = getattr(cfg, "slimming", None)
    return bool((fp is not None and fp.enabled) or (sl is not None and sl.enabled))


def costs_record(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per layer channels and MACs, and totals, before and after (JSON-ready)."""
    layers: dict[str, dict[str, int]] = {}
    for name, c in before["channels"].items():
        layers[name] = {
            "channels_before": int(c),
            "channels_after": int(after["channels"].get(name, 0)),
            "macs_before": int(before["layer_macs"].get(name, 0)),
            "macs_after": int(after["layer_macs"].get(name, 0)),
        }
    return {
        "layers": layers,
        "macs_before": int(before["macs"]),
        "macs_after": int(after["macs"]),
        "params_before": int(before["params"]),
        "params_after": int(after["params"]),
        "arena_bytes_before": before["arena_bytes"],
        "arena_bytes_after": after["arena_bytes"],
    }


def run_stage(
    net: GraphNet,
    fit: Dataset,
    val: Dataset,
    cfg: Any,
    device: torch.device,
    *,
    progress: bool | ProgressSettings = False,
    say: Any = None,
) -> tuple[GraphNet, dict[str, Any]]:
    """Slimming and/or filter pruning of ``net`` per ``cfg`` (a :class:`CompressConfig`); returns the
    new network and the record (empty, and ``net`` itself, when neither is enabled)."""
    if not enabled(cfg):
        return net, {}
    say = say or (lambda msg: None)
    before = graph_costs(net, fit)
    record: dict[str, Any] = {"methods": []}
    sl: SlimmingConfig | None = getattr(cfg, "slimming", None)
    if sl is not None and sl.enabled:
        net, record["slimming"] = slim(net, fit, sl, device, progress=progress, say=say)
        record["methods"].append("slimming")
    fp: FilterPruneConfig | None = getattr(cfg, "filter_prune", None)
    if fp is not None and fp.enabled:
        net, record["filter_prune"] = prune_filters(net, fit, val, fp, device, progress=progress, say=say)
        record["methods"].append("filter_prune")
    after = graph_costs(net, fit)
    record.update(costs_record(before, after))
    say(
        f"structured ({' + '.join(record['methods'])}): MACs {record['macs_before']:,} -> "
        f"{record['macs_after']:,}, "
        f"arena {record['arena_bytes_before']:,} -> {record['arena_bytes_after']:,} B, parameters "
        f"{record['params_before']:,} -> {record['params_after']:,}"
    )
    return net, record
