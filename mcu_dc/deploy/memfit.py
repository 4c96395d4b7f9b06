"""Memory fit: the linker is the truth.

From one link of the firmware this module reads

* ``-Wl,--print-memory-usage`` (the linker's own FLASH and RAM totals),
* the map file (``-Wl,-Map``: every input section with its object file), and
* ``arm-none-eabi-size -A`` (the ELF's allocated sections),

and reports flash used/total and RAM used/total, split into parts: ``runtime`` (the
mcu_dc runtime library), ``model`` (the generated model blob: codebooks, biases, Huffman
tables and streams), ``app`` (firmware main and serial protocol), ``bsp`` (startup, UART,
counter), ``libc`` (newlib-nano/libgcc helpers), ``arena`` (the inference arena, a .bss
array whose name contains "arena"), ``stack`` (reserved by the linker script) and
``other`` (alignment padding and anything left, so the parts sum to the linker's totals).

When a firmware does not fit, the linker refuses to link it; :mod:`mcu_dc.deploy.armbuild`
then links it once more against an oversized memory map to measure it, and
:func:`check_fit` compares the figures with the board's real budget and raises
:class:`~mcu_dc.errors.FitError` with a table: the overflow in bytes, the largest part,
and what to try.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcu_dc.deploy.boards import Board, list_boards
from mcu_dc.errors import BuildError, FitError

PARTS = ("runtime", "model", "app", "bsp", "libc", "arena", "stack", "other")
PART_TITLES = {
    "runtime": "runtime code (mcu_dc kernels, Huffman decoder)",
    "model": "model data (codebooks, biases, Huffman streams)",
    "app": "firmware app (protocol server or demo)",
    "bsp": "startup, UART, counter (BSP)",
    "libc": "libc / libgcc helpers",
    "arena": "inference arena",
    "stack": "stack",
    "other": "padding, vector table alignment, other",
}
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
_USAGE_RE = re.compile(r"^\s*(\w+):\s+(\d+)\s*(B|KB|MB|GB)\s+(\d+)\s*(B|KB|MB|GB)\s+[\d.]+%", re.M)
# Output sections of templates/project/linker.ld.j2 by where their bytes live.
FLASH_OUTPUTS = frozenset(
    (
        ".isr_vector",
        ".text",
        ".rodata",
        ".ARM.extab",
        ".ARM.exidx",
        ".preinit_array",
        ".init_array",
        ".fini_array",
    )
)
RAM_LOADED_OUTPUTS = frozenset((".data",))
RAM_OUTPUTS = frozenset((".bss", ".heap", ".stack"))


@dataclass(frozen=True)
class InputSection:
    output: str  # output section, e.g. ".text"
    name: str  # input section, e.g. ".text.mcu_dc_infer"
    address: int
    size: int
    source: str  # object file or archive(member); "*fill*" for padding


@dataclass
class FitReport:
    board: str
    flash_used: int
    flash_total: int
    ram_used: int
    ram_total: int
    parts: dict[str, dict[str, int]]
    elf_sections: dict[str, int] = field(default_factory=dict)
    measured_oversize: bool = False  # the real link overflowed; figures come from an oversized link
    stack_reserved: int = 0
    model_breakdown: dict[str, int] = field(default_factory=dict)  # model data by kind (from the blob)
    gather_arena: int = 0  # arena bytes the gather convolutions add over the scatter kernels
    stack: StackEstimate | None = None  # worst case from the call graph, when available
    elf: str = ""
    map_file: str = ""

    @property
    def stack_fits(self) -> bool:
        return self.stack is None or self.stack.worst_case <= self.stack_reserved

    @property
    def fits(self) -> bool:
        return self.flash_used <= self.flash_total and self.ram_used <= self.ram_total and self.stack_fits

    @property
    def flash_over(self) -> int:
        return max(0, self.flash_used - self.flash_total)

    @property
    def ram_over(self) -> int:
        return max(0, self.ram_used - self.ram_total)

    def to_json(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "fits": self.fits,
            "flash_used": self.flash_used,
            "flash_total": self.flash_total,
            "ram_used": self.ram_used,
            "ram_total": self.ram_total,
            "flash_over": self.flash_over,
            "ram_over": self.ram_over,
            "sections": {p: dict(self.parts[p]) for p in PARTS},
            "stack": {
                "reserved": self.stack_reserved,
                **(self.stack.to_json() if self.stack else {"worst_case": None}),
            },
            "model_breakdown": dict(self.model_breakdown),
            "elf_sections": dict(self.elf_sections),
            "elf": self.elf,
            "map": self.map_file,
        }

    def table(self) -> str:
        """A plain-text table: totals against the budget, then the parts."""
        lines = [
            f"memory fit on {self.board}:",
            f"  {'':8s} {'used':>10s} {'budget':>10s} {'free/over':>16s}",
        ]
        for label, used, total in (
            ("flash", self.flash_used, self.flash_total),
            ("RAM", self.ram_used, self.ram_total),
        ):
            delta = total - used
            mark = f"{delta:,d} free" if delta >= 0 else f"{-delta:,d} OVER"
            lines.append(f"  {label:8s} {used:>10,d} {total:>10,d} {mark:>16s}")
        lines.append(f"  {'part':50s} {'flash':>9s} {'RAM':>9s}")
        for p in PARTS:
            f, r = self.parts[p]["flash"], self.parts[p]["ram"]
            if f or r:
                lines.append(f"  {PART_TITLES[p]:50s} {f:>9,d} {r:>9,d}")
            if p == "model":
                for kind, n in self.model_breakdown.items():
                    lines.append(f"    {kind:48s} {n:>9,d}")
        if self.stack is not None:
            bound = "" if self.stack.exact else " (lower bound: recursion, dynamic frames or indirect calls)"
            verdict = "" if self.stack_fits else " -- TOO SMALL"
            lines.append(
                f"  stack: worst case {self.stack.worst_case:,d} B of {self.stack_reserved:,d} B reserved"
                f"{bound}{verdict}; deepest path: {' > '.join(self.stack.path[:8])}"
            )
        return "\n".join(lines)

    def largest_part(self, memory: str) -> tuple[str, int]:
        name = max(PARTS, key=lambda p: self.parts[p][memory])
        return name, self.parts[name][memory]


MODEL_KINDS = ("header + layer table", "codebooks", "biases", "weight streams", "index streams")


def gather_arena(model: Any) -> int:
    """Arena bytes ``model``'s gather convolutions add over the scatter kernels (0 without any)."""
    if not any(int(getattr(op, "gather", 0)) for op in model.layers):
        return 0
    from mcu_dc.core.objective import with_encodings

    return int(model.arena_bytes()) - int(with_encodings(model, {}, conv_kernel="scatter").arena_bytes())


def model_breakdown(blob: bytes, layer_names: list[str] | None = None) -> dict[str, int]:
    """Bytes of the model blob by kind: header and layer table, codebooks, biases, weight
    streams (Huffman-coded symbols, or dense int8 weights) and relative-index streams."""
    from mcu_dc.deploy.codegen import blob_parts

    out = dict.fromkeys(MODEL_KINDS, 0)
    for part in blob_parts(blob, layer_names):
        name = part.name
        if "codebook" in name:
            kind = "codebooks"
        elif "bias" in name:
            kind = "biases"
        elif "weight" in name:
            kind = "weight streams"
        elif "index" in name:
            kind = "index streams"
        else:
            kind = "header + layer table"
        out[kind] += part.end - part.start
    return out


def parse_memory_usage(text: str) -> dict[str, tuple[int, int]]:
    """``--print-memory-usage`` lines → ``{region: (used, size)}`` in bytes."""
    out: dict[str, tuple[int, int]] = {}
    for m in _USAGE_RE.finditer(text):
        out[m.group(1)] = (int(m.group(2)) * _UNITS[m.group(3)], int(m.group(4)) * _UNITS[m.group(5)])
    return out


_OUT_FULL = re.compile(r"^(\.[^\s]+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)")
_OUT_NAME = re.compile(r"^(\.[^\s]+)\s*$")
_IN_FULL = re.compile(r"^ (\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_FILL = re.compile(r"^ \*fill\*\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)")
_IN_NAME = re.compile(r"^ (\S+)\s*$")
_ADDR_SIZE = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)(?:\s+(\S.*))?$")


def parse_map(text: str) -> list[InputSection]:
    """Input sections of a GNU ld map file (after "Linker script and memory map")."""
    start = text.find("Linker script and memory map")
    lines = text[start:].splitlines() if start >= 0 else text.splitlines()
    out: list[InputSection] = []
    current = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        m = _OUT_FULL.match(line)
        if m:
            current = m.group(1)
            i += 1
            continue
        m = _OUT_NAME.match(line)
        if m and _ADDR_SIZE.match(nxt):
            current = m.group(1)
            i += 2
            continue
        m = _FILL.match(line)
        if m:
            out.append(InputSection(current, "*fill*", int(m.group(1), 16), int(m.group(2), 16), "*fill*"))
            i += 1
            continue
        m = _IN_FULL.match(line)
        if m and not m.group(1).startswith("*("):
            out.append(
                InputSection(
                    current, m.group(1), int(m.group(2), 16), int(m.group(3), 16), m.group(4).strip()
                )
            )
            i += 1
            continue
        m = _IN_NAME.match(line)
        m2 = _ADDR_SIZE.match(nxt)
        if m and m2 and m2.group(3) and not m.group(1).startswith("*("):
            out.append(
                InputSection(
                    current, m.group(1), int(m2.group(1), 16), int(m2.group(2), 16), m2.group(3).strip()
                )
            )
            i += 2
            continue
        i += 1
    return out


def elf_sections(
    elf: Path, size_tool: str = "arm-none-eabi-size", timeout: float = 60
) -> dict[str, tuple[int, int]]:
    """``arm-none-eabi-size -A``: ``{section: (size, address)}`` for the ELF's sections."""
    try:
        proc = subprocess.run(
            [size_tool, "-A", str(elf)], capture_output=True, text=True, check=True, timeout=timeout
        )
    except FileNotFoundError as exc:
        raise BuildError(
            f"{size_tool} is not installed; install Debian's gcc-arm-none-eabi (binutils)"
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise BuildError(f"{size_tool} failed on {elf}: {exc.stderr.strip()}") from exc
    out: dict[str, tuple[int, int]] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit() and parts[2].isdigit():
            out[parts[0]] = (int(parts[1]), int(parts[2]))
    return out


def classify(sec: InputSection, model_sources: tuple[str, ...] = ("_model.o",)) -> str:
    """Which part an input section belongs to."""
    if sec.output == ".stack":
        return "stack"
    if sec.source == "*fill*":
        return "other"
    if "arena" in sec.name and (sec.output == ".bss" or sec.name.startswith(".bss")):
        return "arena"
    src = sec.source.replace("\\", "/")
    if ".a(" in src or src.endswith(".a"):
        return "libc"
    rel = src.split("/obj/", 1)[1] if "/obj/" in src else src
    if rel.startswith(("lib/mcu_dc/", "runtime/")):
        return "runtime"
    if any(rel.endswith(s) for s in model_sources):
        return "model"
    if rel.startswith(("src/bsp/", "bsp/")) or "/bsp/" in rel:
        return "bsp"
    if src.endswith(".o"):
        return "app"
    return "other"


def analyze(
    board: Board,
    elf: Path,
    map_file: Path,
    memory_usage: str,
    *,
    measured_oversize: bool = False,
    size_tool: str = "arm-none-eabi-size",
    callgraphs: list[Path] | None = None,
) -> FitReport:
    """Build the :class:`FitReport` of one link (the budget is always the board's real one).

    ``callgraphs`` are the objects' ``.ci`` files (``-fcallgraph-info=su``); with them the
    report carries the worst-case stack depth, checked against the reserved stack.
    """
    usage = parse_memory_usage(memory_usage)
    if "FLASH" not in usage or "RAM" not in usage:
        raise BuildError(
            f"the linker printed no FLASH/RAM usage for {elf} (got {memory_usage.strip()[:200]!r}); "
            "the link needs -Wl,--print-memory-usage and a script with FLASH and RAM regions"
        )
    flash_used, ram_used = usage["FLASH"][0], usage["RAM"][0]
    sections = parse_map(map_file.read_text(encoding="utf-8", errors="replace"))
    parts = {p: {"flash": 0, "ram": 0} for p in PARTS}
    for sec in sections:
        if sec.size == 0:
            continue
        part = classify(sec)
        if sec.output in FLASH_OUTPUTS:
            parts[part]["flash"] += sec.size
        elif sec.output in RAM_LOADED_OUTPUTS:  # in RAM, with its initial copy in flash
            parts[part]["flash"] += sec.size
            parts[part]["ram"] += sec.size
        elif sec.output in RAM_OUTPUTS:
            parts[part]["ram"] += sec.size
    sizes = elf_sections(elf, size_tool)
    # The stack is reserved by moving the location counter: no input section, so take
    # the .stack output section's size from the ELF.
    parts["stack"]["ram"] = sizes.get(".stack", (0, 0))[0]
    # The linker's totals are the truth: what the map does not attribute is "other".
    for memory, used in (("flash", flash_used), ("ram", ram_used)):
        known = sum(parts[p][memory] for p in PARTS if p != "other")
        parts["other"][memory] = used - known
    return FitReport(
        board=board.id,
        flash_used=flash_used,
        flash_total=board.flash_size,
        ram_used=ram_used,
        ram_total=board.ram_size,
        parts=parts,
        elf_sections={name: size for name, (size, _addr) in sizes.items() if size and _addr},
        measured_oversize=measured_oversize,
        stack_reserved=board.stack_size,
        stack=_stack_from(callgraphs, board),
        elf=str(elf),
        map_file=str(map_file),
    )


# --- worst-case stack from GCC's -fstack-usage / -fcallgraph-info=su -------------------

UNKNOWN_FRAME = 64  # bytes assumed for a callee without a known frame (libc, libgcc helpers)
EXCEPTION_FRAME = 32  # ARMv7-M/ARMv6-M basic exception stack frame
EXCEPTION_FRAME_FP = 104  # with the lazy floating-point context (hard-float builds)
_NODE_RE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
_EDGE_RE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
_FRAME_RE = re.compile(r"\\n(\d+) bytes \(([a-z,]+)\)")
_FATAL_HANDLERS = ("HardFault_Handler", "MemManage_Handler", "BusFault_Handler", "UsageFault_Handler")


def _short(fn: str) -> str:
    """``/long/path/mcu_dc_fc.c:fc_walk`` (a static function) → ``mcu_dc_fc.c:fc_walk``."""
    return fn.rsplit("/", 1)[-1]


@dataclass
class StackEstimate:
    """Deepest call chain from the reset handler, plus the deepest enabled interrupt."""

    worst_case: int
    path: list[str]
    unknown: list[str]  # callees with no frame size, each counted as UNKNOWN_FRAME bytes
    exact: bool  # False with recursion, dynamic frames or indirect calls (then a lower bound)

    def to_json(self) -> dict[str, Any]:
        return {
            "worst_case": self.worst_case,
            "path": self.path,
            "unknown": self.unknown,
            "exact": self.exact,
        }


def estimate_stack(
    callgraph_texts: list[str],
    *,
    root: str = "mcu_dc_reset_handler",
    hard_float: bool = False,
    ignore_indirect_from: tuple[str, ...] = ("mcu_dc_reset_handler",),
) -> StackEstimate:
    """Worst-case stack from ``.ci`` files (GCC ``-fcallgraph-info=su``).

    The reset handler's indirect calls are the C++ constructor tables, empty in C firmware,
    and are ignored. Any other indirect call (the runtime's op table: each op's ``validate``,
    ``run``, ... is reached only through a function pointer) is bounded by the deepest
    function that no function calls directly and that makes no indirect call itself: in
    this firmware those are exactly the op-table entries, so the bound stays exact. A handler named
    ``*_Handler`` with a frame (other than the fatal fault handlers) is an enabled
    interrupt: its frame plus the exception frame is added once.
    """
    frames: dict[str, int] = {}
    exact = True
    edges: dict[str, set[str]] = {}
    for text in callgraph_texts:
        for title, label in _NODE_RE.findall(text):
            m = _FRAME_RE.search(label)
            if m:
                frames[title] = int(m.group(1))
                if m.group(2) != "static":
                    exact = False
        for src, dst in _EDGE_RE.findall(text):
            edges.setdefault(src, set()).add(dst)
    called = {dst for dsts in edges.values() for dst in dsts}

    def reaches_indirect(fn: str, seen: set[str]) -> bool:
        if fn == "__indirect_call":
            return True
        seen.add(fn)
        return any(reaches_indirect(c, seen) for c in edges.get(fn, ()) if c not in seen)

    # functions only reached through a pointer: nothing calls them directly, and they make no
    # indirect call themselves (that excludes unused top-level API such as mcu_dc_infer_ref,
    # whose code --gc-sections drops but whose call graph GCC still writes)
    pointer_targets = sorted(
        f
        for f in frames
        if f not in called and f != root and not f.endswith("_Handler") and not reaches_indirect(f, set())
    )
    unknown: set[str] = set()
    memo: dict[str, tuple[int, list[str]]] = {}
    active: set[str] = set()

    def depth(fn: str) -> tuple[int, list[str]]:
        nonlocal exact
        if fn in memo:
            return memo[fn]
        if fn in active:  # recursion: the bound is not exact
            exact = False
            return 0, [fn + " (recursion)"]
        if fn == "__indirect_call":
            if not pointer_targets:
                exact = False
                return UNKNOWN_FRAME, ["(indirect call)"]
            deepest = max((depth(t) for t in pointer_targets), key=lambda d: d[0])
            return deepest[0], ["(indirect call)", *deepest[1]]
        if fn not in frames:
            unknown.add(fn)
            return UNKNOWN_FRAME, [fn + " (unknown)"]
        active.add(fn)
        best = (0, [])
        for callee in sorted(edges.get(fn, ())):
            if callee == "__indirect_call" and fn in ignore_indirect_from:
                continue
            d = depth(callee)
            if d[0] > best[0]:
                best = d
        active.discard(fn)
        memo[fn] = (frames[fn] + best[0], [f"{_short(fn)} ({frames[fn]})", *best[1]])
        return memo[fn]

    total, path = depth(root)
    handlers = [h for h in frames if h.endswith("_Handler") and h not in _FATAL_HANDLERS]
    if handlers:
        extra = max(depth(h)[0] for h in handlers)
        total += extra + (EXCEPTION_FRAME_FP if hard_float else EXCEPTION_FRAME)
        path = [*path, f"+ interrupt {max(handlers, key=lambda h: depth(h)[0])} ({extra})"]
    return StackEstimate(total, path, sorted(unknown), exact)


def _stack_from(callgraphs: list[Path] | None, board: Board) -> StackEstimate | None:
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in (callgraphs or []) if p.is_file()]
    if not texts:
        return None
    hard = any(f == "-mfloat-abi=hard" for f in board.cflags)
    return estimate_stack(texts, hard_float=hard)


def advice(report: FitReport) -> str:
    """What to try when ``report`` does not fit."""
    bigger = [
        b.id
        for b in list_boards()
        if b.flash_size >= report.flash_used and b.ram_size >= report.ram_used and b.id != report.board
    ]
    tips = []
    model_flash = report.parts["model"]["flash"]
    if report.flash_over:
        tips.append(
            "prune more (a higher sparsity in `mcu-dc compress`) or use fewer bits per weight "
            "(smaller codebooks), which shrink the model data"
            + (f" ({model_flash:,d} B now)" if model_flash else "")
        )
    if report.ram_over and report.gather_arena > 0:
        tips.append(
            "run the convolutions on the scatter kernels (`mcu-dc encode MODEL OUT --objective size "
            "--conv-kernel scatter`): the gather kernel's padded inputs and taps take "
            f"{report.gather_arena:,d} B of the arena (the scatter kernels are slower, the weights the same)"
        )
    if report.ram_over:
        tips.append(
            "shrink the largest activation (the arena holds the live activations and one op's scratch) "
            "or reduce the stack (boards/<id>.toml stack_size)"
        )
    tips.append("use another board" + (f" (it fits: {', '.join(bigger[:4])})" if bigger else ""))
    return "; ".join(tips)


def check_fit(report: FitReport) -> None:
    """Raise :class:`FitError` with the table when ``report`` does not fit its board."""
    if report.fits:
        return
    over = []
    if report.flash_over:
        over.append(f"flash by {report.flash_over:,d} B ({report.flash_used:,d} of {report.flash_total:,d})")
    if report.ram_over:
        over.append(f"RAM by {report.ram_over:,d} B ({report.ram_used:,d} of {report.ram_total:,d})")
    if not over and report.stack is not None:
        raise FitError(
            f"the firmware's stack can grow to {report.stack.worst_case:,d} B on {report.board} but only "
            f"{report.stack_reserved:,d} B are reserved (deepest path: {' > '.join(report.stack.path)}). "
            f"Raise stack_size in boards/{report.board}.toml (RAM has "
            f"{report.ram_total - report.ram_used:,d} B free).\n{report.table()}"
        )
    memory = "flash" if report.flash_over else "ram"
    part, size = report.largest_part(memory)
    raise FitError(
        f"the firmware does not fit {report.board}: it overflows {' and '.join(over)}. "
        f"The largest part of {'flash' if memory == 'flash' else 'RAM'} is {PART_TITLES[part]} "
        f"with {size:,d} B. "
        f"Try: {advice(report)}.\n{report.table()}"
    )
