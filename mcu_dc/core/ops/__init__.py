"""The op registry (Python side): one module per op, each registered once.

Importing this package registers every op. :data:`REGISTRY` maps op codes to specs;
:func:`spec_of` finds an IR op's spec. The C side has the twin table in
``firmware/runtime/mcu_dc_ops.c``.
"""

from mcu_dc.core.ops import add, avgpool2d, conv2d, depthwise_conv2d, fc, maxpool2d  # noqa: F401  (registration)
from mcu_dc.core.ops.add import Add
from mcu_dc.core.ops.avgpool2d import AvgPool2D
from mcu_dc.core.ops.base import IO, REGISTRY, OpSpec, PackOptions, SectionReader, spec_of
from mcu_dc.core.ops.conv2d import Conv2D
from mcu_dc.core.ops.depthwise_conv2d import DepthwiseConv2D
from mcu_dc.core.ops.fc import FC
from mcu_dc.core.ops.maxpool2d import MaxPool2D

__all__ = [
    "FC", "IO", "REGISTRY", "Add", "AvgPool2D", "Conv2D", "DepthwiseConv2D", "MaxPool2D", "OpSpec",
    "PackOptions", "SectionReader", "spec_of",
]  # fmt: skip
