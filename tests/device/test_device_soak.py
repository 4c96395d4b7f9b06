"""Support for the link soak (bench/device_link.py --soak): rate-only faults and link counters.

* ``FaultSettings(max_faults=None)`` faults at the rate for as long as the proxy lives, and the
  faults depend only on a byte's position in its direction's stream, not on TCP chunking;
  ``max_faults=N`` still stops after N per direction.
* Through QEMU (qemu-mps2-an386) with uncapped faults both ways, every result equals the
  simulator's and the harness counts what it recovered from; at a rate where it cannot
  recover, every request either returns the right output or raises a clear ``DeviceError``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mcu_dc.core.simulator import simulate
from mcu_dc.device.harness import Device, LinkSettings
from mcu_dc.device.proxy import FaultProxy, FaultSettings
from mcu_dc.errors import DeviceError

BOARD = "qemu-mps2-an386"
SKIP_HANDSHAKE = 300  # bytes per direction: HELLO, a resync or two and INFO pass untouched
needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="needs qemu-system-arm and arm-none-eabi-gcc",
)


def _offline_proxy(settings: FaultSettings) -> FaultProxy:
    # Nothing connects: only the byte mangling is exercised (the pump thread gives up at once).
    return FaultProxy(("127.0.0.1", 9), settings, accept_timeout_s=0.01)


def _mangle_all(settings: FaultSettings, data: bytes, chunk_sizes: list[int]) -> tuple[bytes, FaultProxy]:
    proxy = _offline_proxy(settings)
    try:
        out, pos, k = bytearray(), 0, 0
        while pos < len(data):
            n = chunk_sizes[k % len(chunk_sizes)]
            out += proxy._mangle(data[pos : pos + n], "to_device")
            pos, k = pos + n, k + 1
    finally:
        proxy.close()
    return bytes(out), proxy


def test_uncapped_faults_follow_the_rate_whatever_the_chunking() -> None:
    data = np.random.default_rng(0).bytes(200_000)
    s = FaultSettings(seed=3, corrupt_rate=1e-3, drop_rate=3e-4, max_faults=None, skip_bytes=100)
    a, pa = _mangle_all(s, data, [4096])
    b, pb = _mangle_all(s, data, [1, 7, 1000, 33])
    assert a == b and pa.stats == pb.stats
    st = pa.stats
    # Far beyond the default cap of 32: ~200 corrupted and ~60 dropped (5 sigma bounds).
    assert 130 < st.corrupted < 270 and 25 < st.dropped < 100
    assert st.corrupted_by_direction == {"to_device": st.corrupted, "to_host": 0}
    assert st.dropped_by_direction == {"to_device": st.dropped, "to_host": 0}
    assert len(a) == len(data) - st.dropped
    assert a[:100] == data[:100]  # skip_bytes untouched
    assert st.forwarded["to_device"] == len(data)


def test_capped_faults_stop_at_max_faults() -> None:
    data = bytes(50_000)
    capped = FaultSettings(seed=1, corrupt_rate=0.01, drop_rate=0.01, max_faults=7)
    out, proxy = _mangle_all(capped, data, [999])
    assert proxy.stats.faults == 7
    assert len(out) == len(data) - proxy.stats.dropped
    assert sum(1 for v in out if v) == proxy.stats.corrupted


@pytest.fixture(scope="module")
def mps2_elf(tmp_path_factory: pytest.TempPathFactory, digits_cm: Any) -> Path:
    from mcu_dc.device.verify import build_firmware

    return build_firmware(digits_cm, BOARD, tmp_path_factory.mktemp("soakfw")).elf


@pytest.fixture
def faulty_device(request: pytest.FixtureRequest, mps2_elf: Path) -> Iterator[tuple[Device, FaultProxy]]:
    from mcu_dc.device.qemu import QemuBoard

    faults, link = request.param
    with QemuBoard(BOARD, mps2_elf, start_timeout=30.0) as q:
        host, port = q.url.removeprefix("socket://").rsplit(":", 1)
        with FaultProxy((host, int(port)), faults) as proxy, Device.open(proxy.url, link) as dev:
            yield dev, proxy
    assert not q.running


RECOVERABLE = (
    FaultSettings(seed=5, corrupt_rate=0.006, drop_rate=0.002, max_faults=None),
    LinkSettings(reply_timeout_s=0.15, retries=12, hello_timeout_s=0.3),
)
# ~70 % of 74-byte requests survive 3 attempts: a mix of answers and given-up requests.
HOPELESS = (
    FaultSettings(seed=6, corrupt_rate=0.012, drop_rate=0.004, max_faults=None, skip_bytes=SKIP_HANDSHAKE),
    LinkSettings(reply_timeout_s=0.1, retries=2, hello_timeout_s=0.3),
)


@pytest.mark.qemu
@pytest.mark.arm
@needs_qemu
@pytest.mark.parametrize("faulty_device", [RECOVERABLE], indirect=True)
def test_50_images_through_uncapped_faults_are_all_right(faulty_device, digits_cm, digits_inputs) -> None:
    dev, proxy = faulty_device
    x, _ = digits_inputs
    n = 50
    dev.check_model(digits_cm.model_hash)
    expected = simulate(digits_cm, x[:n])
    for i in range(n):
        _, out = dev.infer(x[i].tobytes())
        assert out == expected[i].tobytes(), f"image {i}: the device's output differs from the simulator's"
    f, s = proxy.stats, dev.stats
    assert f.corrupted > 32 and f.dropped > 0  # more than the old per-direction cap
    assert f.corrupted_by_direction["to_device"] > 0 and f.corrupted_by_direction["to_host"] > 0
    assert s.retries > 0 and s.device_bad_crc > 0 and s.timeouts > 0
    assert s.failed_requests == 0


@pytest.mark.qemu
@pytest.mark.arm
@needs_qemu
@pytest.mark.parametrize("faulty_device", [HOPELESS], indirect=True)
def test_unrecoverable_stretches_raise_a_clear_error_never_a_wrong_answer(
    faulty_device, digits_cm, digits_inputs
) -> None:
    dev, proxy = faulty_device
    x, _ = digits_inputs
    n = 16
    dev.check_model(digits_cm.model_hash)  # the handshake passes untouched (skip_bytes)
    expected = simulate(digits_cm, x[:n])
    right = failed = 0
    for i in range(n):
        try:
            _, out = dev.infer(x[i].tobytes())
        except DeviceError as exc:
            assert "no valid reply to a 0x02 request after 3 attempts" in str(exc)
            failed += 1
            continue
        assert out == expected[i].tobytes(), f"image {i}: a wrong answer came through"
        right += 1
    assert failed > 0 and right > 0 and dev.stats.failed_requests == failed
    assert right + failed == n and proxy.stats.faults > 0
