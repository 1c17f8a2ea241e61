"""Many console streams on one hub: latency to the client socket, hub CPU and memory per client.

    python bench/bench_web.py [--clients 200] [--seconds 30]

A private Mosquitto, ``hub run`` with a console (its own process, measured)
and ``hub sim -s targets300`` in real time (its own process) make a live
picture of about 300 tracks. A client process (spawned: it shares nothing
with the hub) then opens N WebSocket streams, spread over the four partners,
and for every delta records its receive time minus the ``sent_at`` the hub
stamped when it handed the picture on: the latency from the fusion step's
publish to the client socket. Clients read only the head of each message
(``sent_at`` is in its first bytes), so the client process stays light.

Phases, on the same hub: no client (baseline CPU and RSS); N readers; N
readers and one client that never reads. Written to bench/results/web.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing as mp
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common import ROOT, cpu_seconds, machine_info, write_results

from hub.broker.files import write_auth_files
from hub.broker.launcher import free_port, start_broker
from hub.config import DEFAULT_CONFIG, load_config

HUB = [sys.executable, "-m", "hub.cli"]
PARTNERS = ("ken", "gha", "nld", "bra")
SENT_AT = re.compile(rb'"sent_at":([0-9.eE+-]+)')
HEAD_BYTES = 160


def write_hub_config(directory: Path, mqtt_port: int, web_port: int, passwd: Path) -> Path:
    """The default config, on the private broker (anonymous), serving the console."""
    text = DEFAULT_CONFIG.read_text().replace("port = 1883", f"port = {mqtt_port}")
    text += (f'\n[web]\nport = {web_port}\npasswd_file = "{passwd}"\n'
             f"max_clients = 1000\nclient_queue = 64\n")
    path = directory / "hub.toml"
    path.write_text(text)
    load_config(path)  # fail here, not in the child
    return path


def long_targets300(directory: Path) -> Path:
    """targets300 lasting 15 minutes (it plays 2), so every phase runs on a live picture."""
    text = (ROOT / "config" / "scenarios" / "targets300.toml").read_text()
    assert "duration_s = 120.0" in text
    path = directory / "targets300-long.toml"
    path.write_text(text.replace("duration_s = 120.0", "duration_s = 900.0"))
    return path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# --- the client process --------------------------------------------------------------------------

def clients_main(url: str, auth: dict[str, str], count: int, slow: bool, seconds: float,
                 pipe: Connection) -> None:
    """Open ``count`` readers (and one non-reader if ``slow``); send back the latencies."""
    import aiohttp

    async def reader(session: aiohttp.ClientSession, partner: str, out: list[float],
                     stop: asyncio.Event) -> None:
        headers = {"Authorization": auth[partner]}
        async with session.ws_connect(f"{url}/api/v1/stream", headers=headers,
                                      compress=0) as ws:
            while not stop.is_set():
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return
                now = time.time()
                head = msg.data[:HEAD_BYTES].encode()
                if head.startswith(b'{"type":"delta"'):
                    found = SENT_AT.search(head)
                    if found:
                        out.append(now - float(found.group(1)))

    async def idle(session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        async with session.ws_connect(f"{url}/api/v1/stream",
                                      headers={"Authorization": auth["ken"]}, compress=0):
            await stop.wait()  # connected, never reading

    async def run() -> list[float]:
        latencies: list[float] = []
        stop = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [asyncio.create_task(reader(session, PARTNERS[i % len(PARTNERS)],
                                                latencies, stop)) for i in range(count)]
            if slow:
                tasks.append(asyncio.create_task(idle(session, stop)))
            await asyncio.sleep(3.0)  # connected and past the snapshots
            latencies.clear()
            pipe.send("measuring")
            await asyncio.sleep(seconds)
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return latencies

    pipe.send(asyncio.run(run()))


def phase(url: str, auth: dict[str, str], hub_pid: int, count: int, slow: bool,
          seconds: float) -> dict[str, Any]:
    """One measured phase: latencies, hub CPU (cores) and RSS while ``count`` clients read."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=clients_main, args=(url, auth, count, slow, seconds, child))
    proc.start()
    if count:
        assert parent.poll(60.0) and parent.recv() == "measuring"
    cpu0, t0 = cpu_seconds(hub_pid), time.monotonic()
    if not count:
        time.sleep(seconds)
    latencies: list[float] = parent.recv() if count else []
    cpu = (cpu_seconds(hub_pid) - cpu0) / (time.monotonic() - t0)
    rss = rss_mib(hub_pid)
    proc.join(30)
    return {"clients": count, "slow_client": slow, "deltas": len(latencies),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            "hub_cpu_cores": round(cpu, 3), "hub_rss_mib": round(rss, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0:
        parser.error("--clients must be at least 1 and --seconds positive")
    directory = Path(tempfile.mkdtemp(prefix="bench-web-"))
    config = load_config(DEFAULT_CONFIG)
    files = write_auth_files(config, directory / "auth")
    auth = {p: "Basic " + base64.b64encode(f"{p}:{files.password(p)}".encode()).decode()
            for p in PARTNERS}
    web_port = free_port()
    url = f"http://127.0.0.1:{web_port}"
    with start_broker(prefer="mosquitto", workdir=directory / "mosquitto") as broker:
        cfg = write_hub_config(directory, broker.port, web_port, files.auth.password_file)
        hub = subprocess.Popen([*HUB, "run", "-c", str(cfg), "--quiet"])
        scenario = long_targets300(directory)
        sim = subprocess.Popen([*HUB, "sim", "-c", str(cfg), "-s", str(scenario),
                                "--speed", "1", "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(25.0)  # the picture fills: about 300 confirmed tracks
            results = {"idle": phase(url, auth, hub.pid, 0, False, args.seconds),
                       "readers": phase(url, auth, hub.pid, args.clients, False, args.seconds),
                       "readers_and_slow": phase(url, auth, hub.pid, args.clients, True,
                                                 args.seconds)}
        finally:
            sim.terminate()
            hub.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                sim.wait(10)
                hub.wait(20)
    shutil.rmtree(directory, ignore_errors=True)
    idle, busy, slow = results["idle"], results["readers"], results["readers_and_slow"]
    per_client = {
        "cpu_cores_per_client": round((busy["hub_cpu_cores"] - idle["hub_cpu_cores"])
                                      / args.clients, 5),
        "rss_kib_per_client": round((busy["hub_rss_mib"] - idle["hub_rss_mib"]) * 1024
                                    / args.clients, 1),
        "slow_client_moves_p99_by": round(slow["p99_ms"] / busy["p99_ms"] - 1.0, 3),
    }
    figures = {"machine": machine_info(), "clients": args.clients, "seconds": args.seconds,
               **results, **per_client}
    path = write_results("web", figures)
    for name, row in results.items():
        print(f"{name:18} {row}")
    print(per_client)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
