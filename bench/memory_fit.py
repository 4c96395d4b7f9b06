"""Flash and RAM per board: compressed LeNet-300-100 and LeNet-5 against their dense int8 builds.

Every figure comes from the linker (``--print-memory-usage``, the map file and
``arm-none-eabi-size``) of the full firmware (runtime, serial-protocol app, BSP, model,
arena, stack) built with the system ``arm-none-eabi-gcc`` for each board in ``boards/``.
A build that overflows its board is linked once more against an oversized map to measure
it (``fits`` false, overflow in bytes).

Models: the compressed ``.mcudc`` files that ``bench/deep_compression.py`` writes to
``bench/results/`` (``lenet300_deep_compression.mcudc``, ``lenet5_deep_compression.mcudc``)
when present; otherwise a clearly labelled SYNTHETIC stand-in of the same shape with the
paper's kept fractions (Han et al. 2016, table 2/3) and codebook sizes, random weights.
The dense int8 build stores every weight as int8 (``Encoding.DENSE_INT8``), same layers.

    python bench/memory_fit.py [--boards a,b,...] [--out bench/results]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mcu_dc.core.ir import FC, Conv2D, Encoding, IntegerModel, MaxPool2D, Requant  # noqa: E402
from mcu_dc.core.model_file import CompressedModel  # noqa: E402
from mcu_dc.core.model_file import load as load_model  # noqa: E402

# (name, kept fraction, codebook bits) per weight layer, Han et al. 2016 tables 2 and 3
# (conv: 8-bit codebooks; FC: 5 bits).
LENET300_PAPER = (("fc1", 0.08, 5), ("fc2", 0.09, 5), ("fc3", 0.26, 5))
LENET5_PAPER = (("conv1", 0.66, 8), ("conv2", 0.12, 8), ("fc1", 0.08, 5), ("fc2", 0.19, 5))


def _assign(rng: np.random.Generator, rows: int, fan_in: int, keep: float, bits: int) -> np.ndarray:
    k = 1 << bits
    a = rng.integers(0, k, size=(rows, fan_in)).astype(np.int16)
    a[rng.random((rows, fan_in)) >= keep] = -1
    return a


def _codebook(rng: np.random.Generator, bits: int) -> np.ndarray:
    k = 1 << bits
    return np.sort(rng.choice(np.arange(-128, 128), size=k, replace=False)).astype(np.int8)


def _fc(
    rng: np.random.Generator,
    name: str,
    in_shape: tuple[int, int, int],
    out: int,
    keep: float,
    bits: int,
    in_zp: int,
    relu: bool,
) -> FC:
    fan_in = in_shape[0] * in_shape[1] * in_shape[2]
    return FC(
        name=name,
        in_shape=in_shape,
        out_features=out,
        codebook=_codebook(rng, bits),
        assign=_assign(rng, out, fan_in, keep, bits),
        bias=rng.integers(-2000, 2000, size=out).astype(np.int32),
        requant=Requant.from_real(0.5 / np.sqrt(fan_in * keep * 127 * 64)),
        in_zp=in_zp,
        out_zp=-128 if relu else 0,
        act_min=-128,
        act_max=127,
    )


def synthetic_lenet300(
    seed: int = 0, spec: tuple[tuple[str, float, int], ...] = LENET300_PAPER
) -> IntegerModel:
    """784-300-100-10 with the paper's kept fractions and 5-bit codebooks; random weights."""
    rng = np.random.default_rng(seed)
    dims = [(1, 28, 28), (300, 1, 1), (100, 1, 1)]
    outs = [300, 100, 10]
    layers = []
    in_zp = -128
    for i, ((name, keep, bits), shape, out) in enumerate(zip(spec, dims, outs, strict=True)):
        layer = _fc(rng, name, shape, out, keep, bits, in_zp, relu=i < 2)
        layers.append(layer)
        in_zp = layer.out_zp
    return IntegerModel(layers, (1, 28, 28), 1 / 255, 0.1, 0, name="lenet300_synthetic")


def synthetic_lenet5(seed: int = 0, spec: tuple[tuple[str, float, int], ...] = LENET5_PAPER) -> IntegerModel:
    """Caffe LeNet-5 (20 and 50 5x5 convs, 500 and 10 FC) with the paper's kept fractions."""
    rng = np.random.default_rng(seed)
    (n1, k1, b1), (n2, k2, b2), (n3, k3, b3), (n4, k4, b4) = spec
    conv1 = Conv2D(
        n1,
        (1, 28, 28),
        20,
        (5, 5),
        (1, 1),
        (0, 0),
        _codebook(rng, b1),
        _assign(rng, 20, 25, k1, b1),
        rng.integers(-500, 500, 20).astype(np.int32),
        Requant.from_real(0.003),
        -128,
        -128,
    )
    pool1 = MaxPool2D("pool1", conv1.out_shape, (2, 2), (2, 2), -128)
    conv2 = Conv2D(
        n2,
        pool1.out_shape,
        50,
        (5, 5),
        (1, 1),
        (0, 0),
        _codebook(rng, b2),
        _assign(rng, 50, 500, k2, b2),
        rng.integers(-500, 500, 50).astype(np.int32),
        Requant.from_real(0.002),
        -128,
        -128,
    )
    pool2 = MaxPool2D("pool2", conv2.out_shape, (2, 2), (2, 2), -128)
    fc1 = _fc(rng, n3, pool2.out_shape, 500, k3, b3, -128, relu=True)
    fc2 = _fc(rng, n4, (500, 1, 1), 10, k4, b4, -128, relu=False)
    return IntegerModel(
        [conv1, pool1, conv2, pool2, fc1, fc2], (1, 28, 28), 1 / 255, 0.1, 0, name="lenet5_synthetic"
    )


def dense_int8(model: IntegerModel) -> IntegerModel:
    """The same network with every weight layer stored as dense int8 (the baseline)."""
    m = copy.deepcopy(model)
    for layer in m.layers:
        if isinstance(layer, (FC, Conv2D)):
            layer.encoding = Encoding.DENSE_INT8
    m.name = f"{model.name}_dense"
    return m


def models(
    results_dir: Path, explicit: dict[str, Path] | None = None
) -> dict[str, tuple[CompressedModel, str]]:
    """``{label: (compressed model, provenance)}``: an explicit file (``--model label=PATH``),
    else the file bench/deep_compression.py saved, else the synthetic stand-in."""
    out: dict[str, tuple[CompressedModel, str]] = {}
    explicit = explicit or {}
    for label, fname, make in (
        ("lenet300", "lenet300_deep_compression.mcudc", synthetic_lenet300),
        ("lenet5", "lenet5_deep_compression.mcudc", synthetic_lenet5),
    ):
        path = explicit.get(label, results_dir / fname)
        if label in explicit and not path.is_file():
            raise SystemExit(f"--model {label}={path}: no such file")
        if path.is_file():
            out[label] = (
                load_model(path),
                f"trained: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}",
            )
        else:
            out[label] = (
                CompressedModel(make()),
                "SYNTHETIC stand-in (paper's kept % and bits, random weights)",
            )
    return out


def measure(cm: CompressedModel, board: str, work: Path, name: str) -> dict[str, Any]:
    from mcu_dc.deploy.armbuild import build_project
    from mcu_dc.deploy.mcuproject import write_mcu_project

    proj = write_mcu_project(cm, board, work / f"{name}-{board}", name=name)
    fit = build_project(proj, check_fit=False).fit
    return fit.to_json()


def main(argv: list[str] | None = None) -> int:
    from mcu_dc.deploy.boards import list_boards

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", help="comma-separated board ids (default: all)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--models-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="use this .mcudc for lenet300 or lenet5 (e.g. one written by `mcu-dc compress`)",
    )
    ap.add_argument(
        "--provenance",
        action="append",
        default=[],
        metavar="LABEL=TEXT",
        help="how an explicit model was made (printed in the results)",
    )
    args = ap.parse_args(argv)
    explicit = {k: Path(v) for k, v in (m.split("=", 1) for m in args.model)}
    notes = dict(m.split("=", 1) for m in args.provenance)
    boards = [b.id for b in list_boards()]
    if args.boards:
        boards = [b.strip() for b in args.boards.split(",") if b.strip()]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    sources: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="mcu_dc_memfit_") as tmp:
        for label, (cm, provenance) in models(Path(args.models_dir), explicit).items():
            sources[label] = provenance + (f" ({notes[label]})" if label in notes else "")
            variants = {"compressed": cm, "dense_int8": CompressedModel(dense_int8(cm.model))}
            for variant, model in variants.items():
                for board in boards:
                    fit = measure(model, board, Path(tmp), f"{label}_{variant}")
                    row = {"model": label, "variant": variant, "blob_bytes": len(model.blob), **fit}
                    for key in ("elf", "map", "elf_sections"):
                        row.pop(key, None)
                    rows.append(row)
                    print(
                        f"{label:9s} {variant:10s} {board:17s} "
                        f"flash {fit['flash_used']:>8,d}/{fit['flash_total']:>9,d}  "
                        f"RAM {fit['ram_used']:>7,d}/{fit['ram_total']:>7,d}  "
                        f"{'fits' if fit['fits'] else 'DOES NOT FIT'}",
                        flush=True,
                    )
    command = "python bench/memory_fit.py" + (" " + shlex.join(argv) if argv else "")
    result = {"command": command, "machine": platform.machine(), "models": sources, "rows": rows}
    (out_dir / "memory_fit.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "memory_fit.md").write_text(render_md(result))
    print(f"wrote {out_dir / 'memory_fit.md'} and memory_fit.json")
    return 0


def render_md(result: dict[str, Any]) -> str:
    lines = [
        "```",
        result["command"],
        "```",
        "",
        "# Memory fit per board (mcu_dc)",
        "",
        "Whole firmware (runtime + serial-protocol app + BSP + model + arena + stack), linked with the "
        "system arm-none-eabi-gcc 12 (`-Os`, `--gc-sections`, newlib-nano) against each board's real "
        "flash and RAM; figures from the linker (`--print-memory-usage`, map file, `arm-none-eabi-size`). "
        "A build that overflows is measured with an oversized memory map. Models:",
        "",
    ]
    for label, prov in result["models"].items():
        lines.append(f"* **{label}**: {prov}")
    lines += [
        "",
        "## Summary",
        "",
        "| model | variant | blob B | boards it fits | on qemu-microbit |",
        "|---|---|---:|---|---|",
    ]
    seen: list[tuple[str, str]] = []
    for r in result["rows"]:
        if (r["model"], r["variant"]) not in seen:
            seen.append((r["model"], r["variant"]))
    for model, variant in seen:
        rows = [r for r in result["rows"] if r["model"] == model and r["variant"] == variant]
        fits = [r["board"] for r in rows if r["fits"]]
        mb = next((r for r in rows if r["board"] == "qemu-microbit"), None)
        if mb is None:
            mb_text = "not measured"
        elif mb["fits"]:
            mb_text = f"fits: {mb['flash_used']:,d} B flash, {mb['ram_used']:,d} B RAM"
        else:
            over = [f"flash by {mb['flash_over']:,d} B"] if mb["flash_over"] else []
            over += [f"RAM by {mb['ram_over']:,d} B"] if mb["ram_over"] else []
            mb_text = "**does not fit**: over " + " and ".join(over)
        lines.append(
            f"| {model} | {variant} | {rows[0]['blob_bytes']:,d} | {len(fits)} of {len(rows)} | {mb_text} |"
        )
    lines += [
        "",
        "## Per board",
        "",
        "| model | variant | board | blob B | flash used | flash budget | RAM used | RAM budget "
        "| model flash | runtime flash | arena | fits |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        s = r["sections"]
        over = []
        if r["flash_over"]:
            over.append(f"flash +{r['flash_over']:,d} B")
        if r["ram_over"]:
            over.append(f"RAM +{r['ram_over']:,d} B")
        fits = "yes" if r["fits"] else "**no** (" + ", ".join(over) + ")"
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['board']} | {r['blob_bytes']:,d} | {r['flash_used']:,d} | "
            f"{r['flash_total']:,d} | {r['ram_used']:,d} | {r['ram_total']:,d} | {s['model']['flash']:,d} | "
            f"{s['runtime']['flash']:,d} | {s['arena']['ram']:,d} | {fits} |"
        )
    ref = next(
        (
            r
            for r in result["rows"]
            if r["model"] == "lenet300" and r["variant"] == "compressed" and r["board"] == "qemu-mps2-an386"
        ),
        None,
    )
    if ref is not None:
        lines += [
            "",
            "For scale (issue 5): TensorFlow Lite Micro with CMSIS-NN runs an int8 LeNet-300-100 on "
            "qemu-mps2-an386 with 320 KB flash (40 KB runtime + 280 KB model) and 7.2 KB RAM, and does "
            f"not fit a micro:bit. mcu_dc's compressed LeNet-300-100 firmware here: {ref['flash_used']:,d} B "
            f"flash ({ref['sections']['model']['flash']:,d} B model, "
            f"{ref['sections']['runtime']['flash']:,d} B runtime) and {ref['ram_used']:,d} B RAM "
            f"(of which {ref['sections']['stack']['ram']:,d} B "
            f"reserved stack; worst-case stack from the call graph {ref['stack'].get('worst_case')} B).",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
