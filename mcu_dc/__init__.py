"""mcu_dc: Deep Compression for microcontrollers.

Public API::

    cm = mcu_dc.compress(model, train, test, config)   # torch side (needs torch)
    cm.save("lenet.mcudc"); cm = mcu_dc.load("lenet.mcudc")
    y = mcu_dc.simulate(cm, x_uint8)                   # bit-exact device outputs, numpy only
    mcu_dc.generate(cm, board="host", out_dir="out")   # C sources + project

Torch is imported only when ``compress`` is called.
"""

from __future__ import annotations

from typing import Any

from mcu_dc.core.model_file import CompressedModel, load
from mcu_dc.errors import McuDcError

__version__ = "0.1.0"

__all__ = ["CompressedModel", "McuDcError", "__version__", "compress", "generate", "load", "simulate"]


def compress(*args: Any, **kwargs: Any) -> CompressedModel:
    """Prune, cluster, quantize and Huffman-code a PyTorch model (see mcu_dc.compression.pipeline)."""
    from mcu_dc.compression.pipeline import compress as _compress

    return _compress(*args, **kwargs)


def simulate(*args: Any, **kwargs: Any) -> Any:
    """Bit-exact integer outputs of a model (see mcu_dc.core.simulator)."""
    from mcu_dc.core.simulator import simulate as _simulate

    return _simulate(*args, **kwargs)


def generate(*args: Any, **kwargs: Any) -> Any:
    """Generate C sources and a project for a board (see mcu_dc.deploy.generate)."""
    from mcu_dc.deploy.generate import generate as _generate

    return _generate(*args, **kwargs)
