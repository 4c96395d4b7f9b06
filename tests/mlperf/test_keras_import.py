"""load_keras_h5 on tiny doctored files made here with h5py, and the TF tensor-bundle reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mcu_dc.compression import tf_bundle
from mcu_dc.compression.keras_import import KerasImportError, load_keras_h5
from mcu_dc.errors import FormatError, McuDcError

pytestmark = pytest.mark.usefixtures("h5py_mod")


class Tiny(nn.Module):
    """conv 3x3 (1 -> 2) + BN + ReLU, depthwise 3x3 with multiplier 2, global pool, dense 4 -> 3."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.dw = nn.Conv2d(2, 4, 3, padding=1, groups=2, bias=False)
        self.fc = nn.Linear(4, 3)

    def keras_layers(self) -> dict[str, str]:
        return {"conv2d": "conv", "batch_normalization": "bn", "depthwise_conv2d": "dw", "dense": "fc"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dw(torch.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


def _layers(rng: np.random.Generator) -> list[tuple[str, str, dict, dict[str, np.ndarray]]]:
    f = np.float32
    return [
        ("conv2d", "Conv2D", {"kernel_size": [3, 3], "strides": [1, 1], "padding": "same"},
         {"kernel": rng.normal(size=(3, 3, 1, 2)).astype(f), "bias": rng.normal(size=2).astype(f)}),
        ("batch_normalization", "BatchNormalization", {"epsilon": 0.001},
         {"gamma": rng.normal(size=2).astype(f), "beta": rng.normal(size=2).astype(f),
          "moving_mean": rng.normal(size=2).astype(f), "moving_variance": rng.uniform(0.5, 2, 2).astype(f)}),
        ("depthwise_conv2d", "DepthwiseConv2D", {"kernel_size": [3, 3], "strides": [1, 1], "padding": "same"},
         {"depthwise_kernel": rng.normal(size=(3, 3, 2, 2)).astype(f)}),
        ("dense", "Dense", {"units": 3},
         {"kernel": rng.normal(size=(4, 3)).astype(f), "bias": rng.normal(size=3).astype(f)}),
    ]  # fmt: skip


def _write_h5(path: Path, layers: list[tuple[str, str, dict, dict[str, np.ndarray]]]) -> Path:
    """A file laid out as Keras 2.x model.save() writes one (model_config + model_weights)."""
    import h5py

    cfg = {"class_name": "Functional", "config": {"layers": [
        {"class_name": cls, "config": {"name": name, **conf}} for name, cls, conf, _ in layers]}}  # fmt: skip
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(cfg).encode()
        f.attrs["keras_version"] = b"2.4.0"
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [name.encode() for name, *_ in layers] + [b"flatten"]
        mw.create_group("flatten").attrs["weight_names"] = []
        for name, _, _, weights in layers:
            g = mw.create_group(name)
            g.attrs["weight_names"] = [f"{name}/{w}:0".encode() for w in weights]
            for w, arr in weights.items():
                g.create_dataset(f"{name}/{w}:0", data=arr)
    return path


def test_tiny_import_maps_every_layout(tmp_path: Path) -> None:
    layers = _layers(np.random.default_rng(0))
    model = Tiny()
    info = load_keras_h5(model, _write_h5(tmp_path / "tiny.h5", layers))
    w = {name: weights for name, _, _, weights in layers}
    assert info.layers == 4 and info.tensors == 9
    np.testing.assert_array_equal(
        model.conv.weight.detach().numpy(), w["conv2d"]["kernel"].transpose(3, 2, 0, 1)
    )
    dk = w["depthwise_conv2d"]["depthwise_kernel"]  # (H, W, C, M): output channel c*M + m
    np.testing.assert_array_equal(model.dw.weight.detach().numpy()[1 * 2 + 0, 0], dk[:, :, 1, 0])
    np.testing.assert_array_equal(model.fc.weight.detach().numpy(), w["dense"]["kernel"].T)
    np.testing.assert_array_equal(model.bn.running_var.numpy(), w["batch_normalization"]["moving_variance"])
    assert model.bn.eps == pytest.approx(0.001)


def test_shape_mismatch_is_refused_and_nothing_loaded(tmp_path: Path) -> None:
    layers = _layers(np.random.default_rng(1))
    layers[3][3]["kernel"] = np.zeros((5, 3), np.float32)  # a Dense kernel for 5 inputs, the model has 4
    model = Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(KerasImportError) as err:
        load_keras_h5(model, _write_h5(tmp_path / "bad.h5", layers))
    msg = str(err.value)
    assert "'dense'" in msg and "expected shape (4, 3)" in msg and "found (5, 3)" in msg
    assert "Nothing was loaded" in msg and "\n" not in msg and isinstance(err.value, McuDcError)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_missing_extra_and_kind_mismatch_are_refused(tmp_path: Path) -> None:
    layers = _layers(np.random.default_rng(2))
    extra = ("dense_1", "Dense", {}, {"kernel": np.zeros((3, 3), np.float32)})
    no_bn = [lay for lay in layers if lay[0] != "batch_normalization"] + [extra]
    with pytest.raises(KerasImportError, match=r"'dense_1'.*does not map.*'batch_normalization'.*lacks"):
        load_keras_h5(Tiny(), _write_h5(tmp_path / "a.h5", no_bn))
    wrong_kind = [(*lay[:1], "Conv2D", *lay[2:]) if lay[0] == "depthwise_conv2d" else lay for lay in layers]
    with pytest.raises(KerasImportError, match="'depthwise_conv2d' is a Conv2D but module 'dw'"):
        load_keras_h5(Tiny(), _write_h5(tmp_path / "b.h5", wrong_kind))
    strided = [(lay[0], lay[1], {**lay[2], "strides": [2, 2]}, lay[3]) if lay[0] == "conv2d" else lay
               for lay in layers]  # fmt: skip
    with pytest.raises(KerasImportError, match=r"strides \(2, 2\) but module 'conv'"):
        load_keras_h5(Tiny(), _write_h5(tmp_path / "c.h5", strided))


def test_not_an_h5_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(FormatError, match="not a Keras weights file"):
        load_keras_h5(Tiny(), bad)
    with pytest.raises(FormatError, match="does not exist"):
        load_keras_h5(Tiny(), tmp_path / "missing.h5")


def test_crc32c_known_value() -> None:
    # CRC-32C("123456789") = 0xE3069283 (the Castagnoli check value), masked as TF does
    crc = 0xE3069283
    assert tf_bundle.masked_crc32c(b"123456789") == (
        (((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8
    ) & (0xFFFFFFFF)


def test_bundle_of_the_kws_savedmodel(mlperf_dir: Path) -> None:
    sm = mlperf_dir / "keyword_spotting/kws_ref_model"
    tensors = tf_bundle.read_bundle(sm / "variables")
    assert tensors["layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE"].shape == (10, 4, 1, 64)
    assert tensors["layer_with_weights-18/kernel/.ATTRIBUTES/VARIABLE_VALUE"].shape == (64, 12)
    cfg = tf_bundle.keras_config_from_saved_model(sm)
    assert [lay["class_name"] for lay in cfg["config"]["layers"]].count("DepthwiseConv2D") == 4


def test_corrupt_bundle_is_refused(mlperf_dir: Path, tmp_path: Path) -> None:
    src = mlperf_dir / "keyword_spotting/kws_ref_model/variables"
    (tmp_path / "variables.index").write_bytes((src / "variables.index").read_bytes())
    data = bytearray((src / "variables.data-00000-of-00001").read_bytes())
    data[10240] ^= 0xFF  # inside layer_with_weights-0/bias
    (tmp_path / "variables.data-00000-of-00001").write_bytes(bytes(data))
    with pytest.raises(FormatError, match="CRC-32C"):
        tf_bundle.read_bundle(tmp_path)
