"""The ops a firmware links: the runtime's op list names every registered op; a generated
project's copy names only its models' ops, so unused kernels are not linked, and a model
needing an op the firmware lacks is refused at init (MCU_DC_ERR_UNKNOWN_OP), never run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from runtime_modelgen import lenet_like, residual_net

from mcu_dc.core.blob import encode_blob
from mcu_dc.core.model_file import CompressedModel
from mcu_dc.core.ops import REGISTRY
from mcu_dc.core.qmath import Op
from mcu_dc.deploy import codegen
from mcu_dc.deploy.cheaders import op_list_header, op_list_path
from mcu_dc.deploy.hostbuild import HostBuildSettings, compile_program

MAIN = r"""
#include <stdio.h>
#include "mcu_dc.h"
#include "blob.h"
int main(void)
{
    mcu_dc_model_t m;
    printf("%s\n", mcu_dc_status_name(mcu_dc_model_init(&m, BLOB, sizeof BLOB)));
    return 0;
}
"""


def test_runtime_op_list_names_every_registered_op_and_has_not_drifted() -> None:
    text = op_list_path().read_text(encoding="utf-8")
    assert text == op_list_header(), "mcu_dc_op_list.h is stale: run `python -m mcu_dc.deploy.cheaders`"
    for op in REGISTRY:
        assert f"X({op.name}, {op.name.lower()})" in text


def test_generated_runtime_lists_only_the_models_ops(tmp_path: Path) -> None:
    fc_only = CompressedModel(lenet_like(np.random.default_rng(1)), {"name": "a"})
    graph = CompressedModel(residual_net(np.random.default_rng(2)), {"name": "b"})
    assert codegen.model_ops([fc_only]) != sorted(REGISTRY)
    codegen.copy_runtime(tmp_path / "one", [fc_only])
    text = (tmp_path / "one" / "mcu_dc_op_list.h").read_text(encoding="utf-8")
    for op in REGISTRY:
        assert (f"X({op.name}," in text) == (op in codegen.model_ops([fc_only]))
    codegen.copy_runtime(tmp_path / "both", [fc_only, graph])
    both = (tmp_path / "both" / "mcu_dc_op_list.h").read_text(encoding="utf-8")
    assert all(f"X({op.name}," in both for op in codegen.model_ops([fc_only, graph]))


def _init_status(tmp_path: Path, runtime_for: CompressedModel, blob: bytes) -> str:
    rt = tmp_path / "rt"
    codegen.copy_runtime(rt, [runtime_for])
    body = ", ".join(str(b) for b in blob)
    (tmp_path / "blob.h").write_text(
        "#include <stdint.h>\n"
        f"static const uint8_t BLOB_BYTES[{len(blob)}] __attribute__((aligned(4))) = {{{body}}};\n"
        "#define BLOB BLOB_BYTES\n",
        encoding="utf-8",
    )
    (tmp_path / "main.c").write_text(MAIN, encoding="utf-8")
    sources = [tmp_path / "main.c", *sorted(rt.glob("*.c"))]
    prog = compile_program(
        sources, [tmp_path, rt], tmp_path / "prog", HostBuildSettings(sanitize=True, opt="-O1")
    )
    return subprocess.run([str(prog)], capture_output=True, timeout=60, check=True, text=True).stdout.strip()


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_firmware_without_an_op_refuses_a_model_that_needs_it(tmp_path: Path) -> None:
    fc_only = CompressedModel(lenet_like(np.random.default_rng(1)), {"name": "a"})
    graph = residual_net(np.random.default_rng(2))
    assert Op.ADD in codegen.model_ops([graph]) and Op.ADD not in codegen.model_ops([fc_only])
    assert _init_status(tmp_path / "ok", fc_only, fc_only.blob) == "MCU_DC_OK"
    assert _init_status(tmp_path / "missing", fc_only, encode_blob(graph)) == "MCU_DC_ERR_UNKNOWN_OP"
