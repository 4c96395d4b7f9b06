"""``mcu-dc library --out DIR``: the mcu_dc runtime as a standalone library for an existing project.

Writes::

    DIR/
      library.json              PlatformIO manifest (name, version = mcu_dc.__version__, frameworks
                                and platforms "*", build flags, headers, examples)
      library.properties        Arduino library manifest (architectures=*)
      README.md                 how to add it to a project, and a model to it
      src/                      the runtime's sources and headers, every kernel (not trimmed to a model)
      examples/<example>/       main.c (includes mcu_dc.h and the model header, calls
                                mcu_dc_model_init / mcu_dc_infer with a caller-owned arena) and the
                                example model's generated sources (N_model.{c,h}, mcu_dc_models.h)

The example model is ``--example-model FILE`` or a tiny built-in one. A model for the user's
own project comes from ``mcu-dc generate MODEL --model-only --out DIR``. Like a generated
project, the library is written into a temporary directory and renamed into place; an existing
``DIR`` is replaced only if it is an mcu_dc library (it has ``library.json`` naming this library)
or empty.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from mcu_dc.errors import ConfigError

LIBRARY_NAME = "mcu_dc"
EXAMPLE = "hello_mcu_dc"
AUTHOR = "mcu_dc developers"
DEFAULT_URL = "https://pypi.org/project/mcu_dc/"
SENTENCE = "Runs Deep-Compression neural networks (pruned, clustered, Huffman-coded weights) from flash."
PARAGRAPH = (
    "The mcu_dc runtime: C99, no malloc, no stdio, the caller owns every buffer. Export a model "
    "compressed with mcu_dc as C arrays (mcu-dc generate MODEL --model-only) and call "
    "mcu_dc_model_init and mcu_dc_infer."
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "library",
        help="write the mcu_dc runtime as a PlatformIO / Arduino library for an existing project",
        description="Write the mcu_dc runtime (every kernel) as a standalone library: library.json "
        "(PlatformIO), library.properties (Arduino), src/ and an example. Copy it to your PlatformIO "
        "project's lib/mcu_dc/ (or lib_deps = file://DIR) and add a model with "
        "`mcu-dc generate MODEL --model-only --out DIR`.",
    )
    p.add_argument("--out", type=Path, required=True, help="the library directory to write")
    p.add_argument(
        "--example-model",
        type=Path,
        default=None,
        help="a .mcudc model for the example (default: a tiny built-in model)",
    )
    p.add_argument("--url", default=DEFAULT_URL, help=f"the library's web page (default {DEFAULT_URL})")
    p.set_defaults(func=run)


def builtin_example_model() -> Any:
    """A tiny deterministic model (conv, pool, three FCs; 56 input bytes) for the example."""
    from mcu_dc.core.model_file import CompressedModel
    from mcu_dc.core.random_models import random_model

    model = random_model(0, max_dim=8)
    model.name = "example"
    return CompressedModel(model)


def _env() -> Any:
    import jinja2

    from mcu_dc.resources import resource_dir

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "library")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def library_manifest(example_files: list[str]) -> dict[str, Any]:
    """The PlatformIO ``library.json`` of the standalone library."""
    from mcu_dc.deploy.mcuproject import library_json

    manifest: dict[str, Any] = json.loads(
        library_json(LIBRARY_NAME, "mcu_dc runtime: inference on Deep-Compression (Huffman, sparse) weights")
    )
    manifest.update(
        {
            "authors": [{"name": AUTHOR}],
            "headers": ["mcu_dc.h"],
            "examples": [{"name": EXAMPLE, "base": f"examples/{EXAMPLE}", "files": example_files}],
        }
    )
    manifest["build"] = {**manifest.get("build", {}), "srcDir": "src", "includeDir": "src"}
    return manifest


def _check_out(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"{out} exists and is a file; choose a new --out directory")
    if not any(out.iterdir()):
        return
    try:
        name = json.loads((out / "library.json").read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    if name != LIBRARY_NAME:
        raise ConfigError(
            f"{out} exists and is not an mcu_dc library (no library.json named {LIBRARY_NAME!r}); choose a "
            "new --out directory or empty this one"
        )


def write_library(out_dir: str | os.PathLike[str], example_model: Any = None, url: str = DEFAULT_URL) -> Path:
    """Write the library (see the module docstring) into ``out_dir``; returns it."""
    from mcu_dc import __version__
    from mcu_dc.core.ops import REGISTRY
    from mcu_dc.deploy import codegen

    out = Path(out_dir)
    _check_out(out)
    cm = example_model if example_model is not None else builtin_example_model()
    syms = codegen.model_symbols(codegen.model_name(cm))
    env = _env()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        codegen.copy_runtime(tmp / "src", all_ops=True)
        ex = tmp / "examples" / EXAMPLE
        model_files = codegen.write_model_sources([cm], ex, [syms.display_name])
        main = env.get_template("example_main.c.j2").render(
            example=EXAMPLE, version=__version__, symbol=syms.symbol, macro=syms.macro
        )
        (ex / "main.c").write_text(main, encoding="utf-8", newline="\n")
        files = ["main.c", *sorted(f.name for f in model_files)]
        (tmp / "library.json").write_text(
            json.dumps(library_manifest(files), indent=2) + "\n", encoding="utf-8", newline="\n"
        )
        props = env.get_template("library.properties.j2").render(
            name=LIBRARY_NAME,
            version=__version__,
            author=AUTHOR,
            sentence=SENTENCE,
            paragraph=PARAGRAPH,
            url=url,
        )
        (tmp / "library.properties").write_text(props, encoding="utf-8", newline="\n")
        readme = env.get_template("README.md.j2").render(
            name=LIBRARY_NAME,
            version=__version__,
            ops=sorted(op.name for op in REGISTRY),
            example=EXAMPLE,
            example_model=syms.display_name,
        )
        (tmp / "README.md").write_text(readme, encoding="utf-8", newline="\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def run(args: argparse.Namespace) -> int:
    cm = None
    if args.example_model is not None:
        from mcu_dc.core.model_file import load

        cm = load(args.example_model)
    out = write_library(args.out, cm, args.url)
    print(
        f"wrote the mcu_dc runtime library to {out}: copy it to your PlatformIO project's lib/mcu_dc/ "
        f"(or lib_deps = file://{out.resolve()}), add a model with `mcu-dc generate MODEL --model-only "
        "--out <your src>`, and see its README.md"
    )
    return 0
