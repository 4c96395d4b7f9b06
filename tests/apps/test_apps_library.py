"""`mcu-dc library` and `mcu-dc generate --model-only`, played as a user would: the runtime
library and a model export dropped into an "existing project" whose own main.c calls
mcu_dc_model_init / mcu_dc_infer with a caller-owned arena, built with the system toolchains
(host gcc: outputs equal the simulator's exactly; arm-none-eabi-gcc: compiles and links with
-Werror for a Cortex-M4). The manifests are checked with PlatformIO's own parser, offline."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import HOST_CFLAGS, need

from mcu_dc import __version__
from mcu_dc.cli import main
from mcu_dc.commands.library import write_library
from mcu_dc.core.ops import REGISTRY
from mcu_dc.core.simulator import simulate
from mcu_dc.data.datasets import load_dataset
from mcu_dc.deploy import codegen
from mcu_dc.deploy.generate import export_model
from mcu_dc.errors import ConfigError

USER_MAIN = r"""
/* An existing project's main: reads raw inputs on stdin, writes int8 outputs on stdout. */
#include <stdint.h>
#include <stdio.h>

#include "mcu_dc.h"
#include "digits_huffman_model.h"

static uint32_t arena[(DIGITS_HUFFMAN_ARENA_BYTES + 3u) / 4u];

int main(void)
{
    static uint8_t in[DIGITS_HUFFMAN_INPUT_LEN];
    static int8_t out[DIGITS_HUFFMAN_OUTPUT_LEN];
    mcu_dc_model_t m;
    mcu_dc_status_t st = mcu_dc_model_init(&m, digits_huffman_blob, DIGITS_HUFFMAN_BLOB_BYTES);

    if (st != MCU_DC_OK || mcu_dc_arena_size(&m) > sizeof arena) {
        fprintf(stderr, "init: %s\n", mcu_dc_status_name(st));
        return 2;
    }
    while (fread(in, 1, sizeof in, stdin) == sizeof in) {
        st = mcu_dc_infer(&m, in, out, arena, (uint32_t)sizeof arena);
        if (st != MCU_DC_OK) {
            fprintf(stderr, "infer: %s\n", mcu_dc_status_name(st));
            return 3;
        }
        fwrite(out, 1, sizeof out, stdout);
    }
    return 0;
}
"""

USER_MAIN_BARE = r"""
/* The same project on a Cortex-M: no stdio; the result goes to a global a debugger reads. */
#include <stdint.h>

#include "mcu_dc.h"
#include "digits_huffman_model.h"

static uint32_t arena[(DIGITS_HUFFMAN_ARENA_BYTES + 3u) / 4u];
static uint8_t in[DIGITS_HUFFMAN_INPUT_LEN];
static int8_t out[DIGITS_HUFFMAN_OUTPUT_LEN];
volatile int32_t user_result;

int main(void)
{
    mcu_dc_model_t m;
    mcu_dc_status_t st = mcu_dc_model_init(&m, digits_huffman_blob, DIGITS_HUFFMAN_BLOB_BYTES);

    if (st == MCU_DC_OK) {
        st = mcu_dc_infer(&m, in, out, arena, (uint32_t)sizeof arena);
    }
    user_result = st == MCU_DC_OK ? out[0] : -1;
    return (int)st;
}
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_library(tmp_path_factory.mktemp("lib") / "mcu_dc")


@pytest.fixture(scope="module")
def user_project(tmp_path_factory: pytest.TempPathFactory, library: Path, digits_cm) -> Path:
    """An existing project: its own main.c, lib/mcu_dc/ (the library), src/model/ (the export)."""
    root = tmp_path_factory.mktemp("user") / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.c").write_text(USER_MAIN)
    (root / "src" / "main_bare.c").write_text(USER_MAIN_BARE)
    shutil.copytree(library, root / "lib" / "mcu_dc")
    export_model(digits_cm, root / "src" / "model")
    return root


def _c_sources(project: Path) -> list[str]:
    return [
        *map(str, sorted((project / "lib" / "mcu_dc" / "src").glob("*.c"))),
        *map(str, sorted((project / "src" / "model").glob("*.c"))),
    ]


def _includes(project: Path) -> list[str]:
    return [f"-I{project / 'lib' / 'mcu_dc' / 'src'}", f"-I{project / 'src' / 'model'}"]


def test_library_layout(library: Path) -> None:
    src = {p.name for p in (library / "src").iterdir()}
    runtime = {p.name for p in [*codegen.runtime_sources(), *codegen.runtime_headers()]}
    assert src == runtime and "mcu_dc.h" in src
    op_list = (library / "src" / "mcu_dc_op_list.h").read_text()
    assert all(f"X({op.name}, {op.name.lower()})" in op_list for op in REGISTRY)  # not trimmed
    ex = library / "examples" / "hello_mcu_dc"
    want = {"main.c", "example_model.c", "example_model.h", "mcu_dc_models.h"}
    assert {p.name for p in ex.iterdir()} == want
    main_c = (ex / "main.c").read_text()
    assert '#include "mcu_dc.h"' in main_c and '#include "example_model.h"' in main_c


def test_library_json_validates_with_platformio(library: Path, monkeypatch) -> None:
    pytest.importorskip("platformio")
    from platformio.package.manifest.parser import ManifestFileType, ManifestParserFactory
    from platformio.package.manifest.schema import ManifestSchema

    # The license check downloads SPDX's list; offline, give it the one id we use.
    spdx = {"licenses": [{"licenseId": "Apache-2.0"}]}
    monkeypatch.setattr(ManifestSchema, "load_spdx_licenses", staticmethod(lambda: spdx))
    raw = json.loads((library / "library.json").read_text())
    parsed = ManifestParserFactory.new(
        (library / "library.json").read_text(), ManifestFileType.LIBRARY_JSON, package_dir=str(library)
    ).as_dict()
    valid = ManifestSchema().load_manifest(parsed)
    assert valid["name"] == "mcu_dc" and valid["version"] == __version__
    assert valid["frameworks"] == ["*"] and valid["platforms"] == ["*"]
    assert valid["headers"] == ["mcu_dc.h"]
    assert valid["examples"][0]["base"] == "examples/hello_mcu_dc"
    assert raw["build"]["flags"] == ["-std=c99"] and raw["build"]["srcDir"] == "src"
    # PlatformIO picks the manifest from the folder the way `lib_deps = file://...` does.
    assert ManifestParserFactory.new_from_dir(str(library)).as_dict()["name"] == "mcu_dc"
    # A broken manifest is refused by the same check (the test can fail).
    with pytest.raises(Exception, match="version"):
        ManifestSchema().load_manifest({k: v for k, v in parsed.items() if k != "version"})


def test_library_properties_is_an_arduino_manifest(library: Path, monkeypatch) -> None:
    text = (library / "library.properties").read_text()
    props = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    for key in ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url"):
        assert props.get(key), key
    assert props["version"] == __version__ and props["architectures"] == "*"
    assert props["category"] in {
        "Display", "Communication", "Signal Input/Output", "Sensors", "Device Control", "Timing",
        "Data Storage", "Data Processing", "Other",
    }  # fmt: skip
    pytest.importorskip("platformio")
    from platformio.package.manifest.parser import ManifestFileType, ManifestParserFactory
    from platformio.package.manifest.schema import ManifestSchema

    parsed = ManifestParserFactory.new(text, ManifestFileType.LIBRARY_PROPERTIES).as_dict()
    parsed.pop("license", None)
    assert ManifestSchema().load_manifest(parsed)["name"] == "mcu_dc"


@pytest.mark.slow
def test_library_example_builds_and_runs_on_the_host(library: Path, tmp_path: Path) -> None:
    cc = need("gcc")
    ex = library / "examples" / "hello_mcu_dc"
    exe = tmp_path / "hello"
    sources = [*map(str, sorted(ex.glob("*.c"))), *map(str, sorted((library / "src").glob("*.c")))]
    subprocess.run(
        [cc, *HOST_CFLAGS, f"-I{library / 'src'}", f"-I{ex}", *sources, "-o", str(exe)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert subprocess.run([str(exe)], timeout=30, check=False).returncode == 0


@pytest.mark.slow
def test_user_project_on_the_host_equals_the_simulator(user_project: Path, digits_cm, tmp_path: Path) -> None:
    cc = need("gcc")
    exe = tmp_path / "user"
    proc = subprocess.run(
        [cc, *HOST_CFLAGS, *_includes(user_project), str(user_project / "src" / "main.c"),
         *_c_sources(user_project), "-o", str(exe)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    x = load_dataset("digits", "test").images[:100].reshape(100, -1)
    run = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True, timeout=60, check=True)
    got = np.frombuffer(run.stdout, dtype=np.int8).reshape(100, -1)
    assert np.array_equal(got, simulate(digits_cm, x))


@pytest.mark.arm
def test_user_project_links_for_a_cortex_m4(user_project: Path, tmp_path: Path) -> None:
    gcc = need("arm-none-eabi-gcc")
    elf = tmp_path / "user.elf"
    flags = ["-mcpu=cortex-m4", "-mthumb", "-std=c99", "-Os", "-Wall", "-Wextra", "-Werror"]
    proc = subprocess.run(
        [gcc, *flags, *_includes(user_project), str(user_project / "src" / "main_bare.c"),
         *_c_sources(user_project), "--specs=nosys.specs", "-Wl,--gc-sections", "-o", str(elf)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    nm = subprocess.run(
        [need("arm-none-eabi-nm"), str(elf)], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    symbols = {line.split()[-1]: line.split()[-2] for line in nm.splitlines() if len(line.split()) >= 2}
    assert symbols.get("digits_huffman_blob") in {"R", "r"}  # the blob sits in read-only memory (flash)
    assert "mcu_dc_infer" in symbols and "user_result" in symbols


def test_model_only_export_writes_only_the_model(tmp_path: Path, digits_cm, capsys) -> None:
    out = tmp_path / "src"
    out.mkdir()
    (out / "app.c").write_text("/* the user's own file */\n")
    model = tmp_path / "digits.mcudc"
    digits_cm.save(model)
    assert main(["generate", str(model), "--model-only", "--out", str(out), "--name", "net"]) == 0
    assert "mcu-dc library" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"app.c", "net_model.c", "net_model.h", "mcu_dc_models.h"}
    assert (out / "app.c").read_text() == "/* the user's own file */\n"
    assert "#define NET_ARENA_BYTES" in (out / "net_model.h").read_text()
    with pytest.raises(ConfigError, match="is a file"):
        export_model(digits_cm, out / "app.c")


def test_library_cli_and_out_dir_guard(tmp_path: Path, capsys, digits_cm) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    assert main(["library", "--out", str(other)]) == 2
    assert "not an mcu_dc library" in capsys.readouterr().err and (other / "keep.txt").is_file()
    model = tmp_path / "digits.mcudc"
    digits_cm.save(model)
    out = tmp_path / "lib"
    assert main(["library", "--out", str(out)]) == 0
    assert main(["library", "--out", str(out), "--example-model", str(model)]) == 0  # replaces it
    ex = out / "examples" / "hello_mcu_dc"
    assert (ex / "digits_huffman_model.h").is_file() and not (ex / "example_model.h").exists()
    assert json.loads((out / "library.json").read_text())["examples"][0]["files"][0] == "main.c"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left
