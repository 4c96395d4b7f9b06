"""The serial protocol between the host harness and the firmware (``docs/protocol.md``).

Every message is one **frame**::

    0xA5 0x5A | type u8 | seq u8 | len u16 | payload[len] | crc32 u32

All integers are little-endian. ``crc32`` is CRC-32 (IEEE 802.3, as :func:`zlib.crc32`)
of ``type, seq, len, payload``. A reply echoes the ``seq`` of its request, so the host
can drop stale replies after a retry.

The constants here are the single source of truth: :func:`c_header` renders them into
``firmware/protocol/mcu_dc_proto_defs.h`` (``python -m mcu_dc.device.protocol``
rewrites it; a test fails when the committed header drifts).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from mcu_dc.errors import DeviceError
from mcu_dc.fileio import write_text_atomic

PROTOCOL_VERSION = 1
SYNC = b"\xa5\x5a"
HEADER_BYTES = 6  # sync(2) type seq len(2)
CRC_BYTES = 4
OVERHEAD = HEADER_BYTES + CRC_BYTES
MIN_PAYLOAD_CAP = 64  # the firmware's receive buffer holds at least this many payload bytes
MAX_PAYLOAD_LIMIT = 0xFFFF


class MsgType(IntEnum):
    """Frame types. Requests come from the host; replies set bit 7."""

    HELLO = 0x01  # empty payload → INFO
    INFER = 0x02  # input_len bytes → RESULT
    PING = 0x03  # any payload ≤ max_payload → PONG with the same payload
    BYE = 0x04  # empty payload → BYE_ACK, then the firmware exits with code 0
    INFO = 0x81
    RESULT = 0x82
    PONG = 0x83
    BYE_ACK = 0x84
    ERROR = 0xEE


class ErrorCode(IntEnum):
    """First payload byte of an ERROR frame."""

    BAD_CRC = 1  # frame CRC did not match: resend
    TOO_LONG = 2  # declared length exceeds the receive buffer (detail: max_payload)
    BAD_TYPE = 3  # unknown message type
    BAD_LENGTH = 4  # payload length wrong for this type (detail: expected length)
    TIMEOUT = 5  # a frame stopped arriving half-way (inter-byte timeout)
    INFER_FAILED = 6  # mcu_dc_infer returned a non-zero status (detail: the status)
    MODEL_INIT = 7  # mcu_dc_model_init failed at boot (detail: the status)


# ERROR payload: code u8, rejected type u8, reserved u16, detail u32
ERROR_FMT = "<BBHI"
ERROR_BYTES = struct.calcsize(ERROR_FMT)
# INFO payload (fixed part), then the board name (ASCII, up to the end of the payload)
INFO_FMT = "<BBBBIIIIIIH"
INFO_BYTES = struct.calcsize(INFO_FMT)
# RESULT payload: counter delta u32, then output_len int8
RESULT_HEAD_BYTES = 4

COUNTER_UNITS = {0: "cycles", 1: "instructions"}


def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_frame(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """One complete frame, sync to CRC."""
    if not 0 <= msg_type <= 0xFF or not 0 <= seq <= 0xFF:
        raise ValueError(f"type {msg_type} and seq {seq} must fit in one byte")
    if len(payload) > MAX_PAYLOAD_LIMIT:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_LIMIT}")
    body = struct.pack("<BBH", msg_type, seq, len(payload)) + bytes(payload)
    return SYNC + body + struct.pack("<I", crc32(body))


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


class FrameDecoder:
    """Incremental frame parser for the host: feed bytes, collect frames.

    Garbage between frames is skipped; a frame with a bad CRC (or a length above
    ``max_payload``) is dropped and the search for the next sync restarts one byte
    after the false sync, so no good frame behind it is lost.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD_LIMIT) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()
        self.dropped_bytes = 0
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        return list(self._drain())

    def _drain(self) -> Iterator[Frame]:
        buf = self._buf
        while True:
            start = buf.find(SYNC)
            if start < 0:
                keep = 1 if buf[-1:] == SYNC[:1] else 0
                self.dropped_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                return
            if start:
                self.dropped_bytes += start
                del buf[:start]
            if len(buf) < HEADER_BYTES:
                return
            msg_type, seq, length = struct.unpack_from("<BBH", buf, 2)
            if length > self.max_payload:
                self._skip_false_sync()
                continue
            total = HEADER_BYTES + length + CRC_BYTES
            if len(buf) < total:
                if self._valid_frame_after(1):
                    # A corrupt length announced more bytes than came: a complete, valid
                    # frame already follows, so this sync was false.
                    self._skip_false_sync()
                    continue
                return
            body = bytes(buf[2 : HEADER_BYTES + length])
            (crc,) = struct.unpack_from("<I", buf, HEADER_BYTES + length)
            if crc != crc32(body):
                self._skip_false_sync()
                continue
            del buf[:total]
            yield Frame(msg_type, seq, body[4:])

    def _valid_frame_after(self, start: int) -> bool:
        buf = self._buf
        pos = buf.find(SYNC, start)
        while pos >= 0 and pos + HEADER_BYTES <= len(buf):
            (length,) = struct.unpack_from("<H", buf, pos + 4)
            end = pos + HEADER_BYTES + length
            if length <= self.max_payload and end + CRC_BYTES <= len(buf):
                (crc,) = struct.unpack_from("<I", buf, end)
                if crc == crc32(bytes(buf[pos + 2 : end])):
                    return True
            pos = buf.find(SYNC, pos + 1)
        return False

    def _skip_false_sync(self) -> None:
        self.bad_frames += 1
        self.dropped_bytes += 1
        del self._buf[:1]

    def clear(self) -> None:
        self.dropped_bytes += len(self._buf)
        self._buf.clear()


@dataclass(frozen=True)
class DeviceInfo:
    """What the firmware says about itself in its INFO frame."""

    protocol_version: int
    format_version: int
    counter_unit: str  # "cycles" | "instructions"
    model_hash: int
    arena_bytes: int
    input_len: int
    output_len: int
    max_payload: int
    blob_bytes: int
    init_status: int
    board: str

    def to_payload(self) -> bytes:
        unit = {v: k for k, v in COUNTER_UNITS.items()}[self.counter_unit]
        name = self.board.encode("ascii")
        return (
            struct.pack(
                INFO_FMT,
                self.protocol_version,
                self.format_version,
                unit,
                0,
                self.model_hash,
                self.arena_bytes,
                self.input_len,
                self.output_len,
                self.max_payload,
                self.blob_bytes,
                self.init_status,
            )
            + name
        )

    @staticmethod
    def from_payload(payload: bytes) -> DeviceInfo:
        if len(payload) < INFO_BYTES:
            raise DeviceError(
                f"the device's INFO frame has {len(payload)} payload bytes, fewer than the "
                f"{INFO_BYTES} of protocol version {PROTOCOL_VERSION}; the firmware is older than "
                "this mcu_dc: regenerate and rebuild it (mcu-dc generate / mcu-dc build) and flash it."
            )
        (pv, fv, unit, _r, mhash, arena, inl, outl, maxp, blob, init) = struct.unpack_from(INFO_FMT, payload)
        board = payload[INFO_BYTES:].decode("ascii", errors="replace")
        return DeviceInfo(
            protocol_version=pv,
            format_version=fv,
            counter_unit=COUNTER_UNITS.get(unit, f"unit{unit}"),
            model_hash=mhash,
            arena_bytes=arena,
            input_len=inl,
            output_len=outl,
            max_payload=maxp,
            blob_bytes=blob,
            init_status=init,
            board=board,
        )


@dataclass(frozen=True)
class DeviceErrorFrame:
    code: int
    rejected_type: int
    detail: int

    @staticmethod
    def from_payload(payload: bytes) -> DeviceErrorFrame:
        if len(payload) < ERROR_BYTES:
            return DeviceErrorFrame(0, 0, 0)
        code, rtype, _r, detail = struct.unpack_from(ERROR_FMT, payload)
        return DeviceErrorFrame(code, rtype, detail)

    def describe(self) -> str:
        try:
            name = ErrorCode(self.code).name
        except ValueError:
            name = f"code {self.code}"
        return f"{name} (type 0x{self.rejected_type:02x}, detail {self.detail})"


def error_payload(code: int, rejected_type: int = 0, detail: int = 0) -> bytes:
    return struct.pack(ERROR_FMT, code, rejected_type, 0, detail)


def parse_result(payload: bytes, output_len: int) -> tuple[int, bytes]:
    """(counter delta, int8 output bytes) from a RESULT payload."""
    if len(payload) != RESULT_HEAD_BYTES + output_len:
        raise DeviceError(
            f"RESULT frame of {len(payload)} bytes, expected {RESULT_HEAD_BYTES + output_len} "
            f"(4-byte counter + {output_len} outputs): the firmware serves another model"
        )
    (delta,) = struct.unpack_from("<I", payload)
    return delta, bytes(payload[RESULT_HEAD_BYTES:])


# ----------------------------------------------------------------------------- C header


def c_header() -> str:
    """The text of ``firmware/protocol/mcu_dc_proto_defs.h``."""
    lines = [
        "/* Generated by `python -m mcu_dc.device.protocol` from mcu_dc/device/protocol.py.",
        " * Do not edit: change the Python and regenerate (tests/device checks for drift).",
        " * The protocol is described in docs/protocol.md. */",
        "#ifndef MCU_DC_PROTO_DEFS_H",
        "#define MCU_DC_PROTO_DEFS_H",
        "",
        f"#define MCU_DC_PROTO_VERSION {PROTOCOL_VERSION}u",
        f"#define MCU_DC_PROTO_SYNC0 0x{SYNC[0]:02X}u",
        f"#define MCU_DC_PROTO_SYNC1 0x{SYNC[1]:02X}u",
        f"#define MCU_DC_PROTO_HEADER_BYTES {HEADER_BYTES}u",
        f"#define MCU_DC_PROTO_CRC_BYTES {CRC_BYTES}u",
        f"#define MCU_DC_PROTO_MIN_PAYLOAD_CAP {MIN_PAYLOAD_CAP}u",
        f"#define MCU_DC_PROTO_INFO_BYTES {INFO_BYTES}u",
        f"#define MCU_DC_PROTO_ERROR_BYTES {ERROR_BYTES}u",
        f"#define MCU_DC_PROTO_RESULT_HEAD_BYTES {RESULT_HEAD_BYTES}u",
        "",
        "/* message types */",
    ]
    lines += [f"#define MCU_DC_MSG_{m.name} 0x{m.value:02X}u" for m in MsgType]
    lines += ["", "/* ERROR frame codes */"]
    lines += [f"#define MCU_DC_PERR_{e.name} {e.value}u" for e in ErrorCode]
    lines += ["", "#endif /* MCU_DC_PROTO_DEFS_H */", ""]
    return "\n".join(lines)


def header_path() -> Path:
    from mcu_dc.resources import resource_dir

    return resource_dir("firmware") / "protocol" / "mcu_dc_proto_defs.h"


def write_c_header(path: Path | None = None) -> Path:
    """Write the generated header atomically; returns its path."""
    return write_text_atomic(path or header_path(), c_header(), encoding="ascii")


if __name__ == "__main__":  # pragma: no cover
    print(write_c_header())
