"""Where the non-Python parts live: ``templates/``, ``firmware/``, ``boards/``.

In a checkout they are at the repository's top level; in an installed wheel they are
shipped inside the package as ``mcu_dc/_data/<name>`` (see ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the directory ``templates``, ``firmware`` or ``boards``."""
    if name not in ("templates", "firmware", "boards"):
        raise ValueError(f"unknown resource directory {name!r}")
    installed = _PKG / "_data" / name
    if installed.is_dir():
        return installed
    checkout = _PKG.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"mcu_dc's {name}/ directory is missing: looked in {installed} and {checkout}. "
        "Reinstall the package (pip install .) from a complete checkout."
    )
