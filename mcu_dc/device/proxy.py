"""Loopback TCP plumbing for tests: a fault-injecting proxy and a process bridge.

* :class:`FaultProxy` sits between the harness (``socket://127.0.0.1:PORT``) and a
  device's TCP serial port (QEMU's ``-serial tcp:…``) and corrupts and drops bytes in
  either direction, deterministically from a seed and bounded in number (or, for a long
  soak, unbounded: ``max_faults=None``), so a test can prove that every result still
  comes out right.
* :class:`ProcessBridge` serves a program that speaks the protocol on stdin/stdout (the
  host build of the firmware) on a loopback TCP port, so the harness reaches it through
  the very same ``serial.serial_for_url("socket://…")`` path as QEMU or a board.

Both accept a single connection and end cleanly on :meth:`close` (also a context manager).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mcu_dc.errors import DeviceError

_CHUNK = 4096


@dataclass
class FaultSettings:
    """What the proxy does to the bytes it forwards (rates are per byte)."""

    seed: int = 0
    corrupt_rate: float = 0.0  # flip a random non-zero XOR mask into the byte
    drop_rate: float = 0.0  # remove the byte
    max_faults: int | None = 32  # faults per direction over the proxy's life; None: unlimited (rate only)
    to_device: bool = True  # faults on the harness → device direction
    to_host: bool = True  # faults on the device → harness direction
    skip_bytes: int = 0  # bytes per direction passed untouched first (e.g. the handshake)


def _per_direction() -> dict[str, int]:
    return {"to_device": 0, "to_host": 0}


@dataclass
class FaultStats:
    corrupted: int = 0
    dropped: int = 0
    forwarded: dict[str, int] = field(default_factory=_per_direction)
    corrupted_by_direction: dict[str, int] = field(default_factory=_per_direction)
    dropped_by_direction: dict[str, int] = field(default_factory=_per_direction)

    @property
    def faults(self) -> int:
        return self.corrupted + self.dropped


def _listen() -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    return srv


class _Pumps:
    """Threads and sockets shared by both classes."""

    def __init__(self) -> None:
        self._server = _listen()
        self.port: int = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self._conn: socket.socket | None = None
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _spawn(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=self._guard, args=(target, *args), daemon=True)
        self._threads.append(t)
        t.start()

    def _guard(self, target, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            target(*args)
        except OSError as exc:
            if not self._closing.is_set():
                self.error = exc
        finally:
            self._shutdown_sockets()

    def _accept(self, timeout_s: float) -> socket.socket | None:
        self._server.settimeout(timeout_s)
        try:
            conn, _ = self._server.accept()
        except (TimeoutError, OSError):
            return None
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        return conn

    def _shutdown_sockets(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)

    def _close_pumps(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._server.close()
        self._shutdown_sockets()
        for t in self._threads:
            t.join(timeout=5)
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()


class FaultProxy(_Pumps):
    """Forward one connection to ``upstream`` (host, port), corrupting and dropping bytes."""

    def __init__(
        self, upstream: tuple[str, int], settings: FaultSettings | None = None, accept_timeout_s: float = 60.0
    ) -> None:
        super().__init__()
        self.upstream = upstream
        self.settings = settings or FaultSettings()
        self.stats = FaultStats()
        seed = self.settings.seed
        dirs = ("to_device", "to_host")
        self._rolls = {d: np.random.default_rng([seed, i, 0]) for i, d in enumerate(dirs)}
        self._masks = {d: np.random.default_rng([seed, i, 1]) for i, d in enumerate(dirs)}
        self._faults = {d: 0 for d in dirs}
        self._lock = threading.Lock()
        self._up: socket.socket | None = None
        self._seen = {"to_device": 0, "to_host": 0}
        self._spawn(self._run, accept_timeout_s)

    def _mangle(self, data: bytes, direction: str) -> bytes:
        s = self.settings
        enabled = s.to_device if direction == "to_device" else s.to_host
        with self._lock:
            start = self._seen[direction]
            self._seen[direction] += len(data)
            self.stats.forwarded[direction] += len(data)
            budget = None if s.max_faults is None else s.max_faults - self._faults[direction]
            if not enabled or (budget is not None and budget <= 0):
                return data
            # One generator per direction and per purpose: the faults depend only on the
            # byte's position in its direction's stream, not on how TCP chunks it.
            rolls = self._rolls[direction].random(len(data))
            masks = self._masks[direction].integers(1, 256, size=len(data))
            eligible = np.arange(start, start + len(data)) >= s.skip_bytes
            drop = eligible & (rolls < s.drop_rate)
            corrupt = eligible & ~drop & (rolls < s.drop_rate + s.corrupt_rate)
            if budget is not None:  # only the first `budget` faults of this chunk happen
                allowed = np.cumsum(drop | corrupt) <= budget
                drop &= allowed
                corrupt &= allowed
            n_drop, n_corrupt = int(drop.sum()), int(corrupt.sum())
            if not n_drop and not n_corrupt:
                return data
            self._faults[direction] += n_drop + n_corrupt
            self.stats.dropped += n_drop
            self.stats.corrupted += n_corrupt
            self.stats.dropped_by_direction[direction] += n_drop
            self.stats.corrupted_by_direction[direction] += n_corrupt
            out = np.frombuffer(data, dtype=np.uint8).copy()
            out[corrupt] ^= masks[corrupt].astype(np.uint8)
            return out[~drop].tobytes()

    def _run(self, accept_timeout_s: float) -> None:
        conn = self._accept(accept_timeout_s)
        if conn is None:
            return
        up = socket.create_connection(self.upstream, timeout=30)
        up.settimeout(None)
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._up = up
        self._spawn(self._pump, up, conn, "to_host")
        self._pump(conn, up, "to_device")

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        while not self._closing.is_set():
            data = src.recv(_CHUNK)
            if not data:
                break
            out = self._mangle(data, direction)
            if out:
                dst.sendall(out)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._up is not None:
            with contextlib.suppress(OSError):
                self._up.shutdown(socket.SHUT_RDWR)
        self._close_pumps()
        if self._up is not None:
            with contextlib.suppress(OSError):
                self._up.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ProcessBridge(_Pumps):
    """Run ``argv`` and serve its stdin/stdout on a loopback TCP port (one connection)."""

    def __init__(self, argv: Sequence[str], accept_timeout_s: float = 60.0) -> None:
        super().__init__()
        try:
            self.process = subprocess.Popen(
                list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            self._close_pumps()
            raise DeviceError(f"cannot start {argv[0]}: {exc}; build the host firmware first") from None
        self._spawn(self._run, accept_timeout_s)

    def _run(self, accept_timeout_s: float) -> None:
        conn = self._accept(accept_timeout_s)
        if conn is None:
            return
        self._spawn(self._to_host, conn)
        assert self.process.stdin is not None
        stdin = self.process.stdin
        try:
            while not self._closing.is_set():
                data = conn.recv(_CHUNK)
                if not data:
                    break
                stdin.write(data)
                stdin.flush()
        except BrokenPipeError:
            pass
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _to_host(self, conn: socket.socket) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while True:
            data = os.read(fd, _CHUNK)
            if not data:
                break
            conn.sendall(data)

    def close(self, timeout_s: float = 10.0) -> int | None:
        """Stop the bridge; end the process (terminate, then kill); return its exit code."""
        self._closing.set()
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)
        self._close_pumps()
        for f in (self.process.stdout, self.process.stderr):
            if f is not None:
                f.close()
        return self.process.returncode

    def __enter__(self) -> ProcessBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
