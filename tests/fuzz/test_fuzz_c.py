"""The libFuzzer harnesses of firmware/fuzz/, run for a short bounded count (bench/fuzz.py runs millions).

Each harness must build warning-free under clang with ASan + UBSan, run its executions
with no finding, and go deep (the model harnesses run inference on many inputs, the
protocol harness answers INFER with results checked against the reference kernels). A
harness built with a deliberately injected bug must report it, so the checks can fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mcu_dc.core.blob import decode_blob
from mcu_dc.core.random_models import random_model
from mcu_dc.core.simulator import simulate
from mcu_dc.fuzz import corpus
from mcu_dc.fuzz import libfuzzer as LF

RUNS = 20_000


def _need_clang() -> None:
    if not any(shutil.which(cc) for cc in LF.CLANGS):
        pytest.skip("clang is not installed (scripts/setup.sh installs clang-14 with libFuzzer)")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _need_clang()
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("name", list(LF.HARNESSES))
def test_harness_runs_clean_and_deep(work: Path, name: str) -> None:
    binary = LF.build_harness(name, work / "bin")
    run = LF.run_harness(binary, name, work / "corpus" / name, work / "runs", runs=RUNS, seed=7)
    assert run.findings == [] and run.exit_code == 0, run.findings
    assert run.executions == RUNS
    assert run.coverage_edges > 100
    stats = run.harness_stats
    assert stats["inputs"] >= RUNS
    if name == "proto":
        assert stats["replies"] == stats["requests"] > 0
        assert stats["results"] > 0  # INFER answered and checked against the reference kernels
    else:
        assert stats["inferred"] > RUNS // 100  # inputs reach the kernels
        assert stats["infer_ok"] > 0
    if name == "model-streams":
        assert stats["valid"] > RUNS // 10  # the mutator keeps blobs valid and the CRC right


@pytest.mark.parametrize("name", ["model", "proto"])
def test_an_injected_bug_is_found(work: Path, name: str) -> None:
    """A disagreement (model) or a wrong RESULT (proto) must be reported as a finding."""
    binary = LF.build_harness(name, work / "bugged", defines=("MCU_DC_FUZZ_INJECT_BUG",))
    out = work / "bugged-runs" / name
    run = LF.run_harness(binary, name, out / "corpus", out, runs=RUNS, seed=1, timeout_s=600)
    assert run.exit_code != 0
    assert run.findings, "the injected bug went unnoticed"
    assert "disagree" in run.findings[0] or "RESULT differs" in run.findings[0], run.findings
    assert Path(run.findings[0].split(":")[0]).is_file()  # the reproducer was written


def test_line_coverage_reports_the_runtime(work: Path) -> None:
    if shutil.which("llvm-cov-14") is None and shutil.which("llvm-cov") is None:
        pytest.skip("llvm-cov is not installed")
    seeds = work / "cov-seeds"
    corpus.write_corpus(seeds, corpus.model_seeds(12, 3))
    cov = {c.path: c for c in LF.line_coverage("model", [seeds], work / "cov")}
    assert "runtime/mcu_dc_model.c" in cov and "runtime/mcu_dc_conv.c" in cov
    assert all(c.covered <= c.lines for c in cov.values())
    assert cov["runtime/mcu_dc_model.c"].percent > 50.0
    assert not any(p.startswith("fuzz/") for p in cov)


def test_generated_v1_blobs_decode_to_the_same_model() -> None:
    """The v1 seeds are real version 1 blobs: the reader decodes them to the model they came from."""
    made = 0
    for seed in range(30):
        model = random_model(seed, max_dim=6)
        blob = corpus.v1_blob(model)
        if blob is None:
            continue
        made += 1
        assert blob[4] == 1
        back = decode_blob(blob, "<v1 seed>")
        x = np.random.default_rng(seed).integers(0, 256, size=(3, *model.input_shape), dtype=np.uint8)
        assert np.array_equal(simulate(back, x), simulate(model, x))
        assert back.plan.arena_bytes == int.from_bytes(blob[24:28], "little")
    assert made >= 10


def test_parse_output_reads_libfuzzer_statistics() -> None:
    text = (
        "#4096\tpulse  cov: 10 ft: 20 corp: 3/99b lim: 4 exec/s: 1 rss: 1Mb\n"
        "#5000\tDONE   cov: 12 ft: 25 corp: 4/120b lim: 4 exec/s: 1 rss: 1Mb\n"
        "Done 5000 runs in 1 second(s)\n"
        "mcu_dc_fuzz: inputs=5000 valid=7\n"
    )
    run = LF.parse_output(text, LF.FuzzRun("model", 5000, 0, 0.0, 0, 0, 0))
    assert (run.executions, run.coverage_edges, run.features, run.corpus_files) == (5000, 12, 25, 4)
    assert run.harness_stats == {"inputs": 5000, "valid": 7} and run.findings == []
    crash = text + "==12==ERROR: AddressSanitizer: heap-buffer-overflow\nTest unit written to ./crash-abc\n"
    assert LF.parse_output(crash, LF.FuzzRun("model", 5000, 0, 0.0, 0, 0, 0)).findings == [
        "./crash-abc: ==12==ERROR: AddressSanitizer: heap-buffer-overflow"
    ]
