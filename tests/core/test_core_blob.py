import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcu_dc.core.blob import (
    FORMAT_VERSION,
    decode_blob,
    encode_blob,
    encode_blob_with_layout,
    layer_byte_breakdown,
)
from mcu_dc.core.ir import Encoding, dense_weights
from mcu_dc.core.model_file import CompressedModel, load
from mcu_dc.core.random_models import random_model
from mcu_dc.errors import FormatError


def same_model(a, b):
    assert a.input_shape == b.input_shape and len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers, strict=True):
        assert x.op == y.op and x.in_shape == y.in_shape and x.out_shape == y.out_shape
        if hasattr(x, "assign"):
            assert (dense_weights(x) == dense_weights(y)).all()
            assert (x.bias == y.bias).all()
            assert x.requant == y.requant
            assert (x.in_zp, x.out_zp, x.act_min, x.act_max) == (y.in_zp, y.out_zp, y.act_min, y.act_max)
            if x.encoding == Encoding.HUFFMAN_SPARSE:
                assert (x.assign == y.assign).all() and (x.codebook == y.codebook).all()


@given(st.integers(0, 10_000), st.integers(0, 12), st.integers(9, 15))  # 257 symbols need 9 bits
@settings(max_examples=150, deadline=None)
def test_blob_round_trip_and_accounting(seed, lut_bits, max_len):
    m = random_model(seed)
    blob, layout = encode_blob_with_layout(m, max_code_len=max_len, lut_bits=lut_bits)
    assert layout.total == len(blob)
    parts = layer_byte_breakdown(m, max_code_len=max_len, lut_bits=lut_bits)
    assert sum(part["total"] for part in parts) == len(blob)
    assert len(blob) % 4 == 0
    same_model(m, decode_blob(blob))


def test_encoding_is_deterministic():
    m = random_model(7)
    assert encode_blob(m) == encode_blob(random_model(7))


def test_file_round_trip(tmp_path):
    cm = CompressedModel(random_model(3), {"dataset": "digits", "accuracy": {"float": 0.9}})
    path = cm.save(tmp_path / "m.mcudc")
    back = load(path)
    assert back.blob == cm.blob and back.meta["accuracy"] == {"float": 0.9}
    assert back.model_hash == zlib.crc32(cm.blob[16:]) & 0xFFFFFFFF
    same_model(cm.model, back.model)
    assert not list(tmp_path.glob(".*.tmp"))


def _resign(blob: bytearray) -> bytes:
    struct.pack_into("<I", blob, 12, zlib.crc32(bytes(blob[16:])) & 0xFFFFFFFF)
    return bytes(blob)


def test_reader_refuses_bad_input(tmp_path):
    cm = CompressedModel(random_model(11))
    data = cm.to_bytes()
    cases = {
        "magic": b"NOPE" + data[4:],
        "truncated": data[: len(cm.blob) - 8],
        "crc": data[:40] + bytes([data[40] ^ 0xFF]) + data[41:],
        "meta-truncated": data[:-3],
    }
    newer = bytearray(cm.blob)
    struct.pack_into("<H", newer, 4, FORMAT_VERSION + 1)
    cases["newer"] = _resign(newer) + data[len(cm.blob) :]
    bad_op = bytearray(cm.blob)
    op_off = struct.unpack_from("<I", bad_op, 32)[0]  # the header's op_table_off
    bad_op[op_off] = 99
    cases["op"] = _resign(bad_op) + data[len(cm.blob) :]
    messages = {}
    for name, bad in cases.items():
        p = tmp_path / f"{name}.mcudc"
        p.write_bytes(bad)
        with pytest.raises(FormatError) as err:
            load(p)
        messages[name] = str(err.value)
    assert "magic" in messages["magic"]
    assert "truncated" in messages["truncated"]
    assert "CRC" in messages["crc"]
    assert "newer" in messages["newer"] and "upgrade" in messages["newer"]
    assert "unknown op code 99" in messages["op"] and f"byte offset {op_off}" in messages["op"]
    assert "truncated" in messages["meta-truncated"]
    with pytest.raises(FormatError, match="no such model file"):
        load(tmp_path / "missing.mcudc")


def test_fully_pruned_layer_encodes():
    m = random_model(5, conv=False, encoding=Encoding.HUFFMAN_SPARSE)
    m.layers[0].assign[:] = -1
    back = decode_blob(encode_blob(m))
    assert (back.layers[0].assign == -1).all()


def test_dense_is_much_larger_for_sparse_models():
    m = random_model(21, conv=False, encoding=Encoding.HUFFMAN_SPARSE, max_dim=40)
    for layer in m.layers:
        layer.assign[np.random.default_rng(0).random(layer.assign.shape) > 0.05] = -1
    sparse = len(encode_blob(m))
    for layer in m.layers:
        layer.encoding = Encoding.DENSE_INT8
    assert len(encode_blob(m)) > sparse


def test_code_length_limit_too_small_names_the_layer():
    from mcu_dc.errors import ConfigError

    m = random_model(5, conv=False, encoding=Encoding.HUFFMAN_SPARSE)
    layer = m.layers[0]
    layer.codebook = np.arange(-100, 100, dtype=np.int8)
    layer.assign[:] = np.arange(layer.assign.size).reshape(layer.assign.shape) % 200
    with pytest.raises(ConfigError, match=r"op 0 \(fc0, FC\).*maximum code length"):
        encode_blob(m, max_code_len=4)
