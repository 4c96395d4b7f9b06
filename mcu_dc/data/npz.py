"""Your own data: one ``.npz`` file (``np.savez`` or ``np.savez_compressed``), read without
unpickling anything (``allow_pickle=False``).

Required arrays: ``x_train``, ``y_train``, ``x_test``, ``y_test`` (the targets may be left
out for task ``reconstruction``: an autoencoder's targets are its inputs).

Inputs ``x_*`` (train and test must have the same dtype and the same shape per sample):

* ``uint8``: images, raw bytes. The device takes the bytes; the float model sees
  ``x * input_scale`` (``input_scale`` 1/255 unless given).
* float (16, 32 or 64 bits): features, kept as float32; the device takes them quantized to
  int8 with the model's calibrated input scale and zero point.
* any other dtype (int64 pixels, bool, strings, objects) is refused: convert with
  ``x.astype(np.uint8)`` (bytes 0..255) or ``x.astype(np.float32)``.

Shapes, to the model's ``(N, C, H, W)``:

* ``(N,)`` → ``(N, 1, 1, 1)``; ``(N, F)`` → ``(N, F, 1, 1)``, a vector of F features;
* ``(N, A, B)`` → ``(N, 1, A, B)``: a one-channel 2-D map (a grey image, a spectrogram or
  MFCC such as keyword spotting's 49x10). A model that flattens its input sees the values in
  the same order as a flattened ``(A, B)``;
* ``(N, C, H, W)`` as is, or ``(N, H, W, C)`` (channels last, TensorFlow's layout),
  transposed to ``(N, C, H, W)``. The layout is detected from the per-sample shape: channels
  last when the last dimension is 1, 3 or 4 and the second is not (``(N, 32, 32, 3)`` is
  NHWC, ``(N, 3, 32, 32)`` NCHW); anything else, including ambiguous shapes such as
  ``(N, 3, 8, 4)``, is read as channels first. A ``layout`` entry (``"nchw"`` or ``"nhwc"``)
  or the ``layout=`` argument forces it;
* more than 4 dimensions are refused.

Targets ``y_*`` and the task (the ``task=`` argument, else a ``task`` string entry in the
file, else the targets' dtype):

* integer (or bool) targets → ``classification``: one class index per sample, shape
  ``(N,)`` (or ``(N, 1)``); ``num_classes`` is the largest label + 1 over both splits unless a
  ``num_classes`` entry says otherwise. Float labels are accepted only when the task is
  given as classification and every value is a whole number;
* float targets → ``regression``, any shape per sample (flattened; the model outputs that
  many values);
* ``reconstruction`` only when asked for (``task``): float targets with the inputs' size
  per sample, or no targets at all (the model reconstructs its inputs). Optional
  ``anomaly_test`` (and ``anomaly_train``): 0/1 per sample, 1 = anomalous, for the AUC of the
  reconstruction error.

Other optional entries: ``input_scale`` (a number, uint8 images only), ``class_names``
(strings, one per class). Any other array in the file is ignored (and never read).

Every problem is a one-paragraph :class:`~mcu_dc.errors.DataError` naming the file and the
array: a missing array (listing those present), mismatched lengths, NaN or inf (the first
bad sample), a wrong dtype, a file that is not a valid ``.npz``, train and test shapes that
differ.
"""

from __future__ import annotations

import math
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.lib.format as npformat

from mcu_dc.core.qmath import TASKS
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import DataError

REQUIRED = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL = ("task", "anomaly_train", "anomaly_test", "num_classes", "class_names", "input_scale", "layout")
LAYOUTS = ("auto", "nchw", "nhwc")
_CHANNELS = (1, 3, 4)
_SAVE_HINT = "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
MAX_ARRAY_BYTES = 1 << 34  # 16 GiB: one array's data, checked before it is allocated
_DEFLATE_MAX_RATIO = 1032  # deflate expands one compressed byte into at most 1032 bytes
_MAX_NDIM = 32
_CHUNK = 1 << 20
# What a damaged zip, member or compressed stream raises (the zipfile, zlib and numpy header readers).
_ZIP_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, struct.error,
    NotImplementedError,  # a newer zip version or compression method
)  # fmt: skip
# numpy's .npy header parser (ast.literal_eval, tokenize for headers written by Python 2, then its own
# checks of the dict: TypeError sorting keys that are not all strings). The header is at most numpy's
# 10,000 characters, so RecursionError and MemoryError here are Python's parser refusing a deeply
# nested expression ("-" * 5000 + "1", "lambda: " * 1250), not an allocation.
_HEADER_ERRORS = (
    ValueError, SyntaxError, EOFError, struct.error, tokenize.TokenError, TypeError, RecursionError,
    MemoryError,
)  # fmt: skip
_MAX_HEADER = 10_000  # numpy's default: a longer .npy header is refused before it is parsed


def is_npz_path(ref: str | os.PathLike[str]) -> bool:
    """True for a path ending in ``.npz`` or naming an existing file."""
    return str(ref).lower().endswith(".npz") or Path(ref).is_file()


def resolve_npz(ref: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The file ``ref`` names (relative to the current folder, else to ``data_dir``)."""
    p = Path(ref)
    if p.is_file():
        return p
    if data_dir is not None and not p.is_absolute() and (Path(data_dir) / p).is_file():
        return Path(data_dir) / p
    where = f" (nor in {data_dir})" if data_dir is not None else ""
    raise DataError(
        f"dataset file {str(ref)!r} not found{where}; pass the path of a .npz file holding x_train, y_train, "
        f"x_test and y_test (made with {_SAVE_HINT})"
    )


# --------------------------------------------------------------------------- reading


def _not_npz(path: Path, why: str) -> DataError:
    return DataError(
        f"{path}: not a valid .npz file ({why}). A dataset file is a zip of .npy arrays as written by "
        f"{_SAVE_HINT} or np.savez_compressed; pickled Python objects are never loaded. Re-save the "
        "arrays with np.savez (plain numeric arrays, strings for task and class names)"
    )


def read_arrays(path: Path, file: BinaryIO | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """The known arrays of ``path`` (:data:`REQUIRED` and :data:`OPTIONAL` present) and every name in it.

    Nothing is allocated before it is validated: each member's ``.npy`` header (magic, version,
    ``descr``, ``fortran_order``, ``shape``) is read first, object dtypes are refused, and
    ``prod(shape) * itemsize`` must be exactly the member's data bytes (its uncompressed size in the
    zip directory less its header, itself bounded by the member's compressed size and
    :data:`MAX_ARRAY_BYTES`). ``file`` (an open binary file such as ``io.BytesIO``) is read instead
    of ``path``, which then only names the data in messages.
    """
    if file is not None:
        return _read_npz(file, path)
    try:
        with open(path, "rb") as f:
            return _read_npz(f, path)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}; check the path and permissions.") from exc


def _read_npz(f: BinaryIO, path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    head = f.read(len(npformat.MAGIC_PREFIX))
    f.seek(0)
    if head == npformat.MAGIC_PREFIX:
        raise _not_npz(path, f"it holds a single {_npy_dtype(f)} array, the .npy format")
    try:
        zf = zipfile.ZipFile(f)
    except _ZIP_ERRORS as exc:
        raise _not_npz(path, f"it is not a zip of .npy arrays: {type(exc).__name__}: {exc}") from exc
    with zf:
        members = zf.namelist()
        names = [m[:-4] if m.endswith(".npy") else m for m in members]
        arrays: dict[str, np.ndarray] = {}
        for key in (*REQUIRED, *OPTIONAL):
            member = key if key in members else f"{key}.npy" if f"{key}.npy" in members else None
            if member is not None:
                arrays[key] = _read_member(zf, zf.getinfo(member), key, path)
    return arrays, names


def _npy_dtype(f: BinaryIO) -> str:
    """The dtype a lone ``.npy`` file's header names (for the message), or ``"?"``."""
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            return str(npformat.read_array_header_1_0(f)[2])
        if version == (2, 0):
            return str(npformat.read_array_header_2_0(f)[2])
    except _HEADER_ERRORS:
        pass
    return "?"


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str, path: Path) -> np.ndarray:
    """One array, its header validated before its data is allocated."""
    where = f"{path}: array {key!r}"
    loc = f"zip member {info.filename!r}, local header at byte offset {info.header_offset}"
    if info.flag_bits & 0x1:
        raise DataError(
            f"{where} is encrypted (zip flag bit 0 of {loc}); save the arrays again with np.savez"
        )
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataError(
            f"{where}: zip compression method {info.compress_type} ({loc}) is neither stored (0) nor "
            "deflate (8), the two np.savez and np.savez_compressed write; save the arrays again with np.savez"
        )
    size, packed = info.file_size, info.compress_size
    if info.compress_type == zipfile.ZIP_STORED and size != packed:
        raise DataError(
            f"{where}: the zip directory's uncompressed size {size} differs from its stored size {packed} "
            f"({loc}); the file is corrupt, save the arrays again"
        )
    if size > _DEFLATE_MAX_RATIO * packed + 64:
        raise DataError(
            f"{where}: the zip directory's uncompressed size {size} cannot come from {packed} compressed "
            f"bytes ({loc}); the file is corrupt, save the arrays again"
        )
    if size > MAX_ARRAY_BYTES:
        raise DataError(
            f"{where}: the zip directory's uncompressed size {size} bytes ({loc}) is over the "
            f"{MAX_ARRAY_BYTES}-byte limit for one array; split the data or subsample it"
        )
    try:
        with zf.open(info) as fp:
            try:
                version = npformat.read_magic(fp)
            except ValueError as exc:
                raise DataError(
                    f"{where} is not a .npy array (field 'magic' at byte 0 of {loc}: {exc}); store plain "
                    "numeric arrays (or strings) with np.savez"
                ) from exc
            if version not in ((1, 0), (2, 0)):
                raise DataError(
                    f"{where}: .npy format version {version[0]}.{version[1]} (field 'version' at byte 6 "
                    f"of {loc}) is not 1.0 or 2.0; save the array again with np.savez"
                )
            try:
                read_header = (
                    npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(fp, max_header_size=_MAX_HEADER)
            except _HEADER_ERRORS as exc:
                raise DataError(
                    f"{where}: invalid .npy header (fields 'descr', 'fortran_order', 'shape' from byte 8 "
                    f"of {loc}): {type(exc).__name__}: {_short(exc)}"
                ) from exc
            start = fp.tell()
            if dtype.hasobject:
                raise DataError(
                    f"{where} holds Python objects (dtype {dtype}, .npy header field 'descr' of {loc}), "
                    f"which are never unpickled; store plain numbers (e.g. {key}.astype(np.float32)) or "
                    "strings"
                )
            if dtype.subdtype is not None or dtype.names is not None or dtype.itemsize == 0:
                raise DataError(
                    f"{where}: .npy header field 'descr' ({loc}) gives dtype {dtype}, not one an array of "
                    "numbers or strings has; save the array again with np.savez"
                )
            if len(shape) > _MAX_NDIM or any(d < 0 for d in shape):
                raise DataError(
                    f"{where}: .npy header field 'shape' {shape} ({loc}) is not up to {_MAX_NDIM} "
                    "non-negative sizes; the file is corrupt, save the arrays again"
                )
            count = math.prod(shape)
            need = count * dtype.itemsize
            if need != size - start:
                raise DataError(
                    f"{where}: .npy header field 'shape' {shape} of {dtype} needs {need} bytes of data but "
                    f"the member holds {size - start} after its {start}-byte header (uncompressed size "
                    f"{size} in the zip directory, {loc}); the file is truncated or corrupt, save the "
                    "arrays again"
                )
            raw = np.empty(need, dtype=np.uint8)
            got = 0
            while got < need:
                chunk = fp.read(min(_CHUNK, need - got))
                if not chunk:
                    break
                raw[got : got + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
                got += len(chunk)
            if got != need or fp.read(1):
                raise DataError(
                    f"{where}: the member's data ends at its byte {start + got}, not at its size {size} in "
                    f"the zip directory ({loc}); the file is truncated or corrupt, save the arrays again"
                )
    except _ZIP_ERRORS as exc:
        raise DataError(
            f"{where} is corrupt or truncated ({loc}): {type(exc).__name__}: {_short(exc)}. A dataset "
            f"file is a zip of .npy arrays as written by {_SAVE_HINT}; save the arrays again"
        ) from exc
    a = raw.view(dtype)
    if dtype.kind == "U" and a.size:  # UCS-4 code units; numpy cannot make a str of one past U+10FFFF
        units = a.view(np.dtype(np.uint32).newbyteorder(dtype.byteorder))
        if int(units.max()) > 0x10FFFF:
            first = int(np.argmax(units > 0x10FFFF))
            raise DataError(
                f"{where}: character {first} of its {dtype} data is {int(units[first]):#x}, beyond Unicode's "
                f"U+10FFFF ({loc}); the file is corrupt, save the arrays again"
            )
    return a.reshape(shape[::-1]).T if fortran else a.reshape(shape)


def _short(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return msg if len(msg) <= 200 else msg[:200] + "..."


def _require(
    arrays: dict[str, np.ndarray], names: list[str], key: str, path: Path, note: str = ""
) -> np.ndarray:
    if key in arrays:
        return arrays[key]
    held = ", ".join(names) if names else "no arrays"
    raise DataError(
        f"{path}: no array {key!r} in the file (it holds: {held}). A dataset .npz needs x_train, y_train, "
        f"x_test and y_test, made with {_SAVE_HINT}{note}"
    )


def _string(arrays: dict[str, np.ndarray], key: str, path: Path) -> str | None:
    if key not in arrays:
        return None
    a = arrays[key]
    if a.ndim != 0 or a.dtype.kind not in "US":
        raise DataError(
            f"{path}: {key!r} must be one string (np.savez(..., {key}='...')), got {a.dtype} {a.shape}"
        )
    v = a[()]
    try:
        text = v.decode() if isinstance(v, bytes) else str(v)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: {key!r} is not a UTF-8 string ({exc}); store it as np.savez(..., {key}='...')"
        ) from exc
    return text.strip().lower()


def _number(arrays: dict[str, np.ndarray], key: str, path: Path, kinds: str) -> Any:
    if key not in arrays:
        return None
    a = arrays[key]
    if a.size != 1 or a.dtype.kind not in kinds:
        raise DataError(f"{path}: {key!r} must be a single number, got {a.dtype} {a.shape}")
    return a.reshape(()).item()


# --------------------------------------------------------------------------- checks


def _first_bad(a: np.ndarray) -> int | None:
    bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def _check_finite(a: np.ndarray, key: str, path: Path) -> None:
    first = _first_bad(a)
    if first is not None:
        count = int((~np.isfinite(a)).sum())
        raise DataError(
            f"{path}: {key} holds {count} NaN or infinite value(s), the first in sample {first}; remove or "
            "impute those samples before saving (a NaN poisons every weight it touches)"
        )


def _input_kind(x: np.ndarray, key: str, path: Path) -> str:
    if x.dtype == np.uint8:
        return "uint8 images"
    if x.dtype.kind == "f":
        return "float features"
    hint = " (for pixels 0..255 use x.astype(np.uint8))" if x.dtype.kind in "iu" else ""
    raise DataError(
        f"{path}: {key} has dtype {x.dtype}; inputs must be uint8 images (raw bytes) or float features. "
        f"Convert with {key}.astype(np.uint8) or {key}.astype(np.float32){hint}"
    )


def channels_last(per_sample: tuple[int, ...], layout: str = "auto") -> bool:
    """Whether a 4-D input with per-sample shape ``per_sample`` (3 sizes) is channels last."""
    if layout != "auto":
        return layout == "nhwc"
    return len(per_sample) == 3 and per_sample[2] in _CHANNELS and per_sample[0] not in _CHANNELS


def to_nchw(x: np.ndarray, layout: str = "auto") -> np.ndarray:
    """``x`` ``(N, ...)`` as ``(N, C, H, W)`` by the rules of this module (see its docstring)."""
    n = len(x)
    if x.ndim == 1:
        return x.reshape(n, 1, 1, 1)
    if x.ndim == 2:
        return x.reshape(n, x.shape[1], 1, 1)
    if x.ndim == 3:
        return x.reshape(n, 1, x.shape[1], x.shape[2])
    if channels_last(tuple(x.shape[1:]), layout):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return x


def _inputs(
    arrays: dict[str, np.ndarray], names: list[str], path: Path, layout: str, note: str
) -> tuple[np.ndarray, np.ndarray]:
    x_tr = _require(arrays, names, "x_train", path, note)
    x_te = _require(arrays, names, "x_test", path, note)
    kinds = [_input_kind(x, k, path) for x, k in ((x_tr, "x_train"), (x_te, "x_test"))]
    if kinds[0] != kinds[1]:
        raise DataError(
            f"{path}: x_train holds {kinds[0]} ({x_tr.dtype}) but x_test {kinds[1]} ({x_te.dtype}); the "
            "model takes one kind of input, save both splits with the same dtype"
        )
    for x, k in ((x_tr, "x_train"), (x_te, "x_test")):
        if x.ndim == 0 or len(x) == 0:
            raise DataError(f"{path}: {k} is empty (shape {x.shape}); each split needs at least one sample")
        if x.ndim > 4:
            raise DataError(
                f"{path}: {k} has shape {x.shape}, more than 4 dimensions; the model takes (N, C, H, W) "
                "(or (N, H, W, C), (N, A, B), (N, F)); reshape it"
            )
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise DataError(
            f"{path}: x_train has samples of shape {x_tr.shape[1:]} but x_test {x_te.shape[1:]}; train and "
            "test must have the same shape per sample (the model takes one input shape)"
        )
    out = []
    for x, k in ((x_tr, "x_train"), (x_te, "x_test")):
        if x.dtype.kind == "f":
            with np.errstate(over="ignore"):
                x = np.asarray(x, dtype=np.float32)
            _check_finite(x, k, path)  # after the cast: float64 values beyond float32 become inf
        out.append(to_nchw(x, layout))
    return out[0], out[1]


def _infer_task(arrays: dict[str, np.ndarray], names: list[str], path: Path, task: str | None) -> str:
    if task is None:
        task = _string(arrays, "task", path)
    if task is not None:
        if task not in TASKS:
            raise DataError(f"{path}: task {task!r} is not one of {', '.join(TASKS)}")
        return task
    note = "; an autoencoder's file may leave out y_train and y_test if it says task='reconstruction'"
    y = _require(arrays, names, "y_train", path, note)
    if y.dtype.kind in "iub":
        return "classification"
    if y.dtype.kind == "f":
        return "regression"
    raise DataError(
        f"{path}: y_train has dtype {y.dtype}; targets must be integer class labels (classification) or "
        "float values (regression); convert them with y.astype(np.int64) or y.astype(np.float32)"
    )


def _labels(y: np.ndarray, key: str, path: Path, n: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind == "f":
        _check_finite(y, key, path)
        if not np.array_equal(y, np.round(y)):
            raise DataError(
                f"{path}: {key} holds float values that are not whole numbers, but the task is "
                "classification (integer class labels); store labels as integers, or use task='regression'"
            )
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iub":
        raise DataError(f"{path}: {key} has dtype {y.dtype}; class labels must be integers")
    if y.ndim != 1:
        raise DataError(
            f"{path}: {key} has shape {y.shape}; class labels are one integer per sample, shape ({n},) (for "
            "one-hot rows use y.argmax(axis=1))"
        )
    return y.astype(np.int64)


def _targets(
    arrays: dict[str, np.ndarray], names: list[str], path: Path, task: str, x: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    keys = ("y_train", "y_test")
    if task == "reconstruction" and not any(k in arrays for k in keys):
        return None, None
    out: list[np.ndarray] = []
    for k, xs in zip(keys, x, strict=True):
        y = _require(arrays, names, k, path)
        if y.ndim == 0 or len(y) != len(xs):
            got = "a scalar" if y.ndim == 0 else f"{len(y)}"
            raise DataError(
                f"{path}: x_{k[2:]} has {len(xs)} samples but {k} {got}; give one target per input sample"
            )
        if task == "classification":
            y = _labels(y, k, path, len(xs))
        elif y.dtype.kind == "f":
            with np.errstate(over="ignore"):
                y = np.asarray(y, dtype=np.float32)
            _check_finite(y, k, path)
        out.append(y)
    if task != "classification" and out[0].shape[1:] != out[1].shape[1:]:
        raise DataError(
            f"{path}: y_train has targets of shape {out[0].shape[1:]} per sample but y_test "
            f"{out[1].shape[1:]}; the model outputs one shape, save both splits' targets alike"
        )
    return out[0], out[1]


def _anomaly(arrays: dict[str, np.ndarray], key: str, path: Path, task: str) -> np.ndarray | None:
    if key not in arrays:
        return None
    if task != "reconstruction":
        raise DataError(
            f"{path}: {key} (anomaly labels) is for task 'reconstruction' (an autoencoder's reconstruction "
            f"error scores anomalies), but the task is {task!r}. Store task='reconstruction' in the file or "
            "pass task='reconstruction', or drop the anomaly labels"
        )
    a = arrays[key]
    if a.dtype.kind not in "iub" or not np.isin(a, (0, 1)).all():
        raise DataError(f"{path}: {key} must hold 0/1 values (1 = anomalous), got {a.dtype} {a.shape}")
    return a.astype(np.int8)


def _num_classes(arrays: dict[str, np.ndarray], path: Path, ys: tuple[np.ndarray, np.ndarray]) -> int:
    given = _number(arrays, "num_classes", path, "iu")
    if given is not None:
        return int(given)
    return max(int(y.max()) for y in ys) + 1


# --------------------------------------------------------------------------- entry point


def load_npz(
    path: str | os.PathLike[str],
    task: str | None = None,
    input_scale: float | None = None,
    layout: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    file: BinaryIO | None = None,
) -> tuple[Dataset, Dataset]:
    """``(train, test)`` :class:`Dataset` s from a ``.npz`` file (rules in this module's docstring).

    ``task``, ``input_scale`` and ``layout`` override the file's entries of the same name. With
    ``file`` (an open binary file, e.g. ``io.BytesIO``) the data is read from it and ``path`` only
    names it in messages.
    """
    p = Path(path) if file is not None else resolve_npz(path, data_dir)
    arrays, names = read_arrays(p, file)
    if task is not None and task not in TASKS:
        raise DataError(f"task {task!r} is not one of {', '.join(TASKS)}")
    layout = layout if layout is not None else (_string(arrays, "layout", p) or "auto")
    if layout not in LAYOUTS:
        raise DataError(f"{p}: layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    task = _infer_task(arrays, names, p, task)
    note = "; an autoencoder's file may leave out y_train and y_test" if task == "reconstruction" else ""
    xs = _inputs(arrays, names, p, layout, note)
    ys = _targets(arrays, names, p, task, xs)
    images = xs[0].dtype == np.uint8
    scale = input_scale if input_scale is not None else _number(arrays, "input_scale", p, "iuf")
    if scale is None:
        scale = 1.0 / 255.0 if images else 1.0
    elif not images:
        raise DataError(
            f"{p}: input_scale {scale} is given for float features; it only converts uint8 bytes to floats. "
            "Scale the features yourself and leave input_scale out"
        )
    num_classes = 10
    class_names = None
    if task == "classification":
        assert ys[0] is not None and ys[1] is not None
        num_classes = _num_classes(arrays, p, (ys[0], ys[1]))
        if "class_names" in arrays:
            class_names = tuple(str(v) for v in np.ravel(arrays["class_names"]))
    out = []
    for split, x, y in zip(("train", "test"), xs, ys, strict=True):
        anomaly = _anomaly(arrays, f"anomaly_{split}", p, task)
        try:
            out.append(
                Dataset(
                    f"{p.stem}-{split}",
                    x,
                    y,
                    float(scale),
                    num_classes,
                    task,
                    anomaly,
                    class_names=class_names,
                )
            )
        except DataError as exc:
            raise DataError(f"{p}: {exc}") from exc
    return out[0], out[1]
