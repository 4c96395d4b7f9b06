"""``--dataset path/to/data.npz`` through ``mcu-dc compress``, ``mcu-dc simulate`` and, on the
emulated Cortex-M4, ``mcu-dc verify`` (bit-exact)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import mcu_dc
from mcu_dc.cli import main

FACTORY = """
from torch import nn


def reg():
    return nn.Sequential(nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 1))
"""


def test_float_feature_regressor_from_an_npz(tmp_path, capsys):
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    w = rng.normal(size=6).astype(np.float32)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 6)).astype(np.float32)
        return x, (np.tanh(x @ w) + 0.05 * rng.normal(size=n)).astype(np.float32)

    (xtr, ytr), (xte, yte) = split(1200), split(300)
    data = tmp_path / "sensors.npz"
    np.savez(data, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    (tmp_path / "net.py").write_text(FACTORY)
    out = tmp_path / "reg.mcudc"
    args = ["compress", "--model", f"{tmp_path / 'net.py'}:reg", "--dataset", str(data), "--quick"]
    assert main([*args, "--out", str(out), "--quiet", "--json"]) == 0  # defaults: no shift for features
    rep = json.loads(capsys.readouterr().out)
    cm = mcu_dc.load(out)
    assert rep["task"] == cm.meta["task"] == "regression"
    assert cm.meta["config"]["val_size"] == 120  # a tenth of the 1,200 training samples
    assert main(["simulate", str(out), "--dataset", str(data), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 300 and res["task"] == "regression"
    assert res["metrics"]["mse"] == pytest.approx(cm.meta["metrics"]["integer"]["mse"])
    # the same regressor on the emulated Cortex-M4: the harness sends the int8-quantized features
    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        verify = ["verify", str(out), "--board", "qemu-mps2-an386", "--dataset", str(data), "--limit", "200"]
        assert main([*verify, "--work-dir", str(tmp_path / "fw"), "--json"]) == 0
        dev = json.loads(capsys.readouterr().out)
        assert dev["n"] == 200 and dev["bit_exact"] == 200 and dev["mismatches"] == 0
    # a regression model against a classification set: one paragraph
    assert main(["simulate", str(out), "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert "regression model" in err and "Traceback" not in err


def test_unknown_dataset_name_is_one_paragraph(tmp_path, capsys):
    rc = main(["simulate", str(tmp_path / "x.mcudc"), "--dataset", "imagenet"])
    assert rc != 0 and "Traceback" not in capsys.readouterr().err
    rc = main(
        ["compress", "--model", "lenet300", "--dataset", "cifar100", "--out", str(tmp_path / "y.mcudc")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "unknown dataset 'cifar100'" in err and ".npz" in err
