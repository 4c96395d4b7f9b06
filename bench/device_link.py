"""Serial link of the emulated boards: its speed (behind "no batching", docs/protocol.md) and a fault soak.

**Link speed** (default). For each board, boots firmware serving a 784-input model
(MNIST-sized receive buffer) under QEMU and measures through the harness (socket:// to
QEMU's UART):

* the round trip of an empty PING;
* PING with 784 bytes each way (inbound into the one-byte/16-byte UART FIFO and back);
* INFER of 784-byte inputs: requests per second, and how long the inference itself took
  in emulated instructions.

Writes ``bench/results/device_link.{json,md}``; the md starts with the exact command.

    python bench/device_link.py [--boards B ...] [--n N]

**Fault soak** (``--soak``). The compressed LeNet-300-100 on one emulated board, with
:class:`~mcu_dc.device.proxy.FaultProxy` between the harness and QEMU corrupting and
dropping bytes in both directions at a fixed per-byte rate (no cap on their number).
Every device output is compared byte for byte with the simulator's. First a sweep: the
first ``--sweep-n`` MNIST test images at each rate of ``--rates`` (0 first: the fault-free
throughput of the same path); then the whole soak (``--soak-n`` images, default the
10,000 test images) at the highest rate where the link still progressed with nothing
unrecoverable and whose projected time fits ``--budget-min``. A request the harness gives
up on (a ``DeviceError`` after ``--retries`` resends) is recorded with its message and the
same image is asked again; ``--max-consecutive`` such errors in a row end the rate as
"does not progress". Progress goes to stderr (plain lines every 30 s when it is not a
TTY). Writes ``bench/results/device_link_soak.{json,md,png}`` (``--render-only`` rewrites
the md and png from the json).

    python bench/device_link.py --soak [--rates R ...] [--sweep-n N] [--soak-n N] [--budget-min M]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcu_dc.core.ir import FC, IntegerModel, Requant  # noqa: E402
from mcu_dc.core.model_file import CompressedModel  # noqa: E402
from mcu_dc.device import protocol as P  # noqa: E402
from mcu_dc.device.harness import Device, LinkSettings  # noqa: E402
from mcu_dc.device.proxy import FaultProxy, FaultSettings  # noqa: E402
from mcu_dc.device.qemu import QemuBoard  # noqa: E402
from mcu_dc.device.verify import build_firmware, default_work_dir  # noqa: E402
from mcu_dc.errors import DeviceError  # noqa: E402

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


# ------------------------------------------------------------------------------ fault soak

SOAK_MODEL = ROOT / "bench" / "results" / "lenet300_deep_compression_v2.mcudc"
SOAK_RATES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2)


@dataclass
class SoakSettings:
    board: str
    rates: list[float]
    drop_fraction: float  # drop rate = drop_fraction × corruption rate
    sweep_n: int
    soak_n: int
    soak_rate: float | None  # None: chosen from the sweep
    budget_s: float  # the soak's projected time must fit this
    sweep_max_s: float  # wall-clock cap of one sweep rate
    soak_max_s: float  # hard wall-clock cap of the soak
    max_consecutive: int  # unrecoverable errors in a row that end a rate
    link: LinkSettings
    seed: int


class Progress:
    """Progress on stderr: one overwritten line on a TTY, plain lines every ``every_s`` otherwise."""

    def __init__(self, label: str, total: int, every_s: float = 30.0) -> None:
        self.label = label
        self.total = total
        self.tty = sys.stderr.isatty()
        self.every_s = 1.0 if self.tty else every_s
        self.t0 = time.monotonic()
        self._last = self.t0
        self.loads: list[float] = []

    def update(self, done: int, stats: dict[str, int], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        load = os.getloadavg()[0]
        self.loads.append(load)
        rate = done / max(1e-9, now - self.t0)
        eta = (self.total - done) / rate / 60 if rate > 0 else float("inf")
        line = (
            f"{self.label}: {done:,}/{self.total:,} images ({100 * done / max(1, self.total):.0f} %), "
            f"{rate:.1f} img/s, retries {stats['retries']:,}, timeouts {stats['timeouts']:,}, "
            f"unrecoverable {stats['unrecoverable']}, wrong {stats['wrong']}, load {load:.1f}, "
            f"ETA {eta:.1f} min"
        )
        if self.tty:
            print("\r" + line, end="\n" if force else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def soak_rate(
    cm: CompressedModel,
    elf: Path,
    x: np.ndarray,
    expected: np.ndarray,
    labels: np.ndarray,
    rate: float,
    n: int,
    max_s: float,
    st: SoakSettings,
    label: str,
) -> dict[str, Any]:
    """Stream images 0..n-1 through a FaultProxy at ``rate``; check every output against ``expected``."""
    faults = FaultSettings(
        seed=st.seed,
        corrupt_rate=rate,
        drop_rate=rate * st.drop_fraction,
        max_faults=None,
    )
    wrong: list[int] = []
    errors: list[dict[str, Any]] = []
    counters: list[int] = []
    correct_class = 0
    done = 0
    stop = "completed"
    stop_message = ""
    loop_s = 0.0
    link: dict[str, int] = {}
    fault_stats: dict[str, Any] = {}
    load_start = os.getloadavg()[0]
    latencies: list[float] = []
    handshake: dict[str, int] = {}
    prog = Progress(label, n)
    with QemuBoard(st.board, elf, start_timeout=30.0) as q:
        host, port = q.url.removeprefix("socket://").rsplit(":", 1)
        with FaultProxy((host, int(port)), faults) as proxy, Device.open(proxy.url, st.link) as dev:
            try:
                dev.check_model(cm.model_hash)
            except DeviceError as exc:
                stop, stop_message = "no handshake", str(exc)
                errors.append({"image": None, "message": str(exc)})
            handshake = asdict(dev.stats)  # the HELLO (retried while the board boots) is not an image's
            i = 0
            consecutive = 0
            t0 = prog.t0 = time.monotonic()
            while stop == "completed" and i < n:
                if time.monotonic() - t0 > max_s:
                    stop = "time cap"
                    stop_message = f"stopped after {max_s:g} s with {done} of {n} images done"
                    break
                t_req = time.monotonic()
                try:
                    delta, out = dev.infer(x[i].tobytes())
                except DeviceError as exc:
                    # A clear error, never a result: record it and ask for the same image again.
                    consecutive += 1
                    errors.append({"image": i, "message": str(exc)})
                    if not q.running:
                        stop = "QEMU exited"
                        stop_message = f"{exc} QEMU's stderr: {q.stderr_text().strip()[-300:]!r}"
                    elif consecutive >= st.max_consecutive:
                        stop = "does not progress"
                        stop_message = str(exc)
                    continue
                latencies.append(time.monotonic() - t_req)
                consecutive = 0
                counters.append(delta)
                if out != expected[i].tobytes():
                    wrong.append(i)
                correct_class += int(np.argmax(np.frombuffer(out, dtype=np.int8)) == labels[i])
                done += 1
                i += 1
                prog.update(done, {**asdict(dev.stats), "unrecoverable": len(errors), "wrong": len(wrong)})
            loop_s = time.monotonic() - t0
            prog.update(done, {**asdict(dev.stats), "unrecoverable": len(errors), "wrong": len(wrong)}, True)
            link = {k: v - handshake[k] for k, v in asdict(dev.stats).items()}
            acked = stop == "completed" and dev.bye()
        fault_stats = asdict(proxy.stats)
        exit_code = q.wait(timeout=10) if acked else None  # else QemuBoard stops it
    lat = np.asarray(latencies) * 1e3
    return {
        "corrupt_rate": rate,
        "drop_rate": rate * st.drop_fraction,
        "images_planned": n,
        "images_done": done,
        "wrong": len(wrong),
        "wrong_indices": wrong[:20],
        "unrecoverable": len(errors),
        "unrecoverable_errors": errors[:10],
        "stop": stop,
        "stop_message": stop_message,
        "seconds": loop_s,
        "images_per_s": done / loop_s if loop_s > 0 else 0.0,
        "device_accuracy": correct_class / done if done else None,
        "instructions_per_inference": float(statistics.median(counters)) if counters else None,
        "instructions_min": min(counters) if counters else None,
        "instructions_max": max(counters) if counters else None,
        "latency_ms": {
            "p50": float(np.percentile(lat, 50)) if len(lat) else None,
            "p99": float(np.percentile(lat, 99)) if len(lat) else None,
            "max": float(lat.max()) if len(lat) else None,
        },
        "link": link,
        "handshake_link": handshake,
        "faults": fault_stats,
        "firmware_exit_code": exit_code,
        "host_load": {
            "start": load_start,
            "end": os.getloadavg()[0],
            "mean_sampled": statistics.fmean(prog.loads) if prog.loads else load_start,
        },
    }


def _network(cm: CompressedModel) -> str:
    outs = [layer.out_shape[0] for layer in cm.model.layers if hasattr(layer, "assign")]
    if tuple(cm.model.input_shape) == (1, 28, 28) and outs == [300, 100, 10]:
        return "compressed LeNet-300-100"
    return f"model {cm.name!r}"


def _progressed(row: dict[str, Any]) -> bool:
    return row["stop"] == "completed" and row["unrecoverable"] == 0 and row["wrong"] == 0


def choose_rate(sweep: list[dict[str, Any]], soak_n: int, budget_s: float) -> tuple[float, str]:
    """The highest swept rate that completed cleanly and whose projected soak fits the budget."""
    clean = [r for r in sweep if _progressed(r) and r["corrupt_rate"] > 0]
    fits = [r for r in clean if soak_n / max(1e-9, r["images_per_s"]) <= budget_s]
    moving = [r for r in sweep if r["images_done"] > 0 and r["stop"] in ("completed", "time cap")]
    notes = []
    if moving:
        m = max(moving, key=lambda r: r["corrupt_rate"])
        notes.append(
            f"the highest swept rate where images still came through is {m['corrupt_rate']:g} "
            f"({m['images_done']} of {m['images_planned']} in {m['seconds']:.0f} s, {m['unrecoverable']} "
            "unrecoverable errors)"
        )
    if not fits:
        return 0.0, "; ".join(
            ["no faulty rate completed cleanly within the budget: the soak runs fault-free", *notes]
        )
    best = max(fits, key=lambda r: r["corrupt_rate"])
    why = (
        f"the highest swept rate with every image answered, none wrong and nothing unrecoverable "
        f"whose projected {soak_n:,}-image time ({soak_n / best['images_per_s'] / 60:.1f} min at "
        f"{best['images_per_s']:.1f} images/s) fits the {budget_s / 60:.0f}-minute budget"
    )
    higher = [r for r in clean if r["corrupt_rate"] > best["corrupt_rate"]]
    if higher:
        h = max(higher, key=lambda r: r["corrupt_rate"])
        notes.insert(
            0,
            f"{h['corrupt_rate']:g} also ran cleanly but at {h['images_per_s']:.2f} images/s would take "
            f"{soak_n / h['images_per_s'] / 60:.0f} min",
        )
    return best["corrupt_rate"], "; ".join([why, *notes])


def run_soak(args: argparse.Namespace, st: SoakSettings, cmd: str) -> int:
    from mcu_dc.core.model_file import load
    from mcu_dc.core.simulator import device_input, simulate
    from mcu_dc.device.verify import load_test_inputs

    cm = load(args.model)
    n_all = max(st.sweep_n, st.soak_n)
    x_raw, y = load_test_inputs(
        "mnist",
        tuple(cm.model.input_shape),
        data_dir=args.data_dir,
        limit=n_all,
        input_norm=(cm.meta or {}).get("input_norm"),
        input_kind=getattr(cm.model, "input_kind", None),
    )
    if y is None:
        raise SystemExit("the soak needs a classification test set")
    t = time.perf_counter()
    expected = simulate(cm, x_raw)
    sim_s = time.perf_counter() - t
    x = np.ascontiguousarray(device_input(cm, x_raw))
    print(f"simulator: {len(x):,} expected outputs in {sim_s:.1f} s", file=sys.stderr, flush=True)
    fw = build_firmware(cm, st.board, args.work_dir or default_work_dir())
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]

    sweep: list[dict[str, Any]] = []
    for rate in [0.0, *st.rates]:
        row = soak_rate(
            cm, fw.elf, x, expected, y, rate, min(st.sweep_n, len(x)), st.sweep_max_s, st, f"sweep {rate:g}"
        )
        sweep.append(row)
        print(
            json.dumps(
                {
                    k: row[k]
                    for k in ("corrupt_rate", "images_done", "wrong", "unrecoverable", "stop", "images_per_s")
                }
            ),
            file=sys.stderr,
            flush=True,
        )
    base = sweep[0]["images_per_s"]
    for row in sweep:
        row["relative_throughput"] = row["images_per_s"] / base if base > 0 else None

    if st.soak_rate is not None:
        chosen, why = st.soak_rate, "set with --soak-rate"
    else:
        chosen, why = choose_rate(sweep, st.soak_n, st.budget_s)
    soak = None
    if st.soak_n > 0:
        print(
            f"soak: {st.soak_n:,} images at corruption rate {chosen:g} ({why})", file=sys.stderr, flush=True
        )
        soak = soak_rate(
            cm, fw.elf, x, expected, y, chosen, min(st.soak_n, len(x)), st.soak_max_s, st, "soak"
        )
        soak["relative_throughput"] = soak["images_per_s"] / base if base > 0 else None
    res = {
        "command": cmd,
        "model_file": str(Path(args.model).resolve().relative_to(ROOT))
        if Path(args.model).resolve().is_relative_to(ROOT)
        else str(args.model),
        "model_hash": f"0x{cm.model_hash:08x}",
        "network": _network(cm),
        "frame_bytes": int(x.shape[1]) + P.OVERHEAD,
        "board": st.board,
        "settings": {
            "rates": st.rates,
            "drop_fraction": st.drop_fraction,
            "sweep_n": st.sweep_n,
            "soak_n": st.soak_n,
            "budget_s": st.budget_s,
            "sweep_max_s": st.sweep_max_s,
            "soak_max_s": st.soak_max_s,
            "max_consecutive": st.max_consecutive,
            "seed": st.seed,
            "link": asdict(st.link),
        },
        "qemu": _qemu_version(),
        "host": {
            "cpus": os.cpu_count(),
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
        },
        "flash_used": fw.fit.flash_used,
        "ram_used": fw.fit.ram_used,
        "wall_s": time.monotonic() - t_start,
        "fault_free_images_per_s": base,
        "chosen_rate": chosen,
        "chosen_why": why,
        "sweep": sweep,
        "soak": soak,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "device_link_soak.json").write_text(json.dumps(res, indent=2) + "\n")
    write_soak_report(args.out, res)
    bad = sum(r["wrong"] for r in sweep) + (soak["wrong"] if soak else 0)
    return 1 if bad else 0


def _qemu_version() -> str:
    import subprocess

    out = subprocess.run(
        ["qemu-system-arm", "--version"], capture_output=True, text=True, check=True, timeout=30
    )
    return out.stdout.splitlines()[0]


def _row_md(label: str, r: dict[str, Any]) -> str:
    lk, f = r["link"], r["faults"]
    rel = r.get("relative_throughput")
    return (
        f"| {label} | {r['corrupt_rate']:g} / {r['drop_rate']:g} | "
        f"{r['images_done']:,}/{r['images_planned']:,} | "
        f"**{r['wrong']}** | {lk.get('retries', 0):,} | {lk.get('timeouts', 0):,} | "
        f"{lk.get('device_bad_crc', 0):,} / {lk.get('device_frame_timeouts', 0):,} / "
        f"{lk.get('device_too_long', 0):,} | {lk.get('bad_frames_in', 0):,} | {r['unrecoverable']} | "
        f"{r['images_per_s']:.2f} | {'' if rel is None else f'{100 * rel:.0f} %'} | "
        f"{f['corrupted_by_direction']['to_device']:,} / {f['corrupted_by_direction']['to_host']:,} | "
        f"{f['dropped_by_direction']['to_device']:,} / {f['dropped_by_direction']['to_host']:,} | "
        f"{r['stop']} |"
    )


def write_soak_report(out: Path, res: dict[str, Any]) -> None:
    st, soak = res["settings"], res["soak"]
    lk = st["link"]
    host = res["host"]
    loads = [r["host_load"]["mean_sampled"] for r in res["sweep"]] + (
        [soak["host_load"]["mean_sampled"]] if soak else []
    )
    frame = res.get("frame_bytes", 794)  # an INFER frame: the input and the frame overhead
    wrong_total = sum(r["wrong"] for r in res["sweep"]) + (soak["wrong"] if soak else 0)

    def intact(rate: float) -> float:
        return float((1 - (1 + st["drop_fraction"]) * rate) ** frame)

    verdict = (
        "**No wrong result at any rate**: every answer the harness accepted equals the simulator's "
        "output vector byte for byte (CRC-32 over every frame; sequence numbers drop stale replies), and "
        "every stretch it could not recover ended in the `DeviceError` above."
        if wrong_total == 0
        else f"**{wrong_total} WRONG RESULTS** (indices in the .json): a corrupted reply was accepted."
    )
    md = [
        "```",
        res["command"],
        "```",
        "",
        f"# Link soak: {res.get('network', 'compressed LeNet-300-100')} on {res['board']} through the "
        "fault proxy",
        "",
        f"Model `{res['model_file']}` (hash {res['model_hash']}), firmware {res['flash_used']:,} B "
        f"flash / {res['ram_used']:,} B RAM; {res['qemu']}, `-icount shift=0`. MNIST test images, "
        "every device output compared byte for byte (all 10 int8 outputs) with the bit-exact "
        "simulator's. `FaultProxy` sits between the harness and QEMU's UART socket and, in **both "
        "directions**, XORs a random non-zero mask into each byte with probability *r* and drops each "
        f"byte with probability {st['drop_fraction']:g} *r* (seed {st['seed']}, no cap on the number of "
        f"faults). Harness: reply timeout {lk['reply_timeout_s']:g} s, {lk['retries']} resends per "
        "request. A request the harness gives up on raises `DeviceError`; the soak records its message "
        f"and asks for the same image again, and {st['max_consecutive']} such errors in a row end the "
        'rate ("does not progress").',
        "",
        f"Host: {host['cpus']} cores shared with other work; 1-minute load average "
        f"{host['load_start']:.1f} at the start, {host['load_end']:.1f} at the end, "
        f"{min(loads):.1f}–{max(loads):.1f} sampled during the rates (QEMU's UART rate follows the "
        f"free CPU, so throughput moves with the load). Whole run {res['wall_s'] / 60:.1f} min.",
        "",
        "Columns: corruption / drop rate per byte; images answered; **wrong** results (an output "
        "that differs from the simulator's); resends; host timeouts (no valid reply in time, then a "
        "resync); ERROR replies of the device: BAD_CRC / TIMEOUT (request stopped half-way) / "
        "TOO_LONG (corrupted length); replies the host dropped for a bad CRC; unrecoverable "
        "(`DeviceError` after every resend); throughput, and relative to the fault-free rate of the "
        "same run; bytes corrupted and dropped, to device / to host.",
        "",
        "| | *r* corrupt / drop | images | wrong | resends | timeouts | device ERROR crc / timeout / "
        "too long | bad replies | unrecoverable | images/s | vs fault-free | corrupted → dev / → host | "
        "dropped → dev / → host | end |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    md += [_row_md("sweep", r) for r in res["sweep"]]
    if soak:
        md.append(_row_md(f"**soak {soak['images_planned']:,}**", soak))
    base = res["sweep"][0]
    md += [
        "",
        f"Soak rate *r* = {res['chosen_rate']:g}: {res['chosen_why']}. A sweep rate ends early after "
        f"{st['sweep_max_s']:g} s or {st['max_consecutive']} unrecoverable errors in a row; the projection "
        "is the rate's images/s on its sweep images. The fault-free requests took "
        f"{base['latency_ms']['p50']:.0f} ms (median), {base['latency_ms']['p99']:.0f} ms (p99), "
        f"{base['latency_ms']['max']:.0f} ms at most, so the {lk['reply_timeout_s']:g} s reply timeout "
        "only fires on a lost or mangled exchange.",
        "",
    ]
    if soak:
        acc = soak["device_accuracy"]
        md += [
            f"**Soak**: {soak['images_done']:,} of {soak['images_planned']:,} images at *r* = "
            f"{soak['corrupt_rate']:g}, **{soak['wrong']} wrong**, {soak['link']['retries']:,} resends "
            f"({soak['link']['retries'] / max(1, soak['images_done']):.2f} per image), "
            f"{soak['unrecoverable']} unrecoverable, {soak['images_per_s']:.1f} images/s "
            f"({100 * (soak['relative_throughput'] or 0):.0f} % of the fault-free "
            f"{res['fault_free_images_per_s']:.1f}), {soak['seconds'] / 60:.1f} min; "
            f"{soak['faults']['corrupted']:,} bytes corrupted and {soak['faults']['dropped']:,} dropped of "
            f"{sum(soak['faults']['forwarded'].values()):,} forwarded; device accuracy "
            f"{'n/a' if acc is None else f'{100 * acc:.2f} %'}; instructions per inference "
            f"{soak['instructions_per_inference']:,.0f} (median; {soak['instructions_min']:,}–"
            f"{soak['instructions_max']:,}).",
            "",
        ]
    runs = [("sweep", r) for r in res["sweep"]] + ([("soak", soak)] if soak else [])
    firsts = [(kind, r, r["unrecoverable_errors"][0]) for kind, r in runs if r["unrecoverable_errors"]]
    if firsts:
        md += ["Unrecoverable stretches end with a `DeviceError` like these (the first of each run):", ""]
        for kind, r, e in firsts:
            where = "the handshake" if e["image"] is None else f"image {e['image']}"
            md.append(f'* {kind} at *r* = {r["corrupt_rate"]:g}, {where}: "{e["message"]}"')
        md.append("")
    if soak and soak["unrecoverable"]:
        images = [e["image"] for e in soak["unrecoverable_errors"]]
        lasts = [
            e["message"].split("(last: ", 1)[-1].split("). ", 1)[0] for e in soak["unrecoverable_errors"]
        ]
        md += [
            f"In the soak, {soak['unrecoverable']} requests were given up (images "
            f"{', '.join(map(str, images))}{', …' if soak['unrecoverable'] > len(images) else ''}; last "
            f"failure {' or '.join(f'“{m}”' for m in sorted(set(lasts)))}); each ended in that "
            "`DeviceError`, never in a result, and the same image asked again came back equal to the "
            "simulator's.",
            "",
        ]
    md += [
        "![throughput and resends against the corruption rate](device_link_soak.png)",
        "",
        "Throughput falls with *r* because each corrupted request costs a resend (a quick ERROR BAD_CRC "
        "reply), and each dropped byte or corrupted sync/length costs a reply timeout and a resync: an "
        f"INFER request of {frame} bytes arrives intact with probability (1 − {1 + st['drop_fraction']:g} "
        f"*r*)^{frame}, {intact(res['chosen_rate']):.0%} at the soak's rate and {intact(1e-3):.0%} at 0.001, "
        f"and after {lk['retries']} resends a request is given up with probability about "
        f"{(1 - intact(res['chosen_rate'])) ** (lk['retries'] + 1):.0e} at the soak's rate and "
        f"{(1 - intact(1e-3)) ** (lk['retries'] + 1):.0e} at 0.001 (before the replies' own faults). "
        "When the resends run out the harness raises a `DeviceError` naming the request and its last "
        "failure.",
        "",
        verdict,
        "",
    ]
    (out / "device_link_soak.md").write_text("\n".join(md))
    plot_soak(out / "device_link_soak.png", res)


def plot_soak(path: Path, res: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in res["sweep"] if r["corrupt_rate"] > 0]
    answered = [r for r in rows if r["images_done"] > 0]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.axhline(100, color="gray", lw=0.8, ls="--", label="fault-free")
    a1.semilogx(
        [r["corrupt_rate"] for r in rows],
        [100 * (r["relative_throughput"] or 0) for r in rows],
        "o-",
        label=f"sweep ({res['settings']['sweep_n']} images per rate)",
    )
    a2.loglog(
        [r["corrupt_rate"] for r in answered],
        [r["link"]["retries"] / r["images_done"] for r in answered],
        "o-",
        label="sweep",
    )
    soak = res["soak"]
    if soak and soak["corrupt_rate"] > 0 and soak["images_done"]:
        a1.semilogx(
            [soak["corrupt_rate"]],
            [100 * (soak["relative_throughput"] or 0)],
            "r*",
            ms=14,
            label=f"soak ({soak['images_done']:,} images)",
        )
        a2.loglog(
            [soak["corrupt_rate"]],
            [soak["link"]["retries"] / soak["images_done"]],
            "r*",
            ms=14,
            label="soak",
        )
    gave_up = [r for r in rows if r["stop"] == "completed" and r["unrecoverable"]]
    stalled = [r for r in rows if r["stop"] != "completed"]
    for sel, style, what in (
        (gave_up, dict(marker="s", color="tab:orange"), "completed, some requests given up"),
        (
            stalled,
            dict(marker="x", color="black"),
            f"does not progress ({res['settings']['max_consecutive']} given up in a row)",
        ),
    ):
        if sel:
            a1.plot(
                [r["corrupt_rate"] for r in sel],
                [100 * (r["relative_throughput"] or 0) for r in sel],
                ls="none",
                ms=9,
                mew=2,
                label=what,
                **style,  # type: ignore[arg-type]
            )
    a1.set_xlabel(f"corruption rate per byte (drops at {res['settings']['drop_fraction']:.2g}×)")
    a1.set_ylabel(f"throughput, % of fault-free ({res['fault_free_images_per_s']:.1f} images/s)")
    a1.set_ylim(0, 110)
    a2.set_xlabel("corruption rate per byte")
    a2.set_ylabel("resends per answered image")
    for a in (a1, a2):
        a.grid(True, which="both", alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(
        f"Link soak on {res['board']}: 0 wrong results at every rate"
        if sum(r["wrong"] for r in res["sweep"]) + (soak["wrong"] if soak else 0) == 0
        else f"Link soak on {res['board']}: WRONG RESULTS",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", nargs="+", default=list(BOARDS))
    ap.add_argument("--n", type=int, default=50, help="repetitions per measurement")
    ap.add_argument("--work-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    soak = ap.add_argument_group("fault soak (--soak)")
    soak.add_argument("--soak", action="store_true", help="run the fault soak instead of the link speed")
    soak.add_argument("--board", default="qemu-mps2-an386", help="the soak's emulated board")
    soak.add_argument("--model", type=Path, default=SOAK_MODEL, help="the soak's .mcudc (MNIST-shaped)")
    soak.add_argument("--data-dir", default=None, help="where MNIST is (default: mcu_dc's search path)")
    soak.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=list(SOAK_RATES),
        help="corruption rates per byte to sweep (fault-free is always measured first)",
    )
    soak.add_argument("--drop-fraction", type=float, default=0.3, help="drop rate = this × corruption rate")
    soak.add_argument("--sweep-n", type=int, default=200, help="images per sweep rate")
    soak.add_argument("--sweep-max-s", type=float, default=120.0, help="wall-clock cap per sweep rate")
    soak.add_argument("--soak-n", type=int, default=10_000, help="images of the soak (0: sweep only)")
    soak.add_argument(
        "--soak-rate", type=float, default=None, help="the soak's rate (default: from the sweep)"
    )
    soak.add_argument(
        "--budget-min", type=float, default=35.0, help="the soak's projected time must fit this"
    )
    soak.add_argument("--soak-max-min", type=float, default=50.0, help="hard wall-clock cap of the soak")
    soak.add_argument(
        "--max-consecutive", type=int, default=3, help="unrecoverable errors in a row that end a rate"
    )
    soak.add_argument("--reply-timeout", type=float, default=0.3, help="harness reply timeout (s)")
    soak.add_argument("--retries", type=int, default=8, help="harness resends per request")
    soak.add_argument("--seed", type=int, default=12)
    soak.add_argument(
        "--render-only", action="store_true", help="rewrite device_link_soak.{md,png} from its .json"
    )
    args = ap.parse_args(argv)
    cmd = "python " + " ".join(shlex.quote(a) for a in ["bench/device_link.py", *(argv or sys.argv[1:])])
    if args.soak and args.render_only:
        write_soak_report(args.out, json.loads((args.out / "device_link_soak.json").read_text()))
        return 0
    if args.soak:
        st = SoakSettings(
            board=args.board,
            rates=sorted(args.rates),
            drop_fraction=args.drop_fraction,
            sweep_n=args.sweep_n,
            soak_n=args.soak_n,
            soak_rate=args.soak_rate,
            budget_s=60 * args.budget_min,
            sweep_max_s=args.sweep_max_s,
            soak_max_s=60 * args.soak_max_min,
            max_consecutive=args.max_consecutive,
            link=LinkSettings(reply_timeout_s=args.reply_timeout, retries=args.retries),
            seed=args.seed,
        )
        return run_soak(args, st, cmd)
    cm = link_model()
    work = args.work_dir or default_work_dir()
    rows = []
    for b in args.boards:
        fw = build_firmware(cm, b, work)
        rows.append(measure(b, fw.elf, args.n))
        print(rows[-1], flush=True)
    md = [
        "```",
        cmd,
        "```",
        "",
        "# Serial link of the emulated boards (QEMU 7.2, `-icount shift=0`, UART on a loopback TCP socket)",
        "",
        f"Host load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (QEMU's "
        "UART throughput depends on how much CPU its main loop gets, so these figures vary with it). "
        f'Median of {args.n} requests each. "inbound" is the 784-byte echo minus the empty round trip, '
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
