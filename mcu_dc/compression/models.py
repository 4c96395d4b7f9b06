"""Reference models (the ones the Deep Compression paper used on MNIST) and user factories."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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


BUILTIN = ("lenet300", "lenet5")


def build_model(
    spec: str, input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10
) -> nn.Module:
    """``lenet300``, ``lenet5`` or ``path/to/file.py:factory`` (a function returning an nn.Module)."""
    c, h, w = input_shape
    if spec == "lenet300":
        return LeNet300(c * h * w, num_classes)
    if spec == "lenet5":
        if h != w or h < 16:
            raise ModelError(
                f"lenet5 needs square inputs of at least 16x16 pixels, the dataset has {h}x{w}; "
                "use lenet300 or your own model (path/to/file.py:factory)."
            )
        return LeNet5(c, num_classes, h)
    return load_factory(spec)


def load_factory(spec: str) -> nn.Module:
    path_s, sep, func = spec.rpartition(":")
    if not sep or not path_s.endswith(".py") or not func:
        raise ModelError(
            f"unknown model {spec!r}: use lenet300, lenet5 or path/to/file.py:factory where factory() "
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
