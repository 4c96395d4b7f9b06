"""Fixtures for the runtime tests: the host runner is compiled once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mcu_dc.deploy.hostbuild import build_runner


def _need_gcc() -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")


@pytest.fixture(scope="session")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The blob-loading host runner, built with -std=c99 -Wall -Wextra -Werror and ASan+UBSan."""
    _need_gcc()
    return build_runner(tmp_path_factory.mktemp("runner") / "mcu_dc_runner", sanitize=True, opt="-O1")


@pytest.fixture(scope="session")
def runner_o2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same runner at -O2 without sanitizers (what a user builds)."""
    _need_gcc()
    return build_runner(tmp_path_factory.mktemp("runner_o2") / "mcu_dc_runner", sanitize=False, opt="-O2")
