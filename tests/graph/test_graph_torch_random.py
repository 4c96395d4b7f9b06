"""Random torch graphs → capture → integer model: the simulator's dequantized outputs follow the
float torch model within the quantization tolerance, and the blob round-trips bit-exactly.

Hypothesis draws small networks from the operator set of real TinyML models: a stem
conv (stride 1–2, symmetric, asymmetric or no padding), depthwise convs with channel
multiplier 1–2, residual blocks with identity or projection shortcuts and a ReLU after
the add, ReLU6/Hardtanh bounds, max and average pools, global average pooling or a
flatten, and a classifier; inputs uint8 images or float features. CI runs the same 25
graphs every time; ``MCU_DC_EXAMPLES=500`` explores fresh ones.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from mcu_dc.compression import cluster
from mcu_dc.compression.capture import capture
from mcu_dc.compression.cluster import ClusterConfig
from mcu_dc.compression.quantize import QuantConfig, to_integer_model
from mcu_dc.core.blob import decode_blob, encode_blob
from mcu_dc.core.simulator import simulate
from mcu_dc.data.datasets import Dataset


class Block(nn.Module):
    """One random block: a plain, depthwise-separable or residual stage."""

    def __init__(self, kind: str, cin: int, cout: int, stride: int, act: str) -> None:
        super().__init__()
        self.kind, self.act = kind, act
        if kind == "dw":
            m = 1 if cout == cin else 2
            self.a = nn.Conv2d(cin, cin * m, 3, stride, 1, groups=cin)
            self.b = nn.Conv2d(cin * m, cout, 1)
            self.bn = nn.BatchNorm2d(cout)
        else:
            self.a = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b = nn.Conv2d(cout, cout, 3, 1, 1)
            self.bn = nn.BatchNorm2d(cout)
        self.short: nn.Module | None = None
        if kind == "res":
            self.short = nn.Identity() if (stride == 1 and cin == cout) else nn.Conv2d(cin, cout, 1, stride)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return {"relu": F.relu, "relu6": F.relu6, "hardtanh": lambda v: F.hardtanh(v, -1.0, 2.0)}[self.act](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.b(F.relu(self.a(x))))
        if self.short is not None:
            y = y + self.short(x)
        return self._act(y)


class RandomNet(nn.Module):
    def __init__(self, p: dict) -> None:
        super().__init__()
        c = p["c"]
        self.pad = nn.ZeroPad2d(p["pad"])
        self.stem = nn.Conv2d(p["in_c"], c, p["k"], p["stride"])
        self.blocks = nn.Sequential(
            *[Block(kind, c, c if i < len(p["blocks"]) - 1 else p["c_out"], s, p["act"])
              for i, (kind, s) in enumerate(p["blocks"])]
        )  # fmt: skip
        self.pool = p["pool"]
        self.fc = nn.LazyLinear(p["classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(self.pad(x)))
        if self.pool == "max":
            x = F.max_pool2d(x, 2)
        elif self.pool == "avg":
            x = F.avg_pool2d(x, 2)
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


KINDS = ("plain", "dw", "res")


@st.composite
def nets(draw: st.DrawFn) -> dict:
    hw = draw(st.integers(8, 14))
    return {
        "in_c": draw(st.sampled_from([1, 3])),
        "hw": hw,
        "c": draw(st.sampled_from([3, 4, 8])),
        "c_out": draw(st.sampled_from([4, 6])),
        "k": draw(st.sampled_from([1, 3])),
        "stride": draw(st.sampled_from([1, 2])),
        "pad": draw(st.sampled_from([(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 0, 1), (1, 2, 0, 1)])),
        "pool": draw(st.sampled_from(["none", "max", "avg"])),
        "blocks": draw(
            st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from([1, 2])), min_size=1, max_size=2)
        ),
        "act": draw(st.sampled_from(["relu", "relu6", "hardtanh"])),
        "classes": draw(st.integers(2, 10)),
        "float_in": draw(st.booleans()),
        "seed": draw(st.integers(0, 1000)),
    }


def _data(p: dict, n: int = 128) -> Dataset:
    rng = np.random.default_rng(p["seed"])
    shape = (n, p["in_c"], p["hw"], p["hw"])
    if p["float_in"]:
        return Dataset("rand", rng.normal(0.0, 1.0, shape).astype(np.float32), np.zeros(n, np.int64))
    return Dataset("rand", rng.integers(0, 256, shape, dtype=np.uint8), np.zeros(n, np.int64), 1 / 255)


@given(nets())
@settings(
    max_examples=int(os.environ.get("MCU_DC_EXAMPLES", "25")),
    derandomize=os.environ.get("MCU_DC_EXAMPLES") is None,  # CI: the same 25 graphs every run
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_random_torch_graph_quantizes_within_tolerance(p: dict) -> None:
    torch.manual_seed(p["seed"])
    model = RandomNet(p)
    data = _data(p)
    x = torch.from_numpy(data.float_inputs())
    with torch.no_grad():
        model(x[:2])  # materialize the lazy classifier
    model.eval()
    net = capture(model, data.input_shape)
    with torch.no_grad():  # the captured graph (BN folded, activations fused) computes what the module does
        want, got = model(x).numpy(), net(x).numpy()
    assert np.allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())))
    cluster.cluster_net(net, ClusterConfig(conv_bits=8, fc_bits=8))
    im = to_integer_model(net, data, QuantConfig(), torch.device("cpu"), "random")
    im.validate()
    y = simulate(im, data.simulator_inputs())
    deq = (y.astype(np.float64) - im.output_zp) * im.output_scale
    with torch.no_grad():
        ref = net(x).numpy().astype(np.float64)
    span = max(float(ref.max() - ref.min()), 1e-6)
    # tolerance: a few output steps plus the error that int8 activations accumulate through the graph
    assert np.abs(deq - ref).max() <= 0.1 * span + 4 * im.output_scale
    back = decode_blob(encode_blob(im))
    assert np.array_equal(simulate(back, data.simulator_inputs()), y)
