"""The float graph that training, pruning, clustering and quantization work on.

:func:`mcu_dc.compression.capture.capture` turns a user's ``nn.Module`` into a
:class:`GraphNet`: nodes wired by tensor ids and executed in topological order. Tensor
0 is the float input ``(N, C, H, W)``; every node reads the tensors named by its
``inputs`` and writes the one named by its ``output``. Nodes:

* :class:`WeightLayer` -- a standard convolution (``kind="conv"``), a depthwise one
  (``"dw"``, ``groups == in_channels``, channel multiplier ``out/in``) or a fully connected
  layer (``"fc"``), with BatchNorm folded in and activation bounds ``(act_min, act_max)``
  (ReLU is ``(0, inf)``, ReLU6 ``(0, 6)``) instead of a separate activation;
* :class:`Pool` (max pooling), :class:`AvgPool` (average pooling, zero padding counted in
  the divisor, global average pooling included) and :class:`AddNode` (a residual add with
  its own activation bounds);
* :class:`ChannelPad` -- the CIFAR ResNets' parameter-free "option A" shortcut (He et al.,
  *Deep Residual Learning for Image Recognition*, CVPR 2016, section 4.2): spatial
  subsampling by a stride plus zero channels before and after. It is a frozen 1×1 strided
  convolution with a 0/1 weight: never pruned, clustered nor trained;
* :class:`DropoutNode` -- dropout (the identity at inference).

A weight layer's weight is in one of three modes:

* ``float``  -- the ``weight`` parameter times the pruning ``mask`` (stage 1);
* ``shared`` -- ``centroids[assign]`` where kept (stage 2, trained quantization: the
  centroid gradient is the sum of its members' gradients, by autograd of the gather);
* ``dqc``    -- the float ``weight`` is trained through a straight-through estimator
  while the forward pass uses its nearest codebook entry; the codebook is re-estimated
  during training (dynamic quantization coding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("float", "shared", "dqc")
KINDS = ("conv", "dw", "fc")
INF = math.inf

Shape = tuple[int, int, int]
Pads = tuple[int, int, int, int]  # (top, left, bottom, right)


def clamp_bounds(y: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Apply activation bounds; ``(0, inf)`` is exactly ``F.relu`` (same gradient at 0)."""
    if lo == 0.0 and hi == INF:
        return F.relu(y)
    if lo == -INF and hi == INF:
        return y
    return torch.clamp(y, None if lo == -INF else lo, None if hi == INF else hi)


def _pad_input(x: torch.Tensor, pads: Pads) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad asymmetrically with zeros when needed; returns the tensor and the symmetric rest."""
    pt, pl, pb, pr = pads
    if pt == pb and pl == pr:
        return x, (pt, pl)
    return F.pad(x, (pl, pr, pt, pb)), (0, 0)


def conv_out_hw(
    h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int], pads: Pads
) -> tuple[int, int]:
    pt, pl, pb, pr = pads
    return (h + pt + pb - kernel[0]) // stride[0] + 1, (w + pl + pr - kernel[1]) // stride[1] + 1


class Node(nn.Module):
    """Wiring shared by every node: the tensor ids it reads and writes."""

    inputs: tuple[int, ...]
    output: int
    name: str

    def wire(self, inputs: tuple[int, ...], output: int) -> None:
        self.inputs = tuple(int(i) for i in inputs)
        self.output = int(output)


class _SharedGather(torch.autograd.Function):
    """``centroids[assign] * mask`` whose backward sums each cluster's gradients (a bincount)."""

    @staticmethod
    def forward(ctx, centroids: torch.Tensor, assign: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(assign, mask)
        ctx.k = centroids.shape[0]
        return centroids[assign] * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        assign, mask = ctx.saved_tensors
        g = torch.bincount(assign.flatten(), weights=(grad * mask).flatten().double(), minlength=ctx.k)
        return g.to(grad.dtype), None, None


class WeightLayer(Node):
    """Conv2d (standard or depthwise) or Linear with folded BatchNorm and activation bounds."""

    def __init__(
        self,
        name: str,
        kind: str,
        weight: torch.Tensor,
        bias: torch.Tensor,
        in_shape: Shape,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
        relu: bool = False,
        padding_end: tuple[int, int] | None = None,
        act: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(kind)
        self.name = name
        self.kind = kind
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.bias = nn.Parameter(bias.detach().clone().float())
        self.in_shape = tuple(int(v) for v in in_shape)
        self.stride = (int(stride[0]), int(stride[1]))
        end = padding if padding_end is None else padding_end
        self.pads: Pads = (int(padding[0]), int(padding[1]), int(end[0]), int(end[1]))
        lo, hi = act if act is not None else (-INF, INF)
        self.act_min, self.act_max = float(lo), float(hi)
        if relu:
            self.relu = True
        self.register_buffer("mask", torch.ones_like(self.weight))
        self.register_buffer("assign", torch.zeros(self.weight.shape, dtype=torch.long))
        self.centroids = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.mode = "float"
        self.inputs, self.output = (), -1

    # ----------------------------------------------------------------- geometry
    @property
    def relu(self) -> bool:
        """True when the output is bounded below by 0 (a fused ReLU, ReLU6, ...)."""
        return self.act_min >= 0.0

    @relu.setter
    def relu(self, on: bool) -> None:
        if on:
            self.act_min = max(self.act_min, 0.0)
        elif self.act_min == 0.0:
            self.act_min = -INF

    @property
    def padding(self) -> tuple[int, int]:
        return self.pads[0], self.pads[1]

    @property
    def padding_end(self) -> tuple[int, int]:
        return self.pads[2], self.pads[3]

    @property
    def groups(self) -> int:
        return self.in_shape[0] if self.kind == "dw" else 1

    @property
    def multiplier(self) -> int:
        return int(self.weight.shape[0]) // self.in_shape[0] if self.kind == "dw" else 1

    @property
    def kernel(self) -> tuple[int, int]:
        if self.kind == "fc":
            return (1, 1)
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    @property
    def out_shape(self) -> Shape:
        if self.kind == "fc":
            return (int(self.weight.shape[0]), 1, 1)
        _, h, w = self.in_shape
        oh, ow = conv_out_hw(h, w, self.kernel, self.stride, self.pads)
        return (int(self.weight.shape[0]), int(oh), int(ow))

    @property
    def n_weights(self) -> int:
        return int(self.weight.numel())

    def kept(self) -> int:
        return int(self.mask.sum().item())

    # ----------------------------------------------------------------- weight modes
    def set_shared(self, centroids: torch.Tensor, assign: torch.Tensor, mode: str = "shared") -> None:
        """Switch to weight sharing with the given codebook and (fixed) assignments."""
        if mode not in ("shared", "dqc"):
            raise ValueError(mode)
        dev = self.weight.device
        self.centroids = nn.Parameter(
            centroids.detach().clone().float().to(dev), requires_grad=mode == "shared"
        )
        self.assign = assign.detach().clone().long().to(dev)
        self.mode = mode
        self.weight.requires_grad_(mode == "dqc")

    def nearest(self, w: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook entry for each value of ``w``."""
        c = self.centroids.detach()
        order = torch.argsort(c)
        cs = c[order]
        mids = (cs[1:] + cs[:-1]) / 2
        return order[torch.bucketize(w, mids)]

    def effective_weight(self) -> torch.Tensor:
        if self.mode == "float":
            return self.weight * self.mask
        if self.mode == "shared":
            return _SharedGather.apply(self.centroids, self.assign, self.mask)
        # dqc: straight-through estimator onto the float shadow weight
        q = self.centroids.detach()[self.nearest(self.weight.detach())]
        return (self.weight + (q - self.weight).detach()) * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.effective_weight()
        if self.kind == "fc":
            y = F.linear(x.flatten(1), w, self.bias)[:, :, None, None]  # every tensor is (N, C, H, W)
        else:
            x, pad = _pad_input(x, self.pads)
            y = F.conv2d(x, w, self.bias, stride=self.stride, padding=pad, groups=self.groups)
        return clamp_bounds(y, self.act_min, self.act_max)

    def extra_repr(self) -> str:
        return (
            f"{self.name}: {self.kind} {tuple(self.weight.shape)} act=({self.act_min:g}, {self.act_max:g}) "
            f"mode={self.mode}"
        )


class Pool(Node):
    """Max pooling without padding."""

    def __init__(self, name: str, kernel: tuple[int, int], stride: tuple[int, int], in_shape: Shape) -> None:
        super().__init__()
        self.name = name
        self.kernel = (int(kernel[0]), int(kernel[1]))
        self.stride = (int(stride[0]), int(stride[1]))
        self.in_shape = tuple(int(v) for v in in_shape)
        self.inputs, self.output = (), -1

    @property
    def out_shape(self) -> Shape:
        c, h, w = self.in_shape
        return (c, (h - self.kernel[0]) // self.stride[0] + 1, (w - self.kernel[1]) // self.stride[1] + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel, self.stride)


class AvgPool(Node):
    """Average pooling; zero padding counts in the divisor (always ``kh*kw``)."""

    def __init__(
        self,
        name: str,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        in_shape: Shape,
        pads: Pads = (0, 0, 0, 0),
        act: tuple[float, float] = (-INF, INF),
    ) -> None:
        super().__init__()
        self.name = name
        self.kernel = (int(kernel[0]), int(kernel[1]))
        self.stride = (int(stride[0]), int(stride[1]))
        self.in_shape = tuple(int(v) for v in in_shape)
        self.pads: Pads = tuple(int(p) for p in pads)  # type: ignore[assignment]
        self.act_min, self.act_max = float(act[0]), float(act[1])
        self.inputs, self.output = (), -1

    @property
    def out_shape(self) -> Shape:
        c, h, w = self.in_shape
        oh, ow = conv_out_hw(h, w, self.kernel, self.stride, self.pads)
        return (c, int(oh), int(ow))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            pt, pl, pb, pr = self.pads
            x = F.pad(x, (pl, pr, pt, pb))
        y = F.avg_pool2d(x, self.kernel, self.stride)
        return clamp_bounds(y, self.act_min, self.act_max)


class AddNode(Node):
    """Element-wise sum of two tensors of one shape, with activation bounds."""

    def __init__(self, name: str, shape: Shape, act: tuple[float, float] = (-INF, INF)) -> None:
        super().__init__()
        self.name = name
        self.shape = tuple(int(v) for v in shape)
        self.act_min, self.act_max = float(act[0]), float(act[1])
        self.inputs, self.output = (), -1

    @property
    def in_shape(self) -> Shape:
        return self.shape  # type: ignore[return-value]

    @property
    def out_shape(self) -> Shape:
        return self.shape  # type: ignore[return-value]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return clamp_bounds(a + b, self.act_min, self.act_max)


class ChannelPad(Node):
    """Frozen shortcut: ``x[:, :, ::s, ::s]`` with ``before``/``after`` zero channels.

    Equal to a 1×1 convolution of stride ``s`` whose weight embeds input channel ``c``
    at output channel ``before + c`` (weight 1, no bias); quantized as such with
    codebook ``{1}`` and output scale = input scale, an exact pass-through.
    """

    frozen = True

    def __init__(self, name: str, stride: tuple[int, int], before: int, after: int, in_shape: Shape) -> None:
        super().__init__()
        self.name = name
        self.stride = (int(stride[0]), int(stride[1]))
        self.before, self.after = int(before), int(after)
        self.in_shape = tuple(int(v) for v in in_shape)
        self.inputs, self.output = (), -1

    @property
    def out_shape(self) -> Shape:
        c, h, w = self.in_shape
        return (c + self.before + self.after, (h - 1) // self.stride[0] + 1, (w - 1) // self.stride[1] + 1)

    def embedding(self) -> torch.Tensor:
        """The equivalent 1×1 convolution weight ``(out_c, in_c, 1, 1)`` of 0s and 1s."""
        c = self.in_shape[0]
        w = torch.zeros(self.out_shape[0], c, 1, 1)
        w[torch.arange(c) + self.before, torch.arange(c)] = 1.0
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x[:, :, :: self.stride[0], :: self.stride[1]]
        if self.before or self.after:
            y = F.pad(y, (0, 0, 0, 0, self.before, self.after))
        return y


class DropoutNode(Node):
    """Dropout (the user's module: ``Dropout``, ``Dropout2d``, ...); identity at inference."""

    def __init__(self, name: str, drop: nn.Module, shape: Shape) -> None:
        super().__init__()
        self.name = name
        self.drop = drop
        self.shape = tuple(int(v) for v in shape)
        self.inputs, self.output = (), -1

    @property
    def in_shape(self) -> Shape:
        return self.shape  # type: ignore[return-value]

    @property
    def out_shape(self) -> Shape:
        return self.shape  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.drop, nn.Dropout1d):  # it drops whole channels of (N, C, L)
            return self.drop(x.flatten(2)).view_as(x)
        return self.drop(x)


class GraphNet(nn.Module):
    """Nodes wired by tensor ids; ``forward`` takes the float input and returns ``(N, out_len)``.

    For uint8 datasets the float input is ``byte * input_scale``; for float-feature
    datasets it is the features. ``input_bounds`` is an activation applied to the input
    itself (e.g. a ReLU on the input); ``notes`` are things the report should say.
    """

    def __init__(
        self,
        nodes: list[Node],
        input_shape: tuple[int, int, int],
        output_tensor: int | None = None,
        input_bounds: tuple[float, float] = (-INF, INF),
        notes: list[str] | None = None,
    ) -> None:
        super().__init__()
        if nodes and all(getattr(n, "output", -1) == -1 for n in nodes):
            for i, n in enumerate(nodes):  # a chain
                n.wire((i,) * (2 if isinstance(n, AddNode) else 1), i + 1)
        self.nodes = nn.ModuleList(nodes)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.input_tensor = 0
        self.output_tensor = int(output_tensor if output_tensor is not None else nodes[-1].output)
        self.input_bounds = (float(input_bounds[0]), float(input_bounds[1]))
        self.notes: list[str] = list(notes or [])

    # ----------------------------------------------------------------- execution
    @property
    def steps(self) -> nn.ModuleList:
        """The nodes in execution order (the name chains had)."""
        return self.nodes

    def forward_all(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Every tensor of the graph by id (tensor 0 is the input after ``input_bounds``)."""
        env: dict[int, torch.Tensor] = {self.input_tensor: self._input(x)}
        for node in self.nodes:
            env[node.output] = node(*[env[i] for i in node.inputs])
        return env

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[int, torch.Tensor] = {self.input_tensor: self._input(x)}
        uses = self._last_use()
        for i, node in enumerate(self.nodes):
            env[node.output] = node(*[env[t] for t in node.inputs])
            for t in node.inputs:  # free tensors no later node reads
                if uses.get(t) == i and t != self.output_tensor:
                    env.pop(t, None)
        return env[self.output_tensor].flatten(1)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """The input as (N, C, H, W) (vectors may come as (N, F)) after ``input_bounds``."""
        return clamp_bounds(x.reshape(x.shape[0], *self.input_shape), *self.input_bounds)

    def _last_use(self) -> dict[int, int]:
        last: dict[int, int] = {}
        for i, node in enumerate(self.nodes):
            for t in node.inputs:
                last[t] = i
        return last

    # ----------------------------------------------------------------- graph queries
    def producer(self, tensor: int) -> Node | None:
        for node in self.nodes:
            if node.output == tensor:
                return node  # type: ignore[return-value]
        return None

    def consumers(self, tensor: int) -> list[Node]:
        return [n for n in self.nodes if tensor in n.inputs]  # type: ignore[misc]

    def tensor_shapes(self) -> dict[int, Shape]:
        shapes: dict[int, Shape] = {self.input_tensor: self.input_shape}  # type: ignore[dict-item]
        for node in self.nodes:
            shapes[node.output] = node.out_shape  # type: ignore[assignment]
        return shapes

    @property
    def output_len(self) -> int:
        c, h, w = self.tensor_shapes()[self.output_tensor]
        return c * h * w

    # ----------------------------------------------------------------- compression API
    def weight_layers(self) -> list[WeightLayer]:
        """The trainable weight layers (frozen shortcuts are not among them)."""
        return [n for n in self.nodes if isinstance(n, WeightLayer)]

    def layer(self, name: str) -> WeightLayer:
        for wl in self.weight_layers():
            if wl.name == name:
                return wl
        raise KeyError(name)

    def dropouts_before(self) -> dict[str, nn.Module]:
        """Dropout modules keyed by the weight layer they feed (its input connections).

        A dropout feeds a weight layer when the path from it to the layer passes only
        through dropouts and max pools.
        """
        out: dict[str, nn.Module] = {}
        for wl in self.weight_layers():
            t = wl.inputs[0] if wl.inputs else -1
            while True:
                p = self.producer(t)
                if isinstance(p, DropoutNode):
                    out.setdefault(wl.name, p.drop)
                elif not isinstance(p, Pool):
                    break
                t = p.inputs[0]
        return out

    def n_params(self) -> int:
        return sum(wl.weight.numel() + wl.bias.numel() for wl in self.weight_layers())


