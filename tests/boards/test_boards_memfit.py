"""Memory fit: the linker's figures, split into parts; a model that does not fit fails with
a table that says by how much, what is largest, and what to try."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import pytest

from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.model_file import load as load_model
from mcu_dc.deploy import memfit
from mcu_dc.deploy.armbuild import build_project
from mcu_dc.deploy.boards import load_board
from mcu_dc.deploy.mcuproject import write_mcu_project
from mcu_dc.errors import FitError

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")
_RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
# a trained LeNet-300-100: bench/deep_compression.py's, else the one bench/memory_fit.py uses
REAL_LENET300 = _RESULTS / "lenet300_deep_compression.mcudc"  # committed by bench/deep_compression.py

USAGE = """Memory region         Used Size  Region Size  %age Used
           FLASH:       40680 B       256 KB     15.52%
             RAM:        2984 B        16 KB     18.21%
"""

MAP = """Archive member included to satisfy reference by file (symbol)
Discarded input sections
 .text.unused   0x00000000       0x10 build/obj/lib/mcu_dc/src/mcu_dc_fc.o
Linker script and memory map

.text           0x00000040     0x1000
 *(.text .text.* .gnu.linkonce.t.*)
 .text.mcu_dc_fc_huffman_sparse
                0x00000040      0x200 /p/build/qemu-microbit/obj/lib/mcu_dc/src/mcu_dc_fc.o
                0x00000040                mcu_dc_fc_huffman_sparse
 .text.main     0x00000240       0x40 /p/build/qemu-microbit/obj/src/main.o
 .text          0x00000280       0x30 /usr/lib/arm-none-eabi/lib/thumb/v6-m/libc_nano.a(lib_a-memcpy.o)
 *fill*         0x000002b0        0x2
 .text.mcu_dc_bsp_write
                0x000002b4       0x20 /p/build/qemu-microbit/obj/src/bsp/nrf51/mcu_dc_bsp_nrf51.o

.rodata         0x00001040      0x800
 .rodata.lenet_blob
                0x00001040      0x7a8 /p/build/qemu-microbit/obj/src/lenet_model.o

.bss            0x20000000      0x450
 .bss.g_arena   0x20000000      0x43c /p/build/qemu-microbit/obj/src/main.o
 .bss.counter_last
                0x2000043c        0x4 /p/build/qemu-microbit/obj/src/bsp/nrf51/mcu_dc_bsp_nrf51.o
"""


def test_parse_memory_usage_is_exact() -> None:
    assert memfit.parse_memory_usage(USAGE) == {"FLASH": (40680, 262144), "RAM": (2984, 16384)}
    assert memfit.parse_memory_usage("  RAM:  2 KB  96 KB  2.08%")["RAM"] == (2048, 98304)


def test_parse_map_and_classify() -> None:
    secs = memfit.parse_map(MAP)
    by_name = {s.name: s for s in secs}
    assert ".text.unused" not in by_name  # discarded sections are not counted
    assert by_name[".text.mcu_dc_fc_huffman_sparse"].size == 0x200
    assert by_name[".rodata.lenet_blob"].output == ".rodata"
    parts = {s.name: memfit.classify(s) for s in secs}
    assert parts[".text.mcu_dc_fc_huffman_sparse"] == "runtime"
    assert parts[".text.main"] == "app"
    assert parts[".text"] == "libc"
    assert parts["*fill*"] == "other"
    assert parts[".text.mcu_dc_bsp_write"] == "bsp"
    assert parts[".rodata.lenet_blob"] == "model"
    assert parts[".bss.g_arena"] == "arena"


def _report(flash_used: int, ram_used: int) -> memfit.FitReport:
    parts = {p: {"flash": 0, "ram": 0} for p in memfit.PARTS}
    parts["model"]["flash"] = flash_used - 9000
    parts["runtime"]["flash"] = 9000
    parts["arena"]["ram"] = ram_used
    return memfit.FitReport("qemu-microbit", flash_used, 262144, ram_used, 16384, parts)


def test_fit_error_says_by_how_much_what_is_largest_and_what_to_try() -> None:
    memfit.check_fit(_report(100_000, 4000))  # fits: no error
    with pytest.raises(FitError) as info:
        memfit.check_fit(_report(300_000, 20_000))
    msg = str(info.value)
    assert "overflows flash by 37,856 B" in msg and "RAM by 3,616 B" in msg
    assert "largest part of flash is model data" in msg
    assert "prune more" in msg and "fewer bits" in msg and "another board" in msg
    assert "OVER" in msg  # the table
    assert FitError.exit_code != 0


def test_ram_misfit_of_a_gather_model_suggests_the_scatter_kernels() -> None:
    """The project records how much arena the gather convolutions add (memfit.gather_arena: the plan
    with every conv on the scatter kernels, subtracted); a RAM overflow then names --conv-kernel scatter."""
    model = load_model(_RESULTS / "resnet8_cifar10_small_gather.mcudc").model
    extra = memfit.gather_arena(model)
    assert 0 < extra < model.arena_bytes()
    assert memfit.gather_arena(load_model(_RESULTS / "resnet8_cifar10_small.mcudc").model) == 0
    report = _report(100_000, 20_000)
    report.gather_arena = extra
    with pytest.raises(FitError) as info:
        memfit.check_fit(report)
    want = f"--conv-kernel scatter`): the gather kernel's padded inputs and taps take {extra:,d} B"
    assert want in str(info.value)
    report.gather_arena = 0
    with pytest.raises(FitError) as info:
        memfit.check_fit(report)
    assert "--conv-kernel" not in str(info.value)


CALLGRAPH = """graph: { title: "a.c"
node: { title: "mcu_dc_reset_handler" label: "mcu_dc_reset_handler\\na.c:1:1\\n8 bytes (static)" }
node: { title: "main" label: "main\\na.c:2:1\\n40 bytes (static)" }
node: { title: "/x/b.c:helper" label: "helper\\nb.c:3:1\\n200 bytes (static)" }
node: { title: "small" label: "small\\na.c:4:1\\n16 bytes (static)" }
node: { title: "SysTick_Handler" label: "SysTick_Handler\\na.c:5:1\\n8 bytes (static)" }
node: { title: "HardFault_Handler" label: "HardFault_Handler\\na.c:6:1\\n900 bytes (static)" }
node: { title: "__indirect_call" label: "Indirect Call Placeholder" shape : ellipse }
edge: { sourcename: "mcu_dc_reset_handler" targetname: "main" label: "a.c:1:2" }
edge: { sourcename: "mcu_dc_reset_handler" targetname: "__indirect_call" label: "a.c:1:3" }
edge: { sourcename: "main" targetname: "/x/b.c:helper" label: "a.c:2:2" }
edge: { sourcename: "main" targetname: "small" label: "a.c:2:3" }
edge: { sourcename: "/x/b.c:helper" targetname: "memcpy" label: "b.c:3:2" }
}
"""


def test_worst_case_stack_follows_the_deepest_path() -> None:
    est = memfit.estimate_stack([CALLGRAPH])
    # reset 8 + main 40 + helper 200 + memcpy (unknown) 64, + SysTick 8 + exception frame 32
    assert est.worst_case == 8 + 40 + 200 + memfit.UNKNOWN_FRAME + 8 + memfit.EXCEPTION_FRAME
    assert est.path[:3] == ["mcu_dc_reset_handler (8)", "main (40)", "b.c:helper (200)"]
    assert est.unknown == ["memcpy"] and est.exact
    hard = memfit.estimate_stack([CALLGRAPH], hard_float=True)
    assert hard.worst_case - est.worst_case == memfit.EXCEPTION_FRAME_FP - memfit.EXCEPTION_FRAME
    recursive = (
        CALLGRAPH.replace('}\n"""', "") + 'edge: { sourcename: "small" targetname: "main" label: "x" }\n'
    )
    assert not memfit.estimate_stack([recursive]).exact


OP_TABLE_GRAPH = """graph: { title: "r.c"
node: { title: "mcu_dc_reset_handler" label: "r\\nr.c:1:1\\n8 bytes (static)" }
node: { title: "main" label: "main\\nr.c:2:1\\n40 bytes (static)" }
node: { title: "walker" label: "walker\\nr.c:3:1\\n100 bytes (static)" }
node: { title: "infer_ref_unused" label: "x\\nr.c:4:1\\n500 bytes (static)" }
node: { title: "op_small" label: "x\\nr.c:5:1\\n30 bytes (static)" }
node: { title: "op_big" label: "x\\nr.c:6:1\\n300 bytes (static)" }
node: { title: "kernel" label: "x\\nr.c:7:1\\n50 bytes (static)" }
node: { title: "__indirect_call" label: "Indirect Call Placeholder" shape : ellipse }
edge: { sourcename: "mcu_dc_reset_handler" targetname: "main" label: "r.c:1:2" }
edge: { sourcename: "main" targetname: "walker" label: "r.c:2:2" }
edge: { sourcename: "walker" targetname: "__indirect_call" label: "r.c:3:2" }
edge: { sourcename: "infer_ref_unused" targetname: "walker" label: "r.c:4:2" }
edge: { sourcename: "op_big" targetname: "kernel" label: "r.c:6:2" }
}
"""


def test_indirect_calls_are_bounded_by_the_deepest_op_table_entry() -> None:
    """The runtime calls each op's functions through its op table: an indirect call is bounded by
    the deepest function nothing calls directly (op_big > kernel), not by unused API that itself
    calls through the table (infer_ref_unused), and the bound stays exact."""
    est = memfit.estimate_stack([OP_TABLE_GRAPH])
    assert est.worst_case == 8 + 40 + 100 + 300 + 50
    want = ["mcu_dc_reset_handler (8)", "main (40)", "walker (100)", "(indirect call)", "op_big (300)"]
    assert est.path == [*want, "kernel (50)"]
    assert est.exact and not est.unknown


@needs_arm
@pytest.mark.arm
def test_too_small_stack_is_a_fit_error(tmp_path: Path, memfit_bench: ModuleType) -> None:
    src = load_board("qemu-microbit").path.read_text()
    board_file = tmp_path / "qemu-microbit.toml"
    board_file.write_text(src.replace("stack_size = 1792", "stack_size = 256"))
    board = load_board(board_file)
    cm = CompressedModel(memfit_bench.synthetic_lenet300())
    proj = write_mcu_project(cm, board, tmp_path / "p", name="lenet")
    with pytest.raises(FitError, match=r"stack can grow to [\d,]+ B on qemu-microbit but only 256 B"):
        build_project(proj, board=board)


@needs_arm
@pytest.mark.arm
def test_compressed_lenet300_fits_microbit_but_dense_int8_does_not(
    tmp_path: Path, memfit_bench: ModuleType
) -> None:
    model = memfit_bench.synthetic_lenet300()
    compressed = CompressedModel(model)
    dense = CompressedModel(memfit_bench.dense_int8(model))

    fw = build_project(write_mcu_project(compressed, "qemu-microbit", tmp_path / "c", name="lenet"))
    assert fw.fit.fits and not fw.fit.measured_oversize
    assert fw.fit.parts["model"]["flash"] == len(compressed.blob)
    assert fw.fit.parts["arena"]["ram"] >= model.arena_bytes()

    proj = write_mcu_project(dense, "qemu-microbit", tmp_path / "d", name="lenet_dense")
    with pytest.raises(FitError) as info:
        build_project(proj)
    msg = str(info.value)
    dense_fit = build_project(proj, check_fit=False).fit
    assert dense_fit.measured_oversize and not dense_fit.fits
    assert dense_fit.parts["model"]["flash"] == len(dense.blob)
    assert f"overflows flash by {dense_fit.flash_over:,d} B" in msg
    assert dense_fit.flash_over == dense_fit.flash_used - 262144 > 0
    assert "largest part of flash is model data" in msg
    assert "prune more" in msg and "another board" in msg


@needs_arm
@pytest.mark.arm
def test_cli_build_json_reports_a_misfit_and_fails(
    tmp_path: Path, memfit_bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from mcu_dc.cli import main

    dense = CompressedModel(memfit_bench.dense_int8(memfit_bench.synthetic_lenet300()))
    proj = write_mcu_project(dense, "qemu-microbit", tmp_path / "d", name="lenet_dense")
    assert main(["build", str(proj), "--json"]) == FitError.exit_code
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["fits"] is False and data["flash_used"] > data["flash_total"] == 262144
    assert "overflows flash by" in err and "Traceback" not in err


@needs_arm
@pytest.mark.arm
def test_trained_compressed_lenet300_fits_microbit(tmp_path: Path, memfit_bench: ModuleType) -> None:
    cm = load_model(REAL_LENET300)
    fw = build_project(write_mcu_project(cm, "qemu-microbit", tmp_path / "c", name="lenet"))
    assert fw.fit.fits
    assert fw.fit.parts["model"]["flash"] == len(cm.blob)
    dense = CompressedModel(memfit_bench.dense_int8(cm.model))
    with pytest.raises(FitError, match=r"overflows flash by [\d,]+ B.*largest part of flash is model data"):
        build_project(write_mcu_project(dense, "qemu-microbit", tmp_path / "d", name="lenet_dense"))
