"""Training and evaluation of a :class:`ChainNet` with pruning masks enforced.

Masks are enforced twice per step: the gradient of a pruned weight is zeroed before
the optimizer step and the weight is multiplied by its mask after it, so pruned
weights stay exactly zero whatever the momentum buffer or weight decay would do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mcu_dc.compression.chain import ChainNet
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError


@dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 0.05
    optimizer: str = "sgd"  # sgd | adam
    momentum: float = 0.9
    weight_decay: float = 1e-4  # L2 regularisation
    batch_size: int = 128
    schedule: str = "cosine"  # cosine | constant
    augment_shift: int = 0  # random translation by up to this many pixels
    seed: int = 0

    def validate(self, what: str) -> None:
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError(f"{what}: epochs >= 0, batch_size >= 1 and lr > 0 are required, got {self}")
        if self.optimizer not in ("sgd", "adam") or self.schedule not in ("cosine", "constant"):
            raise ConfigError(
                f"{what}: optimizer must be sgd|adam and schedule cosine|constant, got "
                f"{self.optimizer!r}, {self.schedule!r}"
            )


def to_tensors(data: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(data.images).to(device=device, dtype=torch.float32) * float(data.input_scale)
    y = torch.from_numpy(np.asarray(data.labels, dtype=np.int64)).to(device)
    return x, y


def shift_batch(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate every image by a random integer offset in [-max_shift, max_shift] (zero fill)."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    pad = F.pad(x, (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (b,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * s + 1, (b,), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None].expand(b, c, h, w)
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :].expand(b, c, h, w)
    bi = torch.arange(b, device=x.device)[:, None, None, None].expand(b, c, h, w)
    ci = torch.arange(c, device=x.device)[None, :, None, None].expand(b, c, h, w)
    return pad[bi, ci, rows, cols]


@torch.no_grad()
def predict_logits(net: ChainNet, data: Dataset, device: torch.device, batch: int = 1000) -> torch.Tensor:
    net.eval()
    outs = []
    for i in range(0, len(data), batch):
        sub = data.images[i : i + batch]
        x = torch.from_numpy(sub).to(device=device, dtype=torch.float32) * float(data.input_scale)
        outs.append(net(x).cpu())
    return torch.cat(outs) if outs else torch.zeros(0)


def evaluate(net: ChainNet, data: Dataset, device: torch.device) -> float:
    """Top-1 accuracy in [0, 1]."""
    logits = predict_logits(net, data, device)
    return float((logits.argmax(1).numpy() == np.asarray(data.labels)).mean())


def enforce_masks(net: ChainNet) -> None:
    with torch.no_grad():
        for wl in net.weight_layers():
            if wl.mode in ("float", "dqc"):
                wl.weight.mul_(wl.mask)


def train(
    net: ChainNet,
    data: Dataset,
    cfg: TrainConfig,
    device: torch.device,
    desc: str = "train",
    progress: bool = True,
    on_epoch_end: Callable[[ChainNet], None] | None = None,
    on_step: Callable[[ChainNet, int], None] | None = None,
) -> list[float]:
    """Train in place; returns the mean loss per epoch."""
    cfg.validate(desc)
    if cfg.epochs == 0:
        return []
    net.to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_all, y_all = to_tensors(data, device)
    n = len(y_all)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    losses: list[float] = []
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False, unit="epoch")
    for _epoch in bar:
        net.train()
        perm = torch.randperm(n, generator=gen).to(device)
        tot = 0.0
        for i in range(steps_per_epoch):
            if cfg.schedule == "cosine":
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            xb = shift_batch(x_all[idx], cfg.augment_shift, gen)
            loss = F.cross_entropy(net(xb), y_all[idx])
            opt.zero_grad(set_to_none=False)
            loss.backward()
            with torch.no_grad():
                for wl in net.weight_layers():
                    if wl.weight.grad is not None:
                        wl.weight.grad.mul_(wl.mask)
            opt.step()
            enforce_masks(net)
            tot += float(loss.item())
            step += 1
            if on_step is not None:
                on_step(net, step)
        losses.append(tot / steps_per_epoch)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if on_epoch_end is not None:
            on_epoch_end(net)
    net.eval()
    return losses
