"""A user's trained weights (``--weights FILE``) loaded into their ``nn.Module``.

Deep Compression starts from a trained network. :func:`load_weights` reads a PyTorch
checkpoint with ``torch.load(..., weights_only=True)`` (no code runs), takes the state dict
itself or the one a training script nested under ``state_dict`` / ``model`` /
``model_state_dict``, strips the ``module.`` prefix ``nn.DataParallel`` adds, tolerates the
BatchNorm ``num_batches_tracked`` counters older checkpoints lack, and loads it into the
module before capture (so BatchNorm folding and the rest apply to the trained values).
Every other difference (missing, unexpected or mis-shaped keys) is one
:class:`~mcu_dc.errors.ModelError` that names the keys.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mcu_dc.errors import ModelError

NESTED_KEYS = ("state_dict", "model_state_dict", "model")
_PREFIX = "module."
_TOLERATED = "num_batches_tracked"
_SHOW = 5


@dataclass(frozen=True)
class WeightsInfo:
    """Where dense weights came from: ``source`` is ``weights`` (``--weights``), ``reference`` (an
    MLPerf Tiny model built with its published weights), ``pretrained cache`` (``--pretrained``
    found) or ``trained`` (dense training ran)."""

    source: str
    path: str | None = None
    sha256: str | None = None
    nested_key: str | None = None  # the checkpoint key the state dict was under, if any

    def to_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        if self.path is not None:
            out["path"] = self.path
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        if self.nested_key is not None:
            out["key"] = self.nested_key
        return out

    def describe(self) -> str:
        if self.source == "weights":
            return f"loaded from {self.path} (sha256 {str(self.sha256)[:12]}…)"
        if self.source == "pretrained cache":
            return f"loaded from the --pretrained cache {self.path}"
        if self.source == "reference":
            return f"the reference weights {self.path} (sha256 {str(self.sha256)[:12]}…)"
        return "trained here (dense stage)"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f" and {len(keys) - _SHOW} more" if len(keys) > _SHOW else "")


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; an unreadable file is one ModelError."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"weights file {path} does not exist; pass the file your training script saved with "
            "torch.save(model.state_dict(), path)."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):  # a real pickle naming classes, not junk bytes
            raise ModelError(
                f"{path} holds Python objects besides tensors (a whole pickled model or optimizer state?), "
                "which mcu_dc does not unpickle because that could run code. Save the weights alone with "
                "torch.save(model.state_dict(), path) and pass that file."
            ) from None
        raise _unreadable(path, exc) from None
    except Exception as exc:  # torch's loaders raise anything (IndexError, KeyError, struct.error...) on junk
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: BaseException) -> ModelError:
    size = path.stat().st_size if path.exists() else 0
    detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return ModelError(
        f"{path} ({size:,} bytes) is not a readable PyTorch checkpoint: it is truncated, corrupt or another "
        f"kind of file ({type(exc).__name__}: {detail}). Pass the file written by "
        "torch.save(model.state_dict(), path), copied completely."
    )


def extract_state_dict(obj: Any, path: str | Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict in a loaded checkpoint (and the key it was nested under), ``module.`` stripped."""
    nested: str | None = None
    if isinstance(obj, dict) and not _is_state_dict(obj):
        for key in NESTED_KEYS:
            if isinstance(obj.get(key), dict) and _is_state_dict(obj[key]):
                obj, nested = obj[key], key
                break
    if not isinstance(obj, dict) or not _is_state_dict(obj) or not obj:
        what = (
            f"a dict with keys {_listing(sorted(map(str, obj)))}"
            if isinstance(obj, dict)
            else type(obj).__name__
        )
        raise ModelError(
            f"{path} holds {what}, not a state dict (parameter names mapped to tensors) nor a checkpoint "
            f"with one under {', '.join(repr(k) for k in NESTED_KEYS)}. Save torch.save(model.state_dict(), "
            "path), or load your checkpoint and save the entry that holds the weights."
        )
    state = {(k[len(_PREFIX) :] if k.startswith(_PREFIX) else k): v for k, v in obj.items()}
    return state, nested


def _is_state_dict(d: dict[Any, Any]) -> bool:
    return bool(d) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def load_state_dict_into(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load ``state`` into ``model`` strictly, except for missing ``num_batches_tracked`` buffers."""
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(_TOLERATED)]
    unexpected = [k for k in state if k not in own and not k.endswith(_TOLERATED)]
    shapes = [
        f"{k} {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} key(s) of the model are not in the file: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} key(s) of the file are not in the model: {_listing(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} tensor(s) differ in shape: {_listing(shapes)}")
    if problems:
        raise ModelError(
            f"the weights in {path} do not fit the model ({type(model).__name__}): {'; '.join(problems)}. "
            "Pass the weights saved from this very architecture (same layer names and sizes, e.g. the "
            "--model and dataset it was trained with); a 'module.' prefix is stripped automatically, and "
            "a checkpoint's 'state_dict'/'model'/'model_state_dict' entry is used."
        )
    with torch.no_grad():
        model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


def load_weights(model: nn.Module, path: str | Path) -> WeightsInfo:
    """Load the trained weights in ``path`` into ``model`` (in place); returns their provenance."""
    path = Path(path)
    obj = read_checkpoint(path)
    state, nested = extract_state_dict(obj, path)
    load_state_dict_into(model, state, path)
    return WeightsInfo("weights", str(path), file_sha256(path), nested)
