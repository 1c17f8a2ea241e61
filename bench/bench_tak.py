"""TAK clients on one hub: latency to the device's socket with one slow device, and how many
positions a second 200 devices can send with every one fused.

    python bench/bench_tak.py [--clients 50] [--devices 200] [--seconds 20] [--rounds 2]

Out: a private Mosquitto, ``hub run`` with a plain TAK listener (its own
process, measured) and ``hub sim -s targets300`` in real time. A client
process opens N TAK connections and, for every track event, records its
receive time minus the event's ``time`` (when the hub built the batch): the
latency from the publish to the device socket. Rounds alternate N readers
alone and N readers beside one device that never reads (ABBA).

In: the same hub, 200 registered units (kind ``team``), each on its own
connection, send positions at a rising total rate for ``--seconds`` each; the
hub's own counters (read as the operator over the web API) say how many were
fused. The highest rate with every position fused is the figure.
Written to bench/results/tak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench_web import HUB, hub_counters, long_targets300, percentile, web_counters
from common import cpu_seconds, machine_info, rss_mib, write_results

from hub.broker.files import write_auth_files
from hub.broker.launcher import free_port, start_broker
from hub.config import DEFAULT_CONFIG, load_config
from hub.publish.cot import cot_time

TRACK_TIME = re.compile(rb'type="a-[^"]*" how="[^"]*" time="([^"]+)"')
RATES = (1000, 2000, 4000, 8000, 16000)


def write_config(directory: Path, mqtt_port: int, web_port: int, tak_port: int,
                 devices: int, passwd: Path) -> Path:
    """The default config on the private broker, a console, a plain TAK port and N units."""
    text = DEFAULT_CONFIG.read_text().replace("port = 1883", f"port = {mqtt_port}")
    text += (f'\n[web]\nport = {web_port}\npasswd_file = "{passwd}"\n'
             f'\n[tak]\ntls_port = 0\ntcp_port = {tak_port}\ntcp_partner = "ken"\n'
             f"events_per_s = 100000.0\nbytes_per_s = 1e9\nclient_queue = 32\n"
             # 80 positions a second from each unit: over a team's budget, on purpose.
             f"\n[ingest.budget.messages_per_s]\nteam = 1e6\n"
             f"\n[ingest.budget.bytes_per_s]\nteam = 1e9\n")
    units = "".join(f'\n[[sensors]]\nid = "unit-{k:03d}"\nnation = "KEN"\nkind = "team"\n'
                    f'release_to = ["ken"]\n' for k in range(devices))
    path = directory / "hub.toml"
    path.write_text(text + units)
    load_config(path)
    return path


# --- out: latency to TAK clients -------------------------------------------------------------

def readers_main(port: int, count: int, slow: bool, seconds: float, pipe: Connection) -> None:
    """Open ``count`` TAK readers (and a non-reader if ``slow``); send back the latencies."""

    async def reader(out: list[float], stop: asyncio.Event) -> None:
        stream, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        stamps: dict[bytes, float] = {}  # a batch's events share their time: parse it once
        try:
            while not stop.is_set():
                chunk = await stream.read(1 << 20)
                if not chunk:
                    return
                now = time.time()
                for found in TRACK_TIME.finditer(chunk):
                    stamp = found.group(1)
                    if stamp not in stamps:
                        stamps = {stamp: _epoch(stamp.decode())}
                    out.append(now - stamps[stamp])
        finally:
            writer.close()

    async def idle(stop: asyncio.Event) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        await stop.wait()
        sock.close()

    async def run() -> list[float]:
        # A device the hub cut off (the slow one) is expected here, not news.
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
        latencies: list[float] = []
        stop = asyncio.Event()
        tasks = [asyncio.create_task(reader(latencies, stop)) for _ in range(count)]
        if slow:
            tasks.append(asyncio.create_task(idle(stop)))
        await asyncio.sleep(3.0)
        latencies.clear()
        pipe.send("measuring")
        await asyncio.sleep(seconds)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return latencies

    pipe.send(asyncio.run(run()))


def _epoch(cot: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(cot.replace("Z", "+00:00")).timestamp()


def out_phase(port: int, hub_pid: int, count: int, slow: bool, seconds: float
              ) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=readers_main, args=(port, count, slow, seconds, child))
    proc.start()
    assert parent.poll(60.0) and parent.recv() == "measuring"
    cpu0, t0 = cpu_seconds(hub_pid), time.monotonic()
    latencies: list[float] = parent.recv()
    cpu = (cpu_seconds(hub_pid) - cpu0) / (time.monotonic() - t0)
    proc.join(30)
    return {"clients": count, "slow_client": slow, "events": len(latencies),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "hub_cpu_cores": round(cpu, 3), "hub_rss_mib": round(rss_mib(hub_pid), 1)}


# --- in: positions from many devices ---------------------------------------------------------

def devices_main(port: int, devices: int, rate: float, seconds: float, pipe: Connection) -> None:
    """``devices`` units, each on its own connection, sending positions at ``rate`` in all."""

    async def device(k: int, sent: list[int], stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        drain = asyncio.create_task(_discard(reader))
        period = devices / rate
        uid = f"unit-{k:03d}"
        next_at = time.monotonic() + (k / devices) * period
        try:
            while not stop.is_set():
                await asyncio.sleep(max(next_at - time.monotonic(), 0.0))
                next_at += period
                now = time.time()
                stamp = cot_time(now)
                writer.write(
                    f'<?xml version="1.0"?><event version="2.0" uid="{uid}" type="a-f-G-U-C" '
                    f'how="m-g" time="{stamp}" start="{stamp}" stale="{cot_time(now + 60)}">'
                    f'<point lat="{-1.29 + k * 1e-4:.6f}" lon="36.82" hae="1650" ce="5" '
                    f'le="9999999"/><detail/></event>'.encode())
                sent[0] += 1
        finally:
            drain.cancel()
            writer.close()

    async def run() -> int:
        sent = [0]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(device(k, sent, stop)) for k in range(devices)]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return sent[0]

    pipe.send(asyncio.run(run()))


async def _discard(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


def in_phase(port: int, url: str, operator: str, hub_pid: int, devices: int, rate: float,
             seconds: float) -> dict[str, Any]:
    before = telemetry_counts(url, operator)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    cpu0, t0 = cpu_seconds(hub_pid), time.monotonic()
    proc = ctx.Process(target=devices_main, args=(port, devices, rate, seconds, child))
    proc.start()
    sent: int = parent.recv()
    proc.join(30)
    time.sleep(2.0)  # what is in flight lands
    cpu = (cpu_seconds(hub_pid) - cpu0) / (time.monotonic() - t0)
    after = telemetry_counts(url, operator)
    got = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {"devices": devices, "rate_asked": rate, "sent": sent,
            "sent_per_s": round(sent / seconds), "telemetry": got.get("telemetry", 0),
            "rejected": got.get("rejected", 0), "late": got.get("late", 0),
            "all_taken": got.get("telemetry", 0) == sent and got.get("rejected", 0) == 0,
            "hub_cpu_cores": round(cpu, 3)}


def telemetry_counts(url: str, operator: str) -> dict[str, int]:
    counters = hub_counters(url, operator)
    return {k: counters.get(k, 0) for k in ("telemetry", "rejected", "late", "fused")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if min(args.clients, args.devices, args.rounds) < 1 or args.seconds <= 0:
        parser.error("--clients, --devices and --rounds must be at least 1, --seconds positive")
    import base64

    directory = Path(tempfile.mkdtemp(prefix="bench-tak-"))
    web_port, tak_port = free_port(), free_port()
    results: dict[str, Any] = {}
    with start_broker(prefer="mosquitto", workdir=directory / "mosquitto") as broker:
        config_path = write_config(directory, broker.port, web_port, tak_port, args.devices,
                                   directory / "auth" / "passwd")
        files = write_auth_files(load_config(config_path), directory / "auth")
        operator = "Basic " + base64.b64encode(
            f"hub-operator:{files.password('hub-operator')}".encode()).decode()
        url = f"http://127.0.0.1:{web_port}"
        hub = subprocess.Popen([*HUB, "run", "-c", str(config_path), "--quiet"])
        sim = subprocess.Popen([*HUB, "sim", "-c", str(config_path), "-s",
                                str(long_targets300(directory)), "--speed", "1",
                                "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(25.0)
            for round_ in range(args.rounds):
                for slow in ((False, True) if round_ % 2 == 0 else (True, False)):
                    name = f"{'readers_and_slow' if slow else 'readers'}_{round_ + 1}"
                    results[name] = out_phase(tak_port, hub.pid, args.clients, slow,
                                              args.seconds)
                    print(name, results[name], flush=True)
            results["counters_after_out"] = web_counters(url, operator, "tak")
            sim.terminate()
            for rate in RATES:
                row = in_phase(tak_port, url, operator, hub.pid, args.devices, rate,
                               args.seconds)
                results[f"in_{rate}"] = row
                print(f"in_{rate}", row, flush=True)
                if not row["all_taken"]:
                    break
        finally:
            sim.terminate()
            hub.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                sim.wait(10)
                hub.wait(20)
    shutil.rmtree(directory, ignore_errors=True)
    busy = [r for k, r in results.items() if k.startswith("readers_") and not r["slow_client"]]
    with_slow = [r for k, r in results.items() if k.startswith("readers_and_slow")]
    taken = [r for k, r in results.items() if k.startswith("in_") and r["all_taken"]]
    summary = {
        "out_p50_ms_median": statistics.median(r["p50_ms"] for r in busy),
        "out_p99_ms_median": statistics.median(r["p99_ms"] for r in busy),
        "out_p99_ms_median_with_slow": statistics.median(r["p99_ms"] for r in with_slow),
        "in_max_positions_per_s_all_fused": max((r["sent_per_s"] for r in taken), default=0),
    }
    summary["slow_client_moves_p99_by"] = round(
        summary["out_p99_ms_median_with_slow"] / summary["out_p99_ms_median"] - 1.0, 3)
    path = write_results("tak", {"machine": machine_info(), "clients": args.clients,
                                 "devices": args.devices, "seconds": args.seconds,
                                 **results, **summary})
    print(summary)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
