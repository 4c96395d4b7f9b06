"""Bit-exact host simulator: the integers the device must produce.

``simulate(model, x)`` runs an :class:`~mcu_dc.core.ir.IntegerModel` graph (or a
``CompressedModel``) with exactly the arithmetic of ``docs/format.md``: every op is run
by its registered spec (:mod:`mcu_dc.core.ops`) in the model's order, on int64 tensors
holding int8 values. No torch, no float rounding anywhere.

Inputs: a UINT8-input model takes raw bytes (byte ``b`` becomes ``b - 128``); an
INT8-input model takes int8 values, or float features which it first quantizes with the
model's recorded input scale and zero point (:meth:`IntegerModel.quantize_input`).

Matrix products are integer products, computed with float64 BLAS only where every
partial sum provably stays below 2**53 (then exact whatever the order of additions),
otherwise in int64; accumulators wrap to int32 like the C runtime's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mcu_dc.core.ir import Conv2D, DepthwiseConv2D, InputKind, IntegerModel
from mcu_dc.core.ops import spec_of
from mcu_dc.errors import ConfigError, DataError, FitError


def _as_integer_model(model: Any) -> IntegerModel:
    if isinstance(model, IntegerModel):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, IntegerModel):
        return inner
    raise ConfigError(
        f"simulate() needs an IntegerModel or a CompressedModel, got {type(model).__name__}; "
        "load a .mcudc file with mcu_dc.core.model_file.load(path)"
    )


def arena_bytes(model: Any) -> int:
    """Exact arena size in bytes the C runtime needs for ``model`` (docs/format.md, 'Arena')."""
    return _as_integer_model(model).arena_bytes()


def check_arena(model: Any, budget_bytes: int, *, what: str = "the arena budget") -> int:
    """Return the model's arena size; raise :class:`FitError` if it exceeds ``budget_bytes``."""
    need = arena_bytes(model)
    if need > budget_bytes:
        m = _as_integer_model(model)
        shapes = " -> ".join("x".join(map(str, s)) for s in m.tensor_shapes())
        raise FitError(
            f"model {m.name!r} needs an arena of {need} bytes but {what} is {budget_bytes} bytes "
            f"(over by {need - budget_bytes} bytes); its tensors are {shapes}. Use a board with more "
            "RAM, or shrink the largest activations (fewer channels, pooling earlier)."
        )
    return need


def _prepare_input(model: IntegerModel, x: Any) -> np.ndarray:
    """Check and reshape inputs to (N, C, H, W) int64 int8 values."""
    arr = np.asarray(x)
    in_len = model.input_len
    shape = tuple(model.input_shape)
    if model.input_kind == InputKind.UINT8:
        if arr.dtype.kind not in "ui":
            raise DataError(
                f"simulate(): model {model.name!r} takes raw uint8 bytes (0..255), got dtype {arr.dtype}; "
                "convert "
                "images with np.asarray(img, dtype=np.uint8)"
            )
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"simulate(): input values range {arr.min()}..{arr.max()}, outside uint8 0..255")
    elif arr.dtype.kind == "f":
        if arr.size and not np.isfinite(arr).all():
            raise DataError("simulate(): the float input features contain NaN or inf")
        arr = model.quantize_input(arr)
    elif arr.dtype.kind in "ui":
        if arr.size and (arr.min() < -128 or arr.max() > 127):
            raise DataError(
                f"simulate(): int8 input values range {arr.min()}..{arr.max()}; model {model.name!r} "
                "takes int8 "
                "(or float features, which it quantizes itself)"
            )
    else:
        raise DataError(f"simulate(): inputs of dtype {arr.dtype} are neither int8 nor float features")
    if arr.ndim == 1 and arr.shape[0] == in_len:
        arr = arr[None]
    elif arr.ndim == 3 and tuple(arr.shape) == shape:
        arr = arr[None]
    if not (
        arr.ndim >= 2 and int(np.prod(arr.shape[1:])) == in_len and (arr.ndim != 4 or arr.shape[1:] == shape)
    ):
        raise DataError(
            f"simulate(): input shape {tuple(arr.shape)} does not fit the model, which takes "
            f"{in_len} values per input (C,H,W = {shape}); pass (N, {in_len}), (N, *{shape}) or ({in_len},)"
        )
    n = arr.shape[0]
    out = arr.reshape((n, *shape)).astype(np.int64)
    return out - 128 if model.input_kind == InputKind.UINT8 else out


_BATCH_BYTES = 64 << 20  # bound on one batch's largest intermediate (im2col) array


def _auto_batch(m: IntegerModel) -> int:
    widest = [c * h * w for (c, h, w) in m.tensor_shapes()]
    for op in m.layers:
        if isinstance(op, (Conv2D, DepthwiseConv2D)):
            _, oh, ow = op.conv_shape
            widest.append(oh * ow * op.fan_in * (op.in_shape[0] if isinstance(op, Conv2D) else 1))
    return max(1, min(4096, _BATCH_BYTES // (8 * max(1, max(widest)))))


def run_graph(m: IntegerModel, t_in: np.ndarray, *, keep: bool = False) -> dict[int, np.ndarray]:
    """Every tensor of one batch (int64 (N, C, H, W)), by id; without ``keep`` only the output survives."""
    last_use = {t: max(ix) for t, ix in m.consumers().items() if ix}
    tensors: dict[int, np.ndarray] = {m.input_tensor: t_in}
    for i, op in enumerate(m.layers):
        xs = [tensors[t] for t in op.inputs]
        tensors[op.output] = spec_of(op).simulate(op, xs)
        if not keep:
            for t in set(op.inputs):
                if last_use.get(t) == i and t != m.output_tensor:
                    del tensors[t]
    return tensors


def simulate(model: Any, x: Any, *, batch: int | None = None) -> np.ndarray:
    """Run ``model`` on its inputs; return int8 outputs of shape (N, out_len).

    ``x`` is (N, in_len), (N, C, H, W) or (in_len,): raw uint8 for a UINT8-input model;
    int8 values or float features for an INT8-input model. The result is exactly what
    ``mcu_dc_infer`` writes on the device, for every input. ``batch`` inputs are processed
    at a time (default: as many as keep each intermediate array near 64 MiB).
    """
    m = _as_integer_model(model)
    t_all = _prepare_input(m, x)
    n = t_all.shape[0]
    batch = batch or _auto_batch(m)
    out = np.empty((n, m.output_len), dtype=np.int8)
    for start in range(0, n, max(1, batch)):
        t = run_graph(m, t_all[start : start + batch])[m.output_tensor]
        out[start : start + batch] = t.reshape(t.shape[0], -1).astype(np.int8)
    return out


def device_input(model: Any, x: Any) -> np.ndarray:
    """The bytes a device receives for inputs ``x``: uint8 (N, in_len) (int8 values as their bytes)."""
    m = _as_integer_model(model)
    t = _prepare_input(m, x).reshape(-1, m.input_len)
    if m.input_kind == InputKind.UINT8:
        t = t + 128
    return (t & 0xFF).astype(np.uint8)
