"""The real-board BSPs (stm32v2, nrf52, rp2040) on the host, against small C peripheral models.

No QEMU 7.2 machine models these parts, so each BSP .c is compiled for the host with
-DMCU_DC_BSP_HOST_SIM (every MCU_DC_REG32 access goes through the model's register file,
tests/boards/bsp_sim/) with -Wall -Wextra -Werror and ASan/UBSan. The driver (sim_core.c)
checks: init writes the right registers and bits (clock enables, pin mux, a baud divisor
within 2 % of 115200 for the model's clock), write() puts exactly the given bytes on the
line, getc() returns -1 with nothing received and every byte in order at every arrival
phase (back-to-back bytes included), and a transmitter that never gets ready does not hang.

The mutation tests edit one line of a BSP (a pin, an alternate function, the clock, the DMA
short) and check that the simulation then fails: the checks can fail.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcu_dc.deploy.boards import load_board
from mcu_dc.resources import resource_dir

SIM = Path(__file__).parent / "bsp_sim"
BSP = resource_dir("firmware") / "bsp"
CC = shutil.which("gcc") or shutil.which("cc")

pytestmark = pytest.mark.skipif(CC is None, reason="needs a host C compiler")


@dataclass(frozen=True)
class Target:
    board: str
    family: str


TARGETS = [
    Target("nucleo_f746zg", "stm32v2"),
    Target("nucleo_h743zi", "stm32v2"),
    Target("nucleo_l4r5zi", "stm32v2"),
    Target("nano33ble", "nrf52"),
    Target("pico", "rp2040"),
]


def _sanitizers() -> list[str]:
    probe = subprocess.run(
        [str(CC), "-fsanitize=address,undefined", "-x", "c", "-", "-o", "/dev/null"],
        input="int main(void){return 0;}",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"] if probe.returncode == 0 else []


SANITIZE = _sanitizers() if CC else []


def build_and_run(
    target: Target, out: Path, bsp_source: Path | None = None
) -> subprocess.CompletedProcess[str]:
    board = load_board(target.board)
    assert board.bsp == target.family
    defines = {**board.bsp_defines(), "MCU_DC_BSP_HOST_SIM": "1", "MCU_DC_BSP_WAIT_LIMIT": "2000u"}
    src = bsp_source or BSP / target.family / f"mcu_dc_bsp_{target.family}.c"
    exe = out / f"sim_{target.board}"
    cmd = [
        str(CC),
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-g",
        "-O1",
        *SANITIZE,
        *[f"-D{k}={v}" for k, v in defines.items()],
        f"-I{BSP}",
        f"-I{BSP / 'cortexm'}",
        f"-I{SIM}",
        str(src),
        str(SIM / "sim_core.c"),
        str(SIM / "model_cortexm.c"),
        str(SIM / f"model_{target.family}.c"),
        "-o",
        str(exe),
    ]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True, text=True)
    return subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.board)
def test_bsp_against_its_peripheral_model(target: Target, tmp_path: Path) -> None:
    try:
        run = build_and_run(target, tmp_path)
    except subprocess.CalledProcessError as exc:  # -Werror or a model mismatch at compile time
        pytest.fail(f"host build of the {target.family} BSP failed:\n{exc.stderr}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith("OK"), run.stdout
    assert "tx 300 bytes ok" in run.stdout and "rx sweep done" in run.stdout
    baud = [line for line in run.stdout.splitlines() if line.startswith("baud ")]
    assert len(baud) == 1, run.stdout  # the baud rate was computed from the registers


MUTATIONS = [
    # (target, old, new, expected failure text)
    (TARGETS[0], "#define PIN_AF 7u", "#define PIN_AF 8u", "AF8, expected AF7"),
    (TARGETS[0], "#define PIN_TX 8u", "#define PIN_TX 10u", "TX pin 8 not in alternate-function mode"),
    (
        TARGETS[0],
        "#define UART_CLOCK_HZ 16000000u",
        "#define UART_CLOCK_HZ 8000000u",
        "off 115200",
    ),
    (
        TARGETS[1],
        "#define RCC_UART_EN MCU_DC_REG32(0x580244E8u)",
        "#define RCC_UART_EN MCU_DC_REG32(0x580244ECu)",
        "a register the nucleo_h743zi model does not have",
    ),
    (TARGETS[1], "#define UART_CLOCK_HZ 64000000u", "#define UART_CLOCK_HZ 16000000u", "off 115200"),
    (TARGETS[2], "    PWR_CR2 |= PWR_CR2_IOSV;\n", "", "IOSV not set"),
    (
        TARGETS[2],
        "#define RCC_CCIPR_LPUART1SEL_HSI16 (2u << 10)",
        "#define RCC_CCIPR_LPUART1SEL_HSI16 (0u << 10)",
        "expected HSI16",
    ),
    (
        TARGETS[3],
        "    UARTE_SHORTS = UARTE_SHORTS_ENDRX_STARTRX;\n",
        "    UARTE_SHORTS = 0u;\n",
        "lost on the line",
    ),
    (TARGETS[3], "#define PIN_TX 3u ", "#define PIN_TX 2u ", "expected P1.03"),
    (
        TARGETS[3],
        "UARTE_TXD_PTR = MCU_DC_DMA_ADDR(tx_buf);",
        "UARTE_TXD_PTR = MCU_DC_DMA_ADDR(data);",
        "caller's bytes",
    ),
    (
        TARGETS[3],
        "#define UARTE_BAUDRATE_115200 0x01D60000u",
        "#define UARTE_BAUDRATE_115200 0x01D7E000u",
        "legacy UART",
    ),
    (TARGETS[4], "#define FUNCSEL_UART 2u", "#define FUNCSEL_UART 1u", "FUNCSEL 1, expected 2"),
    (
        TARGETS[4],
        "#define RESET_UART0 (1u << 22)",
        "#define RESET_UART0 (1u << 23)",
        "written while its clock/reset",
    ),
    (TARGETS[4], "#define XOSC_HZ 12000000u", "#define XOSC_HZ 48000000u", "off 115200"),
    (
        TARGETS[4],
        "while ((UART_FR & UART_FR_TXFF) != 0u && n < MCU_DC_BSP_WAIT_LIMIT) {",
        "while (0) {",
        "TX FIFO is full",
    ),
]


@pytest.mark.parametrize(
    ("target", "old", "new", "expected"),
    MUTATIONS,
    ids=[f"{m[0].board}-{i}" for i, m in enumerate(MUTATIONS)],
)
def test_a_broken_bsp_fails_the_simulation(
    target: Target, old: str, new: str, expected: str, tmp_path: Path
) -> None:
    original = (BSP / target.family / f"mcu_dc_bsp_{target.family}.c").read_text()
    assert old in original, f"mutation anchor {old!r} not found"
    mutant = tmp_path / f"mcu_dc_bsp_{target.family}.c"
    mutant.write_text(original.replace(old, new, 1))  # the first one: the F7 block for stm32v2
    run = build_and_run(target, tmp_path, mutant)
    assert run.returncode != 0, f"the mutated BSP passed the simulation:\n{run.stdout}"
    assert expected in run.stdout, run.stdout
