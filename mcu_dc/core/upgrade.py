"""Re-encode a model file in the newest format, with the memory rewrites it allows.

A version 1 file (a chain with the fixed ping-pong arena) becomes a version 2 file: the
same integer weights, its conv → max-pool pairs fused (:func:`mcu_dc.core.passes.fuse_conv_pool`)
and its arena planned from tensor lifetimes. The results are unchanged, and
:func:`upgrade` proves it on probe inputs with the simulator before returning.
"""

from __future__ import annotations

import numpy as np

from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.passes import fuse_conv_pool
from mcu_dc.core.simulator import simulate
from mcu_dc.errors import ConfigError

PROBES = 64


def upgrade(cm: CompressedModel, *, seed: int = 0) -> CompressedModel:
    """The model re-encoded as format version 2; raises if any probe output changes."""
    model = fuse_conv_pool(cm.model)
    model.plan = None
    meta = {k: v for k, v in cm.meta.items() if k not in ("blob_layout", "layer_names")}
    cfg = meta.get("config") or {}
    new = CompressedModel(
        model, meta, max_code_len=int(cfg.get("max_code_len", 12)), lut_bits=int(cfg.get("lut_bits", 6))
    )
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
