"""The wheel in a fresh virtual environment, away from the checkout, does what a new user does.

Built with ``pip wheel . --no-deps --no-build-isolation``, installed into ``python -m venv``
(no system site-packages) with ``torch==2.13.0`` first (the CPU build, offline) and then the
wheel with its runtime dependencies and the ``train`` extra. From a temporary folder outside
the checkout the venv's ``mcu-dc`` then compresses a small net on ``digits`` (scikit-learn's
bundled set: it must come with the wheel's dependencies), simulates it, generates, builds and
verifies the firmware on the emulated Cortex-M4, and prints ``--help`` for every subcommand.

pip's cache lives in ``$MCU_DC_TEST_PIP_CACHE`` (default ``~/.cache/mcu_dc-tests/pip``) so a
rerun does not unpack the dependencies' wheels again. The test is skipped, with the reason,
only when ``torch==2.13.0`` cannot be installed from this machine's local wheels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcu_dc.cli import COMMAND_MODULES

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BOARD = "qemu-mps2-an386"
TORCH = "torch==2.13.0"
PIP_CACHE = Path(os.environ.get("MCU_DC_TEST_PIP_CACHE") or Path.home() / ".cache" / "mcu_dc-tests" / "pip")
# Packages of optional extras (sweep, mlperf, fuzzing, platformio) that a plain install lacks.
EXTRAS_MODULES = {"ray", "h5py", "ai_edge_litert", "atheris", "platformio"}

TINY_CONFIG = """\
val_size = 200
[dense]
epochs = 3
batch_size = 32
lr = 0.1
[prune]
rounds = 1
grid = [0.5, 0.8]
[prune.retrain]
epochs = 1
batch_size = 32
[finetune]
epochs = 1
batch_size = 32
"""


@dataclass
class Venv:
    root: Path
    env: dict[str, str]
    work: Path  # a folder outside the checkout, the current directory of every command

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def mcu_dc(self) -> str:
        return str(self.root / "bin" / "mcu-dc")

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in the venv from :attr:`work`; a failure shows the command's output."""
        try:
            return subprocess.run(
                list(args), cwd=self.work, env=self.env, capture_output=True, text=True, timeout=timeout,
                check=True,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            tail = f"{exc.stdout[-3000:]}\n{exc.stderr[-3000:]}"
            pytest.fail(f"{' '.join(args)} exited {exc.returncode}:\n{tail}")


def _pip(python: str, *args: str, env: dict[str, str], timeout: float) -> None:
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--cache-dir", str(PIP_CACHE), *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=True,
    )  # fmt: skip


def _clean_env(venv: Path, cache: Path) -> dict[str, str]:
    """The user's environment with the venv first on PATH and nothing pointing at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["MCU_DC_CACHE"] = str(cache)  # firmware builds of `verify`
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("MCU_DC_PROGRESS_INTERVAL", None)
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")
    base = tmp_path_factory.mktemp("wheel_venv")
    dist = base / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w",
         str(dist)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    (wheel,) = dist.glob("mcu_dc-*.whl")
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120, capture_output=True)
    env = _clean_env(root, base / "cache")
    python = str(root / "bin" / "python")
    try:  # torch first, from the local wheels only: never a resolver's pick of a multi-GB CUDA build
        _pip(python, "--no-index", "--no-deps", TORCH, env=env, timeout=300)
    except subprocess.CalledProcessError as exc:
        errors = [ln for ln in exc.stderr.splitlines() if ln.startswith("ERROR")]
        why = errors[0] if errors else exc.stderr.strip()[-200:]
        pytest.skip(
            f"{TORCH} cannot be installed offline here: `pip install --no-index --no-deps {TORCH}` found no "
            f"local wheel ({why}); put its CPU wheel in a pip find-links folder (e.g. PIP_FIND_LINKS)"
        )
    _pip(python, f"{wheel}[train]", env=env, timeout=600)  # runtime deps + torch's own, torch kept
    work = base / "user"
    work.mkdir()
    return Venv(root, env, work)


def test_the_venv_runs_the_wheel_not_the_checkout(venv: Venv) -> None:
    code = "import mcu_dc, sklearn, torch; print(mcu_dc.__file__, torch.__version__)"
    out = venv.run(venv.python, "-c", code)
    path, torch_version = out.stdout.split()
    assert Path(path).is_relative_to(venv.root) and not Path(path).is_relative_to(ROOT)
    assert torch_version.startswith("2.13.0")
    assert "No broken requirements" in venv.run(venv.python, "-m", "pip", "check").stdout


def test_every_subcommand_imports_and_has_help(venv: Venv) -> None:
    listed = venv.run(
        venv.python, "-c", "import json; from mcu_dc.cli import build_parser; p = build_parser(); "
        "print(json.dumps(sorted(p._subparsers._group_actions[0].choices)))",
    )  # fmt: skip
    offered = set(json.loads(listed.stdout))
    in_checkout = {m for m in COMMAND_MODULES if (ROOT / "mcu_dc" / "commands" / f"{m}.py").is_file()}
    assert offered == in_checkout  # a command module that fails to import would break or vanish here
    for cmd in sorted(offered):
        out = venv.run(venv.mcu_dc, cmd, "--help", timeout=60)
        assert out.stdout.startswith(f"usage: mcu-dc {cmd}"), out.stdout[:200]
    # every module of the package imports with the runtime dependencies (optional extras aside)
    code = (
        "import importlib, json, pkgutil, mcu_dc\n"
        "bad = {}\n"
        "for m in pkgutil.walk_packages(mcu_dc.__path__, 'mcu_dc.'):\n"
        "    if m.name.endswith('__main__'): continue\n"
        "    try: importlib.import_module(m.name)\n"
        "    except ModuleNotFoundError as e: bad[m.name] = e.name\n"
        "print(json.dumps(bad))\n"
    )
    missing = json.loads(venv.run(venv.python, "-c", code).stdout)
    assert {k: v for k, v in missing.items() if v.split(".")[0] not in EXTRAS_MODULES} == {}


def test_compress_simulate_generate_build_verify(venv: Venv) -> None:
    (venv.work / "tiny.toml").write_text(TINY_CONFIG, encoding="utf-8")
    model = "digits.mcudc"
    comp = venv.run(
        venv.mcu_dc, "compress", "--model", "lenet300", "--dataset", "digits", "--config", "tiny.toml",
        "--out", model, "--json", timeout=300,
    )  # fmt: skip
    report = json.loads(comp.stdout)
    assert report["metrics"]["integer"]["accuracy"] > 0.8
    assert 0 < report["total_bytes"] < report["original_bytes"] / 5  # pruned, shared and Huffman-coded
    # stderr is a pipe: plain progress lines, no bar
    assert "dense: done, epoch 3/3" in comp.stderr and "\r" not in comp.stderr and "\x1b" not in comp.stderr

    sim = json.loads(venv.run(venv.mcu_dc, "simulate", model, "--dataset", "digits", "--json").stdout)
    assert sim["accuracy"] == pytest.approx(report["metrics"]["integer"]["accuracy"])

    gen = venv.run(venv.mcu_dc, "generate", model, "--board", BOARD, "--out", "proj")
    assert "proj" in gen.stdout and (venv.work / "proj" / "mcu_dc_project.json").is_file()
    fit = json.loads(venv.run(venv.mcu_dc, "build", "proj", "--json", timeout=300).stdout)
    assert fit["board"] == BOARD and fit["fits"] and 0 < fit["flash_used"] <= fit["flash_total"]

    limit = 30
    ver = venv.run(
        venv.mcu_dc, "verify", "proj", "--board", BOARD, "--dataset", "digits", "--limit", str(limit),
        "--json", timeout=300,
    )  # fmt: skip
    res = json.loads(ver.stdout)
    # 100 % agreement with the simulator
    assert (res["n"], res["bit_exact"], res["mismatches"]) == (limit, limit, 0)
    assert res["device_accuracy"] == res["sim_accuracy"] and res["instructions_per_inference"] > 0
    assert f"verify on {BOARD}: done, inference {limit}/{limit}" in ver.stderr
