"""Choosing encodings by objective (mcu_dc/core/objective.py) and `mcu-dc encode`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcu_dc.core import objective as O
from mcu_dc.core.blob import encode_blob
from mcu_dc.core.ir import FC, IntegerModel, Requant
from mcu_dc.core.model_file import CompressedModel, load
from mcu_dc.core.qmath import Encoding
from mcu_dc.core.random_models import random_graph
from mcu_dc.core.simulator import simulate
from mcu_dc.errors import ConfigError


def _mlp(seed: int = 0, k: int = 16) -> IntegerModel:
    """A 784-300-10 MLP, 7 % of fc1 kept, codebook use peaked in the middle (as trained weights are):
    Huffman is the smallest there, column-sparse the fastest."""
    rng = np.random.default_rng(seed)
    layers = []
    shape, zp = (1, 28, 28), -128
    for name, out, density in (("fc1", 300, 0.07), ("fc2", 10, 0.3)):
        fan_in = int(np.prod(shape))
        a = rng.binomial(k - 1, 0.5, size=(out, fan_in)).astype(np.int16)
        a[rng.random(a.shape) >= density] = -1
        fc = FC(
            name, shape, out, rng.integers(-100, 100, size=k).astype(np.int8), a,
            rng.integers(-3000, 3000, size=out).astype(np.int32), Requant(1 << 22, 30), zp, -128,
            act_min=-128, act_max=127,
        )  # fmt: skip
        layers.append(fc)
        shape, zp = fc.out_shape, fc.out_zp
    return IntegerModel(layers, (1, 28, 28), 1 / 255, 0.05, zp, name="mlp")


def _x(model: IntegerModel, zero_frac: float = 0.7) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(40, *model.input_shape), dtype=np.uint8)
    x[rng.random(x.shape) < zero_frac] = 0
    return x


def test_each_objective_keeps_the_outputs_and_meets_its_rule():
    model = _mlp()
    x = _x(model)
    act = O.input_activity(model, x)
    assert 0.2 < act[0] < 0.4 and set(act) == {0, 1}
    want = simulate(model, x)
    opts = O.layer_options(model, act)
    results = {}
    for obj in O.Objective:
        m, pick = O.choose(model, obj, activity=act)
        assert np.array_equal(simulate(m, x), want), obj
        results[obj] = (len(encode_blob(m)), sum(p.instructions for p in pick.values()), pick)
    size_b, size_i, size_pick = results[O.Objective.SIZE]
    speed_b, speed_i, speed_pick = results[O.Objective.SPEED]
    bal_b, bal_i, _ = results[O.Objective.BALANCED]
    for i, options in opts.items():  # per op: the smallest and the fastest option
        assert size_pick[i].bytes == min(o.bytes for o in options)
        assert speed_pick[i].instructions == min(o.instructions for o in options)
    assert speed_i < size_i and size_b <= speed_b
    assert bal_b <= 1.05 * size_b + 1 and speed_i <= bal_i <= size_i
    assert speed_pick[0].encoding == Encoding.COLUMN_SPARSE  # a sparse FC on mostly-zero inputs


def test_allowed_encodings_and_bad_settings():
    model = _mlp(k=17)
    assert Encoding.COLUMN_SPARSE not in O.allowed_encodings(model.layers[0])
    conv = next(op for s in range(60) for op in random_graph(s).layers if type(op).__name__ == "Conv2D")
    assert Encoding.COLUMN_SPARSE not in O.allowed_encodings(conv)
    with pytest.raises(ConfigError, match="not one of size, speed, balanced"):
        O.choose(_mlp(), "fastest")
    with pytest.raises(ConfigError, match="slack"):
        O.choose(_mlp(), "balanced", slack=-1)


def test_cost_model_orders_encodings_sensibly():
    """Column-sparse cost falls with activity; Huffman's does not depend on it; dense pays per weight."""
    fc = _mlp().layers[0]
    cs = [O.predict_instructions(fc, Encoding.COLUMN_SPARSE, a) for a in (0.1, 0.5, 1.0)]
    assert cs[0] < cs[1] < cs[2]
    huff = O.predict_instructions(fc, Encoding.HUFFMAN_SPARSE, 0.1)
    assert huff == O.predict_instructions(fc, Encoding.HUFFMAN_SPARSE, 1.0)
    assert O.predict_instructions(fc, Encoding.DENSE_INT8) > cs[2]


def test_mcu_dc_encode_cli(tmp_path):
    src = tmp_path / "m.mcudc"
    CompressedModel(_mlp(), {"name": "mlp"}).save(src)
    out = tmp_path / "fast.mcudc"
    proc = subprocess.run(
        [sys.executable, "-m", "mcu_dc", "encode", str(src), str(out), "--objective", "speed"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "fc1 COLUMN_SPARSE" in proc.stdout and "outputs unchanged" in proc.stdout
    new = load(out)
    assert new.meta["objective"]["objective"] == "speed"
    x = _x(new.model)
    assert np.array_equal(simulate(new.model, x), simulate(load(src).model, x))
    rep = subprocess.run(
        [sys.executable, "-m", "mcu_dc", "report", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "| fc1 | FC | COLUMN_SPARSE |" in rep and "objective `speed`" in rep
    bad_out = tmp_path / "x.mcudc"
    cmd = [sys.executable, "-m", "mcu_dc", "encode", str(src), str(bad_out), "--objective", "fast"]
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr and not bad_out.exists()


def test_config_objective_is_checked(tmp_path):
    from mcu_dc.compression.config import CompressConfig, load_config

    p = tmp_path / "c.toml"
    p.write_text('objective = "speed"\nslack = 0.2\n')
    cfg = load_config(p, CompressConfig())
    assert cfg.objective == "speed" and cfg.slack == 0.2
    p.write_text('objective = "fastest"\n')
    with pytest.raises(ConfigError, match="objective"):
        load_config(p, CompressConfig()).validate()


def test_flash_tables_switch(tmp_path):
    """`encode --flash-tables` (config `ram_tables = false`) keeps joint FC tables in flash: no
    table_bits, no decode-table scratch; the default builds them in scratch (smaller blob, more arena)."""
    from mcu_dc.compression.config import CompressConfig, load_config

    src = Path(__file__).resolve().parents[2] / "bench" / "results" / "lenet300_size.mcudc"
    outs = {}
    for flag in ([], ["--flash-tables"]):
        out = tmp_path / f"m{len(flag)}.mcudc"
        cmd = [sys.executable, "-m", "mcu_dc", "encode", str(src), str(out), "--objective", "size", *flag]
        subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=True)
        outs[bool(flag)] = load(out).model
    ram, flash = outs[False], outs[True]
    assert all(op.table_bits > 0 for op in ram.layers if op.encoding == Encoding.HUFFMAN_JOINT)
    assert all(getattr(op, "table_bits", 0) == 0 for op in flash.layers)
    # the 12-bit table (8,192 B) may overlap a buffer dead at its op (fc2's table over the 784-byte input)
    assert ram.plan.arena_bytes >= flash.plan.arena_bytes + 8192 - 1200
    p = tmp_path / "c.toml"
    p.write_text("ram_tables = false\n")
    assert load_config(p, CompressConfig()).ram_tables is False
    p.write_text('ram_tables = "no"\n')
    with pytest.raises(ConfigError, match="ram_tables"):
        load_config(p, CompressConfig()).validate()


def test_conv_kernel_switch(tmp_path):
    """`encode --conv-kernel` (config `conv_kernel`): gather (the default) puts every CONV2D on the gather
    kernel, a joint conv with its decode table (at most 9 bits) in scratch; scatter clears both. The
    outputs are the same; the cost model predicts the gather kernel faster on a real conv."""
    from mcu_dc.compression.config import CompressConfig, load_config
    from mcu_dc.core.ir import Conv2D

    src = Path(__file__).resolve().parents[2] / "bench" / "results" / "resnet8_cifar10_small.mcudc"
    outs = {}
    for kernel in ("gather", "scatter"):
        out = tmp_path / f"{kernel}.mcudc"
        cmd = [sys.executable, "-m", "mcu_dc", "encode", str(src), str(out), "--objective", "size",
               "--conv-kernel", kernel]  # fmt: skip
        subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
        outs[kernel] = load(out).model
        rep = subprocess.run([sys.executable, "-m", "mcu_dc", "report", str(out)], capture_output=True,
                             text=True, timeout=300, check=True).stdout  # fmt: skip
        assert ("| CONV2D | HUFFMAN_JOINT (gather) |" in rep) == (kernel == "gather")
    convs = {k: [op for op in m.layers if isinstance(op, Conv2D)] for k, m in outs.items()}
    assert convs["gather"] and all(op.gather == 1 for op in convs["gather"])
    joint = [op for op in convs["gather"] if op.encoding == Encoding.HUFFMAN_JOINT]
    assert joint and all(0 < op.table_bits <= O.CONV_TABLE_BITS for op in joint)
    assert all(op.gather == 0 and op.table_bits == 0 for op in convs["scatter"])
    x = np.random.default_rng(0).integers(0, 256, size=(4, 3, 32, 32)).astype(np.uint8)
    assert np.array_equal(simulate(outs["gather"], x), simulate(outs["scatter"], x))
    g, s = convs["gather"][2], convs["scatter"][2]
    fast = O.predict_instructions(g, Encoding(g.encoding))
    assert fast < O.predict_instructions(s, Encoding(s.encoding)) / 2
    p = tmp_path / "c.toml"
    p.write_text('conv_kernel = "scatter"\n')
    assert load_config(p, CompressConfig()).conv_kernel == "scatter"
    p.write_text('conv_kernel = "fast"\n')
    with pytest.raises(ConfigError, match="conv_kernel"):
        load_config(p, CompressConfig()).validate()
    with pytest.raises(ConfigError, match="conv kernel"):
        O.with_encodings(outs["gather"], {}, conv_kernel="fast")


def test_gather_conv_joint_tables_fit_nine_bits_or_stay_in_flash():
    """A joint gather conv takes the run width whose (run, symbol) pairs fit a 9-bit scratch table (256
    codebook entries: one bit of run, wider ones skipped); with more pairs than that (513) it is
    stored with flash tables and full-length codes instead. Either way the file round-trips exactly."""
    from mcu_dc.core.ir import Conv2D

    cb = np.arange(-128, 128, dtype=np.int64).astype(np.int8)
    x = np.random.default_rng(1).integers(0, 256, size=(3, 16, 6, 6)).astype(np.uint8)
    for rows, density, compact in ((32, 0.7, True), (128, 0.5, False)):
        rng = np.random.default_rng(4)
        a = rng.integers(0, 256, size=(rows, 16 * 9)).astype(np.int16)
        a[rng.random(a.shape) >= density] = -1
        conv = Conv2D("c", (16, 6, 6), rows, (3, 3), (1, 1), (1, 1), cb, a, np.zeros(rows, np.int32),
                      Requant(1 << 30, 38), -128, 0, gather=1)  # fmt: skip
        m = IntegerModel([conv], (16, 6, 6), 1 / 255, 0.05, 0, name="many")
        op = O.with_encodings(m, {0: Encoding.HUFFMAN_JOINT}).layers[0]
        assert op.gather == 1 and op.index_bits >= 1
        assert (0 < op.table_bits <= O.CONV_TABLE_BITS) if compact else op.table_bits == 0
        m2 = IntegerModel([op], (16, 6, 6), 1 / 255, 0.05, 0, name="many")
        assert np.array_equal(simulate(CompressedModel(m2).model, x), simulate(m, x))
