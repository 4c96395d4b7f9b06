"""PlatformIO: validate a generated project and upload firmware to a real board.

* :func:`validate_project` loads ``platformio.ini`` with PlatformIO's own
  ``ProjectConfig`` and validates it (no network needed).
* :func:`upload` runs ``pio run -t upload -e <board>`` in the project directory. Before
  that it checks that PlatformIO is installed and that the board's platform is either
  installed already or PlatformIO's registry is reachable (PlatformIO installs the
  platform and toolchain on first use); otherwise it fails at once with a clear
  :class:`~mcu_dc.errors.BuildError` instead of PlatformIO's minute of retries.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from mcu_dc.errors import BuildError, ConfigError

REGISTRY_HOST = "api.registry.platformio.org"


def validate_project(project_dir: str | os.PathLike[str]) -> list[str]:
    """Validate ``project_dir/platformio.ini`` with PlatformIO; returns its env names."""
    ini = Path(project_dir) / "platformio.ini"
    if not ini.is_file():
        raise ConfigError(f"{project_dir} has no platformio.ini; generate the project with `mcu-dc generate`")
    try:
        from platformio.project.config import ProjectConfig
    except ImportError as exc:
        raise BuildError(
            "PlatformIO is not installed: `pip install platformio` (or mcu_dc[platformio])"
        ) from exc
    try:
        config = ProjectConfig(str(ini))
        config.validate()
    except Exception as exc:  # PlatformIO raises its own exception types
        raise ConfigError(f"{ini} is not a valid PlatformIO project: {exc}") from exc
    return list(config.envs())


def pio_command() -> list[str]:
    """How to run PlatformIO here: ``pio`` on PATH, else ``python -m platformio``."""
    exe = shutil.which("pio") or shutil.which("platformio")
    if exe:
        return [exe]
    try:
        import platformio  # noqa: F401
    except ImportError as exc:
        raise BuildError(
            "PlatformIO is not installed, so `mcu-dc flash` cannot upload: `pip install platformio` "
            "(or mcu_dc[platformio]), then run it again. Emulated boards need no flashing: "
            "use `mcu-dc verify`."
        ) from exc
    return [sys.executable, "-m", "platformio"]


def platform_installed(platform: str) -> bool:
    try:
        from platformio.package.manager.platform import PlatformPackageManager
    except ImportError:
        return False
    try:
        return PlatformPackageManager().get_package(platform) is not None
    except Exception:  # a broken PlatformIO home counts as "not installed"
        return False


def registry_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((REGISTRY_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def upload(
    project_dir: str | os.PathLike[str],
    env: str,
    *,
    platform: str,
    timeout: float = 900,
    command: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``pio run -t upload -e env`` in ``project_dir`` (see the module docstring)."""
    envs = validate_project(project_dir)
    if env not in envs:
        raise ConfigError(f"{project_dir}/platformio.ini has no env {env!r}; it has: {', '.join(envs)}")
    cmd = command if command is not None else pio_command()
    if command is None and not platform_installed(platform) and not registry_reachable():
        raise BuildError(
            f"PlatformIO's platform {platform!r} for {env} is not installed and PlatformIO's registry "
            f"({REGISTRY_HOST}) cannot be reached, so the toolchain and uploader cannot be fetched. Connect "
            f"to the internet once and run `pio pkg install -g -p {platform}` (or `pio run -e {env}` in "
            f"{project_dir}), then `mcu-dc flash` again. To check the firmware without a board, use "
            "`mcu-dc build` (memory fit) or `mcu-dc verify` on a qemu-* board."
        )
    full = [*cmd, "run", "-t", "upload", "-e", env, "-d", str(project_dir)]
    try:
        return subprocess.run(full, capture_output=True, text=True, check=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise BuildError(
            f"cannot run {full[0]}: PlatformIO is not installed (`pip install platformio`)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise BuildError(
            f"`{' '.join(full)}` did not finish within {timeout:g} s; is the board connected?"
        ) from exc
    except subprocess.CalledProcessError as exc:
        out = (exc.stdout or "") + (exc.stderr or "")
        hint = ""
        if "HTTPClientError" in out or "InternetIsOffline" in out or "registry" in out.lower():
            hint = f" PlatformIO could not reach its registry ({REGISTRY_HOST}) to install {platform!r}."
        raise BuildError(
            f"`{' '.join(full)}` failed (exit {exc.returncode}).{hint} "
            f"Its output ends with:\n{out.strip()[-2000:]}"
        ) from exc
