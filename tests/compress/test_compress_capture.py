import pytest
import torch
from torch import nn

from mcu_dc.compression.capture import capture
from mcu_dc.compression.models import LeNet5, LeNet300, build_model
from mcu_dc.errors import ModelError


def test_lenets_capture_exactly():
    torch.manual_seed(0)
    for m, n_params in ((LeNet300(), 266610), (LeNet5(), 431080)):
        net = capture(m, (1, 28, 28))
        assert net.n_params() == n_params == sum(p.numel() for p in m.parameters())
        x = torch.rand(4, 1, 28, 28)
        assert torch.allclose(net(x), m(x), atol=1e-6)


def test_lenet5_layers_and_relu_fusion():
    net = capture(LeNet5(), (1, 28, 28))
    wls = net.weight_layers()
    assert [w.name for w in wls] == ["conv1", "conv2", "fc1", "fc2"]
    assert [w.relu for w in wls] == [False, False, True, False]
    assert wls[2].in_shape == (50, 4, 4)


def test_batchnorm_is_folded_and_relu_after_pool_fused():
    torch.manual_seed(1)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 8),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )
    m.train()
    for _ in range(3):
        m(torch.rand(16, 1, 8, 8))  # populate running stats
    m.eval()
    net = capture(m, (1, 8, 8))
    x = torch.rand(5, 1, 8, 8)
    assert torch.allclose(net(x), m(x), atol=1e-5)
    assert net.weight_layers()[0].relu is True


def test_unsupported_module_is_named():
    class WithLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.rnn = nn.LSTM(4, 4)

        def forward(self, x):
            return self.rnn(self.fc(x))[0]

    with pytest.raises(ModelError) as e:
        capture(WithLSTM(), (1, 1, 4))
    assert "'rnn'" in str(e.value) and "LSTM" in str(e.value)


def test_nested_unsupported_module_qualified_name():
    m = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(4, 4), nn.Tanh()))
    with pytest.raises(ModelError, match=r"'1\.1'.*Tanh"):
        capture(m, (1, 2, 2))


def test_add_of_flattened_and_unflattened_layouts_is_refused():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)

        def forward(self, x):
            x = x.flatten(1)
            return self.b(self.a(x)) + x

    with pytest.raises(ModelError, match=r"fx node 'add'.*different shapes.*\(N, 4, 1, 1\).*\(N, 1, 2, 2\)"):
        capture(Skip(), (1, 2, 2))


def test_factory_loading(tmp_path):
    f = tmp_path / "mymodel.py"
    f.write_text(
        "from torch import nn\ndef make():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))\n"
    )
    m = build_model(f"{f}:make", (1, 8, 8))
    assert capture(m, (1, 8, 8)).n_params() == 650
    with pytest.raises(ModelError, match="no callable"):
        build_model(f"{f}:nothere")
    with pytest.raises(ModelError, match="unknown model"):
        build_model("resnet50")
