"""A user's graph model through the CLI: ``mcu-dc compress --model file.py:factory`` on a
residual, depthwise network (sensitivity-driven pruning of every weight layer, clustering,
Huffman coding), ``mcu-dc report`` showing the graph, ``mcu-dc simulate``; and a model that
cannot be captured refused in one paragraph, with nothing written."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mcu_dc.cli import main
from mcu_dc.core.model_file import load

FACTORY = textwrap.dedent(
    """
    import torch.nn.functional as F
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.pw = nn.Conv2d(8, 8, 1)
            self.pool = nn.AvgPool2d(2)
            self.fc = nn.Linear(8 * 4 * 4, 10)

        def forward(self, x):
            x = F.relu(self.bn(self.stem(x)))
            x = F.relu(x + self.pw(F.relu6(self.dw(x))))
            return self.fc(self.pool(x).flatten(1))


    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.act = nn.GELU()
            self.fc = nn.Linear(4 * 6 * 6, 10)

        def forward(self, x):
            return self.fc(self.act(self.conv(x)).flatten(1))


    def make():
        return Net()


    def bad():
        return Bad()
    """
)

CONFIG = """
seed = 0
val_size = 200
[dense]
epochs = 8
lr = 0.01
optimizer = "adam"
weight_decay = 0.0
batch_size = 64
[prune]
rounds = 1
budget = 0.05
[prune.retrain]
epochs = 2
lr = 0.005
optimizer = "adam"
weight_decay = 0.0
batch_size = 64
[finetune]
epochs = 1
lr = 0.0001
optimizer = "adam"
weight_decay = 0.0
batch_size = 64
"""


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("graphcli")
    (d / "net.py").write_text(FACTORY, encoding="utf-8")
    (d / "cfg.toml").write_text(CONFIG, encoding="utf-8")
    out = d / "net.mcudc"
    argv = [
        "compress",
        "--model",
        f"{d / 'net.py'}:make",
        "--dataset",
        "digits",
        "--config",
        str(d / "cfg.toml"),
    ]
    assert main([*argv, "--out", str(out), "--quiet", "--json"]) == 0
    return d, out


def test_graph_model_compresses_from_the_cli(graph_run, capsys) -> None:
    _, out = graph_run
    cm = load(out)
    ops = [type(op).__name__ for op in cm.model.layers]
    assert ops.count("Add") == 1 and "DepthwiseConv2D" in ops and "AvgPool2D" in ops
    sparsity = cm.meta["sparsity"]
    assert set(sparsity) == {"stem", "dw", "pw", "fc"}  # every weight layer pruned with sensitivity
    assert all(0.0 < v < 1.0 for v in sparsity.values())
    assert cm.meta["accuracy"]["integer"] > 0.5
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "## Graph" in text and "| ADD |" in text and "arena offset" in text
    assert main(["report", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    add = next(r for r in rep["layers"] if r["op"] == "ADD")
    assert len(add["inputs"]) == 2 and rep["format_version"] == 2
    assert max(t["arena_off"] + t["bytes"] for t in rep["tensors"]) <= rep["arena_bytes"]
    assert main(["simulate", str(out), "--dataset", "digits", "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)
    assert sim["accuracy"] == pytest.approx(cm.meta["accuracy"]["integer"])


def test_uncapturable_model_is_one_paragraph_and_writes_nothing(graph_run, capsys) -> None:
    d, _ = graph_run
    out = d / "bad.mcudc"
    rc = main(
        ["compress", "--model", f"{d / 'net.py'}:bad", "--dataset", "digits", "--out", str(out), "--quiet"]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "act" in err and "GELU" in err and "Traceback" not in err
    assert err.strip().count("\n") <= 1
    assert not out.exists() and not list(d.glob(".*.tmp"))
