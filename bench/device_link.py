"""Serial link speed of the emulated boards: the measurement behind "no batching" (docs/protocol.md).

For each board, boots firmware serving a 784-input model (MNIST-sized receive buffer)
under QEMU and measures through the harness (socket:// to QEMU's UART):

* the round trip of an empty PING;
* PING with 784 bytes each way (inbound into the one-byte/16-byte UART FIFO and back);
* INFER of 784-byte inputs: requests per second, and how long the inference itself took
  in emulated instructions.

Writes ``bench/results/device_link.{json,md}``; the md starts with the exact command.

    python bench/device_link.py [--boards B ...] [--n N]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcu_dc.core.ir import FC, IntegerModel, Requant  # noqa: E402
from mcu_dc.core.model_file import CompressedModel  # noqa: E402
from mcu_dc.device.harness import Device, LinkSettings  # noqa: E402
from mcu_dc.device.qemu import QemuBoard  # noqa: E402
from mcu_dc.device.verify import build_firmware, default_work_dir  # noqa: E402

BOARDS = ("qemu-mps2-an386", "qemu-lm3s6965evb", "qemu-microbit")


def link_model() -> CompressedModel:
    """784 → 16 → 10, sparse: a small model with MNIST's input size."""
    rng = np.random.default_rng(0)

    def fc(name: str, shape: tuple[int, int, int], out: int) -> FC:
        a = rng.integers(0, 16, size=(out, int(np.prod(shape)))).astype(np.int16)
        a[rng.random(a.shape) > 0.1] = -1
        cb = rng.integers(-100, 100, size=16).astype(np.int8)
        bias = rng.integers(-1000, 1000, size=out).astype(np.int32)
        return FC(name, shape, out, cb, a, bias, Requant.from_real(0.002), -128, -128)

    m = IntegerModel([fc("fc1", (1, 28, 28), 16), fc("fc2", (16, 1, 1), 10)], (1, 28, 28), 1 / 255, 0.1, -128,
                     name="link784")  # fmt: skip
    return CompressedModel(m)


def measure(board: str, elf: Path, n: int) -> dict[str, Any]:
    with QemuBoard(board, elf) as q, Device.open(q.url, LinkSettings()) as dev:
        info = dev.hello()
        size = info.input_len
        rtt = []
        for _ in range(n):
            t = time.perf_counter()
            dev.ping(b"")
            rtt.append(time.perf_counter() - t)
        echo = []
        for _ in range(n):
            t = time.perf_counter()
            dev.ping(bytes(size))
            echo.append(time.perf_counter() - t)
        x = np.random.default_rng(1).integers(0, 256, size=(n, size), dtype=np.uint8)
        t0 = time.perf_counter()
        counters = [dev.infer(row.tobytes())[0] for row in x]
        infer_s = (time.perf_counter() - t0) / n
        dev.bye()
        q.wait(timeout=10)
    rtt_ms = 1e3 * statistics.median(rtt)
    echo_ms = 1e3 * statistics.median(echo)
    return {
        "board": board,
        "payload_bytes": size,
        "empty_ping_rtt_ms": rtt_ms,
        "echo_784_ms": echo_ms,
        "inbound_kb_per_s": size / 1e3 / max(1e-9, (echo_ms - rtt_ms) / 1e3),
        "infer_per_s": 1.0 / infer_s,
        "infer_ms": 1e3 * infer_s,
        "instructions_per_inference": statistics.median(counters),
        "retries": dev.stats.retries,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", nargs="+", default=list(BOARDS))
    ap.add_argument("--n", type=int, default=50, help="repetitions per measurement")
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    cm = link_model()
    work = args.work_dir or default_work_dir()
    rows = []
    for b in args.boards:
        fw = build_firmware(cm, b, work)
        rows.append(measure(b, fw.elf, args.n))
        print(rows[-1], flush=True)
    cmd = "python " + " ".join(shlex.quote(a) for a in ["bench/device_link.py", *(argv or sys.argv[1:])])
    md = [
        "```",
        cmd,
        "```",
        "",
        "# Serial link of the emulated boards (QEMU 7.2, `-icount shift=0`, UART on a loopback TCP socket)",
        "",
        f"Host load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (QEMU's "
        "UART throughput depends on how much CPU its main loop gets, so these figures vary with it). "
        f"Median of {args.n} requests each. \"inbound\" is the 784-byte echo minus the empty round trip, "
        "i.e. the cost of pushing 784 bytes into the board's UART (the reply direction is fast).",
        "",
        "| board | empty PING round trip | 784 B echo | inbound | INFER (784 B in) | per inference |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append(
            f"| {r['board']} | {r['empty_ping_rtt_ms']:.1f} ms | {r['echo_784_ms']:.1f} ms | "
            f"{r['inbound_kb_per_s']:.1f} KB/s | {r['infer_per_s']:.1f} /s | "
            f"{r['instructions_per_inference']:,.0f} instructions |"
        )
    md += [
        "",
        "The round trip is a few ms while pushing one MNIST image takes tens of ms: batching "
        "several images per frame would save only the round trips (a few percent), and would "
        "need a receive buffer of several images in RAM. So INFER carries one input.",
        "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "device_link.json").write_text(json.dumps({"command": cmd, "rows": rows}, indent=2) + "\n")
    (args.out / "device_link.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
