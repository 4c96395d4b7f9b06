"""mcu_dc.progress: a bar on a terminal, plain lines in a log, nothing when quiet; and the loops that
use it (training, sensitivity analysis, device verification, simulation). Time is a fake clock:
no test sleeps."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcu_dc.errors import ConfigError
from mcu_dc.progress import (
    INTERVAL_ENV,
    ProgressSettings,
    as_settings,
    format_duration,
    settings_from_args,
    track,
)

ROOT = Path(__file__).resolve().parents[2]
ESCAPES = ("\r", "\x1b")


class FakeClock:
    """A monotonic clock that moves ``step`` seconds on every reading."""

    def __init__(self, step: float = 0.0) -> None:
        self.t = 0.0
        self.step = step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def _counts(lines: list[str], per_epoch: int) -> list[int]:
    """The overall step of each ``epoch e/E, batch b/B`` line."""
    out = []
    for line in lines:
        m = re.search(r"epoch (\d+)/\d+, batch (\d+)/\d+", line)
        if m:
            out.append((int(m.group(1)) - 1) * per_epoch + int(m.group(2)))
    return out


def test_plain_lines_in_a_log_every_interval_with_the_eta_over_the_whole_stage() -> None:
    buf, clock = io.StringIO(), FakeClock()
    settings = ProgressSettings(stream=buf, interval_s=10.0, clock=clock)
    with track("dense", 3 * 50, unit="batch", per_epoch=50, settings=settings) as p:
        for i in range(150):
            clock.t += 0.5  # 2 batches a second
            p.update(1, loss=1.0 / (i + 1))
    text = buf.getvalue()
    assert not any(e in text for e in ESCAPES)
    lines = _lines(buf)
    assert lines[0] == "dense: starting, 3 epochs of 50 batches"
    # one line per 10 s (20 batches) while running, then the end line
    assert len(lines) == 1 + 7 + 1
    assert lines[1] == "dense: epoch 1/3, batch 20/50 (40.0 %), loss 0.05, 2.0 batch/s, ETA 1m05s"
    middle = lines[1:-1]
    assert all(re.search(r", ETA \d+(m\d\ds)?s?$", line) for line in middle)
    counts = _counts(middle, 50)
    assert counts == [20, 40, 60, 80, 100, 120, 140]
    assert "epoch 3/3, batch 40/50 (80.0 %)" in lines[-2]
    end = "dense: done, epoch 3/3, batch 50/50 (100.0 %), loss 0.00667, 2.0 batch/s, 1m15s in all"
    assert lines[-1] == end


def test_interval_zero_writes_a_line_per_step_and_an_early_end_says_stopped() -> None:
    buf = io.StringIO()
    settings = ProgressSettings(stream=buf, interval_s=0.0, clock=FakeClock(step=1.0))
    with pytest.raises(RuntimeError), track("verify on b", 10, unit="inference", settings=settings) as p:
        for i in range(4):
            p.update(1, mismatches=0)
            if i == 3:
                raise RuntimeError("link lost")
    lines = _lines(buf)
    assert lines[0] == "verify on b: starting, 10 inferences"
    assert [int(re.search(r"inference (\d+)/10", line).group(1)) for line in lines[1:]] == [1, 2, 3, 4, 4]
    assert lines[1] == "verify on b: inference 1/10 (10.0 %), mismatches 0, 1.0 inference/s, ETA 9s"
    assert lines[-1].startswith("verify on b: stopped at inference 4/10 (40.0 %)")


def test_a_terminal_gets_a_tqdm_bar() -> None:
    tty = FakeTTY()
    with track("dense", 40, unit="batch", per_epoch=20, settings=ProgressSettings(stream=tty)) as p:
        assert p.active
        for _ in range(40):
            p.update(1, loss=0.5)
    text = tty.getvalue()
    assert "\r" in text and "dense" in text and "/40" in text and "batch/s" in text
    assert "starting" not in text  # not the log format


def test_style_can_be_forced() -> None:
    tty = FakeTTY()
    with track("x", 2, unit="step", settings=ProgressSettings(stream=tty, style="lines")) as p:
        p.update(2)
    assert not any(e in tty.getvalue() for e in ESCAPES) and "x: done" in tty.getvalue()
    log = io.StringIO()
    with track("x", 2, unit="step", settings=ProgressSettings(stream=log, style="bar")) as p:
        p.update(2)
    assert "\r" in log.getvalue()
    with pytest.raises(ConfigError, match="style"):
        ProgressSettings(style="fancy")


def test_quiet_writes_nothing() -> None:
    for stream in (io.StringIO(), FakeTTY()):
        with track("dense", 100, unit="batch", settings=ProgressSettings(enabled=False, stream=stream)) as p:
            assert not p.active
            for _ in range(100):
                p.update(1, loss=0.1)
        assert stream.getvalue() == ""
    buf = io.StringIO()
    with track("empty", 0, settings=ProgressSettings(stream=buf)) as p:  # nothing to do: nothing said
        p.update(0)
    assert buf.getvalue() == ""


def test_settings_from_bools_args_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert as_settings(True).enabled and not as_settings(False).enabled
    s = ProgressSettings(interval_s=3.0)
    assert as_settings(s) is s
    import argparse

    assert not settings_from_args(argparse.Namespace(quiet=True)).enabled
    assert settings_from_args(argparse.Namespace(quiet=False)).enabled
    monkeypatch.setenv(INTERVAL_ENV, "0")
    assert ProgressSettings().interval_s == 0.0
    monkeypatch.setenv(INTERVAL_ENV, "soon")
    with pytest.raises(ConfigError, match=INTERVAL_ENV):
        ProgressSettings()
    assert not settings_from_args(argparse.Namespace(quiet=True)).enabled  # quiet never reads it
    monkeypatch.delenv(INTERVAL_ENV)
    assert ProgressSettings().interval_s == 10.0


def test_format_duration() -> None:
    got = [format_duration(s) for s in (0, 9.4, 65, 3599, 3600 + 125)]
    assert got == ["0s", "9s", "1m05s", "59m59s", "1h02m"]
    assert format_duration(float("inf")) == "?"


def test_slow_steps_show_seconds_per_step() -> None:
    buf = io.StringIO()
    clock = FakeClock(step=0.0)
    settings = ProgressSettings(stream=buf, interval_s=0, clock=clock)
    with track("sens", 3, unit="point", settings=settings) as p:
        clock.t += 4.0
        p.update(1, layer="fc1", sparsity=0.5)
    assert "sens: point 1/3 (33.3 %), layer fc1, sparsity 0.5, 4.0 s/point, ETA 8s" in _lines(buf)


# ---------------------------------------------------------------- the loops that report


def _toy_data(n: int = 96):  # type: ignore[no-untyped-def]
    from mcu_dc.data.datasets import Dataset

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 1, 4, 4), dtype=np.uint8)
    return Dataset("toy", x, rng.integers(0, 3, size=n), input_scale=1 / 255, num_classes=3)


def _toy_net():  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    from mcu_dc.compression.capture import capture

    torch.manual_seed(0)
    return capture(nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)), (1, 4, 4))


def test_training_reports_every_batch_over_all_epochs() -> None:
    import torch

    from mcu_dc.compression.train import TrainConfig, train

    buf = io.StringIO()
    settings = ProgressSettings(stream=buf, interval_s=0, clock=FakeClock(step=1.0))
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01)  # 3 batches per epoch
    losses = train(_toy_net(), _toy_data(), cfg, torch.device("cpu"), desc="dense", progress=settings)
    lines = _lines(buf)
    assert lines[0] == "dense: starting, 3 epochs of 3 batches"
    assert _counts(lines[1:-1], 3) == list(range(1, 9))  # the 9th is the end line
    # the clock moves 1 s per reading: after the first batch 1 s passed and 8 batches are left
    assert lines[1].startswith("dense: epoch 1/3, batch 1/3 (33.3 %), loss ") and lines[1].endswith(
        "1.0 batch/s, ETA 8s"
    )
    assert lines[-1].startswith("dense: done, epoch 3/3, batch 3/3 (100.0 %), loss ")
    assert f"loss {losses[-1]:.3g}," in lines[-1]  # the epoch's mean loss
    assert not any(e in buf.getvalue() for e in ESCAPES)


def test_sensitivity_reports_every_layer_and_sparsity_point() -> None:
    import torch

    from mcu_dc.compression.sensitivity import analyze

    buf = io.StringIO()
    settings = ProgressSettings(stream=buf, interval_s=0, clock=FakeClock(step=1.0))
    sens = analyze(_toy_net(), _toy_data(), torch.device("cpu"), (0.5, 0.8), progress=settings, desc="sens")
    lines = _lines(buf)
    assert lines[0] == "sens: starting, 4 points"
    names = list(sens.layers)
    pattern = r"point (\d)/4 \(.*?\), layer (\w+), sparsity ([\d.]+)"
    assert [re.search(pattern, x).groups() for x in lines[1:4]] == [  # type: ignore[union-attr]
        ("1", names[0], "0.5"),
        ("2", names[0], "0.8"),
        ("3", names[1], "0.5"),
    ]
    assert lines[-1].startswith("sens: done, point 4/4 (100.0 %)")


def _digits_model():  # type: ignore[no-untyped-def]
    """A random sparse 64-16-10 integer network for the 8x8 digits (untrained)."""
    from mcu_dc.core.ir import FC, IntegerModel, Requant
    from mcu_dc.core.model_file import CompressedModel

    rng = np.random.default_rng(0)

    def fc(name: str, shape: tuple[int, int, int], out: int) -> FC:
        a = rng.integers(0, 16, size=(out, int(np.prod(shape)))).astype(np.int16)
        a[rng.random(a.shape) > 0.5] = -1
        return FC(name, shape, out, rng.integers(-100, 100, size=16).astype(np.int8), a,
                  rng.integers(-1000, 1000, size=out).astype(np.int32), Requant.from_real(0.01), -128, -128)

    layers = [fc("fc1", (1, 8, 8), 16), fc("fc2", (16, 1, 1), 10)]
    return CompressedModel(IntegerModel(layers, (1, 8, 8), 1 / 16, 0.1, -128, name="digits16"))


class _EchoDevice:
    """A device that answers every inference with the simulator's output (device-side stand-in)."""

    def __init__(self, cm) -> None:  # type: ignore[no-untyped-def]
        from mcu_dc.device.harness import LinkStats

        self.cm = cm
        self.stats = LinkStats()
        info = {"counter_unit": "instructions", "board": "fake", "model_hash": cm.model_hash}
        self.info = type("Info", (), info)

    def check_model(self, model_hash: int):  # type: ignore[no-untyped-def]
        return self.info

    def infer(self, data: bytes) -> tuple[int, bytes]:
        from mcu_dc.core.simulator import simulate

        x = np.frombuffer(data, dtype=np.uint8).reshape(1, -1)  # a UINT8 model gets the raw bytes
        return 1000, simulate(self.cm.model, x).tobytes()


def test_device_verification_reports_every_inference() -> None:
    from mcu_dc.data.datasets import load_dataset
    from mcu_dc.device.harness import run_inputs

    cm = _digits_model()
    ds = load_dataset("digits", "test")
    buf = io.StringIO()
    settings = ProgressSettings(stream=buf, interval_s=0, clock=FakeClock(step=1.0))
    report = run_inputs(_EchoDevice(cm), cm, ds.images[:12], ds.labels[:12], model_hash=cm.model_hash,
                        progress=settings, desc="verify on fake")  # fmt: skip
    assert report.bit_exact == 12
    lines = _lines(buf)
    assert lines[0] == "verify on fake: starting, 12 inferences"
    assert [int(re.search(r"inference (\d+)/12", x).group(1)) for x in lines[1:-1]] == list(range(1, 12))
    assert "mismatches 0" in lines[1] and "ETA 11s" in lines[1]
    assert lines[-1].startswith("verify on fake: done, inference 12/12 (100.0 %), mismatches 0")


def test_long_running_commands_take_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mcu_dc.cli import build_parser, main

    model = tmp_path / "d.mcudc"
    _digits_model().save(model)
    parser = build_parser()
    for argv in (
        ["compress", "--model", "lenet300", "--dataset", "digits", "--out", "x"],
        ["verify", str(model), "--board", "qemu-mps2-an386"],
        ["demo"],
        ["simulate", str(model), "--dataset", "digits"],
        ["encode", str(model), "y", "--objective", "speed", "--dataset", "digits"],
    ):
        assert settings_from_args(parser.parse_args(argv)).enabled, argv
        assert not settings_from_args(parser.parse_args([*argv, "--quiet"])).enabled, argv
    assert not settings_from_args(parser.parse_args(["verify", "m", "--board", "b", "--no-progress"])).enabled
    # simulate: progress lines on stderr (a pipe here), none with --quiet; the result on stdout either way
    capsys.readouterr()
    assert main(["simulate", str(model), "--dataset", "digits", "--limit", "300"]) == 0
    out, err = capsys.readouterr()
    assert "300 digits test images" in out
    assert "simulate d.mcudc: starting, 300 inputs" in err and "simulate d.mcudc: done, input 300/300" in err
    assert main(["simulate", str(model), "--dataset", "digits", "--limit", "300", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "300 digits test images" in out and err == ""
    argv = ["encode", str(model), str(tmp_path / "e.mcudc"), "--objective", "speed", "--dataset", "digits"]
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_simulate_in_chunks_gives_the_same_outputs_and_metrics() -> None:
    from mcu_dc.commands.simulate import metrics_with_progress
    from mcu_dc.data.datasets import load_dataset
    from mcu_dc.data.metrics import simulator_metrics

    cm = _digits_model()
    ds = load_dataset("digits", "test")
    buf = io.StringIO()
    y, m = metrics_with_progress(cm.model, ds, "sim", ProgressSettings(stream=buf, interval_s=0))
    y0, m0 = simulator_metrics(cm.model, ds)
    assert np.array_equal(y, y0) and m == m0
    assert len(_lines(buf)) > 10  # one line per chunk of inputs


def test_sklearn_missing_is_a_clear_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from mcu_dc.data.datasets import load_dataset
    from mcu_dc.errors import DataError

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import fails as if not installed
    with pytest.raises(DataError, match="scikit-learn"):
        load_dataset("digits", "test")


@pytest.mark.slow
def test_compress_cli_writes_per_batch_lines_to_a_pipe(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        "val_size = 200\n[dense]\nepochs = 2\nbatch_size = 64\n[prune]\nrounds = 1\ngrid = [0.5, 0.8]\n"
        "[prune.retrain]\nepochs = 1\nbatch_size = 64\n[finetune]\nepochs = 1\nbatch_size = 64\n"
    )
    env = {**os.environ, INTERVAL_ENV: "0"}
    cmd = [sys.executable, "-m", "mcu_dc", "compress", "--model", "lenet300", "--dataset", "digits",
           "--config", str(cfg), "--out", str(tmp_path / "d.mcudc"), "--json"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=True)
    err = proc.stderr
    assert not any(e in err for e in ESCAPES)
    dense = [line for line in err.splitlines() if line.startswith("dense: epoch")]
    assert len(dense) > 2 * 2  # more lines than epochs: per batch (18 batches of 64 per epoch)
    counts = _counts(dense, int(re.search(r"batch \d+/(\d+)", dense[0]).group(1)))
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert all(", ETA " in line and " batch/s" in line and "loss " in line for line in dense)
    for stage in ("prune round 1/1: sensitivity", "prune round 1/1: retrain", "finetune (shared)"):
        assert f"{stage}: starting" in err and f"{stage}: done" in err
