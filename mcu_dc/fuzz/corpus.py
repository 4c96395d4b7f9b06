"""Seed corpora for the C harnesses, generated (never committed as blobs).

* model seeds: small random graphs (every registered op, both encodings, both input
  kinds) written as format version 2 blobs, and random chains rewritten as format
  version 1 blobs (:func:`v1_blob`), so the fuzzers start from inputs the runtime accepts;
* protocol seeds: request streams (HELLO, PING, INFER of the right length, BYE, a bad CRC,
  garbage between frames, a frame cut short) for the protocol model :func:`proto_model`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mcu_dc.core import layout as L
from mcu_dc.core.blob import encode_blob, with_crc
from mcu_dc.core.ir import Conv2D, IntegerModel
from mcu_dc.core.planner import v1_plan
from mcu_dc.core.qmath import Encoding
from mcu_dc.core.random_models import random_graph, random_model
from mcu_dc.device import protocol as P

V1_OPS = {"Conv2D": 1, "FC": 2, "MaxPool2D": 3}
_SECTION_KEYS = ("codebook_off", "bias_off", "weights_off", "index_off")


def v1_blob(model: IntegerModel) -> bytes | None:
    """The format version 1 blob of a chain of CONV2D / FC / MAXPOOL2D layers, or None.

    Built from the version 2 blob: its sections are copied unchanged behind a version 1
    header and layer table, and every section offset moves by the difference in table
    sizes (a multiple of 4, so alignment holds). None when the model is not a v1 chain
    (other ops, a fused pool, asymmetric padding, a kernel or stride over 255).
    """
    v2 = encode_blob(model)
    h = L.HEADER.unpack_from(v2)
    n = h["n_ops"]
    if n != len(model.layers) or any(type(op).__name__ not in V1_OPS for op in model.layers):
        return None
    if any(int(getattr(op, "encoding", 0)) > Encoding.HUFFMAN_SPARSE for op in model.layers):
        return None  # COLUMN_SPARSE came with format version 2
    tensors = [
        L.TENSOR.unpack_from(v2, h["tensor_table_off"] + t * L.TENSOR.size) for t in range(h["n_tensors"])
    ]
    ops = [L.OP.unpack_from(v2, h["op_table_off"] + i * L.OP.size) for i in range(n)]
    v2_end = h["op_table_off"] + n * L.OP.size
    v1_end = L.HEADER_V1.size + n * L.LAYER_V1.size
    delta = v2_end - v1_end
    out = bytearray(v1_end) + bytearray(v2[v2_end:])
    for i, d in enumerate(ops):
        if d["input0"] != i or d["output"] != i + 1 or d["pool_kh"]:
            return None
        if d["pad_top"] != d["pad_bottom"] or d["pad_left"] != d["pad_right"]:
            return None
        if max(d["kernel_h"], d["kernel_w"]) > 255:
            return None
        ti, to = tensors[i], tensors[i + 1]
        values = {
            k: d[k] for k in ("op", "encoding", "index_bits", "kernel_h", "kernel_w", "stride_h", "stride_w")
        }
        values.update(
            in_c=ti["c"], in_h=ti["h"], in_w=ti["w"], out_c=to["c"], out_h=to["h"], out_w=to["w"],
            pad_h=d["pad_top"], pad_w=d["pad_left"], in_zp=ti["zp"], out_zp=to["zp"],
            act_min=d["act_min"], act_max=d["act_max"], shift=d["shift"], multiplier=d["multiplier"],
            n_entries=d["n_entries"], codebook_len=d["codebook_len"],
        )  # fmt: skip
        for key in _SECTION_KEYS:
            values[key] = d[key] - delta if d[key] else 0
        L.LAYER_V1.pack_into(out, L.HEADER_V1.size + i * L.LAYER_V1.size, values)
    c, hh, w = model.input_shape
    L.HEADER_V1.pack_into(
        out, 0,
        {"magic": b"MCDC", "format_version": 1, "n_layers": n, "blob_bytes": len(out), "crc32": 0,
         "in_c": c, "in_h": hh, "in_w": w, "out_len": model.output_len,
         "arena_bytes": v1_plan(model).arena_bytes, "rounding": 1},
    )  # fmt: skip
    return with_crc(out)


def model_seeds(count: int, seed: int) -> list[bytes]:
    """``count`` valid blobs: a third version 1 chains, a third version 2 graphs over every op, a
    third version 2 FC chains, column-sparse wherever their codebook allows it; every eighth a graph
    whose weight ops with at most 2 codebook entries are TERNARY or BINARY (:func:`bitplane_graph`)."""
    out: list[bytes] = []
    i = 0
    while len(out) < count:
        s = seed * 100_003 + i
        i += 1
        if i % 8 == 7:
            out.append(encode_blob(bitplane_graph(s)))
            continue
        if i % 3 == 0:
            blob = v1_blob(random_model(s, max_dim=6))
            if blob is None:
                continue
        elif i % 3 == 1:
            blob = encode_blob(random_graph(s, max_ops=6, max_dim=8, max_channels=4))
        else:  # FC chains, column-sparse wherever the codebook allows it (k <= 16)
            blob = encode_blob(random_model(s, conv=False, max_dim=8, encoding=Encoding.COLUMN_SPARSE))
        out.append(blob)
    return out


def bitplane_graph(seed: int) -> IntegerModel:
    """A small random graph holding at least one TERNARY or BINARY weight op (first seed from ``seed`` on)."""
    for s in range(seed, seed + 1000):
        for enc in (Encoding.TERNARY, Encoding.BINARY):
            m = random_graph(s, max_ops=5, max_dim=8, max_channels=4, encoding=enc)
            if any(int(getattr(op, "encoding", 0)) == enc for op in m.layers):
                return m
    raise AssertionError("no bit-plane graph found")  # not reached: a k <= 2 op is common


def proto_model(seed: int = 0) -> IntegerModel:
    """The model the protocol harness serves: a small conv + FC chain (49 input bytes)."""
    for s in range(seed, seed + 1000):
        m = random_model(s, conv=True, max_dim=7)
        if any(isinstance(op, Conv2D) for op in m.layers) and 8 <= m.input_len <= 256 and m.output_len <= 64:
            return m
    raise AssertionError("no protocol model found")  # not reached: many seeds qualify


def _frame(kind: int, seq: int, payload: bytes) -> bytes:
    return P.encode_frame(kind, seq, payload)


def proto_seeds(model: IntegerModel, seed: int) -> list[bytes]:
    """Request streams (each prefixed by the harness's control byte)."""
    rng = np.random.default_rng(seed)
    x = bytes(rng.integers(0, 256, size=model.input_len, dtype=np.uint8))
    hello = _frame(P.MsgType.HELLO, 1, b"")
    infer = _frame(P.MsgType.INFER, 2, x)
    ping = _frame(P.MsgType.PING, 3, bytes(range(40)))
    bye = _frame(P.MsgType.BYE, 4, b"")
    bad_crc = bytearray(infer)
    bad_crc[-1] ^= 0x5A
    streams = [
        hello,
        hello + infer,
        infer + infer + ping,
        b"\x00\xa5\x13garbage" + hello + b"\xa5\xa5\x5a" + ping,
        bytes(bad_crc) + infer,
        infer[: len(infer) // 2] + hello,  # cut short: times out, then HELLO
        _frame(P.MsgType.INFER, 5, x[:-1]) + _frame(0x42, 6, b"?"),  # bad length, unknown type
        hello + infer + bye + ping,  # nothing after BYE is read
    ]
    controls = [0x00, 0xC3, 0x71, 0x12]  # no idling; long and short timeouts with idle bursts
    return [bytes([controls[i % len(controls)]]) + s for i, s in enumerate(streams)]


def write_corpus(directory: Path, seeds: list[bytes]) -> int:
    """Write each seed as a file named by its sha1 (libFuzzer's convention); return the count."""
    directory.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        (directory / hashlib.sha1(s).hexdigest()).write_bytes(s)
    return len(seeds)
