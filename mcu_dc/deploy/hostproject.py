"""Write a host project: the runtime, the model as C arrays and a stdin/stdout ``main.c``.

Layout of ``out_dir``::

    mcu_dc_project.json   {"board": "host", "name": N, "kind": "host", ...}
    Makefile              plain `make` alternative to `mcu-dc build DIR`
    src/                  main.c, N_model.h, N_model.c, mcu_dc_models.h
    runtime/              copy of firmware/runtime (headers and sources)

The program reads raw inputs (``input_len`` bytes each) on stdin until EOF and writes
the int8 outputs (``output_len`` bytes each) on stdout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcu_dc.core.blob import read_header
from mcu_dc.deploy import codegen
from mcu_dc.deploy.hostbuild import CFLAGS_STRICT

PROJECT_FILE = "mcu_dc_project.json"


def write_host_project(compressed: Any, out_dir: Path, name: str | None = None) -> Path:
    """Generate the host project for ``compressed`` (a ``CompressedModel``) in ``out_dir``."""
    out_dir = Path(out_dir)
    syms = codegen.model_symbols(name or codegen._model_name(compressed))
    hdr = read_header(compressed.blob, syms.display_name)
    c, h, w = hdr.input_shape
    codegen.write_model_sources([compressed], out_dir / "src", [syms.display_name])
    codegen.copy_runtime(out_dir / "runtime", [compressed])
    env = codegen._environment()
    ctx = {
        "version": codegen._version(),
        "display_name": codegen._comment_text(syms.display_name),
        "name": syms.symbol,
        "input_len": c * h * w,
        "output_len": hdr.out_len,
        "cflags": " ".join([*CFLAGS_STRICT, "-O2"]),
    }
    codegen.write_text_atomic(out_dir / "src" / "main.c", env.get_template("host/main.c.j2").render(**ctx))
    codegen.write_text_atomic(out_dir / "Makefile", env.get_template("host/Makefile.j2").render(**ctx))
    info = {
        "board": "host",
        "kind": "host",
        "name": syms.symbol,
        "model_name": syms.display_name,
        "model_hash": f"0x{hdr.crc32:08x}",
        "input_len": c * h * w,
        "output_len": hdr.out_len,
        "arena_bytes": hdr.arena_bytes,
        "blob_bytes": hdr.blob_bytes,
    }
    codegen.write_text_atomic(out_dir / PROJECT_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return out_dir
