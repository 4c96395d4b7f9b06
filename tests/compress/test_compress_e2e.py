import json

import numpy as np
import pytest
from torch import nn

import mcu_dc
from mcu_dc.cli import main
from mcu_dc.compression.config import CompressConfig, PruneConfig, load_config
from mcu_dc.compression.report import build_report
from mcu_dc.compression.train import TrainConfig
from mcu_dc.core.ops.weights import dense_weights
from mcu_dc.core.simulator import simulate
from mcu_dc.data import load_train_test
from mcu_dc.errors import ConfigError


def _small_config() -> CompressConfig:
    return CompressConfig(
        dense=TrainConfig(epochs=15, lr=0.05, batch_size=64),
        prune=PruneConfig(rounds=2, budget=0.02, retrain=TrainConfig(epochs=3, lr=0.01, batch_size=64)),
        finetune=TrainConfig(epochs=2, lr=1e-4, optimizer="adam", weight_decay=0.0, batch_size=64),
        val_size=200,
    )


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    tr, te = load_train_test("digits")
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))
    # mcu_dc.compress stays the function after the compression submodules were imported
    cm = mcu_dc.compress(model, tr, te, _small_config(), name="digits_mlp", progress=False)
    path = tmp_path_factory.mktemp("m") / "digits.mcudc"
    cm.save(path)
    return cm, path, te


def test_end_to_end_digits_saves_loads_and_reports(digits_run, capsys):
    cm, path, te = digits_run
    acc = cm.meta["accuracy"]
    assert set(acc) >= {"dense", "pruned", "clustered", "quantized", "integer"}
    assert acc["dense"] > 0.85 and acc["integer"] > 0.8
    assert cm.meta["task"] == "classification" and cm.model.task == "classification"
    assert {s: m["accuracy"] for s, m in cm.meta["metrics"].items()} == acc  # the same figures, per stage
    assert isinstance(cm.meta["notes"], list)
    loaded = mcu_dc.load(path)
    assert loaded.blob == cm.blob and loaded.meta["name"] == "digits_mlp"
    y = simulate(loaded.model, te.images)
    assert float((y.argmax(1) == te.labels).mean()) == acc["integer"]
    rep = build_report(loaded)
    assert rep["total_bytes"] == len(loaded.blob)
    assert sum(r["bytes"] for r in rep["layers"]) + rep["header_bytes"] == len(loaded.blob)
    assert rep["original_bytes"] == 4 * (64 * 48 + 48 + 48 * 10 + 10)
    assert rep["ratio"] > 3
    assert main(["report", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("original_bytes", "total_bytes", "ratio", "accuracy", "layers"):
        assert key in out
    assert out["total_bytes"] == len(loaded.blob)
    assert list(out["accuracy"]) == ["dense", "pruned", "clustered", "quantized", "integer"]
    assert main(["report", str(path)]) == 0
    text = capsys.readouterr().out
    assert "| **total** |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and " % |" in line]
    stages = [row.split("|")[1].strip() for row in rows]
    assert stages[-5:] == ["dense", "pruned", "clustered", "quantized", "integer"]  # pipeline order


def test_sparsity_and_codebooks_are_respected(digits_run):
    cm, _, _ = digits_run
    for layer in cm.model.layers:
        kept = (np.asarray(layer.assign) >= 0).mean()
        assert 0 < kept < 1
        shared = np.unique(dense_weights(layer)[np.asarray(layer.assign) >= 0])
        assert len(shared) <= 32  # fc_bits = 5, whichever encoding the size objective chose
    assert cm.meta["float_vs_int_max_abs"] < 1.0


def test_toml_config_round_trip_and_errors(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(
        "val_size = 100\n[dense]\nepochs = 3\n[prune]\nrounds = 1\n[prune.retrain]\nepochs = 1\n"
        "[cluster]\nfc_bits = 4\nmode = 'dqc'\ndqc_zero = true\n[quantize]\nfc_index_bits = 4\n"
    )
    cfg = load_config(p)
    assert cfg.dense.epochs == 3 and cfg.prune.retrain.epochs == 1 and cfg.cluster.fc_bits == 4
    assert cfg.cluster.dqc_zero is True and cfg.quantize.fc_index_bits == 4 and cfg.val_size == 100
    p.write_text("[cluster]\nfc_bitz = 4\n")
    with pytest.raises(ConfigError, match="fc_bitz"):
        load_config(p)
    p.write_text("[cluster]\nfc_bits = 12\n")
    with pytest.raises(ConfigError, match="out of range"):
        load_config(p)


def test_cli_errors_are_one_paragraph(tmp_path, capsys):
    rc = main(
        [
            "compress",
            "--model",
            "lenet300",
            "--dataset",
            "mnist",
            "--data-dir",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "x.mcudc"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "not found" in err and "Traceback" not in err
    assert not (tmp_path / "x.mcudc").exists()
    rc = main(
        [
            "compress",
            "--model",
            "lenet5",
            "--dataset",
            "digits",
            "--out",
            str(tmp_path / "y.mcudc"),
            "--quiet",
        ]
    )
    assert rc == 2 and "lenet5" in capsys.readouterr().err


def test_cli_compress_digits_with_dqc(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "val_size = 200\n[dense]\nepochs = 8\nbatch_size = 64\n[prune]\nrounds = 1\n[prune.retrain]\n"
        "epochs = 2\nbatch_size = 64\n[cluster]\nmode = 'dqc'\ndqc_zero = true\nfc_bits = 4\n"
        "dqc_update_every = 5\n[finetune]\nepochs = 2\nbatch_size = 64\nlr = 0.001\noptimizer = 'sgd'\n"
    )
    out = tmp_path / "d.mcudc"
    rc = main(
        [
            "compress",
            "--model",
            "lenet300",
            "--dataset",
            "digits",
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--json",
            "--quiet",
            "--plots",
            str(tmp_path / "plots"),
            "--pretrained",
            str(tmp_path / "dense.pt"),
        ]
    )
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["total_bytes"] == len(mcu_dc.load(out).blob)
    assert (tmp_path / "dense.pt").is_file()
    for f in ("weight_distribution.png", "sensitivity.png", "sensitivity.json"):
        assert (tmp_path / "plots" / f).stat().st_size > 100
    for layer in mcu_dc.load(out).model.layers:
        assert len(layer.codebook) <= 16


def test_recipes_are_the_benchmarked_settings():
    from mcu_dc.compression.config import recipe
    from mcu_dc.errors import ConfigError

    r300 = recipe("lenet300")
    assert (r300.cluster.fc_bits, r300.dense.epochs, r300.prune.rounds) == (4, 25, 3)
    quick = recipe("lenet5", quick=True)
    assert quick.dense.epochs == 2 and quick.cluster.conv_bits == 8
    with pytest.raises(ConfigError, match="no tuned recipe for model 'resnet'"):
        recipe("resnet")
