"""The C protocol server (firmware/protocol + firmware/app) as a host program.

Built with gcc and sanitizers over a stand-in runtime (tests/device/stub), fed through
the same socket:// path the harness uses for QEMU: C parser vs Python framing, error
frames for every kind of bad input, and responsiveness after random garbage.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcu_dc.device import protocol as P
from mcu_dc.device.harness import Device
from mcu_dc.device.proxy import ProcessBridge


def _expect(dev: Device, timeout: float = 3.0) -> list[P.Frame]:
    """Frames that arrive within ``timeout`` (at least one)."""
    return dev._read_frames(time.monotonic() + timeout)


def test_hello_reports_the_model_and_board(stub_device) -> None:
    dev, _ = stub_device
    info = dev.hello()
    assert info.protocol_version == P.PROTOCOL_VERSION
    assert (info.input_len, info.output_len, info.model_hash) == (16, 4, 0x12345678)
    assert info.board == "host"
    assert info.max_payload == P.MIN_PAYLOAD_CAP
    assert info.counter_unit == "cycles"
    assert info.init_status == 0


@given(payloads=st.lists(st.binary(max_size=P.MIN_PAYLOAD_CAP), min_size=1, max_size=10))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_c_parser_echoes_any_python_frame(stub_device, payloads) -> None:
    # Payloads may hold the sync bytes; the C parser must frame exactly as Python does.
    dev, _ = stub_device
    for p in payloads:
        assert dev.ping(p) == p


def test_infer_result_and_counter(stub_device) -> None:
    dev, _ = stub_device
    dev.hello()
    x = bytes(range(100, 116))
    delta, out = dev.infer(x)
    assert out == bytes((x[i] + x[i + 4]) & 0xFF for i in range(4))
    assert delta >= 0


def _error(frame: P.Frame) -> P.DeviceErrorFrame:
    assert frame.type == P.MsgType.ERROR
    return P.DeviceErrorFrame.from_payload(frame.payload)


def test_bad_crc_wrong_length_unknown_type_oversize_each_get_an_error_frame(stub_device) -> None:
    dev, _ = stub_device
    bad = bytearray(P.encode_frame(P.MsgType.PING, 1, b"hello"))
    bad[-1] ^= 0x55
    dev._write(bytes(bad))
    assert _error(_expect(dev)[0]).code == P.ErrorCode.BAD_CRC

    dev._write(P.encode_frame(P.MsgType.INFER, 2, bytes(3)))
    err = _error(_expect(dev)[0])
    assert (err.code, err.rejected_type, err.detail) == (P.ErrorCode.BAD_LENGTH, P.MsgType.INFER, 16)

    dev._write(P.encode_frame(0x77, 3, b""))
    err = _error(_expect(dev)[0])
    assert (err.code, err.rejected_type) == (P.ErrorCode.BAD_TYPE, 0x77)

    dev._write(P.encode_frame(P.MsgType.PING, 4, bytes(P.MIN_PAYLOAD_CAP + 1)))
    f = _expect(dev)[0]
    assert f.seq == 4
    assert (_error(f).code, _error(f).detail) == (P.ErrorCode.TOO_LONG, P.MIN_PAYLOAD_CAP)
    # ... and it still serves.
    assert dev.ping(b"still here") == b"still here"


def test_truncated_frame_times_out_and_server_recovers(stub_device) -> None:
    dev, _ = stub_device
    dev._write(P.encode_frame(P.MsgType.PING, 5, b"0123456789")[:9])
    f = _expect(dev, timeout=5.0)[0]  # inter-byte timeout: 100 polls of 1 ms on the host
    assert f.seq == 5 and _error(f).code == P.ErrorCode.TIMEOUT
    assert dev.ping(b"after") == b"after"


def test_harness_resync_recovers_from_truncated_request(stub_device) -> None:
    # The harness's own recovery (zero flush + resend) without relying on the device timeout.
    dev, _ = stub_device
    dev.hello()
    dev._write(P.encode_frame(P.MsgType.PING, 200, bytes(40))[:20])
    assert dev.ping(b"x" * 30) == b"x" * 30


@given(garbage=st.binary(min_size=1, max_size=3000))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_garbage_never_breaks_the_server(stub_device, garbage) -> None:
    dev, bridge = stub_device
    dev._write(garbage)
    assert dev.ping(b"alive?") == b"alive?"
    assert bridge.process.poll() is None


def test_garbage_full_of_sync_bytes_and_random_frames(stub_device) -> None:
    dev, bridge = stub_device
    rng = np.random.default_rng(1)
    chunks = []
    for _ in range(300):
        kind = rng.integers(4)
        if kind == 0:
            chunks.append(bytes(rng.choice([0xA5, 0x5A, 0x00, 0xFF], size=int(rng.integers(1, 50)))))
        elif kind == 1:
            f = bytearray(P.encode_frame(int(rng.integers(256)), 0, rng.bytes(int(rng.integers(0, 80)))))
            f[int(rng.integers(len(f)))] ^= int(rng.integers(1, 256))
            chunks.append(bytes(f))
        elif kind == 2:
            chunks.append(P.encode_frame(int(rng.integers(256)), 0, rng.bytes(int(rng.integers(0, 80))))[:-2])
        else:
            chunks.append(rng.bytes(int(rng.integers(1, 100))))
    dev._write(b"".join(chunks))
    assert dev.ping(b"survived") == b"survived"
    dev.hello()
    assert dev.infer(bytes(16))[1] == bytes(4)
    assert bridge.process.poll() is None


def test_bye_ends_the_program_cleanly(stub_firmware: Path) -> None:
    bridge = ProcessBridge([str(stub_firmware)])
    dev = Device.open(bridge.url)
    try:
        dev.hello()
        assert dev.bye() is True
        assert bridge.process.wait(timeout=10) == 0
    finally:
        dev.close()
        bridge.close()
    assert bridge.process.returncode == 0


def test_stdin_eof_ends_the_program(stub_firmware: Path) -> None:
    r = subprocess.run(
        [str(stub_firmware)], input=b"\xa5\x5a\x01", capture_output=True, timeout=30, check=True
    )
    assert r.returncode == 0
