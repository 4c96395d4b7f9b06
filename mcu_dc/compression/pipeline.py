"""The whole compression: capture → dense training → prune → cluster → quantize → encode.

``compress(model, train, test, config)`` returns a
:class:`mcu_dc.core.model_file.CompressedModel` whose metadata holds the task
(``meta["task"]``: classification, regression or reconstruction, from the datasets or
the config), the float model's metrics after each stage and the integer model's
(bit-exact simulator) in ``meta["metrics"]`` (``meta["accuracy"]`` too for a
classifier), the settings, the capture's notes and the compression report.

Where the dense weights came from is recorded in ``meta["dense_weights"]``: ``{"source":
"weights", "path", "sha256"}`` for a user's trained weights (``weights=``, CLI ``--weights``:
loaded into the ``nn.Module`` before capture; dense training is skipped), ``{"source":
"pretrained cache", "path"}`` for the ``pretrained=`` cache, or ``{"source": "trained"}``.

A model whose ``input_norm`` attribute is ``(mean, std)`` (the built-in CIFAR ResNets) expects
per-channel normalized inputs: uint8 image datasets are turned into
``Dataset.normalized(mean, std)`` float features for training, calibration and evaluation (the
integer model then takes int8 inputs with a calibrated scale and zero point), and
``meta["input_norm"] = {"mean": [...], "std": [...]}`` tells ``mcu-dc simulate`` and
``mcu-dc verify`` to apply the same normalization to raw images.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mcu_dc.compression import cluster, distributed, prune, sensitivity, structured
from mcu_dc.compression.capture import capture
from mcu_dc.compression.config import CompressConfig
from mcu_dc.compression.dense_weights import WeightsInfo, file_sha256, load_weights, read_checkpoint
from mcu_dc.compression.distill import Distiller, make_teacher
from mcu_dc.compression.graph import GraphNet
from mcu_dc.compression.quantize import dequantize_outputs, to_integer_model
from mcu_dc.compression.seeding import seed_everything
from mcu_dc.compression.train import check_outputs, metrics, predict_outputs, train
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.objective import choose as choose_encodings
from mcu_dc.core.objective import input_activity, objective_meta
from mcu_dc.data.datasets import Dataset
from mcu_dc.data.metrics import format_metrics, simulator_metrics
from mcu_dc.errors import ConfigError, DataError, ModelError
from mcu_dc.fileio import atomic_path
from mcu_dc.progress import ProgressSettings


@dataclass
class Artifacts:
    """What a run produced besides the model file (for plots and benchmarks)."""

    weights: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # stage -> layer -> values
    sensitivity: list[dict[str, Any]] = field(default_factory=list)  # one per pruning round
    timings: dict[str, float] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)  # classification only: stage -> accuracy
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> the task's metrics
    sparsity: dict[str, float] = field(default_factory=dict)
    qualities: dict[str, float] = field(default_factory=dict)
    float_vs_int_max_abs: float = 0.0
    dense_weights: dict[str, Any] = field(default_factory=dict)  # where the dense weights came from
    structured: dict[str, Any] = field(default_factory=dict)  # channels, MACs, arena before/after


def _device(device: str | torch.device) -> torch.device:
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return d


def _snapshot(net: GraphNet) -> dict[str, np.ndarray]:
    out = {}
    for wl in net.weight_layers():
        w = wl.effective_weight().detach().cpu().numpy().ravel()
        out[wl.name] = w[wl.mask.detach().cpu().numpy().ravel() > 0]
    return out


def _record(art: Artifacts, stage: str, m: dict[str, float], task: str) -> str:
    """Store a stage's metrics (and accuracy, for a classifier); returns them as text."""
    art.metrics[stage] = dict(m)
    if task == "classification":
        art.accuracy[stage] = float(m["accuracy"])
    return format_metrics(task, m)


def _measure(art: Artifacts, stage: str, net: Any, test_set: Dataset, dev: torch.device) -> str:
    return _record(art, stage, metrics(net, test_set, dev), test_set.task)


def split_validation(train_set: Dataset, val_size: int, seed: int) -> tuple[Dataset, Dataset]:
    if val_size <= 0:
        return train_set, train_set
    if val_size >= len(train_set):
        raise DataError(
            f"val_size {val_size} leaves no training data ({len(train_set)} samples); lower val_size"
        )
    perm = np.random.default_rng(seed).permutation(len(train_set))
    return train_set.subset(np.sort(perm[val_size:])), train_set.subset(np.sort(perm[:val_size]))


_CACHE_HINT = (
    "--pretrained is a cache of the captured graph's dense weights that mcu_dc itself writes after dense "
    "training; pass another --pretrained path, or remove that file if it is a cache you made. To start "
    "from your own trained weights (a state dict of your nn.Module) use --weights FILE instead"
)


def load_pretrained(net: GraphNet, path: Path) -> bool:
    """Load cached dense weights into ``net``; False if the file does not exist."""
    if not path.is_file():
        return False
    try:
        state = read_checkpoint(path)
    except ModelError as exc:
        raise ModelError(f"the --pretrained cache cannot be read: {exc} {_CACHE_HINT}") from None
    try:
        if not isinstance(state, dict):
            raise KeyError("(the file is not a dict of tensors)")
        for wl in net.weight_layers():
            w, b = state[f"{wl.name}.weight"], state[f"{wl.name}.bias"]
            if w.shape != wl.weight.shape or b.shape != wl.bias.shape:
                raise KeyError(wl.name)
            wl.weight.data.copy_(w)
            wl.bias.data.copy_(b)
    except KeyError as exc:
        raise ModelError(
            f"the --pretrained cache {path} does not match this model (layer {exc.args[0]!r} missing or of "
            f"another shape). {_CACHE_HINT}"
        ) from None
    return True


def model_input_norm(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The model's ``input_norm`` attribute ``(mean, std)``, per channel, or None."""
    norm = getattr(model, "input_norm", None)
    if norm is None:
        return None
    try:
        mean, std = norm
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    except (TypeError, ValueError):
        raise ModelError(
            f"{type(model).__name__}.input_norm is {norm!r}; it must be (mean, std), one value per input "
            "channel each (e.g. ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))), or None"
        ) from None


def _load_dense_weights(model: nn.Module, weights: str | Path | None) -> WeightsInfo | None:
    """``--weights`` (a torch state dict; for an MLPerf reference model also its Keras .h5, SavedModel
    folder or .tflite), or the reference weights an MLPerf model was built with; None: train here."""
    from mcu_dc.compression import mlperf

    if weights is not None and mlperf.is_mlperf(model) and Path(weights).suffix != ".pt":
        p = Path(weights)
        if p.is_dir() or p.suffix in (".h5", ".tflite"):
            model.weights_source = mlperf.load_weights(model, p).describe()  # type: ignore[assignment]
            return WeightsInfo("weights", str(p), sha256=_sha256_or_none(p))
    if weights is not None:
        return load_weights(model, weights)
    if getattr(model, "weights_source", None):
        path = getattr(model, "weights_path", None)
        return WeightsInfo("reference", str(path) if path else None, sha256=_sha256_or_none(path))
    return None


def _sha256_or_none(path: Any) -> str | None:
    p = Path(path) if path else None
    return file_sha256(p) if p is not None and p.is_file() else None


def apply_input_scale(data: Dataset, model: nn.Module) -> Dataset:
    """uint8 images at the model's own ``input_scale`` (MLPerf ResNet-8 takes raw pixels, scale 1);
    ``model`` is the user's module or the captured graph, which carries it as ``model_input_scale``."""
    scale = getattr(model, "input_scale", None)
    if isinstance(model, GraphNet):
        scale = getattr(model, "model_input_scale", None)
    if scale is None or data.is_float_input or float(scale) == float(data.input_scale):
        return data
    return dataclasses.replace(data, input_scale=float(scale))


def apply_input_norm(data: Dataset, norm: tuple[tuple[float, ...], tuple[float, ...]] | None) -> Dataset:
    """``data`` as the model sees it: uint8 images normalized with ``norm``; anything else as it is
    (float features are taken to be the model's inputs already)."""
    if norm is None or data.is_float_input:
        return data
    return data.normalized(*norm)


def _subsets(fit: Dataset, test: Dataset, cfg: CompressConfig) -> tuple[Dataset, Dataset]:
    """``cfg.train_subset`` random training samples (seeded) and the first ``cfg.test_subset`` test ones."""
    if 0 < cfg.train_subset < len(fit):
        pick = np.random.default_rng(cfg.seed + 1).permutation(len(fit))[: cfg.train_subset]
        fit = fit.subset(np.sort(pick))
    if 0 < cfg.test_subset < len(test):
        test = test.subset(np.arange(cfg.test_subset))
    return fit, test


def save_pretrained(net: GraphNet, path: Path) -> None:
    state = {}
    for wl in net.weight_layers():
        state[f"{wl.name}.weight"] = wl.weight.detach().cpu().clone()
        state[f"{wl.name}.bias"] = wl.bias.detach().cpu().clone()
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _prune_stage(
    net: GraphNet,
    fit: Dataset,
    val: Dataset,
    cfg: CompressConfig,
    dev: torch.device,
    art: Artifacts,
    progress: bool | ProgressSettings,
    teacher: nn.Module | None = None,
) -> None:
    pc = cfg.prune
    base_dropout = prune.original_dropout(net)
    layer_names = [wl.name for wl in net.weight_layers()]
    unknown = sorted(set(pc.sparsity) - set(layer_names))
    if unknown:
        raise ConfigError(f"prune.sparsity names unknown layer(s) {unknown}; the layers are {layer_names}")
    for r in range(pc.rounds):
        t0 = time.perf_counter()
        current = prune.sparsity(net)
        if pc.sparsity and set(pc.sparsity) == set(layer_names):
            target_final = pc.sparsity
            sens = None
        else:
            grid = tuple(s for s in pc.grid if s <= pc.max_sparsity)
            sens = sensitivity.analyze(
                net, val, dev, grid, progress=progress, desc=f"prune round {r + 1}/{pc.rounds}: sensitivity"
            )
            art.sensitivity.append(sens.to_dict())
            target_final = {**sens.choose(pc.budget, pc.max_sparsity, current), **pc.sparsity}
        art.timings[f"sensitivity_{r + 1}"] = time.perf_counter() - t0
        for wl in net.weight_layers():
            goal = target_final[wl.name]
            if pc.sparsity and sens is None:
                # explicit targets: ramp the kept fraction geometrically over the rounds
                keep = (1.0 - goal) ** ((r + 1) / pc.rounds)
                goal = 1.0 - keep
            if goal > current[wl.name] + 1e-9:
                q, _ = prune.prune_to_sparsity(wl, goal)
                art.qualities[wl.name] = q
        if pc.dropout_adjust:
            prune.adjust_dropout(net, base_dropout)
        t0 = time.perf_counter()
        kd = Distiller.for_stage(cfg.distill, "prune", teacher)
        desc = f"prune round {r + 1}/{pc.rounds}: retrain"
        train(net, fit, pc.retrain, dev, desc=desc, progress=progress, distiller=kd)
        art.timings[f"retrain_{r + 1}"] = time.perf_counter() - t0


def finish(
    net: GraphNet,
    *,
    model_name: str,
    fit: Dataset,
    train_set: Dataset,
    test_set: Dataset,
    cfg: CompressConfig,
    dev: torch.device,
    art: Artifacts,
    progress: bool | ProgressSettings,
    say: Any,
    original_bytes: int,
    teacher: nn.Module | None = None,
) -> CompressedModel:
    """Stage 2 (cluster + fine-tune or DQC), integer model, encoding, simulator metrics, report."""
    norm = getattr(net, "input_norm", None)
    train_set, test_set = apply_input_norm(train_set, norm), apply_input_norm(test_set, norm)
    train_set, test_set = apply_input_scale(train_set, net), apply_input_scale(test_set, net)
    train_set, test_set = cfg.datasets_for_task(train_set, test_set)
    _, test_set = _subsets(fit, test_set, cfg)
    fit = apply_input_norm(fit, norm).with_task(test_set.task)
    task = test_set.task
    for stage, acc in art.accuracy.items():  # stage-1 figures carried over by callers (bench)
        art.metrics.setdefault(stage, {"accuracy": acc})
    # stage 2
    t0 = time.perf_counter()
    cluster.cluster_net(net, cfg.cluster)
    _measure(art, "clustered", net, test_set, dev)
    on_step = None
    if cfg.cluster.uses_dqc():
        every = cfg.cluster.dqc_update_every

        def on_step(n: GraphNet, step: int) -> None:
            if step % every == 0:
                cluster.dqc_update(n, cfg.cluster)

    train(
        net,
        fit,
        cfg.finetune,
        dev,
        desc=f"finetune ({cfg.cluster.mode})",
        progress=progress,
        on_step=on_step,
        distiller=Distiller.for_stage(cfg.distill, "finetune", teacher),
    )
    cluster.finalize(net)
    art.timings["quantize_train"] = time.perf_counter() - t0
    text = _measure(art, "quantized", net, test_set, dev)
    art.weights["quantized"] = _snapshot(net)
    say(f"clustered+finetuned: test {text}")

    # integer model + encoding
    t0 = time.perf_counter()
    im = to_integer_model(net, fit, cfg.quantize, dev, model_name)
    im.task = task
    im, picks = choose_encodings(
        im,
        cfg.objective,
        activity=input_activity(im, fit.x[:256]),
        slack=cfg.slack,
        max_code_len=cfg.max_code_len,
        lut_bits=cfg.lut_bits,
        ram_tables=cfg.ram_tables,
        conv_kernel=cfg.conv_kernel,
    )
    say(
        f"encodings ({cfg.objective}): "
        + ", ".join(f"{im.layers[i].name} {o.encoding.name}" for i, o in sorted(picks.items()))
    )
    meta: dict[str, Any] = {
        "dataset": train_set.name.rsplit("-", 1)[0],
        "original_bytes": original_bytes,
        "task": task,
        "notes": [str(n) for n in getattr(net, "notes", [])],
        "dense_weights": dict(art.dense_weights) or WeightsInfo("trained").to_meta(),
        "objective": objective_meta(im, picks, cfg.objective, cfg.slack, "training images"),
    }
    if norm is not None and test_set.normalization is not None:
        mean, std = test_set.normalization
        meta["input_norm"] = {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    cm = CompressedModel(im, meta, max_code_len=cfg.max_code_len, lut_bits=cfg.lut_bits)
    art.timings["encode"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    y, int_metrics = simulator_metrics(cm.model, test_set)
    text = _record(art, "integer", int_metrics, task)
    ref = predict_outputs(net, test_set.subset(np.arange(min(500, len(test_set)))), dev).numpy()
    deq = dequantize_outputs(cm.model, y[: len(ref)])
    art.float_vs_int_max_abs = float(np.abs(deq - ref).max()) if len(ref) else 0.0
    art.timings["simulate"] = time.perf_counter() - t0
    say(f"integer (bit-exact simulator): test {text}")

    from mcu_dc.compression.report import build_report

    cm.meta.update(
        {
            "layer_names": [layer.name for layer in cm.model.layers],
            "accuracy": art.accuracy,
            "metrics": art.metrics,
            "config": cfg.to_dict(),
            "sparsity": art.sparsity,
            "quality": art.qualities,
            "float_vs_int_max_abs": art.float_vs_int_max_abs,
        }
    )
    if cfg.distill.enabled:
        cm.meta["distill"] = cfg.distill.to_meta()
    if art.structured:
        cm.meta["structured"] = art.structured
    cm.meta["report"] = build_report(cm)
    return cm


@dataclass
class Stage1:
    """State after dense training and pruning (stage 2 variants can start from copies of it)."""

    net: GraphNet
    fit: Dataset
    val: Dataset
    art: Artifacts
    original_bytes: int
    dev: torch.device
    teacher: nn.Module | None = None  # the frozen dense model, when distillation is on


def dense_and_prune(
    model: nn.Module,
    train_set: Dataset,
    test_set: Dataset,
    cfg: CompressConfig,
    *,
    device: str | torch.device = "cpu",
    pretrained: str | Path | None = None,
    weights: str | Path | None = None,
    progress: bool | ProgressSettings = True,
    say: Any = None,
) -> Stage1:
    """Capture, train (or load) the dense model, then prune it iteratively.

    ``weights``: a user's trained state dict, loaded into ``model`` before capture (dense
    training is skipped). ``pretrained``: mcu_dc's own cache of the dense graph weights.
    """
    cfg.validate()
    if weights is not None and pretrained is not None:
        raise ConfigError(
            "both weights (--weights) and a pretrained cache (--pretrained) were given; pass --weights to "
            "start from your trained state dict, or --pretrained to cache mcu_dc's own dense training"
        )
    info = _load_dense_weights(model, weights)  # before capture: BN folds it
    norm = model_input_norm(model)
    train_set, test_set = apply_input_norm(train_set, norm), apply_input_norm(test_set, norm)
    train_set, test_set = apply_input_scale(train_set, model), apply_input_scale(test_set, model)
    train_set, test_set = cfg.datasets_for_task(train_set, test_set)
    dev = distributed.setup(_device(device))  # torchrun: cuda:LOCAL_RANK, process group joined
    seed_everything(cfg.seed)
    say = say or (lambda msg: None)
    if train_set.input_shape != test_set.input_shape:
        raise DataError(f"train inputs {train_set.input_shape} and test inputs {test_set.input_shape} differ")
    art = Artifacts()
    net = capture(model, train_set.input_shape).to(dev)
    net.input_norm = norm if train_set.normalization is not None else None
    net.model_input_scale = getattr(model, "input_scale", None)  # finish() sees the same inputs
    if net.input_norm is not None:
        say(f"inputs normalized per channel: mean {list(norm[0])}, std {list(norm[1])} (int8 device input)")
    check_outputs(net, train_set, dev)
    original_bytes = 4 * net.n_params()
    fit, val = split_validation(train_set, cfg.val_size, cfg.seed)
    fit, test_set = _subsets(fit, test_set, cfg)

    t0 = time.perf_counter()
    cache = Path(pretrained) if pretrained else None
    if info is not None:
        art.dense_weights = info.to_meta()
        say(f"dense weights {info.describe()}; dense training skipped")
    elif cache is not None and load_pretrained(net, cache):
        art.dense_weights = WeightsInfo("pretrained cache", str(cache)).to_meta()
        say(f"dense weights loaded from the --pretrained cache {cache}")
        net.to(dev)
    else:
        train(net, fit, cfg.dense, dev, desc="dense", progress=progress)
        art.dense_weights = WeightsInfo("trained").to_meta()
        if cache is not None:
            if distributed.is_main():  # under torchrun only rank 0 writes files
                save_pretrained(net, cache)
            art.dense_weights["cache"] = str(cache)
    art.timings["dense"] = time.perf_counter() - t0
    text = _measure(art, "dense", net, test_set, dev)
    art.weights["dense"] = _snapshot(net)
    teacher = make_teacher(net) if cfg.distill.enabled else None
    say(f"dense ({test_set.task}): test {text}")
    if structured.enabled(cfg):  # channels go before unstructured pruning (docs/structured_pruning.md)
        t0 = time.perf_counter()
        net, art.structured = structured.run_stage(net, fit, val, cfg, dev, progress=progress, say=say)
        art.timings["structured"] = time.perf_counter() - t0
        say(f"structured: test {_measure(art, 'structured', net, test_set, dev)}")

    t0 = time.perf_counter()
    if cfg.prune.enabled:
        _prune_stage(net, fit, val, cfg, dev, art, progress, teacher)
    art.timings["prune"] = time.perf_counter() - t0
    art.sparsity = prune.sparsity(net)
    text = _measure(art, "pruned", net, test_set, dev)
    art.weights["pruned"] = _snapshot(net)
    kept = sum(wl.kept() for wl in net.weight_layers()) / sum(wl.n_weights for wl in net.weight_layers())
    say(f"pruned: {kept:.2%} of weights kept, test {text}")
    return Stage1(net, fit, val, art, original_bytes, dev, teacher)


def run_pipeline(
    model: nn.Module,
    train_set: Dataset,
    test_set: Dataset,
    config: CompressConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    name: str | None = None,
    pretrained: str | Path | None = None,
    weights: str | Path | None = None,
    progress: bool | ProgressSettings = True,
    log: Any = None,
) -> tuple[CompressedModel, Artifacts]:
    """Run every stage; returns the model and the run's artifacts."""
    cfg = config or CompressConfig()
    if not distributed.is_main():  # under torchrun only rank 0 prints
        log, progress = None, False
    say = log or (lambda msg: None)
    t_start = time.perf_counter()
    s1 = dense_and_prune(
        model,
        train_set,
        test_set,
        cfg,
        device=device,
        pretrained=pretrained,
        weights=weights,
        progress=progress,
        say=say,
    )
    cm = finish(
        s1.net,
        model_name=name or type(model).__name__.lower(),
        fit=s1.fit,
        train_set=train_set,
        test_set=test_set,
        cfg=cfg,
        dev=s1.dev,
        art=s1.art,
        progress=progress,
        say=say,
        original_bytes=s1.original_bytes,
        teacher=s1.teacher,
    )
    s1.art.timings["total"] = time.perf_counter() - t_start  # in the artifacts, never in the file
    return cm, s1.art


def compress(
    model: nn.Module,
    train: Dataset,
    test: Dataset,
    config: CompressConfig | None = None,
    **kwargs: Any,
) -> CompressedModel:
    """Deep-compress ``model`` (prune, trained quantization, Huffman) into a :class:`CompressedModel`.

    Keyword arguments: ``device`` ("cpu" | "cuda"), ``name``, ``weights`` (a file holding the
    model's trained state dict, e.g. ``torch.save(model.state_dict(), path)``: loaded into
    ``model``, dense training skipped), ``pretrained`` (mcu_dc's own cache of the dense weights:
    loaded when present, written after dense training otherwise), ``progress`` (True, False or
    :class:`mcu_dc.progress.ProgressSettings`: a bar on a terminal, plain lines in a log),
    ``log`` (a callable taking one line of text).
    """
    return run_pipeline(model, train, test, config, **kwargs)[0]
