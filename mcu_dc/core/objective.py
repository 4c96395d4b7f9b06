"""Choosing each weight op's encoding by objective: ``size``, ``speed`` or ``balanced``.

The weights (codebook, assignment) are fixed by compression; only how they are stored
changes, so every choice computes the same integers (accuracy is unchanged by
construction). For each weight op and each encoding it can use, the exact bytes come from
packing it, and the instructions per inference from a cost model of the Cortex-M4 kernels
(:data:`M4_COSTS`, fitted to QEMU instruction counts by ``bench/kernel_speed.py``; the
bench prints the model's error on every measured layer). Column-sparse FC layers skip
zero inputs, so their cost depends on how often an input is non-zero: ``activity`` gives
that fraction per op (measured on data with :func:`input_activity`; 1.0, the worst case,
without data).

* ``size``: the smallest encoding of each op.
* ``speed``: the fastest encoding of each op.
* ``balanced``: the fastest model whose blob stays within ``slack`` (default 5 %) of the
  smallest: starting from ``size``, ops switch to faster encodings in order of
  instructions saved per byte added while the budget allows. Most of a sparse FC's
  speed-up then comes at a few percent of size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from mcu_dc.core import bitplanes, colsparse
from mcu_dc.core.ir import IntegerModel
from mcu_dc.core.ops import spec_of
from mcu_dc.core.ops.weights import best_joint_index_bits, joint_table_bits
from mcu_dc.core.qmath import MAX_CODEBOOK, Encoding, Op
from mcu_dc.core.sparse import encode_relative
from mcu_dc.errors import ConfigError


class Objective(str, Enum):
    SIZE = "size"
    SPEED = "speed"
    BALANCED = "balanced"


DEFAULT_SLACK = 0.05


# TERNARY / BINARY kernel costs: fitted (least squares) to QEMU -icount counts of single-FC models on
# qemu-mps2-an386 (rows 10-300, fan-in 64-784, density 0.1-1.0; fit error within 2 % but for the smallest
# model); MAP_COMBINE (conv) is an estimate, not measured. docs/format.md, "Bit-plane section".
PLANE_WORD, SET_BIT, INPUT, MAP_COMBINE, PLANE_ROW = 7.8, 9.0, 10.0, 12.0, 45.0
# HUFFMAN_JOINT FC kernel: per entry (one window decode, the MAC) with the default 6-bit lookup table,
# measured under QEMU on LeNet-300-100 (fc1 b = 6, fc2 b = 3: 927,900 instructions): pair codes are
# longer than the table more often, so the canonical walk eats what the second decode saved.
JOINT_ENTRY = 39.0
# The same kernel with a compact section (``table_bits``): the decode table covers every code (no
# canonical walk); per entry, plus building the table at each inference: per table entry and per
# coded symbol. Fitted by bench/kernel_speed.py like the rest.
JOINT_RAM_ENTRY, TABLE_ENTRY, TABLE_SYMBOL = 21.5, 1.5, 12.0
# DENSE_INT8 FC on the M4's DSP path (smlad, two rows at a time): LeNet-300-100 dense, 598,080
# instructions for 266,200 weights (the conv family's dense walk keeps per_weight).
DENSE_FC_WEIGHT = 2.2
# The gather convolution (CONV2D with ``gather``; mcu_dc_gather.c). Per block of output positions of a
# row, (per tap, per weight-value group, per block) as gcc -Os compiles the M4 loops (counted from the
# disassembly): DSP blocks of eight and four at strides 1 and 2, the plain block of four and the single
# position (other strides, a row's last positions, cores without DSP).
GATHER_BLOCKS = {
    ("dsp", 1, 8): (8.5, 34.0, 12.0), ("dsp", 2, 8): (12.0, 34.0, 14.0),
    ("dsp", 1, 4): (5.5, 13.0, 8.0), ("dsp", 2, 4): (6.5, 13.0, 8.0),
    ("plain", 0, 4): (12.0, 14.0, 10.0), ("plain", 0, 1): (4.0, 6.0, 4.0),
}  # fmt: skip
# Per output position per channel (the fused emit), per kept weight (a Huffman entry decoded in line, its
# offset, the counting sort), per output row per channel (the block calls), fitted by
# bench/graph_speed.py --fit on ResNet-8's layers (bench/results/graph_speed.md gives the fit and its
# error); per channel (counters, groups) and per byte of the padded input copy, counted.
GATHER_POS, GATHER_TAP, GATHER_ROW, GATHER_CHANNEL, GATHER_PAD = 28.1, 61.6, 60.0, 150.0, 3.0
GATHER_BLOCK_SCALE = 1.04
# HUFFMAN_SPARSE on the gather kernel: the second code of each entry (its lookup and buffer upkeep), counted.
GATHER_SECOND_CODE = 15.0


@dataclass(frozen=True)
class KernelCosts:
    """Cortex-M4 instructions (``-Os``) per unit of work of one weight-op kernel."""

    fixed: float  # per op: node parsing, calls
    per_row: float  # bias, requantization, row loop
    per_entry: float  # HUFFMAN_SPARSE: per sparse entry (both Huffman decodes, the MAC)
    per_weight: float  # DENSE_INT8: per stored weight (zero or not)
    per_kept_active: float  # COLUMN_SPARSE: per kept weight whose input is non-zero
    per_column: float  # COLUMN_SPARSE: per input column (count, zero test)
    per_active_column: float  # COLUMN_SPARSE: per non-zero input column (the column call)
    per_map_mac: float  # conv family: per kept weight per output position (the scatter)
    per_plane_word: float = 0.0  # TERNARY / BINARY: per u32 word of a plane row (load, zero test)
    per_set_bit: float = 0.0  # TERNARY / BINARY: per set bit (ctz, load, add, count, clear)
    per_input: float = 0.0  # BINARY FC: per input (the sum of all inputs, once per op)
    per_map_combine: float = 0.0  # TERNARY / BINARY conv: per output position per channel (two maps)
    per_plane_row: float = 0.0  # TERNARY / BINARY FC: per row beyond per_row (the plane-sum calls)
    per_joint_entry: float = 0.0  # HUFFMAN_JOINT FC: per sparse entry (one Huffman decode, the MAC)
    per_joint_ram_entry: float = 0.0  # the same with a compact section (the decode table in RAM)
    per_table_entry: float = 0.0  # building that table: per entry (2 ** table_bits)
    per_table_symbol: float = 0.0  # and per coded symbol
    per_fc_weight: float = 0.0  # DENSE_INT8 FC: per stored weight when it differs from per_weight (DSP)
    gather_dsp: bool = False  # gather conv: the DSP blocks (Cortex-M4/M7) or the plain loops only
    per_gather_position: float = 0.0  # per output position per channel (emit), beyond the blocks
    per_gather_row: float = 0.0  # per output row per channel (the block calls)
    gather_block_scale: float = 0.0  # GATHER_BLOCKS (counted from the disassembly) times this (fitted)
    per_gather_tap: float = 0.0  # per kept weight (offset, sort)
    per_gather_channel: float = 0.0  # per output channel
    per_gather_pad: float = 0.0  # per byte of the zero-point-padded input copy


# Fitted by bench/kernel_speed.py (see bench/results/kernel_speed.md for the fit and its error).
M4_COSTS = KernelCosts(
    fixed=200.0,
    per_row=45.0,
    per_entry=40.0,
    per_weight=8.0,
    per_kept_active=11.0,
    per_column=11.0,
    per_active_column=14.0,
    per_map_mac=5.0,
    per_plane_word=PLANE_WORD,
    per_set_bit=SET_BIT,
    per_input=INPUT,
    per_map_combine=MAP_COMBINE,
    per_plane_row=PLANE_ROW,
    per_joint_entry=JOINT_ENTRY,
    per_joint_ram_entry=JOINT_RAM_ENTRY,
    per_table_entry=TABLE_ENTRY,
    per_table_symbol=TABLE_SYMBOL,
    per_fc_weight=DENSE_FC_WEIGHT,
    gather_dsp=True,
    per_gather_position=GATHER_POS,
    per_gather_row=GATHER_ROW,
    gather_block_scale=GATHER_BLOCK_SCALE,
    per_gather_tap=GATHER_TAP,
    per_gather_channel=GATHER_CHANNEL,
    per_gather_pad=GATHER_PAD,
)

CONV_KERNELS = ("gather", "scatter")
# A gather conv's compact joint section: codes of at most 9 bits, so its decode table takes 1 KB of scratch
# (a 12-bit one would take 8 KB per op for a fraction of a percent of the section's bytes).
CONV_TABLE_BITS = 9


@dataclass(frozen=True)
class Option:
    """One way to store one op: its bytes in the blob and predicted instructions per inference."""

    encoding: Encoding
    bytes: int
    instructions: int


def allowed_encodings(op: Any) -> list[Encoding]:
    """The encodings a weight op can use (COLUMN_SPARSE: an FC with at most 16 codebook entries;
    TERNARY: at most 2; BINARY: at most 2 and no pruned weight)."""
    if not spec_of(op).has_weights:
        return []
    out = [Encoding.HUFFMAN_SPARSE, Encoding.DENSE_INT8]
    if 1 <= len(op.codebook) <= MAX_CODEBOOK:  # some run width always fits its 12-bit alphabet
        out.append(Encoding.HUFFMAN_JOINT)
    if op.op == Op.FC and 1 <= len(op.codebook) <= colsparse.MAX_K:
        out.append(Encoding.COLUMN_SPARSE)
    if 1 <= len(op.codebook) <= bitplanes.MAX_K:
        out.append(Encoding.TERNARY)
        if int(np.asarray(op.assign).min(initial=0)) >= 0:
            out.append(Encoding.BINARY)
    if not 1 <= len(op.codebook) <= MAX_CODEBOOK:
        out.remove(Encoding.HUFFMAN_SPARSE)
    return out


def predict_instructions(
    op: Any, encoding: Encoding, activity: float = 1.0, costs: KernelCosts = M4_COSTS
) -> int:
    """Predicted instructions of one weight op's fast kernel with ``encoding`` (Cortex-M4)."""
    a = np.asarray(op.assign)
    rows, fan_in = a.shape
    kept = int((a >= 0).sum())
    c = costs
    if encoding in (Encoding.TERNARY, Encoding.BINARY):
        planes = bitplanes.n_planes(encoding, len(op.codebook))
        words = planes * rows * bitplanes.words_per_row(fan_in)
        set_bits = kept if encoding == Encoding.TERNARY else int((a == 1).sum())
        if op.op == Op.FC:
            n = c.per_plane_word * words + c.per_set_bit * set_bits
            if encoding == Encoding.BINARY:
                n += c.per_input * fan_in
            return round(c.fixed + (c.per_row + c.per_plane_row) * rows + n)
        _, oh, ow = op.conv_shape
        taps = kept if encoding == Encoding.TERNARY else rows * fan_in  # BINARY: the clear bits too
        walk = c.per_plane_word * 2 * rows * bitplanes.words_per_row(fan_in) + c.per_set_bit * taps
        maps = (c.per_row + c.per_map_combine) * rows * oh * ow
        return round(c.fixed + walk + maps + c.per_map_mac * taps * oh * ow)
    if op.op == Op.FC:
        if encoding == Encoding.COLUMN_SPARSE:
            _, stats = colsparse.encode_columns(a, len(op.codebook))
            n = (
                c.per_kept_active * (stats.kept + 0.5 * stats.skips) * activity
                + c.per_column * fan_in
                + c.per_active_column * fan_in * activity
            )
        elif encoding == Encoding.HUFFMAN_SPARSE:
            n = c.per_entry * _sparse_entries(op)
        elif encoding == Encoding.HUFFMAN_JOINT and int(getattr(op, "table_bits", 0)):
            b, tb = int(op.index_bits), int(op.table_bits)
            r, s = encode_relative(a, b, len(op.codebook))
            symbols = len(np.unique((s.astype(np.int64) << b) | r))
            n = c.per_joint_ram_entry * len(r) + c.per_table_entry * (1 << tb) + c.per_table_symbol * symbols
        elif encoding == Encoding.HUFFMAN_JOINT:
            n = c.per_joint_entry * _sparse_entries(op, joint=True)
        else:
            n = (c.per_fc_weight or c.per_weight) * rows * fan_in
        return round(c.fixed + c.per_row * rows + n)
    _, oh, ow = op.conv_shape
    if int(getattr(op, "gather", 0)):  # Huffman decoded in line (in per_gather_tap); else the weight reader
        if encoding == Encoding.HUFFMAN_JOINT:
            walk = 0.0
        elif encoding == Encoding.HUFFMAN_SPARSE:  # a second code per entry: the relative index
            walk = GATHER_SECOND_CODE * _sparse_entries(op)
        else:
            walk = c.per_weight * rows * fan_in
        return round(c.fixed + walk + _gather_work(op, c))
    if encoding == Encoding.HUFFMAN_SPARSE:
        walk = c.per_entry * _sparse_entries(op)
    elif encoding == Encoding.HUFFMAN_JOINT:  # the conv family reads it through the weight reader
        walk = c.per_entry * _sparse_entries(op, joint=True)
    else:
        walk = c.per_weight * rows * fan_in
    scatter = c.per_map_mac * kept * oh * ow
    return round(c.fixed + c.per_row * rows * oh * ow + walk + scatter)


def gather_groups(op: Any) -> int:
    """The gather kernel's weight-value groups over all channels: each channel's distinct non-zero
    kept values, a value with more than 256 taps counting once per 256."""
    a = np.asarray(op.assign)
    vals = np.asarray(op.codebook, dtype=np.int64)
    total = 0
    for row in a:
        w = vals[row[row >= 0]]
        _, counts = np.unique(w[w != 0], return_counts=True)
        total += int(((counts + 255) // 256).sum())
    return total


def gather_blocks(conv_w: int, stride: int, dsp: bool) -> list[tuple[tuple[str, int, int], int]]:
    """The blocks one output row of ``conv_w`` positions goes through: ((kind, stride, width), count)."""
    out: list[tuple[tuple[str, int, int], int]] = []
    rest = conv_w
    if dsp and stride in (1, 2):
        out += [(("dsp", stride, 8), rest // 8), (("dsp", stride, 4), (rest % 8) // 4)]
        rest %= 4
    out += [(("plain", 0, 4), rest // 4), (("plain", 0, 1), rest % 4)]
    return [(k, n) for k, n in out if n]


def _gather_work(op: Any, c: KernelCosts) -> float:
    from mcu_dc.core.ops.conv2d import gather_input_bytes

    a = np.asarray(op.assign)
    vals = np.asarray(op.codebook, dtype=np.int64)
    taps = int((np.where(a >= 0, vals[np.maximum(a, 0)], 0) != 0).sum())  # zero centroids are skipped
    groups = gather_groups(op)
    rows = a.shape[0]
    _, oh, ow = op.conv_shape
    if tuple(op.kernel) == (1, 1) and tuple(op.stride) == (1, 1) and not any(op.pads):
        oh, ow = 1, oh * ow  # one row: the output map's positions are contiguous in the input
    blocks = sum(
        n * (t * taps + g * groups + b * rows)
        for (kind, s, w), n in gather_blocks(ow, op.stride[1], c.gather_dsp)
        for t, g, b in [GATHER_BLOCKS[(kind, s, w)]]
    )
    padded = gather_input_bytes(op) if any(op.pads) else 0
    return (
        c.gather_block_scale * blocks * oh
        + c.per_gather_position * rows * oh * ow
        + c.per_gather_row * rows * oh
        + c.per_gather_tap * taps
        + c.per_gather_channel * rows
        + c.per_gather_pad * padded
    )


def _sparse_entries(op: Any, joint: bool = False) -> int:
    b = best_joint_index_bits(op.assign, len(op.codebook)) if joint else _index_bits(op)
    r, _ = encode_relative(op.assign, b, len(op.codebook))
    return len(r)


def _default_index_bits(op: Any) -> int:
    return 5 if op.op == Op.FC else 8  # Deep Compression's relative-index widths


def _index_bits(op: Any) -> int:
    """The op's relative-index width, or the default where it has none (1..8)."""
    b = int(getattr(op, "index_bits", 0))
    return b if 1 <= b <= 8 else _default_index_bits(op)


def with_encodings(
    model: IntegerModel,
    choice: dict[int, Encoding],
    *,
    max_code_len: int = 12,
    lut_bits: int = 6,
    ram_tables: bool = True,
    conv_kernel: str = "gather",
) -> IntegerModel:
    """A copy of ``model`` whose op ``i`` uses ``choice[i]`` (the arena is planned afresh). A
    HUFFMAN_JOINT op takes the run width that codes it smallest with these Huffman settings; an FC
    one, with ``ram_tables``, a compact section and a decode table in its scratch (``table_bits``:
    its longest code, so the table resolves every code). Every CONV2D takes ``conv_kernel``: "gather"
    (the gather kernel, where its padded input fits 16-bit offsets) or "scatter"."""
    from mcu_dc.core.ops.conv2d import GATHER_MAX_INPUT, gather_input_bytes

    if conv_kernel not in CONV_KERNELS:
        raise ConfigError(f"conv kernel {conv_kernel!r} is not one of {', '.join(CONV_KERNELS)}")
    m = copy.copy(model)
    m.layers = list(model.layers)
    for i, op in enumerate(model.layers):
        if op.op == Op.CONV2D:
            g = int(conv_kernel == "gather" and gather_input_bytes(op) <= GATHER_MAX_INPUT)
            if int(getattr(op, "gather", 0)) != g:
                m.layers[i] = copy.copy(op)
                m.layers[i].gather = g
                if not g:  # only the gather kernel builds a conv's decode table: back to flash tables
                    m.layers[i].table_bits = 0
    for i, enc in choice.items():
        op = copy.copy(m.layers[i])
        op.encoding = Encoding(enc)
        # a compact section with its decode table built in scratch: FC kernels, the gather conv kernel
        compact = ram_tables and (op.op == Op.FC or int(getattr(op, "gather", 0)) == 1)
        if op.op in (Op.FC, Op.CONV2D):
            op.table_bits = 0
        if enc == Encoding.HUFFMAN_SPARSE:
            op.index_bits = _index_bits(op)
        elif enc == Encoding.HUFFMAN_JOINT:
            k = len(op.codebook)
            # a conv's table lives beside its other gather buffers: codes limited to CONV_TABLE_BITS
            limit = min(max_code_len, CONV_TABLE_BITS) if compact and op.op == Op.CONV2D else max_code_len
            op.index_bits = best_joint_index_bits(
                op.assign, k, max_code_len=limit, lut_bits=lut_bits, compact=compact
            )
            if not op.index_bits:  # more distinct pairs than a 9-bit table holds: flash tables, longer codes
                compact, limit = False, max_code_len
                op.index_bits = best_joint_index_bits(op.assign, k, max_code_len=limit, lut_bits=lut_bits)
            if compact:
                op.table_bits = joint_table_bits(op.assign, k, op.index_bits, limit)
        m.layers[i] = op
    m.plan = None
    m.validate(m.name)
    return m


def layer_options(
    model: IntegerModel,
    activity: dict[int, float] | None = None,
    costs: KernelCosts = M4_COSTS,
    *,
    max_code_len: int = 12,
    lut_bits: int = 6,
    ram_tables: bool = True,
    conv_kernel: str = "gather",
) -> dict[int, list[Option]]:
    """For each weight op (by index), every encoding it can use with its bytes (packed with the Huffman
    settings the file will be written with) and predicted instructions."""
    from mcu_dc.core.blob import encode_blob_with_layout

    activity = activity or {}
    ops = {i: allowed_encodings(op) for i, op in enumerate(model.layers)}
    ops = {i: e for i, e in ops.items() if e}
    out: dict[int, list[Option]] = {i: [] for i in ops}
    for enc in (Encoding.HUFFMAN_SPARSE, Encoding.HUFFMAN_JOINT, Encoding.DENSE_INT8, Encoding.COLUMN_SPARSE,
                Encoding.TERNARY, Encoding.BINARY):  # fmt: skip
        idx = [i for i, e in ops.items() if enc in e]
        if not idx:
            continue
        trial = with_encodings(
            model,
            dict.fromkeys(idx, enc),
            max_code_len=max_code_len,
            lut_bits=lut_bits,
            ram_tables=ram_tables,
            conv_kernel=conv_kernel,
        )
        _, lay = encode_blob_with_layout(trial, max_code_len=max_code_len, lut_bits=lut_bits)
        for i in idx:
            act = float(activity.get(i, 1.0))
            out[i].append(
                Option(enc, lay.layers[i].total, predict_instructions(trial.layers[i], enc, act, costs))
            )
    return out


def choose(
    model: IntegerModel,
    objective: Objective | str,
    *,
    activity: dict[int, float] | None = None,
    slack: float = DEFAULT_SLACK,
    costs: KernelCosts = M4_COSTS,
    max_code_len: int = 12,
    lut_bits: int = 6,
    ram_tables: bool = True,
    conv_kernel: str = "gather",
) -> tuple[IntegerModel, dict[int, Option]]:
    """The model re-encoded for ``objective``, and the option chosen for each weight op. ``ram_tables``:
    HUFFMAN_JOINT FC ops may store compact sections and build their decode table in the arena (up to
    8 KB of scratch) instead of carrying symbol lists and a lookup table in flash. ``conv_kernel``:
    "gather" runs every CONV2D through the gather kernel (no flash, more RAM: the padded input and one
    channel's taps), "scatter" through the scatter kernels (the least RAM)."""
    try:
        objective = Objective(objective)
    except ValueError:
        raise ConfigError(
            f"objective {objective!r} is not one of {', '.join(o.value for o in Objective)}"
        ) from None
    if slack < 0:
        raise ConfigError(f"the balanced objective's slack must be >= 0, got {slack}")
    opts = layer_options(
        model,
        activity,
        costs,
        max_code_len=max_code_len,
        lut_bits=lut_bits,
        ram_tables=ram_tables,
        conv_kernel=conv_kernel,
    )
    smallest = {i: min(o, key=lambda x: (x.bytes, x.instructions)) for i, o in opts.items()}
    fastest = {i: min(o, key=lambda x: (x.instructions, x.bytes)) for i, o in opts.items()}
    if objective == Objective.SIZE:
        pick = smallest
    elif objective == Objective.SPEED:
        pick = fastest
    else:
        pick = dict(smallest)
        budget = slack * sum(o.bytes for o in smallest.values())
        moves = [
            (o.bytes - pick[i].bytes, pick[i].instructions - o.instructions, i, o)
            for i, options in opts.items()
            for o in options
            if o.instructions < pick[i].instructions
        ]
        # most instructions saved per byte added first; a move that adds no bytes is free
        moves.sort(key=lambda m: -m[1] / max(m[0], 1))
        for _added, _saved, i, o in moves:
            extra = o.bytes - pick[i].bytes
            if o.instructions < pick[i].instructions and extra <= budget:
                budget -= max(extra, 0)
                pick[i] = o
    choice = {i: o.encoding for i, o in pick.items()}
    chosen = with_encodings(
        model,
        choice,
        max_code_len=max_code_len,
        lut_bits=lut_bits,
        ram_tables=ram_tables,
        conv_kernel=conv_kernel,
    )
    return chosen, pick


def objective_meta(
    model: IntegerModel, picks: dict[int, Option], objective: str, slack: float, activity_from: str
) -> dict[str, Any]:
    """What a model file records of the choice (``mcu-dc report`` shows it)."""
    return {
        "objective": objective,
        "slack": slack,
        "activity_from": activity_from,
        "layers": {
            model.layers[i].name: {
                "encoding": o.encoding.name,
                "bytes": o.bytes,
                "instructions_m4": o.instructions,
            }
            for i, o in sorted(picks.items())
        },
    }


def input_activity(model: IntegerModel, x: Any, *, limit: int = 256) -> dict[int, float]:
    """Per weight op, how often its kept weights meet a non-zero input, on inputs ``x``: the mean over
    inputs of the kept weights whose input element is not the zero point, over all kept weights (kept
    weights gather where inputs are active: MNIST's centre pixels). What a column-sparse kernel's
    work scales with."""
    from mcu_dc.core.simulator import _prepare_input, run_graph

    t_in = _prepare_input(model, x)[:limit]
    tensors = run_graph(model, t_in, keep=True)
    out: dict[int, float] = {}
    for i, op in enumerate(model.layers):
        if not spec_of(op).has_weights:
            continue
        t = tensors[op.inputs[0] if op.inputs else model.input_tensor]
        active = (t != int(op.in_zp)).reshape(len(t), -1)
        if op.op == Op.FC:
            per_col = (np.asarray(op.assign) >= 0).sum(axis=0)  # kept weights per input element
            total = int(per_col.sum())
            out[i] = float((active @ per_col).mean() / total) if total else float(active.mean())
        else:
            out[i] = float(active.mean())
    return out
