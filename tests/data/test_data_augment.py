"""Training augmentation: random crop after padding, horizontal flip, shift; vectorized, seeded,
images only (uint8 or normalized), labels untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mcu_dc.compression.train as train_mod
from mcu_dc.compression.capture import capture
from mcu_dc.compression.config import CompressConfig, from_dict
from mcu_dc.compression.train import (
    TrainConfig,
    augment_batch,
    check_augment,
    crop_batch,
    flip_batch,
    shift_batch,
    train,
)
from mcu_dc.data import Dataset
from mcu_dc.errors import ConfigError

torch.set_num_threads(1)


def _batch(b: int = 16, c: int = 3, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed)) + 0.5  # no zeros


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _offset_of(out: torch.Tensor, x: torch.Tensor, pad: int, fill: float = 0.0) -> tuple[int, int] | None:
    """The (dy, dx) in [0, 2 pad] such that ``out`` is the window of the padded ``x`` there."""
    padded = F.pad(x - fill, (pad,) * 4) + fill
    h, w = x.shape[-2:]
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            if torch.equal(padded[..., dy : dy + h, dx : dx + w], out):
                return dy, dx
    return None


def test_crop_is_a_padded_window_and_changes_images():
    x = _batch()
    out = crop_batch(x, 4, _gen())
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = [_offset_of(out[i], x[i], 4) for i in range(len(x))]
    assert all(o is not None for o in offsets)
    assert len(set(offsets)) > 4  # different offsets per image
    assert any(o != (4, 4) for o in offsets) and not torch.equal(out, x)


def test_flip_mirrors_about_half_the_images():
    x = _batch(64)
    out = flip_batch(x, _gen())
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    kept = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert 16 < sum(flipped) < 48


def test_deterministic_for_the_seed():
    x = _batch()
    cfg = TrainConfig(augment_crop=4, augment_flip=True)
    a = augment_batch(x, cfg, _gen(3))
    assert torch.equal(a, augment_batch(x, cfg, _gen(3)))
    assert not torch.equal(a, augment_batch(x, cfg, _gen(4)))
    assert torch.equal(augment_batch(x, TrainConfig(), _gen(3)), x)  # nothing asked, nothing done


def test_shift_is_unchanged_by_the_rewrite():
    """The two-gather shift equals the former one-lookup implementation for the same draws."""
    x = _batch()
    b, c, h, w = x.shape
    s = 2
    g = _gen(7)
    pad = F.pad(x, (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (b,), generator=g)
    dx = torch.randint(0, 2 * s + 1, (b,), generator=g)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None].expand(b, c, h, w)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :].expand(b, c, h, w)
    bi = torch.arange(b)[:, None, None, None].expand(b, c, h, w)
    ci = torch.arange(c)[None, :, None, None].expand(b, c, h, w)
    assert torch.equal(shift_batch(x, s, _gen(7)), pad[bi, ci, rows, cols])
    assert torch.equal(augment_batch(x, TrainConfig(augment_shift=s), _gen(7)), pad[bi, ci, rows, cols])


def test_fill_pads_with_a_black_pixels_value():
    x = _batch(8, c=2)
    fill = torch.tensor([-1.5, 2.0])
    out = crop_batch(x, 3, _gen(1), fill)
    for i in range(8):
        o = _offset_of(out[i, 0], x[i, 0], 3, -1.5)
        assert o is not None and o == _offset_of(out[i, 1], x[i, 1], 3, 2.0)
    assert set(out[:, 0][out[:, 0] < 0.5].tolist()) <= {-1.5}


def test_fast_enough():
    import time

    x = _batch(128, 3, 32, 32)
    cfg = TrainConfig(augment_crop=4, augment_flip=True)
    g = _gen()
    augment_batch(x, cfg, g)
    t0 = time.perf_counter()
    for _ in range(20):
        augment_batch(x, cfg, g)
    assert (time.perf_counter() - t0) / 20 < 0.05  # about 1.5 ms on one core


def test_config_checks():
    with pytest.raises(ConfigError, match="same transform"):
        TrainConfig(augment_shift=2, augment_crop=4).validate("dense")
    with pytest.raises(ConfigError, match=">= 0"):
        TrainConfig(augment_crop=-1).validate("dense")
    cfg = from_dict(TrainConfig, {"augment_crop": 4, "augment_flip": True}, "dense")
    assert cfg.augment_crop == 4 and cfg.augment_flip is True
    with pytest.raises(ConfigError, match="wrong type"):
        from_dict(TrainConfig, {"augment_flip": 1}, "dense")


def test_refused_for_float_features_allowed_for_normalized_images():
    feats = Dataset("feats", np.zeros((4, 3, 8, 8), np.float32), np.arange(4))
    imgs = Dataset("imgs", np.zeros((4, 3, 8, 8), np.uint8), np.arange(4), 1 / 255)
    for key, value, shown in (
        ("augment_crop", 4, "4"),
        ("augment_flip", True, "true"),
        ("augment_shift", 2, "2"),
    ):
        cfg = TrainConfig(**{key: value})
        with pytest.raises(ConfigError, match=rf"finetune\.{key} = {shown}: .*float features.*= (0|false)$"):
            check_augment(cfg, feats, "finetune")
        check_augment(cfg, imgs, "finetune")
        check_augment(cfg, imgs.normalized((0.5,) * 3, (0.25,) * 3), "finetune")
    bad = CompressConfig(dense=TrainConfig(augment_flip=True))
    with pytest.raises(ConfigError, match=r"dense\.augment_flip = true"):
        bad.datasets_for_task(feats, feats)


@pytest.mark.parametrize("normalize", [False, True])
def test_training_augments_inputs_and_keeps_labels(monkeypatch: pytest.MonkeyPatch, normalize: bool):
    """Each image holds one bright pixel whose value encodes its label: after crop and flip
    (which move it, never off the image) every batch's inputs still match its labels."""
    n, size = 64, 16
    labels = np.arange(n) % 10
    x = np.zeros((n, 1, size, size), np.uint8)
    rng = np.random.default_rng(0)
    ys, xs = rng.integers(5, size - 5, n), rng.integers(5, size - 5, n)
    x[np.arange(n), 0, ys, xs] = 20 + 20 * labels
    data = Dataset("dots", x, labels, 1 / 255)
    if normalize:
        data = data.normalized((0.1,), (0.5,))
    black = float(data.pad_value()[0])
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real_loss = train_mod.loss_fn

    def spy(task: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append((spy.xb.clone(), target.clone()))  # type: ignore[attr-defined]
        return real_loss(task, out, target)

    torch.manual_seed(0)
    net = capture(nn.Sequential(nn.Flatten(), nn.Linear(size * size, 10)), data.input_shape)
    net.register_forward_pre_hook(lambda _m, args: setattr(spy, "xb", args[0]))
    monkeypatch.setattr(train_mod, "loss_fn", spy)
    cfg = TrainConfig(epochs=1, batch_size=16, augment_crop=4, augment_flip=True, seed=1)
    train(net, data, cfg, torch.device("cpu"), progress=False)
    assert len(seen) == 4
    value_of_label = {
        int(t): float(v) for t, v in zip(labels, data.float_inputs().reshape(n, -1).max(axis=1), strict=True)
    }
    positions = set()
    for xb, yb in seen:
        flat = xb.reshape(len(xb), -1)
        assert torch.equal(
            (flat != black).sum(dim=1), torch.ones(len(xb), dtype=torch.long)
        )  # one dot, black border
        peak = flat.max(dim=1)
        assert all(
            abs(float(v) - value_of_label[int(t)]) < 1e-6 for v, t in zip(peak.values, yb, strict=True)
        )
        positions |= {(int(i) // size, int(i) % size) for i in peak.indices}
    # the dots moved: some batch positions are none of the images' original positions
    assert positions - {(int(a), int(b)) for a, b in zip(ys, xs, strict=True)}
