"""The MLPerf Tiny references as built-in models: ``build_model`` gives them with their reference
weights (the pipeline then skips dense training and records where the weights came from), ResNet-8
keeps its raw-pixel input scale through every stage, and a diverging stage stops with one paragraph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.compression import pipeline
from mcu_dc.compression.config import recipe
from mcu_dc.compression.models import MLPERF, build_model
from mcu_dc.compression.train import TrainConfig, train
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError

SHAPES = {
    "resnet8": (3, 32, 32),
    "dscnn": (1, 49, 10),
    "mobilenet_v1_025": (3, 96, 96),
    "fc_autoencoder": (640, 1, 1),
}


@pytest.mark.parametrize("name", MLPERF)
def test_builtin_mlperf_model_comes_with_its_reference_weights(name: str) -> None:
    model = build_model(name, SHAPES[name])
    assert model.weights_source, "the shared reference weights were not found"
    info = pipeline._load_dense_weights(model, None)
    assert info is not None and info.source == "reference" and info.sha256 and len(info.sha256) == 64


def test_resnet8_takes_raw_pixels_and_has_a_recipe() -> None:
    model = build_model("resnet8", (3, 32, 32))
    data = Dataset("px", np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4, np.int64), 1 / 255)
    assert pipeline.apply_input_scale(data, model).input_scale == 1.0
    cfg = recipe("resnet8", quick=True)
    assert cfg.prune.retrain.optimizer == "adam"  # raw pixels: SGD steps blow up the first conv


def test_wrong_input_shape_for_a_reference_model_is_one_paragraph() -> None:
    from mcu_dc.errors import ModelError

    with pytest.raises(ModelError, match=r"resnet8 takes inputs of shape \(3, 32, 32\).*cifar10"):
        build_model("resnet8", (1, 28, 28))


def test_diverging_training_stops_with_a_clear_message() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    net[1].weight.data.fill_(1e38)  # logits overflow to inf: the loss is NaN at once
    net.weight_layers = lambda: []  # type: ignore[attr-defined]  (train enforces masks of weight layers)
    rng = np.random.default_rng(0)
    data = Dataset("px", rng.integers(1, 256, (64, 1, 4, 4), dtype=np.uint8), rng.integers(0, 4, 64), 1.0)
    cfg = TrainConfig(epochs=1, lr=0.01)
    with pytest.raises(ConfigError, match=r"retrain: training diverged .*lower this stage's lr"):
        train(net, data, cfg, torch.device("cpu"), desc="retrain", progress=False)
