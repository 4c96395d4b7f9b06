"""``--weights FILE``: a user's trained state dict loaded into their model before compression."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mcu_dc
from mcu_dc.cli import main
from mcu_dc.compression.dense_weights import load_weights
from mcu_dc.compression.pipeline import load_pretrained
from mcu_dc.data.datasets import load_train_test
from mcu_dc.errors import ModelError

FACTORY = """
from torch import nn


def net():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Linear(48, 10)
    )


def other():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 40), nn.ReLU(), nn.Linear(40, 10), nn.Linear(10, 10))
"""


def _factory_module() -> nn.Module:
    namespace: dict[str, object] = {}
    exec(FACTORY, namespace)  # the very module the CLI imports from the file
    return namespace["net"]()  # type: ignore[operator]


def _accuracy(model: nn.Module, data) -> float:  # type: ignore[no-untyped-def]
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(data.float_inputs())).argmax(1).numpy()
    return float(np.mean(pred == data.labels))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A small BN net trained on digits; its weights saved as a DataParallel checkpoint."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("weights")
    (d / "net.py").write_text(FACTORY)
    train, test = load_train_test("digits")
    model = _factory_module()
    x, y = torch.from_numpy(train.float_inputs()), torch.from_numpy(train.labels)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(15):
        model.train()
        for i in range(0, len(x), 64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    acc = _accuracy(model, test)
    state = {f"module.{k}": v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    path = d / "trained.pt"
    torch.save({"state_dict": state, "epoch": 15, "best_acc": acc}, path)
    return d, path, acc, train, test


def test_weights_keep_the_users_accuracy_and_skip_dense_training(trained, tmp_path, capsys):
    d, path, acc, _, _ = trained
    assert acc > 0.9
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "val_size = 200\n[dense]\nepochs = 50\n[prune]\nrounds = 1\n[prune.retrain]\nepochs = 1\n"
        "[finetune]\nepochs = 1\n"
    )
    out = tmp_path / "m.mcudc"
    args = ["compress", "--model", f"{d / 'net.py'}:net", "--dataset", "digits", "--config", str(cfg)]
    rc = main([*args, "--weights", str(path), "--out", str(out), "--json", "--quiet"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    meta = mcu_dc.load(out).meta
    dw = meta["dense_weights"]
    assert dw["source"] == "weights" and dw["path"] == str(path) and dw["key"] == "state_dict"
    import hashlib

    assert dw["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert rep["dense_weights"] == dw
    # dense training (50 epochs) was skipped: the float model after loading is the user's model
    assert rep["timings_s"]["dense"] < 0.5 and "timings_s" not in meta  # timings never go into the file
    assert meta["metrics"]["dense"]["accuracy"] == pytest.approx(acc, abs=1e-12)
    # Markdown report names the source too
    rc = main([*args, "--weights", str(path), "--out", str(tmp_path / "m2.mcudc"), "--quiet"])
    assert rc == 0 and f"Dense weights: loaded from `{path}`" in capsys.readouterr().out


def test_python_api_takes_weights_and_a_plain_state_dict(trained, tmp_path):
    _, _, acc, _, test = trained
    torch.set_num_threads(1)
    model = _factory_module()
    plain = tmp_path / "plain.pt"
    src = torch.load(trained[1], weights_only=True)["state_dict"]
    torch.save({k.removeprefix("module."): v for k, v in src.items()}, plain)
    info = load_weights(model, plain)
    assert info.source == "weights" and info.nested_key is None
    assert _accuracy(model, test) == pytest.approx(acc, abs=1e-12)


@pytest.mark.parametrize("key", ["model", "model_state_dict"])
def test_checkpoint_keys(trained, tmp_path, key):
    src = torch.load(trained[1], weights_only=True)["state_dict"]
    p = tmp_path / "ck.pt"
    torch.save({key: src, "optimizer_lr": 0.1}, p)
    assert load_weights(_factory_module(), p).nested_key == key


def test_mismatched_keys_and_shapes_are_listed(trained, tmp_path):
    _, path, *_ = trained
    ns: dict[str, object] = {}
    exec(FACTORY, ns)
    with pytest.raises(ModelError) as ei:
        load_weights(ns["other"](), path)  # type: ignore[operator]
    msg = str(ei.value)
    assert "\n" not in msg
    assert "2 key(s) of the model are not in the file: 3.weight, 3.bias" in msg  # its extra layer
    assert "4 key(s) of the file are not in the model: 2.weight, 2.bias, 2.running_mean" in msg  # the BN
    assert "3 tensor(s) differ in shape: 1.weight (48, 64) in the file, (40, 64) in the model" in msg
    assert "module.1" not in msg and "Pass the weights saved from this very architecture" in msg
    # many keys: a few, then "and N more"
    big = nn.Sequential(*[nn.Linear(2, 2) for _ in range(8)])
    p = tmp_path / "big.pt"
    torch.save(big.state_dict(), p)
    named = nn.Module()
    for i in range(9):
        named.add_module(f"fc{i}", nn.Linear(2, 2))
    with pytest.raises(ModelError) as ei:
        load_weights(named, p)
    msg = str(ei.value)
    assert "18 key(s) of the model are not in the file: fc0.weight, fc0.bias, fc1.weight, fc1.bias, " in msg
    assert "fc2.weight and 13 more; 16 key(s) of the file are not in the model: 0.weight" in msg


def _one_paragraph_cli_error(tmp_path: Path, weights: Path, capsys) -> str:  # type: ignore[no-untyped-def]
    rc = main(
        ["compress", "--model", "lenet300", "--dataset", "digits", "--weights", str(weights),
         "--out", str(tmp_path / "x.mcudc"), "--quiet"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.mcudc").exists()
    return err


def test_not_a_checkpoint_and_truncated_are_one_paragraph(trained, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n" * 20)
    err = _one_paragraph_cli_error(tmp_path, text, capsys)
    assert "is not a readable PyTorch checkpoint" in err and "torch.save(model.state_dict()" in err
    cut = tmp_path / "cut.pt"
    data = trained[1].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    err = _one_paragraph_cli_error(tmp_path, cut, capsys)
    assert "truncated" in err and str(cut) in err
    missing = _one_paragraph_cli_error(tmp_path, tmp_path / "nope.pt", capsys)
    assert "does not exist" in missing
    obj = tmp_path / "obj.pt"
    torch.save(nn.Linear(2, 2), obj)  # a whole pickled module: not loaded (it could run code)
    err = _one_paragraph_cli_error(tmp_path, obj, capsys)
    assert "besides tensors" in err
    lst = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], lst)
    assert "not a state dict" in _one_paragraph_cli_error(tmp_path, lst, capsys)


def test_pretrained_cache_mismatch_never_suggests_deleting(tmp_path):
    from mcu_dc.compression.capture import capture

    net = capture(_factory_module(), (1, 8, 8))
    p = tmp_path / "my_trained_model.pt"
    torch.save({"something": torch.zeros(3)}, p)
    before = p.read_bytes()
    with pytest.raises(ModelError) as ei:
        load_pretrained(net, p)
    msg = str(ei.value)
    assert "delete" not in msg.lower()
    assert "cache" in msg and "--weights" in msg and "if it is a cache you made" in msg
    # junk, a truncated checkpoint, and bytes that send torch's unpickler to a KeyError
    for junk in (b"garbage", before[: len(before) // 2], b"hello world" * 10):
        p.write_bytes(junk)
        with pytest.raises(ModelError, match="cannot be read") as ei:
            load_pretrained(net, p)
        assert "delete" not in str(ei.value).lower() and "bytes" in str(ei.value)
    p.write_bytes(before)
    assert p.read_bytes() == before


def test_weights_and_pretrained_together_are_refused(trained, tmp_path, capsys):
    rc = main(
        ["compress", "--model", "lenet300", "--dataset", "digits", "--weights", str(trained[1]),
         "--pretrained", str(tmp_path / "c.pt"), "--out", str(tmp_path / "x.mcudc"), "--quiet"]
    )  # fmt: skip
    assert rc == 2 and "pass --weights" in capsys.readouterr().err


def test_help_explains_weights_versus_pretrained(capsys):
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "YOUR trained weights" in out and "a CACHE that mcu_dc writes itself" in out
    assert "cifar10" in out and "data.npz" in out and "resnet20" in out
