"""Random valid integer models, for property tests, fuzzing a toolchain and benchmarks.

:func:`random_model` draws a chain (conv / max pool blocks, then FC layers, as format
version 1 holds); :func:`random_graph` draws a graph from every op registered in
:data:`mcu_dc.core.ops.REGISTRY`: residual adds (of a tensor and a branch, or of two
branches with different zero points and multipliers), depthwise convs with channel
multipliers 1–2, strides 1–3, asymmetric padding, average and max pools, fused conv
pools, odd channel counts, 1×1 maps, uint8 and int8 inputs. Both draw random shapes,
sparsity (0–100 %, empty rows and columns, gaps longer than the index range), codebooks
of 1..256 entries, every weight encoding (``random_graph``: TERNARY and BINARY bit-planes for
codebooks of at most 2 entries, BINARY ops unpruned), zero points, activation
bounds and requantization parameters. Deterministic for a given seed; every model passes
:meth:`IntegerModel.validate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mcu_dc.core.ir import (
    FC,
    Add,
    AvgPool2D,
    Conv2D,
    DepthwiseConv2D,
    Encoding,
    InputKind,
    IntegerModel,
    Layer,
    MaxPool2D,
    Op,
    Requant,
)  # fmt: skip
from mcu_dc.core.ops import REGISTRY, spec_of
from mcu_dc.core.ops.conv2d import GATHER_MAX_INPUT, gather_input_bytes
from mcu_dc.core.ops.weights import MAX_TABLE_BITS, joint_table_bits
from mcu_dc.core.qmath import joint_index_bits, pair_requant


def _weights(rng: np.random.Generator, rows: int, fan_in: int, k: int) -> np.ndarray:
    keep = rng.choice([0.0, 0.02, 0.1, 0.3, 0.7, 1.0])
    a = rng.integers(0, k, size=(rows, fan_in)).astype(np.int16)
    a[rng.random((rows, fan_in)) >= keep] = -1
    if rows > 1 and rng.random() < 0.3:
        a[rng.integers(rows)] = -1  # empty row
    if fan_in > 1 and rng.random() < 0.3:
        a[:, rng.integers(fan_in)] = -1  # empty column
    return a


def _codebook(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.integers(-128, 128, size=k).astype(np.int8)


def _act(rng: np.random.Generator) -> tuple[int, int, int]:
    """(out_zp, act_min, act_max): plain, ReLU-fused, or a narrow clamp."""
    zp = int(rng.integers(-128, 128))
    choice = rng.integers(3)
    if choice == 0:
        return zp, -128, 127
    if choice == 1:
        return zp, zp, 127
    lo = int(rng.integers(-128, 127))
    return zp, lo, int(rng.integers(lo, 128))


def _draw_encoding(rng: np.random.Generator, *, fc: bool, k: int, bitplanes: bool = True) -> Encoding:
    """HUFFMAN_SPARSE or DENSE_INT8, COLUMN_SPARSE for an FC whose codebook has at most 16 entries, and
    TERNARY or BINARY for any weight op whose codebook has at most 2 (:func:`fit_encoding` then makes a
    BINARY op's assignment whole)."""
    choices = [Encoding.HUFFMAN_SPARSE, Encoding.DENSE_INT8]
    if fc and k <= 16:
        choices.append(Encoding.COLUMN_SPARSE)
    if bitplanes and k <= 2:
        choices += [Encoding.TERNARY, Encoding.BINARY]
    if bitplanes:  # graphs (format 2) only: the chains keep the draws of format 1
        choices.append(Encoding.HUFFMAN_JOINT)
    return Encoding(int(rng.choice(choices)))


def fit_encoding(enc: Encoding, assign: np.ndarray, *, fc: bool, k: int) -> tuple[Encoding, np.ndarray]:
    """``enc`` made legal for an op (a fixed encoding it cannot use falls back to HUFFMAN_SPARSE) and
    the assignment it stores: BINARY has no pruned weight, so every pruned position takes a codebook
    index (deterministic: its position's parity, so both entries occur)."""
    if enc == Encoding.COLUMN_SPARSE and not (fc and k <= 16):
        return Encoding.HUFFMAN_SPARSE, assign
    if enc in (Encoding.TERNARY, Encoding.BINARY) and k > 2:
        return Encoding.HUFFMAN_SPARSE, assign
    if enc == Encoding.BINARY:
        fill = (np.arange(assign.size).reshape(assign.shape) % k).astype(np.int16)
        return enc, np.where(assign >= 0, assign, fill).astype(np.int16)
    return enc, assign


def _requant(rng: np.random.Generator, fan_in: int) -> Requant:
    # Scale so that typical accumulators land near the int8 range, sometimes saturating.
    real = float(np.exp(rng.uniform(np.log(1e-5), np.log(1.0)))) / max(1.0, np.sqrt(fan_in))
    return Requant.from_real(real)


def random_model(
    seed: int,
    *,
    conv: bool | None = None,
    max_dim: int = 12,
    encoding: Encoding | None = None,
) -> IntegerModel:
    """A random chain: optional conv/pool blocks, then 1–3 FC layers."""
    rng = np.random.default_rng(seed)
    if conv is None:
        conv = bool(rng.integers(2))
    c = int(rng.integers(1, 4))
    h = int(rng.integers(1, max_dim + 1))
    w = int(rng.integers(1, max_dim + 1))
    shape = (c, h, w) if conv else (c, 1, int(rng.integers(1, 4 * max_dim)))
    in_shape = shape
    layers: list[Layer] = []
    zp = -128  # the runtime's input zero point
    big_k = [1, 2, 3, 16, 32, 255, 256]

    def enc(fc: bool = False, k: int = 256) -> Encoding:
        e = encoding or _draw_encoding(rng, fc=fc, k=k, bitplanes=False)  # chains: the draws of format 1
        if e in (Encoding.TERNARY, Encoding.BINARY):  # random_graph draws the bit-plane encodings
            return Encoding.HUFFMAN_SPARSE
        return Encoding.HUFFMAN_SPARSE if e == Encoding.COLUMN_SPARSE and not (fc and k <= 16) else e

    if conv:
        for _ in range(int(rng.integers(1, 3))):
            ci, hi, wi = shape
            kh = int(rng.integers(1, min(hi, 5) + 1))
            kw = int(rng.integers(1, min(wi, 5) + 1))
            ph = int(rng.integers(0, 2))
            pw = int(rng.integers(0, 2))
            sh = int(rng.integers(1, 3))
            sw = int(rng.integers(1, 3))
            oc = int(rng.integers(1, 6))
            k = int(rng.choice(big_k))
            out_zp, amin, amax = _act(rng)
            layer = Conv2D(
                f"conv{len(layers)}", shape, oc, (kh, kw), (sh, sw), (ph, pw), _codebook(rng, k),
                _weights(rng, oc, ci * kh * kw, k), rng.integers(-5000, 5000, size=oc).astype(np.int32),
                _requant(rng, ci * kh * kw), zp, out_zp, amin, amax, encoding=enc(),
                index_bits=int(rng.integers(1, 9)),
            )  # fmt: skip
            layers.append(layer)
            shape, zp = layer.out_shape, out_zp
            if shape[1] >= 2 and shape[2] >= 2 and rng.random() < 0.5:
                pool = MaxPool2D(f"pool{len(layers)}", shape, (2, 2), (2, 2), zp)
                layers.append(pool)
                shape = pool.out_shape
    for _ in range(int(rng.integers(1, 4))):
        fan_in = int(np.prod(shape))
        out = int(rng.integers(1, 4 * max_dim))
        k = int(rng.choice(big_k))
        out_zp, amin, amax = _act(rng)
        layer = FC(
            f"fc{len(layers)}", shape, out, _codebook(rng, k), _weights(rng, out, fan_in, k),
            rng.integers(-20000, 20000, size=out).astype(np.int32), _requant(rng, fan_in), zp, out_zp,
            amin, amax, encoding=enc(fc=True, k=k), index_bits=int(rng.integers(1, 9)),
        )  # fmt: skip
        layers.append(layer)
        shape, zp = layer.out_shape, out_zp
    return IntegerModel(layers, in_shape, 1 / 255, 0.05, zp, name=f"rand{seed}")


# ============================================================================ graphs


@dataclass(frozen=True)
class GraphTensor:
    """A tensor of the graph being drawn."""

    id: int
    shape: tuple[int, int, int]
    zp: int


class GraphBuilder:
    """The graph being drawn: ``add(op, inputs)`` wires an op to the next tensor id.

    Op builders (:data:`BUILDERS`, or an ``OpSpec.random_op(rng, g, x)`` hook) receive it
    with the current tensor ``x`` and return the new current tensor, or None when the op
    cannot follow ``x`` (the draw then tries another op).
    """

    def __init__(self, rng: np.random.Generator, *, encoding: Encoding | None, max_channels: int) -> None:
        self.rng = rng
        self.encoding = encoding
        self.max_channels = max_channels
        self.ops: list[Layer] = []
        self.next_id = 1  # tensor 0 is the input
        # kernel choices (which draw no shapes or weights) from a stream of their own, so adding one
        # leaves every earlier seed's graph as it was
        seq = rng.bit_generator.seed_seq
        child = seq.spawn(1)[0] if isinstance(seq, np.random.SeedSequence) else 0
        self.kernel_rng = np.random.default_rng(child)

    def add(self, op: Any, inputs: list[GraphTensor]) -> GraphTensor:
        op.inputs = tuple(t.id for t in inputs)
        op.output = self.next_id
        self.next_id += 1
        self.ops.append(op)
        spec = spec_of(op)
        return GraphTensor(op.output, tuple(spec.out_shape(op)), spec.out_zp(op))  # type: ignore[arg-type]

    def name(self, what: str) -> str:
        return f"{what}{len(self.ops)}"

    def weights(self, rows: int, fan_in: int, *, fc: bool = False) -> dict[str, Any]:
        """The weight fields of a weight op: codebook, assignment, bias, requant, act, encoding."""
        rng = self.rng
        k = int(rng.choice([1, 2, 3, 16, 32, 255, 256]))
        out_zp, amin, amax = _act(rng)
        enc = self.encoding or _draw_encoding(rng, fc=fc, k=k)
        codebook, assign = _codebook(rng, k), _weights(rng, rows, fan_in, k)
        enc, assign = fit_encoding(enc, assign, fc=fc, k=k)  # a fixed encoding this op cannot use: Huffman
        bias = rng.integers(-5000, 5000, size=rows).astype(np.int32)
        requant, index_bits = _requant(rng, fan_in), int(rng.integers(1, 9))
        extra: dict[str, Any] = {}
        if enc == Encoding.HUFFMAN_JOINT:  # the widest run width its 12-bit alphabet allows (k <= 256: >= 3)
            index_bits = joint_index_bits(k, index_bits)
            if fc:  # flash tables, a decode table just wide enough, or the widest
                need = joint_table_bits(assign, k, index_bits)
                extra["table_bits"] = int(rng.choice([0, need, MAX_TABLE_BITS]))
        return dict(
            codebook=codebook, assign=assign, bias=bias, requant=requant, out_zp=out_zp, act_min=amin,
            act_max=amax, encoding=enc, index_bits=index_bits, **extra,
        )  # fmt: skip


def _pads(rng: np.random.Generator, k: int) -> tuple[int, int]:
    """(before, after) zero padding for a window of k: none, 'same'-like, or anything up to k - 1 each."""
    choice = rng.integers(3)
    if choice == 0:
        return 0, 0
    if choice == 1:
        return (k - 1) // 2, k - 1 - (k - 1) // 2  # keeps the size at stride 1 (asymmetric for even k)
    return int(rng.integers(0, k)), int(rng.integers(0, k))


def _window(rng: np.random.Generator, size: int, *, pad: bool) -> tuple[int, int, int, int] | None:
    """(kernel, stride, pad_before, pad_after) along one axis of ``size``; None if nothing fits."""
    k = int(rng.integers(1, 6))
    p0, p1 = _pads(rng, k) if pad else (0, 0)
    if size + p0 + p1 < k:
        k = size + p0 + p1
    s = int(rng.choice([1, 2, 3], p=[0.5, 0.25, 0.25]))
    return (k, s, p0, p1) if k >= 1 else None


def _fused_pool(rng: np.random.Generator, h: int, w: int) -> tuple[int, int, int, int] | None:
    if rng.random() >= 0.3 or h < 1 or w < 1:
        return None
    kh, kw = int(rng.integers(1, min(h, 3) + 1)), int(rng.integers(1, min(w, 3) + 1))
    return kh, kw, int(rng.integers(1, 4)), int(rng.integers(1, 4))


def _conv_like(g: GraphBuilder, x: GraphTensor, *, depthwise: bool, same: bool) -> GraphTensor | None:
    """A CONV2D or DEPTHWISE_CONV2D after x; ``same`` keeps x's shape (stride 1, 'same' padding, no pool)."""
    rng = g.rng
    c, h, w = x.shape
    if same:
        kh, kw = int(rng.choice([1, 2, 3])), int(rng.choice([1, 2, 3]))
        geo_h = (kh, 1, (kh - 1) // 2, kh - 1 - (kh - 1) // 2)
        geo_w = (kw, 1, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    else:
        gh, gw = _window(rng, h, pad=True), _window(rng, w, pad=True)
        if gh is None or gw is None:
            return None
        geo_h, geo_w = gh, gw
    kernel, stride = (geo_h[0], geo_w[0]), (geo_h[1], geo_w[1])
    padding, padding_end = (geo_h[2], geo_w[2]), (geo_h[3], geo_w[3])
    if depthwise:
        mult = 1 if same else int(rng.integers(1, 3))
        if c * mult > g.max_channels + 2:
            mult = 1
        fields = g.weights(c * mult, kernel[0] * kernel[1])
        op: Any = DepthwiseConv2D(
            g.name("dw"),
            x.shape,
            mult,
            kernel,
            stride,
            padding,
            in_zp=x.zp,
            padding_end=padding_end,
            **fields,
        )
    else:
        oc = c if same else int(rng.integers(1, g.max_channels + 1))
        fields = g.weights(oc, c * kernel[0] * kernel[1])
        op = Conv2D(
            g.name("conv"),
            x.shape,
            oc,
            kernel,
            stride,
            padding,
            in_zp=x.zp,
            padding_end=padding_end,
            **fields,
        )
    if not same:
        _, ch, cw = op.conv_shape
        op.pool = _fused_pool(rng, ch, cw)
    if not depthwise and gather_input_bytes(op) <= GATHER_MAX_INPUT:
        op.gather = int(g.kernel_rng.integers(2))  # the gather kernel or the scatter kernels
        if op.gather and op.encoding == Encoding.HUFFMAN_JOINT:  # flash tables or a decode table in scratch
            need = joint_table_bits(op.assign, len(op.codebook), op.index_bits)
            op.table_bits = int(g.kernel_rng.choice([0, need, MAX_TABLE_BITS]))
    return g.add(op, [x])


def _build_conv(g: GraphBuilder, x: GraphTensor) -> GraphTensor | None:
    return _conv_like(g, x, depthwise=False, same=False)


def _build_depthwise(g: GraphBuilder, x: GraphTensor) -> GraphTensor | None:
    return _conv_like(g, x, depthwise=True, same=False)


def _build_fc(g: GraphBuilder, x: GraphTensor) -> GraphTensor | None:
    c, h, w = x.shape
    out = int(g.rng.integers(1, 4 * g.max_channels))
    fields = g.weights(out, c * h * w, fc=True)
    return g.add(FC(g.name("fc"), x.shape, out, in_zp=x.zp, **fields), [x])


def _build_maxpool(g: GraphBuilder, x: GraphTensor) -> GraphTensor | None:
    _, h, w = x.shape
    gh, gw = _window(g.rng, h, pad=False), _window(g.rng, w, pad=False)
    if gh is None or gw is None:
        return None
    return g.add(MaxPool2D(g.name("maxpool"), x.shape, (gh[0], gw[0]), (gh[1], gw[1]), x.zp), [x])


def _avgpool(g: GraphBuilder, x: GraphTensor, *, same: bool) -> GraphTensor | None:
    rng = g.rng
    _, h, w = x.shape
    if same:
        kh, kw = int(rng.choice([1, 3])), int(rng.choice([1, 2, 3]))
        gh = (kh, 1, (kh - 1) // 2, kh - 1 - (kh - 1) // 2)
        gw = (kw, 1, (kw - 1) // 2, kw - 1 - (kw - 1) // 2)
    elif rng.random() < 0.3:
        gh, gw = (h, 1, 0, 0), (w, 1, 0, 0)  # global average pooling
    else:
        a, b = _window(rng, h, pad=True), _window(rng, w, pad=True)
        if a is None or b is None:
            return None
        gh, gw = a, b
    real = float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))) / (gh[0] * gw[0])
    out_zp, amin, amax = _act(rng)
    op = AvgPool2D(
        g.name("avgpool"), x.shape, (gh[0], gw[0]), (gh[1], gw[1]), (gh[2], gw[2]), Requant.from_real(real),
        x.zp, out_zp, amin, amax, padding_end=(gh[3], gw[3]),
    )  # fmt: skip
    return g.add(op, [x])


def _build_avgpool(g: GraphBuilder, x: GraphTensor) -> GraphTensor | None:
    return _avgpool(g, x, same=False)


def _same_shape_branch(g: GraphBuilder, x: GraphTensor) -> GraphTensor:
    """1–2 shape-preserving ops after x (conv, depthwise or average pool with 'same' padding)."""
    for _ in range(int(g.rng.integers(1, 3))):
        kind = int(g.rng.integers(3))
        y = _avgpool(g, x, same=True) if kind == 2 else _conv_like(g, x, depthwise=kind == 1, same=True)
        assert y is not None and y.shape == x.shape, (y, x)
        x = y
    return x


def _build_add(g: GraphBuilder, x: GraphTensor) -> GraphTensor | None:
    """A residual add: x + f(x), f(x) + g(x) (two branches), or rarely x + x."""
    rng = g.rng
    kind = rng.random()
    if kind < 0.1:
        a, b = x, x
    elif kind < 0.55:
        a, b = x, _same_shape_branch(g, x)
    else:
        a, b = _same_shape_branch(g, x), _same_shape_branch(g, x)
    if rng.random() < 0.5:
        a, b = b, a
    ra, rb = (float(np.exp(rng.uniform(np.log(0.05), np.log(2.0)))) for _ in range(2))
    ma, mb, shift = pair_requant(ra, rb)
    out_zp, amin, amax = _act(rng)
    op = Add(g.name("add"), x.shape, a.zp, b.zp, out_zp, ma, mb, shift, amin, amax)
    return g.add(op, [a, b])


# Random builders by op code. A registered op's spec may bring its own as
# ``random_op(rng, g, x)``; random_graph refuses a registered op that has neither.
BUILDERS: dict[Op, Callable[[GraphBuilder, GraphTensor], GraphTensor | None]] = {
    Op.CONV2D: _build_conv,
    Op.DEPTHWISE_CONV2D: _build_depthwise,
    Op.FC: _build_fc,
    Op.MAXPOOL2D: _build_maxpool,
    Op.AVGPOOL2D: _build_avgpool,
    Op.ADD: _build_add,
}


# FC flattens to a 1x1 map, after which the window ops see little: drawn less often.
_DRAW_WEIGHT: dict[Op, float] = {Op.FC: 0.4}


def builder_for(code: Op) -> Callable[[GraphBuilder, GraphTensor], GraphTensor | None]:
    spec = REGISTRY[code]
    hook = getattr(spec, "random_op", None)
    if hook is not None:
        return lambda g, x: hook(g.rng, g, x)
    try:
        return BUILDERS[code]
    except KeyError:
        raise NotImplementedError(
            f"op {code.name} is registered but random_graph cannot draw it: give its OpSpec a "
            "random_op(rng, g, x) method or add a builder to mcu_dc.core.random_models.BUILDERS"
        ) from None


def random_graph(
    seed: int,
    *,
    max_ops: int = 8,
    max_dim: int = 10,
    max_channels: int = 6,
    input_kind: InputKind | None = None,
    encoding: Encoding | None = None,
) -> IntegerModel:
    """A random graph of up to ``max_ops`` drawn ops, over every registered op (an add adds its branches)."""
    rng = np.random.default_rng(seed)
    kind = InputKind(int(rng.integers(2))) if input_kind is None else InputKind(input_kind)
    c = int(rng.integers(1, 5))
    shape = (c, int(rng.integers(1, max_dim + 1)), int(rng.integers(1, max_dim + 1)))
    in_zp = -128 if kind == InputKind.UINT8 else int(rng.integers(-128, 128))
    g = GraphBuilder(rng, encoding=encoding, max_channels=max_channels)
    x = GraphTensor(0, shape, in_zp)
    codes = sorted(REGISTRY)
    weight = np.array([_DRAW_WEIGHT.get(code, 1.0) for code in codes])
    for _ in range(int(rng.integers(1, max_ops + 1))):
        for _attempt in range(4):
            y = builder_for(Op(int(rng.choice(codes, p=weight / weight.sum()))))(g, x)
            if y is not None:
                x = y
                break
    if not g.ops:
        x = _build_fc(g, x)  # type: ignore[assignment]
    input_scale = (
        1 / 255 if kind == InputKind.UINT8 else float(np.exp(rng.uniform(np.log(0.01), np.log(1.0))))
    )
    model = IntegerModel(
        g.ops, shape, input_scale, 0.05, x.zp, name=f"graph{seed}", input_kind=kind, input_zp=in_zp,
        input_tensor=0, output_tensor=x.id,
    )  # fmt: skip
    model.validate(model.name)
    return model
