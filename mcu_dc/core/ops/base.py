"""The op registry's interface: what every op defines once, on the Python side.

An op module holds the op's IR dataclass and an :class:`OpSpec` (shape inference,
parameter checks, scratch size, simulation, packing to and from its 64-byte descriptor
and sections) and registers it with :func:`register`. The blob writer and reader, the
simulator, the arena planner and the tests walk :data:`REGISTRY`; none of them names an
op. ``docs/adding_an_op.md`` says how to add one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mcu_dc.core.qmath import Op
from mcu_dc.errors import ConfigError

Shape = tuple[int, int, int]


class SectionWriter(Protocol):
    """Appends a section to the blob (padded to 4); returns its absolute offset."""

    def put(self, data: bytes) -> int: ...


@dataclass(frozen=True)
class PackOptions:
    max_code_len: int = 12
    lut_bits: int = 6


@dataclass
class SectionReader:
    """Bounds-checked access to a blob's sections, for unpacking."""

    data: bytes
    blob_bytes: int
    where: str

    def span(self, off: int, n: int, what: str) -> None:
        from mcu_dc.errors import FormatError

        if off <= 0 or off % 4 or off + n > self.blob_bytes:
            raise FormatError(
                f"{self.where}: {what} at byte offset {off} ({n} bytes) lies outside the blob or is unaligned"
            )


@dataclass(frozen=True)
class IO:
    """An op's tensors as the tensor table gives them (for unpacking)."""

    in_shapes: list[Shape]
    in_zps: list[int]
    out_shape: Shape
    out_zp: int


class OpSpec:
    """One op, defined once. Subclasses set ``code``, ``ir_type`` and override the methods."""

    code: ClassVar[Op]
    ir_type: ClassVar[type]
    n_inputs: ClassVar[int] = 1
    has_weights: ClassVar[bool] = False

    def out_shape(self, op: Any) -> Shape:
        """Every IR op carries its output shape as a property; a spec overrides this only if not."""
        return tuple(op.out_shape)  # type: ignore[return-value]

    def in_shapes(self, op: Any) -> list[Shape]:
        return [tuple(op.in_shape)]  # type: ignore[list-item]

    def in_zps(self, op: Any) -> list[int]:
        return [int(op.in_zp)]

    def out_zp(self, op: Any) -> int:
        return int(op.out_zp)

    def scratch_bytes(self, op: Any) -> int:
        return 0

    def macs(self, op: Any) -> int:
        return 0

    def check(self, op: Any, where: str) -> None:
        """Refuse parameters the format cannot hold (raises ConfigError)."""

    def simulate(self, op: Any, xs: list[np.ndarray]) -> np.ndarray:
        """Int64 tensors (N, C, H, W) in, int64 (N, C, H, W) out: exactly the C kernel's integers."""
        raise NotImplementedError

    def pack(self, op: Any, w: SectionWriter, opts: PackOptions) -> tuple[dict[str, int], Any]:
        """Descriptor fields (not the wiring) and the op's byte accounting."""
        raise NotImplementedError

    def unpack(self, f: dict[str, Any], r: SectionReader, name: str, io: IO) -> Any:
        """The IR op from its descriptor fields; ``io`` gives its tensors' shapes and zero points."""
        raise NotImplementedError


REGISTRY: dict[Op, OpSpec] = {}
_BY_TYPE: dict[type, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    if spec.code in REGISTRY:
        raise AssertionError(f"op {spec.code!r} registered twice")
    REGISTRY[spec.code] = spec
    _BY_TYPE[spec.ir_type] = spec
    return spec


def spec_of(op: Any) -> OpSpec:
    try:
        return _BY_TYPE[type(op)]
    except KeyError:
        raise ConfigError(f"{type(op).__name__} is not a registered mcu_dc op") from None


# --------------------------------------------------------------------------- shared helpers


def pads4(padding: tuple[int, int], padding_end: tuple[int, int] | None) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from the IR's ``padding`` (top, left) and ``padding_end``."""
    pt, pl = int(padding[0]), int(padding[1])
    pb, pr = (pt, pl) if padding_end is None else (int(padding_end[0]), int(padding_end[1]))
    return pt, pl, pb, pr


def conv_out_hw(
    h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int], p4: tuple[int, ...]
) -> tuple[int, int]:
    pt, pl, pb, pr = p4
    return (h + pt + pb - kernel[0]) // stride[0] + 1, (w + pl + pr - kernel[1]) // stride[1] + 1


def windows(
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    p4: tuple[int, int, int, int],
    fill: int = 0,
) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) windows of (N, C, H, W) ``x`` padded with ``fill``."""
    pt, pl, pb, pr = p4
    if any(p4):
        x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    kh, kw = kernel
    sh, sw = stride
    oh = (x.shape[2] - kh) // sh + 1
    ow = (x.shape[3] - kw) // sw + 1
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))
    return win[:, :, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]


def maxpool(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    return windows(x, kernel, stride, (0, 0, 0, 0)).max(axis=(4, 5))


def check_geometry(where: str, **vals: int) -> None:
    for nm, v in vals.items():
        if not 0 <= int(v) <= 255:
            raise ConfigError(f"{where}: {nm}={v} does not fit the descriptor's byte (0..255)")


def check_window(where: str, in_shape: Shape, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
    """A pool's input shape, kernel (u16) and stride (u8) fit the descriptor."""
    check_shape(where, tuple(in_shape))
    kh, kw = kernel
    sh, sw = stride
    if min(kh, kw, sh, sw) < 1 or kh > 0xFFFF or kw > 0xFFFF:
        raise ConfigError(f"{where}: kernel {kernel} and stride {stride} must be positive")
    check_geometry(where, stride_h=sh, stride_w=sw)


def check_shape(where: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 3 or min(shape) <= 0 or max(shape) > 0xFFFF:
        raise ConfigError(
            f"{where}: tensor shape {tuple(shape)} must be 3 positive dimensions of at most 65535"
        )
