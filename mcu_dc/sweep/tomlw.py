"""Writing a :class:`~mcu_dc.compression.config.CompressConfig` as TOML that ``mcu-dc compress
--config`` reads back to the same settings (values: bool, int, float, str, lists and tables of them)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} {v!r} as TOML")


def dumps(data: dict[str, Any], *, header: str = "", tables: frozenset[str] = frozenset()) -> str:
    """TOML text for ``data``. ``tables``: dotted paths of the nested dicts written as ``[sections]``
    (settings dataclasses); every other dict is an inline table."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    if lines:
        lines.append("")
    _emit(data, "", lines, tables)
    return "\n".join(lines).rstrip("\n") + "\n"


def _emit(data: dict[str, Any], prefix: str, lines: list[str], tables: frozenset[str]) -> None:
    subs = []
    for k, v in data.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and path in tables:
            subs.append((path, v))
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for path, v in subs:
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path.split(".")) + "]")
        _emit(v, path, lines, tables)


def dataclass_tables(obj: Any, prefix: str = "") -> frozenset[str]:
    """Dotted paths of the nested settings dataclasses of ``obj`` (``prune``, ``prune.retrain``, ...)."""
    out: set[str] = set()
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            path = f"{prefix}.{f.name}" if prefix else f.name
            out.add(path)
            out |= dataclass_tables(v, path)
    return frozenset(out)


def config_toml(cfg: Any, header: str = "") -> str:
    """A settings dataclass (e.g. a ``CompressConfig``) as TOML, every key written out."""
    return dumps(dataclasses.asdict(cfg), header=header, tables=dataclass_tables(cfg))
