"""bench/methods.py: the table, the Pareto front, the goals and the PNG from a hand-made results JSON
(``--render-only``, no training), and the command line's argument checks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "methods.py"


@pytest.fixture(scope="module")
def methods():
    spec = importlib.util.spec_from_file_location("mcu_dc_bench_methods", BENCH)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _run(network, method, acc, nbytes, *, schedule="cpu", structured=None, original=1_066_440):
    return {
        "network": network,
        "method": method,
        "schedule": schedule,
        "status": "done",
        "command": f"python bench/methods.py --schedule {schedule} --networks {network}",
        "integer_pct": acc,
        "error_pct": 100.0 - acc,
        "float_pct": {"dense": 98.0, "quantized": acc},
        "blob_bytes": nbytes,
        "original_bytes": original,
        "ratio": original / nbytes,
        "arena_bytes": 1200,
        "macs": 20_000,
        "macs_dense": 266_200,
        "kept_pct": 8.0,
        "codebook_len": {"fc1": 16},
        "encodings": {"fc1": "HUFFMAN_SPARSE"},
        "sparsity": {"fc1": 0.92},
        "structured": structured or {},
        "device": {
            "fits": True,
            "n": 20,
            "bit_exact": 20,
            "instructions_median": 850_000,
            "instructions_max": 851_000,
            "flash": 28_000,
            "ram": 3_800,
        },
        "wall_s": {"compress": 100.0, "verify": 20.0},
    }


def _hand_made():
    fp = {
        "methods": ["filter_prune"],
        "macs_before": 40_000_000,
        "macs_after": 18_000_000,
        "layers": {
            "layer1.0.conv1": {
                "channels_before": 16,
                "channels_after": 8,
                "macs_before": 2_359_296,
                "macs_after": 1_179_648,
            }
        },
    }
    return [
        _run("lenet300", "dc", 98.50, 16_000),  # front
        _run("lenet300", "dc_distill", 98.60, 17_000),  # front
        _run("lenet300", "filter", 98.40, 60_000),  # dominated by dc
        _run("lenet300", "ternary", 98.45, 15_000),  # front; 71.1x at 1.55 %: the goal is met
        _run("lenet5", "dc", 98.90, 30_000, original=1_724_320),  # alone on its front; 57x: not met
        _run("resnet20", "filter", 91.20, 200_000, schedule="full", structured=fp, original=1_090_000),
    ]


def test_pareto_front_of_hand_made_points(methods):
    pts = [(16_000, 98.5), (17_000, 98.6), (60_000, 98.4), (15_000, 98.45), (16_000, 98.5)]
    # equal points do not dominate each other; the 60 kB one is beaten on both axes
    assert methods.pareto(pts) == [0, 1, 3, 4]
    assert methods.pareto([]) == []


def test_summary_rows_goals_and_placeholders(methods):
    s = methods.summarize(_hand_made(), ternary_ok=False)
    rows = {(r["network"], r["method"]): r for r in s["rows"]}
    assert len(rows) == len(methods.NETWORKS) * len(methods.METHODS)
    assert rows["lenet300", "dc"]["pareto"] and rows["lenet300", "ternary"]["pareto"]
    assert not rows["lenet300", "filter"]["pareto"]
    # runs that exist are kept even when the checkout lacks ternary; missing ones are placeholders
    assert rows["lenet300", "binary"]["status"] == "not available yet"
    assert rows["lenet300", "slim_dc"]["status"] == "not run (CPU time)"
    assert rows["resnet20", "dc"]["status"].startswith("needs GPU: `python bench/methods.py --schedule full")
    g = s["goals"]
    assert g["lenet300"]["met"] is True and "ternary" in g["lenet300"]["why"]
    assert g["lenet5"]["met"] is False and "lowest 1.10 % (dc, cpu, 57.5×)" in g["lenet5"]["why"]
    assert g["resnet20"]["met"] is True and "2.22× fewer MACs" in g["resnet20"]["why"]
    none = methods.summarize([], ternary_ok=True)["goals"]
    assert none["lenet300"]["met"] is None and none["resnet20"]["met"] is None


def test_render_only_writes_table_and_png(methods, tmp_path):
    data = {
        "command": "python bench/methods.py --render-only",
        "commands": ["python bench/methods.py --schedule cpu --networks lenet300 --threads 2"],
        "date": "2025-01-01",
        "machine": "test",
        "torch": "x",
        "ternary_available": True,
        "rows": _hand_made(),
    }
    (tmp_path / "methods.json").write_text(json.dumps(data))
    assert methods.main(["--render-only", "--results-dir", str(tmp_path)]) == 0
    md = (tmp_path / "methods.md").read_text()
    assert md.startswith("```\npython bench/methods.py --schedule cpu --networks lenet300 --threads 2\n```")
    assert "| dc ★ | cpu | 98.50 % | 1.50 % | 16,000 | 66.7× |" in md
    assert "| filter | cpu | 98.40 % |" in md  # not on the front: no star
    assert "| slim_dc | not run (CPU time) |" in md
    assert "needs GPU" in md and "| LeNet-300-100 |" in md and "**met**" in md and "**not met**" in md
    assert "850,000" in md and "20/20" in md
    assert "encodings fc1 HUFFMAN_SPARSE; codebook entries fc1 16" in md
    png = (tmp_path / "methods.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    out = json.loads((tmp_path / "methods.json").read_text())
    assert sum(1 for r in out["rows"] if r.get("pareto")) == 5  # 3 LeNet-300, 1 LeNet-5, 1 ResNet-20


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--networks", "vgg16"], "--networks: unknown vgg16"),
        (["--networks", ""], "--networks: unknown (none given)"),
        (["--methods", "dc,prune_only"], "--methods: unknown prune_only"),
        (["--methods", "dc,dc"], "must not repeat"),
        (["--verify-n", "-1"], "--verify-n and --threads must be >= 0"),
        (["--device", "tpu"], "use cpu or cuda"),
        (["--schedule", "fast"], "invalid choice"),
    ],
)
def test_argument_validation(methods, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        methods.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_valid_arguments_and_configs(methods):
    args = methods.parse_args(
        ["--schedule", "full", "--networks", "lenet300,resnet20", "--methods", "dc,filter"]
    )
    assert args.network_list == ["lenet300", "resnet20"] and args.method_list == ["dc", "filter"]
    cfg = methods.method_config("lenet300", "filter", "cpu")
    assert cfg.filter_prune.enabled and cfg.filter_prune.fc and not cfg.prune.enabled
    assert cfg.cluster.fc_bits == 8
    cfg = methods.method_config("resnet20", "binary_filter", "full")
    assert cfg.cluster.mode == "binary" and not cfg.prune.enabled and not cfg.filter_prune.fc
    cfg = methods.method_config("lenet5", "dc_distill", "cpu")
    assert cfg.distill.enabled and cfg.prune.enabled and cfg.train_subset == 20_000
