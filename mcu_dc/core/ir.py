"""The integer model: what a device runs, torch-free.

An :class:`IntegerModel` is a graph of ops over int8 tensors in CHW order (the order of
``torch.flatten``). Tensors are numbered: tensor ``model.input_tensor`` is the input;
every other tensor is the output of exactly one op; ops are stored in execution order
(each op's inputs exist before it runs). Each op names its ``inputs`` (tensor ids) and
its ``output``; a model built from a plain list of ops without wiring is a chain (op
``i`` reads tensor ``i`` and writes tensor ``i + 1``), as in format version 1.

The ops are registered in :mod:`mcu_dc.core.ops` (one module each: CONV2D,
DEPTHWISE_CONV2D, FC, MAXPOOL2D, AVGPOOL2D, ADD); each defines its shape, checks,
simulation and packing. The arithmetic (the one rounding rule) is
:mod:`mcu_dc.core.qmath`; the byte layout and every rule are ``docs/format.md``.

The device input is either raw ``uint8`` bytes (:attr:`InputKind.UINT8`, e.g. pixels:
byte ``b`` becomes int8 ``b - 128``, so ``input_zp`` is -128) or int8 values that the
host quantized from float features with ``input_scale`` and ``input_zp``
(:attr:`InputKind.INT8`). The arena plan (:mod:`mcu_dc.core.planner`) gives every
tensor and every op's scratch an offset; it is stored in the blob.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mcu_dc.core.ops import FC, Add, AvgPool2D, Conv2D, DepthwiseConv2D, MaxPool2D, spec_of
from mcu_dc.core.ops.weights import dense_weights
from mcu_dc.core.qmath import (
    MAX_CODEBOOK,
    MAX_HUFFMAN_LEN,
    MAX_INDEX_BITS,
    NO_TENSOR,
    ROUNDING_HALF_UP,
    TASKS,
    Encoding,
    InputKind,
    Op,
    Requant,
)  # fmt: skip
from mcu_dc.errors import ConfigError

Layer = Conv2D | DepthwiseConv2D | FC | MaxPool2D | AvgPool2D | Add
WeightLayer = Conv2D | DepthwiseConv2D | FC
WEIGHT_OPS = (Conv2D, DepthwiseConv2D, FC)

__all__ = [
    "FC", "MAX_CODEBOOK", "MAX_HUFFMAN_LEN", "MAX_INDEX_BITS", "NO_TENSOR", "ROUNDING_HALF_UP", "TASKS",
    "WEIGHT_OPS", "Add", "AvgPool2D", "Conv2D", "DepthwiseConv2D", "Encoding", "InputKind", "IntegerModel",
    "Layer", "MaxPool2D", "Op", "Requant", "WeightLayer", "dense_weights", "is_weight_op",
]  # fmt: skip


def is_weight_op(op: Any) -> bool:
    return isinstance(op, WEIGHT_OPS)


@dataclass
class IntegerModel:
    """A graph of integer ops; the device-side truth."""

    layers: list[Layer]  # ops in execution order
    input_shape: tuple[int, int, int]
    input_scale: float  # real value of one input step
    output_scale: float  # real value of one output LSB
    output_zp: int
    name: str = "model"
    input_kind: InputKind = InputKind.UINT8
    input_zp: int = -128  # UINT8: always -128 (b - 128); INT8: the calibrated zero point
    input_tensor: int = 0
    output_tensor: int = -1  # -1: the last op's output
    tensor_scales: list[float] | None = None  # per tensor id, host information (0.0 = unknown)
    plan: Any = None  # an ArenaPlan; None = planned on demand by mcu_dc.core.planner
    task: str = "classification"

    def __post_init__(self) -> None:
        self.input_kind = InputKind(self.input_kind)
        if self.layers and all(op.output == -1 and not op.inputs for op in self.layers):
            for i, op in enumerate(self.layers):  # a chain, as in format version 1
                op.inputs = (i,) * spec_of(op).n_inputs
                op.output = i + 1
        if self.output_tensor == -1 and self.layers:
            self.output_tensor = self.layers[-1].output

    # ------------------------------------------------------------------ graph
    @property
    def ops(self) -> list[Layer]:
        return self.layers

    @property
    def n_tensors(self) -> int:
        outs = [op.output for op in self.layers]
        return max([self.input_tensor, *outs]) + 1

    def producers(self) -> dict[int, int]:
        """tensor id -> index of the op that writes it."""
        return {op.output: i for i, op in enumerate(self.layers)}

    def consumers(self) -> dict[int, list[int]]:
        """tensor id -> indices of the ops that read it (in order)."""
        out: dict[int, list[int]] = {t: [] for t in range(self.n_tensors)}
        for i, op in enumerate(self.layers):
            for t in dict.fromkeys(op.inputs):
                out.setdefault(t, []).append(i)
        return out

    def tensor_shapes(self) -> list[tuple[int, int, int]]:
        """Shape of every tensor, by id."""
        shapes: list[Any] = [None] * self.n_tensors
        shapes[self.input_tensor] = tuple(self.input_shape)
        for op in self.layers:
            shapes[op.output] = tuple(op.out_shape)
        return shapes

    def tensor_zps(self) -> list[int]:
        zps = [0] * self.n_tensors
        zps[self.input_tensor] = int(self.input_zp)
        for op in self.layers:
            zps[op.output] = spec_of(op).out_zp(op)
        return zps

    def tensor_bytes(self, t: int) -> int:
        c, h, w = self.tensor_shapes()[t]
        return c * h * w

    def validate(self, where: str = "model") -> None:
        """Wiring, shapes and zero points agree; every op's parameters are in range (ConfigError)."""
        if not self.layers:
            raise ConfigError(f"{where}: the model has no ops")
        if self.task not in TASKS:
            raise ConfigError(f"{where}: task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.input_kind == InputKind.UINT8 and self.input_zp != -128:
            raise ConfigError(f"{where}: a uint8-input model has input zero point -128, not {self.input_zp}")
        if not -128 <= self.input_zp <= 127:
            raise ConfigError(f"{where}: input zero point {self.input_zp} is not an int8")
        n_t = self.n_tensors
        if n_t > 0xFFFE or len(self.layers) > 0xFFFF:
            raise ConfigError(f"{where}: too many tensors ({n_t}) or ops ({len(self.layers)})")
        shapes: dict[int, tuple[int, int, int]] = {self.input_tensor: tuple(self.input_shape)}  # type: ignore[dict-item]
        zps: dict[int, int] = {self.input_tensor: int(self.input_zp)}
        for i, op in enumerate(self.layers):
            spec = spec_of(op)
            w = f"{where}: op {i} ({op.name}, {spec.code.name})"
            if len(op.inputs) != spec.n_inputs:
                raise ConfigError(f"{w} takes {spec.n_inputs} input(s), got {len(op.inputs)}")
            for t, want_shape, want_zp in zip(op.inputs, spec.in_shapes(op), spec.in_zps(op), strict=True):
                if t not in shapes:
                    raise ConfigError(f"{w} reads tensor {t}, which no earlier op writes")
                if shapes[t] != tuple(want_shape):
                    raise ConfigError(
                        f"{w} expects input shape {tuple(want_shape)} but tensor {t} is {shapes[t]}"
                    )
                if zps[t] != want_zp:
                    raise ConfigError(f"{w} expects input zero point {want_zp} but tensor {t} has {zps[t]}")
            if op.output in shapes:
                raise ConfigError(f"{w} writes tensor {op.output}, which is already written")
            if not 0 <= op.output < n_t:
                raise ConfigError(f"{w} writes tensor {op.output}, outside 0..{n_t - 1}")
            spec.check(op, w)
            shapes[op.output] = tuple(spec.out_shape(op))  # type: ignore[assignment]
            zps[op.output] = spec.out_zp(op)
        if len(shapes) != n_t:
            missing = sorted(set(range(n_t)) - set(shapes))
            raise ConfigError(f"{where}: tensor ids {missing} are never written")
        if self.output_tensor not in shapes or self.output_tensor == self.input_tensor:
            raise ConfigError(f"{where}: output tensor {self.output_tensor} is not written by any op")
        used = self.consumers()
        dead = [t for t in range(n_t) if not used.get(t) and t != self.output_tensor]
        if dead:
            raise ConfigError(
                f"{where}: tensors {dead} are computed but never used "
                "(a branch that does not reach the output)"
            )

    # ------------------------------------------------------------------ sizes
    @property
    def output_shape(self) -> tuple[int, int, int]:
        if not self.layers:
            return tuple(self.input_shape)  # type: ignore[return-value]
        return self.tensor_shapes()[self.output_tensor]

    @property
    def output_len(self) -> int:
        c, h, w = self.output_shape
        return c * h * w

    @property
    def input_len(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    def arena_bytes(self) -> int:
        """Exact arena size the C runtime needs (docs/format.md, 'Arena')."""
        from mcu_dc.core.planner import plan_of

        return plan_of(self).arena_bytes

    def weight_ops(self) -> list[WeightLayer]:
        return [op for op in self.layers if is_weight_op(op)]  # type: ignore[misc]

    def macs(self) -> int:
        return sum(spec_of(op).macs(op) for op in self.layers)

    def quantize_input(self, x: Any) -> np.ndarray:
        """Float features -> the int8 device input: ``clamp(floor(x / input_scale + 0.5) + input_zp)``."""
        arr = np.asarray(x, dtype=np.float64)
        q = np.floor(arr / float(self.input_scale) + 0.5) + int(self.input_zp)
        return np.clip(q, -128, 127).astype(np.int8)
