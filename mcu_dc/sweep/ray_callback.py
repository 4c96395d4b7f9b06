"""The Tune callback that hands each finished trial to the sweep (imports Ray: load it only to run).

A module-level class, so Tune's pickle of its run config (``tuner.pkl``) names it instead of copying
it; the function it calls (which writes to the terminal) is left out of that pickle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray import tune


class Collector(tune.Callback):  # type: ignore[misc]
    """Calls ``on_complete(trial)`` / ``on_error(trial)`` in the driver's process as trials end."""

    def __init__(self, on_complete: Callable[[Any], None], on_error: Callable[[Any], None]) -> None:
        self._on_complete: Callable[[Any], None] | None = on_complete
        self._on_error: Callable[[Any], None] | None = on_error

    def __getstate__(self) -> dict[str, Any]:
        return {"_on_complete": None, "_on_error": None}

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self._on_complete is not None:
            self._on_complete(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self._on_error is not None:
            self._on_error(trial)
