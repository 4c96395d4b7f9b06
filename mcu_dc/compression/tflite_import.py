"""Import the weights of a ``.tflite`` model (float, hybrid or int8) into a PyTorch model, op by op.

The ``.tflite`` graph is read through the LiteRT interpreter's tensor API (``ai-edge-litert``): its
CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops, in execution order, are matched one to one with
the torch model's weight modules in the order ``keras_layers()`` lists them. The converter has
folded each BatchNormalization into the op before it, so the torch BatchNorm that follows a conv
or linear is set to the identity (gamma 1, beta 0, mean 0, variance 1, epsilon 0) and the conv
takes the folded weights and bias. int8 weights are dequantized with their (per-channel) scales
and zero points: the float model then computes exactly what the quantized weights represent.
Kinds and shapes are checked and a mismatch is refused with one paragraph; nothing is loaded then.

TFLite layouts: conv OHWI -> torch OIHW; depthwise (1, H, W, C*M) -> (C*M, 1, H, W); fully
connected (out, in), as torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mcu_dc.compression.keras_import import ImportInfo, KerasImportError, sha256_of
from mcu_dc.errors import FormatError

_WEIGHT_OPS = {"CONV_2D": "Conv2D", "DEPTHWISE_CONV_2D": "DepthwiseConv2D", "FULLY_CONNECTED": "Dense"}


@dataclass
class TfliteLayer:
    """One weight op of a ``.tflite`` graph with its dequantized float weights (TFLite layout)."""

    op: str
    name: str  # the weight tensor's name
    weight: np.ndarray
    bias: np.ndarray | None
    quantized: bool


def _interpreter(path: Path) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise KerasImportError(
            "reading a .tflite file needs the LiteRT interpreter, which is not installed; run "
            "`pip install ai-edge-litert` (or `pip install 'mcu_dc[dev]'`) and try again."
        ) from exc
    if not path.is_file():
        raise FormatError(f".tflite file {path} does not exist; check the path (--weights).")
    try:
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise FormatError(f"LiteRT cannot load {path} as a .tflite model ({exc}); check the file.") from exc
    return it


def _dequantize(it: Any, detail: dict[str, Any]) -> tuple[np.ndarray, bool]:
    data = np.asarray(it.get_tensor(detail["index"]))
    if data.dtype == np.float32:
        return data.copy(), False
    q = detail["quantization_parameters"]
    scales = np.asarray(q["scales"], dtype=np.float64)
    zps = np.asarray(q["zero_points"], dtype=np.float64)
    if scales.size == 0:
        raise FormatError(f"tensor {detail['name']!r} is {data.dtype} without quantization scales")
    shape = [1] * data.ndim
    if scales.size > 1:
        shape[int(q["quantized_dimension"])] = scales.size
    zps = zps.reshape(shape) if zps.size == scales.size else zps.reshape(-1)[:1]
    deq = (data.astype(np.float64) - zps) * scales.reshape(shape)
    return deq.astype(np.float32), True


def read_tflite_layers(path: str | Path) -> list[TfliteLayer]:
    """The weight ops of a ``.tflite`` file in execution order, weights dequantized to float32."""
    path = Path(path)
    it = _interpreter(path)
    details = {d["index"]: d for d in it.get_tensor_details()}
    out: list[TfliteLayer] = []
    for op in it._get_ops_details():
        kind = op["op_name"]
        if kind not in _WEIGHT_OPS:
            continue
        inputs = [int(i) for i in op["inputs"]]
        wd = details[inputs[1]]
        weight, quantized = _dequantize(it, wd)
        bias = None
        if len(inputs) > 2 and inputs[2] >= 0:
            bias, _ = _dequantize(it, details[inputs[2]])
        out.append(TfliteLayer(kind, str(wd["name"]), weight, bias, quantized))
    return out


def _weight_modules(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module | None]]:
    """(name, conv or linear, the BatchNorm right after it or None), in ``keras_layers()`` order."""
    names = list(model.keras_layers().values())  # type: ignore[operator]
    mods = [(n, model.get_submodule(n)) for n in names]
    out: list[tuple[str, nn.Module, nn.Module | None]] = []
    for i, (n, m) in enumerate(mods):
        if isinstance(m, nn.Conv2d | nn.Linear):
            nxt = mods[i + 1][1] if i + 1 < len(mods) else None
            out.append((n, m, nxt if isinstance(nxt, nn.BatchNorm1d | nn.BatchNorm2d) else None))
    return out


def _torch_layout(layer: TfliteLayer, m: nn.Module) -> np.ndarray:
    w = layer.weight
    if layer.op == "CONV_2D":
        return w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
    if layer.op == "DEPTHWISE_CONV_2D":
        return w[0].transpose(2, 0, 1)[:, None]  # (1, H, W, C*M) -> (C*M, 1, H, W)
    return w


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        return "DepthwiseConv2D" if m.groups > 1 and m.groups == m.in_channels else "Conv2D"
    return "Dense" if isinstance(m, nn.Linear) else type(m).__name__


def _problems(layers: list[TfliteLayer], mods: list[tuple[str, nn.Module, nn.Module | None]]) -> list[str]:
    probs: list[str] = []
    if len(layers) != len(mods):
        probs.append(f"the file has {len(layers)} weight ops, the model {len(mods)} conv/linear modules")
    for i, (layer, (name, m, _)) in enumerate(zip(layers, mods, strict=False)):
        where = f"module {name!r} ({type(m).__name__})"
        if _WEIGHT_OPS[layer.op] != _kind(m):
            probs.append(f"op {i} ({layer.op}, weights {layer.name!r}) meets {where}, a {_kind(m)}")
            continue
        w = _torch_layout(layer, m)
        want = tuple(m.weight.shape)  # type: ignore[union-attr]
        if tuple(w.shape) != want:
            probs.append(
                f"op {i} ({layer.op}, {layer.name!r}): expected weights {want} for {where}, found {w.shape}"
            )
        if layer.bias is not None and tuple(layer.bias.shape) != (want[0],):
            probs.append(f"op {i} ({layer.op}): expected bias ({want[0]},), found {layer.bias.shape}")
    return probs


def _identity_bn(bn: nn.Module) -> None:
    assert isinstance(bn, nn.BatchNorm1d | nn.BatchNorm2d)
    bn.weight.fill_(1.0)
    bn.bias.zero_()
    bn.running_mean.zero_()  # type: ignore[union-attr]
    bn.running_var.fill_(1.0)  # type: ignore[union-attr]
    bn.eps = 0.0


def load_tflite_weights(model: nn.Module, path: str | Path) -> ImportInfo:
    """Load the (dequantized, BN-folded) weights of a ``.tflite`` file into ``model``; see the module doc."""
    path = Path(path)
    if not callable(getattr(model, "keras_layers", None)):
        raise KerasImportError(
            f"{type(model).__name__} does not list its weight modules: define keras_layers() -> "
            "{layer name: torch submodule name} in execution order, as the MLPerf Tiny models do."
        )
    layers = read_tflite_layers(path)
    mods = _weight_modules(model)
    probs = _problems(layers, mods)
    if probs:
        raise KerasImportError(
            f"the weights in {path} do not fit the PyTorch model ({len(probs)} problem(s)): "
            f"{'; '.join(probs[:8])}. Nothing was loaded. Give the .tflite of this model's architecture."
        )
    values = 0
    with torch.no_grad():
        for layer, (_, m, bn) in zip(layers, mods, strict=True):
            w = torch.from_numpy(np.ascontiguousarray(_torch_layout(layer, m)))
            m.weight.copy_(w)  # type: ignore[operator]
            bias = layer.bias if layer.bias is not None else np.zeros(w.shape[0], np.float32)
            if m.bias is None:  # type: ignore[union-attr]
                m.bias = nn.Parameter(torch.zeros(w.shape[0]))
            m.bias.copy_(torch.from_numpy(bias))  # type: ignore[union-attr]
            if bn is not None:
                _identity_bn(bn)
            values += w.numel() + bias.size
    notes = [f"{sum(la.quantized for la in layers)} of {len(layers)} weight ops dequantized from int8"]
    return ImportInfo(
        path, ".tflite (BN folded)", "-", sha256_of(path), len(layers), 2 * len(layers), values, notes
    )
