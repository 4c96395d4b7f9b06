"""Re-encode a model file in the newest format, with the memory rewrites it allows.

A version 1 file (a chain with the fixed ping-pong arena) becomes a version 2 file: the
same integer weights, its conv → max-pool pairs fused (:func:`mcu_dc.core.passes.fuse_conv_pool`)
and its arena planned from tensor lifetimes. The results are unchanged, and
:func:`upgrade` proves it on probe inputs with the simulator before returning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mcu_dc.core import huffman
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.passes import fuse_conv_pool
from mcu_dc.core.simulator import simulate
from mcu_dc.errors import ConfigError, FormatError

PROBES = 64


def _huffman_options(cfg: Any, name: str) -> dict[str, int]:
    """``max_code_len`` and ``lut_bits`` from the metadata's ``config`` (defaults 12 and 6), type-checked."""
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise FormatError(f"{name}: metadata field 'config' is {type(cfg).__name__}, not a JSON object")
    out = {}
    limits = (("max_code_len", 12, 1, huffman.MAX_LEN_LIMIT), ("lut_bits", 6, 0, huffman.MAX_LUT_BITS))
    for key, default, lo, hi in limits:
        v = cfg.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise FormatError(
                f"{name}: metadata field 'config.{key}' is {v!r}, not an integer in {lo}..{hi}; the file is "
                "corrupt — regenerate it"
            )
        out[key] = v
    return out


def upgrade(cm: CompressedModel, *, seed: int = 0) -> CompressedModel:
    """The model re-encoded as format version 2; raises if any probe output changes."""
    model = fuse_conv_pool(cm.model)
    model.plan = None
    meta = {k: v for k, v in cm.meta.items() if k not in ("blob_layout", "layer_names")}
    new = CompressedModel(model, meta, **_huffman_options(meta.get("config"), cm.name))
    new.meta["upgraded_from"] = {
        "format_version": int.from_bytes(cm.blob[4:6], "little"),
        "model_hash": f"0x{cm.model_hash:08x}",
        "blob_bytes": len(cm.blob),
        "arena_bytes": cm.model.arena_bytes(),
    }
    rng = np.random.default_rng(seed)
    if model.input_kind == 0:
        x = rng.integers(0, 256, (PROBES, model.input_len), dtype=np.uint8)
    else:
        x = rng.integers(-128, 128, (PROBES, model.input_len), dtype=np.int64)
    if not np.array_equal(simulate(cm, x), simulate(new, x)):
        raise ConfigError(
            f"upgrading {cm.name!r} changed its outputs on probe inputs; this is a bug in mcu_dc — keep the "
            "original file and report it"
        )
    return new
