"""The committed compressed LeNet-300-100 and LeNet-5 (bench/results/) on real MNIST test
images: the C runtime (fast and reference kernels, ASan+UBSan) equals the simulator exactly.
The full 10,000 images run in bench/runtime_mnist.py; CI takes a subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcu_dc.core.model_file import load
from mcu_dc.core.simulator import simulate
from mcu_dc.data.datasets import load_dataset
from mcu_dc.deploy.hostbuild import run_blob

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
MODELS = ["lenet300_deep_compression.mcudc", "memory_fit_lenet5.mcudc"]
N_IMAGES = 300


@pytest.fixture(scope="module")
def mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    ds = load_dataset("mnist", "test", None)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(ds.labels), size=N_IMAGES, replace=False))
    return ds.images[idx].reshape(N_IMAGES, -1), np.asarray(ds.labels)[idx]


@pytest.mark.parametrize("name", MODELS)
def test_real_model_c_equals_simulator_on_mnist(name, runner, tmp_path, mnist_subset):
    cm = load(RESULTS / name)
    x, labels = mnist_subset
    expected = simulate(cm.model, x)
    blob = tmp_path / "model.blob"
    blob.write_bytes(cm.blob)
    for ref in (False, True):
        got = run_blob(runner, blob, x, cm.model.output_len, ref=ref)
        assert np.array_equal(got, expected), f"{name} ref={ref}: C differs from the simulator"
    # and the model is a real classifier, not a degenerate one
    assert (expected.argmax(1) == labels).mean() > 0.95
