"""The arena plan: where every tensor and every op's scratch lives in the arena.

Planned once, offline, from tensor lifetimes, and stored in the blob, so the simulator's
figure, the C runtime's ``mcu_dc_arena_size`` and the linker's arena agree on one
number. A tensor lives from the op that writes it (the input: from before the first op)
to the last op that reads it (the output: to the end, when it is copied out); an op's
scratch lives only while the op runs. Two buffers whose lifetimes overlap never share a
byte, so no op reads what another has overwritten and no op writes in place.

The planner is greedy best-fit by size (as TensorFlow Lite Micro's GreedyMemoryPlanner
does): buffers in order of decreasing size (ties by id) each go to the lowest 4-aligned
offset that clears every already placed buffer it is alive with. Deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcu_dc.core.ops import spec_of
from mcu_dc.errors import ConfigError


def align4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True)
class ArenaPlan:
    tensor_offsets: tuple[int, ...]  # by tensor id
    scratch_offsets: tuple[int, ...]  # by op index (0 when the op needs no scratch)
    arena_bytes: int


@dataclass(frozen=True)
class Buffer:
    name: str
    size: int
    first: int  # op index it is born at (-1: before the first op)
    last: int  # op index it dies after (n_ops: the end)


def buffers(model: Any) -> tuple[list[Buffer], list[Buffer]]:
    """(tensor buffers by id, scratch buffers by op index) with their lifetimes."""
    n_ops = len(model.layers)
    prod = model.producers()
    cons = model.consumers()
    shapes = model.tensor_shapes()
    tensors = []
    for t in range(model.n_tensors):
        c, h, w = shapes[t]
        first = -1 if t == model.input_tensor else prod[t]
        last = n_ops if t == model.output_tensor else max(cons.get(t) or [first])
        tensors.append(Buffer(f"tensor {t}", c * h * w, first, last))
    scratch = [
        Buffer(f"op {i} scratch", spec_of(op).scratch_bytes(op), i, i) for i, op in enumerate(model.layers)
    ]
    return tensors, scratch


def _overlap_life(a: Buffer, b: Buffer) -> bool:
    return a.first <= b.last and b.first <= a.last


def plan_arena(model: Any) -> ArenaPlan:
    tensors, scratch = buffers(model)
    items = [(b, ("t", i)) for i, b in enumerate(tensors)] + [
        (b, ("s", i)) for i, b in enumerate(scratch) if b.size
    ]
    order = sorted(range(len(items)), key=lambda j: (-items[j][0].size, j))
    placed: list[tuple[Buffer, int]] = []
    offs: dict[tuple[str, int], int] = {}
    for j in order:
        buf, key = items[j]
        busy = sorted((off, off + align4(b.size)) for b, off in placed if _overlap_life(b, buf))
        off = 0
        for lo, hi in busy:
            if off + align4(buf.size) <= lo:
                break
            off = max(off, hi)
        placed.append((buf, off))
        offs[key] = off
    end = max([off + align4(b.size) for b, off in placed] + [0])
    return ArenaPlan(
        tuple(offs[("t", i)] for i in range(len(tensors))),
        tuple(offs.get(("s", i), 0) for i in range(len(scratch))),
        end,
    )


def v1_plan(model: Any) -> ArenaPlan:
    """Format version 1's fixed layout, as a plan: tensor i in buffer i mod 2, then the scratch."""
    shapes = model.tensor_shapes()
    buf = [0, 0]
    for i, (c, h, w) in enumerate(shapes):
        buf[i % 2] = max(buf[i % 2], c * h * w)
    b0, b1 = align4(buf[0]), align4(buf[1])
    scratch = max([spec_of(op).scratch_bytes(op) for op in model.layers] + [0])
    return ArenaPlan(
        tuple(0 if i % 2 == 0 else b0 for i in range(len(shapes))),
        tuple(b0 + b1 if spec_of(op).scratch_bytes(op) else 0 for op in model.layers),
        b0 + b1 + scratch,
    )


def check_plan(model: Any, plan: ArenaPlan, where: str = "arena plan") -> None:
    """Refuse a plan whose live buffers overlap or leave the arena (ConfigError)."""
    tensors, scratch = buffers(model)
    if len(plan.tensor_offsets) != len(tensors) or len(plan.scratch_offsets) != len(scratch):
        raise ConfigError(f"{where}: the plan does not cover every tensor and op")
    items = list(zip(tensors, plan.tensor_offsets, strict=True))
    items += [(b, off) for b, off in zip(scratch, plan.scratch_offsets, strict=True) if b.size]
    for b, off in items:
        if off % 4 or off < 0 or off + b.size > plan.arena_bytes:
            raise ConfigError(
                f"{where}: {b.name} at offset {off} ({b.size} bytes) leaves the "
                f"{plan.arena_bytes}-byte arena "
                "or is not 4-aligned"
            )
    for i, (a, oa) in enumerate(items):
        for b, ob in items[i + 1 :]:
            if _overlap_life(a, b) and oa < ob + b.size and ob < oa + a.size and a.size and b.size:
                raise ConfigError(f"{where}: {a.name} and {b.name} are alive together but share arena bytes")


def plan_of(model: Any) -> ArenaPlan:
    """The model's stored plan, or a fresh one."""
    return model.plan if model.plan is not None else plan_arena(model)
