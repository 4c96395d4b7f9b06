"""Gradient clipping (``TrainConfig.grad_clip``): the global gradient norm of every step is bounded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.compression.capture import capture
from mcu_dc.compression.train import TrainConfig, train
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError


def _data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(256, 1, 6, 6), dtype=np.uint8)
    return Dataset("toy", x, rng.integers(0, 3, size=256), input_scale=1 / 255, num_classes=3)


def _moved(clip: float) -> float:
    torch.manual_seed(0)
    net = capture(nn.Sequential(nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 3)), (1, 6, 6))
    before = [p.detach().clone() for p in net.parameters()]
    cfg = TrainConfig(epochs=1, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=256, schedule="constant",
                      grad_clip=clip)  # fmt: skip
    train(net, _data(), cfg, torch.device("cpu"), progress=False)
    sq = sum(float(((p.detach() - b) ** 2).sum()) for p, b in zip(net.parameters(), before, strict=True))
    return sq**0.5


def test_one_sgd_step_moves_at_most_lr_times_the_clip():
    free, clipped = _moved(0.0), _moved(0.01)
    assert clipped == pytest.approx(0.1 * 0.01, rel=1e-4)  # one step of lr * clip (the norm was larger)
    assert free > 10 * clipped


def test_negative_clip_is_refused():
    with pytest.raises(ConfigError, match="grad_clip"):
        TrainConfig(grad_clip=-1.0).validate("finetune")
