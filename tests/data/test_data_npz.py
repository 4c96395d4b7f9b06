"""A user's own data in a .npz file: layouts, float features, tasks, and one clear DataError per
problem (naming the file and the array)."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.data import load_dataset, load_train_test
from mcu_dc.data.npz import channels_last, is_npz_path, load_npz, to_nchw
from mcu_dc.errors import DataError, McuDcError, ModelError

RNG = np.random.default_rng(0)


def _save(tmp_path: Path, name: str = "data.npz", **arrays: Any) -> Path:
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def _images(n: int, shape: tuple[int, ...] = (3, 8, 8)) -> np.ndarray:
    return RNG.integers(0, 256, (n, *shape), dtype=np.uint8)


def _classif(tmp_path: Path, **extra: Any) -> Path:
    arrays = {
        "x_train": _images(20),
        "y_train": np.arange(20) % 4,
        "x_test": _images(6),
        "y_test": np.arange(6) % 3,
    }
    arrays.update(extra)
    return _save(tmp_path, **{k: v for k, v in arrays.items() if v is not None})


def _one_paragraph(e: pytest.ExceptionInfo[DataError], path: Path) -> str:
    msg = str(e.value)
    assert isinstance(e.value, McuDcError) and "\n" not in msg and str(path) in msg
    return msg


# --------------------------------------------------------------------------- reading


def test_uint8_nchw_classification(tmp_path: Path):
    p = _classif(tmp_path, class_names=np.array(["a", "b", "c", "d"]))
    tr, te = load_train_test(p)
    assert tr.x.shape == (20, 3, 8, 8) and tr.x.dtype == np.uint8 and te.x.shape == (6, 3, 8, 8)
    assert tr.task == te.task == "classification" and tr.num_classes == te.num_classes == 4
    assert tr.input_scale == 1 / 255 and tr.labels.dtype == np.int64
    assert tr.name == "data-train" and te.name == "data-test" and tr.class_names == ("a", "b", "c", "d")
    assert np.array_equal(load_dataset(str(p), "test").x, te.x)  # a str path, one split
    assert np.array_equal(load_dataset(p, "train").labels, tr.labels)


def test_path_detection_and_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    p = _classif(tmp_path)
    assert is_npz_path(p) and is_npz_path("whatever.NPZ") and not is_npz_path("mnist")
    other = tmp_path / "renamed.bin"
    p.rename(other)
    assert len(load_dataset(str(other), "train")) == 20  # an existing file, any extension
    monkeypatch.chdir(tmp_path.parent)
    assert len(load_dataset(other.name, "test", data_dir=tmp_path)) == 6
    with pytest.raises(DataError, match=r"not found") as e:
        load_dataset(tmp_path / "nope.npz", "train")
    assert "nope.npz" in str(e.value)
    with pytest.raises(DataError, match=r"\.npz"):
        load_dataset("no-such-dataset", "train")


def test_channels_last_is_detected(tmp_path: Path):
    nhwc = _images(4, (8, 8, 3))
    p = _save(tmp_path, x_train=nhwc, y_train=np.arange(4), x_test=nhwc[:2], y_test=np.arange(2))
    tr, _ = load_npz(p)
    assert tr.x.shape == (4, 3, 8, 8) and tr.x.flags.c_contiguous
    assert np.array_equal(tr.x, nhwc.transpose(0, 3, 1, 2))
    # the rule: last dim in {1, 3, 4} and the second not; otherwise channels first
    assert channels_last((32, 32, 3)) and channels_last((28, 28, 1)) and channels_last((96, 96, 4))
    assert not channels_last((3, 32, 32)) and not channels_last((3, 8, 4)) and not channels_last((8, 8, 5))
    # forced by the argument or by a 'layout' entry
    amb = _images(4, (3, 8, 4))
    p2 = _save(tmp_path, "amb.npz", x_train=amb, y_train=np.arange(4), x_test=amb, y_test=np.arange(4))
    assert load_npz(p2)[0].x.shape == (4, 3, 8, 4)
    assert load_npz(p2, layout="nhwc")[0].x.shape == (4, 4, 3, 8)
    p3 = _save(
        tmp_path, "lay.npz", x_train=amb, y_train=np.arange(4), x_test=amb, y_test=np.arange(4), layout="NHWC"
    )
    assert load_npz(p3)[0].x.shape == (4, 4, 3, 8)
    with pytest.raises(DataError, match=r"layout 'hwc'"):
        load_npz(p2, layout="hwc")


def test_grey_images_and_feature_shapes():
    assert to_nchw(np.zeros((5, 28, 28), np.uint8)).shape == (5, 1, 28, 28)
    assert to_nchw(np.zeros((5, 640), np.float32)).shape == (5, 640, 1, 1)
    assert to_nchw(np.zeros((5,), np.float32)).shape == (5, 1, 1, 1)
    x = np.arange(2 * 49 * 10, dtype=np.float32).reshape(2, 49, 10)
    y = to_nchw(x)
    assert y.shape == (2, 1, 49, 10) and np.array_equal(y.reshape(2, -1), x.reshape(2, -1))  # order kept


def test_float_features_and_regression_targets(tmp_path: Path):
    x = RNG.normal(size=(30, 5)).astype(np.float64)
    y = RNG.normal(size=(30, 2))
    p = _save(tmp_path, x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    tr, te = load_train_test(p)
    assert tr.task == "regression" and tr.is_float_input and not tr.is_image
    assert tr.x.shape == (20, 5, 1, 1) and tr.x.dtype == np.float32 and tr.input_scale == 1.0
    assert tr.y.dtype == np.float32 and tr.output_len == 2 and len(te) == 10
    assert np.allclose(tr.x[:, :, 0, 0], x[:20])


def test_reconstruction_only_when_asked(tmp_path: Path):
    x = RNG.normal(size=(12, 8)).astype(np.float32)
    anomaly = np.array([0, 1, 0, 1])
    p = _save(tmp_path, x_train=x[:8], y_train=x[:8], x_test=x[8:], y_test=x[8:], anomaly_test=anomaly)
    with pytest.raises(DataError, match=r"anomaly_test.*task='reconstruction'") as e:
        load_npz(p)  # float targets of the inputs' shape are regression unless asked
    _one_paragraph(e, p)
    tr, te = load_npz(p, task="reconstruction")
    assert tr.task == "reconstruction" and te.anomaly.tolist() == [0, 1, 0, 1] and tr.anomaly is None
    # no targets at all: the inputs are the targets; the task stored in the file
    p2 = _save(tmp_path, "ae.npz", x_train=x[:8], x_test=x[8:], anomaly_test=anomaly, task="reconstruction")
    tr, te = load_train_test(p2)
    assert tr.y is None and tr.output_len == 8 and np.array_equal(te.targets(), te.float_inputs())
    assert load_dataset(p2, "test", task="reconstruction").task == "reconstruction"


def test_explicit_task_overrides_the_dtype(tmp_path: Path):
    p = _save(
        tmp_path,
        x_train=_images(4),
        y_train=np.array([0.0, 1.0, 2.0, 1.0]),
        x_test=_images(2),
        y_test=np.array([1.0, 0.0]),
    )
    assert load_npz(p)[0].task == "regression"
    tr, _ = load_npz(p, task="classification")
    assert tr.labels.tolist() == [0, 1, 2, 1] and tr.num_classes == 3
    p2 = _save(
        tmp_path,
        "b.npz",
        x_train=_images(2),
        y_train=np.array([0.5, 1.0]),
        x_test=_images(1),
        y_test=np.array([1.0]),
    )
    with pytest.raises(DataError, match=r"whole numbers") as e:
        load_npz(p2, task="classification")
    _one_paragraph(e, p2)
    p3 = _classif(tmp_path)
    with pytest.raises(DataError, match=r"look like class labels") as e:
        load_npz(p3, task="regression")
    _one_paragraph(e, p3)


def test_num_classes_entry_and_labels_shape(tmp_path: Path):
    p = _classif(tmp_path, num_classes=np.array(10), y_train=(np.arange(20) % 4)[:, None])
    tr, te = load_npz(p)
    assert tr.num_classes == te.num_classes == 10 and tr.labels.shape == (20,)
    p2 = _classif(tmp_path, y_train=np.eye(4, dtype=np.int64)[np.arange(20) % 4])
    with pytest.raises(DataError, match=r"one-hot"):
        load_npz(p2)


def test_input_scale_entry(tmp_path: Path):
    p = _classif(tmp_path, input_scale=np.array(1 / 16))
    assert load_npz(p)[0].input_scale == 1 / 16
    assert load_npz(p, input_scale=0.5)[0].input_scale == 0.5
    x = RNG.normal(size=(4, 3)).astype(np.float32)
    p2 = _save(
        tmp_path, "f.npz", x_train=x, y_train=x[:, :1], x_test=x, y_test=x[:, :1], input_scale=np.array(0.1)
    )
    with pytest.raises(DataError, match=r"input_scale"):
        load_npz(p2)


# --------------------------------------------------------------------------- errors


def test_missing_array_names_the_key_and_lists_those_present(tmp_path: Path):
    p = _save(tmp_path, x_train=_images(3), y_train=np.arange(3), x_test=_images(2), labels=np.arange(2))
    with pytest.raises(DataError, match=r"no array 'y_test'") as e:
        load_npz(p)
    msg = _one_paragraph(e, p)
    assert "x_train, y_train, x_test, labels" in msg and "np.savez" in msg
    p2 = _save(tmp_path, "b.npz", X_train=_images(3))
    with pytest.raises(DataError, match=r"no array 'y_train'.*X_train"):
        load_npz(p2)


def test_mismatched_lengths(tmp_path: Path):
    p = _classif(tmp_path, y_test=np.arange(5))
    with pytest.raises(DataError, match=r"x_test has 6 samples but y_test 5") as e:
        load_npz(p)
    _one_paragraph(e, p)


def test_nan_and_inf_name_the_first_bad_sample(tmp_path: Path):
    x = RNG.normal(size=(10, 4)).astype(np.float32)
    x[7, 2] = np.nan
    x[8, 0] = np.inf
    y = RNG.normal(size=(10,)).astype(np.float32)
    p = _save(tmp_path, x_train=x, y_train=y, x_test=x[:3], y_test=y[:3])
    with pytest.raises(DataError, match=r"x_train holds 2 NaN or infinite value.*first in sample 7") as e:
        load_npz(p)
    _one_paragraph(e, p)
    y2 = y.copy()
    y2[4] = -np.inf
    p2 = _save(tmp_path, "b.npz", x_train=x[:3], y_train=y2[:3], x_test=x[:3], y_test=y2[2:5])
    with pytest.raises(DataError, match=r"y_test holds 1 NaN or infinite value.*first in sample 2"):
        load_npz(p2)
    big = np.full((2, 3), 1e300)  # finite in float64, inf once stored as float32
    p3 = _save(tmp_path, "c.npz", x_train=big, y_train=np.zeros(2), x_test=big, y_test=np.zeros(2))
    with pytest.raises(DataError, match=r"x_train holds 6 NaN or infinite"):
        load_npz(p3)


def test_wrong_dtypes(tmp_path: Path):
    p = _classif(tmp_path, x_train=np.zeros((20, 3, 8, 8), dtype=np.int64))
    with pytest.raises(DataError, match=r"x_train has dtype int64.*astype\(np\.uint8\)") as e:
        load_npz(p)
    _one_paragraph(e, p)
    p2 = _classif(tmp_path, y_train=np.array(["cat"] * 20))
    with pytest.raises(DataError, match=r"y_train has dtype <U3"):
        load_npz(p2)
    p3 = _classif(tmp_path, x_test=RNG.normal(size=(6, 3, 8, 8)).astype(np.float32))
    with pytest.raises(DataError, match=r"x_train holds uint8 images .* but x_test float features"):
        load_npz(p3)
    p4 = _classif(
        tmp_path, y_train=None, y_test=None, anomaly_test=np.array([0, 2, 0, 0, 0, 0]), task="reconstruction"
    )
    with pytest.raises(DataError, match=r"0/1"):
        load_npz(p4)


def test_train_test_shapes_differ(tmp_path: Path):
    p = _classif(tmp_path, x_test=_images(6, (3, 8, 9)))
    with pytest.raises(
        DataError, match=r"x_train has samples of shape \(3, 8, 8\) but x_test \(3, 8, 9\)"
    ) as e:
        load_npz(p)
    _one_paragraph(e, p)
    p2 = _classif(tmp_path, x_train=_images(20, (1, 2, 3, 4)))
    with pytest.raises(DataError, match=r"more than 4 dimensions"):
        load_npz(p2)
    p3 = _classif(tmp_path, x_test=_images(0))
    with pytest.raises(DataError, match=r"x_test is empty"):
        load_npz(p3)
    x = RNG.normal(size=(4, 3)).astype(np.float32)
    p4 = _save(tmp_path, "r.npz", x_train=x, y_train=x[:, :2], x_test=x, y_test=x[:, :1])
    with pytest.raises(DataError, match=r"y_train has targets of shape"):
        load_npz(p4)


def test_not_a_valid_npz(tmp_path: Path):
    txt = tmp_path / "notes.npz"
    txt.write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"not a valid .npz") as e:
        load_npz(txt)
    _one_paragraph(e, txt)
    pk = tmp_path / "pickled.npz"
    pk.write_bytes(pickle.dumps({"x_train": np.zeros(3)}))
    with pytest.raises(DataError, match=r"pickled Python objects are never loaded"):
        load_npz(pk)
    npy = tmp_path / "one.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(DataError, match=r"single float64 array"):
        load_npz(npy)
    good = _classif(tmp_path).read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"not a valid .npz") as e:
        load_npz(cut)
    _one_paragraph(e, cut)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"not a valid .npz"):
        load_npz(empty)


def test_object_arrays_are_refused(tmp_path: Path):
    p = tmp_path / "obj.npz"
    np.savez(p, x_train=np.array([np.zeros(3), "a"], dtype=object), y_train=np.arange(2))
    with pytest.raises(DataError, match=r"'x_train' holds Python objects") as e:
        load_npz(p)
    _one_paragraph(e, p)


def test_corrupt_member_is_refused(tmp_path: Path):
    p = tmp_path / "z.npz"
    np.savez_compressed(
        p, x_train=_images(50), y_train=np.arange(50) % 3, x_test=_images(5), y_test=np.arange(5) % 3
    )
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("x_train.npy")
    data = bytearray(p.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # inside the compressed x_train
    p.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"'x_train' is corrupt or truncated") as e:
        load_npz(p)
    _one_paragraph(e, p)


# --------------------------------------------------------------------------- validated before allocated


def _npy(header: str, data: bytes = b"", version: int = 1) -> bytes:
    """A .npy member with any header text (padded like numpy's), then ``data``."""
    text = header.encode("latin1")
    size = 2 if version == 1 else 4
    pad = -(6 + 2 + size + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + len(text).to_bytes(size, "little") + text + data


def _zip(
    tmp_path: Path, name: str = "crafted.npz", method: int = zipfile.ZIP_STORED, **members: bytes
) -> Path:
    p = tmp_path / name
    with zipfile.ZipFile(p, "w", compression=method) as z:
        for key, body in members.items():
            z.writestr(f"{key}.npy", body)
    return p


def _with_valid_rest(**members: bytes) -> dict[str, bytes]:
    import io

    out = {}
    arrays = {"x_train": _images(4), "y_train": np.arange(4), "x_test": _images(2), "y_test": np.arange(2)}
    for key, a in arrays.items():
        buf = io.BytesIO()
        np.save(buf, a)
        out[key] = buf.getvalue()
    out.update(members)
    return out


def test_a_header_asking_for_terabytes_fails_fast(tmp_path: Path):
    """A tiny member whose header claims 10^12 elements: refused from the header, nothing allocated."""
    import time

    huge = _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }", b"\0" * 64)
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        p = _zip(tmp_path, f"huge{method}.npz", method, **_with_valid_rest(x_train=huge))
        assert p.stat().st_size < 4096
        t0 = time.monotonic()
        pattern = r"array 'x_train'.*field 'shape' \(1000000, 1000000\).*needs 8000000000000 bytes"
        with pytest.raises(DataError, match=pattern) as e:
            load_npz(p)
        assert time.monotonic() - t0 < 1.0
        msg = _one_paragraph(e, p)
        assert "x_train.npy" in msg and "byte offset" in msg


def test_the_zip_directory_size_is_checked_before_reading(tmp_path: Path):
    """An uncompressed size in the zip directory that the member cannot hold is refused up front."""
    for method, pattern in (
        (zipfile.ZIP_STORED, r"uncompressed size 4294967280 differs from its stored size"),
        (zipfile.ZIP_DEFLATED, r"uncompressed size 4294967280 cannot come from \d+ compressed bytes"),
    ):
        p = _zip(tmp_path, f"dir{method}.npz", method, **_with_valid_rest())
        data = bytearray(p.read_bytes())
        cd = data.index(b"PK\x01\x02")  # the directory entry of x_train, the first member
        data[cd + 24 : cd + 28] = (0xFFFFFFF0).to_bytes(4, "little")  # its uncompressed size
        p.write_bytes(bytes(data))
        with pytest.raises(DataError, match=r"array 'x_train': the zip directory's " + pattern) as e:
            load_npz(p)
        _one_paragraph(e, p)


def test_header_fields_are_checked(tmp_path: Path):
    h = "{'descr': %s, 'fortran_order': False, 'shape': %s, }"
    cases = {
        "shape": (h % ("'<f4'", "(-1, 3)"), r"array 'y_train': .npy header field 'shape' \(-1, 3\)"),
        "descr": (h % ("'not a dtype'", "(4,)"), r"array 'y_train': invalid .npy header"),
        "keys": ("{'descr': '<f4', 'shape': (4,), }", r"array 'y_train': invalid .npy header"),
        "object": (h % ("'|O'", "(4,)"), r"array 'y_train' holds Python objects"),
        "record": (h % ("[('a', '<i4')]", "(4,)"), r"array 'y_train': .npy header field 'descr'.*dtype"),
        "data": (h % ("'<i8'", "(5,)"), r"array 'y_train':.*needs 40 bytes of data but the member holds 32"),
    }
    for name, (header, pattern) in cases.items():
        p = _zip(tmp_path, f"{name}.npz", **_with_valid_rest(y_train=_npy(header, bytes(32))))
        with pytest.raises(DataError, match=pattern) as e:
            load_npz(p)
        _one_paragraph(e, p)
    p = _zip(tmp_path, "raw.npz", **_with_valid_rest(y_train=b"not an array at all"))
    with pytest.raises(DataError, match=r"'y_train' is not a .npy array \(field 'magic'") as e:
        load_npz(p)  # numpy returned such a member's raw bytes, which then failed as an AttributeError
    _one_paragraph(e, p)


def test_bad_crc_and_truncated_member_are_one_clear_error(tmp_path: Path):
    p = _zip(tmp_path, **_with_valid_rest())
    with zipfile.ZipFile(p) as z:
        info = z.getinfo("x_test.npy")
    data = bytearray(p.read_bytes())
    data[info.header_offset + 30 + len(info.filename) + 140] ^= 0x01  # a stored data byte of x_test
    bad = tmp_path / "badcrc.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"'x_test' is corrupt or truncated.*Bad CRC-32") as e:
        load_npz(bad)
    _one_paragraph(e, bad)
    cut = tmp_path / "cut2.npz"
    cut.write_bytes(p.read_bytes()[:-30])  # the end of the central directory is gone
    with pytest.raises(DataError, match=r"not a valid .npz") as e:
        load_npz(cut)
    _one_paragraph(e, cut)


# --------------------------------------------------------------------------- a shape the model does not take


def test_a_shape_the_model_does_not_take_is_reported_clearly(tmp_path: Path):
    from mcu_dc.compression.capture import capture

    nhwc = _images(4, (32, 32, 3))
    p = _save(tmp_path, x_train=nhwc, y_train=np.arange(4), x_test=nhwc, y_test=np.arange(4))
    tr, _ = load_train_test(p)
    torch.manual_seed(0)
    lenet = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))  # an MNIST model
    with pytest.raises(ModelError) as e:
        capture(lenet, tr.input_shape)
    msg = str(e.value)
    assert "(N, 3, 32, 32)" in msg and "the dataset's" in msg and "\n" not in msg


def test_npz_float_regressor_compresses_and_simulates(tmp_path: Path):
    """A user's float-feature regressor from a .npz, through the whole pipeline to the simulator."""
    import mcu_dc
    from mcu_dc.compression.config import CompressConfig, PruneConfig
    from mcu_dc.compression.train import TrainConfig
    from mcu_dc.data.metrics import simulator_metrics

    torch.set_num_threads(1)
    a = np.random.default_rng(100).normal(size=(8, 2)) / np.sqrt(8)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 8))
    y = x @ a + 0.05 * rng.normal(size=(500, 2))
    p = _save(tmp_path, "lin.npz", x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
    tr, te = load_train_test(p)
    cfg = CompressConfig(
        dense=TrainConfig(epochs=40, lr=0.01, optimizer="adam", weight_decay=0.0, batch_size=32),
        prune=PruneConfig(rounds=1, grid=[0.5], retrain=TrainConfig(epochs=2, lr=0.005, optimizer="adam")),
        finetune=TrainConfig(epochs=1, lr=1e-3, optimizer="adam", weight_decay=0.0),
        val_size=50,
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    cm = mcu_dc.compress(model, tr, te, cfg, name="lin", progress=False)
    m = cm.meta["metrics"]["integer"]
    assert cm.model.task == "regression" and m["nmse"] < 0.2
    out, again = simulator_metrics(cm.model, te)
    assert out.shape == (100, 2) and again == pytest.approx(m)
    # another file's features (9 per sample) do not fit this model: the simulator says so
    p2 = _save(
        tmp_path,
        "nine.npz",
        x_train=x[:10, :1].repeat(9, 1),
        y_train=y[:10],
        x_test=x[:5, :1].repeat(9, 1),
        y_test=y[:5],
    )
    with pytest.raises(
        DataError, match=r"input shape \(5, 9, 1, 1\) does not fit the model.*takes 8 values"
    ) as e:
        mcu_dc.simulate(cm, load_dataset(p2, "test").simulator_inputs())
    assert "\n" not in str(e.value)
