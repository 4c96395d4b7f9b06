"""Progress of long loops, told truthfully on a terminal and in a log.

One tracker per loop (a training stage, a sensitivity analysis, a device verification).
Where the output goes decides how it looks:

* **a terminal** (``stream.isatty()``): a tqdm bar with the rate and the ETA;
* **anything else** (a log file, CI, a pipe): plain lines, never a carriage return or an
  ANSI escape: one when the loop starts, then at most one every ``interval_s`` seconds
  (``$MCU_DC_PROGRESS_INTERVAL``, default 10), and one when it ends, e.g.::

      dense: starting, 10 epochs of 469 batches
      dense: epoch 3/10, batch 120/469 (25.6 %), loss 0.231, 412 batch/s, ETA 1m05s
      dense: done, epoch 10/10, batch 469/469 (100.0 %), loss 0.087, 415 batch/s, 11s in all

* **quiet** (``enabled=False``, the CLI's ``--quiet``): nothing at all. Errors are not
  progress: they are raised as :class:`mcu_dc.errors.McuDcError` and printed by the CLI.

API (what a new loop, e.g. ``mcu-dc sweep``, uses)::

    from mcu_dc.progress import ProgressSettings, add_quiet_argument, settings_from_args, track

    add_quiet_argument(parser)               # --quiet, like every long-running command
    settings = settings_from_args(args)      # ProgressSettings(enabled=not args.quiet)
    with track("sweep", total=n_trials, unit="trial", settings=settings) as p:
        for trial in trials:
            ...
            p.update(1, best=best_score)     # advance; keyword stats are shown as "best 0.981"

``track(desc, total, unit=..., per_epoch=B, settings=...)`` with ``per_epoch`` counts
``total = epochs * B`` steps and shows "epoch e/E, batch b/B". ``settings`` may also be a
bool (True: the defaults, False: quiet), which is what the library functions'
``progress=`` parameters accept. :class:`ProgressSettings` fields: ``enabled``, ``style``
(``auto`` | ``bar`` | ``lines``), ``interval_s``, ``stream`` (default ``sys.stderr``) and
``clock`` (a monotonic time source; tests inject a fake one and never sleep).
A disabled tracker's ``update`` is an empty method, so per-batch updates cost nothing
measurable when progress is off. Nested or parallel loops (e.g. trials in workers) should
pass ``False`` to the inner ones so one line of progress stays readable.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from mcu_dc.errors import ConfigError

__all__ = [
    "DEFAULT_INTERVAL_S",
    "INTERVAL_ENV",
    "Progress",
    "ProgressSettings",
    "add_quiet_argument",
    "as_settings",
    "format_duration",
    "settings_from_args",
    "track",
]

DEFAULT_INTERVAL_S = 10.0
INTERVAL_ENV = "MCU_DC_PROGRESS_INTERVAL"
STYLES = ("auto", "bar", "lines")
_BAR_POSTFIX_S = 0.1  # a tqdm bar's stats are re-formatted at most this often


def _interval_from_env() -> float:
    raw = os.environ.get(INTERVAL_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise ConfigError(
            f"{INTERVAL_ENV}={raw!r}: the seconds between two progress lines in a log must be a number >= 0 "
            f"(0 writes a line on every step; unset it for the default {DEFAULT_INTERVAL_S:g} s)"
        )
    return value


@dataclass(frozen=True)
class ProgressSettings:
    """How progress is shown (see the module docstring)."""

    enabled: bool = True  # False: nothing is written (--quiet)
    style: str = "auto"  # auto: a bar on a terminal, plain lines elsewhere; or force "bar" / "lines"
    interval_s: float | None = None  # lines: at most one per this; None: $MCU_DC_PROGRESS_INTERVAL or 10
    stream: IO[str] | None = None  # None: sys.stderr as it is when a tracker starts
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ConfigError(f"progress style {self.style!r} is not one of {', '.join(STYLES)}")
        if self.interval_s is None:  # read once, here: a bad value fails before any work starts
            interval = _interval_from_env() if self.enabled else DEFAULT_INTERVAL_S
            object.__setattr__(self, "interval_s", interval)
        if not self.interval >= 0:
            raise ConfigError(f"progress interval_s = {self.interval_s} must be >= 0 seconds")

    @property
    def interval(self) -> float:
        """Seconds between two progress lines (``interval_s`` once resolved)."""
        return DEFAULT_INTERVAL_S if self.interval_s is None else self.interval_s


def as_settings(progress: bool | ProgressSettings | None) -> ProgressSettings:
    """``progress=`` as library functions take it: a bool (True: the defaults, False: quiet) or settings."""
    if isinstance(progress, ProgressSettings):
        return progress
    return ProgressSettings(enabled=progress is None or bool(progress))


def add_quiet_argument(parser: argparse.ArgumentParser, *aliases: str, what: str = "") -> None:
    """``--quiet`` (plus ``aliases``, e.g. ``--no-progress``): no progress bars or lines."""
    parser.add_argument(
        "--quiet",
        *aliases,
        dest="quiet",
        action="store_true",
        help="no progress bar or progress lines" + (f", {what}" if what else "") + "; errors still print",
    )


def settings_from_args(args: argparse.Namespace) -> ProgressSettings:
    """The settings a command's ``--quiet`` asks for."""
    return ProgressSettings(enabled=not getattr(args, "quiet", False))


def format_duration(seconds: float) -> str:
    """``42s``, ``1m05s``, ``2h03m``."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _plural(unit: str) -> str:
    return unit + ("es" if unit.endswith(("s", "sh", "ch", "x")) else "s")


def _format_stat(key: str, value: object) -> str:
    if isinstance(value, float):
        return f"{key} {value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{key} {value:,}"
    return f"{key} {value}"


class Progress:
    """A loop's progress; this base class writes nothing (the quiet tracker)."""

    active = False

    def __init__(self, desc: str, total: int, unit: str, per_epoch: int | None, settings: ProgressSettings):
        self.desc = desc
        self.total = max(0, int(total))
        self.unit = unit
        self.per_epoch = per_epoch if per_epoch and per_epoch > 0 else None
        self.settings = settings
        self.n = 0
        self.stats: dict[str, object] = {}
        self.closed = False

    def update(self, n: int = 1, **stats: object) -> None:
        """Advance by ``n`` steps; ``stats`` (loss=0.23, layer="fc1") replace the ones shown."""

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ text

    @property
    def epochs(self) -> int:
        return math.ceil(self.total / self.per_epoch) if self.per_epoch else 1

    def position(self, with_epoch: bool = True) -> str:
        """``epoch 3/10, batch 120/469 (25.6 %)`` or ``inference 40/300 (13.3 %)``."""
        if self.per_epoch is None:
            pct = 100.0 * self.n / self.total if self.total else 100.0
            return f"{self.unit} {self.n:,}/{self.total:,} ({pct:.1f} %)"
        epoch = max(1, math.ceil(self.n / self.per_epoch))
        in_epoch = self.n - (epoch - 1) * self.per_epoch
        per = min(self.per_epoch, self.total - (epoch - 1) * self.per_epoch)
        text = f"{self.unit} {in_epoch:,}/{per:,} ({100.0 * in_epoch / per:.1f} %)"
        return f"epoch {epoch}/{self.epochs}, {text}" if with_epoch else text

    def stats_text(self) -> str:
        return ", ".join(_format_stat(k, v) for k, v in self.stats.items())

    def rate_text(self, elapsed: float) -> str:
        if self.n <= 0 or elapsed <= 0:
            return f"? {self.unit}/s"
        rate = self.n / elapsed
        if rate >= 100:
            return f"{rate:,.0f} {self.unit}/s"
        if rate >= 1:
            return f"{rate:.1f} {self.unit}/s"
        return f"{1 / rate:.1f} s/{self.unit}"

    def eta_s(self, elapsed: float) -> float:
        if self.n <= 0 or elapsed <= 0:
            return math.inf
        return (self.total - self.n) * elapsed / self.n

    def start_text(self) -> str:
        if self.per_epoch is None:
            return f"{self.desc}: starting, {self.total:,} {_plural(self.unit)}"
        per = min(self.per_epoch, self.total)
        epochs = f"{self.epochs} epoch{'s' * (self.epochs != 1)}"
        return f"{self.desc}: starting, {epochs} of {per:,} {_plural(self.unit)}"


class _Lines(Progress):
    """Plain lines for logs: start, at most one per ``interval_s``, end."""

    active = True

    def __init__(self, *args: Any, stream: IO[str]) -> None:
        super().__init__(*args)
        self.stream = stream
        self.clock = self.settings.clock
        self.t0 = self.last = self.clock()
        self._write(self.start_text())

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def _line(self, head: str, tail: str, elapsed: float) -> str:
        parts = [self.position()]
        if self.stats:
            parts.append(self.stats_text())
        parts.append(self.rate_text(elapsed))
        parts.append(tail)
        return f"{self.desc}: {head}{', '.join(parts)}"

    def update(self, n: int = 1, **stats: object) -> None:
        self.n += n
        if stats:
            self.stats.update(stats)
        now = self.clock()
        if now - self.last >= self.settings.interval and self.n < self.total:
            self.last = now
            elapsed = now - self.t0
            self._write(self._line("", f"ETA {format_duration(self.eta_s(elapsed))}", elapsed))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        elapsed = self.clock() - self.t0
        head = "done, " if self.n >= self.total else "stopped at "
        self._write(self._line(head, f"{format_duration(elapsed)} in all", elapsed))


class _Bar(Progress):
    """A tqdm bar for a terminal."""

    active = True

    def __init__(self, *args: Any, stream: IO[str]) -> None:
        super().__init__(*args)
        from tqdm import tqdm

        self.clock = self.settings.clock
        self.last = -math.inf
        self.bar = tqdm(
            total=self.total, desc=self.desc, unit=self.unit, file=stream, leave=False, mininterval=0.1
        )

    def _postfix(self) -> str:
        parts = []
        if self.per_epoch is not None:
            parts.append(f"epoch {max(1, math.ceil(self.n / self.per_epoch))}/{self.epochs}")
        if self.stats:
            parts.append(self.stats_text())
        return ", ".join(parts)

    def update(self, n: int = 1, **stats: object) -> None:
        self.n += n
        if stats:
            self.stats.update(stats)
        now = self.clock()
        if now - self.last >= _BAR_POSTFIX_S:
            self.last = now
            self.bar.set_postfix_str(self._postfix(), refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bar.close()


def _isatty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed file
        return False


def track(
    desc: str,
    total: int,
    *,
    unit: str = "step",
    per_epoch: int | None = None,
    settings: bool | ProgressSettings | None = True,
) -> Progress:
    """A tracker for a loop of ``total`` steps (use it as a context manager; see the module docstring)."""
    s = as_settings(settings)
    if not s.enabled or total <= 0:
        return Progress(desc, total, unit, per_epoch, s)
    stream = s.stream if s.stream is not None else sys.stderr
    if stream is None:  # pythonw, or stderr closed
        return Progress(desc, total, unit, per_epoch, s)
    style = s.style
    if style == "auto":
        style = "bar" if _isatty(stream) else "lines"
    cls = _Bar if style == "bar" else _Lines
    return cls(desc, total, unit, per_epoch, s, stream=stream)
