"""Fixtures for tests/boards: the synthetic LeNet models of bench/memory_fit.py."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "memory_fit.py"

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")


@pytest.fixture(scope="session")
def memfit_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mcu_dc_bench_memory_fit", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
