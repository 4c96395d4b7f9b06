"""The real firmware (runtime + generated model + protocol server) on the host, via the harness.

Same code path as a board: ProcessBridge serves the host build on socket://, the harness
checks the model hash and compares every output with the simulator; FaultProxy corrupts
and drops bytes in both directions and every result must still be right.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mcu_dc.device import protocol as P
from mcu_dc.device.harness import Device, LinkSettings, raise_on_mismatch, run_inputs
from mcu_dc.device.proxy import FaultProxy, FaultSettings, ProcessBridge
from mcu_dc.errors import DeviceError, MismatchError

FAST = LinkSettings(reply_timeout_s=0.5, hello_timeout_s=1.0, hello_attempts=5, retries=12)


def _upstream(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("socket://").rsplit(":", 1)
    return host, int(port)


def test_host_firmware_is_bit_exact_on_the_digits_test_set(
    digits_host_firmware: Path, digits_cm, digits_inputs
) -> None:
    x, y = digits_inputs
    with ProcessBridge([str(digits_host_firmware)]) as bridge, Device.open(bridge.url, FAST) as dev:
        info = dev.hello()
        assert (info.model_hash, info.input_len, info.output_len) == (digits_cm.model_hash, 64, 10)
        assert info.arena_bytes == digits_cm.model.arena_bytes()
        assert info.blob_bytes == len(digits_cm.blob)
        report = run_inputs(dev, digits_cm, x, y, model_hash=digits_cm.model_hash, progress=False)
        assert dev.bye()
        assert bridge.process.wait(timeout=10) == 0
    assert report.n == len(x) and report.bit_exact == len(x) and report.mismatches == 0
    assert report.device_accuracy == report.sim_accuracy
    assert report.device_accuracy > 0.85
    d = report.to_dict()
    assert {
        "n",
        "bit_exact",
        "mismatches",
        "device_accuracy",
        "sim_accuracy",
        "instructions_per_inference",
    } <= d.keys()
    assert d["instructions_per_inference"] is None and report.counter_unit == "cycles"
    raise_on_mismatch(report)


def test_wrong_model_hash_is_refused(digits_host_firmware: Path, digits_cm) -> None:
    with ProcessBridge([str(digits_host_firmware)]) as bridge, Device.open(bridge.url, FAST) as dev:
        with pytest.raises(DeviceError, match="runs model hash"):
            dev.check_model(digits_cm.model_hash ^ 1, "model.mcudc")


def test_a_wrong_output_is_reported_as_mismatch(digits_host_firmware: Path, digits_cm, digits_inputs) -> None:
    # Simulate against a different model with the same hash claim: every changed output counts.
    from mcu_dc.core.model_file import CompressedModel

    x, y = digits_inputs
    other = CompressedModel(digits_cm.model)
    other.model.layers[0].bias = other.model.layers[0].bias + 1000
    with ProcessBridge([str(digits_host_firmware)]) as bridge, Device.open(bridge.url, FAST) as dev:
        report = run_inputs(dev, other, x[:20], y[:20], progress=False)
    assert report.mismatches > 0 and report.bit_exact + report.mismatches == 20
    with pytest.raises(MismatchError, match="differ from the simulator"):
        raise_on_mismatch(report)


@pytest.mark.parametrize("seed", [1, 2])
def test_fault_proxy_corrupts_and_drops_yet_every_result_is_right(
    digits_host_firmware: Path, digits_cm, digits_inputs, seed: int
) -> None:
    x, y = digits_inputs
    n = 200
    faults = FaultSettings(
        seed=seed,
        corrupt_rate=0.002,
        drop_rate=0.001,
        max_faults=15,
        skip_bytes=P.OVERHEAD * 2 + P.INFO_BYTES + 16,
    )
    with (
        ProcessBridge([str(digits_host_firmware)]) as bridge,
        FaultProxy(_upstream(bridge.url), faults) as proxy,
        Device.open(proxy.url, FAST) as dev,
    ):
        report = run_inputs(dev, digits_cm, x[:n], y[:n], model_hash=digits_cm.model_hash, progress=False)
        stats = proxy.stats
    assert stats.corrupted > 0 and stats.dropped > 0  # the faults really happened ...
    assert report.link["retries"] > 0
    assert report.bit_exact == n and report.mismatches == 0  # ... and every result is right
    sim = report.sim_accuracy
    assert sim is not None and report.device_accuracy == sim


def test_device_that_never_answers_fails_in_bounded_time() -> None:
    import time

    # `cat` echoes our own frames back: never the reply type we wait for.
    with (
        ProcessBridge(["cat"]) as bridge,
        Device.open(
            bridge.url, LinkSettings(reply_timeout_s=0.2, hello_timeout_s=0.2, hello_attempts=3, retries=2)
        ) as dev,
    ):
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="no valid reply"):
            dev.hello()
        assert time.monotonic() - t0 < 5


def test_verify_cli_with_port_url(tmp_path: Path, digits_host_firmware: Path, digits_cm, capsys) -> None:
    # The real-board path (--port): here a socket:// URL to the host build of the firmware.
    import json

    from mcu_dc.cli import main

    model = digits_cm.save(tmp_path / "digits.mcudc")
    with ProcessBridge([str(digits_host_firmware)]) as bridge:
        rc = main(["verify", str(model), "--board", "nucleo_f401re", "--port", bridge.url,
                   "--dataset", "digits", "--limit", "100", "--json"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert (out["n"], out["bit_exact"], out["mismatches"]) == (100, 100, 0)
    assert out["board"] == "host" and out["device_accuracy"] == out["sim_accuracy"]


def test_verify_cli_refuses_the_firmware_of_another_model(
    tmp_path: Path, digits_host_firmware: Path, digits_dense_cm, capsys
) -> None:
    from mcu_dc.cli import main

    model = digits_dense_cm.save(tmp_path / "dense.mcudc")  # same network, other blob: other hash
    with ProcessBridge([str(digits_host_firmware)]) as bridge:
        rc = main(["verify", str(model), "--board", "nucleo_f401re", "--port", bridge.url,
                   "--dataset", "digits", "--limit", "5"])  # fmt: skip
    assert rc != 0
    assert "runs model hash" in capsys.readouterr().err
