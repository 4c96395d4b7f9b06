"""Board descriptions: one TOML file per board in ``boards/``.

A board file gives the figures a build needs, each from the vendor's datasheet or
reference manual (cited in the file): flash and RAM origin and size, core, FPU, clock,
compiler flags, the BSP family under ``firmware/bsp/``, the PlatformIO board, and for an
emulated board the QEMU machine, its UART and the counter's scale. Layout::

    id = "qemu-mps2-an386"          # must equal the file name
    name = "..."; vendor = "..."; core = "cortex-m4"; fpu = "fpv4-sp-d16" | "none"
    clock_hz = 25000000; bsp = "cmsdk"; emulated = true; source = "datasheet, section"
    bsp_variant = "stm32f7"         # only for a family serving several chips (BSP_VARIANTS)
    [memory]   flash_origin, flash_size, ram_origin, ram_size, stack_size, note,
               boot2_size (optional: bytes of a boot stage just below flash_origin, RP2040: 256)
    [compiler] cflags = ["-mcpu=cortex-m4", "-mthumb", ...]
    [counter]  unit = "instructions" | "cycles", mul, div   (units per timer tick = mul/div)
    [serial]   peripheral, tx, rx, baud (115200), connect, clock   (how the host talks to it;
               required unless bsp = "generic", which has no UART driver)
    [platformio] board, platform, framework ("" = bare metal, the BSP gives startup),
               upload_protocol (required on real boards), monitor_speed (= serial.baud)
    [qemu]     machine, serial_index, uart, uart_base, timer, timer_base, timer_hz,
               mapped_flash, mapped_ram        (emulated boards only)

:func:`load_board` validates everything and raises :class:`~mcu_dc.errors.BoardError`
naming the file and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from mcu_dc.errors import BoardError
from mcu_dc.resources import resource_dir

# Cortex-M cores mcu_dc knows, with the -mcpu each needs and whether it is ARMv6-M.
KNOWN_CORES: dict[str, str] = {
    "cortex-m0": "armv6-m",
    "cortex-m0plus": "armv6-m",
    "cortex-m3": "armv7-m",
    "cortex-m4": "armv7e-m",
    "cortex-m7": "armv7e-m",
    "cortex-m33": "armv8-m.main",
}
KNOWN_FPUS = ("none", "fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16")
KNOWN_BSPS = ("cmsdk", "stellaris", "nrf51", "stm32f4", "stm32v2", "nrf52", "rp2040", "generic")
# BSP families that serve several chips: the board file names one (`bsp_variant`), which
# reaches C as MCU_DC_BSP_VARIANT_<VARIANT> (upper case).
BSP_VARIANTS: dict[str, tuple[str, ...]] = {"stm32v2": ("stm32f7", "stm32h7", "stm32l4p")}
# The one baud rate every mcu_dc BSP sets up (8N1), and the RP2040 bootrom's boot stage 2 size.
SERIAL_BAUD = 115_200
RP2040_BOOT2_SIZE = 256
COUNTER_UNITS = ("instructions", "cycles")

# ARMv7-M architectural memory map (ARM DDI 0403E, §B3.1 table B3-1): code may live in
# the Code region, RAM in the SRAM region or the external RAM region.
CODE_REGION = (0x0000_0000, 0x2000_0000)
RAM_REGIONS = ((0x2000_0000, 0x4000_0000), (0x6000_0000, 0xA000_0000))

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class SerialInfo:
    """How a host reaches the firmware's serial port (``[serial]`` in the board file)."""

    peripheral: str  # e.g. "USART3"
    tx: str  # the MCU's TX pin, e.g. "PD8"
    rx: str  # the MCU's RX pin
    baud: int
    connect: str  # what the user plugs in, e.g. "ST-LINK virtual COM port on the Nucleo's USB"
    clock: str  # the clock the BSP leaves the core and the UART on


@dataclass(frozen=True)
class QemuInfo:
    machine: str
    serial_index: int
    uart: str
    uart_base: int
    timer: str
    timer_base: int
    timer_hz: int
    mapped_flash: int  # bytes QEMU maps at flash_origin
    mapped_ram: int  # bytes QEMU maps at ram_origin


@dataclass(frozen=True)
class Board:
    id: str
    name: str
    vendor: str
    core: str
    fpu: str
    clock_hz: int
    bsp: str
    emulated: bool
    source: str
    flash_origin: int
    flash_size: int
    ram_origin: int
    ram_size: int
    stack_size: int
    memory_note: str
    cflags: tuple[str, ...]
    counter_unit: str
    counter_mul: int
    counter_div: int
    pio_board: str
    pio_platform: str
    pio_framework: str
    qemu: QemuInfo | None
    path: Path
    bsp_variant: str = ""
    boot2_size: int = 0
    serial_info: SerialInfo | None = None
    pio_upload_protocol: str = ""
    monitor_speed: int = SERIAL_BAUD

    @property
    def serial_driver(self) -> bool:
        """Whether the board's BSP has a UART driver (bsp "generic" drops every byte)."""
        return self.bsp != "generic"

    @property
    def serial(self) -> str:
        """One line: the serial peripheral, its pins and how to connect (or that there is none)."""
        if not self.serial_driver or self.serial_info is None:
            return (
                f'no serial driver (bsp "{self.bsp}": the UART functions are placeholders that drop '
                "every byte)"
            )
        s = self.serial_info
        return f"{s.peripheral} TX {s.tx} / RX {s.rx}, {s.baud} 8N1: {s.connect}"

    @property
    def boot2_origin(self) -> int:
        """Address of the boot stage (``boot2_size`` bytes just below ``flash_origin``)."""
        return self.flash_origin - self.boot2_size

    @property
    def arch(self) -> str:
        return KNOWN_CORES[self.core]

    @property
    def flash_end(self) -> int:
        return self.flash_origin + self.flash_size

    @property
    def ram_end(self) -> int:
        return self.ram_origin + self.ram_size

    def bsp_defines(self) -> dict[str, str]:
        """C preprocessor settings for ``firmware/bsp/cortexm/mcu_dc_bsp_config.h``."""
        unit = (
            "MCU_DC_COUNTER_INSTRUCTIONS" if self.counter_unit == "instructions" else "MCU_DC_COUNTER_CYCLES"
        )
        out = {
            "MCU_DC_BSP_BOARD": f'"{self.id}"',
            "MCU_DC_BSP_COUNTER_MUL": f"{self.counter_mul}u",
            "MCU_DC_BSP_COUNTER_DIV": f"{self.counter_div}u",
            "MCU_DC_BSP_COUNTER_UNIT": unit,
        }
        if self.bsp_variant:
            out["MCU_DC_BSP_VARIANT_" + re.sub(r"[^0-9A-Za-z]", "_", self.bsp_variant).upper()] = "1"
        if self.qemu is not None:
            out["MCU_DC_BSP_UART_BASE"] = f"0x{self.qemu.uart_base:08X}u"
            if self.qemu.timer_base:
                out["MCU_DC_BSP_TIMER_BASE"] = f"0x{self.qemu.timer_base:08X}u"
        return out


def boards_dir() -> Path:
    return resource_dir("boards")


def list_boards() -> list[Board]:
    """Every board in ``boards/``, sorted by id (emulated first)."""
    boards = [load_board(p) for p in sorted(boards_dir().glob("*.toml"))]
    return sorted(boards, key=lambda b: (not b.emulated, b.id))


def board_ids() -> list[str]:
    return sorted(p.stem for p in boards_dir().glob("*.toml"))


def load_board(board: str | Path) -> Board:
    """Load and validate a board by id (``boards/<id>.toml``) or by path to a TOML file."""
    path = Path(board)
    if path.suffix != ".toml":
        path = boards_dir() / f"{board}.toml"
        if not path.is_file():
            raise BoardError(
                f"unknown board {board!r}: there is no {path}. Known boards: "
                f"{', '.join(board_ids())}. Run `mcu-dc boards` to list them with flash and RAM."
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BoardError(f"board file {path} is not valid TOML: {exc}. Fix the syntax.") from exc
    except OSError as exc:
        raise BoardError(f"cannot read board file {path}: {exc}") from exc
    return _parse(data, path)


class _Reader:
    def __init__(self, data: dict[str, Any], path: Path) -> None:
        self.data = data
        self.path = path

    def fail(self, field: str, what: str) -> BoardError:
        return BoardError(
            f"board file {self.path}: field `{field}` {what}. Fix that field (see the other files in "
            f"{self.path.parent} for the layout, and the vendor datasheet for the figure)."
        )

    def get(
        self, field: str, kind: type | tuple[type, ...], *, required: bool = True, default: Any = None
    ) -> Any:
        node: Any = self.data
        parts = field.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                if not required:
                    return default
                where = "table [" + ".".join(parts[:i]) + "]" if i else "the file"
                raise self.fail(field, f"is missing (expected in {where})")
            node = node[part]
        if isinstance(node, bool) and kind is int:
            raise self.fail(field, f"must be an integer, not {node!r}")
        if not isinstance(node, kind):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise self.fail(field, f"must be a {names}, not {node!r}")
        return node

    def positive(self, field: str) -> int:
        v = self.get(field, int)
        if v <= 0:
            raise self.fail(field, f"must be positive, not {v}")
        return v


def _parse(data: dict[str, Any], path: Path) -> Board:
    r = _Reader(data, path)
    board_id = r.get("id", str)
    if board_id != path.stem or not _ID_RE.match(board_id):
        raise r.fail("id", f"is {board_id!r} but must equal the file name {path.stem!r} (lower case)")
    core = r.get("core", str)
    if core not in KNOWN_CORES:
        raise r.fail("core", f"names an unknown core {core!r}; known: {', '.join(KNOWN_CORES)}")
    fpu = r.get("fpu", str)
    if fpu not in KNOWN_FPUS:
        raise r.fail("fpu", f"names an unknown FPU {fpu!r}; known: {', '.join(KNOWN_FPUS)}")
    bsp = r.get("bsp", str)
    if bsp not in KNOWN_BSPS:
        raise r.fail("bsp", f"names an unknown BSP family {bsp!r}; known: {', '.join(KNOWN_BSPS)}")
    emulated = r.get("emulated", bool)
    variants = BSP_VARIANTS.get(bsp, ())
    bsp_variant = r.get("bsp_variant", str, required=bool(variants), default="")
    if variants and bsp_variant not in variants:
        raise r.fail("bsp_variant", f"is {bsp_variant!r}; bsp {bsp!r} serves the chips {', '.join(variants)}")
    if not variants and bsp_variant:
        raise r.fail("bsp_variant", f"is given but bsp {bsp!r} has no variants (remove it)")

    flash_origin = r.get("memory.flash_origin", int)
    flash_size = r.positive("memory.flash_size")
    ram_origin = r.get("memory.ram_origin", int)
    ram_size = r.positive("memory.ram_size")
    stack_size = r.positive("memory.stack_size")
    if stack_size % 8:
        raise r.fail("memory.stack_size", f"is {stack_size}; it must be a multiple of 8 (AAPCS)")
    if flash_origin < ram_origin + ram_size and ram_origin < flash_origin + flash_size:
        raise r.fail(
            "memory.ram_origin",
            f"makes RAM [0x{ram_origin:08X}, 0x{ram_origin + ram_size:08X}) overlap flash "
            f"[0x{flash_origin:08X}, 0x{flash_origin + flash_size:08X}): the regions must not overlap",
        )
    _check_region(r, "memory.flash", flash_origin, flash_size, (CODE_REGION,), "the Code region")
    _check_region(r, "memory.ram", ram_origin, ram_size, RAM_REGIONS, "the SRAM or external RAM region")
    if stack_size >= ram_size:
        raise r.fail("memory.stack_size", f"({stack_size} B) leaves no RAM of {ram_size} B for data")
    boot2_size = r.get("memory.boot2_size", int, required=False, default=0)
    if boot2_size < 0 or boot2_size % 4:
        raise r.fail("memory.boot2_size", f"is {boot2_size}; it must be a non-negative multiple of 4")
    if boot2_size and flash_origin - boot2_size < CODE_REGION[0]:
        raise r.fail(
            "memory.boot2_size",
            f"({boot2_size} B) does not fit below flash_origin 0x{flash_origin:08X}",
        )
    if bsp == "rp2040" and boot2_size != RP2040_BOOT2_SIZE:
        raise r.fail(
            "memory.boot2_size",
            f"is {boot2_size}; the RP2040 bootrom loads a {RP2040_BOOT2_SIZE}-byte boot stage 2 from "
            "the start of flash, so it must be 256 (and flash_origin the address after it)",
        )

    cflags = r.get("compiler.cflags", list)
    if not all(isinstance(f, str) for f in cflags):
        raise r.fail("compiler.cflags", "must be a list of strings")
    if f"-mcpu={core}" not in cflags or "-mthumb" not in cflags:
        raise r.fail("compiler.cflags", f"must contain -mcpu={core} and -mthumb (the core is {core})")
    hard = any(f.startswith("-mfloat-abi=hard") for f in cflags)
    if fpu == "none" and hard:
        raise r.fail("compiler.cflags", 'asks for -mfloat-abi=hard on a board with fpu = "none"')
    if fpu != "none" and hard and f"-mfpu={fpu}" not in cflags:
        raise r.fail("compiler.cflags", f"must contain -mfpu={fpu} with -mfloat-abi=hard")

    unit = r.get("counter.unit", str)
    if unit not in COUNTER_UNITS:
        raise r.fail("counter.unit", f"must be one of {COUNTER_UNITS}, not {unit!r}")

    serial: SerialInfo | None = None
    if "serial" in data or bsp != "generic":
        serial = SerialInfo(
            peripheral=r.get("serial.peripheral", str),
            tx=r.get("serial.tx", str),
            rx=r.get("serial.rx", str),
            baud=r.positive("serial.baud"),
            connect=r.get("serial.connect", str),
            clock=r.get("serial.clock", str),
        )
        if serial.baud != SERIAL_BAUD:
            raise r.fail(
                "serial.baud", f"is {serial.baud}; every mcu_dc BSP runs its UART at {SERIAL_BAUD} 8N1"
            )
        for field in ("peripheral", "tx", "rx", "connect", "clock"):
            if not getattr(serial, field).strip():
                raise r.fail(f"serial.{field}", "is empty")
    upload_protocol = r.get("platformio.upload_protocol", str, required=not emulated, default="")
    if not emulated and not _TOKEN_RE.match(upload_protocol):
        raise r.fail(
            "platformio.upload_protocol",
            f"is {upload_protocol!r}; name the PlatformIO upload protocol (e.g. stlink, picotool, sam-ba)",
        )
    monitor_speed = r.get("platformio.monitor_speed", int, required=False, default=SERIAL_BAUD)
    if monitor_speed != (serial.baud if serial else SERIAL_BAUD):
        raise r.fail(
            "platformio.monitor_speed", f"is {monitor_speed}; it must equal the UART's {SERIAL_BAUD}"
        )

    qemu: QemuInfo | None = None
    if emulated:
        q = QemuInfo(
            machine=r.get("qemu.machine", str),
            serial_index=r.get("qemu.serial_index", int),
            uart=r.get("qemu.uart", str),
            uart_base=r.positive("qemu.uart_base"),
            timer=r.get("qemu.timer", str),
            timer_base=r.get("qemu.timer_base", int),
            timer_hz=r.positive("qemu.timer_hz"),
            mapped_flash=r.positive("qemu.mapped_flash"),
            mapped_ram=r.positive("qemu.mapped_ram"),
        )
        if not 0 <= q.serial_index <= 4:
            raise r.fail("qemu.serial_index", f"must be 0..4, not {q.serial_index}")
        if flash_size > q.mapped_flash:
            raise r.fail(
                "memory.flash_size",
                f"({flash_size} B) is larger than the {q.mapped_flash} B "
                f"QEMU maps at 0x{flash_origin:08X} on -M {q.machine}",
            )
        if ram_size > q.mapped_ram:
            raise r.fail(
                "memory.ram_size",
                f"({ram_size} B) is larger than the {q.mapped_ram} B "
                f"QEMU maps at 0x{ram_origin:08X} on -M {q.machine}",
            )
        if unit != "instructions":
            raise r.fail("counter.unit", 'must be "instructions" on an emulated board (-icount shift=0)')
        qemu = q
    elif "qemu" in data:
        raise r.fail("qemu", "is given but the board is not emulated (set emulated = true or remove it)")

    return Board(
        id=board_id,
        name=r.get("name", str),
        vendor=r.get("vendor", str),
        core=core,
        fpu=fpu,
        clock_hz=r.positive("clock_hz"),
        bsp=bsp,
        emulated=emulated,
        source=r.get("source", str),
        flash_origin=flash_origin,
        flash_size=flash_size,
        ram_origin=ram_origin,
        ram_size=ram_size,
        stack_size=stack_size,
        memory_note=r.get("memory.note", str, required=False, default=""),
        cflags=tuple(cflags),
        counter_unit=unit,
        counter_mul=r.positive("counter.mul"),
        counter_div=r.positive("counter.div"),
        pio_board=r.get("platformio.board", str),
        pio_platform=r.get("platformio.platform", str),
        pio_framework=r.get("platformio.framework", str),
        qemu=qemu,
        path=path,
        bsp_variant=bsp_variant,
        boot2_size=boot2_size,
        serial_info=serial,
        pio_upload_protocol=upload_protocol,
        monitor_speed=monitor_speed,
    )


def _check_region(
    r: _Reader, field: str, origin: int, size: int, allowed: tuple[tuple[int, int], ...], where: str
) -> None:
    if origin < 0 or origin % 4:
        raise r.fail(f"{field}_origin", f"is 0x{origin:X}; it must be a non-negative multiple of 4")
    for lo, hi in allowed:
        if lo <= origin < hi:
            if origin + size > hi:
                raise r.fail(
                    f"{field}_size",
                    f"({size} B from 0x{origin:08X}) runs past 0x{hi:08X}, the end of {where} of the "
                    f"Cortex-M memory map, by {origin + size - hi} B: the size is larger than its "
                    "address range",
                )
            return
    raise r.fail(f"{field}_origin", f"(0x{origin:08X}) is not inside {where} of the Cortex-M memory map")
