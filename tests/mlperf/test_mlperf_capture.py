"""Each MLPerf Tiny model captures into the graph IR, and the graph computes what the module does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from mcu_dc.compression.capture import capture
from mcu_dc.compression.mlperf import MLPERF_MODELS, build_mlperf

# (low, high) of the float inputs each model takes
RANGES = {"resnet8": (0.0, 255.0), "mobilenet_v1_025": (0.0, 1.0), "dscnn": (-123.4, 25.7),
          "fc_autoencoder": (-60.0, 0.0)}  # fmt: skip


@pytest.mark.parametrize("name", list(MLPERF_MODELS))
def test_capture_equals_module(name: str, mlperf_dir: Path) -> None:
    pytest.importorskip("h5py", reason="h5py (needed to read Keras .h5 files) is not installed")
    if name == "dscnn":
        pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert reads the DS-CNN .tflite")
    model = build_mlperf(name, pretrained=True)
    shape = MLPERF_MODELS[name].input_shape
    net = capture(model, shape)
    assert any("softmax" in n for n in net.notes) == (name != "fc_autoencoder")
    model.softmax = nn.Identity()  # capture drops the final softmax: compare logits
    lo, hi = RANGES[name]
    x = lo + (hi - lo) * torch.rand((4, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
        got = net(x)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-4 * max(1.0, want.abs().max().item())


@pytest.mark.parametrize("name", list(MLPERF_MODELS))
def test_architecture_captures_without_weights(name: str) -> None:
    net = capture(MLPERF_MODELS[name].builder(), MLPERF_MODELS[name].input_shape)
    assert len(net.nodes) > 0
