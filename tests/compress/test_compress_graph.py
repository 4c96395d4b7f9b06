"""Graph models end to end on the torch side: capture → prune → cluster → integer model →
simulator, for small versions of the TinyML reference networks (DS-CNN, ResNet-8, a CIFAR
ResNet with option-A shortcuts, MobileNet-style depthwise with multiplier 2, the FC
autoencoder on float features)."""

import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.compression import cluster, prune, sensitivity
from mcu_dc.compression.capture import capture
from mcu_dc.compression.graph import AddNode, ChannelPad, GraphNet, WeightLayer
from mcu_dc.compression.models import FCAutoencoder, TinyCifarResNet, TinyDSCNN, TinyMobileNet, TinyResNet8
from mcu_dc.compression.quantize import QuantConfig, dequantize_outputs, to_integer_model
from mcu_dc.core import ir
from mcu_dc.core.blob import decode_blob, encode_blob
from mcu_dc.core.ops import spec_of
from mcu_dc.core.simulator import simulate
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ModelError

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
torch.set_num_threads(1)
CPU = torch.device("cpu")

CASES = {
    "dscnn": (TinyDSCNN, (1, 49, 10)),
    "resnet8": (TinyResNet8, (3, 16, 16)),
    "cifar_resnet": (TinyCifarResNet, (3, 16, 16)),
    "mobilenet": (TinyMobileNet, (3, 16, 16)),
    "autoencoder": (FCAutoencoder, (32, 1, 1)),
}


def random_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so folding is exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return model.eval()


def dataset(shape, n=160, seed=0):
    rng = np.random.default_rng(seed)
    if shape[1:] == (1, 1):
        return Dataset(
            "features", rng.normal(size=(n, shape[0])).astype(np.float32), None, task="reconstruction"
        )
    return Dataset(
        "bytes", rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), np.zeros(n, np.int64), 1 / 255
    )


def compress(net: GraphNet, data: Dataset, sparsity=0.3, **qcfg) -> ir.IntegerModel:
    for wl in net.weight_layers():
        prune.prune_to_sparsity(wl, sparsity)
    cluster.cluster_net(net, cluster.ClusterConfig(conv_bits=8, fc_bits=6))
    return to_integer_model(net, data, QuantConfig(**qcfg), CPU, "graph")


def float_out(net: GraphNet, data: Dataset) -> np.ndarray:
    with torch.no_grad():
        return net(torch.from_numpy(data.float_inputs())).numpy().astype(np.float64)


def check_close(im: ir.IntegerModel, net: GraphNet, data: Dataset) -> None:
    """The integer model's dequantized outputs are the float graph's within quantization tolerance."""
    deq = dequantize_outputs(im, simulate(im, data.simulator_inputs()))
    ref = float_out(net, data)
    span = ref.max() - ref.min()
    assert np.abs(deq - ref).max() < 0.05 * span
    assert np.corrcoef(deq.ravel(), ref.ravel())[0, 1] > 0.995
    if ref.shape[1] > 1:
        assert (deq.argmax(1) == ref.argmax(1)).mean() >= 0.9


@pytest.mark.parametrize("case", list(CASES))
def test_reference_network_captures_and_quantizes(case):
    cls, shape = CASES[case]
    torch.manual_seed(0)
    model = random_bn(cls())
    net = capture(model, shape)
    x = torch.rand(6, *shape)
    with torch.no_grad():
        want = model(x.flatten(1) if case == "autoencoder" else x)
        got = net(x).softmax(1) if case == "dscnn" else net(x)
    assert torch.allclose(got, want, atol=1e-5)
    data = dataset(shape)
    im = compress(net, data)
    im.validate()
    assert im.tensor_scales is not None and len(im.tensor_scales) == im.n_tensors
    check_close(im, net, data)
    back = decode_blob(encode_blob(im))
    assert np.array_equal(
        simulate(back, data.simulator_inputs()[:20]), simulate(im, data.simulator_inputs()[:20])
    )


def test_dscnn_structure():
    net = capture(random_bn(TinyDSCNN()), (1, 49, 10))
    kinds = [(n.kind if isinstance(n, WeightLayer) else type(n).__name__) for n in net.nodes]
    assert kinds == ["conv", "dw", "conv", "dw", "conv", "AvgPool", "DropoutNode", "fc"]
    conv1 = net.layer("conv1")
    assert conv1.pads == (4, 1, 5, 1) and conv1.stride == (2, 2) and conv1.relu  # TF "same", BN folded
    assert any("softmax dropped" in n for n in net.notes)
    assert set(net.dropouts_before()) == {"fc"}
    im = compress(net, dataset((1, 49, 10)))
    c1 = im.layers[0]
    assert isinstance(c1, ir.Conv2D) and c1.pads == (4, 1, 5, 1) and c1.act_min == c1.out_zp == -128
    dws = [op for op in im.layers if isinstance(op, ir.DepthwiseConv2D)]
    assert len(dws) == 2 and all(op.index_bits == 4 and op.multiplier == 1 for op in dws)
    pool = next(op for op in im.layers if isinstance(op, ir.AvgPool2D))
    assert pool.kernel == (25, 5) and pool.out_shape == (16, 1, 1)


def test_resnet8_adds_take_two_scales_and_fuse_relu():
    net = capture(random_bn(TinyResNet8()), (3, 16, 16))
    adds = [n for n in net.nodes if isinstance(n, AddNode)]
    assert len(adds) == 3 and all((a.act_min, a.act_max) == (0.0, float("inf")) for a in adds)
    assert [wl.name for wl in net.weight_layers() if wl.kind == "conv" and wl.kernel == (1, 1)] == [
        "stack2.shortcut.0",
        "stack3.shortcut.0",
    ]
    im = compress(net, dataset((3, 16, 16)))
    for op in (op for op in im.layers if isinstance(op, ir.Add)):
        assert op.act_min == op.out_zp  # the ReLU after the add
        sa, sb = (im.tensor_scales[t] for t in op.inputs)
        assert sa != sb  # two inputs of their own scales, rescaled to one


def test_option_a_shortcut_is_a_frozen_exact_pass_through():
    torch.manual_seed(0)
    net = capture(random_bn(TinyCifarResNet()), (3, 16, 16))
    pads = [n for n in net.nodes if isinstance(n, ChannelPad)]
    assert len(pads) == 1 and pads[0].out_shape == (16, 8, 8) and (pads[0].before, pads[0].after) == (4, 4)
    assert all(not isinstance(wl, ChannelPad) for wl in net.weight_layers())
    assert any("frozen" in n for n in net.notes)
    im = compress(net, dataset((3, 16, 16)), sparsity=0.5)
    sc = next(op for op in im.layers if op.name == pads[0].name)
    assert isinstance(sc, ir.Conv2D) and list(sc.codebook) == [1] and sc.requant == ir.Requant.from_real(1.0)
    assert sc.in_zp == sc.out_zp and im.tensor_scales[sc.inputs[0]] == im.tensor_scales[sc.output]
    assert int((sc.assign >= 0).sum()) == 8  # not pruned
    x = np.random.default_rng(1).integers(-128, 128, size=(3, *sc.in_shape))
    y = spec_of(sc).simulate(sc, [x])
    want = np.full((3, 16, 8, 8), sc.out_zp)
    want[:, 4:12] = x[:, :, ::2, ::2]
    assert np.array_equal(y, want)


def test_mobilenet_multiplier_relu6_and_same_padding():
    net = capture(random_bn(TinyMobileNet()), (3, 16, 16))
    dw = net.layer("dw")
    assert dw.kind == "dw" and dw.multiplier == 2 and (dw.act_min, dw.act_max) == (0.0, 6.0)
    assert net.layer("same").pads == (1, 1, 2, 2)  # even kernel: the extra row/column at the bottom/right
    assert (net.layer("same").act_min, net.layer("same").act_max) == (-2.0, 2.0)
    im = compress(net, dataset((3, 16, 16)))
    smooth = next(op for op in im.layers if isinstance(op, ir.AvgPool2D) and op.kernel == (3, 3))
    assert smooth.pads == (1, 1, 1, 1) and smooth.out_shape == smooth.in_shape
    qdw = next(op for op in im.layers if isinstance(op, ir.DepthwiseConv2D))
    assert qdw.multiplier == 2 and qdw.act_min == -128 and qdw.act_max == 127
    assert im.tensor_scales[qdw.output] == pytest.approx(6.0 / 255)
    hard = next(op for op in im.layers if op.name == "same")
    s_hard = im.tensor_scales[hard.output]
    assert s_hard == pytest.approx(4.0 / 255) and hard.out_zp in (
        -1,
        0,
    )  # Hardtanh(-2, 2): its bounds are its range
    assert (
        abs((hard.act_min - hard.out_zp) * s_hard + 2.0) <= s_hard
        and abs((hard.act_max - hard.out_zp) * s_hard - 2.0) <= s_hard
    )


def test_autoencoder_on_float_features_has_int8_input():
    net = capture(random_bn(FCAutoencoder()), (32, 1, 1))
    data = dataset((32, 1, 1))
    im = compress(net, data)
    assert im.input_kind == ir.InputKind.INT8 and im.task == "reconstruction"
    lo, hi = data.x.min(), data.x.max()
    assert im.input_scale == pytest.approx((hi - lo) / 255, rel=1e-6)
    assert im.output_len == 32


def test_functional_spellings_capture_exactly():
    class Spellings(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(2, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)
            self.c = nn.Conv2d(4, 4, 1)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            x = torch.relu(x)  # on the (non-negative) input
            y = self.a(x).clamp(min=0)
            z = torch.nn.functional.hardtanh(self.b(y), -1.0, 3.0)
            s = torch.add(y, z).relu_()
            s = torch.nn.functional.max_pool2d(s, 2)
            t = self.bn(s).clip(0, 4)  # BN on a pool output: a 1x1 depthwise conv
            u = s.add(self.c(t))
            g1 = torch.mean(u, dim=[2, 3], keepdim=True).view(u.size(0), -1)
            g2 = torch.nn.functional.adaptive_avg_pool2d(u, 1).flatten(1)
            return torch.log_softmax(self.fc(g1 + g2), dim=1)

    model = random_bn(Spellings())
    net = capture(model, (2, 8, 8))
    x = torch.rand(5, 2, 8, 8)
    with torch.no_grad():
        assert torch.allclose(torch.log_softmax(net(x), 1), model(x), atol=1e-5)
    assert net.input_bounds == (0.0, float("inf"))
    assert any("1x1 depthwise" in n for n in net.notes) and any("softmax dropped" in n for n in net.notes)
    assert net.layer("bn").kind == "dw" and (net.layer("bn").act_min, net.layer("bn").act_max) == (0.0, 4.0)
    data = dataset((2, 8, 8))
    im = compress(net, data, sparsity=0.2)
    check_close(im, net, data)


def test_sensitivity_and_dropout_adjustment_cover_every_weight_layer():
    torch.manual_seed(0)
    net = capture(random_bn(TinyCifarResNet(widths=(4, 8))), (3, 8, 8))
    rng = np.random.default_rng(0)
    data = Dataset("t", rng.integers(0, 256, (64, 3, 8, 8), dtype=np.uint8), rng.integers(0, 10, 64), 1 / 255)
    sens = sensitivity.analyze(net, data, CPU, grid=(0.5,))
    assert set(sens.layers) == {wl.name for wl in net.weight_layers()} and len(sens.layers) == 6
    assert prune.check_masks_hold(net)
    # the frozen shortcut has no parameters: training and clustering never see it
    assert all(not list(n.parameters()) for n in net.nodes if isinstance(n, ChannelPad))


def test_activation_on_the_input():
    torch.manual_seed(0)
    model = nn.Sequential(nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    net = capture(model, (8, 1, 1))
    assert net.input_bounds == (0.0, float("inf")) and len(net.weight_layers()) == 2
    rng = np.random.default_rng(0)
    y = rng.normal(size=(120, 3)).astype(np.float32)
    feats = Dataset("f", rng.normal(size=(120, 8)).astype(np.float32), y, task="regression")
    im = compress(net, feats, sparsity=0.0)
    assert im.input_kind == ir.InputKind.INT8 and im.input_zp == -128  # the ReLU is the input quantization's
    check_close(im, net, feats)
    # on uint8 bytes a ReLU is the identity, but a clamp below the byte range is not
    images = Dataset(
        "b", rng.integers(0, 256, (50, 8, 1, 1), dtype=np.uint8), np.zeros(50, np.int64), 1 / 255
    )
    assert to_integer_model(net, images, QuantConfig(), CPU).input_kind == ir.InputKind.UINT8
    net.input_bounds = (0.0, 0.5)
    with pytest.raises(ModelError, match=r"clamps its input to \[0, 0.5\].*span \[0, 1\]"):
        to_integer_model(net, images, QuantConfig(), CPU)
