"""The C API's argument checks, driven from a small C program compiled with ASan+UBSan."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from runtime_modelgen import lenet_like, residual_net

from mcu_dc.core.ir import InputKind
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.deploy import codegen
from mcu_dc.deploy.hostbuild import HostBuildSettings, compile_program, runtime_dir

_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "mcu_dc.h"
#include "mcu_dc_models.h"

static uint32_t arena[MCU_DC_DEFAULT_ARENA_BYTES / 4 + 2];
static uint8_t in[MCU_DC_DEFAULT_INPUT_LEN];
static int8_t out[MCU_DC_DEFAULT_OUTPUT_LEN], out_ref[MCU_DC_DEFAULT_OUTPUT_LEN];
static int failures = 0;

#define EXPECT(cond) \
    do { if (!(cond)) { printf("FAILED line %d: %s\n", __LINE__, #cond); failures++; } } while (0)

int main(void)
{
    mcu_dc_model_t m, bad;
    const uint8_t *blob = MCU_DC_DEFAULT_BLOB;
    uint32_t n = MCU_DC_DEFAULT_BLOB_BYTES, i;
    EXPECT(mcu_dc_model_init(NULL, blob, n) == MCU_DC_ERR_NULL);
    EXPECT(mcu_dc_model_init(&bad, NULL, n) == MCU_DC_ERR_NULL && bad.blob == NULL);
    EXPECT(mcu_dc_model_init(&bad, blob + 2, n - 2) == MCU_DC_ERR_ALIGN);
    EXPECT(mcu_dc_model_init(&bad, blob, 16) == MCU_DC_ERR_SIZE);
    EXPECT(mcu_dc_model_init(&bad, blob, n - 4) == MCU_DC_ERR_SIZE);
    EXPECT(mcu_dc_arena_size(&bad) == 0 && mcu_dc_input_len(NULL) == 0 && mcu_dc_output_len(&bad) == 0);
    EXPECT(mcu_dc_model_check_crc(&bad) == MCU_DC_ERR_NULL);
    EXPECT(mcu_dc_input_kind(&bad) == MCU_DC_INPUT_UINT8 && mcu_dc_input_kind(NULL) == MCU_DC_INPUT_UINT8);
    EXPECT(mcu_dc_infer(&bad, in, out, arena, sizeof arena) == MCU_DC_ERR_NULL);

    EXPECT(mcu_dc_model_init(&m, blob, n + 0) == MCU_DC_OK);
    EXPECT(mcu_dc_model_check_crc(&m) == MCU_DC_OK);
    EXPECT(mcu_dc_arena_size(&m) == MCU_DC_DEFAULT_ARENA_BYTES);
    EXPECT(mcu_dc_input_len(&m) == MCU_DC_DEFAULT_INPUT_LEN);
    EXPECT(mcu_dc_output_len(&m) == MCU_DC_DEFAULT_OUTPUT_LEN);
    EXPECT(mcu_dc_model_hash(&m) == MCU_DC_DEFAULT_HASH);
    EXPECT(mcu_dc_input_kind(&m) == EXPECTED_INPUT_KIND);
    EXPECT(mcu_dc_infer(NULL, in, out, arena, sizeof arena) == MCU_DC_ERR_NULL);
    EXPECT(mcu_dc_infer(&m, NULL, out, arena, sizeof arena) == MCU_DC_ERR_NULL);
    EXPECT(mcu_dc_infer(&m, in, NULL, arena, sizeof arena) == MCU_DC_ERR_NULL);
    EXPECT(mcu_dc_infer(&m, in, out, NULL, sizeof arena) == MCU_DC_ERR_NULL);
    EXPECT(mcu_dc_infer(&m, in, out, (uint8_t *)arena + 2, sizeof arena - 4) == MCU_DC_ERR_ARENA_ALIGN);
    EXPECT(mcu_dc_infer(&m, in, out, arena, MCU_DC_DEFAULT_ARENA_BYTES - 1) == MCU_DC_ERR_ARENA_TOO_SMALL);
    for (i = 0; i < MCU_DC_DEFAULT_INPUT_LEN; i++) in[i] = (uint8_t)(i * 13u);
    EXPECT(mcu_dc_infer(&m, in, out, arena, MCU_DC_DEFAULT_ARENA_BYTES) == MCU_DC_OK);
    EXPECT(mcu_dc_infer_ref(&m, in, out_ref, arena, MCU_DC_DEFAULT_ARENA_BYTES) == MCU_DC_OK);
    EXPECT(memcmp(out, out_ref, sizeof out) == 0);
    EXPECT(strcmp(mcu_dc_status_name(MCU_DC_ERR_CRC), "MCU_DC_ERR_CRC") == 0);
    EXPECT(strcmp(mcu_dc_status_name(MCU_DC_OK), "MCU_DC_OK") == 0);
    EXPECT(strcmp(mcu_dc_status_name((mcu_dc_status_t)99), "MCU_DC_UNKNOWN_STATUS") == 0);
    fwrite(out, 1, sizeof out, stdout);
    return failures;
}
"""


@pytest.mark.parametrize("which", ["lenet_like", "residual_net_int8"])
def test_c_api_argument_checks(tmp_path, which):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    if which == "lenet_like":
        model = lenet_like(np.random.default_rng(31))
    else:
        model = residual_net(np.random.default_rng(31), input_kind=InputKind.INT8)
    cm = CompressedModel(model)
    codegen.write_model_sources([cm], tmp_path, ["net"])
    kind = "MCU_DC_INPUT_INT8" if model.input_kind == InputKind.INT8 else "MCU_DC_INPUT_UINT8"
    (tmp_path / "main.c").write_text(f"#define EXPECTED_INPUT_KIND {kind}\n" + _MAIN)
    sources = [tmp_path / "main.c", tmp_path / "net_model.c", *codegen.runtime_sources()]
    settings = HostBuildSettings(sanitize=True, opt="-O1")
    prog = compile_program(sources, [tmp_path, runtime_dir()], tmp_path / "api", settings)
    proc = subprocess.run([str(prog)], capture_output=True, timeout=60, check=False)
    failures = [line for line in proc.stdout.split(b"\n") if line.startswith(b"FAILED")]
    assert proc.returncode == 0 and not failures, (failures, proc.stderr.decode())
    from mcu_dc.core.simulator import simulate

    x = (np.arange(cm.model.input_len) * 13 % 256).astype(np.uint8)  # the bytes main.c feeds
    if model.input_kind == InputKind.INT8:
        x = x.view(np.int8)  # an INT8-input model reads them as int8 values
    assert np.frombuffer(proc.stdout, np.int8).tolist() == simulate(cm, x)[0].tolist()
