"""Dataset.normalized: uint8 images to per-channel normalized float features (the CIFAR ResNets'
input), and what the other Dataset helpers keep."""

from __future__ import annotations

import numpy as np
import pytest

from mcu_dc.core.qmath import InputKind
from mcu_dc.data import Dataset
from mcu_dc.data.metrics import check_input_kind
from mcu_dc.errors import DataError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _images(n: int = 6) -> Dataset:
    x = np.random.default_rng(0).integers(0, 256, (n, 3, 4, 5), dtype=np.uint8)
    return Dataset("imgs", x, np.arange(n) % 3, 1 / 255, 3, class_names=("a", "b", "c"))


def test_values_and_what_is_kept():
    d = _images()
    nd = d.normalized(MEAN, STD)
    assert nd.x.dtype == np.float32 and nd.x.shape == d.x.shape and nd.input_scale == 1.0
    want = (d.x.astype(np.float64) / 255 - np.array(MEAN)[None, :, None, None]) / np.array(STD)[
        None, :, None, None
    ]
    assert np.allclose(nd.x, want, atol=1e-6)
    assert np.array_equal(nd.labels, d.labels) and nd.task == d.task and nd.num_classes == 3
    assert nd.class_names == ("a", "b", "c") and nd.name == d.name
    assert nd.normalization == (MEAN, STD) and nd.is_float_input and nd.is_image
    assert np.allclose(nd.pad_value(), -np.array(MEAN) / np.array(STD))
    assert np.array_equal(d.pad_value(), np.zeros(3))
    sub = nd.subset(np.arange(2))
    assert sub.normalization == (MEAN, STD) and len(sub) == 2
    rec = nd.with_task("reconstruction")
    assert rec.normalization == (MEAN, STD) and np.array_equal(rec.targets(), nd.x)
    assert d.x.dtype == np.uint8  # the original is untouched


def test_the_device_takes_quantized_features():
    nd = _images().normalized(MEAN, STD)

    class M:
        name = "resnet"
        input_kind = InputKind.INT8

    check_input_kind(M(), nd)
    M.input_kind = InputKind.UINT8
    with pytest.raises(DataError, match="float features"):
        check_input_kind(M(), nd)


def test_reconstruction_and_anomaly_are_kept():
    x = np.zeros((4, 1, 2, 2), np.uint8)
    d = Dataset("ae", x, None, 1 / 255, task="reconstruction", anomaly=np.array([0, 1, 0, 1]))
    nd = d.normalized((0.5,), (0.5,))
    assert nd.anomaly.tolist() == [0, 1, 0, 1] and nd.task == "reconstruction"
    assert np.allclose(nd.targets(), -1.0)


def test_checks():
    d = _images()
    with pytest.raises(DataError, match=r"3 channel\(s\) but mean has 1 value"):
        d.normalized((0.5,), (0.2,))
    with pytest.raises(DataError, match="std > 0"):
        d.normalized(MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(DataError, match="std > 0"):
        d.normalized((0.1, float("nan"), 0.1), STD)
    with pytest.raises(DataError, match="already holds float features"):
        d.normalized(MEAN, STD).normalized(MEAN, STD)
    with pytest.raises(DataError, match="numbers"):
        d.normalized(("a", "b", "c"), STD)
    with pytest.raises(DataError, match="normalized"):
        Dataset("x", d.x, d.y, 1 / 255, 3, normalization=(MEAN, STD))
    with pytest.raises(DataError, match="class names"):
        Dataset("x", d.x, d.y, 1 / 255, 3, class_names=("a", "b"))
