"""The RP2040 boot stage 2: ``firmware/bsp/rp2040/mcu_dc_boot2.S`` → ``mcu_dc_boot2.c``.

The RP2040 bootrom loads the first 256 bytes of flash into SRAM, checks that their last 4
bytes are the CRC32 of the first 252 (polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no
input or output reflection, no final XOR, stored little-endian: RP2040 Datasheet §2.8.1.3.1)
and runs them. This module assembles the Thumb source with arm-none-eabi-gcc, checks that it
is position independent (no relocations) and fits in 252 bytes, pads it with zeros, appends
the CRC and writes the committed C array ``mcu_dc_boot2[256]`` in section ``.boot2`` (placed
at 0x10000000 by ``templates/project/linker.ld.j2``), so that builds need no generator.

Run ``python3 mcu_dc/deploy/boot2.py`` (or ``python3 -m mcu_dc.deploy.boot2``) after editing
the assembly; ``tests/boards/test_boot2.py`` regenerates it and checks byte equality.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `mcu_dc` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mcu_dc.errors import BuildError
from mcu_dc.resources import resource_dir

BOOT2_SIZE = 256
PAYLOAD_SIZE = BOOT2_SIZE - 4
CRC_POLY = 0x04C11DB7
CRC_INIT = 0xFFFFFFFF
ARRAY_NAME = "mcu_dc_boot2"
SECTION = ".boot2"


def rp2040_dir() -> Path:
    return resource_dir("firmware") / "bsp" / "rp2040"


def source_path() -> Path:
    return rp2040_dir() / "mcu_dc_boot2.S"


def output_path() -> Path:
    return rp2040_dir() / "mcu_dc_boot2.c"


def crc32_mpeg2(data: bytes) -> int:
    """CRC32 as the RP2040 bootrom computes it (MSB first, table-driven)."""
    crc = CRC_INIT
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000_0000 else (crc << 1)
            crc &= 0xFFFF_FFFF
    return crc


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(
            f"{name} is not installed: building the RP2040 boot stage 2 needs the GNU Arm toolchain "
            "(Debian: gcc-arm-none-eabi). The committed firmware/bsp/rp2040/mcu_dc_boot2.c does not "
            "need it; only regenerating it does."
        )
    return path


def _run(cmd: list[str], what: str, timeout: float = 60) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout)
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{what} failed ({' '.join(cmd)}):\n{exc.stderr.strip()}") from exc
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{what} took longer than {timeout:g} s ({' '.join(cmd)})") from exc
    return proc.stdout


def assemble(source: Path | None = None) -> bytes:
    """The boot stage 2 code (before padding) assembled from ``source``."""
    src = source or source_path()
    gcc = _tool("arm-none-eabi-gcc")
    objcopy = _tool("arm-none-eabi-objcopy")
    readelf = _tool("arm-none-eabi-readelf")
    with tempfile.TemporaryDirectory(prefix="mcu_dc_boot2.") as tmp:
        obj = Path(tmp) / "boot2.o"
        binary = Path(tmp) / "boot2.bin"
        _run([gcc, "-mcpu=cortex-m0plus", "-mthumb", "-c", str(src), "-o", str(obj)], "assembling boot2")
        relocs = _run([readelf, "-r", str(obj)], "reading boot2 relocations")
        if "Relocation section" in relocs:
            raise BuildError(
                f"{src} assembles to code with relocations; boot stage 2 runs from SRAM at an address "
                "the linker never sees, so it must use PC-relative literals only:\n" + relocs.strip()
            )
        _run([objcopy, "-O", "binary", "-j", ".text", str(obj), str(binary)], "extracting boot2 code")
        code = binary.read_bytes()
    if not code:
        raise BuildError(f"{src} assembled to no code in .text")
    if len(code) > PAYLOAD_SIZE:
        raise BuildError(
            f"{src} assembles to {len(code)} bytes; boot stage 2 has room for {PAYLOAD_SIZE} "
            "(256 less the 4-byte CRC)"
        )
    return code


def image(code: bytes) -> bytes:
    """``code`` padded with zeros to 252 bytes, followed by its CRC32 (little-endian)."""
    if len(code) > PAYLOAD_SIZE:
        raise BuildError(f"boot stage 2 code is {len(code)} bytes; at most {PAYLOAD_SIZE} fit")
    payload = code + bytes(PAYLOAD_SIZE - len(code))
    return payload + crc32_mpeg2(payload).to_bytes(4, "little")


def render_c(img: bytes) -> str:
    if len(img) != BOOT2_SIZE:
        raise BuildError(f"boot stage 2 image is {len(img)} bytes, not {BOOT2_SIZE}")
    crc = int.from_bytes(img[-4:], "little")
    rows = []
    for i in range(0, BOOT2_SIZE, 12):
        rows.append("    " + " ".join(f"0x{b:02X}," for b in img[i : i + 12]))
    body = "\n".join(rows)
    return (
        "/*\n"
        " * RP2040 boot stage 2 for mcu_dc, generated by mcu_dc/deploy/boot2.py from\n"
        " * mcu_dc_boot2.S: do not edit, regenerate (`python3 mcu_dc/deploy/boot2.py`).\n"
        " * 252 bytes of code (zero padded) + CRC32 (poly 0x04C11DB7, init 0xFFFFFFFF, no\n"
        f" * reflection, no final XOR; RP2040 Datasheet §2.8.1.3.1) = 0x{crc:08X}, little-endian.\n"
        " * The linker script places section .boot2 at 0x10000000, the start of flash.\n"
        " */\n"
        "#include <stdint.h>\n"
        "\n"
        f"extern const uint8_t {ARRAY_NAME}[{BOOT2_SIZE}];\n"
        f'const uint8_t {ARRAY_NAME}[{BOOT2_SIZE}] __attribute__((section("{SECTION}"), used)) = {{\n'
        f"{body}\n"
        "};\n"
    )


def generate(source: Path | None = None) -> str:
    """The C file for ``source`` (default: the committed assembly)."""
    return render_c(image(assemble(source)))


def write(out: Path | None = None, source: Path | None = None) -> Path:
    path = out or output_path()
    path.write_text(generate(source), encoding="utf-8", newline="\n")
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print("usage: python3 mcu_dc/deploy/boot2.py [OUT.c]  (default: firmware/bsp/rp2040/mcu_dc_boot2.c)")
        return 0
    try:
        path = write(Path(args[0]) if args else None)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
