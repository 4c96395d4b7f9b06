"""Training and evaluation of a captured net with pruning masks enforced, by task.

The loss follows the dataset's task: cross-entropy for classification, mean squared
error for regression and reconstruction. :func:`evaluate` gives one number where higher
is better (what pruning's sensitivity analysis compares); :func:`metrics` the task's
metrics (accuracy; mse, mae, nmse; the AUC of an autoencoder's reconstruction error).

Masks are enforced twice per step: the gradient of a pruned weight is zeroed before
the optimizer step and the weight is multiplied by its mask after it, so pruned
weights stay exactly zero whatever the momentum buffer or weight decay would do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mcu_dc.data.datasets import Dataset
from mcu_dc.data.metrics import score, task_metrics
from mcu_dc.errors import ConfigError, ModelError


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
    """(float inputs, targets) on ``device``: int64 labels, or float32 targets flattened per sample."""
    x = torch.from_numpy(data.float_inputs()).to(device)
    if data.task == "reconstruction" and data.y is None:
        return x, x.reshape(len(x), -1)  # the inputs are the targets (a view, no copy)
    t = data.targets()
    if data.task == "classification":
        y = torch.from_numpy(np.asarray(t, dtype=np.int64)).to(device)
    else:
        y = torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32).reshape(len(t), -1)).to(device)
    return x, y


def loss_fn(task: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classification, mean squared error for regression and reconstruction."""
    out = out.reshape(out.shape[0], -1)
    if task == "classification":
        return F.cross_entropy(out, target)
    return F.mse_loss(out, target)


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


def check_augment(cfg: TrainConfig, data: Dataset, what: str) -> None:
    """``augment_shift`` translates images; it is refused for float features."""
    if cfg.augment_shift > 0 and data.is_float_input:
        raise ConfigError(
            f"{what}.augment_shift = {cfg.augment_shift}: random translation is for uint8 image inputs, "
            f"but dataset {data.name!r} holds float features; set {what}.augment_shift = 0"
        )


@torch.no_grad()
def predict_outputs(net: nn.Module, data: Dataset, device: torch.device, batch: int = 1000) -> torch.Tensor:
    """The float model's outputs ``(N, out_len)`` on CPU (logits for a classifier)."""
    net.eval()
    outs = []
    for i in range(0, len(data), batch):
        x = torch.from_numpy(data.float_inputs(slice(i, i + batch))).to(device)
        y = net(x)
        outs.append(y.reshape(y.shape[0], -1).cpu())
    return torch.cat(outs) if outs else torch.zeros(0)


predict_logits = predict_outputs  # the name before models had tasks other than classification


def metrics(net: nn.Module, data: Dataset, device: torch.device) -> dict[str, float]:
    """The task's metrics of the float model on ``data`` (see :mod:`mcu_dc.data.metrics`)."""
    return task_metrics(predict_outputs(net, data, device).numpy(), data)


def evaluate(net: nn.Module, data: Dataset, device: torch.device) -> float:
    """One score, higher is better: top-1 accuracy in [0, 1] for a classifier, ``-nmse`` (MSE over
    the targets' variance) for regression and reconstruction."""
    return score(data.task, metrics(net, data, device))


def check_outputs(net: nn.Module, data: Dataset, device: torch.device) -> int:
    """The model's output length per sample; :class:`ModelError` if it cannot fit the task."""
    if len(data) == 0:
        return 0
    n_out = int(predict_outputs(net, data.subset(np.arange(1)), device).shape[1])
    want = data.output_len
    if data.task == "classification":
        top = int(np.max(data.targets())) if len(data) else 0
        if n_out < 2 or n_out <= top:
            raise ModelError(
                f"the model outputs {n_out} value(s) per input but dataset {data.name!r} is a classification "
                f"set with labels up to {top}; a classifier needs one output (logit) per class. For a "
                "regressor or an autoencoder build the Dataset with task='regression' or 'reconstruction'"
            )
    elif n_out != want:
        raise ModelError(
            f"the model outputs {n_out} value(s) per input but dataset {data.name!r} (task {data.task!r}) "
            f"has {want} target value(s) per input; the model's output must match the targets one for one"
        )
    return n_out


def enforce_masks(net: Any) -> None:
    with torch.no_grad():
        for wl in net.weight_layers():
            if wl.mode in ("float", "dqc"):
                wl.weight.mul_(wl.mask)


def train(
    net: Any,
    data: Dataset,
    cfg: TrainConfig,
    device: torch.device,
    desc: str = "train",
    progress: bool = True,
    on_epoch_end: Callable[[Any], None] | None = None,
    on_step: Callable[[Any, int], None] | None = None,
) -> list[float]:
    """Train in place with the loss of ``data.task``; returns the mean loss per epoch.

    Random translation (``augment_shift``) applies to uint8 images only; for a reconstruction
    whose targets are its inputs, the target is the translated input.
    """
    cfg.validate(desc)
    check_augment(cfg, data, desc)
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
    self_target = data.task == "reconstruction" and data.y is None and cfg.augment_shift > 0
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
            yb = xb.reshape(len(idx), -1) if self_target else y_all[idx]
            loss = loss_fn(data.task, net(xb), yb)
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
