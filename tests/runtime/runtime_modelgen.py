"""IntegerModels for the runtime tests (numpy RNG driven; hypothesis draws the seeds): random
chains, hand-built graphs, inputs for either input kind, and blob patching helpers."""

from __future__ import annotations

import shutil
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import pytest

from mcu_dc.core import layout as L
from mcu_dc.core.ir import (
    FC,
    Add,
    AvgPool2D,
    Conv2D,
    DepthwiseConv2D,
    Encoding,
    InputKind,
    IntegerModel,
    MaxPool2D,
    Requant,
)  # fmt: skip
from mcu_dc.core.qmath import joint_index_bits, pair_requant


@dataclass
class WeightSpec:
    density: float = 0.5  # fraction of kept weights
    k: int = 16  # codebook entries
    index_bits: int = 4
    empty_rows: float = 0.0  # fraction of rows pruned entirely
    empty_cols: float = 0.0  # fraction of columns pruned entirely
    encoding: Encoding = Encoding.HUFFMAN_SPARSE
    scale: float = 1.0  # requant scale factor around the "natural" one
    single_symbol: bool = False  # every kept weight uses codebook entry 0


def _assign(rng: np.random.Generator, rows: int, fan_in: int, spec: WeightSpec) -> np.ndarray:
    keep = rng.random((rows, fan_in)) < spec.density
    if spec.empty_rows:
        keep[rng.random(rows) < spec.empty_rows, :] = False
    if spec.empty_cols:
        keep[:, rng.random(fan_in) < spec.empty_cols] = False
    if spec.single_symbol:
        idx = np.zeros((rows, fan_in), dtype=np.int16)
    else:
        idx = rng.integers(0, spec.k, size=(rows, fan_in)).astype(np.int16)
    return np.where(keep, idx, -1).astype(np.int16)


def _codebook(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.integers(-128, 128, size=k).astype(np.int8)


def _requant(rng: np.random.Generator, fan_in: int, density: float, scale: float) -> Requant:
    kept = max(1.0, fan_in * max(density, 0.01))
    real = 40.0 / (np.sqrt(kept) * 70.0 * 100.0) * scale * float(rng.uniform(0.5, 2.0))
    return Requant.from_real(real)


def _zp(rng: np.random.Generator) -> int:
    return int(rng.integers(-128, 128))


def _acts(rng: np.random.Generator, out_zp: int) -> tuple[int, int]:
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return -128, 127
    if kind == 1:
        return out_zp, 127  # fused ReLU
    lo = int(rng.integers(-128, 128))
    return lo, int(rng.integers(lo, 128))


def fc_layer(rng, in_shape, out_features, spec: WeightSpec, in_zp: int, name="fc") -> FC:
    fan_in = int(np.prod(in_shape))
    out_zp = _zp(rng)
    amin, amax = _acts(rng, out_zp)
    return FC(
        name=name,
        in_shape=tuple(in_shape),
        out_features=out_features,
        codebook=_codebook(rng, spec.k),
        assign=_assign(rng, out_features, fan_in, spec),
        bias=rng.integers(-(2**15), 2**15, size=out_features).astype(np.int32),
        requant=_requant(rng, fan_in, spec.density, spec.scale),
        in_zp=in_zp,
        out_zp=out_zp,
        act_min=amin,
        act_max=amax,
        encoding=spec.encoding,
        index_bits=_index_bits(spec),
    )


def conv_layer(
    rng, in_shape, out_c, kernel, stride, padding, spec: WeightSpec, in_zp: int, name="conv"
) -> Conv2D:
    fan_in = in_shape[0] * kernel[0] * kernel[1]
    out_zp = _zp(rng)
    amin, amax = _acts(rng, out_zp)
    return Conv2D(
        name=name,
        in_shape=tuple(in_shape),
        out_channels=out_c,
        kernel=tuple(kernel),
        stride=tuple(stride),
        padding=tuple(padding),
        codebook=_codebook(rng, spec.k),
        assign=_assign(rng, out_c, fan_in, spec),
        bias=rng.integers(-(2**15), 2**15, size=out_c).astype(np.int32),
        requant=_requant(rng, fan_in, spec.density, spec.scale),
        in_zp=in_zp,
        out_zp=out_zp,
        act_min=amin,
        act_max=amax,
        encoding=spec.encoding,
        index_bits=_index_bits(spec),
    )


def _index_bits(spec: WeightSpec) -> int:
    """The spec's run width, narrowed where HUFFMAN_JOINT's 12-bit alphabet needs it."""
    if spec.encoding == Encoding.HUFFMAN_JOINT:
        return joint_index_bits(spec.k, spec.index_bits)
    return spec.index_bits


def with_encoding(model: IntegerModel, encoding: Encoding) -> IntegerModel:
    """The same model with every weight layer stored with ``encoding``."""
    import copy

    m = copy.deepcopy(model)
    for layer in m.layers:
        if isinstance(layer, (FC, Conv2D, DepthwiseConv2D)):
            if encoding == Encoding.HUFFMAN_SPARSE and not layer.index_bits:
                layer.index_bits = 4
            if encoding == Encoding.HUFFMAN_JOINT:
                layer.index_bits = joint_index_bits(len(layer.codebook), layer.index_bits or 4)
            layer.encoding = encoding
    return m


def lenet_like(rng: np.random.Generator, spec: WeightSpec | None = None) -> IntegerModel:
    """Small conv → pool → conv → fc → fc chain on a 1x12x12 input."""
    spec = spec or WeightSpec(density=0.3, k=16, index_bits=4)
    layers = []
    c1 = conv_layer(rng, (1, 12, 12), 4, (3, 3), (1, 1), (1, 1), spec, -128, "conv1")
    layers.append(c1)
    p1 = MaxPool2D("pool1", c1.out_shape, (2, 2), (2, 2), c1.out_zp)
    layers.append(p1)
    c2 = conv_layer(rng, p1.out_shape, 6, (3, 3), (2, 2), (0, 0), spec, c1.out_zp, "conv2")
    layers.append(c2)
    f1 = fc_layer(rng, c2.out_shape, 20, spec, c2.out_zp, "fc1")
    layers.append(f1)
    f2 = fc_layer(rng, f1.out_shape, 10, spec, f1.out_zp, "fc2")
    layers.append(f2)
    return IntegerModel(
        layers=layers,
        input_shape=(1, 12, 12),
        input_scale=1 / 255,
        output_scale=0.1,
        output_zp=f2.out_zp,
        name="lenet_like",
    )


# ----------------------------------------------------------------------------- hypothesis


def weight_specs():
    """Hypothesis strategy for :class:`WeightSpec` covering the corner cases of the format."""
    from hypothesis import strategies as st

    return st.builds(
        WeightSpec,
        density=st.sampled_from([0.0, 0.02, 0.1, 0.3, 0.7, 1.0]),
        k=st.sampled_from([1, 2, 3, 4, 5, 16, 31, 64, 200, 256]),
        index_bits=st.integers(1, 8),
        empty_rows=st.sampled_from([0.0, 0.0, 0.3]),
        empty_cols=st.sampled_from([0.0, 0.0, 0.5]),
        encoding=st.sampled_from(
            [Encoding.HUFFMAN_SPARSE, Encoding.HUFFMAN_SPARSE, Encoding.HUFFMAN_JOINT, Encoding.DENSE_INT8]
        ),
        scale=st.sampled_from([0.01, 1.0, 1.0, 30.0]),
        single_symbol=st.booleans(),
    )


def random_model(seed: int, spec: WeightSpec, shape: tuple[int, int, int], plan: list[tuple]) -> IntegerModel:
    """Build a chain from ``plan``.

    Steps: ("fc", out) | ("conv", out_c, kh, kw, sh, sw, ph, pw) | ("pool", kh, kw, sh, sw). Steps
    that do not fit the current shape are skipped; a chain without weights gets a final FC.
    """
    rng = np.random.default_rng(seed)
    layers = []
    cur = tuple(shape)
    zp = -128
    for i, step in enumerate(plan):
        kind = step[0]
        if kind == "conv":
            _, oc, kh, kw, sh, sw, ph, pw = step
            ph, pw = min(ph, kh - 1), min(pw, kw - 1)
            if kh > cur[1] + 2 * ph or kw > cur[2] + 2 * pw:
                continue
            layer = conv_layer(rng, cur, oc, (kh, kw), (sh, sw), (ph, pw), spec, zp, f"conv{i}")
        elif kind == "pool":
            _, kh, kw, sh, sw = step
            if kh > cur[1] or kw > cur[2]:
                continue
            layer = MaxPool2D(f"pool{i}", cur, (kh, kw), (sh, sw), zp)
        else:
            layer = fc_layer(rng, cur, step[1], spec, zp, f"fc{i}")
        layers.append(layer)
        cur = layer.out_shape
        zp = layer.zp if isinstance(layer, MaxPool2D) else layer.out_zp
    if not any(isinstance(layer, (FC, Conv2D)) for layer in layers):
        layer = fc_layer(rng, cur, 3, spec, zp, "fc_last")
        layers.append(layer)
        zp = layer.out_zp
    return IntegerModel(
        layers=layers,
        input_shape=tuple(shape),
        input_scale=1 / 255,
        output_scale=1.0,
        output_zp=zp,
        name=f"random{seed}",
    )


def plans():
    from hypothesis import strategies as st

    conv = st.tuples(
        st.just("conv"),
        st.integers(1, 5),
        st.integers(1, 4),
        st.integers(1, 4),
        st.integers(1, 3),
        st.integers(1, 3),
        st.integers(0, 2),
        st.integers(0, 2),
    )
    k3 = st.integers(1, 3)
    pool = st.tuples(st.just("pool"), k3, k3, k3, k3)
    fc = st.tuples(st.just("fc"), st.integers(1, 37))
    return st.lists(st.one_of(conv, pool, fc), min_size=1, max_size=4)


def shapes():
    from hypothesis import strategies as st

    return st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))


# ----------------------------------------------------------------------------- graphs


def depthwise_layer(
    rng,
    in_shape,
    mult,
    kernel,
    stride,
    padding,
    spec: WeightSpec,
    in_zp: int,
    name="dw",
    padding_end=None,
    pool=None,
) -> DepthwiseConv2D:
    rows, fan_in = in_shape[0] * mult, kernel[0] * kernel[1]
    out_zp = _zp(rng)
    amin, amax = _acts(rng, out_zp)
    return DepthwiseConv2D(
        name=name, in_shape=tuple(in_shape), multiplier=mult, kernel=tuple(kernel), stride=tuple(stride),
        padding=tuple(padding), codebook=_codebook(rng, spec.k), assign=_assign(rng, rows, fan_in, spec),
        bias=rng.integers(-(2**12), 2**12, size=rows).astype(np.int32),
        requant=_requant(rng, fan_in, spec.density, spec.scale), in_zp=in_zp, out_zp=out_zp, act_min=amin,
        act_max=amax, encoding=spec.encoding, index_bits=_index_bits(spec), padding_end=padding_end,
        pool=pool,
    )  # fmt: skip


def add_op(rng, shape, zp_a: int, zp_b: int, name="add", scales=(0.7, 0.3)) -> Add:
    ma, mb, shift = pair_requant(*scales)
    out_zp = _zp(rng)
    amin, amax = _acts(rng, out_zp)
    return Add(name, tuple(shape), zp_a, zp_b, out_zp, ma, mb, shift, amin, amax)


def avgpool_op(
    rng, in_shape, kernel, stride, padding, in_zp: int, name="avgpool", padding_end=None
) -> AvgPool2D:
    out_zp = _zp(rng)
    amin, amax = _acts(rng, out_zp)
    rq = Requant.from_real(float(rng.uniform(0.5, 1.5)) / (kernel[0] * kernel[1]))
    return AvgPool2D(
        name, tuple(in_shape), tuple(kernel), tuple(stride), tuple(padding), rq, in_zp, out_zp, amin, amax,
        padding_end=padding_end,
    )  # fmt: skip


def wire(op, inputs: tuple[int, ...], output: int):
    op.inputs, op.output = tuple(inputs), output
    return op


def residual_net(
    rng: np.random.Generator, spec: WeightSpec | None = None, *, input_kind: InputKind = InputKind.UINT8
) -> IntegerModel:
    """Every registered op once, as a small residual network on a 3x8x8 input (tensors 0..7):

    op 0 CONV2D 3x3 pad 1 -> t1 (4,8,8); op 1 MAXPOOL2D 2x2/2 -> t2 (4,4,4); op 2 DEPTHWISE 3x3
    'same' -> t3; op 3 ADD(t2, t3) -> t4; op 4 AVGPOOL2D 2x2/2 -> t5 (4,2,2); op 5 CONV2D 3x3
    pad 1 with a fused 2x2/1 max pool -> t6 (5,1,1); op 6 FC -> t7 (10,1,1).
    """
    spec = spec or WeightSpec(density=0.5, k=16, index_bits=4)
    in_zp = -128 if input_kind == InputKind.UINT8 else 5
    c1 = wire(conv_layer(rng, (3, 8, 8), 4, (3, 3), (1, 1), (1, 1), spec, in_zp, "conv1"), (0,), 1)
    p1 = wire(MaxPool2D("pool1", c1.out_shape, (2, 2), (2, 2), c1.out_zp), (1,), 2)
    dw = wire(depthwise_layer(rng, p1.out_shape, 1, (3, 3), (1, 1), (1, 1), spec, p1.zp, "dw"), (2,), 3)
    add = wire(add_op(rng, p1.out_shape, p1.zp, dw.out_zp), (2, 3), 4)
    ap = wire(avgpool_op(rng, add.shape, (2, 2), (2, 2), (0, 0), add.out_zp), (4,), 5)
    c2 = conv_layer(rng, ap.out_shape, 5, (3, 3), (1, 1), (1, 1), spec, ap.out_zp, "conv2")
    c2.pool = (2, 2, 1, 1)
    wire(c2, (5,), 6)
    fc = wire(fc_layer(rng, c2.out_shape, 10, spec, c2.out_zp, "fc"), (6,), 7)
    return IntegerModel(
        [c1, p1, dw, add, ap, c2, fc], (3, 8, 8), 1 / 255, 0.1, fc.out_zp, name="residual_net",
        input_kind=input_kind, input_zp=in_zp, input_tensor=0, output_tensor=7,
    )  # fmt: skip


def model_inputs(model: IntegerModel, n: int, seed: int) -> np.ndarray:
    """n random inputs plus the two extremes, as the simulator takes them (uint8, or int8 values)."""
    rng = np.random.default_rng(seed)
    if model.input_kind == InputKind.UINT8:
        lo, hi, dt = 0, 256, np.uint8
    else:
        lo, hi, dt = -128, 128, np.int8
    x = rng.integers(lo, hi, size=(n, model.input_len)).astype(dt)
    extremes = np.stack([np.full(model.input_len, lo, dt), np.full(model.input_len, hi - 1, dt)])
    return np.concatenate([extremes, x])


def mnist_like(n: int, seed: int, side: int = 28) -> np.ndarray:
    """n uint8 images (n, side*side) that look like MNIST: a dark background, bright thick strokes."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, side, side), np.float64)
    yy, xx = np.mgrid[0:side, 0:side]
    for i in range(n):
        for _ in range(int(rng.integers(1, 4))):  # a few strokes: segments of a random walk
            p = rng.uniform(6, side - 6, size=2)
            for _ in range(int(rng.integers(4, 12))):
                q = np.clip(p + rng.normal(0, 3, size=2), 3, side - 4)
                for t in np.linspace(0, 1, 6):
                    c = p + t * (q - p)
                    out[i] += np.exp(-((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / 1.2)
                p = q
    out = np.where(out < 0.15, 0.0, np.clip(out, 0, 1))
    return (out * 255).astype(np.uint8).reshape(n, -1)


# ----------------------------------------------------------------------------- blob patching


def fix_crc(b: bytearray | bytes) -> bytes:
    b = bytearray(b)
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])) & 0xFFFFFFFF)
    return bytes(b)


def hdr_off(name: str) -> int:
    return L.HEADER.offsets[name]


def tensor_off(t: int, name: str) -> int:
    return L.HEADER.size + t * L.TENSOR.size + L.TENSOR.offsets[name]


def op_off(blob: bytes, i: int, name: str) -> int:
    return L.HEADER.unpack_from(blob)["op_table_off"] + i * L.OP.size + L.OP.offsets[name]


_CODES = {"u8": "<B", "i8": "<b", "u16": "<H", "i16": "<h", "u32": "<I", "i32": "<i"}


def _field_type(rec: L.Record, name: str) -> str:
    return next(f.type for f in rec.fields if f.name == name)


def patch(blob: bytes, rec: L.Record, off: int, name: str, value: int) -> bytes:
    """``blob`` with field ``name`` of record ``rec`` (at offset ``off``) set to ``value``, CRC fixed."""
    b = bytearray(blob)
    struct.pack_into(_CODES[_field_type(rec, name)], b, off, value)
    return fix_crc(b)


def read_field(blob: bytes, rec: L.Record, off: int, name: str) -> int:
    return struct.unpack_from(_CODES[_field_type(rec, name)], blob, off)[0]


# ----------------------------------------------------------------------------- on the boards

QEMU_MARKS = [
    pytest.mark.qemu,
    pytest.mark.arm,
    pytest.mark.skipif(
        shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
        reason="needs qemu-system-arm and arm-none-eabi-gcc",
    ),
]


def on_qemu(test):
    """Mark a test that boots firmware under QEMU (skipped without the emulator or the cross compiler)."""
    for mark in QEMU_MARKS:
        test = mark(test)
    return test


def assert_bit_exact_on_board(model: IntegerModel, board: str, tmp_path, x: np.ndarray) -> None:
    """Build the whole firmware of ``model`` for an emulated ``board``, run ``x`` under QEMU and
    require every output equal to the simulator's."""
    from mcu_dc.core.model_file import CompressedModel
    from mcu_dc.device.harness import LinkSettings
    from mcu_dc.device.verify import VerifySettings, build_firmware, run_on_qemu

    cm = CompressedModel(model, {"name": model.name})
    fw = build_firmware(cm, board, tmp_path)
    settings = VerifySettings(board=board, progress=False, link=LinkSettings(reply_timeout_s=5.0))
    report = run_on_qemu(cm, board, fw.elf, x, None, settings)
    assert report.n == len(x) and report.bit_exact == len(x) and report.mismatches == 0


def c_status(runner, tmp_path, blob: bytes, model: IntegerModel, ref: bool = False) -> int:
    """The status the host runner (the fast kernels, or with ``ref`` the reference ones) refuses ``blob``
    with (it must refuse it)."""
    from mcu_dc.deploy.hostbuild import RuntimeStatusError, run_blob

    p = tmp_path / "bad.bin"
    p.write_bytes(blob)
    with pytest.raises(RuntimeStatusError) as exc:
        run_blob(runner, p, np.zeros((1, model.input_len), np.uint8), model.output_len, ref=ref)
    return exc.value.status
