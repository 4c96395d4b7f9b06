"""Random valid integer models, for property tests, fuzzing a toolchain and benchmarks.

Each model is a legal chain under docs/format.md with random shapes, sparsity (0–100 %,
empty rows and columns, gaps longer than the index range), codebooks of 1..256 entries,
zero points and requantization parameters. Deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from mcu_dc.core.ir import FC, Conv2D, Encoding, IntegerModel, Layer, MaxPool2D, Requant


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

    def enc() -> Encoding:
        return encoding or Encoding(int(rng.choice([Encoding.HUFFMAN_SPARSE, Encoding.DENSE_INT8])))

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
            amin, amax, encoding=enc(), index_bits=int(rng.integers(1, 9)),
        )  # fmt: skip
        layers.append(layer)
        shape, zp = layer.out_shape, out_zp
    return IntegerModel(layers, in_shape, 1 / 255, 0.05, zp, name=f"rand{seed}")
