"""Former home of the straight-chain net; the float graph now lives in :mod:`mcu_dc.compression.graph`.

Kept so that ``from mcu_dc.compression.chain import ChainNet, WeightLayer, Pool`` keeps
working: ``ChainNet`` is :class:`~mcu_dc.compression.graph.GraphNet`.
"""

from mcu_dc.compression.graph import (
    MODES,
    AddNode,
    AvgPool,
    ChainNet,
    ChannelPad,
    DropoutNode,
    GraphNet,
    Node,
    Pool,
    WeightLayer,
)  # fmt: skip

__all__ = [
    "MODES", "AddNode", "AvgPool", "ChainNet", "ChannelPad", "DropoutNode", "GraphNet", "Node", "Pool",
    "WeightLayer",
]  # fmt: skip
