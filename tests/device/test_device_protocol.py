"""The Python side of the serial protocol: framing, decoding, the generated C header."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcu_dc.device import protocol as P
from mcu_dc.errors import DeviceError

frames_st = st.lists(
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300)), min_size=1, max_size=8
)


@given(
    frames=frames_st,
    garbage=st.lists(st.binary(max_size=40), min_size=9, max_size=9),
    cuts=st.lists(st.integers(1, 97), max_size=20),
)
@settings(max_examples=200, deadline=None)
def test_frames_survive_garbage_and_any_chunking(frames, garbage, cuts) -> None:
    # Garbage without the sync pattern between frames must be skipped; chunk boundaries
    # must not matter.
    garbage = [g.replace(P.SYNC[:1], b"") for g in garbage]
    stream = garbage[0] + b"".join(
        P.encode_frame(t, s, p) + garbage[i + 1] for i, (t, s, p) in enumerate(frames)
    )
    dec = P.FrameDecoder()
    got = []
    pos = 0
    for c in cuts:
        got += dec.feed(stream[pos : pos + c])
        pos += c
    got += dec.feed(stream[pos:])
    assert [(f.type, f.seq, f.payload) for f in got] == frames


@given(
    payload=st.binary(min_size=1, max_size=200),
    pos=st.integers(0, 10_000),
    mask=st.integers(1, 255),
    follow=st.binary(max_size=50),
)
@settings(max_examples=200, deadline=None)
def test_corrupt_frame_is_dropped_and_next_frame_still_found(payload, pos, mask, follow) -> None:
    bad = bytearray(P.encode_frame(P.MsgType.RESULT, 7, payload))
    i = pos % len(bad)
    bad[i] ^= mask
    good = P.encode_frame(P.MsgType.PONG, 9, follow)
    got = P.FrameDecoder().feed(bytes(bad) + good)
    # The corrupted frame never comes out (CRC-32); the good one always does.
    assert got[-1] == P.Frame(P.MsgType.PONG, 9, follow)
    assert all(f.payload != payload or f.seq != 7 or f.type != P.MsgType.RESULT for f in got[:-1])


def test_frame_layout_is_as_documented() -> None:
    f = P.encode_frame(0x02, 0x10, b"\x01\x02\x03")
    assert f[:2] == b"\xa5\x5a"
    assert f[2:6] == bytes([0x02, 0x10, 3, 0])
    assert f[6:9] == b"\x01\x02\x03"
    assert struct.unpack("<I", f[9:])[0] == P.crc32(bytes([0x02, 0x10, 3, 0, 1, 2, 3]))
    assert len(f) == P.OVERHEAD + 3


def test_oversize_length_is_skipped() -> None:
    dec = P.FrameDecoder(max_payload=8)
    got = dec.feed(P.encode_frame(1, 1, bytes(20)) + P.encode_frame(2, 2, b"ok"))
    assert got == [P.Frame(2, 2, b"ok")]
    assert dec.bad_frames >= 1


def test_info_round_trip() -> None:
    info = P.DeviceInfo(1, 1, "instructions", 0xDEADBEEF, 1084, 784, 10, 784, 9000, 0, "qemu-mps2-an386")
    assert P.DeviceInfo.from_payload(info.to_payload()) == info
    with pytest.raises(DeviceError, match="fewer than"):
        P.DeviceInfo.from_payload(b"\x01\x02")


def test_result_parse_checks_length() -> None:
    delta, out = P.parse_result(struct.pack("<I", 1234) + bytes([1, 255]), 2)
    assert (delta, out) == (1234, b"\x01\xff")
    with pytest.raises(DeviceError, match="another model"):
        P.parse_result(b"\x00" * 5, 2)


def test_generated_c_header_has_not_drifted() -> None:
    path = P.header_path()
    assert path.read_text(encoding="ascii") == P.c_header(), (
        f"{path} is stale: run `python -m mcu_dc.device.protocol` and commit the result"
    )


def test_c_header_names_every_constant() -> None:
    text = P.c_header()
    for m in P.MsgType:
        assert f"#define MCU_DC_MSG_{m.name} 0x{m.value:02X}u" in text
    for e in P.ErrorCode:
        assert f"#define MCU_DC_PERR_{e.name} {e.value}u" in text
    assert f"#define MCU_DC_PROTO_INFO_BYTES {P.INFO_BYTES}u" in text
