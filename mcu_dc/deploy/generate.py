"""One call from a compressed model to a project: ``generate(model, board, out_dir)``.

``board="host"`` writes a native stdin/stdout program (:mod:`mcu_dc.deploy.hostproject`);
any other board id is handed to :func:`mcu_dc.deploy.mcuproject.write_mcu_project`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mcu_dc.errors import BoardError, ConfigError


def _as_compressed(model: Any) -> Any:
    """Accept a ``CompressedModel``, a path to a ``.mcudc`` file, or an ``IntegerModel``."""
    if hasattr(model, "blob"):
        return model
    if isinstance(model, (str, os.PathLike)):
        from mcu_dc.core.model_file import load

        return load(model)
    from mcu_dc.core.ir import IntegerModel

    if isinstance(model, IntegerModel):
        from mcu_dc.core.model_file import CompressedModel

        return CompressedModel(model)
    raise ConfigError(
        f"generate() needs a CompressedModel, an IntegerModel or a .mcudc path, got {type(model).__name__}"
    )


def generate(
    model: Any, board: str = "host", out_dir: str | os.PathLike[str] = "out", name: str | None = None
) -> Path:
    """Write a buildable project for ``model`` on ``board`` into ``out_dir``; return its path."""
    compressed = _as_compressed(model)
    out = Path(out_dir)
    if board == "host":
        from mcu_dc.deploy.hostproject import write_host_project

        return write_host_project(compressed, out, name)
    try:
        from mcu_dc.deploy.mcuproject import write_mcu_project
    except ImportError as exc:
        raise BoardError(
            f"cannot generate a project for board {board!r}: microcontroller support "
            f"(mcu_dc.deploy.mcuproject) is unavailable ({exc}); use --board host or reinstall mcu_dc"
        ) from None
    return Path(write_mcu_project(compressed, board, out, name))
