"""Fixtures for tests/apps: small real models (the digits classifier of tests/device, a digits
autoencoder), the demo firmware built for the host, and parsing of the demo's text output."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from mcu_dc.resources import resource_dir

DEVICE_CONFTEST = Path(__file__).resolve().parents[1] / "device" / "conftest.py"
FW = resource_dir("firmware")
HOST_CFLAGS = [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
]

CLASS_LINE = re.compile(
    r"^sample (\d+): predicted (\d+), label (-?\d+), simulator (-?\d+), outputs (equal|DIFFER), "
    r"(\d+) (instructions|cycles)$"
)
BYTES_LINE = re.compile(
    r"^sample (\d+): output \[([-\d ]+?)( \.\.\.)?\](?:, simulator \[[-\d .]+\])?, outputs (equal|DIFFER), "
    r"(\d+) (instructions|cycles)$"
)
SUMMARY = re.compile(
    r"^summary: (?:(\d+)/(\d+) correct, )?(\d+)/(\d+) agree with the simulator \(round (\d+)\)$"
)


def _load_device_conftest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mcu_dc_tests_device_conftest", DEVICE_CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def qemu_children() -> list[int]:
    """PIDs of live qemu-system-arm processes this test process started (tests/device/conftest.py)."""
    return list(_load_device_conftest().qemu_children())


@pytest.fixture(scope="session")
def digits_cm() -> Any:
    """The digits classifier of tests/device (records dataset "digits" in its metadata)."""
    return _load_device_conftest().make_digits_model()


def make_autoencoder() -> Any:
    """A digits 'autoencoder' (task reconstruction, 64 -> 64 bytes): a scaled sparse identity."""
    from mcu_dc.core.ir import FC, Encoding, IntegerModel, Requant
    from mcu_dc.core.model_file import CompressedModel

    eye = np.full((64, 64), -1, dtype=np.int16)
    np.fill_diagonal(eye, 0)
    fc = FC(
        "fc",
        (1, 8, 8),
        64,
        np.array([64], dtype=np.int8),
        eye,
        np.zeros(64, dtype=np.int32),
        Requant.from_real(1 / 64),
        in_zp=-128,
        out_zp=0,
        encoding=Encoding.HUFFMAN_SPARSE,
    )
    model = IntegerModel([fc], (1, 8, 8), 1 / 16, 1 / 16, 0, name="digits_ae", task="reconstruction")
    return CompressedModel(model, {"dataset": "digits"})


@pytest.fixture(scope="session")
def autoencoder_cm() -> Any:
    return make_autoencoder()


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def build_demo_for_host(project: Path, out: Path) -> Path:
    """The demo firmware of a generated project, compiled for the host (stdio BSP, sanitizers)."""
    cc = need("gcc")
    sources = [
        *sorted((project / "src").glob("*.c")),
        *sorted((project / "lib" / "mcu_dc" / "src").glob("*.c")),
        FW / "bsp" / "host" / "mcu_dc_bsp_host.c",
    ]
    incs = [project / "src", project / "lib" / "mcu_dc" / "src", project / "include"]
    cmd = [cc, *HOST_CFLAGS, *(f"-I{d}" for d in incs), *map(str, sources), "-o", str(out)]
    proc = subprocess.run(cmd, check=False, timeout=120, capture_output=True, text=True)
    assert proc.returncode == 0, f"gcc failed:\n{proc.stderr[-3000:]}"
    return out


def parse_demo(text: str) -> dict[str, Any]:
    """The demo's sample lines (as dicts) and its summary, from its text output."""
    samples: list[dict[str, Any]] = []
    summary = None
    for line in text.splitlines():
        line = line.rstrip("\r")
        if m := CLASS_LINE.match(line):
            samples.append(
                {
                    "index": int(m[1]),
                    "pred": int(m[2]),
                    "label": int(m[3]),
                    "sim": int(m[4]),
                    "equal": m[5] == "equal",
                    "count": int(m[6]),
                    "unit": m[7],
                }
            )
        elif m := BYTES_LINE.match(line):
            samples.append(
                {
                    "index": int(m[1]),
                    "bytes": [int(v) for v in m[2].split()],
                    "truncated": bool(m[3]),
                    "equal": m[4] == "equal",
                    "count": int(m[5]),
                    "unit": m[6],
                }
            )
        elif m := SUMMARY.match(line):
            summary = {
                "correct": int(m[1]) if m[1] else None,
                "agree": int(m[3]),
                "n": int(m[4]),
                "round": int(m[5]),
            }
    return {"samples": samples, "summary": summary}


def tamper_expected(project: Path, sample: int = 1) -> None:
    """Change one expected output byte of ``sample`` in the project's demo header."""
    header = project / "src" / "mcu_dc_demo_data.h"
    text = header.read_text()
    start = text.index("mcu_dc_demo_expected[")
    marker = f"{{ /* sample {sample} */\n"
    pos = text.index(marker, start) + len(marker)
    end = text.index(",", pos)
    value = int(text[pos:end].strip())
    new = value + 1 if value < 127 else value - 1
    header.write_text(text[:pos] + f"        {new}" + text[end:])
