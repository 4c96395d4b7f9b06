"""Training and evaluation of a captured net with pruning masks enforced, by task.

The loss follows the dataset's task: cross-entropy for classification, mean squared
error for regression and reconstruction. :func:`evaluate` gives one number where higher
is better (what pruning's sensitivity analysis compares); :func:`metrics` the task's
metrics (accuracy; mse, mae, nmse; the AUC of an autoencoder's reconstruction error).

Masks are enforced twice per step: the gradient of a pruned weight is zeroed before
the optimizer step and the weight is multiplied by its mask after it, so pruned
weights stay exactly zero whatever the momentum buffer or weight decay would do.

Under ``torchrun`` (``WORLD_SIZE > 1``) :func:`train` is data-parallel: every rank draws the same
permutation and augmentation, keeps its share of each global batch and runs the net in
``DistributedDataParallel``; the loss is scaled so that the all-reduced gradient is the whole
batch's mean gradient, as in one process (see :mod:`mcu_dc.compression.distributed`). With a
:class:`~mcu_dc.compression.distill.Distiller` the loss is the distillation loss against the
dense model's outputs (:mod:`mcu_dc.compression.distill`).
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

from mcu_dc.compression import distributed
from mcu_dc.compression.distill import Distiller
from mcu_dc.data.datasets import Dataset
from mcu_dc.data.metrics import score, task_metrics
from mcu_dc.errors import ConfigError, ModelError
from mcu_dc.progress import ProgressSettings, track


@dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 0.05
    optimizer: str = "sgd"  # sgd | adam
    momentum: float = 0.9
    weight_decay: float = 1e-4  # L2 regularisation (the optimizer's, on every trained parameter)
    l1: float = 0.0  # L1 regularisation of the weight layers' weights (the DQC paper's Softmax-loss + L1)
    batch_size: int = 128
    schedule: str = "cosine"  # cosine | constant
    augment_shift: int = 0  # random translation by up to this many pixels
    augment_crop: int = 0  # pad by this many black pixels, then crop back at a random offset
    augment_flip: bool = False  # random horizontal flip (half of the images)
    grad_clip: float = 0.0  # clip the gradients' global L2 norm to this (0: off)
    seed: int = 0

    def validate(self, what: str) -> None:
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0:
            raise ConfigError(f"{what}: epochs >= 0, batch_size >= 1 and lr > 0 are required, got {self}")
        if not self.l1 >= 0 or not self.weight_decay >= 0:
            raise ConfigError(
                f"{what}: l1 = {self.l1} and weight_decay = {self.weight_decay} must be >= 0 "
                "(0 turns them off)"
            )
        if not self.grad_clip >= 0:
            raise ConfigError(f"{what}: grad_clip = {self.grad_clip} must be >= 0 (0 turns clipping off)")
        if self.augment_shift < 0 or self.augment_crop < 0:
            raise ConfigError(
                f"{what}: augment_shift = {self.augment_shift} and augment_crop = {self.augment_crop} must "
                "be >= 0 (pixels; 0 turns them off)"
            )
        if self.augment_shift > 0 and self.augment_crop > 0:
            raise ConfigError(
                f"{what}: augment_shift = {self.augment_shift} and augment_crop = {self.augment_crop} are "
                "both set, but they are the same transform (a random translation with a black border: "
                "padding by N pixels and cropping back is a shift by up to N); set one of them to 0"
            )
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


def shift_batch(
    x: torch.Tensor, max_shift: int, gen: torch.Generator, fill: torch.Tensor | None = None
) -> torch.Tensor:
    """Translate every image by a random integer offset in [-max_shift, max_shift] per axis.

    The border is filled with ``fill`` (``(C,)``, per channel; zeros when None). This is also
    the standard "random crop with N-pixel padding": pad by N, crop back at a random offset
    in [0, 2N]. The offsets come from ``gen`` (CPU), so a seed fixes them on any device.
    """
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = max_shift
    dy = torch.randint(0, 2 * s + 1, (b,), generator=gen).to(x.device)
    dx = torch.randint(0, 2 * s + 1, (b,), generator=gen).to(x.device)
    f = None if fill is None else fill.to(x.device, x.dtype).reshape(1, c, 1, 1)
    pad = F.pad(x if f is None else x - f, (s, s, s, s))
    # two gathers (rows, then columns) instead of one 4-index lookup: the same values, less memory
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    pad = torch.gather(pad, 2, rows.expand(b, c, h, w + 2 * s))
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    out = torch.gather(pad, 3, cols.expand(b, c, h, w))
    return out if f is None else out + f


crop_batch = shift_batch  # random crop after padding by N pixels is a shift by up to N


def flip_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left to right (one draw per image from ``gen``)."""
    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def augments(cfg: TrainConfig) -> bool:
    return cfg.augment_shift > 0 or cfg.augment_crop > 0 or cfg.augment_flip


def augment_batch(
    x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator, fill: torch.Tensor | None = None
) -> torch.Tensor:
    """``cfg``'s augmentation of a batch of images: shift or crop (black border: ``fill``), then flip.

    Vectorized over the batch; the random draws come from ``gen`` in a fixed order (none when
    an augmentation is off, so ``augment_shift`` alone draws what it always drew).
    """
    x = shift_batch(x, cfg.augment_shift, gen, fill)
    x = crop_batch(x, cfg.augment_crop, gen, fill)
    if cfg.augment_flip:
        x = flip_batch(x, gen)
    return x


def check_augment(cfg: TrainConfig, data: Dataset, what: str) -> None:
    """Shift, crop and flip are for images (uint8, or float features made by ``Dataset.normalized``);
    they are refused for other float features."""
    if data.is_image:
        return
    for key, value, what_it_does in (
        ("augment_shift", cfg.augment_shift, "random translation"),
        ("augment_crop", cfg.augment_crop, "random crop after padding"),
        ("augment_flip", cfg.augment_flip, "random horizontal flip"),
    ):
        if value:
            shown = "true" if value is True else value
            off = "false" if isinstance(value, bool) else "0"
            raise ConfigError(
                f"{what}.{key} = {shown}: {what_it_does} is for image inputs (uint8, or normalized with "
                f"Dataset.normalized), but dataset {data.name!r} holds float features; set {what}.{key} = "
                f"{off}"
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


def _diverged(desc: str, loss: float, step: int, lr: float, optimizer: str) -> ConfigError:
    return ConfigError(
        f"{desc}: training diverged (the loss became {loss} at step {step}, lr {lr:.3g}, {optimizer}); lower "
        'this stage\'s lr or use optimizer = "adam" (inputs with a large range, such as raw pixels 0..255, '
        "need much smaller SGD steps)"
    )


def add_l1_gradient(net: Any, l1: float) -> None:
    """Add the (sub)gradient of ``l1 * sum|w|`` over the weights each weight layer trains: the float
    weights (dense, pruning, DQC's straight-through shadow weights) or, for a shared codebook, the
    centroids, each counted once per kept weight that uses it. Biases and frozen nodes are not
    penalised (unlike ``weight_decay``, the optimizer's L2 on every parameter)."""
    for wl in net.weight_layers():
        if wl.mode == "shared":
            c = wl.centroids
            if c.requires_grad and c.grad is not None:
                counts = torch.bincount(wl.assign[wl.mask.bool()], minlength=c.numel()).to(c.dtype)
                c.grad.add_(l1 * torch.sign(c) * counts)
        elif wl.weight.requires_grad and wl.weight.grad is not None:
            wl.weight.grad.add_(l1 * torch.sign(wl.weight) * wl.mask)


def _step_loss(
    net: nn.Module,
    task: str,
    xb: torch.Tensor,
    yb: torch.Tensor,
    distiller: Distiller | None,
) -> torch.Tensor:
    """The batch's mean loss: the task's, or the distillation loss with a teacher."""
    out = net(xb)
    if len(xb) == 0:  # a rank without samples in a short last batch: zero gradients, same graph
        return out.sum() * 0.0
    if distiller is not None:
        return distiller.loss(task, out, xb, yb)
    return loss_fn(task, out, yb)


def train(
    net: Any,
    data: Dataset,
    cfg: TrainConfig,
    device: torch.device,
    desc: str = "train",
    progress: bool | ProgressSettings = True,
    on_epoch_end: Callable[[Any], None] | None = None,
    on_step: Callable[[Any, int], None] | None = None,
    distiller: Distiller | None = None,
) -> list[float]:
    """Train in place with the loss of ``data.task``; returns the mean loss per epoch.

    Augmentation (``augment_shift``, ``augment_crop``, ``augment_flip``) applies to images only
    (uint8, or normalized features padded with a black pixel's value); for a reconstruction
    whose targets are its inputs, the target is the augmented input.

    ``progress`` (see :mod:`mcu_dc.progress`) is updated after every batch, over the whole
    stage (epochs × batches): epoch, batch, the epoch's mean loss so far, the rate and the ETA.

    ``distiller``: learn from a teacher's outputs too (:mod:`mcu_dc.compression.distill`).
    Started by ``torchrun`` with ``WORLD_SIZE > 1``, the batches are split over the ranks
    (:mod:`mcu_dc.compression.distributed`); only rank 0 shows progress, and every rank returns
    the same losses and ends with the same weights.
    """
    cfg.validate(desc)
    check_augment(cfg, data, desc)
    if cfg.epochs == 0:
        return []
    device = distributed.setup(device)
    ctx = distributed.context()
    if not ctx.main:
        progress = False
    net.to(device)
    if distiller is not None:
        distiller.teacher.to(device)
    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_all, y_all = to_tensors(data, device)
    self_target = data.task == "reconstruction" and data.y is None and augments(cfg)
    fill = torch.from_numpy(data.pad_value()) if data.normalization is not None else None  # None: black = 0
    n = len(y_all)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = steps_per_epoch * cfg.epochs
    gen = torch.Generator().manual_seed(cfg.seed)
    model: nn.Module = distributed.wrap(net, device) if ctx.active else net
    step = 0
    losses: list[float] = []
    with (
        track(desc, total, unit="batch", per_epoch=steps_per_epoch, settings=progress) as bar,
        distributed.rank_rng(ctx, cfg.seed, device),
    ):
        for _epoch in range(cfg.epochs):
            model.train()  # the net itself in one process
            perm = torch.randperm(n, generator=gen).to(device)
            tot = 0.0
            for i in range(steps_per_epoch):
                if cfg.schedule == "cosine":
                    for g in opt.param_groups:
                        g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                xb = augment_batch(x_all[idx], cfg, gen, fill)  # the whole batch: the draws stay in step
                yb = xb.reshape(len(idx), -1) if self_target else y_all[idx]
                if ctx.active:
                    part = distributed.shard(torch.arange(len(idx), device=device), ctx)
                    xb, yb = xb[part], yb[part]
                    # the all-reduce averages over ranks: weigh each rank's mean by its share of the
                    # batch, so that the averaged gradient is the whole batch's mean gradient
                    share = len(part) * ctx.world / len(idx)
                    loss = _step_loss(model, data.task, xb, yb, distiller) * share
                    shown = distributed.mean_over_ranks(loss, ctx)  # the whole batch's loss, on every rank
                else:
                    loss = shown = _step_loss(model, data.task, xb, yb, distiller)
                if not torch.isfinite(shown):
                    lr = opt.param_groups[0]["lr"]
                    raise _diverged(desc, float(shown.item()), step + 1, lr, cfg.optimizer)
                opt.zero_grad(set_to_none=False)
                loss.backward()
                with torch.no_grad():
                    if cfg.l1 > 0:
                        add_l1_gradient(net, cfg.l1)
                    for wl in net.weight_layers():
                        if wl.weight.grad is not None:
                            wl.weight.grad.mul_(wl.mask)
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                enforce_masks(net)
                tot += float(shown.item())
                step += 1
                bar.update(1, loss=tot / (i + 1))
                if on_step is not None:
                    on_step(net, step)
            losses.append(tot / steps_per_epoch)
            if on_epoch_end is not None:
                on_epoch_end(net)
    net.eval()
    return losses
