"""Which channels of a :class:`GraphNet` must be removed together, and their physical removal.

Every channel of every tensor is a node of a union-find; operations that pass a channel through
unchanged join its input and output channel:

* max/average pooling and dropout: channel ``c`` in is channel ``c`` out;
* a residual :class:`AddNode`: channel ``c`` of both inputs and of the output;
* a depthwise convolution with multiplier ``m``: input channel ``c`` and output channels
  ``c*m .. c*m+m-1`` (a depthwise conv's channels follow its input);
* the option-A :class:`ChannelPad`: input channel ``c`` and output channel ``before + c`` (its
  zero channels are channels of the output alone).

A connected set is a :class:`Component`: the channels that are removed together. Standard
convolutions and fully connected layers start new channel spaces: their output channels are
their filters (the *producers* of the component, whose summed L1 norm ranks it) and their input
channels are the ones they read (removing one removes a slice of their weight: the input
channel of a convolution, the ``H*W`` matching columns of a fully connected layer after a
flatten or global pooling). Tensors joined the same way form a :class:`Group`, the unit of
per-layer sensitivity: in a chain a group is one layer's output; in a residual network all
tensors joined by adds (and, through option-A shortcuts, the stages they widen) form one.

Channels of the network's input and output never go, nor do those of a tensor read or written
by a node this module does not know. :func:`remove_channels` returns a new, smaller network
with the surviving weights copied; :func:`graph_costs` gives MACs and the planned arena.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mcu_dc.compression.graph import (
    AddNode,
    AvgPool,
    ChannelPad,
    DropoutNode,
    GraphNet,
    Node,
    Pool,
    WeightLayer,
)  # fmt: skip
from mcu_dc.errors import ModelError

Key = tuple[int, int]  # (tensor id, channel)


@dataclass
class Component:
    """Channels removed together: ``members`` (tensor, channel) and the filters writing them."""

    index: int
    members: list[Key]
    producers: list[tuple[str, int]] = field(default_factory=list)  # (weight layer name, output channel)
    frozen: bool = False
    group: int = -1


@dataclass
class Group:
    """Tensors whose channels are joined; its ``name`` is the first layer producing them."""

    index: int
    name: str
    tensors: list[int]
    layers: list[str]  # the conv / fc layers producing its channels (any of them names the group)
    components: list[int]  # every component of the group, in channel order of its first tensor

    def prunable(self, graph: ChannelGraph) -> list[int]:
        return [c for c in self.components if not graph.components[c].frozen]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _passes_through(node: Node) -> bool:
    return isinstance(node, (Pool, AvgPool, DropoutNode, AddNode))


class ChannelGraph:
    """The components and groups of ``net`` (see the module docstring).

    ``fc``: also prune the output neurons of fully connected layers (otherwise only
    convolution filters go); ``residual``: also prune channel groups joined by residual adds.
    """

    def __init__(self, net: GraphNet, *, fc: bool = False, residual: bool = True) -> None:
        self.net = net
        self.shapes = net.tensor_shapes()
        tensors = sorted(self.shapes)
        self.offset: dict[int, int] = {}
        n = 0
        for t in tensors:
            self.offset[t] = n
            n += int(self.shapes[t][0])
        uf, tuf = _UnionFind(n), _UnionFind(len(tensors))
        tpos = {t: i for i, t in enumerate(tensors)}
        frozen_t: set[int] = {net.input_tensor, net.output_tensor}
        add_t: set[int] = set()
        for node in net.nodes:
            o = node.output
            if isinstance(node, WeightLayer) and node.kind in ("conv", "fc"):
                if node.kind == "fc" and not fc:
                    frozen_t.add(o)
                continue
            if isinstance(node, WeightLayer) and node.kind == "dw":
                (i,) = node.inputs
                m = node.multiplier
                for c in range(int(self.shapes[i][0])):
                    for k in range(m):
                        uf.union(self.key(i, c), self.key(o, c * m + k))
                tuf.union(tpos[i], tpos[o])
            elif _passes_through(node):
                if isinstance(node, AddNode):
                    add_t.update((*node.inputs, o))
                for i in node.inputs:
                    for c in range(int(self.shapes[o][0])):
                        uf.union(self.key(i, c), self.key(o, c))
                    tuf.union(tpos[i], tpos[o])
            elif isinstance(node, ChannelPad):
                (i,) = node.inputs
                for c in range(int(self.shapes[i][0])):
                    uf.union(self.key(i, c), self.key(o, node.before + c))
                tuf.union(tpos[i], tpos[o])
            else:  # a node this module does not know: its channels stay
                frozen_t.update((*node.inputs, o))
        self._build(tensors, uf, tuf, tpos, frozen_t, add_t if not residual else set())

    def key(self, tensor: int, channel: int) -> int:
        return self.offset[tensor] + channel

    def _build(
        self,
        tensors: list[int],
        uf: _UnionFind,
        tuf: _UnionFind,
        tpos: dict[int, int],
        frozen_t: set[int],
        frozen_groups_of: set[int],
    ) -> None:
        roots: dict[int, int] = {}
        self.components: list[Component] = []
        self.of: dict[Key, int] = {}
        for t in tensors:
            for c in range(int(self.shapes[t][0])):
                r = uf.find(self.key(t, c))
                if r not in roots:
                    roots[r] = len(self.components)
                    self.components.append(Component(len(self.components), []))
                comp = self.components[roots[r]]
                comp.members.append((t, c))
                self.of[(t, c)] = comp.index
                comp.frozen = comp.frozen or t in frozen_t
        for node in self.net.nodes:
            if isinstance(node, WeightLayer) and node.kind in ("conv", "fc"):
                for c in range(int(node.weight.shape[0])):
                    self.components[self.of[(node.output, c)]].producers.append((node.name, c))
        groups: dict[int, Group] = {}
        for t in tensors:
            g = tuf.find(tpos[t])
            if g not in groups:
                groups[g] = Group(len(groups), "", [], [], [])
            groups[g].tensors.append(t)
        self.groups = list(groups.values())
        for grp in self.groups:
            seen: set[int] = set()
            for t in grp.tensors:
                for c in range(int(self.shapes[t][0])):
                    ci = self.of[(t, c)]
                    if ci not in seen:
                        seen.add(ci)
                        grp.components.append(ci)
                        self.components[ci].group = grp.index
            names = {n for ci in grp.components for n, _ in self.components[ci].producers}
            grp.layers = [wl.name for wl in self.net.weight_layers() if wl.name in names]
            grp.name = grp.layers[0] if grp.layers else f"tensor {grp.tensors[0]}"
            if frozen_groups_of & set(grp.tensors):
                for ci in grp.components:
                    self.components[ci].frozen = True

    # ------------------------------------------------------------------ queries
    def prunable_groups(self, min_channels: int = 1) -> list[Group]:
        """Groups with more than ``min_channels`` removable components."""
        return [g for g in self.groups if len(g.prunable(self)) > min_channels]

    def group(self, name: str) -> Group:
        for g in self.groups:
            if name == g.name or name in g.layers:
                return g
        raise KeyError(name)

    def l1_scores(self) -> np.ndarray:
        """Per component, the summed L1 norm of its producing filters (weight × mask)."""
        norms: dict[str, np.ndarray] = {}
        for wl in self.net.weight_layers():
            if wl.kind in ("conv", "fc"):
                w = (wl.weight.detach() * wl.mask).abs().reshape(wl.weight.shape[0], -1).sum(1)
                norms[wl.name] = w.cpu().double().numpy()
        return np.array(
            [sum(float(norms[n][c]) for n, c in comp.producers) for comp in self.components], dtype=np.float64
        )

    def lowest(self, group: Group, n: int, scores: np.ndarray) -> list[int]:
        """The ``n`` removable components of ``group`` with the smallest scores (ties: lower index)."""
        cand = group.prunable(self)
        order = sorted(cand, key=lambda ci: (scores[ci], ci))
        return order[: max(0, n)]

    def keep_lists(self, drop: Iterable[int]) -> dict[int, list[int]]:
        gone = set(drop)
        bad = [ci for ci in gone if self.components[ci].frozen]
        if bad:
            comp = self.components[bad[0]]
            raise ModelError(
                f"channel group {self.groups[comp.group].name!r}: channel {comp.members[0][1]} of tensor "
                f"{comp.members[0][0]} cannot be removed (it is a channel of the network's input or output, "
                "or of a node structured pruning does not handle); leave it out of the channels to remove"
            )
        return {
            t: [c for c in range(int(s[0])) if self.of[(t, c)] not in gone] for t, s in self.shapes.items()
        }


# --------------------------------------------------------------------------- surgery


def _param(old: nn.Parameter, value: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(value.detach().clone().contiguous(), requires_grad=old.requires_grad)


def _idx(keep: list[int], device: torch.device) -> torch.Tensor:
    return torch.tensor(keep, dtype=torch.long, device=device)


def _cut_weight_layer(wl: WeightLayer, ki: list[int], ko: list[int], in_hw: tuple[int, int]) -> None:
    if wl.mode != "float":
        raise ModelError(
            f"layer {wl.name!r} is in weight mode {wl.mode!r}; structured pruning removes channels of a "
            "float network and runs before weight sharing (dense, structured pruning, pruning, clustering)"
        )
    dev = wl.weight.device
    io, ii = _idx(ko, dev), _idx(ki, dev)
    h, w = in_hw
    if wl.kind == "dw" and len(ko) != len(ki) * wl.multiplier:
        raise ModelError(  # pragma: no cover - the components guarantee it
            f"depthwise layer {wl.name!r}: {len(ko)} output channels kept for {len(ki)} input channels "
            f"with channel multiplier {wl.multiplier}"
        )
    if wl.kind == "fc":
        ii = (ii[:, None] * (h * w) + torch.arange(h * w, device=dev)[None, :]).reshape(-1)  # columns

    def sel(t: torch.Tensor) -> torch.Tensor:
        t = t.index_select(0, io)
        return t if wl.kind == "dw" else t.index_select(1, ii)

    wl.weight = _param(wl.weight, sel(wl.weight.detach()))
    wl.bias = _param(wl.bias, wl.bias.detach().index_select(0, io))
    wl.mask = sel(wl.mask).clone()
    wl.assign = torch.zeros(wl.weight.shape, dtype=torch.long, device=dev)
    wl.in_shape = (len(ki), h, w)


def remove_channels(net: GraphNet, graph: ChannelGraph, drop: Iterable[int]) -> GraphNet:
    """A copy of ``net`` without the channels of components ``drop`` (weights copied, not shared).

    The output channels of the producing filters go with their biases (BatchNorm is folded into
    them), and so do the matching input channels of every reader: a convolution's input channels,
    a depthwise convolution's channels, a fully connected layer's columns, an option-A shortcut's
    embedded channels (its zero channels before and after are recounted).
    """
    keep = graph.keep_lists(drop)
    new = copy.deepcopy(net)
    shapes = graph.shapes
    for node in new.nodes:
        o = node.output
        if isinstance(node, WeightLayer):
            (i,) = node.inputs
            _cut_weight_layer(node, keep[i], keep[o], (int(shapes[i][1]), int(shapes[i][2])))
        elif isinstance(node, (Pool, AvgPool, ChannelPad)):
            (i,) = node.inputs
            c_in = int(node.in_shape[0])
            node.in_shape = (len(keep[i]), *node.in_shape[1:])
            if isinstance(node, ChannelPad):
                ko = keep[o]
                before = node.before
                node.before = sum(1 for c in ko if c < before)
                node.after = sum(1 for c in ko if c >= before + c_in)
                inner = [c - before for c in ko if before <= c < before + c_in]
                if inner != keep[i]:  # pragma: no cover - the components guarantee it
                    raise ModelError(
                        f"shortcut {node.name!r}: kept channels {inner} != its input's {keep[i]}"
                    )
        elif isinstance(node, (AddNode, DropoutNode)):
            node.shape = (len(keep[o]), *node.shape[1:])
    check_shapes(new)
    return new


def check_shapes(net: GraphNet) -> None:
    """Every node's input shape is the shape of the tensor it reads (a surgery bug check)."""
    shapes = net.tensor_shapes()
    for node in net.nodes:
        for i in node.inputs:
            want = tuple(shapes[i])
            have = tuple(getattr(node, "in_shape", want))
            if have != want:
                raise ModelError(  # pragma: no cover - a bug in the surgery
                    f"node {node.name!r} expects input {have} but tensor {i} is {want} after channel removal"
                )
        if isinstance(node, WeightLayer):
            fan = int(node.weight.shape[1]) if node.weight.dim() > 1 else 0
            c, h, w = node.in_shape
            want_fan = {"conv": c, "dw": 1, "fc": c * h * w}[node.kind]
            if fan != want_fan:
                raise ModelError(  # pragma: no cover - a bug in the surgery
                    f"layer {node.name!r} has fan-in {fan} but reads {node.in_shape}"
                )


# --------------------------------------------------------------------------- costs


def layer_macs(node: Node) -> int:
    """Dense multiply-accumulates of a weight layer (or of a shortcut's 0/1 convolution)."""
    if isinstance(node, WeightLayer):
        if node.kind == "fc":
            return int(node.weight.numel())
        _, oh, ow = node.out_shape
        return int(node.weight.numel()) * oh * ow
    if isinstance(node, ChannelPad):
        _, oh, ow = node.out_shape
        return int(node.in_shape[0]) * oh * ow
    return 0


def channels(net: GraphNet) -> dict[str, int]:
    """Output channels (neurons for a fully connected layer) of every weight layer."""
    return {wl.name: int(wl.weight.shape[0]) for wl in net.weight_layers()}


def graph_costs(net: GraphNet, sample: object | None = None) -> dict[str, object]:
    """``{"macs", "layer_macs", "channels", "params", "arena_bytes"}`` of ``net`` as a dense model.

    ``arena_bytes`` is the planner's figure for the integer model of ``net`` (conv + max-pool
    pairs fused, as the pipeline builds it); it needs ``sample`` (a few samples of a
    :class:`~mcu_dc.data.datasets.Dataset` for calibration) and is None without it.
    """
    per = {n.name: layer_macs(n) for n in net.nodes if layer_macs(n)}
    out: dict[str, object] = {
        "macs": int(sum(per.values())),
        "layer_macs": per,
        "channels": channels(net),
        "params": int(net.n_params()),
        "arena_bytes": None,
    }
    if sample is not None:
        out["arena_bytes"] = integer_arena_bytes(net, sample)
    return out


def integer_arena_bytes(net: GraphNet, sample: object) -> int:
    """The planned arena of ``net``'s integer model (weights replaced by a one-entry codebook; only the
    shapes matter to the planner)."""
    from mcu_dc.compression.quantize import QuantConfig, to_integer_model

    dummy = copy.deepcopy(net).cpu()
    for wl in dummy.weight_layers():
        if wl.mode != "float":
            raise ModelError(f"layer {wl.name!r} is in weight mode {wl.mode!r}; arena estimate needs float")
        wl.mask.fill_(1.0)
        wl.bias.data.fill_(1.0)  # every tensor gets a non-empty positive range, whatever the input
        wl.set_shared(torch.full((1,), 1e-3), torch.zeros(wl.weight.shape, dtype=torch.long))
    n = min(8, len(sample))  # type: ignore[arg-type]
    calib = sample.subset(np.arange(n))  # type: ignore[attr-defined]
    im = to_integer_model(dummy, calib, QuantConfig(calib_samples=n), torch.device("cpu"), "arena")
    return int(im.arena_bytes())
