"""Filter (channel) pruning by L1 norm (Li et al., *Pruning Filters for Efficient ConvNets*, ICLR 2017).

Each round ranks the channels of every prunable group (:mod:`mcu_dc.compression.channel_surgery`)
by the summed L1 norm of the filters producing them, measures per group how much the validation
score drops when the lowest-ranked fraction of its channels is removed alone (a grid of
fractions, as :mod:`mcu_dc.compression.sensitivity` does for unstructured pruning), removes in
every group the largest fraction within ``budget``, and retrains. Removal is physical: the
network that comes back is smaller, so the integer model's MACs, arena and flash all drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mcu_dc.compression.channel_surgery import ChannelGraph, Group, channels, remove_channels
from mcu_dc.compression.graph import GraphNet
from mcu_dc.compression.train import TrainConfig, evaluate, train
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError
from mcu_dc.progress import ProgressSettings, track


@dataclass
class FilterPruneConfig:
    """``[filter_prune]``: L1-norm filter pruning, before unstructured pruning."""

    enabled: bool = False
    rounds: int = 2  # rank -> sensitivity -> remove -> retrain iterations
    budget: float = 0.01  # validation score drop allowed per group and round (accuracy; -NMSE otherwise)
    max_fraction: float = 0.75  # at most this fraction of a group's original channels removed in all
    grid: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75])
    # explicit final fraction per group, named by any of its layers (skips the sensitivity analysis)
    fractions: dict[str, float] = field(default_factory=dict)
    min_channels: int = 1  # channels a group keeps at least
    fc: bool = False  # also prune the neurons of fully connected layers (the next layer's columns)
    residual: bool = True  # also prune channel groups joined by residual adds (pruned together)
    retrain: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, lr=0.01))

    def validate(self, where: str = "filter_prune") -> None:
        validate_common(self, where)
        if not 0.0 <= self.budget <= 1.0:
            raise ConfigError(f"{where}.budget = {self.budget}: the score drop allowed is in [0, 1]")
        if not self.grid or any(not 0.0 < f < 1.0 for f in self.grid):
            raise ConfigError(
                f"{where}.grid = {self.grid}: give at least one fraction of channels to try, each in (0, 1)"
            )
        for name, f in self.fractions.items():
            if not 0.0 <= f < 1.0:
                raise ConfigError(
                    f"{where}.fractions[{name!r}] = {f}: a fraction of channels removed is in [0, 1); 1.0 "
                    "would remove the whole layer"
                )
        self.retrain.validate(f"{where}.retrain")


def validate_common(cfg: Any, where: str) -> None:
    """Checks shared by ``[filter_prune]`` and ``[slimming]``."""
    if cfg.rounds < 1:
        raise ConfigError(f"{where}.rounds = {cfg.rounds}: at least one round is needed")
    if not 0.0 < cfg.max_fraction < 1.0:
        raise ConfigError(
            f"{where}.max_fraction = {cfg.max_fraction}: the most of a group's channels that may go is in "
            "(0, 1)"
        )
    if cfg.min_channels < 1:
        raise ConfigError(f"{where}.min_channels = {cfg.min_channels}: every layer keeps at least 1 channel")


# --------------------------------------------------------------------------- one group at a time


def n_to_remove(fraction: float, original: int, current: int, min_channels: int, max_fraction: float) -> int:
    """How many more channels go for ``fraction`` of ``original`` removed in all (capped)."""
    target = min(round(min(fraction, max_fraction) * original), original - min_channels)
    return max(0, min(target - (original - current), current - min_channels))


@dataclass
class GroupSensitivity:
    baseline: float
    groups: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # fraction, score

    def to_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "groups": self.groups}

    def choose(self, budget: float) -> dict[str, float]:
        """Per group, the largest fraction whose score drop is within ``budget`` (0 when none)."""
        out: dict[str, float] = {}
        for name, d in self.groups.items():
            best = 0.0
            for f, s in zip(d["fraction"], d["score"], strict=True):
                if self.baseline - s <= budget and f > best:
                    best = f
            out[name] = best
        return out


@torch.no_grad()
def analyze(
    net: GraphNet,
    graph: ChannelGraph,
    groups: list[Group],
    original: dict[str, int],
    data: Dataset,
    device: torch.device,
    cfg: FilterPruneConfig,
    *,
    progress: bool | ProgressSettings = False,
    desc: str = "filter sensitivity",
) -> GroupSensitivity:
    """Remove each group's lowest-L1 fraction of channels alone, for each fraction of the grid."""
    scores = graph.l1_scores()
    sens = GroupSensitivity(baseline=evaluate(net, data, device))
    todo: list[tuple[Group, float, int]] = []
    for g in groups:
        cur = len(g.prunable(graph))
        for f in sorted(set(cfg.grid)):
            n = n_to_remove(f, original[g.name], cur, cfg.min_channels, cfg.max_fraction)
            if n > 0 and not any(t[0] is g and t[2] == n for t in todo):
                todo.append((g, f, n))
    with track(desc, len(todo), unit="point", settings=progress) as bar:
        for g, f, n in todo:
            rec = sens.groups.setdefault(g.name, {"fraction": [], "score": []})
            trial = remove_channels(net, graph, graph.lowest(g, n, scores))
            rec["fraction"].append(float(f))
            rec["score"].append(float(evaluate(trial, data, device)))
            bar.update(1, group=g.name, fraction=float(f))
    return sens


def _check_names(cfg: FilterPruneConfig, graph: ChannelGraph, groups: list[Group], where: str) -> None:
    names = {n for g in groups for n in (g.name, *g.layers)}
    unknown = sorted(set(cfg.fractions) - names)
    if unknown:
        listing = "; ".join(f"{g.name} ({', '.join(g.layers)})" for g in groups) or "none"
        raise ConfigError(
            f"{where}.fractions names {unknown}, which produce no prunable channel group; the groups (and "
            f"the layers producing each) are: {listing}. Name a group by any of its layers"
        )


def _explicit(cfg: FilterPruneConfig, groups: list[Group]) -> dict[str, float]:
    out: dict[str, float] = {}
    for g in groups:
        for name in (g.name, *g.layers):
            if name in cfg.fractions:
                out[g.name] = cfg.fractions[name]
    return out


def prune_filters(
    net: GraphNet,
    fit: Dataset,
    val: Dataset,
    cfg: FilterPruneConfig,
    device: torch.device,
    *,
    progress: bool | ProgressSettings = False,
    say: Any = None,
    where: str = "filter_prune",
) -> tuple[GraphNet, list[dict[str, Any]]]:
    """``cfg.rounds`` rounds of rank → sensitivity → remove → retrain; returns the smaller net and a
    record per round (fractions chosen, the sensitivity, channels after)."""
    say = say or (lambda msg: None)
    original: dict[str, int] = {}
    rounds: list[dict[str, Any]] = []
    for r in range(cfg.rounds):
        graph = ChannelGraph(net, fc=cfg.fc, residual=cfg.residual)
        groups = graph.prunable_groups(cfg.min_channels)
        if r == 0:
            _check_names(cfg, graph, groups, where)
            original = {g.name: len(g.prunable(graph)) for g in groups}
        groups = [g for g in groups if g.name in original]
        explicit = _explicit(cfg, groups)
        rec: dict[str, Any] = {"round": r + 1}
        if groups and len(explicit) == len(groups):  # every group set by hand: ramp over the rounds
            target = {n: 1.0 - (1.0 - f) ** ((r + 1) / cfg.rounds) for n, f in explicit.items()}
        else:
            sens = analyze(
                net, graph, groups, original, val, device, cfg, progress=progress,
                desc=f"{where} round {r + 1}/{cfg.rounds}: sensitivity",
            )  # fmt: skip
            rec["sensitivity"] = sens.to_dict()
            target = {**sens.choose(cfg.budget), **explicit}
        scores = graph.l1_scores()
        drop: list[int] = []
        removed: dict[str, int] = {}
        for g in groups:
            n = n_to_remove(
                target.get(g.name, 0.0), original[g.name], len(g.prunable(graph)), cfg.min_channels,
                cfg.max_fraction,
            )  # fmt: skip
            if n:
                drop += graph.lowest(g, n, scores)
                removed[g.name] = n
        rec["fractions"] = {k: float(v) for k, v in target.items()}
        rec["removed"] = removed
        if drop:
            net = remove_channels(net, graph, drop).to(device)
            train(
                net,
                fit,
                cfg.retrain,
                device,
                desc=f"{where} round {r + 1}/{cfg.rounds}: retrain",
                progress=progress,
            )
        rec["channels"] = channels(net)
        say(
            f"{where} round {r + 1}/{cfg.rounds}: removed "
            + (", ".join(f"{k} {v}" for k, v in removed.items()) or "nothing")
        )
        rounds.append(rec)
    return net, rounds


def l1_ranking(net: GraphNet, layer: str) -> list[int]:
    """Output channels of ``layer`` from the smallest filter L1 norm to the largest (ties: lower index)."""
    wl = net.layer(layer)
    norms = (wl.weight.detach() * wl.mask).abs().reshape(wl.weight.shape[0], -1).sum(1).cpu().numpy()
    return [int(i) for i in np.argsort(norms, kind="stable")]
