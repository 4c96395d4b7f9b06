"""Settings of the compression pipeline as dataclasses, loadable from TOML.

A TOML file mirrors :class:`CompressConfig`::

    val_size = 5000
    [dense]
    epochs = 20
    [prune]
    rounds = 3
    budget = 0.01
    [prune.retrain]
    epochs = 4
    [cluster]
    conv_bits = 8
    fc_bits = 5
    [finetune]
    epochs = 2
    [quantize]
    fc_index_bits = 5

Keys a file leaves out keep the values it is laid over: ``mcu-dc compress`` lays it over the
model's recipe (or the dataset's defaults), so ``[finetune] epochs = 1`` changes the epochs and
keeps the recipe's optimizer and learning rate. Every value is type-checked (list items and table
values too) before any training starts, and an error names the key's path.
Unknown keys are an error (a typo must not be silently ignored). ``task`` (top level)
is ``auto`` (the dataset's task), ``classification``, ``regression`` or
``reconstruction``; it must agree with the dataset (any dataset can be reconstructed).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_type_hints

from mcu_dc.compression.cluster import ClusterConfig
from mcu_dc.compression.distill import DistillConfig
from mcu_dc.compression.filter_prune import FilterPruneConfig
from mcu_dc.compression.quantize import QuantConfig
from mcu_dc.compression.slimming import SlimmingConfig
from mcu_dc.compression.train import TrainConfig, check_augment
from mcu_dc.core.qmath import TASKS
from mcu_dc.data.datasets import Dataset
from mcu_dc.errors import ConfigError, DataError


@dataclass
class PruneConfig:
    enabled: bool = True
    rounds: int = 3  # prune -> retrain iterations
    budget: float = 0.01  # score drop allowed per layer and round (accuracy; NMSE for other tasks)
    max_sparsity: float = 0.97
    grid: list[float] = field(
        default_factory=lambda: [0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99]
    )
    sparsity: dict[str, float] = field(default_factory=dict)  # explicit final sparsity per layer
    dropout_adjust: bool = True
    retrain: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, lr=0.01))

    def validate(self) -> None:
        if self.rounds < 1 or not 0.0 <= self.budget <= 1.0 or not 0.0 <= self.max_sparsity < 1.0:
            raise ConfigError(
                f"prune: rounds >= 1, budget in [0, 1] and max_sparsity in [0, 1) are required, got rounds="
                f"{self.rounds}, budget={self.budget}, max_sparsity={self.max_sparsity}"
            )
        for name, s in self.sparsity.items():
            if not 0.0 <= s < 1.0:
                raise ConfigError(
                    f"prune.sparsity[{name!r}] = {s}: must be in [0, 1); 1.0 would prune the layer to 100 %"
                )
        self.retrain.validate("prune.retrain")


@dataclass
class CompressConfig:
    dense: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, lr=0.05))
    # structured pruning (channels): before unstructured pruning; off by default (docs/structured_pruning.md)
    filter_prune: FilterPruneConfig = field(default_factory=FilterPruneConfig)
    slimming: SlimmingConfig = field(default_factory=SlimmingConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    finetune: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=2, lr=1e-4, optimizer="adam", weight_decay=0.0)
    )
    quantize: QuantConfig = field(default_factory=QuantConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)  # knowledge distillation (retraining)
    val_size: int = 5000  # held out of the training set for sensitivity analysis
    train_subset: int = 0  # train (and calibrate) on this many random training samples; 0 = all
    test_subset: int = 0  # measure on the first N test samples; 0 = all
    max_code_len: int = 12  # longest Huffman code (the MCU decoder's bound)
    lut_bits: int = 6
    # each weight op's encoding (mcu_dc/core/objective.py): "size" the smallest, "speed" the
    # fastest on a Cortex-M4, "balanced" the fastest within `slack` of the smallest blob
    objective: str = "size"
    slack: float = 0.05
    # HUFFMAN_JOINT FC layers: compact tables (code lengths) whose decode table the kernel builds in
    # up to 8 KB of arena scratch at each inference (faster, smaller); False keeps symbol lists and a
    # lookup table in flash (no extra RAM)
    ram_tables: bool = True
    # every CONV2D's kernel: "gather" (faster; RAM for the zero-point-padded input and one channel's taps)
    # or "scatter" (the least RAM); no flash either way
    conv_kernel: str = "gather"
    seed: int = 0
    task: str = "auto"  # classification | regression | reconstruction | auto (the dataset's task)

    def validate(self) -> None:
        if self.task not in ("auto", *TASKS):
            raise ConfigError(
                f"task = {self.task!r} is not one of auto, {', '.join(TASKS)}; 'auto' (the default) takes "
                "the dataset's task"
            )
        from mcu_dc.core.objective import CONV_KERNELS

        if self.conv_kernel not in CONV_KERNELS:
            raise ConfigError(
                f"conv_kernel = {self.conv_kernel!r} is not one of gather, scatter; 'gather' (the default) "
                "is the faster, 'scatter' uses the least RAM"
            )
        self.dense.validate("dense")
        self.prune.validate()
        self.filter_prune.validate()
        self.slimming.validate()
        self.cluster.validate()
        self.finetune.validate("finetune")
        self.quantize.validate()
        self.distill.validate()
        if not 1 <= self.max_code_len <= 15 or not 0 <= self.lut_bits <= min(12, self.max_code_len):
            raise ConfigError(
                f"max_code_len must be 1..15 and lut_bits 0..min(12, max_code_len); got {self.max_code_len}, "
                f"{self.lut_bits}"
            )
        if self.objective not in ("size", "speed", "balanced"):
            raise ConfigError(
                f"objective = {self.objective!r} is not one of size, speed, balanced (each weight op's "
                "encoding: the smallest, the fastest, or the fastest within `slack` of the smallest)"
            )
        if not 0.0 <= self.slack <= 10.0:
            raise ConfigError(f"slack = {self.slack}: the balanced objective's size margin is in [0, 10]")
        if self.val_size < 0 or self.train_subset < 0 or self.test_subset < 0:
            raise ConfigError(
                f"val_size, train_subset and test_subset must be >= 0 (0: no validation split, all samples), "
                f"got {self.val_size}, {self.train_subset}, {self.test_subset}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def datasets_for_task(self, train: Dataset, test: Dataset) -> tuple[Dataset, Dataset]:
        """``(train, test)`` for the configured task, checked before any training.

        ``task = "auto"`` takes the datasets' task (train and test must agree). An explicit
        task must be the datasets' task, except ``reconstruction``, which any dataset can be
        used for (its targets become its inputs). ``augment_shift`` needs uint8 images.
        """
        self.validate()
        if train.task != test.task:
            raise DataError(
                f"the training set {train.name!r} is for task {train.task!r} but the test set {test.name!r} "
                f"for {test.task!r}; build both with the same task"
            )
        if train.is_float_input != test.is_float_input:
            kinds = {True: "float features", False: "uint8 bytes"}
            raise DataError(
                f"the training set {train.name!r} holds {kinds[train.is_float_input]} but the test set "
                f"{test.name!r} {kinds[test.is_float_input]}; the model takes one kind of input"
            )
        task = train.task if self.task == "auto" else self.task
        if task != train.task and task != "reconstruction":
            raise ConfigError(
                f"the config's task is {task!r} but dataset {train.name!r} is a {train.task!r} dataset "
                f"({_describe_targets(train)}). Build the Dataset with task={task!r} and matching targets "
                "(integer class labels for classification, float targets for regression), or set task = "
                "'auto' to use the dataset's"
            )
        for what, tc in (
            ("dense", self.dense),
            ("prune.retrain", self.prune.retrain),
            ("filter_prune.retrain", self.filter_prune.retrain),
            ("slimming.sparse_train", self.slimming.sparse_train),
            ("slimming.retrain", self.slimming.retrain),
            ("finetune", self.finetune),
        ):
            check_augment(tc, train, what)
        return train.with_task(task), test.with_task(task)


def _describe_targets(data: Dataset) -> str:
    t = data.targets()
    return f"targets {t.dtype} {tuple(t.shape)}"


def from_dict(cls: type, data: dict[str, Any], where: str = "config", base: Any = None) -> Any:
    """Build dataclass ``cls`` from a nested dict, refusing unknown keys and wrong types.

    Keys the dict leaves out keep ``base``'s values (a partial ``[finetune]`` table changes only
    the keys it names), or the class defaults without a ``base``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table, got {type(data).__name__} {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}"
        )
    kwargs: dict[str, Any] = {}
    for key in names:
        current = getattr(base, key) if base is not None else None
        if key in data:
            t, sub = hints[key], f"{where}.{key}"
            if dataclasses.is_dataclass(t):
                kwargs[key] = from_dict(t, data[key], sub, current)  # type: ignore[arg-type]
            else:
                kwargs[key] = _coerce(t, data[key], sub)
        elif base is not None:
            kwargs[key] = copy.deepcopy(current)
    return cls(**kwargs)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(t: Any, value: Any, where: str) -> Any:
    """``value`` checked against the field type ``t`` (elements of lists and tables too)."""
    origin = getattr(t, "__origin__", None)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} = {value!r} has the wrong type; expected a list")
        (item,) = get_args(t)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} = {value!r} has the wrong type; expected a table")
        _, item = get_args(t)
        return {k: _coerce(item, v, f"{where}.{k}") for k, v in value.items()}
    if t is bool:
        ok = isinstance(value, bool)
    elif t is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif t is str:
        ok = isinstance(value, str)
    else:
        ok = True
    if not ok:
        expected = _TYPE_NAMES.get(t, getattr(t, "__name__", str(t)))
        raise ConfigError(f"{where} = {value!r} has the wrong type; expected {expected}")
    return value


def read_toml(path: str | os.PathLike[str], py310_hint: str) -> dict[str, Any]:
    """The table of a TOML file, or one-paragraph :class:`ConfigError` (missing, not TOML, or Python
    3.10 without tomllib: ``py310_hint`` says what to do instead)."""
    path = Path(path)
    if sys.version_info < (3, 11):
        raise ConfigError(f"reading {path} needs Python >= 3.11 (tomllib); {py310_hint}")
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def load_config(path: str | os.PathLike[str], base: CompressConfig | None = None) -> CompressConfig:
    """A TOML config; the keys it leaves out keep ``base``'s values (the model's recipe or the
    dataset's defaults), or :class:`CompressConfig`'s defaults without a ``base``. Every value is
    type-checked here, before any training starts."""
    data = read_toml(path, "on Python 3.10 build a CompressConfig in Python instead of passing --config")
    cfg = from_dict(CompressConfig, data, str(path), base)
    cfg.validate()
    return cfg


def default_config(dataset: str, train: Dataset | None = None) -> CompressConfig:
    """Defaults per dataset: small and quick for ``digits``, paper-like for MNIST-sized sets.

    With ``train`` (the training set, e.g. of a user's ``.npz`` file) the defaults adapt to it:
    no random shift for float features, and a validation split of at most a tenth of it.
    """
    if dataset == "digits":
        return CompressConfig(
            dense=TrainConfig(epochs=50, lr=0.1, batch_size=32),
            prune=PruneConfig(rounds=2, budget=0.01, retrain=TrainConfig(epochs=10, lr=0.02, batch_size=32)),
            finetune=TrainConfig(epochs=5, lr=1e-4, optimizer="adam", weight_decay=0.0, batch_size=32),
            val_size=200,
        )
    shift = 0 if train is not None and not train.is_image else 2
    cfg = CompressConfig(
        dense=TrainConfig(epochs=20, lr=0.05, augment_shift=shift),
        prune=PruneConfig(rounds=3, retrain=TrainConfig(epochs=3, lr=0.01, augment_shift=shift)),
        finetune=TrainConfig(epochs=2, lr=1e-4, optimizer="adam", weight_decay=0.0, augment_shift=shift),
        quantize=QuantConfig(auto_index_bits=False),
    )
    if train is not None:
        cfg.val_size = min(cfg.val_size, len(train) // 10)
    return cfg


CIFAR_RESNETS = ("resnet20", "resnet32", "resnet44", "resnet56")
RECIPES = ("lenet300", "lenet5", *CIFAR_RESNETS, "resnet8")


_CIFAR_AUG = {"augment_crop": 4, "augment_flip": True}  # He et al.'s CIFAR augmentation


def _resnet_recipe(model: str) -> CompressConfig:
    """Deep Compression of a pretrained CIFAR ResNet (start from ``--weights``; the dense stage is
    He et al.'s from-scratch schedule, run only without weights).

    Pruning: three rounds of sensitivity-chosen per-layer sparsity (deeper nets get a smaller
    per-layer budget, their errors add up over more layers), each retrained with SGD and the
    standard CIFAR augmentation (random crop after 4-pixel padding, horizontal flip). Weight
    sharing: DQC codebooks with a zero entry, 4 bits for the convolutions and 5 for the classifier,
    re-estimated during 8 epochs of SGD fine-tuning.
    Training runs on the captured graph, whose BatchNorm is folded into the convolutions, so the
    learning rates are lower than with BatchNorm (and training from scratch here is untested:
    train in PyTorch and pass the weights).
    """
    depth = int(model.removeprefix("resnet"))
    aug = _CIFAR_AUG
    budget = {8: 0.006, 20: 0.006, 32: 0.005, 44: 0.004, 56: 0.003}[depth]
    return CompressConfig(
        # only without --weights; untested (no BatchNorm in the captured graph, so not He et al.'s lr 0.1)
        dense=TrainConfig(epochs=200, lr=0.02, momentum=0.9, weight_decay=1e-4, batch_size=128, **aug),
        prune=PruneConfig(
            rounds=3,
            budget=budget,
            max_sparsity=0.9,
            grid=[0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9],
            # the captured graph has BatchNorm folded away: lr 0.01 already diverges, 0.002 is safe
            retrain=TrainConfig(
                epochs=15, lr=0.002, momentum=0.9, weight_decay=1e-4, batch_size=128, grad_clip=1.0, **aug
            ),
        ),
        # DQC with a zero entry: the DQC paper's best ResNet-20 codebook at 4 bits (bench/cifar_resnets.py)
        cluster=ClusterConfig(conv_bits=4, fc_bits=5, mode="dqc", dqc_zero=True),
        # clipped: an unclipped epoch took ResNet-32's 3-bit codebooks from 70 % to 42 %
        finetune=TrainConfig(
            epochs=8, lr=1e-3, momentum=0.9, weight_decay=0.0, batch_size=128, grad_clip=1.0, **aug
        ),
        quantize=QuantConfig(auto_index_bits=True),
        val_size=5000,
    )


def recipe(model: str, quick: bool = False) -> CompressConfig:
    """The recipe of a built-in network: ``lenet300``, ``lenet5`` (MNIST; what
    ``bench/deep_compression.py`` measures and ``mcu-dc demo`` / ``mcu-dc compress`` use) or
    ``resnet20|32|44|56`` (CIFAR-10, starting from pretrained weights: see :func:`_resnet_recipe`).
    ``quick`` keeps every stage but trains for an epoch or two (smoke tests); for the ResNets it
    also trains on 5,000 random training images, validates on 1,000 and measures on the first
    1,000 test images (a CPU-sized run)."""
    if model not in RECIPES:
        raise ConfigError(f"no tuned recipe for model {model!r}; the built-in ones are {', '.join(RECIPES)}")
    if model in (*CIFAR_RESNETS, "resnet8"):  # resnet8: MLPerf Tiny's, from its reference weights
        cfg = _resnet_recipe(model)
        if model == "resnet8":  # raw pixels 0..255 in: SGD's step blows up the first conv; Adam is scale-free
            cfg.prune.retrain = TrainConfig(
                epochs=15, lr=1e-4, optimizer="adam", weight_decay=0.0, batch_size=128, **_CIFAR_AUG
            )
            cfg.cluster = ClusterConfig(conv_bits=5, fc_bits=5)  # bench/results/resnet8_cpu.toml
            cfg.finetune = TrainConfig(
                epochs=8, lr=1e-4, optimizer="adam", weight_decay=0.0, batch_size=128, **_CIFAR_AUG
            )
        if quick:
            cfg.dense.epochs = 2
            cfg.prune.rounds = 1
            cfg.prune.grid = [0.5, 0.7, 0.9]
            cfg.prune.retrain.epochs = 1
            cfg.finetune.epochs = 1
            cfg.train_subset, cfg.val_size, cfg.test_subset = 5000, 1000, 1000
        return cfg
    shift = 2
    if model == "lenet300":
        cfg = CompressConfig(
            dense=TrainConfig(epochs=25, lr=0.05, weight_decay=1e-4, augment_shift=shift),
            prune=PruneConfig(
                rounds=3,
                budget=0.008,
                max_sparsity=0.98,
                retrain=TrainConfig(epochs=5, lr=0.01, weight_decay=1e-4, augment_shift=shift),
            ),
            cluster=ClusterConfig(conv_bits=8, fc_bits=4),
            finetune=TrainConfig(epochs=2, lr=1e-4, optimizer="adam", weight_decay=0.0, augment_shift=shift),
            quantize=QuantConfig(auto_index_bits=True),
        )
    else:
        cfg = CompressConfig(
            dense=TrainConfig(epochs=10, lr=0.05, weight_decay=5e-4, augment_shift=shift),
            prune=PruneConfig(
                rounds=3,
                budget=0.004,
                max_sparsity=0.98,
                grid=[0.5, 0.7, 0.8, 0.9, 0.93, 0.95, 0.97],
                retrain=TrainConfig(epochs=3, lr=0.01, weight_decay=5e-4, augment_shift=shift),
            ),
            cluster=ClusterConfig(conv_bits=8, fc_bits=5),
            finetune=TrainConfig(epochs=2, lr=1e-4, optimizer="adam", weight_decay=0.0, augment_shift=shift),
            quantize=QuantConfig(auto_index_bits=True),
        )
    if quick:
        cfg.dense.epochs = 2
        cfg.prune.rounds = 1
        cfg.prune.retrain.epochs = 1
        cfg.finetune.epochs = 1
    return cfg
