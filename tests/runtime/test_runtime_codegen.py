"""Generated C: drift-free constants header, deterministic output, one contiguous blob,
two models in one program, the host project path, and cross-compilation for Cortex-M."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess

import numpy as np
import pytest
from runtime_modelgen import WeightSpec, lenet_like, random_model

from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.simulator import simulate
from mcu_dc.deploy import codegen
from mcu_dc.deploy.cheaders import format_header, header_path
from mcu_dc.deploy.generate import generate
from mcu_dc.deploy.hostbuild import (
    HostBuildSettings,
    build_host_project,
    compile_program,
    run_program,
    runtime_dir,
)
from mcu_dc.errors import ConfigError, McuDcError


@pytest.fixture(scope="module")
def lenet_cm() -> CompressedModel:
    return CompressedModel(lenet_like(np.random.default_rng(21)), {"name": "lenet-like"})


def test_format_header_has_not_drifted():
    assert header_path().read_text(encoding="utf-8") == format_header(), (
        "firmware/runtime/mcu_dc_format.h is stale: run `python -m mcu_dc.deploy.cheaders`"
    )


def test_generated_files_are_deterministic(lenet_cm, tmp_path):
    a = codegen.render_model(lenet_cm, "net")
    b = codegen.render_model(CompressedModel(blob=lenet_cm.blob, meta=dict(lenet_cm.meta)), "net")
    assert a == b
    d1 = generate(lenet_cm, "host", tmp_path / "p1", name="net")
    d2 = generate(lenet_cm, "host", tmp_path / "p2", name="net")
    files1 = sorted(p.relative_to(d1) for p in d1.rglob("*") if p.is_file())
    files2 = sorted(p.relative_to(d2) for p in d2.rglob("*") if p.is_file())
    assert files1 == files2
    for rel in files1:
        assert (d1 / rel).read_bytes() == (d2 / rel).read_bytes(), rel


def test_blob_array_is_the_blob_in_commented_parts(lenet_cm):
    src = codegen.render_model(lenet_cm, "net")["net_model.c"]
    body = src[src.index("{") : src.rindex("}")]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2}),", body))
    assert data == lenet_cm.blob
    names = (
        "header",
        "tensor table",
        "op table",
        "codebook",
        "bias",
        "weight-symbol stream",
        "relative-index stream",
    )
    for part in names:
        assert part in body
    parts = codegen.blob_parts(lenet_cm.blob)
    assert parts[0].start == 0 and parts[-1].end == len(lenet_cm.blob)
    assert all(p.end == q.start for p, q in itertools.pairwise(parts))
    hdr = codegen.render_model(lenet_cm, "net")["net_model.h"]
    for macro in ("NET_BLOB_BYTES", "NET_ARENA_BYTES", "NET_INPUT_LEN", "NET_OUTPUT_LEN", "NET_HASH"):
        assert f"#define {macro} " in hdr
    assert f"#define NET_ARENA_BYTES {lenet_cm.model.arena_bytes()}u" in hdr
    assert f"#define NET_HASH 0x{lenet_cm.model_hash:08x}u" in hdr


def test_c_identifiers():
    assert codegen.c_identifier("lenet-300-100") == "lenet_300_100"
    assert codegen.c_identifier("5net") == "m_5net"
    assert codegen.c_identifier("int") == "model_int"
    with pytest.raises(ConfigError):
        codegen.c_identifier("--")


def test_host_project_matches_simulator(lenet_cm, tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = generate(lenet_cm, board="host", out_dir=tmp_path / "proj")
    program = build_host_project(out, sanitize=True, opt="-O1")
    x = np.random.default_rng(0).integers(0, 256, (40, lenet_cm.model.input_len), dtype=np.uint8)
    got = run_program(program, [], x, lenet_cm.model.output_len)
    assert np.array_equal(got, simulate(lenet_cm, x))


_TWO_MODELS_MAIN = r"""
#include <stdio.h>
#include "mcu_dc.h"
#include "mcu_dc_models.h"
static uint32_t arena[(ALPHA_ARENA_BYTES > BETA_ARENA_BYTES ? ALPHA_ARENA_BYTES : BETA_ARENA_BYTES) / 4 + 1];
static int run(const uint8_t *blob, uint32_t bytes, uint32_t in_len, uint32_t out_len) {
    mcu_dc_model_t m; uint8_t in[1024]; int8_t out[256]; uint32_t i;
    if (mcu_dc_model_init(&m, blob, bytes) != MCU_DC_OK || mcu_dc_model_check_crc(&m) != MCU_DC_OK) return 1;
    for (i = 0; i < in_len; i++) in[i] = (uint8_t)(i * 7u + 3u);
    if (mcu_dc_infer(&m, in, out, arena, sizeof arena) != MCU_DC_OK) return 1;
    fwrite(out, 1, out_len, stdout);
    return 0;
}
int main(void) {
    if (MCU_DC_MODEL_COUNT != 2u || &MCU_DC_DEFAULT_BLOB[0] != &alpha_blob[0]) return 2;
    return run(alpha_blob, ALPHA_BLOB_BYTES, ALPHA_INPUT_LEN, ALPHA_OUTPUT_LEN)
         | run(beta_blob, BETA_BLOB_BYTES, BETA_INPUT_LEN, BETA_OUTPUT_LEN);
}
"""


def test_two_models_link_into_one_program(lenet_cm, tmp_path):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    other = CompressedModel(random_model(5, WeightSpec(density=0.3, k=9), (1, 6, 6), [("fc", 7)]))
    src = tmp_path / "src"
    codegen.write_model_sources([lenet_cm, other], src, ["alpha", "beta"])
    (src / "main.c").write_text(_TWO_MODELS_MAIN)
    rt = runtime_dir()
    sources = [src / "main.c", src / "alpha_model.c", src / "beta_model.c", *codegen.runtime_sources()]
    prog = compile_program(sources, [src, rt], tmp_path / "two", HostBuildSettings(sanitize=True, opt="-O1"))
    out = subprocess.run([str(prog)], capture_output=True, timeout=60, check=True).stdout
    outs = []
    for cm in (lenet_cm, other):
        x = ((np.arange(cm.model.input_len) * 7 + 3) % 256).astype(np.uint8)
        outs.append(simulate(cm, x)[0])
    assert np.frombuffer(out, np.int8).tolist() == np.concatenate(outs).tolist()


@pytest.mark.arm
@pytest.mark.parametrize("cpu", ["cortex-m0", "cortex-m4"])
def test_runtime_cross_compiles_for_cortex_m(lenet_cm, tmp_path, cpu):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    codegen.write_model_sources([lenet_cm], tmp_path, ["net"])
    for src in [*codegen.runtime_sources(), tmp_path / "net_model.c"]:
        subprocess.run(
            ["arm-none-eabi-gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Os",
             f"-mcpu={cpu}", "-mthumb", f"-I{runtime_dir()}", f"-I{tmp_path}", "-c", str(src),
             "-o", str(tmp_path / "x.o")],
            check=True, timeout=120, capture_output=True,
        )  # fmt: skip


def test_unknown_board_is_a_clear_error(lenet_cm, tmp_path):
    with pytest.raises(McuDcError):
        generate(lenet_cm, board="no-such-board", out_dir=tmp_path / "x")
