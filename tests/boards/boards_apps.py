"""Build a small bare-metal test app (tests/boards/hello_fw/) for a board: the app source,
the Cortex-M startup and the board family's BSP, -Werror, with the board's BSP defines."""

from __future__ import annotations

from pathlib import Path

from mcu_dc.deploy.armbuild import FirmwareBuild, build_firmware
from mcu_dc.deploy.boards import Board
from mcu_dc.resources import resource_dir

APPS = Path(__file__).parent / "hello_fw"
HELLO = APPS / "hello.c"


def build_app(
    board: Board, app: Path, out: Path, *, name: str, defines: dict[str, str] | None = None
) -> FirmwareBuild:
    bsp = resource_dir("firmware") / "bsp"
    sources = [app, bsp / "cortexm" / "mcu_dc_startup.c", *sorted((bsp / board.bsp).glob("*.c"))]
    return build_firmware(
        sources,
        [bsp, bsp / "cortexm"],
        board,
        out,
        defines={**board.bsp_defines(), **(defines or {})},
        werror=True,
        roots=[APPS, bsp],
        name=name,
    )
