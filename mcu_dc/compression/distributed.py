"""Data-parallel training with ``torch.distributed`` when the run was started by ``torchrun``.

``torchrun --nproc_per_node=N -m mcu_dc compress ...`` starts N processes with ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment. :func:`setup`
joins them into one process group (NCCL on CUDA, each process on ``cuda:LOCAL_RANK``; gloo on
the CPU); without ``WORLD_SIZE > 1`` it does nothing and the run is the ordinary single-process
one, byte for byte.

:func:`mcu_dc.compression.train.train` then splits every global batch over the ranks (each
rank draws the same permutation and augmentation from the same seeded generator, augments the
whole batch and keeps its :func:`shard`), wraps the net in ``DistributedDataParallel`` for the
forward and backward pass, and runs everything after the all-reduce (grad masks, clipping, the
optimizer, masks, on_step callbacks) identically on every rank, so the weights stay identical.
Only rank 0 writes files and prints (:func:`is_main`). See ``docs/distributed.md``.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mcu_dc.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run: ``world == 1`` is the ordinary single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            f"the environment variable {name} = {raw!r} is not an integer; torchrun sets WORLD_SIZE, RANK "
            "and LOCAL_RANK itself (unset them to run as a single process)"
        ) from None


def context() -> DistContext:
    """The rank and world size: from the initialized process group, else from torchrun's environment."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistContext()
    return DistContext(_env_int("RANK", 0), world, _env_int("LOCAL_RANK", 0))


def is_main() -> bool:
    """True on rank 0 and in a single-process run: the process that writes files and prints."""
    return context().main


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group if ``WORLD_SIZE > 1`` (once; later calls reuse it) and return
    the device this process trains on: ``cuda:LOCAL_RANK`` for a CUDA run, else ``device``."""
    ctx = context()
    if not ctx.active:
        return device
    if not dist.is_available():
        raise ConfigError(
            f"WORLD_SIZE = {ctx.world}: this run was started for {ctx.world} processes (torchrun), but this "
            "torch build has no torch.distributed; run it as a single process (python -m mcu_dc ...)"
        )
    if device.type == "cuda":
        n = torch.cuda.device_count()
        if ctx.local_rank >= n:
            raise ConfigError(
                f"LOCAL_RANK = {ctx.local_rank} but torch sees {n} CUDA device(s) on this machine; start "
                f"torchrun with --nproc_per_node at most {n} (one process per GPU)"
            )
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
    return device


def shutdown() -> None:
    """Leave the process group (a no-op in a single-process run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(idx: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's contiguous part of a global batch's indices (sizes differ by at most one; a
    rank gets none when the batch is smaller than the world)."""
    if not ctx.active:
        return idx
    return torch.tensor_split(idx, ctx.world)[ctx.rank]


def sync_state(net: nn.Module) -> None:
    """Copy rank 0's parameters and buffers (masks, codebook assignments) to every rank."""
    with torch.no_grad():
        for t in net.state_dict().values():
            dist.broadcast(t, src=0)


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` in ``DistributedDataParallel`` after :func:`sync_state`.

    Buffers are not re-broadcast before every forward (``broadcast_buffers=False``): the captured
    graph has no BatchNorm (it is folded into the convolutions at capture), and its buffers, the
    pruning masks and weight-sharing assignments, do not change while a stage trains.
    """
    from torch.nn.parallel import DistributedDataParallel

    sync_state(net)
    # torch >= 2.13 names the flag forward_sync_buffers (broadcast_buffers is deprecated there)
    new_flag = "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync: dict[str, Any] = {"forward_sync_buffers" if new_flag else "broadcast_buffers": False}
    if device.type != "cuda":
        return DistributedDataParallel(net, **no_sync)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return DistributedDataParallel(net, device_ids=[index], **no_sync)


def mean_over_ranks(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The sum over ranks of ``value`` divided by the world size (the value itself in one process)."""
    if not ctx.active:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / ctx.world


@contextlib.contextmanager
def rank_rng(ctx: DistContext, seed: int, device: torch.device) -> Iterator[None]:
    """Give each rank its own global torch generator (dropout) inside the block, restoring the
    shared state after it, so everything outside training stays the same on every rank."""
    if not ctx.active:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed((seed * 1_000_003 + ctx.rank) % 2**63)
        yield
