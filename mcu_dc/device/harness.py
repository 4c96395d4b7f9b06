"""The pyserial harness: talk to the firmware, stream inputs, compare with the simulator.

One code path for every link: :func:`open_link` hands the URL to
``serial.serial_for_url`` — ``/dev/ttyACM0``, ``socket://127.0.0.1:PORT`` (QEMU, or the
host firmware behind :class:`~mcu_dc.device.proxy.ProcessBridge`), ``rfc2217://…``.

Flow control is request/response: the host sends one frame and waits for its reply
before the next, so a device with a one-byte receive buffer is never overrun while it
computes. Every wait is bounded. A missing or corrupt reply, or an ERROR frame, leads to
a resync (enough zero bytes to complete any half-received frame on the device, see
``docs/protocol.md``) and a resend with a fresh sequence number; stale replies are
recognised by their sequence number and dropped.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import serial

from mcu_dc.device import protocol as P
from mcu_dc.errors import DeviceError, MismatchError
from mcu_dc.progress import ProgressSettings, track

_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


@dataclass
class LinkSettings:
    """Timeouts and retries of the harness (seconds)."""

    baudrate: int = 115200
    reply_timeout_s: float = 5.0  # from the end of a request to its complete reply
    hello_timeout_s: float = 1.0  # per HELLO attempt (the device may still be booting)
    hello_attempts: int = 15
    retries: int = 8  # resends of one request before giving up
    poll_s: float = 0.02  # serial read timeout (granularity of the waits)


@dataclass
class LinkStats:
    """What the link went through; everything but ``failed_requests`` was recovered from."""

    requests: int = 0
    retries: int = 0  # resends (every one follows a timeout or an ERROR reply)
    device_errors: int = 0  # ERROR replies; the next three split the usual ones by code
    device_bad_crc: int = 0  # ERROR BAD_CRC: the request arrived corrupted
    device_frame_timeouts: int = 0  # ERROR TIMEOUT: the request stopped half-way (bytes lost)
    device_too_long: int = 0  # ERROR TOO_LONG: a corrupted length field
    timeouts: int = 0  # no valid reply within reply_timeout_s (then a resync)
    stale_frames: int = 0  # valid replies to an earlier attempt, dropped
    bad_frames_in: int = 0  # replies the host's decoder dropped (bad CRC, false sync)
    failed_requests: int = 0  # requests given up after every attempt (raised DeviceError)
    bytes_out: int = 0
    bytes_in: int = 0


def open_link(url: str, settings: LinkSettings | None = None) -> serial.SerialBase:
    """Open any pyserial URL or device path."""
    s = settings or LinkSettings()
    try:
        return serial.serial_for_url(url, baudrate=s.baudrate, timeout=s.poll_s, write_timeout=30)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DeviceError(
            f"cannot open the serial link {url!r}: {exc}. Pass a device path (/dev/ttyACM0) or a URL "
            "(socket://host:port, rfc2217://host:port) that is reachable and not held by another program."
        ) from None


class Device:
    """A device speaking the mcu_dc protocol over an open serial link."""

    def __init__(self, link: serial.SerialBase, settings: LinkSettings | None = None) -> None:
        self.link = link
        self.settings = settings or LinkSettings()
        self.stats = LinkStats()
        self.info: P.DeviceInfo | None = None
        self._decoder = P.FrameDecoder()
        self._seq = 0
        self._pending: list[P.Frame] = []
        self._resync_bytes = P.MIN_PAYLOAD_CAP + P.OVERHEAD

    @classmethod
    def open(cls, url: str, settings: LinkSettings | None = None) -> Device:
        return cls(open_link(url, settings), settings)

    def close(self) -> None:
        try:
            self.link.close()
        except (serial.SerialException, OSError):
            pass

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- frames

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _write(self, data: bytes) -> None:
        try:
            self.link.write(data)
            self.link.flush()
        except (serial.SerialException, OSError) as exc:
            raise DeviceError(f"writing to the device failed: {exc}; is it still connected?") from None
        self.stats.bytes_out += len(data)

    def _read_frames(self, deadline: float) -> list[P.Frame]:
        """Frames that arrive before ``deadline`` (returns as soon as at least one has)."""
        while True:
            if self._pending:
                out, self._pending = self._pending, []
                return out
            if time.monotonic() >= deadline:
                return []
            try:
                waiting = self.link.in_waiting
                data = self.link.read(max(1, min(waiting, 65536)))
            except (serial.SerialException, OSError) as exc:
                raise DeviceError(f"reading from the device failed: {exc}; is it still connected?") from None
            if data:
                self._quickack()
                self.stats.bytes_in += len(data)
                self._pending.extend(self._decoder.feed(data))
                self.stats.bad_frames_in = self._decoder.bad_frames

    def _quickack(self) -> None:
        # A TCP link (QEMU's -serial tcp:...) whose far end uses Nagle's algorithm holds
        # back the rest of a reply until our ACK of its first byte; Linux delays that ACK
        # by up to 40 ms, once per request. Ask for an immediate ACK (Linux; re-armed after
        # every read because the kernel clears it).
        sock = getattr(self.link, "_socket", None)
        if sock is not None and _TCP_QUICKACK is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)

    def resync(self) -> None:
        """Push zeros so a half-received frame on the device completes (and fails its CRC)."""
        self._write(bytes(self._resync_bytes))

    def request(
        self,
        msg_type: int,
        payload: bytes,
        expect: int,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> P.Frame:
        """Send a request and return the reply of type ``expect``, resending as needed."""
        timeout = self.settings.reply_timeout_s if timeout_s is None else timeout_s
        attempts = 1 + (self.settings.retries if retries is None else retries)
        last = "no reply"
        self.stats.requests += 1
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
            seq = self._next_seq()
            self._write(P.encode_frame(msg_type, seq, payload))
            deadline = time.monotonic() + timeout
            failed = False
            while not failed:
                frames = self._read_frames(deadline)
                if not frames:
                    self.stats.timeouts += 1
                    last = f"no reply within {timeout:g} s"
                    self.resync()
                    break
                for i, f in enumerate(frames):
                    if f.seq != seq:
                        self.stats.stale_frames += 1
                        continue
                    if f.type == expect:
                        self._pending = frames[i + 1 :] + self._pending
                        return f
                    if f.type == P.MsgType.ERROR:
                        err = P.DeviceErrorFrame.from_payload(f.payload)
                        self.stats.device_errors += 1
                        if err.code == P.ErrorCode.BAD_CRC:
                            self.stats.device_bad_crc += 1
                        elif err.code == P.ErrorCode.TIMEOUT:
                            self.stats.device_frame_timeouts += 1
                        elif err.code == P.ErrorCode.TOO_LONG:
                            self.stats.device_too_long += 1
                        last = f"the device answered ERROR {err.describe()}"
                        if err.code in (
                            P.ErrorCode.MODEL_INIT,
                            P.ErrorCode.INFER_FAILED,
                            P.ErrorCode.BAD_TYPE,
                        ):
                            raise DeviceError(
                                f"{last} to a 0x{msg_type:02x} request; this is not a link fault, so "
                                "resending will not help: check that the firmware was built from this "
                                "model (mcu-dc generate + build) and flashed."
                            )
                    else:
                        last = f"unexpected reply type 0x{f.type:02x}"
                    self._pending = frames[i + 1 :] + self._pending
                    failed = True
                    break
        self.stats.failed_requests += 1
        raise DeviceError(
            f"the device gave no valid reply to a 0x{msg_type:02x} request after {attempts} attempts "
            f"(last: {last}). Check the port/URL and baud rate, that the firmware is running (reset the "
            "board), and that nothing else reads the port."
        )

    # ---------------------------------------------------------------- messages

    def hello(self) -> P.DeviceInfo:
        s = self.settings
        f = self.request(
            P.MsgType.HELLO, b"", P.MsgType.INFO, timeout_s=s.hello_timeout_s, retries=s.hello_attempts - 1
        )
        info = P.DeviceInfo.from_payload(f.payload)
        if info.protocol_version != P.PROTOCOL_VERSION:
            raise DeviceError(
                f"the device speaks protocol version {info.protocol_version}, this mcu_dc speaks "
                f"{P.PROTOCOL_VERSION}: rebuild and flash the firmware with this mcu_dc version."
            )
        self.info = info
        self._decoder.max_payload = max(info.max_payload, P.INFO_BYTES + 64, info.output_len + 4)
        self._resync_bytes = info.max_payload + P.OVERHEAD
        return info

    def check_model(self, model_hash: int, source: str = "the local model") -> P.DeviceInfo:
        info = self.info or self.hello()
        if info.init_status != 0:
            raise DeviceError(
                f"the firmware on {info.board!r} could not start its model (status {info.init_status}: "
                "the blob in flash is invalid or corrupt, or the arena is too small); rebuild it with "
                "mcu-dc generate + mcu-dc build and flash it again."
            )
        if info.model_hash != model_hash:
            raise DeviceError(
                f"the device ({info.board}) runs model hash 0x{info.model_hash:08x}, but {source} has "
                f"hash 0x{model_hash:08x}: it is running another model. Generate, build and flash the "
                "firmware from this model file, or verify the model the device runs."
            )
        return info

    def infer(self, data: bytes) -> tuple[int, bytes]:
        """(counter delta, int8 outputs as bytes) for one input."""
        info = self.info or self.hello()
        if len(data) != info.input_len:
            raise DeviceError(f"input of {len(data)} bytes; the device's model takes {info.input_len}")
        f = self.request(P.MsgType.INFER, data, P.MsgType.RESULT)
        return P.parse_result(f.payload, info.output_len)

    def ping(self, payload: bytes) -> bytes:
        return self.request(P.MsgType.PING, payload, P.MsgType.PONG).payload

    def bye(self) -> bool:
        """Ask the firmware to exit; True when it acknowledged."""
        try:
            self.request(P.MsgType.BYE, b"", P.MsgType.BYE_ACK, timeout_s=2.0, retries=1)
        except DeviceError:
            return False
        return True


# -------------------------------------------------------------------- streaming


@dataclass
class VerifyReport:
    """Summary of a run on the device (``to_dict`` gives the ``--json`` keys)."""

    n: int
    bit_exact: int
    mismatches: int
    device_accuracy: float | None
    sim_accuracy: float | None
    counter_unit: str
    counter_median: float | None
    counter_max: int | None
    seconds: float
    inferences_per_s: float
    board: str
    model_hash: int
    mismatch_indices: list[int] = field(default_factory=list)
    link: dict[str, int] = field(default_factory=dict)

    @property
    def instructions_per_inference(self) -> float | None:
        return self.counter_median if self.counter_unit == "instructions" else None

    @property
    def cycles_per_inference(self) -> float | None:
        return self.counter_median if self.counter_unit == "cycles" else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["instructions_per_inference"] = self.instructions_per_inference
        d["cycles_per_inference"] = self.cycles_per_inference
        d["model_hash"] = f"0x{self.model_hash:08x}"
        return d

    def lines(self) -> list[str]:
        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{100 * v:.2f} %"

        med = "n/a" if self.counter_median is None else f"{self.counter_median:,.0f}"
        mx = "n/a" if self.counter_max is None else f"{self.counter_max:,}"
        return [
            f"board               {self.board} (model hash 0x{self.model_hash:08x})",
            f"inputs              {self.n}",
            f"bit-exact           {self.bit_exact}/{self.n}  ({self.mismatches} mismatches)",
            f"device accuracy     {pct(self.device_accuracy)}",
            f"simulator accuracy  {pct(self.sim_accuracy)}",
            f"{self.counter_unit + '/inference':<19} median {med}, max {mx}",
            f"throughput          {self.inferences_per_s:.1f} inferences/s ({self.seconds:.1f} s; "
            f"{self.link.get('retries', 0)} retries)",
        ]


def _argmax_first(out: np.ndarray) -> np.ndarray:
    return np.argmax(out.astype(np.int16), axis=-1)


def run_inputs(
    device: Device,
    model: Any,
    inputs: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    model_hash: int | None = None,
    progress: bool | ProgressSettings = True,
    desc: str = "device",
    on_result: Callable[[int, bytes, bytes], None] | None = None,
) -> VerifyReport:
    """Stream ``inputs`` to ``device``; compare each output with the simulator.

    ``inputs`` are what the model takes (N, ...): raw uint8 bytes for a UINT8-input model;
    int8 values or float features for an INT8-input one (sent as the int8 bytes the
    model's input quantization gives). ``model`` is an IntegerModel or CompressedModel.
    With ``model_hash`` the handshake first checks that the device runs that model.
    ``progress`` (see :mod:`mcu_dc.progress`) advances once per inference, with the ETA and
    the mismatches so far.
    """
    from mcu_dc.core.simulator import device_input, simulate

    x = np.ascontiguousarray(device_input(model, inputs))
    info = device.check_model(model_hash) if model_hash is not None else (device.info or device.hello())
    expected = simulate(model, inputs)
    dev_out = np.empty_like(expected)
    counters: list[int] = []
    mismatch_idx: list[int] = []
    start = time.monotonic()
    with track(desc, len(x), unit="inference", settings=progress) as bar:
        for i in range(len(x)):
            delta, out = device.infer(x[i].tobytes())
            dev_out[i] = np.frombuffer(out, dtype=np.int8)
            counters.append(delta)
            if out != expected[i].tobytes():
                mismatch_idx.append(i)
            if on_result is not None:
                on_result(i, out, expected[i].tobytes())
            bar.update(1, mismatches=len(mismatch_idx))
    seconds = time.monotonic() - start
    n = len(x)
    dev_acc = sim_acc = None
    if labels is not None and n:
        y = np.asarray(labels).reshape(-1)[:n]
        dev_acc = float(np.mean(_argmax_first(dev_out) == y))
        sim_acc = float(np.mean(_argmax_first(expected) == y))
    c = np.asarray(counters, dtype=np.int64)
    return VerifyReport(
        n=n,
        bit_exact=n - len(mismatch_idx),
        mismatches=len(mismatch_idx),
        device_accuracy=dev_acc,
        sim_accuracy=sim_acc,
        counter_unit=info.counter_unit,
        counter_median=float(np.median(c)) if n else None,
        counter_max=int(c.max()) if n else None,
        seconds=seconds,
        inferences_per_s=n / seconds if seconds > 0 else 0.0,
        board=info.board,
        model_hash=info.model_hash,
        mismatch_indices=mismatch_idx[:50],
        link=asdict(device.stats),
    )


def raise_on_mismatch(report: VerifyReport) -> None:
    if report.mismatches:
        first = ", ".join(str(i) for i in report.mismatch_indices[:10])
        raise MismatchError(
            f"{report.mismatches} of {report.n} device outputs differ from the simulator's (first at "
            f"input index {first}) on {report.board}: the firmware does not compute what the model file "
            "says. Rebuild the firmware from this exact .mcudc file; if it persists, report it with the "
            "model file and the board."
        )
