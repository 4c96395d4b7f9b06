"""Capture a user's ``nn.Module`` as a :class:`~mcu_dc.compression.chain.ChainNet`.

Accepted: a straight chain of Linear, Conv2d, ReLU, MaxPool2d, Flatten, Dropout and
BatchNorm (folded into the conv/linear before it). The order comes from a torch.fx
symbolic trace (``nn.Sequential`` models that cannot be traced are walked directly).
A ReLU is fused into the last conv/linear before it (max pooling and dropout commute
with ReLU). Anything else is refused with the module's qualified name and type.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from mcu_dc.compression.chain import ChainNet, Pool, WeightLayer
from mcu_dc.errors import ModelError

ALLOWED = (
    nn.Linear,
    nn.Conv2d,
    nn.ReLU,
    nn.MaxPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)
_FLATTEN_FNS = {torch.flatten}
_RELU_FNS = {F.relu, torch.relu}
_DROPOUT_FNS = {F.dropout}
_HINT = (
    "mcu_dc supports straight chains of Linear, Conv2d, ReLU, MaxPool2d, Flatten, Dropout and BatchNorm; "
    "rewrite the model with these or replace the module."
)


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def check_modules(model: nn.Module) -> None:
    """Refuse any leaf module of an unsupported type, naming it."""
    for name, mod in model.named_modules():
        if len(list(mod.children())) == 0 and name and not isinstance(mod, (*ALLOWED, nn.Identity)):
            raise ModelError(
                f"module {name!r} of type {type(mod).__module__}.{type(mod).__name__} is not supported. "
                f"{_HINT}"
            )


def _ops_from_fx(model: nn.Module) -> list[tuple[str, Any]]:
    """The chain as (qualified name, module or op tag) in execution order."""
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types on untraceable code
        if isinstance(model, nn.Sequential):
            return [(n, m) for n, m in model.named_modules() if len(list(m.children())) == 0 and n]
        raise ModelError(
            f"cannot trace {type(model).__name__} with torch.fx ({type(exc).__name__}: {exc}); "
            f"the forward must be a straight chain without data-dependent control flow. {_HINT}"
        ) from exc
    modules = dict(gm.named_modules())
    ops: list[tuple[str, Any]] = []
    cur: fx.Node | None = None
    aux: set[fx.Node] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if cur is not None:
                raise ModelError(
                    f"{type(model).__name__}.forward takes more than one input; mcu_dc needs one"
                )
            cur = node
            continue
        if node.op == "output":
            out = node.args[0]
            if out is not cur:
                raise ModelError(
                    f"the output of {type(model).__name__} is not the end of a single chain. {_HINT}"
                )
            break
        if node.op == "get_attr":
            raise ModelError(f"the model reads attribute {node.target!r} in forward; not a plain layer chain")
        if node.op == "call_method" and node.target == "size":
            aux.add(node)
            continue
        if node.op == "call_function" and node.target is operator.getitem and node.args[0] in aux:
            aux.add(node)
            continue
        if not node.args or node.args[0] is not cur:
            raise ModelError(
                f"operation {node.name!r} ({node.target}) does not take the previous layer's output as its "
                "input: the model is not a straight chain (skip connections and branches are not supported). "
                f"{_HINT}"
            )
        extra = [a for a in list(node.args[1:]) + list(node.kwargs.values()) if isinstance(a, fx.Node)]
        if any(a not in aux for a in extra):
            raise ModelError(f"operation {node.name!r} ({node.target}) combines several tensors. {_HINT}")
        if node.op == "call_module":
            ops.append((str(node.target), modules[node.target]))
        elif node.op == "call_function" and node.target in _FLATTEN_FNS:
            ops.append((node.name, "flatten"))
        elif node.op == "call_function" and node.target in _RELU_FNS:
            ops.append((node.name, "relu"))
        elif node.op == "call_function" and node.target in _DROPOUT_FNS:
            ops.append((node.name, "identity"))
        elif node.op == "call_method" and node.target in ("flatten", "view", "reshape"):
            ops.append((node.name, "flatten"))
        elif node.op == "call_method" and node.target in ("relu", "relu_"):
            ops.append((node.name, "relu"))
        else:
            raise ModelError(f"operation {node.name!r} ({node.op} {node.target}) is not supported. {_HINT}")
        cur = node
    return ops


def _fold_bn(w: torch.Tensor, b: torch.Tensor, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d))
    if bn.running_mean is None or bn.running_var is None:
        raise ModelError("BatchNorm without running statistics (track_running_stats=False) cannot be folded")
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_mean)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return w * scale.reshape(shape), (b - bn.running_mean) * scale + beta


def capture(model: nn.Module, input_shape: tuple[int, int, int]) -> ChainNet:
    """Build the float chain of ``model`` for inputs of shape ``(C, H, W)``."""
    check_modules(model)
    model = model.eval()
    ops = _ops_from_fx(model)
    steps: list[torch.nn.Module] = []
    shape = tuple(int(v) for v in input_shape)
    flat = False
    last_weight: WeightLayer | None = None  # ReLU/BN target while only pool/dropout intervene
    for name, op in ops:
        if isinstance(op, nn.Conv2d):
            if flat:
                raise ModelError(f"Conv2d {name!r} follows a flatten; convolutions must come before it")
            if op.groups != 1 or _pair(op.dilation) != (1, 1) or op.padding_mode != "zeros":
                raise ModelError(
                    f"Conv2d {name!r}: groups={op.groups}, dilation={op.dilation}, padding_mode="
                    f"{op.padding_mode!r} are not supported (need groups=1, dilation=1, zero padding)"
                )
            if isinstance(op.padding, str):
                raise ModelError(f"Conv2d {name!r}: padding={op.padding!r}; give the padding as integers")
            if shape[0] != op.in_channels:
                raise ModelError(f"Conv2d {name!r} expects {op.in_channels} channels but receives {shape}")
            bias = op.bias.detach() if op.bias is not None else torch.zeros(op.out_channels)
            wl = WeightLayer(
                name, "conv", op.weight.detach(), bias, shape, _pair(op.stride), _pair(op.padding)
            )
            if min(wl.out_shape[1:]) < 1:
                raise ModelError(f"Conv2d {name!r}: input {shape} is smaller than its kernel")
            steps.append(wl)
            shape = wl.out_shape
            last_weight = wl
        elif isinstance(op, nn.Linear):
            if shape[1] * shape[2] != 1 and not flat:
                raise ModelError(
                    f"Linear {name!r} receives a {shape} tensor without a Flatten before it; add nn.Flatten()"
                )
            fan_in = shape[0] * shape[1] * shape[2]
            if fan_in != op.in_features:
                raise ModelError(
                    f"Linear {name!r} expects {op.in_features} inputs but receives {fan_in} {shape}"
                )
            bias = op.bias.detach() if op.bias is not None else torch.zeros(op.out_features)
            wl = WeightLayer(name, "fc", op.weight.detach(), bias, shape)
            steps.append(wl)
            shape = wl.out_shape
            last_weight = wl
            flat = True
        elif isinstance(op, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if not steps or steps[-1] is not last_weight or last_weight is None or last_weight.relu:
                raise ModelError(
                    f"BatchNorm {name!r} does not directly follow a Conv2d or Linear, so it cannot be folded"
                )
            w, b = _fold_bn(last_weight.weight.data, last_weight.bias.data, op)
            last_weight.weight.data.copy_(w)
            last_weight.bias.data.copy_(b)
        elif isinstance(op, nn.ReLU) or op == "relu":
            if last_weight is not None:
                last_weight.relu = True
            # a ReLU on the (non-negative) input is the identity
        elif isinstance(op, nn.MaxPool2d):
            k, s = _pair(op.kernel_size), _pair(op.stride if op.stride is not None else op.kernel_size)
            if (
                _pair(op.padding) != (0, 0)
                or _pair(op.dilation) != (1, 1)
                or op.ceil_mode
                or op.return_indices
            ):
                raise ModelError(f"MaxPool2d {name!r}: padding, dilation, ceil_mode are not supported")
            if flat:
                raise ModelError(f"MaxPool2d {name!r} follows a flatten")
            p = Pool(name, k, s, shape)
            if min(p.out_shape[1:]) < 1:
                raise ModelError(f"MaxPool2d {name!r}: input {shape} is smaller than its kernel")
            steps.append(p)
            shape = p.out_shape
        elif isinstance(op, nn.Dropout):
            steps.append(nn.Dropout(op.p))
        elif isinstance(op, nn.Flatten) or op == "flatten":
            flat = True
        elif isinstance(op, nn.Identity) or op == "identity":
            pass
        else:  # pragma: no cover - check_modules catches these first
            raise ModelError(f"module {name!r} of type {type(op).__name__} is not supported. {_HINT}")
    if not any(isinstance(s, WeightLayer) for s in steps):
        raise ModelError(f"{type(model).__name__} has no Conv2d or Linear layer to compress")
    if len({wl.name for wl in steps if isinstance(wl, WeightLayer)}) != sum(
        isinstance(s, WeightLayer) for s in steps
    ):
        raise ModelError(
            "the same Conv2d/Linear module is used twice in the chain; weights must not be shared"
        )
    return ChainNet(steps, tuple(input_shape)).eval()  # type: ignore[arg-type]
