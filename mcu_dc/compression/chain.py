"""The float layer chain that training, pruning, clustering and quantization work on.

:func:`mcu_dc.compression.capture.capture` turns a user's ``nn.Module`` into a
:class:`ChainNet`: a straight chain of :class:`WeightLayer` (Conv2d or Linear with
BatchNorm folded in and a fused ReLU flag), :class:`Pool` (max pooling) and
``nn.Dropout`` steps. A weight layer's weight is in one of three modes:

* ``float``  -- the ``weight`` parameter times the pruning ``mask`` (stage 1);
* ``shared`` -- ``centroids[assign]`` where kept (stage 2, trained quantization: the
  centroid gradient is the sum of its members' gradients, by autograd of the gather);
* ``dqc``    -- the float ``weight`` is trained through a straight-through estimator
  while the forward pass uses its nearest codebook entry; the codebook is re-estimated
  during training (dynamic quantization coding).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MODES = ("float", "shared", "dqc")


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


class WeightLayer(nn.Module):
    def __init__(
        self,
        name: str,
        kind: str,
        weight: torch.Tensor,
        bias: torch.Tensor,
        in_shape: tuple[int, int, int],
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
        relu: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.kind = kind  # "conv" | "fc"
        self.weight = nn.Parameter(weight.detach().clone().float())
        self.bias = nn.Parameter(bias.detach().clone().float())
        self.in_shape = in_shape
        self.stride = stride
        self.padding = padding
        self.relu = relu
        self.register_buffer("mask", torch.ones_like(self.weight))
        self.register_buffer("assign", torch.zeros(self.weight.shape, dtype=torch.long))
        self.centroids = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.mode = "float"

    @property
    def out_shape(self) -> tuple[int, int, int]:
        if self.kind == "fc":
            return (int(self.weight.shape[0]), 1, 1)
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return (int(self.weight.shape[0]), int(oh), int(ow))

    @property
    def n_weights(self) -> int:
        return int(self.weight.numel())

    def kept(self) -> int:
        return int(self.mask.sum().item())

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
            y = F.linear(x.flatten(1), w, self.bias)
        else:
            y = F.conv2d(x, w, self.bias, stride=self.stride, padding=self.padding)
        return F.relu(y) if self.relu else y

    def extra_repr(self) -> str:
        return f"{self.name}: {self.kind} {tuple(self.weight.shape)} relu={self.relu} mode={self.mode}"


class Pool(nn.Module):
    def __init__(
        self, name: str, kernel: tuple[int, int], stride: tuple[int, int], in_shape: tuple[int, int, int]
    ):
        super().__init__()
        self.name = name
        self.kernel = kernel
        self.stride = stride
        self.in_shape = in_shape

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        return (c, (h - self.kernel[0]) // self.stride[0] + 1, (w - self.kernel[1]) // self.stride[1] + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel, self.stride)


class ChainNet(nn.Module):
    """A straight chain of steps; ``forward`` takes float input ``byte * input_scale``."""

    def __init__(self, steps: list[nn.Module], input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.steps = nn.ModuleList(steps)
        self.input_shape = input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for s in self.steps:
            x = s(x)
        return x.flatten(1)

    def weight_layers(self) -> list[WeightLayer]:
        return [s for s in self.steps if isinstance(s, WeightLayer)]

    def layer(self, name: str) -> WeightLayer:
        for wl in self.weight_layers():
            if wl.name == name:
                return wl
        raise KeyError(name)

    def dropouts_before(self) -> dict[str, nn.Dropout]:
        """Dropout modules keyed by the weight layer they feed (its input connections)."""
        out: dict[str, nn.Dropout] = {}
        pending: list[nn.Dropout] = []
        for s in self.steps:
            if isinstance(s, nn.Dropout):
                pending.append(s)
            elif isinstance(s, WeightLayer):
                for d in pending:
                    out[s.name] = d
                pending = []
        return out

    def n_params(self) -> int:
        return sum(wl.weight.numel() + wl.bias.numel() for wl in self.weight_layers())
