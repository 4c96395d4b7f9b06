"""Reference models (the ones the Deep Compression paper used on MNIST) and user factories."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mcu_dc.errors import ModelError


class LeNet300(nn.Module):
    """LeNet-300-100: 784-300-100-10 with ReLU (266,610 parameters)."""

    def __init__(self, in_features: int = 784, num_classes: int = 10) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_features, 300)
        self.relu1 = nn.ReLU()
        self.fc2 = nn.Linear(300, 100)
        self.relu2 = nn.ReLU()
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        x = self.relu1(self.fc1(self.flatten(x)))
        return self.fc3(self.relu2(self.fc2(x)))


class LeNet5(nn.Module):
    """LeNet-5 as in Caffe's MNIST example (431,080 parameters).

    conv1 20@5x5 -> maxpool 2 -> conv2 50@5x5 -> maxpool 2 -> FC 500 + ReLU -> FC 10.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        x = self.pool2(self.conv2(self.pool1(self.conv1(x))))
        return self.fc2(self.relu(self.fc1(self.flatten(x))))


# --------------------------------------------------------------------------- small graph networks
# Scaled-down versions of the networks of the MLPerf Tiny benchmark (Banbury et al., *MLPerf
# Tiny Benchmark*, NeurIPS 2021 Datasets and Benchmarks) and of the CIFAR ResNets (He et al.,
# *Deep Residual Learning for Image Recognition*, CVPR 2016, section 4.2), written the way
# their PyTorch ports usually are. They exercise every op capture accepts; the tests use them.


class TinyDSCNN(nn.Module):
    """DS-CNN keyword spotter: conv 10x4 stride 2 with TF "same" padding, BN, ReLU, then
    depthwise-separable blocks (depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU), global
    average pooling, dropout, a classifier and a softmax. Input (1, 49, 10) MFCC frames."""

    def __init__(
        self, channels: int = 16, blocks: int = 2, num_classes: int = 12, in_hw: tuple[int, int] = (49, 10)
    ):
        super().__init__()
        h, w = in_hw
        oh, ow = -(-h // 2), -(-w // 2)
        ph, pw = max((oh - 1) * 2 + 10 - h, 0), max((ow - 1) * 2 + 4 - w, 0)
        self.pad = nn.ZeroPad2d(
            (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        )  # TF "same": extra at bottom/right
        self.conv1 = nn.Conv2d(1, channels, (10, 4), stride=2, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        layers: list[nn.Module] = []
        for _ in range(blocks):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d((oh, ow))
        self.drop = nn.Dropout(0.4)
        self.fc = nn.Linear(channels, num_classes)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(self.pad(x))))
        x = self.pool(self.blocks(x))
        return self.softmax(self.fc(self.drop(torch.flatten(x, 1))))


class _ResBlock(nn.Module):
    """ResNet v1 block: conv-BN-ReLU-conv-BN, plus the identity or a 1x1 projection, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class TinyResNet8(nn.Module):
    """ResNet-8 image classifier (MLPerf Tiny IC): a stem and three residual stacks, the last
    two with stride 2 and a 1x1 projection shortcut; global average pooling; a classifier."""

    def __init__(
        self, widths: tuple[int, int, int] = (8, 16, 32), num_classes: int = 10, in_channels: int = 3
    ):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1)
        self.bn = nn.BatchNorm2d(widths[0])
        self.stack1 = _ResBlock(widths[0], widths[0], 1)
        self.stack2 = _ResBlock(widths[0], widths[1], 2)
        self.stack3 = _ResBlock(widths[1], widths[2], 2)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x)))
        x = self.stack3(self.stack2(self.stack1(x)))
        x = F.avg_pool2d(x, x.size()[3])
        return self.fc(x.view(x.size(0), -1))


class LambdaLayer(nn.Module):
    """Wraps a function as a module, as the CIFAR ResNet ports do for the option-A shortcut."""

    def __init__(self, fn) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class TinyMobileNet(nn.Module):
    """MobileNet-style: a strided stem with ReLU6, a depthwise 3x3 with channel multiplier 2,
    a pointwise 1x1, a padded 3x3 average pool, a "same"-padded 4x4 conv, mean over H and W, a classifier."""

    def __init__(self, channels: int = 8, num_classes: int = 5, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, 2, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU6()
        )
        self.dw = nn.Conv2d(channels, 2 * channels, 3, 1, 1, groups=channels, bias=False)
        self.dw_bn = nn.BatchNorm2d(2 * channels)
        self.pw = nn.Conv2d(2 * channels, channels, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(channels)
        self.smooth = nn.AvgPool2d(3, stride=1, padding=1)  # zero padding counted in the divisor
        self.same = nn.Conv2d(channels, channels, 4, padding="same")
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu6(self.dw_bn(self.dw(x)))
        x = self.smooth(torch.clamp(self.pw_bn(self.pw(x)), 0, 6))
        x = F.hardtanh(self.same(x), -2.0, 2.0)
        return self.fc(x.mean((2, 3)))


class FCAutoencoder(nn.Module):
    """The MLPerf Tiny anomaly-detection autoencoder, scaled down: Linear + BN + ReLU layers
    down to a bottleneck and back up to the input size; no final activation."""

    def __init__(self, features: int = 32, hidden: int = 16, bottleneck: int = 4) -> None:
        super().__init__()
        sizes = [features, hidden, bottleneck, hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        layers.append(nn.Linear(hidden, features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --------------------------------------------------------------------------- CIFAR ResNets
# He et al., *Deep Residual Learning for Image Recognition* (CVPR 2016), section 4.2: the 6n+2
# layer ResNets for CIFAR-10, with the parameter names of the widely used PyTorch weights
# (conv1, bn1, layer{1,2,3}.{k}.conv1/bn1/conv2/bn2, linear), so their state dicts load strictly.

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CIFAR_RESNET_DEPTHS = {"resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56}


class OptionAShortcut(nn.Module):
    """He et al.'s parameter-free "option A" shortcut: keep every second row and column (the even
    indices) and pad the channel axis with ``pad`` zero channels before and ``pad`` after."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


class CifarBasicBlock(nn.Module):
    """3x3 conv (stride) -> BN -> ReLU -> 3x3 conv -> BN, plus the shortcut, then ReLU; no conv bias."""

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != planes:
            if stride != 2 or planes != 2 * cin:
                raise ModelError(
                    f"the option-A shortcut halves the resolution and doubles the width; a block {cin} -> "
                    f"{planes} channels with stride {stride} has no option-A shortcut"
                )
            self.shortcut = OptionAShortcut((planes - cin) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _OptionABlock(CifarBasicBlock):
    """:class:`CifarBasicBlock` spelled the way CIFAR ResNet ports usually write it: the option-A
    shortcut as a ``LambdaLayer`` over a lambda and an in-place ``+=`` (capture must trace both)."""

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__(cin, planes, stride)
        if isinstance(self.shortcut, OptionAShortcut):
            pad = self.shortcut.pad
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class TinyCifarResNet(nn.Module):
    """A CIFAR ResNet (ResNet-20 family) with one block per stage and option-A shortcuts."""

    def __init__(
        self, widths: tuple[int, int] = (8, 16), num_classes: int = 10, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = _OptionABlock(widths[0], widths[0], 1)
        self.layer2 = _OptionABlock(widths[0], widths[1], 2)
        self.linear = nn.Linear(widths[1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer2(self.layer1(out))
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


class CifarResNet(nn.Module):
    """The CIFAR-10 ResNet of depth ``6n + 2`` (20, 32, 44, 56, ...): a 3x3 stem conv 3->16 with BN
    and ReLU, three stages of ``n`` basic blocks of widths 16, 32, 64 (the first block of stages 2
    and 3 with stride 2 and an option-A shortcut), global average pooling, a linear classifier.

    ``input_norm`` is the per-channel ``(mean, std)`` the weights expect on inputs scaled to
    [0, 1] (the ImageNet statistics of the usual CIFAR training script); the pipeline then
    trains and evaluates on ``(x / 255 - mean) / std`` and records it in the model file.
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: tuple[int, int, int] = (16, 32, 64),
        input_norm: tuple[tuple[float, ...], tuple[float, ...]] | None = (IMAGENET_MEAN, IMAGENET_STD),
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ModelError(f"a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, ...), not {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.input_norm = input_norm
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        stages = []
        for i, planes in enumerate(widths):
            blocks = []
            for k in range(n):
                stride = 2 if i > 0 and k == 0 else 1
                blocks.append(CifarBasicBlock(cin, planes, stride))
                cin = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(widths[2], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(self.flatten(self.pool(out)))


TEST_NETS = {
    "tiny_dscnn": TinyDSCNN,
    "tiny_resnet8": TinyResNet8,
    "tiny_cifar_resnet": TinyCifarResNet,
    "tiny_mobilenet": TinyMobileNet,
    "fc_autoencoder": FCAutoencoder,
}

MLPERF = ("resnet8", "dscnn", "mobilenet_v1_025", "fc_autoencoder")  # mcu_dc.compression.mlperf
BUILTIN = ("lenet300", "lenet5", *CIFAR_RESNET_DEPTHS, *MLPERF)


def build_model(
    spec: str, input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10
) -> nn.Module:
    """``lenet300``, ``lenet5``, ``resnet20|32|44|56`` (CIFAR ResNets, RGB inputs), the MLPerf Tiny
    references ``resnet8``, ``dscnn``, ``mobilenet_v1_025``, ``fc_autoencoder`` (with their reference
    weights when the shared data folder holds them) or ``path/to/file.py:factory`` (a function
    returning an nn.Module)."""
    c, h, w = input_shape
    if spec == "lenet300":
        return LeNet300(c * h * w, num_classes)
    if spec == "lenet5":
        if h != w or h < 16:
            raise ModelError(
                f"lenet5 needs square inputs of at least 16x16 pixels, the dataset has {h}x{w}; use lenet300 "
                "or your own model (path/to/file.py:factory)."
            )
        return LeNet5(c, num_classes, h)
    if spec in CIFAR_RESNET_DEPTHS:
        if c != 3 or h != w or h < 8:
            raise ModelError(
                f"{spec} takes square RGB images of at least 8x8 pixels (CIFAR-10: 3x32x32), the dataset has "
                f"{c}x{h}x{w}; use --dataset cifar10 (or your own RGB images), or lenet300/lenet5 for "
                "grey images."
            )
        return CifarResNet(CIFAR_RESNET_DEPTHS[spec], num_classes)
    if spec in MLPERF:
        return _mlperf(spec, input_shape)
    return load_factory(spec)


def _mlperf(name: str, input_shape: tuple[int, int, int]) -> nn.Module:
    """An MLPerf Tiny reference network with its reference weights when the shared data folder
    has them (``weights_source`` says so; the pipeline then skips dense training), else random."""
    from mcu_dc.compression import mlperf
    from mcu_dc.errors import DataError

    want = mlperf.MLPERF_MODELS[name].input_shape
    if tuple(input_shape) != tuple(want):
        raise ModelError(
            f"{name} takes inputs of shape {want} (C, H, W) but the dataset has {tuple(input_shape)}; use a "
            f"dataset of that shape (for resnet8: --dataset cifar10; your own data: --dataset file.npz)."
        )
    try:
        return mlperf.build_mlperf(name, pretrained=True)
    except DataError:
        return mlperf.build_mlperf(name)  # no reference weights here: random init, dense training runs


def load_factory(spec: str) -> nn.Module:
    path_s, sep, func = spec.rpartition(":")
    if not sep or not path_s.endswith(".py") or not func:
        raise ModelError(
            f"unknown model {spec!r}: use {', '.join(BUILTIN)} or path/to/file.py:factory where factory() "
            "returns a torch.nn.Module"
        )
    path = Path(path_s)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist (from --model {spec!r}); check the path.")
    mod_name = f"mcu_dc_user_model_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ModelError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # user code: report any failure as a model error
        raise ModelError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, func, None)
    if not callable(factory):
        raise ModelError(f"{path} has no callable {func!r}; define def {func}() -> torch.nn.Module")
    try:
        model = factory()
    except Exception as exc:  # user code
        raise ModelError(f"{path}:{func}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"{path}:{func}() returned {type(model).__name__}, not a torch.nn.Module")
    return model
