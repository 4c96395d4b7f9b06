"""Models capture refuses: one clear paragraph each, naming the module or fx node that blocks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mcu_dc.compression.capture import capture
from mcu_dc.errors import ModelError


def refused(model: nn.Module, shape=(4, 8, 8)) -> str:
    with pytest.raises(ModelError) as e:
        capture(model, shape)
    msg = str(e.value)
    assert "\n" not in msg.strip()  # one paragraph
    return msg


class _Wrap(nn.Module):
    def __init__(self, fn, **mods):
        super().__init__()
        for k, v in mods.items():
            setattr(self, k, v)
        self.fn = fn

    def forward(self, x):
        return self.fn(self, x)


def test_unsupported_function_is_named():
    m = _Wrap(lambda s, x: torch.sigmoid(s.conv(x)).flatten(1), conv=nn.Conv2d(4, 4, 3))
    msg = refused(m)
    assert "torch.sigmoid()" in msg and "fx node 'sigmoid'" in msg and "not a supported operation" in msg


def test_unsupported_module_inside_a_block_is_named():
    block = nn.Sequential(nn.Conv2d(4, 4, 3), nn.GELU())
    msg = refused(nn.Sequential(block, nn.Flatten(), nn.Linear(144, 2)))
    assert "module '0.1' (torch.nn.GELU)" in msg


def test_two_inputs_are_refused():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x, y):
            return self.fc(x.flatten(1) + y.flatten(1))

    msg = refused(Two(), (1, 2, 2))
    assert "Two.forward" in msg and "second input 'y'" in msg and "exactly one input" in msg


def test_add_of_mismatched_shapes_names_the_add():
    class Mismatch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 8, 3, padding=1)
            self.b = nn.Conv2d(4, 16, 3, padding=1)

        def forward(self, x):
            return (self.a(x) + self.b(x)).flatten(1)

    msg = refused(Mismatch())
    assert "fx node 'add'" in msg and "operator.add" in msg

    class Broadcast(Mismatch):
        def forward(self, x):
            return (self.a(x) + F.adaptive_avg_pool2d(self.a(x), 1)).flatten(1)

    msg = refused(Broadcast())
    assert "is called twice" in msg  # the same conv used twice is caught first

    class Broadcast2(Mismatch):
        def forward(self, x):
            y = self.a(x)
            return (y + F.adaptive_avg_pool2d(y, 1)).flatten(1)

    msg = refused(Broadcast2())
    assert (
        "fx node 'add'" in msg
        and "different shapes (N, 8, 8, 8) and (N, 8, 1, 1)" in msg
        and "no broadcasting" in msg
    )


def test_grouped_conv_that_is_not_depthwise_is_refused():
    m = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Flatten(), nn.Linear(144, 2))
    msg = refused(m)
    assert "module '0' (torch.nn.Conv2d)" in msg and "groups=2 of 4 input channels" in msg
    assert "neither standard" in msg and "depthwise" in msg


def test_shared_module_is_refused():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return self.conv(torch.relu(self.conv(x))).flatten(1)

    msg = refused(Shared())
    assert "module 'conv'" in msg and "called twice" in msg and "own module" in msg


def test_unsupported_reshape_and_pooling_options_are_named():
    m = _Wrap(lambda s, x: s.conv(x).view(x.size(0), 2, -1).flatten(1), conv=nn.Conv2d(4, 4, 3))
    assert "fx node 'view'" in refused(m) and "reshapes" in refused(m)
    m = nn.Sequential(nn.Conv2d(4, 4, 3), nn.MaxPool2d(2, padding=1), nn.Flatten(), nn.Linear(64, 2))
    assert "module '1' (torch.nn.MaxPool2d)" in refused(m)
    m = nn.Sequential(
        nn.Conv2d(4, 4, 3), nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.Flatten(), nn.Linear(144, 2)
    )
    assert "count_include_pad=False" in refused(m)
    m = nn.Sequential(nn.Conv2d(4, 4, 3, dilation=2), nn.Flatten(), nn.Linear(64, 2))
    assert "dilation" in refused(m)


def test_activation_that_cannot_be_fused_is_named():
    class PreAct(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(256, 2)

        def forward(self, x):
            y = self.conv(x)
            return self.fc((torch.relu(y) + y).flatten(1))

    msg = refused(PreAct())
    assert "fx node 'relu'" in msg and "module 'conv'" in msg and "also feeds other operations" in msg


def test_softmax_in_the_middle_and_value_dependent_code_are_refused():
    m = _Wrap(
        lambda s, x: s.fc(torch.softmax(s.conv(x).flatten(1), 1)), conv=nn.Conv2d(4, 2, 8), fc=nn.Linear(2, 2)
    )
    assert "not the model's last operation" in refused(m)

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _Wrap(lambda s, x: x if x.sum() > 0 else -x)
            self.fc = nn.Linear(256, 2)

        def forward(self, x):
            return self.fc(self.inner(x).flatten(1))

    msg = refused(Branchy())
    assert "cannot trace Branchy" in msg and "module 'inner'" in msg


def test_multiple_outputs_are_refused():
    m = _Wrap(lambda s, x: (s.fc(x.flatten(1)), x), fc=nn.Linear(256, 2))
    assert "exactly one output" in refused(m)
