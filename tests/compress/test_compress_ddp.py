"""Data-parallel training under torchrun (issue 13), on the CPU with gloo and two processes.

The file is also the workers' script: ``python -m torch.distributed.run --nproc_per_node=2
tests/compress/test_compress_ddp.py OUT`` trains small nets on every rank and saves each rank's
state, which the tests compare bit for bit (and with a single-process run of the same code).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_config import TINY_CONFIG
from torch import nn

pytestmark = pytest.mark.slow

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
TIMEOUT_S = 300

CONFIG = TINY_CONFIG


def _env() -> dict[str, str]:
    """This environment without a torchrun run's variables (the children get torchrun's own)."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def train_steps(out: Path) -> None:
    """A few steps of every kind of training the pipeline does, saved per rank (``<tag>_rank<r>.pt``).

    ``masked``: pruning masks, shift augmentation, gradient clipping, SGD, 129 samples in batches of
    32 (the last batch has one sample: one rank gets none). ``dqc``: DQC codebooks re-estimated every
    second step (on_step) and distillation from the dense model. ``dropout``: a net with dropout
    (each rank draws its own dropout masks; the weights must stay identical anyway).
    """
    from mcu_dc.compression import cluster, distributed, prune
    from mcu_dc.compression.capture import capture
    from mcu_dc.compression.cluster import ClusterConfig
    from mcu_dc.compression.distill import Distiller, make_teacher
    from mcu_dc.compression.seeding import seed_everything
    from mcu_dc.compression.train import TrainConfig, train
    from mcu_dc.data import load_train_test

    rank = distributed.context().rank
    cpu = torch.device("cpu")
    tr, _ = load_train_test("digits")
    data = tr.subset(np.arange(129))
    seed_everything(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    net = capture(model, data.input_shape)
    losses: dict[str, list[float]] = {}
    losses["dense"] = train(net, data, TrainConfig(epochs=2, lr=0.05, batch_size=32), cpu, progress=False)
    teacher = make_teacher(net)
    for wl in net.weight_layers():
        prune.prune_to_sparsity(wl, 0.5)
    cfg = TrainConfig(epochs=2, lr=0.05, batch_size=32, augment_shift=1, grad_clip=0.5, seed=3)
    losses["masked"] = train(net, data, cfg, cpu, progress=False)
    torch.save(_state(net), out / f"masked_rank{rank}.pt")

    cc = ClusterConfig(fc_bits=3, conv_bits=3, mode="dqc", dqc_update_every=2)
    cluster.cluster_net(net, cc)
    kd = Distiller(teacher, temperature=4.0, alpha=0.5)
    cfg = TrainConfig(epochs=1, lr=0.01, batch_size=32, seed=4)
    losses["dqc"] = train(
        net, data, cfg, cpu, progress=False, distiller=kd, on_step=lambda n, s: cluster.dqc_update(n, cc)
    )
    torch.save(_state(net), out / f"dqc_rank{rank}.pt")

    seed_everything(1)
    drop = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
    dnet = capture(drop, data.input_shape)
    losses["dropout"] = train(dnet, data, TrainConfig(epochs=2, lr=0.05, batch_size=32), cpu, progress=False)
    torch.save(_state(dnet), out / f"dropout_rank{rank}.pt")
    (out / f"losses_rank{rank}.json").write_text(json.dumps(losses))


@pytest.fixture(scope="module")
def ddp_steps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp_steps")
    cmd = [*TORCHRUN, __file__, str(out)]
    subprocess.run(cmd, check=True, timeout=TIMEOUT_S, env=_env(), capture_output=True, cwd=out)
    return out


def test_weights_and_buffers_bit_identical_on_every_rank(ddp_steps: Path) -> None:
    for tag in ("masked", "dqc", "dropout"):
        a = torch.load(ddp_steps / f"{tag}_rank0.pt")
        b = torch.load(ddp_steps / f"{tag}_rank1.pt")
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{tag}: {k} differs between rank 0 and rank 1"
        # BatchNorm is folded into the weights at capture: the only buffers are masks and assignments
        assert {k.rsplit(".", 1)[1] for k in a} <= {"weight", "bias", "mask", "assign", "centroids"}
    r0 = json.loads((ddp_steps / "losses_rank0.json").read_text())
    assert r0 == json.loads((ddp_steps / "losses_rank1.json").read_text())
    # the pruned weights stayed pruned on both ranks
    st = torch.load(ddp_steps / "masked_rank0.pt")
    for k in st:
        if k.endswith(".mask"):
            assert 0 < float(st[k].mean()) < 0.6
            assert torch.all(st[k.replace(".mask", ".weight")][st[k] == 0] == 0)


def test_ddp_steps_match_one_process(
    ddp_steps: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The split batches, the loss weighting (each epoch ends with a batch of one sample: rank 0
    gets it, rank 1 none) and the gradient averaging give the single-process steps up to float
    rounding."""
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    train_steps(tmp_path)
    one = json.loads((tmp_path / "losses_rank0.json").read_text())
    ddp = json.loads((ddp_steps / "losses_rank0.json").read_text())
    for tag in ("dense", "masked", "dqc"):
        np.testing.assert_allclose(ddp[tag], one[tag], rtol=1e-4, err_msg=tag)
    single = torch.load(tmp_path / "masked_rank0.pt")
    both = torch.load(ddp_steps / "masked_rank0.pt")
    for k in single:
        torch.testing.assert_close(both[k], single[k], rtol=1e-4, atol=1e-5)


def test_torchrun_compress_writes_one_model(tmp_path: Path) -> None:
    from mcu_dc.cli import main

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(CONFIG)
    args = ["compress", "--model", "lenet300", "--dataset", "digits", "--config", str(cfg), "--json"]
    out_dir = tmp_path / "ddp"
    out_dir.mkdir()
    cmd = [*TORCHRUN, "-m", "mcu_dc", *args, "--out", str(out_dir / "m.mcudc")]
    run = subprocess.run(
        cmd, check=True, timeout=TIMEOUT_S, env=_env(), capture_output=True, text=True, cwd=out_dir
    )
    rep = json.loads(run.stdout)  # one report: rank 1 printed nothing
    assert run.stderr.count("mcu-dc compress: wrote ") == 1
    assert sorted(p.name for p in tmp_path.rglob("*.mcudc")) == ["m.mcudc"]

    assert main([*args, "--out", str(tmp_path / "one.mcudc"), "--quiet"]) == 0
    import mcu_dc

    one = mcu_dc.load(tmp_path / "one.mcudc").meta["accuracy"]
    ddp = mcu_dc.load(out_dir / "m.mcudc").meta["accuracy"]
    assert ddp == rep["accuracy"]
    for stage in ("dense", "pruned", "integer"):
        assert abs(ddp[stage] - one[stage]) < 0.03, (stage, ddp, one)
    assert ddp["integer"] > 0.85


if __name__ == "__main__":  # a torchrun worker (see the module docstring)
    from mcu_dc.compression import distributed

    distributed.setup(torch.device("cpu"))
    try:
        train_steps(Path(sys.argv[1]))
    finally:
        distributed.shutdown()
