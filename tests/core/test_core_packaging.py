"""A plain `pip install .` must work away from a checkout: the wheel carries templates/,
firmware/ and boards/ (pyproject.toml force-include), found by mcu_dc.resources."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_ships_templates_firmware_and_boards(tmp_path):
    # hatchling comes with the dev extras; no build isolation, so no network is needed.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("mcu_dc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for rel in [
        *(p.relative_to(ROOT) for p in (ROOT / "templates").rglob("*") if p.is_file()),
        *(p.relative_to(ROOT) for p in (ROOT / "firmware").rglob("*") if p.is_file()),
        *(p.relative_to(ROOT) for p in (ROOT / "boards").glob("*.toml")),
    ]:
        assert f"mcu_dc/_data/{rel.as_posix()}" in names, rel
    assert "mcu_dc/core/blob.py" in names and "mcu_dc/compression/pipeline.py" in names
