"""Generate C for a compressed model: ``N_model.h`` / ``N_model.c`` and ``mcu_dc_models.h``.

The model blob (docs/format.md) becomes one 4-aligned ``const uint8_t N_blob[]`` that the
runtime reads in place from flash; the array is laid out section by section with a C
comment naming each part (header, layer table, each layer's codebook, bias, weight
stream, index stream). Symbols are prefixed by the model name so several models link into
one firmware. Output is deterministic: the same model gives byte-identical files.

Templates live in ``templates/`` (``model.h.j2``, ``model.c.j2``, ``models.h.j2``); all
formatting decisions are made here, the templates only place the values.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcu_dc.core import blob as blobfmt
from mcu_dc.core.ir import Op
from mcu_dc.errors import ConfigError, FormatError
from mcu_dc.fileio import atomic_path, write_text_atomic

BYTES_PER_LINE = 16
_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int "
    "long register restrict return short signed sizeof static struct switch typedef union unsigned void "
    "volatile while".split()
)


@dataclass(frozen=True)
class ModelSymbols:
    """The C names generated for one model."""

    display_name: str  # the model's own name, for comments
    symbol: str  # C identifier prefix: <symbol>_blob, <symbol>_model.h
    macro: str  # macro prefix: <MACRO>_BLOB_BYTES

    @property
    def header(self) -> str:
        return f"{self.symbol}_model.h"

    @property
    def source(self) -> str:
        return f"{self.symbol}_model.c"


def c_identifier(name: str) -> str:
    """Turn a model name into a C identifier prefix (``lenet-300-100`` → ``lenet_300_100``)."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name.strip())
    ident = re.sub(r"_+", "_", ident).strip("_")
    if not ident:
        raise ConfigError(
            f"model name {name!r} gives no usable C identifier; pass a name of letters, digits and '_'"
        )
    if ident[0].isdigit():
        ident = "m_" + ident
    if ident.lower() in _C_KEYWORDS or ident.lower().startswith("mcu_dc"):
        ident = "model_" + ident
    return ident


def model_symbols(name: str) -> ModelSymbols:
    ident = c_identifier(name)
    return ModelSymbols(display_name=name, symbol=ident, macro=ident.upper())


@dataclass(frozen=True)
class BlobPart:
    """A named byte range of the blob (``start`` inclusive, ``end`` exclusive)."""

    name: str
    start: int
    end: int


def blob_parts(blob: bytes, layer_names: Sequence[str] | None = None) -> list[BlobPart]:
    """Split a blob into its named parts, in order; they tile ``[0, len(blob))`` exactly."""
    hdr = blobfmt.read_header(blob, "<blob>")
    starts = blobfmt.blob_sections(blob, list(layer_names or []))
    parts: list[BlobPart] = []
    for j, (start, name) in enumerate(starts):
        end = starts[j + 1][0] if j + 1 < len(starts) else hdr.blob_bytes
        if end < start or (j and start == starts[j - 1][0]):
            raise FormatError(f"<blob>: section at byte offset {start} ({name}) overlaps another section")
        parts.append(BlobPart(name, start, end))
    return parts


def _op_name(op: int) -> str:
    try:
        return Op(op).name
    except ValueError:
        return f"op {op}"


def c_string_literal(text: str) -> str:
    """``text`` as a C string literal (printable ASCII kept, everything else escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~" and ch != "?":
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def _comment_text(text: str) -> str:
    """``text`` made safe inside a C block comment."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text).replace("*/", "* /")


def _hex_lines(data: bytes) -> list[str]:
    step = BYTES_PER_LINE
    return [" ".join(f"0x{b:02x}," for b in data[i : i + step]) for i in range(0, len(data), step)]


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from mcu_dc.resources import resource_dir

    return Environment(
        loader=FileSystemLoader(str(resource_dir("templates"))),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _version() -> str:
    try:
        from mcu_dc import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover - during early development
        return "0"


def _model_context(compressed: Any, syms: ModelSymbols) -> dict[str, Any]:
    blob: bytes = compressed.blob
    hdr = blobfmt.read_header(blob, syms.display_name)
    names = list(getattr(compressed, "meta", {}).get("layer_names") or [])
    parts = [
        {
            "comment": f"[{p.start:#07x}..{p.end:#07x}) {p.name}, {p.end - p.start} bytes",
            "lines": _hex_lines(blob[p.start : p.end]),
        }
        for p in blob_parts(blob, names)
    ]
    c, h, w = hdr.input_shape
    return {
        "version": _version(),
        "display_name": _comment_text(syms.display_name),
        "symbol": syms.symbol,
        "macro": syms.macro,
        "guard": f"{syms.macro}_MODEL_H",
        "format_version": hdr.version,
        "blob_bytes": hdr.blob_bytes,
        "arena_bytes": hdr.arena_bytes,
        "input_len": c * h * w,
        "output_len": hdr.out_len,
        "hash_hex": f"0x{hdr.crc32:08x}",
        "parts": parts,
    }


def render_model(compressed: Any, name: str | None = None) -> dict[str, str]:
    """``{"N_model.h": text, "N_model.c": text}`` for one ``CompressedModel``."""
    syms = model_symbols(name or _model_name(compressed))
    ctx = _model_context(compressed, syms)
    env = _environment()
    return {
        syms.header: env.get_template("model.h.j2").render(**ctx),
        syms.source: env.get_template("model.c.j2").render(**ctx),
    }


def render_models_header(symbols: Sequence[ModelSymbols]) -> str:
    """``mcu_dc_models.h``: includes every model header; the first model is the default."""
    if not symbols:
        raise ConfigError("no models to generate; pass at least one compressed model")
    seen: set[str] = set()
    for s in symbols:
        if s.symbol in seen:
            raise ConfigError(f"two models would both be named {s.symbol!r} in C; give them distinct names")
        seen.add(s.symbol)
    models = [
        {"symbol": s.symbol, "macro": s.macro, "name_literal": c_string_literal(s.display_name)}
        for s in symbols
    ]
    return (
        _environment()
        .get_template("models.h.j2")
        .render(version=_version(), models=models, default=models[0])
    )


def model_name(compressed: Any) -> str:
    """A model's own name (its file's, else its IntegerModel's; ``model`` if it has none)."""
    name = getattr(compressed, "name", None) or getattr(getattr(compressed, "model", None), "name", None)
    return str(name or "model")


_model_name = model_name


def write_model_sources(
    models: Sequence[Any], dest: Path, names: Sequence[str | None] | None = None
) -> list[Path]:
    """Write ``N_model.h``/``N_model.c`` for each model and ``mcu_dc_models.h`` into ``dest``.

    ``models`` are ``CompressedModel`` objects (anything with ``.blob``); ``names``
    overrides their names (C prefixes). The first model is the default one. Every file is
    rendered before the first is written, and each is written atomically.
    """
    dest = Path(dest)
    names = list(names) if names is not None else [None] * len(models)
    if len(names) != len(models):
        raise ConfigError(f"{len(models)} models but {len(names)} names")
    files: dict[str, str] = {}  # everything is rendered before the first file is written
    symbols: list[ModelSymbols] = []
    for model, name in zip(models, names, strict=True):
        syms = model_symbols(name or _model_name(model))
        symbols.append(syms)
        files.update(render_model(model, syms.display_name))
    files["mcu_dc_models.h"] = render_models_header(symbols)
    return [write_text_atomic(dest / fname, text) for fname, text in files.items()]


def runtime_sources() -> list[Path]:
    """The runtime's C sources (``firmware/runtime/*.c``), sorted; host tools excluded."""
    from mcu_dc.resources import resource_dir

    return sorted((resource_dir("firmware") / "runtime").glob("*.c"))


def runtime_headers() -> list[Path]:
    from mcu_dc.resources import resource_dir

    return sorted((resource_dir("firmware") / "runtime").glob("*.h"))


def model_ops(models: Sequence[Any]) -> list[Op]:
    """The op codes ``models`` (CompressedModels or IntegerModels) use, sorted."""
    ops: set[Op] = set()
    for m in models:
        im = getattr(m, "model", m)
        ops |= {Op(op.op) for op in im.layers}
    return sorted(ops)


def copy_runtime(dest: Path, models: Sequence[Any] | None = None, *, all_ops: bool = False) -> list[Path]:
    """Copy the runtime's sources and headers into ``dest`` (flat); returns the copies.

    With ``models``, the copy's op list (``mcu_dc_op_list.h``) names only the ops they use,
    so the firmware links no kernel it cannot need. ``all_ops=True`` (the standalone library,
    ``mcu-dc library``) writes the op list afresh from every registered op instead.
    """
    if models is not None and all_ops:
        raise ConfigError("copy_runtime: pass models (trim to their ops) or all_ops=True, not both")
    from mcu_dc.deploy.cheaders import op_list_header

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for src in [*runtime_headers(), *runtime_sources()]:
        target = dest / src.name
        with atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
        out.append(target)
    if models is not None:
        write_text_atomic(dest / "mcu_dc_op_list.h", op_list_header(model_ops(models)))
    elif all_ops:
        write_text_atomic(dest / "mcu_dc_op_list.h", op_list_header(None))
    return out


__all__ = [
    "BlobPart",
    "ModelSymbols",
    "blob_parts",
    "c_identifier",
    "c_string_literal",
    "copy_runtime",
    "model_name",
    "model_ops",
    "model_symbols",
    "render_model",
    "render_models_header",
    "runtime_headers",
    "runtime_sources",
    "write_model_sources",
    "write_text_atomic",
]
