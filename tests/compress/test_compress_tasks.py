"""Tasks: uint8 or float inputs, class labels or float targets, and the metric of each task.

Tiny synthetic data made here; every test runs on the CPU in seconds.
"""

import json
from itertools import product

import numpy as np
import pytest
import torch
from torch import nn

import mcu_dc
from mcu_dc.cli import main
from mcu_dc.compression.capture import capture
from mcu_dc.compression.config import CompressConfig, PruneConfig, load_config
from mcu_dc.compression.train import TrainConfig, check_outputs, evaluate, metrics, train
from mcu_dc.core.simulator import simulate
from mcu_dc.data.datasets import Dataset
from mcu_dc.data.metrics import auc, dequantize, simulator_metrics, task_metrics
from mcu_dc.errors import ConfigError, DataError, ModelError

torch.set_num_threads(1)
CPU = torch.device("cpu")


# ---------------------------------------------------------------- synthetic data
def _regression(n: int, seed: int) -> Dataset:
    """y = A x + noise with 8 float features and 2 targets (A fixed, x per seed)."""
    a = np.random.default_rng(100).normal(size=(8, 2)) / np.sqrt(8)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x @ a + 0.05 * rng.normal(size=(n, 2))).astype(np.float32)
    return Dataset(f"lin-{seed}", x, y, task="regression")


def _normal_bytes(n: int, rng: np.random.Generator) -> np.ndarray:
    """16-byte vectors on a smooth 2-d manifold (the 'normal' class of the autoencoder)."""
    basis = np.random.default_rng(7).normal(size=(2, 16))
    z = rng.normal(size=(n, 2))
    return (255 / (1 + np.exp(-(z @ basis)))).round().astype(np.uint8).reshape(n, 1, 4, 4)


def _anomaly_sets() -> tuple[Dataset, Dataset]:
    rng = np.random.default_rng(1)
    train = Dataset("ae-train", _normal_bytes(600, rng), None, 1 / 255, task="reconstruction")
    normal = _normal_bytes(150, rng)
    odd = rng.integers(0, 256, size=(50, 1, 4, 4), dtype=np.uint8)
    x = np.concatenate([normal, odd])
    anomaly = np.r_[np.zeros(150), np.ones(50)].astype(np.int64)
    test = Dataset("ae-test", x, None, 1 / 255, task="reconstruction", anomaly=anomaly)
    return train, test


def _quick_config(**kw) -> CompressConfig:
    return CompressConfig(
        dense=TrainConfig(epochs=40, lr=0.01, optimizer="adam", weight_decay=0.0, batch_size=32),
        prune=PruneConfig(
            rounds=1,
            budget=0.05,
            grid=[0.3, 0.5, 0.7],
            retrain=TrainConfig(epochs=8, lr=0.003, optimizer="adam", weight_decay=0.0, batch_size=32),
        ),
        finetune=TrainConfig(epochs=4, lr=1e-3, optimizer="adam", weight_decay=0.0, batch_size=32),
        val_size=100,
        **kw,
    )


# ---------------------------------------------------------------- Dataset
def test_float_features_are_reshaped_and_aliases_work():
    d = _regression(20, 0)
    assert d.x.shape == (20, 8, 1, 1) and d.images is d.x and d.is_float_input
    assert d.input_shape == (8, 1, 1) and d.output_len == 2
    assert d.float_inputs().dtype == np.float32 and np.array_equal(d.labels, d.y)
    sub = d.subset(np.arange(5))
    assert (sub.task, len(sub), sub.labels.shape) == ("regression", 5, (5, 2))


def test_uint8_images_keep_the_positional_constructor():
    imgs = np.arange(2 * 1 * 2 * 2, dtype=np.uint8).reshape(2, 1, 2, 2)
    d = Dataset("img", imgs, np.array([0, 3]), 0.5, 4)
    assert d.task == "classification" and not d.is_float_input and d.num_classes == 4
    assert d.labels.dtype == np.int64 and d.float_inputs()[1, 0, 1, 1] == np.float32(3.5)
    assert d.simulator_inputs() is d.images


def test_reconstruction_targets_default_to_the_inputs_and_subset_keeps_anomaly():
    train, test = _anomaly_sets()
    assert train.y is None and np.array_equal(train.targets(), train.float_inputs())
    assert test.output_len == 16
    sub = test.subset(np.array([0, 199]))
    assert sub.anomaly.tolist() == [0, 1] and sub.task == "reconstruction"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"x": np.zeros((4, 3), np.float32), "y": np.zeros((4, 1), np.float32)},
            "float targets .* classifier",
        ),
        (
            {"x": np.zeros((4, 3), np.float32), "y": np.arange(4), "task": "regression"},
            "look like class labels",
        ),
        (
            {"x": np.full((4, 3), np.nan, np.float32), "y": np.zeros(4, np.float32), "task": "regression"},
            "NaN",
        ),
        ({"x": np.zeros((4, 3), np.float32), "y": np.r_[0, 0, np.inf, 0], "task": "regression"}, "sample 2"),
        ({"x": np.zeros((4, 3), np.float32), "y": np.zeros(5, np.int64)}, "4 inputs but targets"),
        ({"x": np.zeros((4, 1, 2, 2), np.int32), "y": np.zeros(4, np.int64)}, "must be uint8 raw bytes"),
        ({"x": np.zeros((4, 1, 2, 2), np.uint8), "y": np.array([0, 1, 2, 10])}, r"outside \[0, 10\)"),
        ({"x": np.zeros((4, 3), np.float32), "y": np.zeros(4, np.int64), "input_scale": 0.5}, "input_scale"),
        ({"x": np.zeros((4, 3), np.float32), "y": np.zeros(4, np.int64), "task": "detection"}, "not one of"),
        ({"x": np.zeros((4, 3), np.float32), "y": None}, "needs targets"),
        ({"x": np.zeros((4, 3), np.float32), "y": np.zeros(4, np.int64), "anomaly": np.zeros(4)}, "anomaly"),
        ({"x": np.zeros((4, 3), np.float32), "task": "reconstruction", "anomaly": np.full(4, 2)}, "0/1"),
        (
            {"x": np.zeros((4, 3), np.float32), "y": np.zeros((4, 2), np.float32), "task": "reconstruction"},
            "3",
        ),
    ],
)
def test_bad_datasets_are_one_clear_paragraph(kwargs, match):
    with pytest.raises(DataError, match=match) as e:
        Dataset("bad", **kwargs)
    msg = str(e.value)
    assert "'bad'" in msg and "\n" not in msg


def test_a_classification_set_can_be_reconstructed_but_not_regressed():
    d = Dataset("img", np.zeros((3, 1, 2, 2), np.uint8), np.array([0, 1, 2]), 1 / 255)
    r = d.with_task("reconstruction")
    assert r.task == "reconstruction" and r.targets().shape == (3, 1, 2, 2)
    with pytest.raises(DataError, match="'classification' but task 'regression'"):
        d.with_task("regression")


# ---------------------------------------------------------------- metrics
def test_auc_is_the_rank_statistic_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = rng.integers(0, 5, size=30).astype(float)  # many ties
        p = rng.integers(0, 2, size=30)
        if p.min() == p.max():
            continue
        pos, neg = s[p == 1], s[p == 0]
        pairs = [(a > b) + 0.5 * (a == b) for a, b in product(pos, neg)]
        assert auc(s, p) == pytest.approx(np.mean(pairs))
    assert auc(np.arange(4.0), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.ones(4), np.array([0, 1, 0, 1])) == 0.5
    assert auc(np.ones(3), np.zeros(3)) is None


def test_task_metrics_for_regression_and_reconstruction():
    d = _regression(50, 3)
    m = task_metrics(d.y + 0.1, d)
    assert set(m) == {"mse", "mae", "nmse"} and m["mse"] == pytest.approx(0.01, rel=1e-4)
    assert m["nmse"] == pytest.approx(0.01 / np.var(d.y.astype(np.float64)), rel=1e-4)
    _, test = _anomaly_sets()
    perfect = task_metrics(test.float_inputs().reshape(len(test), -1), test)
    assert perfect["mse"] == 0 and perfect["auc"] == 0.5  # every error 0: ties


def test_simulator_metrics_feed_float_features_to_an_int8_input_model():
    from mcu_dc.core import ir
    from mcu_dc.core.qmath import InputKind

    rng = np.random.default_rng(0)
    fc = ir.FC(
        "fc", (8, 1, 1), 2, codebook=np.array([1, -1, 2], np.int8),
        assign=rng.integers(0, 3, size=(2, 8)).astype(np.int16), bias=np.zeros(2, np.int32),
        requant=ir.Requant.from_real(0.5), in_zp=3, out_zp=0,
    )  # fmt: skip
    m = ir.IntegerModel([fc], (8, 1, 1), 0.05, 0.1, 0, "t", InputKind.INT8, input_zp=3, task="regression")
    d = _regression(30, 2)
    y, got = simulator_metrics(m, d)
    assert np.array_equal(y, simulate(m, m.quantize_input(d.float_inputs())))
    assert got == task_metrics(dequantize(m, y), d)
    img = Dataset("img", np.zeros((3, 8, 1, 1), np.uint8), np.zeros((3, 2), np.float32), task="regression")
    with pytest.raises(DataError, match="takes float features"):
        simulator_metrics(m, img)


# ---------------------------------------------------------------- config
def test_config_task_is_validated_and_must_match_the_dataset(tmp_path):
    tr, te = _regression(40, 0), _regression(20, 1)
    with pytest.raises(ConfigError, match="not one of auto"):
        CompressConfig(task="segmentation").validate()
    with pytest.raises(ConfigError, match=r"config's task is 'classification'.*'regression' dataset"):
        CompressConfig(task="classification").datasets_for_task(tr, te)
    assert CompressConfig().datasets_for_task(tr, te)[0].task == "regression"
    cls = Dataset("c", np.zeros((4, 1, 2, 2), np.uint8), np.zeros(4, np.int64), 1 / 255)
    with pytest.raises(DataError, match="for task 'classification' but the test set"):
        CompressConfig().datasets_for_task(cls, te)
    rec, _ = CompressConfig(task="reconstruction").datasets_for_task(cls, cls)
    assert rec.task == "reconstruction"
    bad = CompressConfig(dense=TrainConfig(augment_shift=2))
    with pytest.raises(ConfigError, match=r"dense\.augment_shift = 2"):
        bad.datasets_for_task(tr, te)
    p = tmp_path / "c.toml"
    p.write_text("task = 'reconstruction'\n")
    assert load_config(p).task == "reconstruction"


# ---------------------------------------------------------------- training
def test_a_regressor_is_trained_with_mse_and_scored_by_nmse():
    tr, te = _regression(300, 0), _regression(100, 1)
    torch.manual_seed(0)
    net = capture(nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), tr.input_shape)
    before = metrics(net, te, CPU)
    losses = train(
        net, tr, TrainConfig(epochs=30, lr=0.01, optimizer="adam", batch_size=32), CPU, progress=False
    )
    after = metrics(net, te, CPU)
    assert losses[-1] < losses[0] and after["mse"] < 0.1 * before["mse"] and after["nmse"] < 0.1
    assert evaluate(net, te, CPU) == pytest.approx(-after["nmse"])


def test_outputs_that_cannot_fit_the_task_are_refused():
    tr = _regression(10, 0)
    net = capture(nn.Sequential(nn.Flatten(), nn.Linear(8, 3)), tr.input_shape)
    with pytest.raises(ModelError, match=r"outputs 3 value.*has 2 target"):
        check_outputs(net, tr, CPU)
    cls = Dataset("c", np.zeros((4, 8), np.float32), np.array([0, 1, 2, 3]))
    with pytest.raises(ModelError, match="one output \\(logit\\) per class"):
        check_outputs(net, cls, CPU)


# ---------------------------------------------------------------- end to end
def test_uint8_autoencoder_detects_anomalies_end_to_end():
    train_set, test_set = _anomaly_sets()
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(16, 32),
        nn.ReLU(),
        nn.Linear(32, 4),
        nn.Linear(4, 32),
        nn.ReLU(),
        nn.Linear(32, 16),
    )
    cm = mcu_dc.compress(model, train_set, test_set, _quick_config(), name="ae", progress=False)
    assert cm.meta["task"] == "reconstruction" and cm.model.task == "reconstruction"
    assert not cm.meta["accuracy"]  # no meaningless accuracy
    m = cm.meta["metrics"]
    assert set(m) >= {"dense", "pruned", "clustered", "quantized", "integer"}
    assert m["dense"]["auc"] > 0.9 and m["integer"]["auc"] > 0.8 and m["integer"]["mse"] < 0.05
    y = simulate(cm.model, test_set.images)
    again = task_metrics(dequantize(cm.model, y), test_set)
    assert again == pytest.approx(m["integer"])
    assert isinstance(cm.meta["notes"], list)


def test_float_feature_regressor_end_to_end():
    tr, te = _regression(400, 0), _regression(150, 1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    cm = mcu_dc.compress(model, tr, te, _quick_config(), name="linreg", progress=False)
    assert cm.meta["task"] == "regression" and cm.model.task == "regression"
    assert not cm.meta["accuracy"] and "accuracy" not in cm.meta["metrics"]["integer"]
    m = cm.meta["metrics"]["integer"]
    assert set(m) == {"mse", "mae", "nmse"} and m["nmse"] < 0.2
    y, again = simulator_metrics(cm.model, te)
    assert y.shape == (150, 2) and again == pytest.approx(m)
    loaded = mcu_dc.CompressedModel.from_bytes(cm.to_bytes())
    assert loaded.model.task == "regression" and loaded.meta["metrics"]["integer"] == pytest.approx(m)


def test_cli_autoencoder_on_digits_reports_mse(tmp_path, capsys):
    (tmp_path / "ae.py").write_text(
        "from torch import nn\n\n\ndef ae():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 64))\n"
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "task = 'reconstruction'\nval_size = 100\n[dense]\nepochs = 6\nbatch_size = 64\noptimizer = 'adam'\n"
        "lr = 0.01\n[prune]\nrounds = 1\ngrid = [0.5]\n[prune.retrain]\nepochs = 1\nbatch_size = 64\n"
        "[finetune]\nepochs = 1\nbatch_size = 64\n"
    )
    out = tmp_path / "ae.mcudc"
    args = ["compress", "--model", f"{tmp_path / 'ae.py'}:ae", "--dataset", "digits", "--config", str(cfg)]
    assert main([*args, "--out", str(out), "--json", "--quiet"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["task"] == "reconstruction" and "mse" in rep["metrics"]["integer"]
    assert main(["simulate", str(out), "--dataset", "digits", "--limit", "100", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["task"] == "reconstruction" and "accuracy" not in res and res["metrics"]["mse"] > 0
    assert main(["simulate", str(out), "--dataset", "digits", "--limit", "100"]) == 0
    assert "integer reconstruction mse" in capsys.readouterr().out
