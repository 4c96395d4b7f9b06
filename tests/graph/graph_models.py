"""The small graph networks of :data:`mcu_dc.compression.models.TEST_NETS` (a DS-CNN keyword
spotter with TF "same" padding, depthwise-separable blocks and global average pooling; a
ResNet-8 with residual adds and strided 1×1 projection shortcuts), briefly trained on a
synthetic task and compressed for the device tests. Each is captured, pruned, clustered and quantized on
synthetic data: a few seconds of training on "which band is brightest" makes every layer
depend on its input, so bit-exactness is tested on outputs that really vary.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mcu_dc.compression import cluster
from mcu_dc.compression.capture import capture
from mcu_dc.compression.cluster import ClusterConfig
from mcu_dc.compression.models import TinyDSCNN, TinyResNet8
from mcu_dc.compression.prune import prune_to_sparsity
from mcu_dc.compression.quantize import QuantConfig, to_integer_model
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.data.datasets import Dataset


def _bn_stats(m: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine terms."""
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return m.eval()


def uint8_data(shape: tuple[int, int, int], n: int = 256, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)  # coarse random patterns plus noise: pooled features differ per sample
    c, h, w = shape
    coarse = rng.random((n, c, -(-h // 4), -(-w // 4)))
    pattern = coarse.repeat(4, axis=2).repeat(4, axis=3)[:, :, :h, :w]
    x = (255 * (0.8 * pattern + 0.2 * rng.random((n, c, h, w)))).astype(np.uint8)
    return Dataset("random", x, np.zeros(n, np.int64), 1 / 255)


def band_labels(x: np.ndarray, classes: int) -> np.ndarray:
    """A learnable synthetic task: which of ``classes`` horizontal bands is brightest."""
    bands = np.array_split(x.astype(np.float64).mean(axis=(1, 3)), classes, axis=1)
    return np.stack([b.mean(axis=1) for b in bands], axis=1).argmax(axis=1)


def quick_train(
    model: nn.Module, data: Dataset, classes: int, *, epochs: int = 4, seed: int = 0
) -> nn.Module:
    """A few epochs of Adam on :func:`band_labels`, so features depend on the input (seconds on CPU)."""
    torch.manual_seed(seed)
    x = torch.from_numpy(data.images.astype(np.float32) / 255.0)
    y = torch.from_numpy(band_labels(data.images, classes))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            out = model(x[i : i + 64])
            logp = torch.log(out.clamp_min(1e-9)) if torch.all(out >= 0) and out.sum(1).allclose(
                torch.ones(len(out))) else F.log_softmax(out, dim=1)  # fmt: skip
            loss = F.nll_loss(logp, y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def compress_untrained(
    model: nn.Module, data: Dataset, name: str, *, sparsity: float = 0.5, seed: int = 0, train: bool = True
) -> CompressedModel:
    """(A few seconds of training →) capture → prune → cluster → integer model → .mcudc, deterministic
    for ``seed``."""
    torch.manual_seed(seed)
    _bn_stats(model, seed)
    if train:
        quick_train(model, data, int(model(torch.zeros(1, *data.input_shape)).shape[1]), seed=seed)
    net = capture(model, data.input_shape)
    for wl in net.weight_layers():
        if not getattr(wl, "frozen", False):
            prune_to_sparsity(wl, sparsity)
    cluster.cluster_net(net, ClusterConfig(conv_bits=5, fc_bits=5))
    im = to_integer_model(net, data, QuantConfig(), torch.device("cpu"), name)
    return CompressedModel(im, {"name": name})


def dscnn_cm() -> tuple[CompressedModel, Dataset]:
    torch.manual_seed(1)
    data = uint8_data((1, 49, 10), n=512)
    return compress_untrained(TinyDSCNN(), data, "dscnn_style"), data


def resnet_cm() -> tuple[CompressedModel, Dataset]:
    torch.manual_seed(2)
    data = uint8_data((3, 16, 16), n=512, seed=1)
    return compress_untrained(TinyResNet8(), data, "resnet_style"), data
