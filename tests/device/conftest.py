"""Fixtures for the device tests: host builds of the firmware (protocol server over stdio)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mcu_dc.device.harness import Device, LinkSettings
from mcu_dc.device.proxy import ProcessBridge
from mcu_dc.resources import resource_dir

HERE = Path(__file__).resolve().parent
FW = resource_dir("firmware")
CFLAGS = [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-DMCU_DC_PROTO_IDLE_POLLS=100",
]

# module marks of the tests that boot firmware under QEMU: they need the emulator and the cross compiler
QEMU_ARM_MARKS = [
    pytest.mark.qemu,
    pytest.mark.arm,
    pytest.mark.skipif(
        shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
        reason="needs qemu-system-arm and arm-none-eabi-gcc",
    ),
]

FAST = LinkSettings(reply_timeout_s=1.0, hello_timeout_s=1.0, hello_attempts=5, retries=10)


def build_host_firmware(out: Path, include_dirs: list[Path], sources: list[Path]) -> Path:
    """Compile firmware/app + protocol + host BSP with ``sources`` (runtime, model) into ``out``."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler")
    app = [
        FW / "app" / "main.c",
        *sorted((FW / "protocol").glob("*.c")),
        FW / "bsp" / "host" / "mcu_dc_bsp_host.c",
    ]
    incs = [*include_dirs, FW / "runtime", FW / "bsp", FW / "protocol"]
    cmd = [cc, *CFLAGS, *(f"-I{d}" for d in incs), *map(str, app), *map(str, sources), "-o", str(out)]
    subprocess.run(cmd, check=True, timeout=180, capture_output=True)
    return out


@pytest.fixture(scope="session")
def stub_firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The protocol server over a stand-in runtime (16 input bytes, 4 outputs)."""
    out = tmp_path_factory.mktemp("stubfw") / "fw_stub"
    stub = HERE / "stub"
    return build_host_firmware(out, [stub], [stub / "stub_runtime.c"])


@pytest.fixture
def stub_device(stub_firmware: Path) -> Iterator[tuple[Device, ProcessBridge]]:
    bridge = ProcessBridge([str(stub_firmware)])
    dev = Device.open(bridge.url, FAST)
    try:
        yield dev, bridge
    finally:
        dev.close()
        bridge.close()
        assert bridge.process.poll() is not None


def make_digits_model(encoding: str = "huffman") -> Any:
    """A small torch-free classifier for scikit-learn's 8x8 digits, as a CompressedModel.

    Layer 1 (64 → 10) holds the class centroids as 16-level codebook weights with the small
    ones pruned (a nearest-centroid rule); layer 2 (10 → 10) is a pruned, scaled identity,
    so the chain has a sparse layer with long zero runs. ~90 % test accuracy.
    """
    from mcu_dc.core.ir import FC, Encoding, IntegerModel, Requant
    from mcu_dc.core.model_file import CompressedModel
    from mcu_dc.data.datasets import load_dataset

    enc = Encoding.DENSE_INT8 if encoding == "dense" else Encoding.HUFFMAN_SPARSE
    train = load_dataset("digits", "train")
    x = train.images.reshape(len(train), -1).astype(np.float64)
    mu = np.stack([x[train.labels == c].mean(0) for c in range(10)])  # (10, 64), 0..16
    codebook = np.round(np.linspace(-8, 120, 16)).astype(np.int8)
    scale = 120.0 / mu.max()
    w = mu * scale
    assign = np.abs(w[:, :, None] - codebook[None, None, :].astype(np.float64)).argmin(-1).astype(np.int16)
    assign[w < 6] = -1
    wq = np.where(assign >= 0, codebook[np.clip(assign, 0, None)].astype(np.int64), 0)
    bias = np.round(-0.5 * (wq * mu).sum(1)).astype(np.int32)
    acc = x @ wq.T + bias
    fc1 = FC(
        "fc1",
        (1, 8, 8),
        10,
        codebook,
        assign,
        bias,
        Requant.from_real(100.0 / np.abs(acc).max()),
        in_zp=-128,
        out_zp=0,
        encoding=enc,
    )
    eye = np.full((10, 10), -1, dtype=np.int16)
    np.fill_diagonal(eye, 0)
    fc2 = FC(
        "fc2",
        (10, 1, 1),
        10,
        np.array([64], dtype=np.int8),
        eye,
        np.zeros(10, dtype=np.int32),
        Requant.from_real(1 / 64),
        in_zp=0,
        out_zp=0,
        encoding=enc,
        index_bits=3,
    )
    model = IntegerModel([fc1, fc2], (1, 8, 8), 1 / 16, 1.0, 0, name=f"digits_{encoding}")
    return CompressedModel(model, {"dataset": "digits"})


@pytest.fixture(scope="session")
def digits_cm() -> Any:
    return make_digits_model()


@pytest.fixture(scope="session")
def digits_dense_cm() -> Any:
    return make_digits_model("dense")


@pytest.fixture(scope="session")
def digits_inputs() -> tuple[np.ndarray, np.ndarray]:
    from mcu_dc.data.datasets import load_dataset

    test = load_dataset("digits", "test")
    return test.images.reshape(len(test), -1), test.labels


@pytest.fixture(scope="session")
def digits_host_firmware(tmp_path_factory: pytest.TempPathFactory, digits_cm: Any) -> Path:
    """The real firmware (runtime + generated model + protocol) built for the host."""
    from mcu_dc.deploy import codegen

    d = tmp_path_factory.mktemp("digitsfw")
    gen = d / "gen"
    codegen.write_model_sources([digits_cm], gen)
    return build_host_firmware(d / "fw", [gen], [*codegen.runtime_sources(), *sorted(gen.glob("*.c"))])


def qemu_children() -> list[int]:
    """PIDs of live qemu-system-arm processes whose parent is this test process (tests assert none
    outlives them)."""
    me = os.getpid()
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if comm.startswith("qemu-system") and int(fields[1]) == me and fields[0] != "Z":
            out.append(int(d.name))
    return out
