"""Graph models on emulated boards: a DS-CNN-style and a ResNet-style model, each bit-exact
against the simulator on 200 inputs, on the Cortex-M4 (mps2-an386) and the Cortex-M3
(lm3s6965evb); and a graph whose planned arena exceeds a board is refused with the figures.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mcu_dc.compression.models import TinyResNet8
from mcu_dc.core.ir import Conv2D, DepthwiseConv2D, InputKind
from mcu_dc.core.simulator import simulate
from mcu_dc.device.harness import LinkSettings
from mcu_dc.device.verify import VerifySettings, build_firmware, run_on_qemu

from .graph_models import compress_untrained, dscnn_cm, resnet_cm, uint8_data

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.arm,
    pytest.mark.skipif(
        shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
        reason="needs qemu-system-arm and arm-none-eabi-gcc",
    ),
]

BOARDS = ("qemu-mps2-an386", "qemu-lm3s6965evb")
N = 200


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    return {"dscnn": dscnn_cm(), "resnet": resnet_cm()}


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("which", ["dscnn", "resnet"])
def test_graph_model_bit_exact_on_board(which: str, board: str, models, tmp_path: Path) -> None:
    cm, _ = models[which]
    ops = {type(op).__name__ for op in cm.model.layers}
    if which == "dscnn":
        assert {"DepthwiseConv2D", "AvgPool2D", "Conv2D", "FC"} <= ops
        first = cm.model.layers[0]
        assert isinstance(first, Conv2D) and first.pads == (4, 1, 5, 1)  # asymmetric "same"
    else:
        assert {"Add", "Conv2D", "AvgPool2D", "FC"} <= ops
    assert cm.model.input_kind == InputKind.UINT8
    fw = build_firmware(cm, board, tmp_path)
    assert fw.fit.fits
    x = uint8_data(tuple(cm.model.input_shape), n=N, seed=5).images.reshape(N, -1)
    assert len({row.tobytes() for row in simulate(cm, x)}) > N // 2  # the outputs really vary
    settings = VerifySettings(board=board, progress=False, link=LinkSettings(reply_timeout_s=5.0))
    report = run_on_qemu(cm, board, fw.elf, x, None, settings)
    assert report.n == N and report.bit_exact == N and report.mismatches == 0


def test_arena_over_board_ram_is_refused_with_figures(tmp_path: Path) -> None:
    from mcu_dc.errors import FitError

    cm = compress_untrained(
        TinyResNet8((24, 24, 24)), uint8_data((3, 32, 32), n=64), "resnet_big", train=False
    )
    assert any(isinstance(op, (Conv2D, DepthwiseConv2D)) for op in cm.model.layers)
    assert cm.model.arena_bytes() > 16 * 1024
    with pytest.raises(FitError) as info:
        build_firmware(cm, "qemu-microbit", tmp_path)  # 16 KB of RAM
    msg = str(info.value)
    assert "RAM" in msg and "over" in msg.lower()
    assert not list(tmp_path.rglob("*.tmp"))
