"""The four MLPerf Tiny v1 reference networks in PyTorch, with their trained weights importable.

MLPerf Tiny (Banbury et al., *MLPerf Tiny Benchmark*, NeurIPS 2021 Datasets and Benchmarks track)
defines four closed-division tasks, each with a Keras reference model and trained weights
(github.com/mlcommons/tiny, ``benchmark/training/``):

* ``resnet8`` — image classification on CIFAR-10, 32x32x3 input, a ResNet-8 (three residual
  stacks of 16/32/64 filters, the last two strided with a 1x1 projection shortcut);
* ``mobilenet_v1_025`` — visual wake words, 96x96x3, MobileNetV1 with width multiplier 0.25;
* ``dscnn`` — keyword spotting on 49x10 MFCC frames, DS-CNN with 64 channels;
* ``fc_autoencoder`` — anomaly detection on 640 log-mel features, a 640-128-128-128-128-8-128-
  128-128-128-640 fully connected autoencoder.

The modules below were written from the models' own structure: the layer configs stored in the
``.h5`` files (``model_config``) and in the keyword spotter's SavedModel, their weight shapes, and
the ``.tflite`` graphs. Keras layers are channels-last with TensorFlow "same" padding, which puts
the odd extra row/column at the bottom/right: strided "same" convolutions get an explicit
``nn.ZeroPad2d`` (left, right, top, bottom) so graph capture sees it. Each model's
``keras_layers()`` names the Keras layer behind each weight module, which
:func:`~mcu_dc.compression.keras_import.load_keras_weights` uses to import the weights.

Default weights (``pretrained=True``): the Keras ``.h5`` files for ResNet-8, VWW and the autoencoder.
For DS-CNN, the hybrid ``kws_ref_model_float32.tflite`` (float depthwise, dense and biases, int8
per-channel conv weights, dequantized; BatchNorm folded): the SavedModel ``kws_ref_model/`` next to
it reads fine (:mod:`~mcu_dc.compression.tf_bundle`) but holds a different training run, whose
weights are uncorrelated with those of both ``.tflite`` files, the benchmark's reference. Note on the
autoencoder: both ``ad01*.tflite`` files lack the bias of each Dense layer before a BatchNorm (the
converter folded BN as ``beta - mean*s``); the ``.h5`` has them and is imported as is.

Inputs, as the reference ``.tflite`` files take them (channels-first here): ResNet-8 raw pixel
values 0..255 (the int8 model's input scale is 1.0), VWW pixels / 255, KWS the MFCC features, the
autoencoder log-mel features. The classifiers end in a softmax like their Keras models
(``softmax=False`` gives logits); graph capture drops a final softmax (argmax-invariant).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from mcu_dc.compression.keras_import import ImportInfo, load_keras_weights, sha256_of
from mcu_dc.compression.tflite_import import load_tflite_weights
from mcu_dc.errors import DataError, ModelError

DATA_SUBDIR = "mlperf_tiny"

# --------------------------------------------------------------------------- helpers


def _keras(i: int, base: str) -> str:
    """Keras' automatic layer names: ``conv2d``, ``conv2d_1``, ``conv2d_2``, ..."""
    return base if i == 0 else f"{base}_{i}"


def same_pads(size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, ...]:
    """TensorFlow "same" padding as ``nn.ZeroPad2d`` takes it: (left, right, top, bottom)."""
    pads: list[int] = []
    for n, k, s in zip(size[::-1], kernel[::-1], stride[::-1], strict=True):  # width first
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def _same_conv(
    cin: int, cout: int, kernel: tuple[int, int], stride: int, size: tuple[int, int], groups: int = 1
) -> tuple[nn.Module, tuple[int, int]]:
    """A conv with TF "same" padding for a ``size`` input (padded first if uneven), and its output size."""
    pads = same_pads(size, kernel, (stride, stride))
    out = (-(-size[0] // stride), -(-size[1] // stride))
    left, right, top, bottom = pads
    if left == right and top == bottom:
        return nn.Conv2d(cin, cout, kernel, stride, (top, left), groups=groups), out
    conv = nn.Conv2d(cin, cout, kernel, stride, 0, groups=groups)
    return nn.Sequential(nn.ZeroPad2d(pads), conv), out


def _conv_of(m: nn.Module) -> str:
    """Submodule name of the conv inside what :func:`_same_conv` returned."""
    return "1" if isinstance(m, nn.Sequential) else ""


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


class _KerasNet(nn.Module):
    """Shared: the Keras-name map and the softmax switch."""

    def __init__(self, softmax: bool) -> None:
        super().__init__()
        self.softmax: nn.Module = nn.Softmax(dim=1) if softmax else nn.Identity()
        self._keras: dict[str, str] = {}

    def keras_layers(self) -> dict[str, str]:
        """Keras layer name -> qualified name of the torch module holding its weights."""
        return dict(self._keras)


# --------------------------------------------------------------------------- ResNet-8 (image classification)


class _ResStack(nn.Module):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN, plus the input or a strided 1x1 conv of it, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.conv1, size = _same_conv(cin, cout, (3, 3), stride, size)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2, _ = _same_conv(cout, cout, (3, 3), 1, size)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = (
            nn.Identity() if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride)
        )
        self.relu = nn.ReLU()
        self.out_size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(self.shortcut(x) + y)


class MLPerfResNet8(_KerasNet):
    """MLPerf Tiny image classification ResNet-8 (CIFAR-10): 78,666 parameters, 10 classes.

    Keras layers: conv2d + batch_normalization (stem, 16 filters), three stacks of two 3x3 convs
    (16, 32, 64 filters; the 2nd and 3rd start with stride 2 and add a 1x1 stride-2 conv shortcut
    without BN), 8x8 average pooling, flatten (1x1), dense 10 with softmax. All convs have biases;
    BN epsilon 1e-3. Input: raw pixel values 0..255, (3, 32, 32).
    """

    def __init__(self, num_classes: int = 10, softmax: bool = True) -> None:
        super().__init__(softmax)
        size = (32, 32)
        self.conv, size = _same_conv(3, 16, (3, 3), 1, size)
        self.bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.stack1 = _ResStack(16, 16, 1, size)
        self.stack2 = _ResStack(16, 32, 2, self.stack1.out_size)
        self.stack3 = _ResStack(32, 64, 2, self.stack2.out_size)
        self.pool = nn.AvgPool2d(self.stack3.out_size)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, num_classes)
        self._keras = {"conv2d": "conv", "batch_normalization": "bn", "dense": "fc"}
        conv_i, bn_i = 1, 1
        for s in ("stack1", "stack2", "stack3"):
            stack = self.get_submodule(s)
            assert isinstance(stack, _ResStack)
            self._keras[_keras(conv_i, "conv2d")] = _join(s, "conv1", _conv_of(stack.conv1))
            self._keras[_keras(conv_i + 1, "conv2d")] = _join(s, "conv2", _conv_of(stack.conv2))
            if isinstance(stack.shortcut, nn.Conv2d):  # Keras builds the shortcut after the 2nd conv
                self._keras[_keras(conv_i + 2, "conv2d")] = _join(s, "shortcut")
                conv_i += 1
            self._keras[_keras(bn_i, "batch_normalization")] = _join(s, "bn1")
            self._keras[_keras(bn_i + 1, "batch_normalization")] = _join(s, "bn2")
            conv_i, bn_i = conv_i + 2, bn_i + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))
        x = self.stack3(self.stack2(self.stack1(x)))
        return self.softmax(self.fc(self.flatten(self.pool(x))))


# --------------------------------------------------------------------------- MobileNetV1 (visual wake words)

# (pointwise filters, depthwise stride) of the 13 depthwise-separable blocks, width multiplier 0.25
_MOBILENET_025 = (
    (16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2),
    (128, 1), (128, 1), (128, 1), (128, 1), (128, 1), (256, 2), (256, 1),
)  # fmt: skip


class _DepthwiseSeparable(nn.Module):
    """depthwise 3x3 (stride) - BN - ReLU - pointwise 1x1 - BN - ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.dw, self.out_size = _same_conv(cin, cin, (3, 3), stride, size, groups=cin)
        self.dw_bn = nn.BatchNorm2d(cin)
        self.pw = nn.Conv2d(cin, cout, 1)
        self.pw_bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.dw_bn(self.dw(x)))
        return self.relu(self.pw_bn(self.pw(x)))


def _separable_stack(
    net: _KerasNet, cin: int, plan: tuple[tuple[int, int], ...], size: tuple[int, int], first_conv: int
) -> tuple[nn.Sequential, tuple[int, int]]:
    """The blocks of ``plan``, their Keras names recorded in ``net``.

    Block i is depthwise_conv2d_i, batch_normalization_{2i+1}, conv2d_{i+first_conv} and
    batch_normalization_{2i+2}.
    """
    blocks: list[nn.Module] = []
    for i, (cout, stride) in enumerate(plan):
        block = _DepthwiseSeparable(cin, cout, stride, size)
        size, cin = block.out_size, cout
        pre = f"blocks.{i}"
        net._keras[_keras(i, "depthwise_conv2d")] = _join(pre, "dw", _conv_of(block.dw))
        net._keras[_keras(2 * i + 1, "batch_normalization")] = f"{pre}.dw_bn"
        net._keras[_keras(i + first_conv, "conv2d")] = f"{pre}.pw"
        net._keras[_keras(2 * i + 2, "batch_normalization")] = f"{pre}.pw_bn"
        blocks.append(block)
    return nn.Sequential(*blocks), size


class MLPerfMobileNetV1(_KerasNet):
    """MLPerf Tiny visual wake words MobileNetV1, width 0.25 (96x96x3 input, 2 classes).

    Keras layers: conv2d 3x3 stride 2 (8 filters) + BN + ReLU, 13 depthwise-separable blocks
    (ReLU, not ReLU6, in this model), 3x3 average pooling of the final 3x3x256 map, flatten,
    dense 2 with softmax. All convs have biases; BN epsilon 1e-3. Input: pixels / 255, (3, 96, 96).
    """

    def __init__(self, num_classes: int = 2, softmax: bool = True, image_size: int = 96) -> None:
        super().__init__(softmax)
        self.stem, size = _same_conv(3, 8, (3, 3), 2, (image_size, image_size))
        self.stem_bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self._keras = {"conv2d": _join("stem", _conv_of(self.stem)), "batch_normalization": "stem_bn"}
        self.blocks, size = _separable_stack(self, 8, _MOBILENET_025, size, first_conv=1)
        self.pool = nn.AvgPool2d(size)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(_MOBILENET_025[-1][0], num_classes)
        self._keras["dense"] = "fc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.relu(self.stem_bn(self.stem(x))))
        return self.softmax(self.fc(self.flatten(self.pool(x))))


# --------------------------------------------------------------------------- DS-CNN (keyword spotting)


class MLPerfDSCNN(_KerasNet):
    """MLPerf Tiny keyword spotting DS-CNN (49x10 MFCC input, 12 classes).

    Keras layers: conv2d 10x4 stride 2 "same" (64 filters; pads 4/5 rows and 1/1 columns) + BN +
    ReLU + dropout 0.2, four depthwise-separable blocks of 64 channels (depthwise 3x3 + BN + ReLU,
    pointwise 1x1 + BN + ReLU), dropout 0.4, 25x5 average pooling, flatten, dense 12 with softmax.
    All convs have biases; BN epsilon 1e-3.
    """

    def __init__(self, num_classes: int = 12, softmax: bool = True, channels: int = 64) -> None:
        super().__init__(softmax)
        self.conv, size = _same_conv(1, channels, (10, 4), 2, (49, 10))
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.drop1 = nn.Dropout(0.2)
        self._keras = {"conv2d": _join("conv", _conv_of(self.conv)), "batch_normalization": "bn"}
        self.blocks, size = _separable_stack(self, channels, ((channels, 1),) * 4, size, first_conv=1)
        self.drop2 = nn.Dropout(0.4)
        self.pool = nn.AvgPool2d(size)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        self._keras["dense"] = "fc"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop1(self.relu(self.bn(self.conv(x))))
        x = self.pool(self.drop2(self.blocks(x)))
        return self.softmax(self.fc(self.flatten(x)))


# --------------------------------------------------------------------------- autoencoder (anomaly detection)


class MLPerfAutoencoder(_KerasNet):
    """MLPerf Tiny anomaly detection autoencoder (ToyCar, 640 = 5 frames x 128 mel bins).

    Keras layers: dense_i + batch_normalization_i + ReLU for i = 0..8 (128, 128, 128, 128, 8, 128,
    128, 128, 128 units), dense_9 back to 640 without activation. BN epsilon 1e-3.
    """

    SIZES = (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)

    def __init__(self) -> None:
        super().__init__(softmax=False)
        layers: list[nn.Module] = []
        last = len(self.SIZES) - 2
        for i, (a, b) in enumerate(zip(self.SIZES[:-1], self.SIZES[1:], strict=True)):
            self._keras[_keras(i, "dense")] = f"net.{len(layers)}"
            layers.append(nn.Linear(a, b))
            if i < last:
                self._keras[_keras(i, "batch_normalization")] = f"net.{len(layers)}"
                layers += [nn.BatchNorm1d(b), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


# --------------------------------------------------------------------------- registry


class MLPerfSpec(NamedTuple):
    builder: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]  # (C, H, W); vectors (F, 1, 1)
    weights: str  # default weights, relative to the mlperf_tiny/ data folder


MLPERF_MODELS: dict[str, MLPerfSpec] = {
    "resnet8": MLPerfSpec(MLPerfResNet8, (3, 32, 32), "image_classification/pretrainedResnet.h5"),
    "mobilenet_v1_025": MLPerfSpec(MLPerfMobileNetV1, (3, 96, 96), "visual_wake_words/vww_96.h5"),
    "dscnn": MLPerfSpec(MLPerfDSCNN, (1, 49, 10), "keyword_spotting/kws_ref_model_float32.tflite"),
    "fc_autoencoder": MLPerfSpec(MLPerfAutoencoder, (640, 1, 1), "anomaly_detection/ad01.h5"),
}

# What the float reference models take: input = byte * scale for the image models.
MLPERF_INPUT_SCALE: dict[str, float] = {"resnet8": 1.0, "mobilenet_v1_025": 1.0 / 255.0}

# sha256 of the default weights (mlperf_tiny/README); a SavedModel: of variables.{data-*,index}.
DEFAULT_SHA256 = {
    "resnet8": "5f938a8eea605438cc7360aa13c987bc6d7bd0c8d931b2917361ae7ae4eeda2f",
    "mobilenet_v1_025": "af9111d50e6e85b2f2123345e0316ef1c384865ebf6b06340ddac7e66017450f",
    "fc_autoencoder": "651a62de1b7facd68d1269373992a2d09ffd28e6a816935d4834fcc558bde512",
    "dscnn": "e5004c6f1012246e33fa068d8488325538e0444073cd361f5a7edb40c73f12d2",
}


def mlperf_data_dirs(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Folders searched for ``mlperf_tiny/``: ``data_dir``, else ``$MCU_DC_DATA`` and ../shared/data."""
    from mcu_dc.data.datasets import candidate_dirs

    return [d for d in candidate_dirs(DATA_SUBDIR, data_dir) if d.name == DATA_SUBDIR]


def default_weights(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The reference weights of MLPerf model ``name`` in the shared data folder."""
    spec = _spec(name)
    dirs = mlperf_data_dirs(data_dir)
    for d in dirs:
        if (d / spec.weights).exists():
            return d / spec.weights
    raise DataError(
        f"the MLPerf Tiny weights of {name!r} ({spec.weights}) were not found under "
        f"{', '.join(str(d) for d in dirs)}. Pass --data-dir DIR (a folder holding mlperf_tiny/) or set "
        "MCU_DC_DATA, or give the weights file itself (--weights FILE)."
    )


def _spec(name: str) -> MLPerfSpec:
    if name not in MLPERF_MODELS:
        raise ModelError(f"unknown MLPerf Tiny model {name!r}; choose one of {', '.join(MLPERF_MODELS)}.")
    return MLPERF_MODELS[name]


def _check_default(name: str, path: Path) -> None:
    want = DEFAULT_SHA256.get(name)
    if want is not None and sha256_of(path) != want:
        raise DataError(
            f"{path} has the wrong sha256 (expected {want}, the MLPerf Tiny reference file); it is corrupt "
            "or a different model. Restore it from the shared data folder, or pass your own file with "
            "--weights."
        )


def build_mlperf(
    name: str,
    weights: str | os.PathLike[str] | None = None,
    pretrained: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """MLPerf Tiny model ``name``; with ``weights`` (a Keras .h5 file or SavedModel folder) or
    ``pretrained=True`` (the reference weights in the shared data folder) its trained weights are loaded.

    The model's ``weights_source`` attribute then says where they came from (``None``: random init).
    """
    model = _spec(name).builder()
    model.weights_source = None  # type: ignore[assignment]
    model.weights_path = None  # type: ignore[assignment]
    if name in MLPERF_INPUT_SCALE:  # what one input byte means to the float model (uint8 images)
        model.input_scale = MLPERF_INPUT_SCALE[name]  # type: ignore[assignment]
    path: Path | None = Path(weights) if weights is not None else None
    if path is None and pretrained:
        path = default_weights(name, data_dir)
        _check_default(name, path)
    if path is not None:
        info = load_weights(model, path)
        model.weights_source = info.describe()  # type: ignore[assignment]
        model.weights_path = str(path)  # type: ignore[assignment]
    return model.eval()


def is_mlperf(model: nn.Module) -> bool:
    """True for the MLPerf Tiny reference architectures (their weights import from Keras / TFLite)."""
    return isinstance(model, _KerasNet)


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> ImportInfo:
    """Trained weights into an MLPerf model: a Keras ``.h5`` file, a Keras SavedModel folder or a
    ``.tflite`` file (BatchNorm folded into the convs, int8 weights dequantized)."""
    p = Path(path)
    if p.suffix == ".tflite":
        return load_tflite_weights(model, p)
    return load_keras_weights(model, p)
