"""Fixtures for the MLPerf Tiny tests: the shared reference files, skipped cleanly when absent."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mcu_dc.compression.mlperf import mlperf_data_dirs


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def mlperf_dir() -> Path:
    for d in mlperf_data_dirs():
        if (d / "image_classification").is_dir():
            return d
    pytest.skip(
        "the MLPerf Tiny reference files (shared data folder mlperf_tiny/) are not here; set MCU_DC_DATA "
        "to a folder holding mlperf_tiny/ to run these tests"
    )


@pytest.fixture(scope="session")
def litert() -> None:
    pytest.importorskip(
        "ai_edge_litert.interpreter", reason="ai-edge-litert (the TFLite reference) is not installed"
    )


@pytest.fixture(scope="session")
def h5py_mod() -> None:
    pytest.importorskip("h5py", reason="h5py (needed to read Keras .h5 files) is not installed")
