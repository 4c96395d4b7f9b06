"""Reference outputs for the MLPerf Tiny import tests: the LiteRT interpreter on the ``.tflite`` files.

``float_tflite`` turns a hybrid model (int8 weights with scales, float activations) into a plain
float model whose weights are the dequantized int8 values, by rewriting the flatbuffer with the
schema classes LiteRT ships. LiteRT's hybrid kernels quantize each activation tensor on the fly
(dynamic range), so only the rewritten model is a float reference of what the weights say.
"""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Any

import numpy as np


def interpreter(path: Path | None = None, content: bytes | None = None) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path)) if path is not None else Interpreter(model_content=content)
    it.allocate_tensors()
    return it


def run(it: Any, x: np.ndarray) -> np.ndarray:
    """One NHWC (or vector) input through a float-input interpreter; its float output."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], x.astype(inp["dtype"]).reshape(inp["shape"]))
    it.invoke()
    return np.asarray(it.get_tensor(out["index"]), dtype=np.float32).copy()


def float_tflite(path: Path) -> bytes:
    """``path`` with every int8 constant tensor replaced by its dequantized float32 values."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    buf = path.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(buf, 0)
    for sub in model.subgraphs:
        for t in sub.tensors:
            data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
            q = t.quantization
            if (
                t.type != schema.TensorType.INT8
                or data is None
                or len(data) == 0
                or q is None
                or q.scale is None
            ):
                continue
            w = np.frombuffer(bytes(np.asarray(data, dtype=np.uint8)), dtype=np.int8).reshape(t.shape)
            scale = np.asarray(q.scale, dtype=np.float64)
            zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0], dtype=np.float64)
            shape = [1] * w.ndim
            if scale.size > 1:
                shape[q.quantizedDimension] = scale.size
            zp = zp.reshape(shape) if zp.size == scale.size else zp[:1]
            deq = ((w.astype(np.float64) - zp) * scale.reshape(shape)).astype("<f4")
            model.buffers[t.buffer].data = np.frombuffer(deq.tobytes(), dtype=np.uint8)
            t.type = schema.TensorType.FLOAT32
            t.quantization = None
    builder = flatbuffers.Builder(len(buf) * 2)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def cifar10_test_images(path: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` CIFAR-10 test images, (N, 32, 32, 3) uint8, and labels from test_batch.bin.xz."""
    record = 3073
    with lzma.open(path, "rb") as f:
        raw = np.frombuffer(f.read(record * count), dtype=np.uint8).reshape(count, record)
    return raw[:, 1:].reshape(count, 3, 32, 32).transpose(0, 2, 3, 1).copy(), raw[:, 0].astype(np.int64)
