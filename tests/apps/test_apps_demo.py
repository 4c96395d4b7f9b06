"""The demo firmware (`mcu-dc generate --app demo`) on the host, and how its project is refused
where it does not belong. The firmware is compiled with gcc (-Werror, ASan/UBSan) over the host
BSP; its printed lines are parsed and checked against the simulator and the dataset."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import HOST_CFLAGS, build_demo_for_host, need, parse_demo, tamper_expected

from mcu_dc.cli import main
from mcu_dc.core.simulator import simulate
from mcu_dc.data.datasets import load_dataset
from mcu_dc.deploy.demo_data import demo_data
from mcu_dc.deploy.generate import generate
from mcu_dc.deploy.mcuproject import PROJECT_FILE, project_board, read_project_info, require_app
from mcu_dc.errors import ConfigError, DataError

BOARD = "qemu-mps2-an386"


@pytest.fixture(scope="module")
def demo_project(tmp_path_factory: pytest.TempPathFactory, digits_cm) -> Path:
    return generate(digits_cm, BOARD, tmp_path_factory.mktemp("demo") / "proj", app="demo", samples=6)


def test_demo_data_is_the_simulator_on_the_first_test_inputs(digits_cm) -> None:
    data = demo_data(digits_cm, None, 5)  # the dataset the model file records: digits
    ds = load_dataset("digits", "test")
    x = ds.images[:5].reshape(5, -1)
    assert data.dataset == "digits" and data.classifier and len(data) == 5
    assert np.array_equal(data.inputs, x)  # uint8 model: the raw bytes
    assert np.array_equal(data.expected, simulate(digits_cm, x))
    assert np.array_equal(data.labels, ds.labels[:5])
    assert np.array_equal(data.expected_classes, simulate(digits_cm, x).argmax(1))


def test_demo_project_files(demo_project: Path) -> None:
    info = json.loads((demo_project / PROJECT_FILE).read_text())
    assert info == {
        "board": BOARD,
        "name": "digits_huffman",
        "kind": "mcu",
        "app": "demo",
        "dataset": "digits",
        "samples": 6,
    }
    src = demo_project / "src"
    assert {p.name for p in src.glob("*.c")} == {"main.c", "mcu_dc_demo_text.c", "digits_huffman_model.c"}
    assert not list(src.glob("mcu_dc_proto*"))  # no protocol server in the demo
    header = (src / "mcu_dc_demo_data.h").read_text()
    assert "#define MCU_DC_DEMO_SAMPLES 6u" in header and "#define MCU_DC_DEMO_CLASSIFIER 1" in header
    assert "defined(MCU_DC_BOARD_QEMU_MICROBIT)" in header
    readme = (demo_project / "README.md").read_text()
    assert "mcu-dc run ." in readme and "pio device monitor" in readme


@pytest.mark.slow
def test_demo_on_host_prints_the_simulators_answers(demo_project: Path, tmp_path: Path, digits_cm) -> None:
    exe = build_demo_for_host(demo_project, tmp_path / "demo")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = parse_demo(proc.stdout)
    ds = load_dataset("digits", "test")
    sim = simulate(digits_cm, ds.images[:6].reshape(6, -1)).argmax(1)
    assert [s["index"] for s in out["samples"]] == list(range(6))
    assert [s["pred"] for s in out["samples"]] == list(sim)
    assert [s["sim"] for s in out["samples"]] == list(sim)
    assert [s["label"] for s in out["samples"]] == list(ds.labels[:6])
    assert all(s["equal"] and s["unit"] == "cycles" for s in out["samples"])
    correct = int((sim == ds.labels[:6]).sum())
    assert out["summary"] == {"correct": correct, "agree": 6, "n": 6, "round": 1}
    assert "model: ok (status MCU_DC_OK, CRC ok" in proc.stdout
    assert proc.stdout.rstrip().endswith("done: exit 0")


@pytest.mark.slow
def test_tampered_expected_output_makes_the_demo_exit_1(demo_project: Path, tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "tampered"
    shutil.copytree(demo_project, project)
    tamper_expected(project, sample=1)
    exe = build_demo_for_host(project, tmp_path / "demo")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stdout
    out = parse_demo(proc.stdout)
    assert [s["equal"] for s in out["samples"]] == [True, False, True, True, True, True]
    assert out["summary"]["agree"] == 5


@pytest.mark.slow
def test_damaged_blob_is_reported_and_exits_1(demo_project: Path, tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "damaged"
    shutil.copytree(demo_project, project)
    model_c = project / "src" / "digits_huffman_model.c"
    text = model_c.read_text()
    pos = text.rindex("0x", 0, text.rindex("};"))  # the blob's last byte (in the CRC's range)
    model_c.write_text(text[:pos] + ("0x00" if text[pos : pos + 4] != "0x00" else "0x01") + text[pos + 4 :])
    exe = build_demo_for_host(project, tmp_path / "demo")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stdout
    assert "model: CRC MISMATCH" in proc.stdout or "model: INVALID" in proc.stdout
    assert parse_demo(proc.stdout)["samples"] == []


@pytest.mark.slow
def test_reconstruction_model_prints_output_bytes(tmp_path: Path, autoencoder_cm) -> None:
    project = generate(autoencoder_cm, BOARD, tmp_path / "ae", app="demo", dataset="digits", samples=3)
    header = (project / "src" / "mcu_dc_demo_data.h").read_text()
    assert "#define MCU_DC_DEMO_CLASSIFIER 0" in header and "mcu_dc_demo_labels" not in header
    exe = build_demo_for_host(project, tmp_path / "demo")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = parse_demo(proc.stdout)
    x = load_dataset("digits", "test").images[:3].reshape(3, -1)
    want = simulate(autoencoder_cm, x)
    assert len(out["samples"]) == 3
    for s, row in zip(out["samples"], want, strict=True):
        assert s["bytes"] == [int(v) for v in row[:16]] and s["truncated"] and s["equal"]
    assert out["summary"] == {"correct": None, "agree": 3, "n": 3, "round": 1}


def test_text_helpers(tmp_path: Path) -> None:
    from mcu_dc.resources import resource_dir

    cc = need("gcc")
    fw = resource_dir("firmware")
    prog = tmp_path / "t.c"
    prog.write_text(
        '#include <stdint.h>\n#include "mcu_dc_demo_text.h"\n'
        "int main(void) {\n"
        "    static const uint32_t u[] = {0u, 7u, 10u, 4294967295u};\n"
        "    static const int32_t s[] = {0, -1, 2147483647, -2147483647 - 1};\n"
        "    char buf[12]; unsigned i;\n"
        '    for (i = 0; i < 4; ++i) { mcu_dc_demo_put_u32(u[i]); mcu_dc_demo_puts("|"); }\n'
        '    for (i = 0; i < 4; ++i) { mcu_dc_demo_put_i32(s[i]); mcu_dc_demo_puts("|"); }\n'
        '    mcu_dc_demo_put_hex32(0x0badf00du); mcu_dc_demo_puts("|");\n'
        "    return (int)mcu_dc_demo_fmt_i32(buf, -2147483647 - 1);\n"
        "}\n"
    )
    exe = tmp_path / "t"
    subprocess.run(
        [
            cc,
            *HOST_CFLAGS,
            f"-I{fw / 'app_demo'}",
            f"-I{fw / 'bsp'}",
            str(prog),
            str(fw / "app_demo" / "mcu_dc_demo_text.c"),
            str(fw / "bsp" / "host" / "mcu_dc_bsp_host.c"),
            "-o",
            str(exe),
        ],
        check=True,
        timeout=60,
        capture_output=True,
    )
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=10, check=False)
    assert proc.stdout == "0|7|10|4294967295|0|-1|2147483647|-2147483648|0x0badf00d|"
    assert proc.returncode == len("-2147483648")


# -- refusals ---------------------------------------------------------------------------------


def test_demo_without_a_dataset_is_refused(digits_cm) -> None:
    from mcu_dc.core.model_file import CompressedModel

    bare = CompressedModel(digits_cm.model, {})
    with pytest.raises(ConfigError, match="records no dataset and none was given; pass --dataset"):
        demo_data(bare)


def test_demo_of_the_wrong_dataset_is_refused(digits_cm) -> None:
    with pytest.raises(DataError):
        demo_data(digits_cm, "cifar10")


@pytest.mark.parametrize("samples", [0, -3, 100_000])
def test_demo_sample_count_is_checked(digits_cm, samples: int) -> None:
    with pytest.raises(ConfigError, match="--samples"):
        demo_data(digits_cm, None, samples)


def test_demo_for_host_board_and_dataset_without_demo_are_refused(digits_cm, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--board host writes a native"):
        generate(digits_cm, "host", tmp_path / "h", app="demo")
    with pytest.raises(ConfigError, match="add --app demo"):
        generate(digits_cm, BOARD, tmp_path / "v", dataset="digits")
    assert not (tmp_path / "h").exists() and not (tmp_path / "v").exists()


def test_verify_refuses_a_demo_project(demo_project: Path) -> None:
    with pytest.raises(ConfigError, match="does not speak the binary protocol"):
        project_board(demo_project)
    info = read_project_info(demo_project)
    require_app(demo_project, info, "demo")  # fine for `mcu-dc run`


def test_verify_cli_refuses_a_demo_project(demo_project: Path, capsys) -> None:
    rc = main(["verify", str(demo_project), "--board", BOARD, "--dataset", "digits", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "mcu-dc run" in err and "Traceback" not in err


def test_run_refuses_a_verify_project_and_a_real_board(digits_cm, demo_project: Path, tmp_path: Path, capsys):
    verify_project = generate(digits_cm, BOARD, tmp_path / "v")
    assert main(["run", str(verify_project)]) == 2
    assert "--app demo" in capsys.readouterr().err
    assert main(["run", str(demo_project), "--board", "nucleo_f401re"]) == 2
    err = capsys.readouterr().err
    assert "pio device monitor" in err and "real hardware" in err
    assert not (demo_project / "build" / "nucleo_f401re").exists()


def test_generate_cli_demo_and_model_only_conflicts(digits_cm, tmp_path: Path, capsys) -> None:
    model = tmp_path / "digits.mcudc"
    digits_cm.save(model)
    out = tmp_path / "proj"
    rc = main(["generate", str(model), "--board", BOARD, "--out", str(out), "--app", "demo", "--samples=2"])
    assert rc == 0 and "mcu-dc run" in capsys.readouterr().out
    assert read_project_info(out)["samples"] == 2
    rc = main(["generate", str(model), "--model-only", "--board", BOARD, "--out", str(tmp_path / "m")])
    assert rc == 2 and "leave out --board" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("extra", [[], ["--port", "/dev/mcu_dc_no_such_port"]])
def test_verify_refuses_a_demo_project_before_reading_data(demo_project: Path, capsys, extra) -> None:
    # default dataset (mnist, whose 28x28 images do not fit the 8x8 digits model) and a serial port:
    # the demo project is named as the problem before any data or port is touched
    rc = main(["verify", str(demo_project), "--board", BOARD, "--quiet", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and "holds the demo firmware" in err and "Traceback" not in err


def test_verify_of_a_model_file_needs_a_board(digits_cm, tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.mcudc"
    digits_cm.save(model)
    rc = main(["verify", str(model), "--dataset", "digits", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--board is needed" in err and "Traceback" not in err
