"""``verify``: run a test set on a device and prove it computes what the simulator says.

:func:`verify` takes a ``.mcudc`` file (or a generated project directory) and a board:

* with ``port`` (``/dev/ttyACM0``, ``socket://…``, ``rfc2217://…``) it talks to firmware
  that is already running there;
* for an emulated board (``boards/<id>.toml`` has a ``[qemu]`` table) and no port, it
  generates and builds the firmware (cached in the work directory by board and model
  hash), boots it under ``qemu-system-arm`` (:class:`mcu_dc.device.qemu.QemuBoard`) and
  always stops QEMU again — on success, error, timeout or Ctrl-C.

Either way the handshake checks the model hash, every output is compared with
:func:`mcu_dc.core.simulator.simulate`, and the result is a
:class:`~mcu_dc.device.harness.VerifyReport`. :func:`raise_on_mismatch` turns any
difference into a :class:`~mcu_dc.errors.MismatchError`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mcu_dc.device.harness import Device, LinkSettings, VerifyReport, raise_on_mismatch, run_inputs
from mcu_dc.errors import ConfigError, DataError, DeviceError
from mcu_dc.progress import ProgressSettings

__all__ = [
    "VerifySettings",
    "build_firmware",
    "dataset_for_model",
    "default_work_dir",
    "load_model_source",
    "load_test_inputs",
    "raise_on_mismatch",
    "run_on_qemu",
    "verify",
]


def default_work_dir() -> Path:
    """Where built firmware is cached: ``$MCU_DC_CACHE`` or ``~/.cache/mcu_dc``."""
    env = os.environ.get("MCU_DC_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mcu_dc"


@dataclass
class VerifySettings:
    board: str
    port: str | None = None
    dataset: str = "mnist"
    data_dir: str | None = None
    limit: int | None = None
    work_dir: Path | None = None
    progress: bool | ProgressSettings = True  # per inference; see mcu_dc.progress
    link: LinkSettings = field(default_factory=LinkSettings)
    qemu_start_timeout_s: float = 30.0
    qemu_exit_timeout_s: float = 10.0


# ------------------------------------------------------------------------------ inputs

_BLOB_RE = re.compile(r"const\s+uint8_t\s+(\w+)_blob\s*\[[^\]]*\][^=]*=\s*\{(.*?)\};", re.S)


def _blob_from_project(project: Path) -> bytes:
    """The model blob compiled into a generated project (its ``src/*_model.c``)."""
    sources = sorted(project.glob("src/*_model.c")) + sorted(project.glob("*_model.c"))
    for src in sources:
        text = re.sub(r"/\*.*?\*/", "", src.read_text(encoding="utf-8"), flags=re.S)
        m = _BLOB_RE.search(text)
        if m:
            return bytes(int(tok, 0) for tok in re.findall(r"0[xX][0-9a-fA-F]+|\d+", m.group(2)))
    raise ConfigError(
        f"{project} holds no generated model source (src/*_model.c with a `const uint8_t N_blob[]`); "
        "pass the .mcudc file instead, or regenerate the project with `mcu-dc generate`."
    )


def load_model_source(source: str | os.PathLike[str]) -> tuple[Any, Path | None]:
    """(CompressedModel, project dir or None) from a ``.mcudc`` file or a project directory.

    A directory may hold a ``.mcudc`` file (used as is) or be a generated project, whose
    compiled blob is the model (the firmware there runs exactly that blob).
    """
    from mcu_dc.core.model_file import CompressedModel, load

    path = Path(source)
    if path.is_dir():
        files = sorted(path.glob("*.mcudc"))
        if len(files) == 1:
            return load(files[0]), (path if (path / "mcu_dc_project.json").is_file() else None)
        if len(files) > 1:
            raise ConfigError(
                f"{path} holds {len(files)} .mcudc files ({', '.join(f.name for f in files)}); "
                "pass one of them"
            )
        if not (path / "mcu_dc_project.json").is_file():
            raise ConfigError(
                f"{path} is neither a .mcudc file nor a generated project (no mcu_dc_project.json); "
                "pass the model file written by `mcu-dc compress`."
            )
        blob = _blob_from_project(path)
        return CompressedModel(blob=blob, meta={"name": path.name}), path
    return load(path), None


def dataset_for_model(ds: Any, meta: dict[str, Any] | None, model: Any, label: str) -> Any:
    """``ds`` as the model takes it: raw images normalized with the model file's recorded
    ``meta["input_norm"]`` (models trained on normalized images, e.g. the CIFAR ResNets), with
    the input kind (raw uint8 bytes or float features quantized to int8) and shape checked."""
    from mcu_dc.core.qmath import InputKind

    norm = (meta or {}).get("input_norm")
    if norm and not ds.is_float_input:
        ds = ds.normalized(norm["mean"], norm["std"])
    kind = getattr(model, "input_kind", InputKind.UINT8)
    if kind == InputKind.INT8 and not ds.is_float_input:
        raise DataError(
            f"the model takes float features (quantized to int8 on the host) but {label} holds raw uint8 "
            "images, and the model file records no input normalization to turn them into features; pass "
            "the float features the model was compressed with (e.g. a .npz with float x_test)."
        )
    if kind == InputKind.UINT8 and ds.is_float_input:
        raise DataError(
            f"the model takes raw uint8 bytes (images) but {label} holds float features; pass the image "
            "dataset the model was compressed with."
        )
    if tuple(ds.input_shape) != tuple(model.input_shape):
        raise DataError(
            f"the model takes inputs of shape {tuple(model.input_shape)} (C, H, W) but {label} has inputs "
            f"of shape {tuple(ds.input_shape)}; pass the --dataset the model was compressed with."
        )
    return ds


def load_test_inputs(
    dataset: str,
    input_shape: tuple[int, int, int],
    *,
    data_dir: str | None = None,
    limit: int | None = None,
    input_norm: dict[str, Any] | None = None,
    input_kind: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` test inputs, as the simulator takes them, and their labels or targets.

    Raw uint8 rows ``(N, in_len)`` for image datasets; float features for feature datasets
    and for images normalized with ``input_norm`` (``{"mean": [...], "std": [...]}``, a model
    file's ``meta["input_norm"]``); the harness sends their int8 quantization,
    :func:`mcu_dc.core.simulator.device_input`. ``dataset`` is a built-in name or a ``.npz`` path.
    """
    from types import SimpleNamespace

    from mcu_dc.core.qmath import InputKind
    from mcu_dc.data.datasets import load_dataset

    ds = load_dataset(dataset, "test", data_dir)
    if input_kind is None:  # the caller did not say: whatever the data (after normalization) is
        float_in = ds.is_float_input or bool(input_norm)
        input_kind = InputKind.INT8 if float_in else InputKind.UINT8
    spec = SimpleNamespace(input_shape=tuple(input_shape), input_kind=input_kind)
    meta = {"input_norm": input_norm} if input_norm else None
    ds = dataset_for_model(ds, meta, spec, f"{dataset} test set")
    n = len(ds) if limit is None else max(0, min(int(limit), len(ds)))
    x = np.ascontiguousarray(ds.simulator_inputs(slice(0, n)).reshape(n, -1))
    y = np.asarray(ds.targets(slice(0, n)))
    return x, (y if ds.task == "classification" else None)


# ------------------------------------------------------------------------------ firmware


def build_firmware(cm: Any, board: str, work_dir: Path, *, project: Path | None = None) -> Any:
    """Generate (unless ``project`` is given) and build the firmware for ``board``.

    Returns :class:`mcu_dc.deploy.armbuild.FirmwareBuild` (``.elf``, ``.fit``). A model that
    does not fit the board raises :class:`~mcu_dc.errors.FitError` with the linker's table.
    The project goes to ``work_dir/fw-<board>-<model hash>``.
    """
    from mcu_dc.deploy import armbuild
    from mcu_dc.deploy.generate import generate

    if project is None:
        project = Path(work_dir) / f"fw-{board}-{cm.model_hash:08x}"
        generate(cm, board=board, out_dir=project)
    return armbuild.build_project(project, board=board)


def run_on_qemu(
    cm: Any,
    board: str,
    elf: Path,
    x: np.ndarray,
    y: np.ndarray | None,
    settings: VerifySettings,
    *,
    via: Any = None,
    on_result: Any = None,
) -> VerifyReport:
    """Boot ``elf`` under QEMU, stream ``x``, stop QEMU whatever happens.

    ``via(url) -> (url, closer)`` may put something between the harness and QEMU (tests
    use :class:`mcu_dc.device.proxy.FaultProxy`); ``on_result(i, device_out, sim_out)`` is
    called after every inference.
    """
    from mcu_dc.device.qemu import QemuBoard

    with QemuBoard(board, elf, start_timeout=settings.qemu_start_timeout_s) as q:
        url, closer = (q.url, None) if via is None else via(q.url)
        try:
            with Device.open(url, settings.link) as dev:
                report = run_inputs(
                    dev,
                    cm,
                    x,
                    y,
                    model_hash=cm.model_hash,
                    progress=settings.progress,
                    desc=f"verify on {board}",
                    on_result=on_result,
                )
                if dev.bye():
                    code = q.wait(timeout=settings.qemu_exit_timeout_s)
                    if code != 0:
                        raise DeviceError(f"the firmware on {board} exited with code {code} after BYE")
        except DeviceError as exc:
            if not q.running:
                code = q.stop()
                raise DeviceError(
                    f"{exc} QEMU ended during the run (exit code {code}; the firmware stops with a non-zero "
                    f"code on a fault); its stderr: {q.stderr_text().strip()[-500:]!r}"
                ) from None
            raise
        finally:
            if closer is not None:
                closer()
    return report


def verify(source: str | os.PathLike[str], settings: VerifySettings) -> VerifyReport:
    """Verify the model in ``source`` on ``settings.board`` (see the module docstring)."""
    cm, project = load_model_source(source)
    if project is not None:  # a demo project does not speak the protocol: say so before any data loads
        from mcu_dc.deploy.mcuproject import read_project_info, require_app

        require_app(project, read_project_info(project), "verify")
    x, y = load_test_inputs(
        settings.dataset,
        tuple(cm.model.input_shape),
        data_dir=settings.data_dir,
        limit=settings.limit,
        input_norm=(cm.meta or {}).get("input_norm"),
        input_kind=getattr(cm.model, "input_kind", None),
    )
    if len(x) == 0:
        raise ConfigError("--limit 0 leaves nothing to verify; pass a positive --limit or leave it out")
    if settings.port:
        with Device.open(settings.port, settings.link) as dev:
            return run_inputs(
                dev,
                cm,
                x,
                y,
                model_hash=cm.model_hash,
                progress=settings.progress,
                desc=f"verify on {settings.board} ({settings.port})",
            )
    from mcu_dc.deploy.boards import load_board

    board = load_board(settings.board)
    if board.qemu is None:
        raise DeviceError(
            f"board {board.id!r} is real hardware: flash the firmware (mcu-dc flash DIR --board {board.id}) "
            "and pass its serial port with --port (e.g. /dev/ttyACM0), or choose an emulated qemu-* board."
        )
    if project is not None:
        from mcu_dc.deploy.mcuproject import project_board

        built_for = project_board(project)
        if built_for != board.id:
            raise ConfigError(
                f"{project} was generated for board {built_for!r}, not {board.id!r}; "
                f"pass --board {built_for}, or the .mcudc file (verify then generates and builds for "
                "the board you name)."
            )
    fw = build_firmware(cm, board.id, settings.work_dir or default_work_dir(), project=project)
    return run_on_qemu(cm, board.id, fw.elf, x, y, settings)
