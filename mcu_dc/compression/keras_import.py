"""Import trained Keras weights into a PyTorch model, layer by layer, with every shape checked.

Sources: a Keras ``.h5`` file (``model.save()`` or ``save_weights()``, read with h5py) or a TF 2.x
SavedModel folder (its tensor bundle read by :mod:`mcu_dc.compression.tf_bundle`, no TensorFlow).

The PyTorch model names the Keras layer behind each of its weight modules: it defines
``keras_layers() -> dict[str, str]`` (Keras layer name -> qualified name of an ``nn.Conv2d``,
``nn.Linear`` or ``nn.BatchNorm1d/2d``). The import then maps every weight of the file by layer
name, converts the layout and refuses, with one paragraph listing every problem, a layer the file
has and the model does not (or the reverse), a kind mismatch (a Keras ``DepthwiseConv2D`` onto a
dense ``nn.Conv2d``), a stride or kernel size that differs from the Keras config, and any shape
that differs. Nothing is skipped and nothing is copied unless everything matches.

Layouts (Keras is channels-last): ``Conv2D`` kernel HWIO -> torch OIHW; ``DepthwiseConv2D`` kernel
(H, W, C, M) -> (C*M, 1, H, W), output channel ``c*M + m`` in both; ``Dense`` kernel (in, out) ->
(out, in); ``BatchNormalization`` gamma/beta/moving_mean/moving_variance -> weight/bias/
running_mean/running_var, with the epsilon of the Keras config. A ``Dense`` layer reading a
``Flatten`` of an H x W x C map (H*W > 1) would need its rows permuted from NHWC order; the models
here pool to 1 x 1 first, so the import only accepts a Dense whose input size equals the torch one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mcu_dc.compression import tf_bundle
from mcu_dc.errors import FormatError, ModelError

WEIGHTED = ("Conv2D", "DepthwiseConv2D", "Dense", "BatchNormalization")
_SHOW = 8  # problems listed in one error paragraph


class KerasImportError(ModelError):
    """The Keras weights do not fit the PyTorch model (names, kinds, strides or shapes differ)."""


@dataclass
class KerasLayer:
    """One Keras layer with weights: its name, class, config and weights by short name (``kernel``)."""

    name: str
    class_name: str
    config: dict[str, Any]
    weights: dict[str, np.ndarray]


@dataclass
class ImportInfo:
    """Where imported weights came from, for reports."""

    path: Path
    kind: str  # "Keras .h5" or "TF SavedModel (tensor bundle)"
    keras_version: str
    sha256: str
    layers: int
    tensors: int
    values: int
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{self.path} ({self.kind}, Keras {self.keras_version}, sha256 {self.sha256[:16]}...): "
            f"{self.layers} layers, {self.tensors} tensors, {self.values:,} values"
        )


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a SavedModel folder's ``variables.index`` + ``variables.data-*``."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted((path / "variables").glob("variables.*"))
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- readers


def _model_config(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    cfg = json.loads(text)
    return cfg if isinstance(cfg, dict) else None


def _config_layers(cfg: dict[str, Any] | None) -> dict[str, tuple[str, dict[str, Any]]]:
    if not cfg:
        return {}
    layers = cfg.get("config", {}).get("layers", [])
    return {str(lay["config"]["name"]): (str(lay["class_name"]), dict(lay["config"])) for lay in layers}


def _short(weight_name: str) -> str:
    """``conv2d/conv2d/kernel:0`` -> ``kernel``."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]


def _class_from_weights(names: set[str]) -> str:
    if "depthwise_kernel" in names:
        return "DepthwiseConv2D"
    if "moving_mean" in names:
        return "BatchNormalization"
    return "Kernel"  # Conv2D or Dense: told apart by the kernel's rank


def read_keras_h5(path: str | Path) -> tuple[list[KerasLayer], str]:
    """The layers with weights of a Keras ``.h5`` file, in file order, and the Keras version."""
    try:
        import h5py
    except ImportError as exc:
        raise KerasImportError(
            "reading a Keras .h5 file needs h5py, which is not installed; run "
            "`pip install 'mcu_dc[mlperf]'` (or `pip install h5py`) and try again."
        ) from exc
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"Keras weights file {path} does not exist; check the path (--weights).")
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            cfg = _model_config(f.attrs.get("model_config"))
            config = _config_layers(cfg)
            version = root.attrs.get("keras_version", f.attrs.get("keras_version", b"?"))
            version = version.decode() if isinstance(version, bytes) else str(version)
            out: list[KerasLayer] = []
            for raw_name in root.attrs["layer_names"]:
                name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
                group = root[name]
                wnames = [w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs["weight_names"]]
                if not wnames:
                    continue
                weights = {_short(w): np.asarray(group[w], dtype=np.float32) for w in wnames}
                cls, lcfg = config.get(name, (_class_from_weights(set(weights)), {}))
                out.append(KerasLayer(name, cls, lcfg, weights))
    except (OSError, KeyError, ValueError) as exc:
        raise FormatError(
            f"{path} is not a Keras weights file h5py can read ({type(exc).__name__}: {exc}); it must be an "
            "HDF5 file written by Keras model.save() or save_weights() (layer_names and weight_names "
            "attributes)."
        ) from exc
    return out, version


def read_keras_saved_model(path: str | Path) -> tuple[list[KerasLayer], str]:
    """The layers with weights of a Keras 2.x SavedModel folder and the Keras version.

    The checkpoint names a layer's weights ``layer_with_weights-{i}/{weight}/...``: ``i`` counts the
    model's layers that own weights, in ``model.layers`` order, which the config in ``saved_model.pb``
    gives; the count of both must agree.
    """
    path = Path(path)
    if not path.is_dir():
        raise FormatError(f"SavedModel folder {path} does not exist; give the folder holding saved_model.pb.")
    cfg = tf_bundle.keras_config_from_saved_model(path)
    tensors = tf_bundle.read_bundle(path / "variables")
    prefix, suffix = "layer_with_weights-", "/.ATTRIBUTES/VARIABLE_VALUE"
    by_index: dict[int, dict[str, np.ndarray]] = {}
    for key, arr in tensors.items():
        if key.startswith(prefix) and key.endswith(suffix) and ".OPTIMIZER_SLOT" not in key:
            idx, _, wname = key[len(prefix) : -len(suffix)].partition("/")  # optimizer slots: not weights
            by_index.setdefault(int(idx), {})[wname] = arr
    weighted = [
        (str(lay["config"]["name"]), str(lay["class_name"]), dict(lay["config"]))
        for lay in cfg["config"]["layers"]
        if lay["class_name"] in WEIGHTED
    ]
    if sorted(by_index) != list(range(len(weighted))):
        raise FormatError(
            f"{path}: the checkpoint has weights for {len(by_index)} layers (indices {sorted(by_index)}) but "
            f"the Keras config lists {len(weighted)} layers with weights; the SavedModel is not a plain "
            "Keras model. Export the weights as a Keras .h5 file instead."
        )
    layers = [KerasLayer(n, c, lc, by_index[i]) for i, (n, c, lc) in enumerate(weighted)]
    return layers, str(cfg.get("keras_version", "?"))


# --------------------------------------------------------------------------- expected layouts


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        return "DepthwiseConv2D" if m.groups > 1 and m.groups == m.in_channels else "Conv2D"
    if isinstance(m, nn.Linear):
        return "Dense"
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
        return "BatchNormalization"
    return type(m).__name__


def _conv_targets(m: nn.Conv2d) -> dict[str, tuple[tuple[int, ...], Callable[[np.ndarray], np.ndarray]]]:
    o, i, kh, kw = m.weight.shape
    if _kind(m) == "DepthwiseConv2D":
        mult = o // m.in_channels
        kshape: tuple[int, ...] = (kh, kw, m.in_channels, mult)
        name = "depthwise_kernel"

        def conv(a: np.ndarray) -> np.ndarray:  # (H, W, C, M) -> (C*M, 1, H, W)
            return a.transpose(2, 3, 0, 1).reshape(o, 1, kh, kw)
    else:
        kshape, name = (kh, kw, i, o), "kernel"

        def conv(a: np.ndarray) -> np.ndarray:  # HWIO -> OIHW
            return a.transpose(3, 2, 0, 1)

    out = {name: (kshape, conv)}
    if m.bias is not None:
        out["bias"] = ((o,), lambda a: a)
    return out


def _targets(m: nn.Module) -> dict[str, tuple[tuple[int, ...], Callable[[np.ndarray], np.ndarray]]]:
    """Keras weight name -> (expected Keras shape, conversion to the torch layout)."""
    if isinstance(m, nn.Conv2d):
        return _conv_targets(m)
    if isinstance(m, nn.Linear):
        out = {"kernel": ((m.in_features, m.out_features), lambda a: a.T)}
        if m.bias is not None:
            out["bias"] = ((m.out_features,), lambda a: a)
        return out
    assert isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)
    c = m.num_features
    return {k: ((c,), lambda a: a) for k in ("gamma", "beta", "moving_mean", "moving_variance")}


def _pair(v: Any) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(
        v, dict
    ):  # SavedModel metadata writes tuples as {"class_name": "__tuple__", "items": [...]}
        v = v.get("items")
    if isinstance(v, int):
        return (v, v)
    return (int(v[0]), int(v[1]))


def _config_problems(layer: KerasLayer, m: nn.Module, where: str) -> list[str]:
    """Kind, kernel size and stride of the Keras config against the torch module."""
    kind = _kind(m)
    cls = layer.class_name
    if cls == "Kernel":  # .h5 without a config: a rank-4 kernel is a Conv2D
        cls = "Conv2D" if layer.weights.get("kernel", np.zeros(0)).ndim == 4 else "Dense"
    if cls != kind:
        return [f"Keras layer {layer.name!r} is a {cls} but {where} is a {kind}"]
    probs: list[str] = []
    if isinstance(m, nn.Conv2d):
        for key, have in (("kernel_size", m.kernel_size), ("strides", m.stride)):
            want = _pair(layer.config.get(key))
            if want is not None and want != tuple(have):
                probs.append(f"Keras layer {layer.name!r} has {key} {want} but {where} has {tuple(have)}")
        if layer.config.get("padding") == "valid" and tuple(m.padding) != (0, 0):  # type: ignore[arg-type]
            probs.append(f"Keras layer {layer.name!r} has padding 'valid' but {where} pads by {m.padding}")
    return probs


def _layer_problems(layer: KerasLayer, m: nn.Module, where: str) -> list[str]:
    probs = _config_problems(layer, m, where)
    if probs:
        return probs
    targets = _targets(m)
    for wname in sorted(set(layer.weights) - set(targets)):
        probs.append(
            f"Keras layer {layer.name!r} has weight {wname!r} {tuple(layer.weights[wname].shape)} that "
            f"{where} has no place for (it expects {', '.join(targets)})"
        )
    for wname, (shape, _) in targets.items():
        if wname not in layer.weights:
            probs.append(
                f"Keras layer {layer.name!r} lacks weight {wname!r} (expected shape {shape}) for {where}"
            )
        elif tuple(layer.weights[wname].shape) != shape:
            probs.append(
                f"Keras layer {layer.name!r} weight {wname!r}: expected shape {shape} for {where}, "
                f"found {tuple(layer.weights[wname].shape)}"
            )
    return probs


def _refuse(source: Path, problems: list[str]) -> KerasImportError:
    shown = "; ".join(problems[:_SHOW])
    more = f"; and {len(problems) - _SHOW} more" if len(problems) > _SHOW else ""
    return KerasImportError(
        f"the weights in {source} do not fit the PyTorch model ({len(problems)} problem(s)): {shown}{more}. "
        "Nothing was loaded. Build the model that matches the file (the same layer names, kinds, strides and "
        "widths; see keras_layers()), or give the weights file of this model."
    )


# --------------------------------------------------------------------------- assignment


def assign_keras_layers(model: nn.Module, layers: list[KerasLayer], source: Path) -> int:
    """Copy ``layers`` into ``model`` by its ``keras_layers()`` map, all or nothing; returns values copied."""
    get_map = getattr(model, "keras_layers", None)
    if not callable(get_map):
        raise KerasImportError(
            f"{type(model).__name__} does not say which Keras layer each of its modules is: define "
            "keras_layers() -> {keras layer name: torch submodule name}, as the MLPerf Tiny models do."
        )
    mapping: dict[str, str] = get_map()
    in_file = {lay.name: lay for lay in layers}
    problems = [
        f"the file has weights for Keras layer {n!r} ({in_file[n].class_name}), which the model does not map"
        for n in in_file
        if n not in mapping
    ]
    problems += [
        f"the model maps Keras layer {n!r} (to {t!r}), which the file lacks"
        for n, t in mapping.items()
        if n not in in_file
    ]
    todo: list[tuple[KerasLayer, nn.Module]] = []
    for name, target in mapping.items():
        if name not in in_file:
            continue
        try:
            mod = model.get_submodule(target)
        except AttributeError:
            problems.append(f"keras_layers() maps {name!r} to {target!r}, which is not a submodule")
            continue
        where = f"module {target!r} ({type(mod).__name__})"
        if _kind(mod) not in WEIGHTED:
            problems.append(f"keras_layers() maps {name!r} to {where}, which has no Keras counterpart")
            continue
        problems += _layer_problems(in_file[name], mod, where)
        todo.append((in_file[name], mod))
    if problems:
        raise _refuse(source, problems)
    copied = 0
    with torch.no_grad():
        for layer, mod in todo:
            for wname, (_, convert) in _targets(mod).items():
                arr = np.ascontiguousarray(convert(layer.weights[wname]))
                param = _param(mod, wname)
                param.copy_(torch.from_numpy(arr).to(param.dtype))
                copied += arr.size
            if isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d) and "epsilon" in layer.config:
                mod.eps = float(layer.config["epsilon"])
    return copied


def _param(m: nn.Module, keras_name: str) -> torch.Tensor:
    attr = {
        "kernel": "weight", "depthwise_kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
        "moving_mean": "running_mean", "moving_variance": "running_var",
    }[keras_name]  # fmt: skip
    t = getattr(m, attr)
    assert isinstance(t, torch.Tensor)
    return t


def _import(model: nn.Module, path: Path, kind: str, layers: list[KerasLayer], version: str) -> ImportInfo:
    values = assign_keras_layers(model, layers, path)
    tensors = sum(len(lay.weights) for lay in layers)
    return ImportInfo(path, kind, version, sha256_of(path), len(layers), tensors, values)


def load_keras_h5(model: nn.Module, path: str | Path) -> ImportInfo:
    """Load the weights of a Keras ``.h5`` file into ``model`` (see the module docstring)."""
    layers, version = read_keras_h5(path)
    return _import(model, Path(path), "Keras .h5", layers, version)


def load_keras_saved_model(model: nn.Module, path: str | Path) -> ImportInfo:
    """Load the weights of a Keras 2.x SavedModel folder into ``model`` (float32, read without TensorFlow)."""
    layers, version = read_keras_saved_model(path)
    return _import(model, Path(path), "TF SavedModel (tensor bundle)", layers, version)


def load_keras_weights(model: nn.Module, path: str | Path) -> ImportInfo:
    """``.h5`` file or SavedModel folder, told apart by what ``path`` is."""
    p = Path(path)
    if p.is_dir():
        return load_keras_saved_model(model, p)
    return load_keras_h5(model, p)
