"""A plain `pip install .` must work away from a checkout: the wheel carries templates/,
firmware/ and boards/ (pyproject.toml force-include), found by mcu_dc.resources, and declares
every third-party package the code imports (a wheel once lacked scikit-learn, which
`--dataset digits` needs). tests/packaging/test_wheel_venv.py installs it into a fresh venv."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# import name -> distribution name, for every third-party package mcu_dc imports
IMPORT_TO_DIST = {
    "numpy": "numpy",
    "jinja2": "jinja2",
    "serial": "pyserial",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
    "sklearn": "scikit-learn",
    "tomli": "tomli",
    "torch": "torch",
    "h5py": "h5py",
    "ai_edge_litert": "ai-edge-litert",
    "ray": "ray",
    "atheris": "atheris",
    "platformio": "platformio",
}
# needed by the torch-free path (datasets, simulator, codegen, harness, CLI): never only in an extra
REQUIRED = {"numpy", "jinja2", "pyserial", "tqdm", "matplotlib", "scikit-learn", "tomli"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # hatchling comes with the dev extras; no build isolation, so no network is needed.
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out)],
        check=True,
        timeout=300,
        capture_output=True,
    )  # fmt: skip
    (whl,) = out.glob("mcu_dc-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_ships_templates_firmware_and_boards(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in [
        *(p.relative_to(ROOT) for p in (ROOT / "templates").rglob("*") if p.is_file()),
        *(p.relative_to(ROOT) for p in (ROOT / "firmware").rglob("*") if p.is_file()),
        *(p.relative_to(ROOT) for p in (ROOT / "boards").glob("*.toml")),
    ]:
        assert f"mcu_dc/_data/{rel.as_posix()}" in names, rel
    assert "mcu_dc/core/blob.py" in names and "mcu_dc/compression/pipeline.py" in names
    assert "mcu_dc/progress.py" in names


def _requires(wheel: Path) -> dict[str, set[str]]:
    """Requires-Dist of the wheel: distribution -> extras it comes with ('' for always)."""
    zf = zipfile.ZipFile(wheel)
    (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
    out: dict[str, set[str]] = {}
    for line in zf.read(meta).decode().splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        spec = line.split(":", 1)[1].strip()
        name = re.match(r"[A-Za-z0-9._-]+", spec).group(0).lower().replace("_", "-")  # type: ignore[union-attr]
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", spec)
        out.setdefault(name, set()).add(extra.group(1) if extra else "")
    return out


def _third_party_imports() -> dict[str, str]:
    """Top-level names of the non-stdlib modules mcu_dc imports anywhere (lazy imports too) -> a file."""
    found: dict[str, str] = {}
    for f in sorted((ROOT / "mcu_dc").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for m in mods:
                top = m.split(".")[0]
                if top != "mcu_dc" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(f.relative_to(ROOT)))
    return found


@pytest.mark.slow
def test_wheel_declares_every_package_the_code_imports(wheel: Path) -> None:
    requires = _requires(wheel)
    for top, where in _third_party_imports().items():
        assert top in IMPORT_TO_DIST, f"{where} imports {top!r}: declare its distribution in pyproject.toml"
        dist = IMPORT_TO_DIST[top]
        assert dist in requires, f"{where} imports {top!r} but the wheel does not require {dist!r}"
    for dist in REQUIRED:
        assert "" in requires.get(dist, set()), f"{dist!r} must be a dependency, not only an extra's"
    assert "" not in requires["torch"] and "train" in requires["torch"]  # the torch-free path needs no torch
