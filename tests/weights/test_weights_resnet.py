"""The built-in CIFAR ResNets with He et al.'s published weights (../shared/data/cifar10_resnets/)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import mcu_dc
from mcu_dc.cli import main
from mcu_dc.compression.config import recipe
from mcu_dc.compression.dense_weights import extract_state_dict, load_weights, read_checkpoint
from mcu_dc.compression.models import IMAGENET_MEAN, IMAGENET_STD, CifarResNet, build_model
from mcu_dc.core.qmath import InputKind
from mcu_dc.errors import DataError

RESNET20 = "resnet20-12fca82f.th"
FIRST_1000_CORRECT = 915  # measured: 9,173 / 10,000 on the whole test set (91.73 %, as published)


def _weights_file() -> Path:
    from mcu_dc.data.datasets import DEFAULT_ROOTS

    roots = [Path(os.environ["MCU_DC_DATA"])] if os.environ.get("MCU_DC_DATA") else []
    for root in (*roots, *DEFAULT_ROOTS):
        p = root / "cifar10_resnets" / RESNET20
        if p.is_file():
            return p
    pytest.skip(f"the shared data folder with cifar10_resnets/{RESNET20} is absent (set MCU_DC_DATA)")


@pytest.fixture(scope="module")
def cifar():  # type: ignore[no-untyped-def]
    from mcu_dc.data.datasets import load_train_test

    try:
        return load_train_test("cifar10")
    except DataError as exc:
        pytest.skip(f"CIFAR-10 is not available here: {exc}")


@pytest.fixture(scope="module")
def resnet20() -> CifarResNet:
    torch.set_num_threads(1)
    model = build_model("resnet20", (3, 32, 32), 10)
    load_weights(model, _weights_file())
    return model.eval()  # type: ignore[return-value]


def test_architecture_and_parameter_counts():
    for name, params in (("resnet20", 269_722), ("resnet32", 464_154), ("resnet44", 658_586)):
        model = build_model(name, (3, 32, 32), 10)
        assert sum(p.numel() for p in model.parameters()) == params
        assert model.input_norm == (IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(mcu_dc.McuDcError, match="square RGB images"):
        build_model("resnet20", (1, 28, 28), 10)


def test_shared_weights_load_strictly(resnet20):
    path = _weights_file()
    state, key = extract_state_dict(read_checkpoint(path), path)
    assert key == "state_dict" and len(state) == 97
    own = {k for k in resnet20.state_dict() if not k.endswith("num_batches_tracked")}
    assert own == set(state)  # every key of the file, nothing else (the module. prefix stripped)
    for k, v in state.items():
        assert torch.equal(resnet20.state_dict()[k], v)


def test_float_resnet20_reaches_the_published_accuracy(resnet20, cifar):
    test = cifar[1].subset(np.arange(1000)).normalized(IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        pred = resnet20(torch.from_numpy(test.float_inputs())).argmax(1).numpy()
    assert int((pred == test.labels).sum()) == FIRST_1000_CORRECT


@pytest.fixture(scope="module")
def compressed(resnet20, cifar, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A very short compression of ResNet-20 from the shared weights (two batches of retraining)."""
    from mcu_dc.compression.capture import capture
    from mcu_dc.compression.pipeline import run_pipeline

    train, test = cifar
    cfg = recipe("resnet20", quick=True)
    names = [wl.name for wl in capture(build_model("resnet20", (3, 32, 32), 10), (3, 32, 32)).weight_layers()]
    cfg.prune.sparsity = dict.fromkeys(names, 0.3)  # explicit: no sensitivity analysis
    cfg.train_subset, cfg.val_size, cfg.test_subset = 256, 0, 200
    cfg.prune.retrain.epochs = cfg.finetune.epochs = 1  # 2 batches of 128 each
    model = build_model("resnet20", (3, 32, 32), 10)
    cm, _ = run_pipeline(model, train, test, cfg, weights=_weights_file(), progress=False)
    out = tmp_path_factory.mktemp("r20") / "resnet20.mcudc"
    cm.save(out)
    return cm, out


def test_short_compress_gives_an_int8_input_model_close_to_the_float_one(compressed):
    cm, _ = compressed
    assert cm.model.input_kind == InputKind.INT8
    assert cm.meta["input_norm"] == {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    assert cm.meta["dense_weights"]["source"] == "weights"
    assert cm.meta["dense_weights"]["sha256"].startswith("12fca82f")
    acc = cm.meta["accuracy"]
    assert acc["dense"] == pytest.approx(0.91)  # 182 / 200
    assert acc["integer"] >= acc["dense"] - 0.04, acc
    assert any("frozen 1x1 stride-2" in n for n in cm.meta["notes"])  # the option-A shortcuts


def test_simulate_cli_normalizes_the_images(compressed, cifar, capsys):
    cm, out = compressed
    assert main(["simulate", str(out), "--dataset", "cifar10", "--limit", "200", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["input_norm"] == cm.meta["input_norm"]
    assert res["accuracy"] == pytest.approx(cm.meta["accuracy"]["integer"])
    # the raw bytes straight into the simulator would be refused (the model takes int8 features)
    with pytest.raises(DataError):
        mcu_dc.simulate(cm, cifar[1].images[:2])


def test_cli_resnet_recipe_needs_weights(tmp_path, capsys):
    rc = main(["compress", "--model", "resnet20", "--dataset", "cifar10", "--out", str(tmp_path / "x.mcudc")])
    err = capsys.readouterr().err
    assert rc == 2 and "--weights FILE" in err and "cifar10_resnets" in err


def test_resnet_recipes():
    for name in ("resnet20", "resnet32", "resnet44", "resnet56"):
        r = recipe(name)
        assert (r.cluster.conv_bits, r.cluster.fc_bits) == (4, 5)
        assert r.prune.retrain.augment_crop == 4 and r.prune.retrain.augment_flip
        assert r.prune.retrain.optimizer == "sgd" and r.train_subset == 0
        q = recipe(name, quick=True)
        assert q.train_subset == 5000 and q.prune.rounds == 1
