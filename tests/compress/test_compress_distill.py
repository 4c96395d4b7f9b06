"""Knowledge distillation from the dense model in the retraining stages (issue 11)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_config import TINY_CONFIG
from torch import nn

import mcu_dc
from mcu_dc.cli import main
from mcu_dc.commands.compress import provenance_lines
from mcu_dc.compression.capture import capture
from mcu_dc.compression.config import CompressConfig, from_dict, load_config
from mcu_dc.compression.distill import DistillConfig, Distiller, kd_loss, make_teacher
from mcu_dc.compression.seeding import seed_everything
from mcu_dc.compression.train import TrainConfig, loss_fn, train
from mcu_dc.data import load_train_test
from mcu_dc.errors import ConfigError

STUDENT = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -2.0]])
TEACHER = torch.tensor([[1.5, 0.0, -0.5], [-1.0, 2.5, 0.0]])
LABELS = torch.tensor([0, 2])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _hand_kd(s: np.ndarray, t: np.ndarray, y: np.ndarray, temp: float, alpha: float) -> float:
    """(1 - alpha) CE + alpha T^2 KL(p_t || p_s), both at temperature T, averaged over the batch."""
    ce = float(np.mean([-math.log(_softmax(s)[i, y[i]]) for i in range(len(y))]))
    ps, pt = _softmax(s / temp), _softmax(t / temp)
    kl = float(np.mean(np.sum(pt * (np.log(pt) - np.log(ps)), axis=1)))
    return (1 - alpha) * ce + alpha * temp * temp * kl


@pytest.mark.parametrize(("temp", "alpha"), [(1.0, 0.5), (4.0, 0.5), (2.0, 0.9), (4.0, 1.0)])
def test_kd_loss_equals_a_hand_computation(temp: float, alpha: float) -> None:
    got = float(kd_loss("classification", STUDENT, TEACHER, LABELS, temp, alpha))
    want = _hand_kd(STUDENT.double().numpy(), TEACHER.double().numpy(), LABELS.numpy(), temp, alpha)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_soft_term_is_scaled_by_t_squared() -> None:
    """alpha = 1: T^2 times the KL at temperature T; for a high T its gradient is Hinton et al.'s
    (z - v) / N for zero-mean logits (N classes, one sample), so it no longer shrinks with T."""
    for temp in (1.0, 3.0, 8.0):
        soft = float(kd_loss("classification", STUDENT, TEACHER, LABELS, temp, 1.0))
        ps = F.log_softmax(STUDENT / temp, 1)
        pt = F.softmax(TEACHER / temp, 1)
        kl = float((pt * (pt.log() - ps)).sum(1).mean())
        assert soft == pytest.approx(temp * temp * kl, rel=1e-5)
    z = torch.tensor([[1.0, -2.0, 0.5, 0.5]], dtype=torch.float64)
    v = torch.tensor([[0.0, 1.0, -1.5, 0.5]], dtype=torch.float64)
    z, v = z - z.mean(), v - v.mean()
    for temp in (100.0, 1000.0):  # the approximation's error falls as 1 / T
        zg = z.clone().requires_grad_(True)
        kd_loss("classification", zg, v, torch.tensor([0]), temp, 1.0).backward()
        assert zg.grad is not None
        torch.testing.assert_close(zg.grad, (z - v) / 4, rtol=0.0, atol=0.5 / temp)


def test_alpha_zero_is_the_plain_loss_exactly() -> None:
    assert torch.equal(
        kd_loss("classification", STUDENT, TEACHER, LABELS, 4.0, 0.0),
        loss_fn("classification", STUDENT, LABELS),
    )
    y = torch.randn(2, 3)
    assert torch.equal(
        kd_loss("regression", STUDENT, TEACHER, y, 4.0, 0.0), loss_fn("regression", STUDENT, y)
    )


def test_alpha_zero_trains_exactly_like_no_distillation() -> None:
    tr, _ = load_train_test("digits")
    data = tr.subset(np.arange(200))
    cfg = TrainConfig(epochs=1, lr=0.05, batch_size=32, augment_shift=1)
    nets = []
    for kd in (False, True):
        seed_everything(0)
        net = capture(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)), (1, 8, 8))
        distiller = Distiller(make_teacher(net), temperature=4.0, alpha=0.0) if kd else None
        train(net, data, cfg, torch.device("cpu"), progress=False, distiller=distiller)
        nets.append(net.state_dict())
    for k in nets[0]:
        assert torch.equal(nets[0][k], nets[1][k]), k
    # and alpha > 0 changes the training (the test can fail)
    seed_everything(0)
    net = capture(nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)), (1, 8, 8))
    teacher = make_teacher(net)
    with torch.no_grad():
        for p in teacher.parameters():
            p.mul_(3.0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    train(net, data, cfg, torch.device("cpu"), progress=False, distiller=Distiller(teacher, 4.0, 0.5))
    assert not torch.equal(net.state_dict()["nodes.0.weight"], nets[0]["nodes.0.weight"])
    for k, v in teacher.state_dict().items():  # the teacher never trains
        assert torch.equal(v, before[k]), k


def test_regression_soft_target_is_the_teachers_output() -> None:
    y = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    got = kd_loss("regression", STUDENT, TEACHER, y, 4.0, 0.25)
    want = 0.75 * F.mse_loss(STUDENT, y) + 0.25 * F.mse_loss(STUDENT, TEACHER)
    torch.testing.assert_close(got, want)


def test_teacher_is_frozen_and_in_eval_mode() -> None:
    net = capture(nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Dropout(0.5), nn.Linear(8, 10)), (1, 8, 8))
    net.train()
    teacher = make_teacher(net)
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    assert any(p.requires_grad for p in net.parameters())
    x = torch.randn(4, 1, 8, 8)
    kd = Distiller(teacher, 4.0, 0.5)
    assert torch.equal(kd.outputs(x), kd.outputs(x))  # no dropout: eval mode


def test_distill_config_is_validated() -> None:
    cfg = CompressConfig()
    assert cfg.distill == DistillConfig(
        enabled=False, temperature=4.0, alpha=0.5, stages=["prune", "finetune"]
    )
    for table, key in (
        ({"temperature": 0.0}, "distill.temperature"),
        ({"temperature": -1}, "distill.temperature"),
        ({"alpha": 1.5}, "distill.alpha"),
        ({"stages": ["dense"]}, "distill.stages"),
        ({"stages": ["prune", "prune"]}, "distill.stages"),
        ({"temperature": "hot"}, "distill.temperature"),
        ({"enabled": 1}, "distill.enabled"),
        ({"stages": "prune"}, "distill.stages"),
        ({"stages": [1]}, "distill.stages[0]"),
    ):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            from_dict(CompressConfig, {"distill": table}, "config").validate()
    with pytest.raises(ConfigError, match=r"unknown key.*temprature"):
        from_dict(CompressConfig, {"distill": {"temprature": 2.0}}, "config")
    with pytest.raises(ConfigError, match="no teacher"):
        Distiller.for_stage(DistillConfig(enabled=True), "prune", None)
    assert Distiller.for_stage(DistillConfig(enabled=True, stages=["finetune"]), "prune", None) is None
    assert Distiller.for_stage(DistillConfig(), "finetune", None) is None


def test_distill_table_in_a_toml_file(tmp_path) -> None:
    path = tmp_path / "kd.toml"
    path.write_text('[distill]\nenabled = true\ntemperature = 2\nstages = ["finetune"]\n')
    base = CompressConfig(finetune=TrainConfig(epochs=7))
    cfg = load_config(path, base)
    assert cfg.distill == DistillConfig(enabled=True, temperature=2.0, alpha=0.5, stages=["finetune"])
    assert cfg.finetune.epochs == 7


CONFIG = (
    TINY_CONFIG
    + """[distill]
temperature = 3.0
alpha = 0.7
"""
)


@pytest.mark.slow
def test_compress_with_distill_records_it(tmp_path, capsys) -> None:
    cfg = tmp_path / "kd.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "kd.mcudc"
    args = ["compress", "--model", "lenet300", "--dataset", "digits", "--config", str(cfg), "--distill"]
    assert main([*args, "--out", str(out), "--json", "--quiet"]) == 0
    rep = json.loads(capsys.readouterr().out)
    meta = mcu_dc.load(out).meta
    want = {"temperature": 3.0, "alpha": 0.7, "stages": ["prune", "finetune"]}
    assert {k: meta["distill"][k] for k in want} == want
    assert meta["config"]["distill"] == {"enabled": True, **want}
    assert rep["distill"] == meta["distill"]
    assert meta["accuracy"]["integer"] > 0.8
    assert main(["report", str(out)]) == 0  # the file reads back and reports
    capsys.readouterr()
    # without --distill the run records no distillation
    out2 = tmp_path / "plain.mcudc"
    assert main([*args[:-1], "--out", str(out2), "--quiet"]) == 0
    meta2 = mcu_dc.load(out2).meta
    assert "distill" not in meta2 and meta2["config"]["distill"]["enabled"] is False
    assert "Distillation:" not in capsys.readouterr().out
    lines = provenance_lines(meta)
    assert "Distillation: the prune and finetune stage(s) learned from the dense model" in "\n".join(lines)
