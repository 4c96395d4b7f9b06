"""The validator's size arithmetic at the 32-bit edges, driven from a C program (ASan+UBSan).

Issue 12 found two impossible models the runtime once accepted: a conv whose fan-in
exceeds INT32_MAX (the fast kernel cast it to int32_t and disagreed with the reference)
and a conv whose int32 scratch (4 * conv_h * conv_w) wraps in 32 bits. Both are built
here as op nodes with otherwise consistent geometry, so the check under test is the one
that refuses them.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from runtime_modelgen import hdr_off, lenet_like, op_off, patch, read_field

from mcu_dc.core import layout as L
from mcu_dc.core.blob import encode_blob
from mcu_dc.deploy.codegen import runtime_sources
from mcu_dc.deploy.hostbuild import HostBuildSettings, compile_program, runtime_dir

_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "mcu_dc_internal.h"

static int failures = 0;
#define EXPECT(cond) \
    do { if (!(cond)) { printf("FAILED line %d: %s\n", __LINE__, #cond); failures++; } } while (0)

static uint8_t blob[1024];

/* A conv node: in (c, h, w), kernel kh x kw, stride 1, symmetric pads, 1 output channel. */
static mcu_dc_node_t conv(uint32_t c, uint32_t h, uint32_t w, uint32_t kh, uint32_t kw, uint32_t ph,
                          uint32_t pw)
{
    mcu_dc_node_t n;
    memset(&n, 0, sizeof n);
    n.op = MCU_DC_OP_CONV2D;
    n.encoding = MCU_DC_ENC_DENSE_INT8;
    n.in_c = c; n.in_h = h; n.in_w = w;
    n.kernel_h = kh; n.kernel_w = kw; n.stride_h = 1; n.stride_w = 1;
    n.pad_top = n.pad_bottom = ph; n.pad_left = n.pad_right = pw;
    n.out_c = 1;
    n.shift = 8; n.multiplier = 1 << 20; n.act_min = -128; n.act_max = 127;
    n.bias_off = 16; n.weights_off = 32;
    mcu_dc_op_impl(MCU_DC_OP_CONV2D)->derive(&n);
    n.out_h = n.conv_h; n.out_w = n.conv_w;
    return n;
}

int main(void)
{
    const mcu_dc_op_impl_t *op = mcu_dc_op_impl(MCU_DC_OP_CONV2D);
    mcu_dc_node_t n;

    /* fan_in = 65535 * 511 * 511 (> 2^32): saturates, refused as a shape */
    n = conv(65535u, 1u, 1u, 511u, 511u, 255u, 255u);
    EXPECT(n.conv_h == 1u && n.conv_w == 1u);
    EXPECT(n.fan_in == 0xFFFFFFFFu);
    EXPECT(op->validate(&n, blob, sizeof blob) == MCU_DC_ERR_SHAPE);

    /* fan_in = 32768 * 256 * 256 = 2^31, one more than INT32_MAX: refused */
    n = conv(32768u, 1u, 1u, 256u, 256u, 128u, 128u);
    EXPECT(n.fan_in == 0x80000000u && n.conv_h == 2u);
    EXPECT(op->validate(&n, blob, sizeof blob) == MCU_DC_ERR_SHAPE);

    /* fan_in = 32767 * 256 * 256 < 2^31 passes the shape check; its weights do not fit this
     * small blob, so the next check (the weight section) refuses it instead */
    n = conv(32767u, 1u, 1u, 256u, 256u, 128u, 128u);
    n.n_entries = n.rows * n.fan_in;
    EXPECT(n.fan_in == 32767u * 65536u);
    EXPECT(op->validate(&n, blob, sizeof blob) == MCU_DC_ERR_OFFSET);

    /* scratch: a 1x1 conv over a 40000 x 40000 map, max-pooled 255/255 to 156 x 156:
     * 4 * 40000 * 40000 bytes = 6.4e9 > 2^32 is returned exactly, not wrapped */
    n = conv(1u, 40000u, 40000u, 1u, 1u, 0u, 0u);
    n.pool_kh = n.pool_kw = n.pool_sh = n.pool_sw = 255u;
    n.out_h = n.out_w = 156u;
    EXPECT(op->scratch_size(&n) == 6400000000ull);
    EXPECT(op->scratch_size(&n) > 0xFFFFFFFFull);
    return failures;
}
"""

_GRAPH_SCRATCH = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mcu_dc.h"

/* blob file -> status name of mcu_dc_model_init */
int main(int argc, char **argv)
{
    static uint32_t mem[1 << 16];
    mcu_dc_model_t m;
    FILE *f = fopen(argv[1], "rb");
    size_t n;
    (void)argc;
    if (f == NULL) return 2;
    n = fread(mem, 1, sizeof mem, f);
    fclose(f);
    printf("%s\n", mcu_dc_status_name(mcu_dc_model_init(&m, (const uint8_t *)mem, (uint32_t)n)));
    return 0;
}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("bounds")
    rt = runtime_dir()
    settings = HostBuildSettings(opt="-O1", sanitize=True)
    (d / "bounds.c").write_text(_MAIN)
    (d / "init.c").write_text(_GRAPH_SCRATCH)
    nodes = compile_program([*runtime_sources(), d / "bounds.c"], [rt], d / "bounds", settings)
    init = compile_program([*runtime_sources(), d / "init.c"], [rt], d / "init", settings)
    return nodes, init


def test_fan_in_and_scratch_bounds(built):
    proc = subprocess.run([str(built[0])], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_scratch_past_32_bits_is_refused_in_a_blob(built, tmp_path):
    """A real v2 blob whose conv scratch is moved to the end of a 4 GiB arena claim: refused, not wrapped."""
    model = lenet_like(np.random.default_rng(0))
    blob = encode_blob(model)
    conv = next(i for i, op in enumerate(model.layers) if type(op).__name__ == "Conv2D")
    sc = read_field(blob, L.OP, op_off(blob, conv, "scratch_off"), "scratch_off")
    assert sc > 0
    data = patch(blob, L.OP, op_off(blob, conv, "scratch_off"), "scratch_off", 0xFFFFFFFC)
    data = patch(data, L.HEADER, hdr_off("arena_bytes"), "arena_bytes", 0xFFFFFFFC)
    path = tmp_path / "b.bin"
    path.write_bytes(data)
    out = subprocess.run([str(built[1]), str(path)], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "MCU_DC_ERR_ARENA_PLAN"
    path.write_bytes(blob)
    out = subprocess.run([str(built[1]), str(path)], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "MCU_DC_OK"
