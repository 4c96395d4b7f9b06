"""Same command, same seed → the same model bytes (issue 12: the model used to be built, with its
random initial weights, before the seed was set, and wall-clock timings went into the file)."""

from __future__ import annotations

import json

import torch
from tiny_config import TINY_CONFIG

import mcu_dc
from mcu_dc.cli import main

CONFIG = TINY_CONFIG


def test_same_command_gives_the_same_bytes(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(CONFIG)
    outs = []
    for i in range(2):
        torch.manual_seed(1000 + i)  # whatever the global generators hold before the run
        out = tmp_path / f"m{i}.mcudc"
        args = ["compress", "--model", "lenet300", "--dataset", "digits", "--config", str(cfg)]
        assert main([*args, "--out", str(out), "--json", "--quiet"]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["timings_s"]["total"] > 0  # timings are in the run's report ...
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert "timings_s" not in mcu_dc.load(tmp_path / "m0.mcudc").meta  # ... never in the file
    # a different seed gives a different model (the test can fail)
    cfg.write_text("seed = 1\n" + CONFIG)
    out = tmp_path / "m2.mcudc"
    args = ["compress", "--model", "lenet300", "--dataset", "digits", "--config", str(cfg)]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    assert out.read_bytes() != outs[0]
