"""One call from a compressed model to a project: ``generate(model, board, out_dir)``.

``board="host"`` writes a native stdin/stdout program (:mod:`mcu_dc.deploy.hostproject`);
any other board id is handed to :func:`mcu_dc.deploy.mcuproject.write_mcu_project`, with the
protocol-server firmware (``app="verify"``) or the text demo (``app="demo"``, whose test inputs
:mod:`mcu_dc.deploy.demo_data` embeds). :func:`export_model` writes only the model's C arrays,
for a project of the user's own that links the runtime library (``mcu-dc library``).
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
    model: Any,
    board: str = "host",
    out_dir: str | os.PathLike[str] = "out",
    name: str | None = None,
    *,
    app: str = "verify",
    dataset: str | None = None,
    samples: int | None = None,
    data_dir: str | None = None,
    allow_no_serial: bool = False,
) -> Path:
    """Write a buildable project for ``model`` on ``board`` into ``out_dir``; return its path.

    ``app="demo"`` (boards only) embeds the first ``samples`` (default 4) test inputs of
    ``dataset`` (default: the one the model file records) in a firmware that prints its results.
    A board without a serial driver is refused unless ``allow_no_serial`` (then a warning).
    """
    compressed = _as_compressed(model)
    out = Path(out_dir)
    if app != "demo" and (dataset is not None or samples is not None or data_dir is not None):
        raise ConfigError(
            "--dataset, --samples and --data-dir choose the test inputs the demo firmware embeds; add "
            "--app demo, or leave them out for the verify firmware (`mcu-dc verify --dataset` streams "
            "its inputs)"
        )
    if board == "host":
        if app != "verify":
            raise ConfigError(
                f"--app {app} is firmware for a microcontroller board; --board host writes a native "
                "stdin/stdout program instead. Pass --board with an emulated board (e.g. qemu-mps2-an386, "
                "then `mcu-dc run DIR`) or a real one (see `mcu-dc boards`)."
            )
        from mcu_dc.deploy.hostproject import write_host_project

        return write_host_project(compressed, out, name)
    try:
        from mcu_dc.deploy.mcuproject import write_mcu_project
    except ImportError as exc:
        raise BoardError(
            f"cannot generate a project for board {board!r}: microcontroller support "
            f"(mcu_dc.deploy.mcuproject) is unavailable ({exc}); use --board host or reinstall mcu_dc"
        ) from None
    demo = None
    if app == "demo":
        from mcu_dc.deploy.boards import load_board
        from mcu_dc.deploy.demo_data import DEFAULT_SAMPLES, demo_data
        from mcu_dc.deploy.mcuproject import check_serial_driver

        check_serial_driver(load_board(board), app, allow_no_serial)  # before the dataset is read
        demo = demo_data(compressed, dataset, DEFAULT_SAMPLES if samples is None else samples, data_dir)
    return Path(
        write_mcu_project(compressed, board, out, name, app=app, demo=demo, allow_no_serial=allow_no_serial)
    )


def export_model(model: Any, out_dir: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Write only the model's C sources (``N_model.c``, ``N_model.h``, ``mcu_dc_models.h``) into
    ``out_dir``, for a project of the user's own; returns the files written.

    Other files in ``out_dir`` are left alone. Every file is rendered before the first one is
    written, and each is written atomically, so a failure leaves no half-written file.
    """
    from mcu_dc.deploy import codegen

    compressed = _as_compressed(model)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass the directory to write the model's sources into")
    return codegen.write_model_sources([compressed], out, [name])
