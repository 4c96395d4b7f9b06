"""The worked example at the end of docs/format.md, checked byte for byte."""

from pathlib import Path

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
    assert len(blob) == 208 == layout.total
    assert blob == documented_blob()


def documented_blob() -> bytes:
    """The hex dump of docs/format.md's worked example (offset, 16 bytes, comment per line)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "format.md").read_text(encoding="utf-8")
    dump = text.split("The blob\n(208 bytes):", 1)[1].split("```", 2)[1]
    out = bytearray()
    for line in dump.strip().splitlines():
        off, rest = line.split(None, 1)
        assert int(off) == len(out), line
        out += bytes.fromhex(" ".join(rest.split()[:16]))
    return bytes(out)


def test_documented_layout_tables_have_not_drifted():
    from mcu_dc.deploy.cheaders import doc_path, format_doc

    text = doc_path().read_text(encoding="utf-8")
    assert text == format_doc(text), (
        "docs/format.md field tables drifted: run `python -m mcu_dc.deploy.cheaders`"
    )


def test_worked_example_arithmetic():
    """The numbers the docs derive by hand, from the formulas of docs/format.md."""
    x = np.array([132, 0, 0, 130]) - 128
    w = np.array([[-3, 0, 0, 5], [0, 0, 0, -3]])
    acc = np.array([10, -7]) + w @ (x + 128)
    assert acc.tolist() == [264, -397]
    y = (acc * 2**30 + 2**30) >> 31
    assert y.tolist() == [132, -198]
    assert np.clip(y - 128, -128, 127).tolist() == [4, -128]


def test_worked_example_simulated():
    from mcu_dc.core.simulator import simulate

    out = simulate(example_model(), np.array([132, 0, 0, 130], dtype=np.uint8))
    assert out.reshape(-1).tolist() == [4, -128]
