"""Bit-exact host simulator: the integers the device must produce.

``simulate(model, x)`` runs an :class:`~mcu_dc.core.ir.IntegerModel` (or a
``CompressedModel``) on raw ``uint8`` inputs with exactly the arithmetic of
``docs/format.md``: byte ``b`` becomes int8 ``b - 128``; each Conv2D/FC row accumulates
``bias + sum w * (x - in_zp)`` in int32, requantizes with an int64 product, an
arithmetic shift that rounds half up, adds ``out_zp`` and clamps; MaxPool2D takes the
maximum. No torch, no float rounding anywhere.

The matrix products are integer products. Where every partial sum provably stays below
2**53 (``fan_in * max|x - zp| * max|w| < 2**53``, true for any realistic layer) they are
computed with float64 BLAS, which is then *exact*: every product and every partial sum
is an integer representable in a double, so the order of additions cannot change the
result. Otherwise the product runs in int64. Either way the result is converted back to
int64 and wrapped to int32 like the C runtime's accumulator (the format requires the
true sum to fit int32, so the wrap never changes a valid model's result).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mcu_dc.core.ir import FC, Conv2D, IntegerModel, MaxPool2D, WeightLayer, dense_weights
from mcu_dc.errors import ConfigError, DataError, FitError

_EXACT_F64 = 2**53


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
    """Check and reshape raw inputs to (N, C, H, W) int64 values ``b - 128``."""
    arr = np.asarray(x)
    in_len = model.input_len
    shape = tuple(model.input_shape)
    if arr.dtype.kind not in "ui":
        raise DataError(
            f"simulate(): inputs must be raw uint8 bytes (0..255), got dtype {arr.dtype}; convert "
            "images with np.asarray(img, dtype=np.uint8)"
        )
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise DataError(
            f"simulate(): input values range {arr.min()}..{arr.max()}, outside the uint8 range 0..255"
        )
    if arr.ndim == 1 and arr.shape[0] == in_len:
        arr = arr.reshape(1, in_len)
    if arr.ndim == 2 and arr.shape[1] == in_len:
        n = arr.shape[0]
    elif arr.ndim == 4 and tuple(arr.shape[1:]) == shape:
        n = arr.shape[0]
    elif arr.ndim == 3 and tuple(arr.shape) == shape:
        n = 1
    else:
        raise DataError(
            f"simulate(): input shape {tuple(arr.shape)} does not fit the model, which takes "
            f"{in_len} bytes per input (C,H,W = {shape}); pass (N, {in_len}), (N, *{shape}) or ({in_len},)"
        )
    return arr.reshape((n, *shape)).astype(np.int64) - 128


def _int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer ``a @ b`` (int64 in, int64 out)."""
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    bound = int(np.abs(a).max()) * int(np.abs(b).max()) * a.shape[1]
    if bound < _EXACT_F64:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def _wrap_int32(v: np.ndarray) -> np.ndarray:
    return ((v + 2**31) & 0xFFFFFFFF) - 2**31


def requantize(acc: np.ndarray, layer: WeightLayer) -> np.ndarray:
    """The one rounding rule (ROUNDING_HALF_UP) with saturation, on int64 accumulators."""
    mult = int(layer.requant.multiplier)
    shift = int(layer.requant.shift)
    y = (acc.astype(np.int64) * mult + (1 << (shift - 1))) >> shift
    return np.clip(y + int(layer.out_zp), int(layer.act_min), int(layer.act_max))


def _fc(layer: FC, t: np.ndarray) -> np.ndarray:
    n = t.shape[0]
    xs = t.reshape(n, -1) - int(layer.in_zp)
    w = dense_weights(layer).astype(np.int64)
    acc = _int_matmul(xs, w.T) + np.asarray(layer.bias, dtype=np.int64)[None, :]
    y = requantize(_wrap_int32(acc), layer)
    return y.reshape(n, layer.out_features, 1, 1)


def _conv(layer: Conv2D, t: np.ndarray) -> np.ndarray:
    n, c, _, _ = t.shape
    kh, kw = layer.kernel
    sh, sw = layer.stride
    ph, pw = layer.padding
    oc, oh, ow = layer.out_shape
    xs = t - int(layer.in_zp)  # padding contributes nothing: zero after subtracting in_zp
    xs = np.pad(xs, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xs, (kh, kw), axis=(2, 3))  # (N, C, H', W', kh, kw)
    win = win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]  # (N, C, oh, ow, kh, kw)
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
    w = dense_weights(layer).astype(np.int64)  # (oc, c*kh*kw), torch layout
    acc = _int_matmul(np.ascontiguousarray(cols), w.T) + np.asarray(layer.bias, dtype=np.int64)[None, :]
    y = requantize(_wrap_int32(acc), layer)
    return y.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)


def _maxpool(layer: MaxPool2D, t: np.ndarray) -> np.ndarray:
    kh, kw = layer.kernel
    sh, sw = layer.stride
    _, oh, ow = layer.out_shape
    win = sliding_window_view(t, (kh, kw), axis=(2, 3))
    win = win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]
    return win.max(axis=(4, 5))


_BATCH_BYTES = 64 << 20  # bound on one batch's largest intermediate (im2col) array


def _auto_batch(m: IntegerModel) -> int:
    widest = max(
        [c * h * w for (c, h, w) in m.tensor_shapes()]
        + [
            layer.out_shape[1] * layer.out_shape[2] * layer.fan_in
            for layer in m.layers
            if isinstance(layer, Conv2D)
        ]
    )
    return max(1, min(4096, _BATCH_BYTES // (8 * max(1, widest))))


def simulate(model: Any, x: Any, *, batch: int | None = None) -> np.ndarray:
    """Run ``model`` on raw uint8 inputs; return int8 outputs of shape (N, out_len).

    ``x`` is uint8 of shape (N, in_len), (N, C, H, W) or (in_len,). The result is exactly
    what ``mcu_dc_infer`` writes on the device, for every input. ``batch`` inputs are
    processed at a time (default: as many as keep each intermediate array near 64 MiB).
    """
    m = _as_integer_model(model)
    t_all = _prepare_input(m, x)
    n = t_all.shape[0]
    batch = batch or _auto_batch(m)
    out = np.empty((n, m.output_len), dtype=np.int8)
    for start in range(0, n, max(1, batch)):
        t = t_all[start : start + batch]
        for layer in m.layers:
            if isinstance(layer, FC):
                t = _fc(layer, t)
            elif isinstance(layer, Conv2D):
                t = _conv(layer, t)
            elif isinstance(layer, MaxPool2D):
                t = _maxpool(layer, t)
            else:  # pragma: no cover - the IR has no other layer
                raise ConfigError(f"simulate(): unknown layer type {type(layer).__name__}")
        out[start : start + batch] = t.reshape(t.shape[0], -1).astype(np.int8)
    return out
