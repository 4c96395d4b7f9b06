"""Each MLPerf Tiny model, with its imported weights, against the reference ``.tflite`` under LiteRT.

Criterion: ``max |torch - tflite| <= 1e-4 * max(1, max |tflite|)``, i.e. 1e-4 absolute for the
classifiers' softmax outputs and 1e-4 relative to the largest output for the autoencoder, whose
outputs reach ~60 and whose float32 rounding alone (TFLite's or torch's, against float64) is
~5e-3 absolute on a real ToyCar sample.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.compression.mlperf import MLPERF_INPUT_SCALE, MLPerfAutoencoder, MLPerfDSCNN, build_mlperf
from mcu_dc.compression.tflite_import import load_tflite_weights
from tests.mlperf.reference import cifar10_test_images, float_tflite, interpreter, run

TOL = 1e-4

pytestmark = pytest.mark.usefixtures("litert", "h5py_mod")


def _torch(model: nn.Module, x_nhwc: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2).copy() if x_nhwc.ndim == 4 else x_nhwc)
    with torch.no_grad():
        return model(x).numpy()


def _worst(model: nn.Module, it: object, inputs: list[np.ndarray]) -> float:
    """Largest ``max|torch - tflite| / max(1, max|tflite|)`` over the inputs (batch of 1 each)."""
    worst = 0.0
    for x in inputs:
        ref = run(it, x)
        worst = max(worst, float(np.abs(_torch(model, x) - ref).max() / max(1.0, float(np.abs(ref).max()))))
    return worst


def test_resnet8_matches_float_tflite(mlperf_dir: Path) -> None:
    assert MLPERF_INPUT_SCALE["resnet8"] == 1.0  # the float model takes raw pixel values 0..255
    model = build_mlperf("resnet8", pretrained=True)
    assert "pretrainedResnet.h5" in str(model.weights_source)
    it = interpreter(mlperf_dir / "image_classification/pretrainedResnet.tflite")
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(0, 255, (1, 32, 32, 3)).astype(np.float32) for _ in range(4)]
    cifar = mlperf_dir.parent / "cifar-10/test_batch.bin.xz"
    if cifar.is_file():
        images, _ = cifar10_test_images(cifar, 8)
        inputs += [images[i : i + 1].astype(np.float32) for i in range(8)]
    assert _worst(model, it, inputs) <= TOL


def test_resnet8_cifar10_accuracy(mlperf_dir: Path) -> None:
    cifar = mlperf_dir.parent / "cifar-10/test_batch.bin.xz"
    if not cifar.is_file():
        pytest.skip(f"{cifar} is not here")
    images, labels = cifar10_test_images(cifar, 500)
    model = build_mlperf("resnet8", pretrained=True)
    pred = _torch(model, images.astype(np.float32)).argmax(1)
    assert (pred == labels).mean() >= 0.85  # MLPerf Tiny IC quality target (Banbury et al., 2021): 85 %


def test_mobilenet_vww_matches_float_tflite(mlperf_dir: Path) -> None:
    model = build_mlperf("mobilenet_v1_025", pretrained=True)
    it = interpreter(mlperf_dir / "visual_wake_words/vww_96_float.tflite")
    rng = np.random.default_rng(1)  # pixels / 255: the int8 model's input scale is 1/255
    inputs = [rng.uniform(0, 1, (1, 96, 96, 3)).astype(np.float32) for _ in range(3)]
    assert _worst(model, it, inputs) <= TOL


def _toycar(mlperf_dir: Path) -> list[np.ndarray]:
    rows = np.fromfile(mlperf_dir / "anomaly_detection/normal_id_01_00000000_hist_librosa.bin", dtype="<f4")
    rows = rows.reshape(-1, 640)
    rng = np.random.default_rng(2)
    return [rows[i : i + 1] for i in range(0, len(rows), 4)] + [
        rng.uniform(-60, 0, (1, 640)).astype(np.float32) for _ in range(3)
    ]


def _drop_dense_biases(model: nn.Module) -> None:
    """Zero the bias of each Dense layer that a BatchNormalization follows."""
    layers = list(model.net)  # type: ignore[attr-defined]
    with torch.no_grad():
        for lin, nxt in itertools.pairwise(layers):
            if isinstance(lin, nn.Linear) and isinstance(nxt, nn.BatchNorm1d):
                lin.bias.zero_()


def test_autoencoder_h5_matches_float_tflite_but_for_the_dropped_biases(mlperf_dir: Path) -> None:
    """ad01_fp32.tflite (and ad01_int8.tflite) lack the bias of each Dense layer before a BatchNorm: the
    converter folded BN into the layer as ``beta - mean * s`` instead of ``(bias - mean) * s + beta``.
    Every other weight of the .h5 import is checked by zeroing those biases; the biases themselves
    are read like every other tensor."""
    it = interpreter(mlperf_dir / "anomaly_detection/ad01_fp32.tflite")
    model = build_mlperf("fc_autoencoder", pretrained=True)
    inputs = _toycar(mlperf_dir)
    assert _worst(model, it, inputs) > 100 * TOL  # the biases matter
    _drop_dense_biases(model)
    assert _worst(model, it, inputs) <= TOL


def test_autoencoder_tflite_import_matches(mlperf_dir: Path) -> None:
    path = mlperf_dir / "anomaly_detection/ad01_fp32.tflite"
    model = MLPerfAutoencoder()
    load_tflite_weights(model, path)
    assert _worst(model.eval(), interpreter(path), _toycar(mlperf_dir)) <= TOL


def _kws_inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(3)  # the int8 model's input range: (q - 83) * 0.5847 for q in -128..127
    return [rng.uniform(-123.4, 25.7, (1, 49, 10, 1)).astype(np.float32) for _ in range(12)]


def test_dscnn_matches_dequantized_hybrid_tflite(mlperf_dir: Path) -> None:
    """The default DS-CNN weights are those of the hybrid kws_ref_model_float32.tflite (int8 conv
    weights dequantized, BN folded); the same file with its int8 tensors rewritten as float32 is the
    float reference."""
    model = build_mlperf("dscnn", pretrained=True)
    assert "kws_ref_model_float32.tflite" in str(model.weights_source)
    ref = interpreter(content=float_tflite(mlperf_dir / "keyword_spotting/kws_ref_model_float32.tflite"))
    assert _worst(model, ref, _kws_inputs()) <= TOL


def test_dscnn_close_to_hybrid_tflite_under_litert(mlperf_dir: Path) -> None:
    """LiteRT's hybrid kernels quantize each conv input to int8 on the fly (per tensor, dynamic range):
    up to 1/254 of an activation tensor's range per layer, through five such convs. The float model
    (= the dequantized reference above to 3e-6) differs from it by at most 0.066 on the probabilities
    over 100 random inputs (median 2e-4), with the same top-1 class on all 100. An empirical tolerance:
    0.1, and the same top-1 class wherever the reference leads by more than 0.1."""
    model = build_mlperf("dscnn", pretrained=True)
    it = interpreter(mlperf_dir / "keyword_spotting/kws_ref_model_float32.tflite")
    for x in _kws_inputs():
        ref, out = run(it, x)[0], _torch(model, x)[0]
        assert np.abs(out - ref).max() <= 0.1
        top2 = np.sort(ref)[-2:]
        if top2[1] - top2[0] > 0.1:
            assert out.argmax() == ref.argmax()


def test_dscnn_savedmodel_is_a_different_network(mlperf_dir: Path) -> None:
    """kws_ref_model/ (the SavedModel) reads cleanly, CRCs checked, but holds another training run
    than the .tflite files: its weights are uncorrelated with theirs."""
    sm = build_mlperf("dscnn", weights=mlperf_dir / "keyword_spotting/kws_ref_model")
    tfl = MLPerfDSCNN()
    load_tflite_weights(tfl, mlperf_dir / "keyword_spotting/kws_ref_model_float32.tflite")
    a, b = sm.fc.weight.detach().numpy().ravel(), tfl.fc.weight.detach().numpy().ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.3
