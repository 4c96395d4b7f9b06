"""Run firmware on an emulated board under ``qemu-system-arm``.

API (small on purpose; the device harness builds on it)::

    from mcu_dc.device.qemu import QemuBoard
    with QemuBoard("qemu-mps2-an386", "build/firmware.elf") as q:
        link = serial.serial_for_url(q.url, timeout=1)   # q.url == "socket://127.0.0.1:PORT"
        ...                                              # talk to the firmware
        code = q.wait(timeout=10)                        # the firmware's semihosting exit code
    # leaving the block ALWAYS stops QEMU: success, exception, timeout or Ctrl-C

* ``QemuBoard(board, elf, *, start_timeout=20.0, extra_args=())``: ``board`` is a board id,
  a :class:`~mcu_dc.deploy.boards.Board` or a path to a board file; it must have a
  ``[qemu]`` table. Entering the block starts::

      qemu-system-arm -M <machine> -nographic -monitor none -kernel fw.elf
          -icount shift=0,align=off,sleep=off -semihosting-config enable=on,target=native
          [-serial null ...] -serial tcp:127.0.0.1:0,server=on,wait=on,nodelay=on

  QEMU picks a free loopback port itself (port 0) and prints it; the call waits for that
  listening marker on QEMU's stderr (bounded by ``start_timeout``, no sleeps) and fills in
  ``port`` and ``url``. QEMU does not run the firmware until a client connects
  (``wait=on``), so no byte the firmware writes is lost. The board's UART is QEMU serial
  port ``serial_index`` (earlier ones get ``-serial null``).
* ``wait(timeout) -> int``: wait for QEMU to exit; returns the exit code the firmware
  passed to semihosting SYS_EXIT_EXTENDED (:func:`mcu_dc_bsp_exit`). Raises
  :class:`~mcu_dc.errors.DeviceError` on timeout (QEMU is still stopped on block exit).
* ``stop() -> int | None``: terminate (then kill) QEMU; idempotent. ``exit_code`` is the
  code once QEMU has exited by itself, ``None`` if it was stopped by us.
* ``stderr_text()``: what QEMU wrote to stderr so far (for error messages).
* Instruction counts: with ``-icount shift=0`` one guest instruction is 1 ns of virtual
  time; boards/<id>.toml ``[counter]`` says how the BSP turns timer ticks into instructions.

Every QEMU process is also registered for an ``atexit`` kill, so none outlives Python.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import shutil
import subprocess
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType

from mcu_dc.deploy.boards import Board, load_board
from mcu_dc.errors import BoardError, DeviceError

QEMU_BINARY = "qemu-system-arm"
ICOUNT = "shift=0,align=off,sleep=off"
_MARKER = re.compile(r"waiting for connection on: disconnected:tcp:127\.0\.0\.1:(\d+)")

_live: weakref.WeakSet[subprocess.Popen[bytes]] = weakref.WeakSet()


def _kill_all_live() -> None:  # pragma: no cover - process teardown
    for proc in list(_live):
        _terminate(proc)


atexit.register(_kill_all_live)


def _terminate(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
    _live.discard(proc)


def qemu_command(board: Board, elf: Path, *, port: int = 0, extra_args: tuple[str, ...] = ()) -> list[str]:
    """The qemu-system-arm command line for ``board`` running ``elf``."""
    if board.qemu is None:
        raise BoardError(
            f"board {board.id!r} is not emulated (no [qemu] table in {board.path}); use a "
            "qemu-* board, or pass --port with a serial URL for real hardware."
        )
    cmd = [
        QEMU_BINARY,
        "-M",
        board.qemu.machine,
        "-nographic",
        "-monitor",
        "none",
        "-kernel",
        str(elf),
        "-icount",
        ICOUNT,
        "-semihosting-config",
        "enable=on,target=native",
    ]
    for _ in range(board.qemu.serial_index):
        cmd += ["-serial", "null"]
    cmd += ["-serial", f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on", *extra_args]
    return cmd


class QemuBoard:
    """A running emulated board; see the module docstring."""

    def __init__(
        self,
        board: str | Path | Board,
        elf: str | Path,
        *,
        start_timeout: float = 20.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.board = board if isinstance(board, Board) else load_board(board)
        self.elf = Path(elf)
        self.start_timeout = start_timeout
        self.extra_args = extra_args
        self.port: int | None = None
        self.url: str = ""
        self.exit_code: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: list[str] = []
        self._stderr_lock = threading.Lock()
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> QemuBoard:
        if self._proc is not None:
            raise DeviceError("this QemuBoard is already started; use a new one per run")
        if not self.elf.is_file():
            raise DeviceError(f"firmware {self.elf} does not exist; build it first (mcu-dc build DIR)")
        with self.elf.open("rb") as f:
            if f.read(4) != b"\x7fELF":
                raise DeviceError(
                    f"firmware {self.elf} is not an ELF file; pass the firmware.elf that `mcu-dc build` wrote"
                )
        if shutil.which(QEMU_BINARY) is None:
            raise DeviceError(
                f"{QEMU_BINARY} is not installed; install Debian's qemu-system-arm "
                "(apt-get install --no-install-recommends qemu-system-arm) or use a real board with --port"
            )
        cmd = qemu_command(self.board, self.elf, extra_args=self.extra_args)
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches us, and we stop QEMU ourselves
        )
        _live.add(self._proc)
        self._reader = threading.Thread(target=self._read_stderr, name="qemu-stderr", daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        try:
            for raw in iter(proc.stderr.readline, b""):
                line = raw.decode("utf-8", "replace")
                with self._stderr_lock:
                    self._stderr.append(line)
                m = _MARKER.search(line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    self._ready.set()
        except (OSError, ValueError):  # the pipe was closed under us
            pass
        finally:
            self._ready.set()  # EOF: QEMU ended; _wait_ready sees no port

    def _wait_ready(self) -> None:
        if not self._ready.wait(self.start_timeout):
            raise DeviceError(
                f"{QEMU_BINARY} -M {self.board.qemu.machine if self.board.qemu else '?'} did not open its "
                f"serial port within {self.start_timeout:g} s; stderr: {self.stderr_text()[-500:]!r}"
            )
        if self.port is None:
            assert self._proc is not None
            code = self._proc.wait(timeout=5)
            raise DeviceError(
                f"{QEMU_BINARY} exited (code {code}) before opening its serial port for {self.elf}: "
                f"{self.stderr_text().strip()[-800:]}"
            )
        self.url = f"socket://127.0.0.1:{self.port}"

    def wait(self, timeout: float) -> int:
        """Wait until the firmware exits (semihosting); return its exit code."""
        if self._proc is None:
            raise DeviceError("QEMU was not started")
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise DeviceError(
                f"the firmware on {self.board.id} did not exit within {timeout:g} s "
                f"(stderr: {self.stderr_text().strip()[-300:]!r})"
            ) from exc
        self.exit_code = code
        _live.discard(self._proc)
        return code

    def stop(self) -> int | None:
        """Stop QEMU (terminate, then kill); returns the exit code if it had exited by itself."""
        proc = self._proc
        if proc is None:
            return None
        code = proc.poll()
        if code is not None and self.exit_code is None:
            self.exit_code = code
        _terminate(proc)
        if self._reader is not None:  # QEMU is gone: its stderr reaches EOF
            self._reader.join(timeout=2)
        if proc.stderr is not None:
            with contextlib.suppress(OSError):
                proc.stderr.close()
        return self.exit_code

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stderr_text(self) -> str:
        with self._stderr_lock:
            return "".join(self._stderr)

    def __enter__(self) -> QemuBoard:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort; the context manager is the normal path
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                _terminate(proc, grace=1.0)


def run_to_exit(
    board: str | Board,
    elf: str | Path,
    timeout: float,
    *,
    send: bytes = b"",
    until: bytes | None = None,
    then: bytes = b"",
) -> tuple[int, bytes]:
    """Boot ``elf``, send ``send``, collect UART output until the firmware exits.

    When ``until`` appears in the output, ``then`` is sent (once). Returns
    ``(exit_code, uart_bytes)``; raises DeviceError if the firmware runs past ``timeout``.
    For smoke tests (e.g. a hello firmware); the protocol harness uses :class:`QemuBoard`.
    """
    import serial  # pyserial; imported here so the module loads without it

    deadline = time.monotonic() + timeout
    out = bytearray()
    with QemuBoard(board, elf) as q:
        link = serial.serial_for_url(q.url, timeout=0.05)
        try:
            if send:
                link.write(send)
            sent_then = until is None
            while time.monotonic() < deadline:
                try:
                    # pyserial's socket read drops what it has read when the peer closes
                    # mid-call, so read only what is waiting (at least one byte).
                    data = link.read(max(1, link.in_waiting))
                except serial.SerialException:  # QEMU closed the socket: the firmware exited
                    break
                out += data
                if not sent_then and until is not None and until in out:
                    link.write(then)
                    sent_then = True
                if not data and not q.running:
                    break
            if q.running and time.monotonic() >= deadline:
                raise DeviceError(
                    f"the firmware on {q.board.id} did not exit within {timeout:g} s; "
                    f"UART output so far: {bytes(out)[-200:]!r}"
                )
            code = q.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            link.close()
    return code, bytes(out)
