"""The two fast HUFFMAN_SPARSE FC kernels: the fused window kernel (targets with unaligned
loads: Cortex-M3/M4/M7, hosts) and the chunked kernel (Cortex-M0, or -DMCU_DC_FC_WINDOW=0),
each built on the host with ASan+UBSan, equal the simulator (and the reference kernels) on
random models of every Huffman setting and on the committed size-objective LeNet-300-100."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runtime_modelgen import model_inputs, plans, random_model, shapes, weight_specs

from mcu_dc.core.model_file import CompressedModel, load
from mcu_dc.core.simulator import device_input, simulate
from mcu_dc.data.datasets import load_dataset
from mcu_dc.deploy.hostbuild import HostBuildSettings, compile_program, run_blob, runtime_dir

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


@pytest.fixture(scope="module", params=[1, 0], ids=["window", "chunked"])
def fc_runner(request, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    from mcu_dc.deploy.codegen import runtime_sources

    rt = runtime_dir()
    out = tmp_path_factory.mktemp(f"fc{request.param}") / "mcu_dc_runner"
    settings_ = HostBuildSettings(
        opt="-O1", sanitize=True, extra_flags=[f"-DMCU_DC_FC_WINDOW={request.param}"]
    )
    return compile_program([*runtime_sources(), rt / "host" / "mcu_dc_runner.c"], [rt], out, settings_)


def _check(
    runner: Path, tmp: Path, model, lut_bits: int, max_code_len: int, n: int = 8, seed: int = 0
) -> None:
    cm = CompressedModel(model, lut_bits=lut_bits, max_code_len=max_code_len)
    path = tmp / "m.bin"
    path.write_bytes(cm.blob)
    x = model_inputs(model, n, seed)
    want = simulate(model, x)
    dev = device_input(model, x)
    for ref in (False, True):
        assert np.array_equal(run_blob(runner, path, dev, model.output_len, ref=ref), want)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    spec=weight_specs(),
    shape=shapes(),
    plan=plans(),
    lut_bits=st.sampled_from([0, 1, 4, 6, 8, 12]),
    max_code_len=st.sampled_from([9, 12, 15]),
)
def test_fast_fc_kernels_match_simulator(
    fc_runner, tmp_path, seed, spec, shape, plan, lut_bits, max_code_len
):
    model = random_model(seed, spec, shape, plan)
    _check(fc_runner, tmp_path, model, lut_bits, max_code_len, seed=seed)


def test_size_objective_lenet300_on_mnist(fc_runner, tmp_path):
    cm = load(RESULTS / "lenet300_size.mcudc")
    x = load_dataset("mnist", "test", None).images[:100].reshape(100, -1)
    want = simulate(cm.model, x)
    path = tmp_path / "m.bin"
    path.write_bytes(cm.blob)
    assert np.array_equal(run_blob(fc_runner, path, device_input(cm.model, x), cm.model.output_len), want)
