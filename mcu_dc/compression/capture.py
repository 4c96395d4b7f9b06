"""Capture a user's ``nn.Module`` as a :class:`~mcu_dc.compression.graph.GraphNet` (a DAG).

The model is traced with ``torch.fx.symbolic_trace`` and run once on a zero input with
``torch.fx.passes.shape_prop.ShapeProp``, so every ``x.size()`` expression becomes a
concrete int and every tensor has a known shape. Each fx node then becomes a raw op;
a few rewrites produce the graph the compression stages work on:

* BatchNorm is folded into the Conv2d/Linear producing its input when nothing else reads
  that output (otherwise it becomes a 1×1 depthwise convolution);
* ReLU, ReLU6, Hardtanh and ``clamp``/``clip`` become activation bounds of their
  producer (conv, depthwise, linear, add, average pool), also through max pooling,
  flatten, dropout and identity, which commute with monotone clamps; on the graph input
  they become input bounds (the identity for uint8 images, part of the input
  quantization for float features);
* zero padding (``nn.ZeroPad2d``, ``F.pad``, ``padding="same"`` with the extra row and
  column at the bottom/right as TensorFlow and torch place it) is folded into the
  following convolution or average pool;
* the CIFAR ResNets' option-A shortcut ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))``
  (He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016) becomes a frozen
  :class:`~mcu_dc.compression.graph.ChannelPad` (a 1×1 stride-2 convolution with a 0/1
  weight);
* a Softmax/LogSoftmax on the output is dropped (argmax-invariant) and noted in ``.notes``.

Anything else is refused with one paragraph naming the module or function that blocks.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from mcu_dc.compression.graph import (
    INF,
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

Shape = tuple[int, int, int]

_HINT = (
    "mcu_dc captures Conv2d (standard or depthwise), Linear, BatchNorm, ReLU/ReLU6/Hardtanh/clamp, "
    "MaxPool2d, AvgPool2d, global average pooling (AdaptiveAvgPool2d(1), mean over H and W), residual adds "
    "of two tensors, zero padding, flatten/view/reshape, Dropout, Identity and a final Softmax; rewrite the "
    "model with these or replace the part named above."
)

WEIGHT_KINDS = ("conv", "dw", "fc")
FUSE_INTO = ("conv", "dw", "fc", "add", "avgpool")  # producers that take activation bounds
COMMUTE = ("maxpool", "drop")  # ops that commute with a monotone clamp
SPATIAL = ("conv", "dw", "maxpool", "avgpool", "cpad", "sub", "spad")


@dataclass(eq=False)
class _Raw:
    """One op of the captured graph before it becomes a :class:`GraphNet` node."""

    kind: str  # input conv dw fc bn act maxpool avgpool add drop spad cpad sub softmax
    name: str
    where: str  # for messages: "module 'a.b' (torch.nn.Conv2d)" or "F.pad at fx node 'pad'"
    inputs: list[_Raw]
    shape: Shape  # the (C, H, W) tensor it writes
    p: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- naming, errors


def _type_name(obj: Any) -> str:
    t = obj if isinstance(obj, type) else type(obj)
    mod = t.__module__
    if mod.startswith("torch.nn.modules"):
        mod = "torch.nn"
    return f"{mod}.{t.__qualname__}"


def _fn_name(target: Any) -> str:
    name = getattr(target, "__name__", str(target))
    mod = getattr(target, "__module__", None) or ""
    if mod in ("_operator", "operator"):
        return f"operator.{name}"
    if mod.startswith("torch.nn.functional") or mod.startswith("torch._C._nn"):
        return f"torch.nn.functional.{name}"
    return f"torch.{name}" if mod.startswith("torch") or not mod else f"{mod}.{name}"


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({_type_name(modules[str(node.target)])})"
    if node.op == "call_method":
        what = f"tensor method .{node.target}()"
    elif node.op == "get_attr":
        what = f"attribute self.{node.target}"
    elif node.target is operator.getitem:
        what = "indexing x[...]"
    else:
        what = f"{_fn_name(node.target)}()"
    stack = node.meta.get("nn_module_stack") or {}
    inside = ""
    if stack:
        qual, typ = list(stack.values())[-1]
        inside = f" inside module {qual!r} ({_type_name(typ)})"
    return f"{what} at fx node {node.name!r}{inside}"


def _op_name(node: fx.Node) -> str:
    """A module's qualified name; a function's fx name, prefixed by the module whose forward calls it."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return f"{list(stack.values())[-1][0]}.{node.name}" if stack else node.name


def _refuse(where: str, why: str, fix: str = "") -> ModelError:
    fix = fix or _HINT
    return ModelError(f"{where} {why}. {fix}")


# --------------------------------------------------------------------------- tracing


class _Tracer(fx.Tracer):
    """Standard tracer that also keeps plain instances of the supported layer types as leaves."""

    _LEAVES = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)

    def is_leaf_module(self, m: nn.Module, qualified_name: str) -> bool:
        for base in self._LEAVES:
            if isinstance(m, base) and type(m).forward is base.forward:
                return True
        return super().is_leaf_module(m, qualified_name)


def _blocking_module(model: nn.Module, tb: Any) -> str:
    """The innermost module of ``model`` whose ``forward`` is on the traceback ``tb``."""
    names = {id(m): n for n, m in model.named_modules()}
    found = ""
    while tb is not None:
        self_obj = tb.tb_frame.f_locals.get("self")
        if isinstance(self_obj, nn.Module) and id(self_obj) in names:
            n = names[id(self_obj)]
            found = f"module {n!r} ({_type_name(self_obj)})" if n else f"{_type_name(self_obj)}.forward"
        tb = tb.tb_next
    return found


def _sequential_graph(model: nn.Sequential) -> fx.GraphModule:
    g = fx.Graph()
    x = g.placeholder("x")
    for name, mod in model.named_modules():
        if name and not list(mod.children()):
            x = g.call_module(name, (x,))
    g.output(x)
    return fx.GraphModule(model, g)


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        tracer = _Tracer()
        graph = tracer.trace(model)
        return fx.GraphModule(tracer.root, graph)
    except Exception as exc:  # fx raises many types on untraceable code
        if isinstance(model, nn.Sequential):
            return _sequential_graph(model)
        blocker = _blocking_module(model, exc.__traceback__) or f"{type(model).__name__}.forward"
        raise ModelError(
            f"cannot trace {type(model).__name__} with torch.fx: {blocker} failed ({type(exc).__name__}: "
            f"{exc}). The forward must not branch on tensor values or call Python code fx cannot follow; "
            f"move such logic out of forward. {_HINT}"
        ) from exc


class _Values(ShapeProp):
    """ShapeProp that also keeps every node's value (the ints of ``x.size()`` expressions)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[fx.Node, Any] = {}
        self.current: fx.Node | None = None

    def run_node(self, n: fx.Node) -> Any:
        self.current = n
        result = super().run_node(n)
        self.values[n] = result
        return result


def _run(gm: fx.GraphModule, model: nn.Module, input_shape: Shape) -> dict[fx.Node, Any]:
    """Every node's value on a zero batch of 2; a vector input ``(F, 1, 1)`` may also be fed as ``(N, F)``."""
    examples = [torch.zeros(2, *input_shape)]
    if input_shape[1:] == (1, 1):
        examples.append(torch.zeros(2, input_shape[0]))
    failure: tuple[Exception, fx.Node | None] | None = None
    for example in examples:
        prop = _Values(gm)
        try:
            with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints tracebacks
                prop.propagate(example)
            return prop.values
        except Exception as exc:  # user code on a zero input
            failure = failure or (exc, prop.current)
    assert failure is not None
    exc, node = failure
    cause = exc.__cause__ or exc
    at = f" at {_describe(node, dict(gm.named_modules()))}" if node is not None else ""
    first_line = (str(cause).strip().splitlines() or [""])[0]
    shape = ", ".join(map(str, input_shape))
    raise ModelError(
        f"running {type(model).__name__} on a zero input of shape {tuple(examples[0].shape)} failed{at} "
        f"({type(cause).__name__}: {first_line}); check that the model accepts inputs of shape (N, {shape}) "
        "(the dataset's) and that the shapes meeting there agree."
    ) from exc


# --------------------------------------------------------------------------- helpers


def _pair(v: Any) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list, torch.Size)) else (int(v), int(v))


def _canon(per_sample: tuple[int, ...]) -> Shape | None:
    """The (C, H, W) an order-preserving per-sample shape stands for; None when not one."""
    s = tuple(int(v) for v in per_sample)
    if len(s) == 3:
        return s  # type: ignore[return-value]
    if len(s) >= 1 and all(v == 1 for v in s[1:]):
        return (s[0], 1, 1)
    return None


def _numel(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape))


class _Capture:
    """Turns the traced graph into raw ops, rewrites them and builds the GraphNet."""

    def __init__(self, model: nn.Module, input_shape: Shape) -> None:
        self.model = model
        self.input_shape = input_shape
        self.gm = _trace(model)
        self.modules = dict(self.gm.named_modules())
        self._check_one_input()
        self.values = _run(self.gm, model, input_shape)
        self.vm: dict[fx.Node, _Raw] = {}
        self.raws: list[_Raw] = []
        self.notes: list[str] = []
        self.input: _Raw | None = None
        self.out: _Raw | None = None
        self.node: fx.Node | None = None  # the fx node being converted

    def _check_one_input(self) -> None:
        inputs = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(inputs) > 1:
            raise _refuse(
                f"{type(self.model).__name__}.forward",
                f"takes a second input {inputs[1].target!r}; mcu_dc models have exactly one input tensor",
                "Combine the inputs into one tensor (e.g. stack them as channels) or deploy the parts as "
                "separate models.",
            )

    # ------------------------------------------------------------- node access
    @property
    def where(self) -> str:
        assert self.node is not None
        return _describe(self.node, self.modules)

    def is_tensor(self, a: Any) -> bool:
        return isinstance(a, fx.Node) and isinstance(self.values.get(a), torch.Tensor)

    def arg(self, i: int, name: str, default: Any = None) -> Any:
        assert self.node is not None
        a = self.node.args[i] if len(self.node.args) > i else self.node.kwargs.get(name, default)
        return a

    def const(self, i: int, name: str, default: Any = None) -> Any:
        """A non-tensor argument with ``x.size()``-style expressions resolved to values."""
        a = self.arg(i, name, default)

        def resolve(n: fx.Node) -> Any:
            v = self.values[n]
            if isinstance(v, torch.Tensor):
                raise _refuse(
                    self.where,
                    f"has an argument {name!r} that is a tensor computed in the graph, not a constant",
                )
            return v

        return fx.node.map_arg(a, resolve)

    def tensor(self, i: int = 0, name: str = "input") -> _Raw:
        a = self.arg(i, name)
        if not self.is_tensor(a):
            raise _refuse(self.where, f"has an argument {name!r} that is not a tensor of the graph ({a!r})")
        return self.vm[a]

    def torch_shape(self, i: int = 0, name: str = "input") -> tuple[int, ...]:
        return tuple(self.values[self.arg(i, name)].shape[1:])

    def out_shape(self) -> tuple[int, ...]:
        assert self.node is not None
        return tuple(self.values[self.node].shape[1:])

    def new(self, kind: str, inputs: list[_Raw], shape: Shape, name: str = "", **p: Any) -> _Raw:
        assert self.node is not None
        nm = name or _op_name(self.node)
        r = _Raw(kind, nm, self.where, inputs, tuple(int(v) for v in shape), p)  # type: ignore[arg-type]
        self.raws.append(r)
        self.vm[self.node] = r
        return r

    def need_4d(self, what: str) -> Shape:
        s = self.torch_shape()
        if len(s) != 3:
            raise _refuse(
                self.where, f"receives a (N, {', '.join(map(str, s))}) tensor; {what} needs (N, C, H, W)"
            )
        src = self.tensor()
        if tuple(s) != src.shape:
            raise _refuse(
                self.where,
                f"receives a tensor reshaped from {src.shape} to {tuple(s)}; {what} needs the tensor as "
                "computed (only reshapes to (N, -1) before a Linear are supported)",
            )
        return s  # type: ignore[return-value]

    # ------------------------------------------------------------- the walk
    def walk(self) -> None:
        used: dict[str, fx.Node] = {}
        for node in self.gm.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                self.input = _Raw("input", "input", "the model input", [], self.input_shape)
                self.vm[node] = self.input
                continue
            if node.op == "output":
                self._output(node)
                break
            if node.op == "get_attr":
                raise _refuse(
                    self.where,
                    "is read directly in forward (e.g. x * self.scale or F.conv2d(x, self.w))",
                    "Use nn.Conv2d / nn.Linear / nn.BatchNorm modules for every weight. " + _HINT,
                )
            if not isinstance(self.values.get(node), torch.Tensor):
                self._check_aux(node)
                continue
            if node.op == "call_module":
                mod = self.modules[str(node.target)]
                if any(True for _ in mod.parameters(recurse=False)) and str(node.target) in used:
                    raise _refuse(
                        self.where,
                        f"is called twice (fx nodes {used[str(node.target)].name!r} and {node.name!r}): its "
                        "weights are shared",
                        "mcu_dc stores each layer's weights once per use; give each use its own module.",
                    )
                used[str(node.target)] = node
                self._module(mod)
            elif node.op == "call_function":
                self._function(node.target)
            elif node.op == "call_method":
                self._method(str(node.target))
            else:  # pragma: no cover - fx has no other node kinds
                raise _refuse(self.where, f"fx node kind {node.op!r} is not supported")

    def _check_aux(self, node: fx.Node) -> None:
        """A non-tensor node (``x.size()``, ``x.shape[0]``, int arithmetic) is fine; one of values is not."""
        tensors = [a for a in node.all_input_nodes if self.is_tensor(a)]
        if not tensors:
            return
        if node.op == "call_method" and node.target in ("size", "dim"):
            return
        if node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "ndim"):
            return
        v = self.values.get(node)
        if isinstance(v, (tuple, list)) and any(isinstance(t, torch.Tensor) for t in v):
            raise _refuse(
                self.where, f"is not supported (it returns a {type(v).__name__} of tensors, not one tensor)"
            )
        raise _refuse(
            self.where,
            f"is not supported: it turns tensor values into a Python {type(v).__name__} (e.g. .item(), "
            ".tolist(), a comparison), which a fixed integer graph cannot do",
        )

    def _output(self, node: fx.Node) -> None:
        a = node.args[0]
        if not self.is_tensor(a):
            raise _refuse(
                f"{type(self.model).__name__}.forward",
                f"returns {type(self.values.get(a, a)).__name__} instead of one tensor",
                "Return a single tensor (N, outputs); mcu_dc models have exactly one output.",
            )
        self.out = self.vm[a]

    # ------------------------------------------------------------- modules
    def _module(self, mod: nn.Module) -> None:
        if isinstance(mod, nn.Conv2d):
            self._conv(mod)
        elif isinstance(mod, nn.Linear):
            self._linear(mod)
        elif isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self._bn(mod)
        elif isinstance(mod, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
            self._act(float(mod.min_val), float(mod.max_val))
        elif isinstance(mod, nn.ReLU):
            self._act(0.0, INF)
        elif isinstance(mod, nn.MaxPool2d):
            self._maxpool(
                mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode, mod.return_indices
            )
        elif isinstance(mod, nn.AvgPool2d):
            self._avgpool(
                mod.kernel_size,
                mod.stride,
                mod.padding,
                mod.ceil_mode,
                mod.count_include_pad,
                mod.divisor_override,
            )
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            self._adaptive(mod.output_size)
        elif isinstance(mod, (nn.ZeroPad2d, nn.ConstantPad2d)):
            self._pad(tuple(mod.padding), float(mod.value))
        elif isinstance(mod, nn.modules.dropout._DropoutNd):
            self.new("drop", [self.tensor()], self.tensor().shape, drop=copy.deepcopy(mod))
        elif isinstance(mod, (nn.Softmax, nn.LogSoftmax)):
            self._softmax(mod.dim)
        elif isinstance(mod, nn.Flatten):
            self._reshape()
        elif isinstance(mod, nn.Identity):
            self.vm[self.node] = self.tensor()  # type: ignore[index]
        else:
            raise _refuse(self.where, "is not a supported layer type")

    def _conv(self, m: nn.Conv2d) -> None:
        c = self.need_4d("Conv2d")[0]
        if _pair(m.dilation) != (1, 1) or m.padding_mode != "zeros":
            raise _refuse(
                self.where,
                f"uses dilation={tuple(m.dilation)}, padding_mode={m.padding_mode!r}; only dilation 1 and "
                "zero padding are supported",
                "Use dilation 1 and zero padding.",
            )
        if m.groups == 1 or (m.groups == m.in_channels and m.groups == c):
            kind = "conv" if m.groups == 1 else "dw"
        else:
            raise _refuse(
                self.where,
                f"is a grouped convolution (groups={m.groups} of {m.in_channels} input channels) that is "
                "neither standard (groups=1) nor depthwise (groups=in_channels)",
                "Split it into standard convolutions or make it depthwise; mcu_dc has no grouped-conv "
                "kernel.",
            )
        kh, kw = _pair(m.kernel_size)
        stride = _pair(m.stride)
        if isinstance(m.padding, str):
            if m.padding == "valid":
                pads = (0, 0, 0, 0)
            else:  # "same" (torch allows it with stride 1 only): extra row/column at the bottom/right
                pads = (
                    (kh - 1) // 2, (kw - 1) // 2, (kh - 1) - (kh - 1) // 2, (kw - 1) - (kw - 1) // 2,
                )  # fmt: skip
        else:
            ph, pw = _pair(m.padding)
            pads = (ph, pw, ph, pw)
        bias = m.bias.detach().clone() if m.bias is not None else torch.zeros(m.out_channels)
        self.new(
            kind, [self.tensor()], _canon(self.out_shape()) or (0, 0, 0), weight=m.weight.detach().clone(),
            bias=bias, stride=stride, pads=pads, act=(-INF, INF),
        )  # fmt: skip

    def _linear(self, m: nn.Linear) -> None:
        s = self.torch_shape()
        src = self.tensor()
        if len(s) != 1:
            raise _refuse(
                self.where,
                f"receives a (N, {', '.join(map(str, s))}) tensor; mcu_dc's Linear takes a flattened (N, "
                "features) input",
                "Add nn.Flatten() (or x.flatten(1)) before it.",
            )
        if _numel(src.shape) != m.in_features:
            raise _refuse(
                self.where, f"expects {m.in_features} inputs but receives {_numel(src.shape)} {src.shape}"
            )
        bias = m.bias.detach().clone() if m.bias is not None else torch.zeros(m.out_features)
        self.new(
            "fc", [src], (m.out_features, 1, 1), weight=m.weight.detach().clone(), bias=bias, stride=(1, 1),
            pads=(0, 0, 0, 0), act=(-INF, INF),
        )  # fmt: skip

    def _bn(self, m: nn.Module) -> None:
        assert isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
        if m.running_mean is None or m.running_var is None:
            raise _refuse(
                self.where,
                "has no running statistics (track_running_stats=False), so it cannot be folded",
                "Use track_running_stats=True.",
            )
        if len(self.torch_shape()) not in (1, 3):
            raise _refuse(self.where, f"receives a (N, {', '.join(map(str, self.torch_shape()))}) tensor")
        src = self.tensor()
        self.new("bn", [src], src.shape, bn=m)

    # ------------------------------------------------------------- functions and methods
    def _function(self, target: Any) -> None:
        mod = getattr(target, "__module__", "") or ""
        name = getattr(target, "__name__", "")
        if not (mod.startswith("torch") or mod in ("_operator", "operator")):
            raise _refuse(self.where, "is not a supported operation")
        handler = _FUNCTIONS.get(name)
        if handler is None:
            raise _refuse(self.where, "is not a supported operation")
        handler(self)

    def _method(self, name: str) -> None:
        handler = _METHODS.get(name)
        if handler is None:
            raise _refuse(self.where, "is not a supported operation")
        handler(self)

    def _act(self, lo: float, hi: float) -> None:
        if lo > hi:
            raise _refuse(self.where, f"clamps to the empty range [{lo:g}, {hi:g}]")
        src = self.tensor()
        self.new("act", [src], src.shape, lo=float(lo), hi=float(hi))

    def _clamp(self) -> None:
        target = self.node.target if self.node is not None else ""
        name = str(getattr(target, "__name__", target))
        if name.endswith("clamp_min"):
            lo, hi = self.const(1, "min"), None
        elif name.endswith("clamp_max"):
            lo, hi = None, self.const(1, "max")
        else:
            lo, hi = self.const(1, "min"), self.const(2, "max")
        for v in (lo, hi):
            if v is not None and not isinstance(v, (int, float)):
                raise _refuse(self.where, "clamps with tensor bounds; only constant bounds are supported")
        self._act(-INF if lo is None else float(lo), INF if hi is None else float(hi))

    def _maxpool(self, k: Any, s: Any, pad: Any, dil: Any, ceil: bool, ret_idx: bool) -> None:
        _, h, w = self.need_4d("max pooling")
        kernel = _pair(k)
        stride = _pair(s if s is not None and s != [] else k)
        if _pair(pad) != (0, 0) or _pair(dil) != (1, 1) or ret_idx:
            raise _refuse(
                self.where,
                f"uses padding={pad}, dilation={dil}, return_indices={ret_idx}; only max pooling without "
                "padding or dilation is supported",
                "Use max pooling without padding or dilation.",
            )
        self._check_ceil(ceil, (h, w), kernel, stride, (0, 0, 0, 0))
        self.new(
            "maxpool", [self.tensor()], _canon(self.out_shape()) or (0, 0, 0), kernel=kernel, stride=stride
        )

    def _check_ceil(
        self, ceil: bool, hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int], p: Any
    ) -> None:
        if not ceil:
            return
        pt, pl, pb, pr = p
        if (hw[0] + pt + pb - k[0]) % s[0] or (hw[1] + pl + pr - k[1]) % s[1]:
            raise _refuse(
                self.where,
                f"uses ceil_mode=True on a {hw[0]}x{hw[1]} input where it changes the output size",
                "Use ceil_mode=False (pad the input explicitly if you need the extra row/column).",
            )

    def _avgpool(self, k: Any, s: Any, pad: Any, ceil: bool, include: bool, divisor: Any) -> None:
        _, h, w = self.need_4d("average pooling")
        kernel = _pair(k)
        stride = _pair(s if s is not None and s != [] else k)
        ph, pw = _pair(pad)
        pads = (ph, pw, ph, pw)
        if divisor is not None:
            raise _refuse(self.where, f"sets divisor_override={divisor}", "Remove divisor_override.")
        if (ph or pw) and not include:
            raise _refuse(
                self.where,
                "pads with count_include_pad=False (the border windows divide by fewer values)",
                "Use count_include_pad=True (the default) or no padding.",
            )
        self._check_ceil(ceil, (h, w), kernel, stride, pads)
        shape = _canon(self.out_shape()) or (0, 0, 0)
        self.new("avgpool", [self.tensor()], shape, kernel=kernel, stride=stride, pads=pads, act=(-INF, INF))

    def _global_pool(self) -> None:
        c, h, w = self.need_4d("global average pooling")
        geo = dict(kernel=(h, w), stride=(1, 1), pads=(0, 0, 0, 0))
        self.new("avgpool", [self.tensor()], (c, 1, 1), act=(-INF, INF), **geo)

    def _adaptive(self, size: Any) -> None:
        if any(v != 1 for v in (size if isinstance(size, (tuple, list)) else (size,))):
            raise _refuse(
                self.where,
                f"pools adaptively to {size}; only to 1x1 (global average pooling) is supported",
                "Use AdaptiveAvgPool2d(1) or an AvgPool2d with a fixed kernel.",
            )
        self._global_pool()

    def _mean(self) -> None:
        dims = self.const(1, "dim")
        s = self.torch_shape()
        dl = [dims] if isinstance(dims, int) else list(dims or [])
        norm = sorted({d % (len(s) + 1) for d in dl}) if dl else []
        if len(s) != 3 or norm != [2, 3]:
            raise _refuse(
                self.where,
                f"averages over dims {dims} of a (N, {', '.join(map(str, s))}) tensor; only the mean over H "
                "and W (dims (2, 3), global average pooling) is supported",
            )
        self._global_pool()

    def _pad(self, pad: tuple[int, ...], value: Any) -> None:
        mode = (
            "constant"
            if self.node is None or self.node.op == "call_module"
            else self.const(2, "mode", "constant")
        )
        if mode != "constant" or (value is not None and float(value) != 0.0):
            raise _refuse(
                self.where, f"pads with mode={mode!r}, value={value}; only zero padding is supported"
            )
        pad = tuple(int(v) for v in pad)
        if len(pad) % 2 or len(pad) > 6 or min(pad, default=0) < 0:
            raise _refuse(self.where, f"pads by {pad}; only non-negative padding of W, H and C is supported")
        pad = pad + (0,) * (6 - len(pad))
        pl, pr, pt, pb, cb, ca = pad
        s = self.torch_shape()
        if len(s) != 3:
            raise _refuse(
                self.where, f"pads a (N, {', '.join(map(str, s))}) tensor; only (N, C, H, W) tensors"
            )
        src = self.tensor()
        c, h, w = src.shape
        cur = src
        if cb or ca:
            cur = self.new("cpad", [cur], (c + cb + ca, h, w), before=cb, after=ca, stride=(1, 1))
        if pl or pr or pt or pb:
            c2 = cur.shape[0]
            cur = self.new("spad", [cur], (c2, h + pt + pb, w + pl + pr), pads=(pt, pl, pb, pr))
        self.vm[self.node] = cur  # type: ignore[index]

    def _getitem(self) -> None:
        idx = self.const(1, "idx")
        s = self.torch_shape()
        items = list(idx) if isinstance(idx, tuple) else [idx]
        if Ellipsis in items:
            i = items.index(Ellipsis)
            items = items[:i] + [slice(None)] * (len(s) + 1 - (len(items) - 1)) + items[i + 1 :]
        full = slice(None)
        ok = len(s) == 3 and len(items) == 4 and items[0] == full and items[1] == full
        steps = []
        for it in items[2:] if ok else []:
            if not isinstance(it, slice) or it.start not in (None, 0) or it.stop is not None:
                ok = False
                break
            steps.append(1 if it.step is None else int(it.step))
        if not ok:
            raise _refuse(
                self.where,
                f"indexes a tensor with {idx!r}; the only supported slicing is x[:, :, ::s, ::s] (spatial "
                "subsampling, as in the CIFAR ResNets' option-A shortcut)",
            )
        src = self.tensor()
        self.new("sub", [src], _canon(self.out_shape()) or (0, 0, 0), stride=(steps[0], steps[1]))

    def _reshape(self) -> None:
        src = self.tensor()
        out = self.out_shape()
        canon = _canon(out)
        if canon == src.shape or canon == (_numel(src.shape), 1, 1):
            self.vm[self.node] = src  # type: ignore[index]
            return
        raise _refuse(
            self.where,
            f"reshapes (N, {', '.join(map(str, self.torch_shape()))}) to (N, {', '.join(map(str, out))}); "
            "only flattening to (N, -1) is supported",
        )

    def _identity(self) -> None:
        self.vm[self.node] = self.tensor()  # type: ignore[index]

    def _add(self) -> None:
        a, b = self.arg(0, "input"), self.arg(1, "other")
        if not (self.is_tensor(a) and self.is_tensor(b)):
            raise _refuse(
                self.where,
                "adds a constant to a tensor; only the sum of two tensors (a residual add) is supported",
                "Fold the constant into the bias of the layer before it.",
            )
        alpha = self.const(2, "alpha", 1)
        if alpha != 1:
            raise _refuse(self.where, f"uses alpha={alpha}; only alpha=1 is supported")
        ra, rb = self.vm[a], self.vm[b]
        sa, sb = tuple(self.values[a].shape[1:]), tuple(self.values[b].shape[1:])
        if sa != sb or ra.shape != rb.shape:
            shown = (sa, sb) if sa != sb else (ra.shape, rb.shape)
            how = "" if sa != sb else " (one of them flattened from the other's layout)"
            raise _refuse(
                self.where,
                f"adds tensors of different shapes (N, {', '.join(map(str, shown[0]))}) and (N, "
                f"{', '.join(map(str, shown[1]))}){how}; a residual add needs two tensors of one shape (no "
                "broadcasting)",
                "Make both branches produce the same shape (e.g. a 1x1 projection convolution on the "
                "shortcut).",
            )
        self.new("add", [ra, rb], ra.shape, act=(-INF, INF))

    def _softmax(self, dim: Any) -> None:
        s = self.torch_shape()
        class_dims = (None, 1, -1) if len(s) == 1 else (1,)
        if _canon(s) is None or (len(s) == 3 and s[1:] != (1, 1)) or dim not in class_dims:
            raise _refuse(
                self.where,
                f"applies softmax over dim {dim} of a (N, {', '.join(map(str, s))}) tensor; only a softmax "
                "over the classes of the output (dim=1 of (N, classes)) is supported, and it is dropped",
            )
        src = self.tensor()
        self.new("softmax", [src], src.shape)

    def _softmax_fn(self) -> None:
        self._softmax(self.const(1, "dim"))

    def _dropout_fn(self, cls: type[nn.Module]) -> None:
        p = float(self.const(1, "p", 0.5))
        src = self.tensor()
        self.new("drop", [src], src.shape, drop=cls(p))

    # ------------------------------------------------------------- rewrites
    def consumers(self, r: _Raw) -> list[_Raw]:
        return [c for c in self.raws if any(i is r for i in c.inputs)]

    def replace(self, old: _Raw, new: _Raw) -> None:
        """Every reader of ``old`` reads ``new``; ``old`` leaves the graph."""
        for c in self.raws:
            c.inputs = [new if i is old else i for i in c.inputs]
        if self.out is old:
            self.out = new
        self.raws = [r for r in self.raws if r is not old]

    def rewrite(self) -> None:
        assert self.out is not None
        self._drop_softmax()
        self._prune_dead()
        self._merge_shortcuts()
        self._fold_pads()
        self._fold_bns()
        self._fuse_acts()
        self._prune_dead()

    def _drop_softmax(self) -> None:
        assert self.out is not None
        while self.out.kind == "softmax":
            self.notes.append(
                f"final softmax dropped ({self.out.where}): it does not change the argmax; the model outputs "
                "logits"
            )
            self.out = self.out.inputs[0]
        for r in self.raws:
            if r.kind == "softmax" and self._live(r):
                raise _refuse(r.where, "is a softmax that is not the model's last operation")

    def _live(self, r: _Raw) -> bool:
        return any(x is r for x in self._reachable())

    def _reachable(self) -> list[_Raw]:
        assert self.out is not None
        seen: set[int] = set()
        stack = [self.out]
        while stack:
            r = stack.pop()
            if id(r) not in seen:
                seen.add(id(r))
                stack.extend(r.inputs)
        return [r for r in self.raws if id(r) in seen]

    def _prune_dead(self) -> None:
        self.raws = self._reachable()

    def _merge_shortcuts(self) -> None:
        for r in list(self.raws):
            if r.kind == "cpad" and r.inputs[0].kind == "sub" and self.consumers(r.inputs[0]) == [r]:
                sub = r.inputs[0]
                r.p["stride"] = sub.p["stride"]
                r.inputs = [sub.inputs[0]]
                self.raws = [x for x in self.raws if x is not sub]
        for r in self.raws:
            if r.kind == "sub":  # plain subsampling: a channel pad of nothing
                r.kind = "cpad"
                r.p.update(before=0, after=0)
        for r in self.raws:
            if r.kind == "cpad":
                self.notes.append(
                    f"shortcut {r.name!r} ({r.where}) captured as a frozen 1x1 stride-{r.p['stride'][0]} "
                    f"convolution with a 0/1 weight adding {r.p['before']}+{r.p['after']} zero channels (not "
                    "pruned, clustered or trained)"
                )

    def _fold_pads(self) -> None:
        for r in list(self.raws):
            if r.kind != "spad":
                continue
            users = self.consumers(r)
            bad = [u for u in users if u.kind not in ("conv", "dw", "avgpool")] or (self.out is r)
            if bad:
                raise _refuse(
                    r.where,
                    "zero-pads a tensor that is not read only by convolutions or average pools, so the "
                    "padding cannot be folded into them",
                    "Pad only right before a Conv2d or AvgPool2d, or use their padding argument.",
                )
            for u in users:
                u.p["pads"] = tuple(a + b for a, b in zip(u.p["pads"], r.p["pads"], strict=True))
            self.replace(r, r.inputs[0])

    def _fold_bns(self) -> None:
        for r in list(self.raws):
            if r.kind != "bn":
                continue
            bn = r.p["bn"]
            src = r.inputs[0]
            if src.kind in WEIGHT_KINDS and self.consumers(src) == [r] and src is not self.out:
                if int(src.p["weight"].shape[0]) != bn.num_features:
                    raise _refuse(
                        r.where,
                        f"normalizes {bn.num_features} features but the layer before it has "
                        f"{int(src.p['weight'].shape[0])} outputs",
                    )
                src.p["weight"], src.p["bias"] = _fold_bn(src.p["weight"], src.p["bias"], bn)
                self.replace(r, src)
                continue
            c = r.shape[0]
            if bn.num_features != c:
                raise _refuse(
                    r.where,
                    f"normalizes {bn.num_features} features of a tensor laid out as {r.shape}; it follows "
                    "no Conv2d/Linear it could be folded into",
                    "Put BatchNorm right after a Conv2d or Linear whose output nothing else reads.",
                )
            w_, b_ = _fold_bn(torch.ones(c, 1, 1, 1), torch.zeros(c), bn)
            r.kind = "dw"
            r.p = dict(weight=w_, bias=b_, stride=(1, 1), pads=(0, 0, 0, 0), act=(-INF, INF))
            self.notes.append(
                f"BatchNorm {r.name!r} follows no Conv2d/Linear it can be folded into; it became a 1x1 "
                "depthwise convolution"
            )

    def _fuse_acts(self) -> None:
        for r in list(self.raws):
            if r.kind != "act":
                continue
            lo, hi = r.p["lo"], r.p["hi"]
            prev, cur = r, r.inputs[0]
            while cur.kind in COMMUTE and self.consumers(cur) == [prev] and cur is not self.out:
                prev, cur = cur, cur.inputs[0]
            only_reader = self.consumers(cur) == [prev] and cur is not self.out
            if cur.kind == "input" and only_reader:
                assert self.input is not None
                self.input.p["act"] = _meet(self.input.p.get("act", (-INF, INF)), (lo, hi), r.where)
            elif cur.kind in FUSE_INTO and only_reader:
                cur.p["act"] = _meet(cur.p["act"], (lo, hi), r.where)
            else:
                why = (
                    f"its input comes from {cur.where}, which also feeds other operations"
                    if cur.kind in FUSE_INTO or cur.kind == "input"
                    else f"its input comes from {cur.where}, which cannot take activation bounds"
                )
                raise _refuse(
                    r.where,
                    f"is an activation mcu_dc cannot fuse: {why}. Activations are fused into the conv, "
                    "linear, add or average pool that produces their input",
                    "Apply the activation right after such a layer, before its output is used elsewhere "
                    "(e.g. relu(add) rather than relu on a tensor that also feeds a shortcut).",
                )
            self.replace(r, r.inputs[0])

    # ------------------------------------------------------------- the net
    def build(self) -> GraphNet:
        assert self.input is not None and self.out is not None
        if self.out is self.input:
            raise _refuse(f"{type(self.model).__name__}", "has no operation between its input and its output")
        ids: dict[int, int] = {id(self.input): 0}
        nodes: list[Node] = []
        names: set[str] = set()
        for r in self.raws:
            if r.kind == "input":
                continue
            node = self._node(r, _unique(r.name, names))
            if tuple(node.out_shape) != r.shape:
                raise _refuse(
                    r.where,
                    f"produces {r.shape} in torch but mcu_dc computes {tuple(node.out_shape)}",
                    "Report this as a bug in mcu_dc with the model.",
                )
            ids[id(r)] = len(nodes) + 1
            node.wire(tuple(ids[id(i)] for i in r.inputs), ids[id(r)])
            nodes.append(node)
        if not any(isinstance(n, WeightLayer) for n in nodes):
            raise ModelError(
                f"{type(self.model).__name__} has no Conv2d or Linear layer to compress. {_HINT}"
            )
        bounds = self.input.p.get("act", (-INF, INF))
        if bounds != (-INF, INF):
            self.notes.append(
                f"activation on the input clamps it to [{bounds[0]:g}, {bounds[1]:g}] (the identity on uint8 "
                "images; part of the input quantization for float features)"
            )
        return GraphNet(nodes, self.input_shape, ids[id(self.out)], bounds, self.notes)

    def _node(self, r: _Raw, name: str) -> Node:
        in_shape = r.inputs[0].shape
        p = r.p
        if r.kind in WEIGHT_KINDS:
            pt, pl, pb, pr = p["pads"]
            return WeightLayer(
                name, r.kind, p["weight"], p["bias"], in_shape, p["stride"], (pt, pl), padding_end=(pb, pr),
                act=p["act"],
            )  # fmt: skip
        if r.kind == "maxpool":
            return Pool(name, p["kernel"], p["stride"], in_shape)
        if r.kind == "avgpool":
            return AvgPool(name, p["kernel"], p["stride"], in_shape, p["pads"], p["act"])
        if r.kind == "add":
            return AddNode(name, r.shape, p["act"])
        if r.kind == "drop":
            return DropoutNode(name, p["drop"], r.shape)
        if r.kind == "cpad":
            return ChannelPad(name, p["stride"], p["before"], p["after"], in_shape)
        raise AssertionError(f"raw op {r.kind} left after the rewrites")  # pragma: no cover


def _meet(a: tuple[float, float], b: tuple[float, float], where: str) -> tuple[float, float]:
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    if lo > hi:
        raise _refuse(
            where, f"clamps an output already bounded to [{a[0]:g}, {a[1]:g}] to [{b[0]:g}, {b[1]:g}]: empty"
        )
    return lo, hi


def _unique(name: str, names: set[str]) -> str:
    out, i = name, 1
    while out in names:
        out, i = f"{name}_{i}", i + 1
    names.add(out)
    return out


def _fold_bn(w: torch.Tensor, b: torch.Tensor, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    assert isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d))
    assert bn.running_mean is not None and bn.running_var is not None
    gamma = bn.weight.detach() if bn.weight is not None else torch.ones_like(bn.running_mean)
    beta = bn.bias.detach() if bn.bias is not None else torch.zeros_like(bn.running_mean)
    scale = gamma / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return w * scale.reshape(shape), (b - bn.running_mean) * scale + beta


# --------------------------------------------------------------------------- dispatch tables

_H = Callable[[_Capture], None]


def _relu(c: _Capture) -> None:
    c._act(0.0, INF)


def _relu6(c: _Capture) -> None:
    c._act(0.0, 6.0)


def _hardtanh(c: _Capture) -> None:
    c._act(float(c.const(1, "min_val", -1.0)), float(c.const(2, "max_val", 1.0)))


def _maxpool_fn(c: _Capture) -> None:
    c._maxpool(
        c.const(1, "kernel_size"), c.const(2, "stride"), c.const(3, "padding", 0), c.const(4, "dilation", 1),
        bool(c.const(5, "ceil_mode", False)), bool(c.const(6, "return_indices", False)),
    )  # fmt: skip


def _avgpool_fn(c: _Capture) -> None:
    c._avgpool(
        c.const(1, "kernel_size"), c.const(2, "stride"), c.const(3, "padding", 0),
        bool(c.const(4, "ceil_mode", False)), bool(c.const(5, "count_include_pad", True)),
        c.const(6, "divisor_override"),
    )  # fmt: skip


def _adaptive_fn(c: _Capture) -> None:
    c._adaptive(c.const(1, "output_size"))


def _pad_fn(c: _Capture) -> None:
    c._pad(tuple(c.const(1, "pad")), c.const(3, "value", 0))


def _flatten_fn(c: _Capture) -> None:
    c._reshape()


_FUNCTIONS: dict[str, _H] = {
    "relu": _relu, "relu_": _relu, "relu6": _relu6, "hardtanh": _hardtanh, "hardtanh_": _hardtanh,
    "clamp": _Capture._clamp, "clip": _Capture._clamp, "clamp_": _Capture._clamp, "clip_": _Capture._clamp,
    "clamp_min": _Capture._clamp, "clamp_max": _Capture._clamp,
    "max_pool2d": _maxpool_fn, "_max_pool2d": _maxpool_fn, "avg_pool2d": _avgpool_fn,
    "adaptive_avg_pool2d": _adaptive_fn, "mean": _Capture._mean, "pad": _pad_fn,
    "flatten": _flatten_fn, "reshape": _flatten_fn, "squeeze": _flatten_fn, "unsqueeze": _flatten_fn,
    "getitem": _Capture._getitem, "add": _Capture._add, "iadd": _Capture._add,
    "softmax": _Capture._softmax_fn, "log_softmax": _Capture._softmax_fn,
    "dropout": lambda c: c._dropout_fn(nn.Dropout), "dropout1d": lambda c: c._dropout_fn(nn.Dropout1d),
    "dropout2d": lambda c: c._dropout_fn(nn.Dropout2d),
}  # fmt: skip

_METHODS: dict[str, _H] = {
    "relu": _relu, "relu_": _relu, "clamp": _Capture._clamp, "clip": _Capture._clamp,
    "clamp_": _Capture._clamp, "clip_": _Capture._clamp, "clamp_min": _Capture._clamp,
    "clamp_max": _Capture._clamp, "clamp_min_": _Capture._clamp, "clamp_max_": _Capture._clamp,
    "mean": _Capture._mean, "flatten": _flatten_fn, "view": _flatten_fn, "reshape": _flatten_fn,
    "squeeze": _flatten_fn, "unsqueeze": _flatten_fn, "contiguous": _Capture._identity,
    "clone": _Capture._identity, "add": _Capture._add, "add_": _Capture._add,
    "softmax": _Capture._softmax_fn, "log_softmax": _Capture._softmax_fn,
}  # fmt: skip


# --------------------------------------------------------------------------- entry point


def capture(model: nn.Module, input_shape: tuple[int, int, int]) -> GraphNet:
    """Build the float graph of ``model`` for inputs of shape ``(C, H, W)`` (vectors: ``(F, 1, 1)``)."""
    model = model.eval()
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ModelError(
            f"input shape {input_shape} must be (C, H, W) with positive sizes (vectors: (F, 1, 1))"
        )
    cap = _Capture(model, shape)  # type: ignore[arg-type]
    cap.walk()
    cap.rewrite()
    return cap.build().eval()


def check_modules(model: nn.Module) -> None:
    """Kept for callers of the chain version: capture checks every module it meets."""
    return None
