"""--config files are laid over the recipe (issue 12): a partial table keeps the recipe's other
values, and every value is type-checked, with its key's path, before any training."""

from __future__ import annotations

import argparse

import pytest

from mcu_dc.commands.compress import choose_config
from mcu_dc.compression.config import CompressConfig, default_config, load_config, recipe
from mcu_dc.data import load_dataset
from mcu_dc.errors import ConfigError


def _args(model: str, dataset: str, config) -> argparse.Namespace:
    return argparse.Namespace(
        model=model, dataset=dataset, config=config, quick=False, weights="w.pt", pretrained=None,
        train_subset=None, test_subset=None,
    )  # fmt: skip


def test_a_partial_table_keeps_the_recipe_values(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[finetune]\nepochs = 1\n[prune.retrain]\nepochs = 2\n")
    cfg = choose_config(_args("resnet20", "cifar10", p), None)
    base = recipe("resnet20")
    assert cfg.finetune.epochs == 1 and cfg.prune.retrain.epochs == 2
    # what the file leaves out is the recipe's, not the class defaults (SGD at 0.05)
    assert (cfg.finetune.optimizer, cfg.finetune.lr) == (base.finetune.optimizer, base.finetune.lr)
    assert cfg.finetune.augment_crop == 4 and cfg.finetune.augment_flip
    assert cfg.prune.retrain.lr == base.prune.retrain.lr and cfg.cluster == base.cluster
    assert base.finetune.epochs != 1  # the recipe itself is untouched


def test_digits_keeps_its_defaults_under_a_config(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[dense]\nepochs = 3\n")
    train = load_dataset("digits", "train")
    cfg = choose_config(_args("lenet300", "digits", p), train)
    want = default_config("digits", train)
    assert cfg.dense.epochs == 3 and cfg.dense.batch_size == want.dense.batch_size == 32
    assert cfg.val_size == want.val_size and cfg.finetune == want.finetune


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('[prune.sparsity]\nfc1 = "x"\n', "prune.sparsity.fc1"),
        ('[prune]\ngrid = [0.5, "a"]\n', "prune.grid[1]"),
        ('[quantize.index_bits]\nfc1 = "4"\n', "quantize.index_bits.fc1"),
        ("[quantize]\nfc_index_bits = 4.5\n", "quantize.fc_index_bits"),
        ("[finetune]\naugment_flip = 1\n", "finetune.augment_flip"),
        ("finetune = 3\n", "finetune must be a table"),
        ("[dense]\nepochs = true\n", "dense.epochs"),
    ],
)
def test_wrong_types_name_the_key(tmp_path, text, where):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=r"c\.toml\." + where.replace("[", r"\[").replace("]", r"\]")
                       if "table" not in where else where):  # fmt: skip
        load_config(p, CompressConfig())


def test_not_toml_is_one_clear_error(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes(b"\xff\xfe[dense\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
