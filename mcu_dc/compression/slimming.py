"""Network slimming (Liu et al., *Learning Efficient Convolutional Networks through Network
Slimming*, ICCV 2017): an L1 penalty ``λ·Σ|γ|`` on BatchNorm scale factors during training, then
the channels with the smallest ``|γ|`` are removed and the network retrained.

The captured graph has BatchNorm folded into its convolutions (capture folds it, and the dense
stage trains the folded graph), so slimming puts it back for its sparsity training: every layer
producing prunable channels becomes a :class:`SlimLayer`, the convolution followed by a
``BatchNorm2d`` whose running statistics are the pre-activation mean and variance measured on
training samples and whose ``γ = sqrt(var + eps)``, ``β = mean`` -- in eval mode exactly the
layer it replaces, and ``|γ|`` is the channel's output scale. The penalty's subgradient
``λ·sign(γ)`` is added to ``γ``'s gradient by a tensor hook, so the ordinary training loop
(:func:`mcu_dc.compression.train.train`) trains with it. Afterwards the BatchNorm is folded
back (exact in eval mode), the channel groups of :mod:`mcu_dc.compression.channel_surgery` are
ranked by the summed ``|γ|`` of their producing filters, the lowest are removed (``percent``
of all prunable channels at once -- ``scope = "global"`` -- or of each group), and the
smaller network is retrained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mcu_dc.compression.channel_surgery import ChannelGraph, channels, remove_channels
from mcu_dc.compression.filter_prune import n_to_remove, validate_common
from mcu_dc.compression.graph import GraphNet, WeightLayer, _pad_input, clamp_bounds
from mcu_dc.compression.train import TrainConfig, train
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError

SCOPES = ("global", "layer")


@dataclass
class SlimmingConfig:
    """``[slimming]``: BatchNorm-scale L1 sparsity training, then channel removal."""

    enabled: bool = False
    penalty: float = 1e-4  # λ of λ·Σ|γ| (Liu et al. use 1e-5 .. 1e-4)
    rounds: int = 1  # sparsity train -> remove -> retrain iterations
    percent: float = 0.3  # fraction of the prunable channels removed per round
    scope: str = "global"  # global: one |γ| ranking over all groups; layer: percent of each group
    max_fraction: float = 0.8  # at most this fraction of a group's original channels removed in all
    min_channels: int = 1
    fc: bool = False  # also slim fully connected layers' neurons (BatchNorm1d-style on (N, C, 1, 1))
    residual: bool = True  # also slim channel groups joined by residual adds
    calib_samples: int = 2000  # training samples measuring the re-inserted BatchNorm's statistics
    sparse_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=5, lr=0.01))
    retrain: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, lr=0.01))

    def validate(self, where: str = "slimming") -> None:
        validate_common(self, where)
        if not self.penalty >= 0.0:
            raise ConfigError(f"{where}.penalty = {self.penalty}: λ of the L1 penalty on |γ| must be >= 0")
        if not 0.0 <= self.percent < 1.0:
            raise ConfigError(
                f"{where}.percent = {self.percent}: the fraction of channels removed is in [0, 1)"
            )
        if self.scope not in SCOPES:
            raise ConfigError(
                f"{where}.scope = {self.scope!r} is not one of {', '.join(SCOPES)} (one ranking of |γ| over "
                "all channel groups, or percent of each group)"
            )
        if self.calib_samples < 1:
            raise ConfigError(f"{where}.calib_samples = {self.calib_samples}: at least one sample is needed")
        self.sparse_train.validate(f"{where}.sparse_train")
        self.retrain.validate(f"{where}.retrain")


class SlimLayer(WeightLayer):
    """A weight layer followed by a trainable BatchNorm before its activation bounds."""

    def __init__(self, wl: WeightLayer, penalty: float = 0.0) -> None:
        pt, pl, pb, pr = wl.pads
        w, b = wl.weight.detach().cpu(), wl.bias.detach().cpu()
        super().__init__(
            wl.name, wl.kind, w, b, wl.in_shape, wl.stride, (pt, pl), padding_end=(pb, pr),
            act=(wl.act_min, wl.act_max),
        )  # fmt: skip
        self.mask.copy_(wl.mask.detach().cpu())
        self.wire(wl.inputs, wl.output)
        self.bn = nn.BatchNorm2d(int(wl.weight.shape[0]))
        self.penalty = float(penalty)
        self.calibrating = False
        self._sum = torch.zeros(0, dtype=torch.float64)
        self._sq = torch.zeros(0, dtype=torch.float64)
        self._n = 0
        self.bn.weight.register_hook(self._penalty_grad)

    def _penalty_grad(self, grad: torch.Tensor) -> torch.Tensor:
        """The subgradient of ``penalty · Σ|γ|`` added to γ's gradient (Liu et al.'s update)."""
        if self.penalty == 0.0:
            return grad
        return grad + self.penalty * torch.sign(self.bn.weight.detach())

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight()
        if self.kind == "fc":
            return F.linear(x.flatten(1), w, self.bias)[:, :, None, None]
        x, pad = _pad_input(x, self.pads)
        return F.conv2d(x, w, self.bias, stride=self.stride, padding=pad, groups=self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pre_activation(x)
        if self.calibrating:  # the layer it replaces; accumulate the pre-activation statistics
            yd = y.detach().double()
            s, q = yd.sum((0, 2, 3)), (yd * yd).sum((0, 2, 3))
            self._sum = s if self._n == 0 else self._sum + s
            self._sq = q if self._n == 0 else self._sq + q
            self._n += y.shape[0] * y.shape[2] * y.shape[3]
            return clamp_bounds(y, self.act_min, self.act_max)
        return clamp_bounds(self.bn(y), self.act_min, self.act_max)

    @torch.no_grad()
    def start_from_statistics(self) -> None:
        """BatchNorm that is the identity in eval mode: running stats measured, γ = std, β = mean."""
        if self._n == 0:
            raise ConfigError(
                f"layer {self.name!r}: no calibration samples reached it; raise slimming.calib_samples"
            )
        mean = self._sum / self._n
        var = (self._sq / self._n - mean * mean).clamp_min(0.0)
        dev = self.weight.device
        self.bn.running_mean.copy_(mean.float().to(dev))
        self.bn.running_var.copy_(var.float().to(dev))
        self.bn.weight.copy_(torch.sqrt(var + self.bn.eps).float().to(dev))
        self.bn.bias.copy_(mean.float().to(dev))

    def gamma(self) -> np.ndarray:
        return self.bn.weight.detach().abs().cpu().double().numpy()

    @torch.no_grad()
    def folded(self) -> WeightLayer:
        """The plain weight layer computing what this one computes in eval mode."""
        bn = self.bn
        assert bn.running_mean is not None and bn.running_var is not None
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shape = (-1,) + (1,) * (self.weight.dim() - 1)
        pt, pl, pb, pr = self.pads
        w, b = self.weight * scale.reshape(shape), (self.bias - bn.running_mean) * scale + bn.bias
        out = WeightLayer(
            self.name, self.kind, w, b, self.in_shape, self.stride, (pt, pl), padding_end=(pb, pr),
            act=(self.act_min, self.act_max),
        )  # fmt: skip
        out.mask.copy_(self.mask)
        out.weight.data.mul_(out.mask)
        out.wire(self.inputs, self.output)
        return out.to(self.weight.device)


def slim_layers(net: GraphNet) -> list[SlimLayer]:
    return [n for n in net.nodes if isinstance(n, SlimLayer)]


@torch.no_grad()
def insert_batchnorm(
    net: GraphNet,
    graph: ChannelGraph,
    data: Dataset,
    penalty: float,
    calib_samples: int,
    device: torch.device,
) -> list[str]:
    """Turn every layer producing prunable channels into a :class:`SlimLayer` (in place); the
    outputs in eval mode are unchanged. Returns the names of the layers that got one."""
    names = {n for comp in graph.components if not comp.frozen for n, _ in comp.producers}
    for i, node in enumerate(net.nodes):
        if isinstance(node, WeightLayer) and not isinstance(node, SlimLayer) and node.name in names:
            if node.mode != "float":
                raise ConfigError(
                    f"layer {node.name!r} is in weight mode {node.mode!r}; slimming runs on the float "
                    "network, before weight sharing"
                )
            net.nodes[i] = SlimLayer(node, penalty).to(device)
    slim = slim_layers(net)
    for s in slim:
        s.calibrating = True
    net.eval()
    n = min(calib_samples, len(data))
    for i in range(0, n, 256):
        net(torch.from_numpy(data.float_inputs(slice(i, min(n, i + 256)))).to(device))
    for s in slim:
        s.calibrating = False
        s.start_from_statistics()
    return [s.name for s in slim]


def fold_batchnorm(net: GraphNet) -> dict[str, np.ndarray]:
    """Fold every :class:`SlimLayer` back (in place); returns ``|γ|`` per layer."""
    gammas: dict[str, np.ndarray] = {}
    for i, node in enumerate(net.nodes):
        if isinstance(node, SlimLayer):
            gammas[node.name] = node.gamma()
            net.nodes[i] = node.folded()
    return gammas


def gamma_scores(graph: ChannelGraph, gammas: dict[str, np.ndarray]) -> np.ndarray:
    """Per component, the summed ``|γ|`` of its producing filters."""
    return np.array(
        [sum(float(gammas[n][c]) for n, c in comp.producers if n in gammas) for comp in graph.components],
        dtype=np.float64,
    )


def choose_channels(
    graph: ChannelGraph, scores: np.ndarray, cfg: SlimmingConfig, original: dict[str, int]
) -> dict[str, list[int]]:
    """Components to remove per group: the lowest scores, globally or per group, within the caps."""
    groups = [g for g in graph.prunable_groups(cfg.min_channels) if g.name in original]
    room = {
        g.name: n_to_remove(cfg.max_fraction, original[g.name], len(g.prunable(graph)), cfg.min_channels, 1.0)
        for g in groups
    }
    out: dict[str, list[int]] = {g.name: [] for g in groups}
    if cfg.scope == "layer":
        for g in groups:
            n = min(room[g.name], round(cfg.percent * len(g.prunable(graph))))
            out[g.name] = graph.lowest(g, n, scores)
        return out
    cand = sorted((scores[ci], ci, g.name) for g in groups for ci in g.prunable(graph))
    budget = round(cfg.percent * len(cand))
    for _, ci, name in cand:
        if budget == 0:
            break
        if len(out[name]) < room[name]:
            out[name].append(ci)
            budget -= 1
    return out


def slim(
    net: GraphNet,
    fit: Dataset,
    cfg: SlimmingConfig,
    device: torch.device,
    *,
    progress: Any = False,
    say: Any = None,
    where: str = "slimming",
) -> tuple[GraphNet, list[dict[str, Any]]]:
    """``cfg.rounds`` rounds of sparsity training → removal of the lowest-|γ| channels → retraining."""
    say = say or (lambda msg: None)
    original: dict[str, int] = {}
    rounds: list[dict[str, Any]] = []
    for r in range(cfg.rounds):
        graph = ChannelGraph(net, fc=cfg.fc, residual=cfg.residual)
        if r == 0:
            original = {g.name: len(g.prunable(graph)) for g in graph.prunable_groups(cfg.min_channels)}
        insert_batchnorm(net, graph, fit, cfg.penalty, cfg.calib_samples, device)
        desc = f"{where} round {r + 1}/{cfg.rounds}"
        train(net, fit, cfg.sparse_train, device, desc=f"{desc}: sparsity training", progress=progress)
        gammas = fold_batchnorm(net)
        graph = ChannelGraph(net, fc=cfg.fc, residual=cfg.residual)
        scores = gamma_scores(graph, gammas)
        picked = choose_channels(graph, scores, cfg, original)
        drop = [ci for v in picked.values() for ci in v]
        all_g = np.concatenate(list(gammas.values())) if gammas else np.zeros(0)
        rec: dict[str, Any] = {
            "round": r + 1,
            "removed": {k: len(v) for k, v in picked.items() if v},
            "gamma_quantiles": [float(q) for q in np.quantile(all_g, [0.1, 0.25, 0.5, 0.75])]
            if len(all_g)
            else [],
            "threshold": float(max((scores[ci] for ci in drop), default=0.0)),
        }
        if drop:
            net = remove_channels(net, graph, drop).to(device)
            train(net, fit, cfg.retrain, device, desc=f"{desc}: retrain", progress=progress)
        rec["channels"] = channels(net)
        say(f"{where} round {r + 1}/{cfg.rounds}: removed {sum(rec['removed'].values())} channels")
        rounds.append(rec)
    return net, rounds
