"""Graph rewrites on the integer model that change memory or speed, never results.

:func:`fuse_conv_pool` folds a MAXPOOL2D into the CONV2D / DEPTHWISE_CONV2D that feeds
it when the conv's output has no other reader: the device then pools each conv output
channel straight from its int32 scratch and never stores the full conv output, which
is usually the largest tensor of a small CNN (LeNet-5's conv1: 11,520 bytes). Exact,
because requantization and the clamp are monotone non-decreasing (multiplier >= 0).
"""

from __future__ import annotations

import copy

from mcu_dc.core.ir import Conv2D, DepthwiseConv2D, IntegerModel, MaxPool2D


def fuse_conv_pool(model: IntegerModel) -> IntegerModel:
    """A copy of ``model`` with every fusable conv → max-pool pair fused (tensor ids renumbered densely)."""
    m = copy.deepcopy(model)
    cons = m.consumers()
    drop: set[int] = set()
    for i, op in enumerate(m.layers):
        if not isinstance(op, MaxPool2D):
            continue
        src = [j for j, p in enumerate(m.layers) if p.output == op.inputs[0]]
        if not src:
            continue
        conv = m.layers[src[0]]
        if not isinstance(conv, (Conv2D, DepthwiseConv2D)) or conv.pool is not None:
            continue
        if cons.get(conv.output) != [i] or conv.output == m.output_tensor:
            continue
        if max(op.kernel + op.stride) > 255:
            continue
        conv.pool = (op.kernel[0], op.kernel[1], op.stride[0], op.stride[1])
        conv.output = op.output
        drop.add(i)
    if not drop:
        return m
    m.layers = [op for i, op in enumerate(m.layers) if i not in drop]
    m.plan = None
    _renumber(m)
    return m


def _renumber(m: IntegerModel) -> None:
    """Tensor ids 0..n-1 in order of first appearance (input first); scales follow."""
    order = [m.input_tensor] + [op.output for op in m.layers]
    new = {t: i for i, t in enumerate(order)}
    scales = m.tensor_scales
    if scales is not None:
        m.tensor_scales = [scales[t] if t < len(scales) else 0.0 for t in order]
    for op in m.layers:
        op.inputs = tuple(new[t] for t in op.inputs)
        op.output = new[op.output]
    m.input_tensor = 0
    m.output_tensor = new[m.output_tensor]
