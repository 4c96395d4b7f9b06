"""Reading a sweep's settings: the ``[sweep]`` table of a config file, then the command-line flags.

A config file given to ``mcu-dc sweep --config`` is a ``mcu-dc compress`` config plus an optional
``[sweep]`` table (:class:`~mcu_dc.sweep.space.SweepSpec`); :func:`read_config_file` splits the two,
so the rest is checked exactly as ``mcu-dc compress`` checks it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from mcu_dc.compression.config import from_dict, read_toml
from mcu_dc.errors import ConfigError
from mcu_dc.sweep.space import SweepSpec


def read_config_file(path: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(compress settings, [sweep] table or None)`` of a TOML file."""
    data = read_toml(path, "pass the search space as flags")
    table = data.pop("sweep", None)
    if table is not None and not isinstance(table, dict):
        raise ConfigError(f"{path}: sweep must be a table ([sweep]), got {type(table).__name__}")
    return data, table


def spec_from_table(table: dict[str, Any] | None, where: str) -> SweepSpec:
    """A :class:`SweepSpec` from a ``[sweep]`` table (type-checked, unknown keys refused); defaults
    for the keys it leaves out."""
    if table is None:
        return SweepSpec()
    spec: SweepSpec = from_dict(SweepSpec, table, f"{where} [sweep]", SweepSpec())
    spec.labels = {key: f"{where} [sweep] {key}" for key in table}
    return spec


# flag name -> (SweepSpec key, element type)
FLAG_KEYS: dict[str, tuple[str, type]] = {
    "--sparsity": ("sparsity", float),
    "--fc-bits": ("fc_bits", int),
    "--conv-bits": ("conv_bits", int),
    "--objective": ("objective", str),
}


def parse_list(flag: str, text: str, kind: type) -> list[Any]:
    """``"0.5,0.7,0.9"`` -> ``[0.5, 0.7, 0.9]``; a one-paragraph error naming the flag otherwise."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise ConfigError(f"{flag} {text!r}: give comma-separated values, e.g. {_example(flag)}")
    out: list[Any] = []
    for t in items:
        if kind is str:
            out.append(t)
            continue
        try:
            out.append(kind(t))
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ConfigError(
                f"{flag} {text!r}: {t!r} is not {what}; give comma-separated values, e.g. {_example(flag)}"
            ) from None
    return out


def _example(flag: str) -> str:
    return {
        "--sparsity": "--sparsity 0.5,0.7,0.9",
        "--fc-bits": "--fc-bits 4,5,6",
        "--conv-bits": "--conv-bits 5,8",
        "--objective": "--objective size,balanced,speed",
        "--layer-sparsity": "--layer-sparsity fc1=0.8,0.9",
    }.get(flag, flag)


def parse_layer_sparsity(items: list[str]) -> dict[str, list[float]]:
    """``["fc1=0.8,0.9", "fc3=0"]`` -> ``{"fc1": [0.8, 0.9], "fc3": [0.0]}``."""
    out: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(
                f"--layer-sparsity {item!r}: write LAYER=VALUES, e.g. {_example('--layer-sparsity')}"
            )
        out[name.strip()] = parse_list(f"--layer-sparsity {name.strip()}=", values, float)
    return out


def apply_flags(spec: SweepSpec, flags: dict[str, Any]) -> SweepSpec:
    """``spec`` with the flags that were given (not None) laid over it; each remembers its flag name
    for error messages. ``flags``: ``{"--sparsity": "0.5,0.9", "--samples": 4, ...}``."""
    out = copy.deepcopy(spec)
    out.labels = dict(spec.labels)
    for flag, text in flags.items():
        if text is None:
            continue
        if flag in FLAG_KEYS:
            key, kind = FLAG_KEYS[flag]
            setattr(out, key, parse_list(flag, text, kind))
        elif flag == "--layer-sparsity":
            if not text:
                continue
            key = "layer_sparsity"
            out.layer_sparsity = {**out.layer_sparsity, **parse_layer_sparsity(text)}
        else:
            key = flag.removeprefix("--").replace("-", "_")
            if key not in ("samples", "seed", "val_size"):
                raise ValueError(f"unknown sweep flag {flag}")
            setattr(out, key, int(text))
        out.labels[key] = flag
    out.validate()
    return out
