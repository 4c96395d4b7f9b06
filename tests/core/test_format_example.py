"""The worked example at the end of docs/format.md, checked byte for byte."""

import numpy as np

from mcu_dc.core import huffman
from mcu_dc.core.blob import encode_blob_with_layout
from mcu_dc.core.ir import FC, IntegerModel, Requant
from mcu_dc.core.sparse import encode_relative


def example_model() -> IntegerModel:
    assign = np.array([[0, -1, -1, 1], [-1, -1, -1, 0]], dtype=np.int16)
    fc = FC(
        "fc", (1, 1, 4), 2, np.array([-3, 5], dtype=np.int8), assign, np.array([10, -7], dtype=np.int32),
        Requant(1 << 30, 31), -128, -128, -128, 127, index_bits=1,
    )  # fmt: skip
    return IntegerModel([fc], (1, 1, 4), 1 / 255, 0.5, -128, name="example")


def test_worked_example_matches_docs():
    m = example_model()
    r, s = encode_relative(m.layers[0].assign, 1, 2)
    assert r.tolist() == [0, 1, 0, 1, 1]
    assert s.tolist() == [0, 2, 1, 2, 0]
    ts = huffman.build_table(s, 3, 12)
    assert ts.lengths.tolist() == [2, 2, 1]  # symbol 2 (the filler) and 0 tie at 2 uses; 1 is rarest
    assert ts.codes.tolist() == [0b10, 0b11, 0b0]
    assert huffman.encode(s, ts) == (bytes([0b10011010]), 8)
    tr = huffman.build_table(r, 2, 12)
    assert tr.lengths.tolist() == [1, 1]
    assert huffman.encode(r, tr) == (bytes([0b01011000]), 5)
    blob, layout = encode_blob_with_layout(m, lut_bits=0)
    assert len(blob) == 160 == layout.total
    assert blob.hex() == EXPECTED_HEX


def test_worked_example_arithmetic():
    """The numbers the docs derive by hand, from the formulas of docs/format.md."""
    x = np.array([132, 0, 0, 130]) - 128
    w = np.array([[-3, 0, 0, 5], [0, 0, 0, -3]])
    acc = np.array([10, -7]) + w @ (x + 128)
    assert acc.tolist() == [264, -397]
    y = (acc * 2**30 + 2**30) >> 31
    assert y.tolist() == [132, -198]
    assert np.clip(y - 128, -128, 127).tolist() == [4, -128]


EXPECTED_HEX = (
    "4d434443" "0100" "0100" "a0000000" "dd b3 88 13"  # header: magic, version, n_layers, bytes, crc
    "0100" "0100" "0400" "0200" "08000000" "01" "000000"  # in 1x1x4, out_len 2, arena 8, rounding
    "02 02 01 00" "0100 0100 0400" "0200 0100 0100"  # FC, HUFFMAN_SPARSE, b=1; shapes
    "000000000000" "80 80 80 7f" "1f 00" "00000040"  # no kernel; zps, clamp; shift 31, mult 2^30
    "05000000" "60000000" "64000000" "6c000000" "88000000" "0200" "00000000000000000000"
    "fd050000"  # codebook [-3, 5] + pad @96
    "0a000000 f9ffffff"  # bias [10, -7] @100
    "02 00 0300 08000000" "0100 0200" "0200 0000 0100" "0000" "9a000000 00000000"  # weights @108
    "01 00 0200 05000000" "0200" "0000 0100" "0000" "58000000 00000000"  # index @136
).replace(" ", "")


def test_worked_example_simulated():
    from mcu_dc.core.simulator import simulate

    out = simulate(example_model(), np.array([132, 0, 0, 130], dtype=np.uint8))
    assert out.reshape(-1).tolist() == [4, -128]
