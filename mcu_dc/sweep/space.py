"""The search space of a sweep and how trials are drawn from it.

A :class:`SweepSpec` holds the experiment: how many trials, the seed, the size of the validation
split and, for each knob, the values a trial may take. It comes from the ``[sweep]`` table of a
config file, then the command line's flags override the keys they name::

    [sweep]
    samples = 16
    seed = 0
    val_size = 300                     # carved from the training set; 0: a fifth of it, at most 5,000
    sparsity = [0.5, 0.7, 0.8, 0.9]    # every weight layer's choices ...
    fc_bits = [4, 5, 6]                # codebook bits of the Linear layers
    conv_bits = [5, 8]                 # ... and of every convolution
    objective = ["size", "balanced", "speed"]
    [sweep.layer_sparsity]             # ... except the layers named here
    fc3 = [0.0, 0.5]

:func:`sample_trials` draws ``samples`` distinct trials with one seeded generator, so the same seed,
space and model give the same trials; a space with fewer combinations than ``samples`` is run whole.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mcu_dc.errors import ConfigError

OBJECTIVES = ("size", "speed", "balanced")
MAX_SAMPLES = 10_000
MAX_BITS = 8


@dataclass
class SweepSpec:
    """What to explore (values, not machine resources: those are command-line flags)."""

    samples: int = 8
    seed: int = 0
    val_size: int = 0  # 0: a fifth of the training set, at most 5,000 samples
    sparsity: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.8, 0.9, 0.95])
    layer_sparsity: dict[str, list[float]] = field(default_factory=dict)
    fc_bits: list[int] = field(default_factory=lambda: [4, 5, 6])
    conv_bits: list[int] = field(default_factory=lambda: [4, 5, 8])
    objective: list[str] = field(default_factory=lambda: ["size", "balanced", "speed"])

    def __post_init__(self) -> None:
        # where each key was set, for error messages: "sweep.fc_bits" (a file) or "--fc-bits" (a flag);
        # not a field, so no config file can set it
        self.labels: dict[str, str] = {}

    def label(self, key: str) -> str:
        return self.labels.get(key, f"sweep.{key}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Ranges of every value (the layer names are checked by :meth:`check_layers`)."""
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ConfigError(
                f"{self.label('samples')} = {self.samples} is out of range: the number of trials must be in "
                f"1..{MAX_SAMPLES:,}"
            )
        if self.seed < 0:
            raise ConfigError(f"{self.label('seed')} = {self.seed} is out of range: the seed must be >= 0")
        if self.val_size < 0:
            raise ConfigError(
                f"{self.label('val_size')} = {self.val_size} is out of range: the validation split carved "
                "from the training set must be >= 0 samples (0: a fifth of the training set, at most 5,000)"
            )
        _check_sparsities(self.label("sparsity"), self.sparsity)
        for name, values in self.layer_sparsity.items():
            _check_sparsities(f"{self.label('layer_sparsity')}.{name}", values)
        for key in ("fc_bits", "conv_bits"):
            values = getattr(self, key)
            _non_empty(self.label(key), values, f"codebook bits in 1..{MAX_BITS}")
            for i, b in enumerate(values):
                if not 1 <= b <= MAX_BITS:
                    raise ConfigError(
                        f"{self.label(key)}[{i}] = {b} is out of range: codebook bits must be in "
                        f"1..{MAX_BITS} (at most 256 shared weights per layer, the format's limit)"
                    )
        _non_empty(self.label("objective"), self.objective, " | ".join(OBJECTIVES))
        for i, o in enumerate(self.objective):
            if o not in OBJECTIVES:
                raise ConfigError(
                    f"{self.label('objective')}[{i}] = {o!r} is not an encoding objective; the allowed "
                    f"values are {', '.join(OBJECTIVES)} (the smallest blob, the fastest on a Cortex-M4, "
                    "or the fastest within the config's slack of the smallest)"
                )

    def check_layers(self, layers: Sequence[str]) -> None:
        """``layer_sparsity`` may name only the model's weight layers."""
        unknown = [n for n in self.layer_sparsity if n not in layers]
        if unknown:
            raise ConfigError(
                f"{self.label('layer_sparsity')} names unknown layer(s) {', '.join(map(repr, unknown))}; "
                f"this model's weight layers are {', '.join(map(repr, layers))} "
                "(the names `mcu-dc report` shows)"
            )


def _non_empty(label: str, values: Sequence[Any], allowed: str) -> None:
    if not values:
        raise ConfigError(f"{label} is empty: give at least one value ({allowed})")


def _check_sparsities(label: str, values: Sequence[float]) -> None:
    _non_empty(label, values, "sparsities in [0, 1)")
    for i, s in enumerate(values):
        if not 0.0 <= s < 1.0:
            raise ConfigError(
                f"{label}[{i}] = {s} is out of range: a layer's sparsity (the fraction of its weights "
                "pruned) must be in [0, 1); 0.9 keeps 10 % of the weights, 1.0 would remove the layer"
            )


@dataclass(frozen=True)
class Layer:
    """A weight layer of the captured model: its name and kind (fc, conv or dw)."""

    name: str
    kind: str


@dataclass(frozen=True)
class TrialParams:
    """One point of the space: per-layer sparsity, codebook bits and encoding objective."""

    id: str
    sparsity: dict[str, float]
    fc_bits: int | None  # None: the model has no Linear layer
    conv_bits: int | None  # None: the model has no convolution
    objective: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialParams:
        return cls(
            id=str(d["id"]),
            sparsity={str(k): float(v) for k, v in d["sparsity"].items()},
            fc_bits=None if d.get("fc_bits") is None else int(d["fc_bits"]),
            conv_bits=None if d.get("conv_bits") is None else int(d["conv_bits"]),
            objective=str(d["objective"]),
        )

    def describe(self) -> str:
        sp = " ".join(f"{n}={s:g}" for n, s in self.sparsity.items())
        bits = ", ".join(
            f"{k} {v}" for k, v in (("fc_bits", self.fc_bits), ("conv_bits", self.conv_bits)) if v is not None
        )
        return f"sparsity {sp}; {bits}; objective {self.objective}"


def _dims(spec: SweepSpec, layers: Sequence[Layer]) -> list[tuple[str, list[Any]]]:
    """Each knob and its distinct values, in a fixed order (layers first, as captured)."""
    dims: list[tuple[str, list[Any]]] = []
    for layer in layers:
        dims.append((f"sparsity:{layer.name}", _unique(spec.layer_sparsity.get(layer.name, spec.sparsity))))
    if any(layer.kind == "fc" for layer in layers):
        dims.append(("fc_bits", _unique(spec.fc_bits)))
    if any(layer.kind != "fc" for layer in layers):
        dims.append(("conv_bits", _unique(spec.conv_bits)))
    dims.append(("objective", _unique(spec.objective)))
    return dims


def _unique(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def space_size(spec: SweepSpec, layers: Sequence[Layer]) -> int:
    return math.prod(len(v) for _, v in _dims(spec, layers))


def sample_trials(spec: SweepSpec, layers: Sequence[Layer]) -> list[TrialParams]:
    """``spec.samples`` distinct trials drawn with ``spec.seed`` (the whole space, shuffled, when it has
    no more combinations than that). Trial ids are ``t000``, ``t001``, ... in drawing order."""
    spec.validate()
    spec.check_layers([layer.name for layer in layers])
    dims = _dims(spec, layers)
    sizes = [len(v) for _, v in dims]
    rng = np.random.default_rng(spec.seed)
    total = math.prod(sizes)
    picks: list[tuple[int, ...]]
    if total <= spec.samples:
        picks = list(itertools.product(*(range(n) for n in sizes)))
        order = rng.permutation(len(picks))
        picks = [picks[i] for i in order]
    else:
        seen: set[tuple[int, ...]] = set()
        picks = []
        while len(picks) < spec.samples:  # total > samples, so this ends
            p = tuple(int(rng.integers(n)) for n in sizes)
            if p not in seen:
                seen.add(p)
                picks.append(p)
    width = max(3, len(str(len(picks) - 1)))
    return [_params(f"t{i:0{width}d}", dims, p, layers) for i, p in enumerate(picks)]


def _params(
    trial_id: str, dims: list[tuple[str, list[Any]]], pick: tuple[int, ...], layers: Sequence[Layer]
) -> TrialParams:
    value = {key: values[i] for (key, values), i in zip(dims, pick, strict=True)}
    return TrialParams(
        id=trial_id,
        sparsity={layer.name: float(value[f"sparsity:{layer.name}"]) for layer in layers},
        fc_bits=value.get("fc_bits"),
        conv_bits=value.get("conv_bits"),
        objective=str(value["objective"]),
    )
