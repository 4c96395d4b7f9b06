"""A model carrying ``input_norm`` is trained on normalized images; simulate and verify apply the
normalization the model file records (no shared data needed: sklearn's digits)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import mcu_dc
from mcu_dc.cli import main
from mcu_dc.core.qmath import InputKind
from mcu_dc.data.datasets import load_dataset
from mcu_dc.device.verify import load_test_inputs
from mcu_dc.errors import DataError

FACTORY = """
from torch import nn


class Net(nn.Module):
    input_norm = ((0.3,), (0.4,))  # per channel (mean, std) of inputs scaled to [0, 1]

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.body(x)


def net():
    return Net()
"""

CONFIG = (
    "val_size = 200\n[dense]\nepochs = 15\nbatch_size = 32\nlr = 0.05\n[prune]\nrounds = 1\n"
    "[prune.retrain]\nepochs = 1\nbatch_size = 32\n[finetune]\nepochs = 1\nbatch_size = 32\n"
)


@pytest.fixture(scope="module")
def normalized_model(tmp_path_factory):  # type: ignore[no-untyped-def]
    import torch

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("norm")
    (d / "net.py").write_text(FACTORY)
    (d / "c.toml").write_text(CONFIG)
    out = d / "n.mcudc"
    args = [
        "compress",
        "--model",
        f"{d / 'net.py'}:net",
        "--dataset",
        "digits",
        "--config",
        str(d / "c.toml"),
    ]
    assert main([*args, "--out", str(out), "--quiet", "--json"]) == 0
    return out


def test_meta_records_the_normalization(normalized_model):
    cm = mcu_dc.load(normalized_model)
    assert cm.meta["input_norm"] == {"mean": [0.3], "std": [0.4]}
    assert cm.model.input_kind == InputKind.INT8
    assert cm.meta["dense_weights"] == {"source": "trained"}
    assert cm.meta["accuracy"]["integer"] > 0.8


def test_simulate_applies_the_recorded_normalization(normalized_model, capsys):
    capsys.readouterr()
    assert main(["simulate", str(normalized_model), "--dataset", "digits", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    cm = mcu_dc.load(normalized_model)
    assert res["accuracy"] == pytest.approx(cm.meta["accuracy"]["integer"])
    test = load_dataset("digits", "test")
    feats = (test.images.astype(np.float32) / 16 - 0.3) / 0.4
    pred = mcu_dc.simulate(cm, feats).argmax(1)
    assert res["accuracy"] == pytest.approx(float(np.mean(pred == test.labels)))


def test_verify_inputs_are_the_normalized_features(normalized_model):
    cm = mcu_dc.load(normalized_model)
    x, y = load_test_inputs(
        "digits",
        cm.model.input_shape,
        limit=7,
        input_norm=cm.meta["input_norm"],
        input_kind=cm.model.input_kind,
    )
    test = load_dataset("digits", "test")
    want = ((test.images[:7].astype(np.float32) / 16 - 0.3) / 0.4).reshape(7, -1)
    assert x.dtype == np.float32 and np.allclose(x, want, atol=1e-6)
    assert list(y) == list(test.labels[:7])
    with pytest.raises(DataError, match="records no input normalization"):
        load_test_inputs("digits", cm.model.input_shape, input_kind=InputKind.INT8)


@pytest.mark.qemu
@pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and arm-none-eabi-gcc",
)
def test_verify_on_qemu_sends_the_normalized_int8_features(normalized_model, tmp_path, capsys):
    capsys.readouterr()
    args = ["verify", str(normalized_model), "--board", "qemu-mps2-an386", "--dataset", "digits"]
    rc = main([*args, "--limit", "30", "--work-dir", str(tmp_path / "work"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["n"] == 30 and out["bit_exact"] == 30
    assert out["device_accuracy"] == out["sim_accuracy"] > 0.8
