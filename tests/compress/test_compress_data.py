import gzip

import numpy as np
import pytest

from mcu_dc.data.datasets import DATASETS, candidate_dirs, load_dataset, load_train_test
from mcu_dc.data.idx import parse_idx, read_idx
from mcu_dc.errors import DataError, McuDcError


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def test_digits_split_is_deterministic_and_scaled():
    tr, te = load_train_test("digits")
    assert tr.images.dtype == np.uint8 and tr.images.shape[1:] == (1, 8, 8)
    assert len(tr) + len(te) == 1797 and len(te) == 1797 // 4
    assert tr.images.max() == 16 and tr.input_scale == 1 / 16
    assert tr.task == "classification" and not tr.is_float_input and tr.labels.dtype == np.int64
    assert np.array_equal(tr.float_inputs(), tr.images.astype(np.float32) / 16)
    tr2, _ = load_train_test("digits")
    assert np.array_equal(tr.images, tr2.images) and np.array_equal(tr.labels, tr2.labels)
    assert "digits" in DATASETS


def test_idx_round_trip_and_gzip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "a-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(_idx_bytes(arr)))
    assert np.array_equal(read_idx(p), arr)


def test_truncated_raw_idx_names_the_file(tmp_path):
    arr = np.zeros((5, 4, 4), dtype=np.uint8)
    p = tmp_path / "x-idx3-ubyte"
    p.write_bytes(_idx_bytes(arr)[:-7])
    with pytest.raises(DataError, match="truncated") as e:
        read_idx(p)
    assert str(p) in str(e.value)
    with pytest.raises(DataError, match="magic"):
        parse_idx(b"\x01\x02\x03\x04", "mem")


def test_idx_headers_that_would_crash_numpy_are_data_errors():
    # 255 dimensions (numpy allows 64): refused at the header byte, not by reshape
    raw = bytes([0, 0, 8, 255]) + b"\x00\x00\x00\x01" * 255
    with pytest.raises(DataError, match="byte 3 gives 255 dimensions"):
        parse_idx(raw, "mem")
    # four sizes of 2**16: numpy's int64 product wraps to 0, which an empty data section matched
    raw = bytes([0, 0, 8, 4]) + (2**16).to_bytes(4, "big") * 4
    assert int(np.prod([2**16] * 4)) == 0
    with pytest.raises(DataError, match="needs 18446744073709551616"):
        parse_idx(raw, "mem")
    wrap = bytes([0, 0, 8, 2]) + (2**32 - 1).to_bytes(4, "big") + (0).to_bytes(4, "big")
    assert parse_idx(wrap, "mem").shape == (2**32 - 1, 0)  # a genuinely empty array stays legal


def test_missing_data_dir_says_where_it_looked(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("mnist", "train", tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "--data-dir" in msg and "MCU_DC_DATA" in msg
    assert isinstance(e.value, McuDcError)


def test_env_var_is_searched_first(tmp_path, monkeypatch):
    monkeypatch.setenv("MCU_DC_DATA", str(tmp_path))
    assert candidate_dirs("mnist")[0] == tmp_path / "mnist"


def test_truncated_gz_file_is_refused(tmp_path):
    src = candidate_dirs("mnist")
    found = [d for d in src if (d / "t10k-labels-idx1-ubyte.gz").is_file()]
    if not found:
        pytest.skip("MNIST files not available")
    d = tmp_path / "mnist"
    d.mkdir()
    for f in found[0].glob("*.gz"):
        (d / f.name).symlink_to(f)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    data = (found[0] / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated") as e:
        load_dataset("mnist", "test", tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(e.value) and "sha256" in str(e.value)


def test_real_mnist_test_split_if_present(tmp_path):
    try:
        te = load_dataset("mnist", "test")
    except DataError:
        pytest.skip("MNIST files not available")
    assert te.images.shape == (10000, 1, 28, 28)
    assert np.bincount(te.labels).tolist()[:3] == [980, 1135, 1032]
