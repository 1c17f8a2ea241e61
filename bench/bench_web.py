"""Many console streams on one hub: latency to the client socket, hub CPU and memory per client.

    python bench/bench_web.py [--clients 200] [--seconds 20] [--rounds 3]

A private Mosquitto, ``hub run`` with a console (its own process, measured)
and ``hub sim -s targets300`` in real time (its own process) make a live
picture of about 300 tracks. A client process (spawned: it shares nothing
with the hub) then opens N WebSocket streams, spread over the four partners,
and for every delta records its receive time minus the ``sent_at`` the hub
stamped when it handed the picture on: the latency from the fusion step's
publish to the client socket. Clients read only the head of each message
(``sent_at`` is in its first bytes), so the client process stays light.

Phases, on the same hub: no client (baseline CPU and RSS), then rounds of N
readers alone and N readers beside one client that never reads (a tiny
receive buffer: it stalls at once); the rounds alternate so the machine's
drift falls on both. Written to bench/results/web.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from common import ROOT, cpu_seconds, machine_info, rss_mib, write_results

from hub.broker.files import write_auth_files
from hub.broker.launcher import free_port, start_broker
from hub.config import DEFAULT_CONFIG, load_config

HUB = [sys.executable, "-m", "hub.cli"]
PARTNERS = ("ken", "gha", "nld", "bra")
SENT_AT = re.compile(rb'"sent_at":([0-9.eE+-]+)')
HEAD_BYTES = 160
CLIENT_PROCESSES = 2


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


def hub_counters(url: str, operator: str) -> dict[str, int]:
    """Every counter of the hub so far, read as the operator over the web API."""
    request = urllib.request.Request(f"{url}/api/v1/status", headers={"Authorization": operator})
    with urllib.request.urlopen(request, timeout=10) as answer:
        counters: dict[str, int] = json.loads(answer.read())["hub"]["counters"]
    return counters


def web_counters(url: str, operator: str, sink: str = "web") -> dict[str, int]:
    """A sink's counters so far (resyncs, disconnects by reason, drops), read as the operator."""
    return {k: v for k, v in hub_counters(url, operator).items()
            if k.startswith((f"{sink}_resyncs", f"{sink}_disconnects", f"sink_dropped.{sink}"))}


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
                                      compress=0, decode_text=False) as ws:
            while not stop.is_set():
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return
                now = time.time()
                head = bytes(msg.data[:HEAD_BYTES])
                if head.startswith(b'{"type":"delta"'):
                    found = SENT_AT.search(head)
                    if found:
                        out.append(now - float(found.group(1)))

    async def idle(stop: asyncio.Event) -> None:
        """A client that upgrades to a WebSocket and then never reads, with a tiny buffer."""
        host, port = url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /api/v1/stream HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      f"Authorization: {auth['ken']}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")
        await stop.wait()
        sock.close()

    async def run() -> list[float]:
        latencies: list[float] = []
        stop = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [asyncio.create_task(reader(session, PARTNERS[i % len(PARTNERS)],
                                                latencies, stop)) for i in range(count)]
            if slow:
                tasks.append(asyncio.create_task(idle(stop)))
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
    """One measured phase: latencies, hub CPU (cores) and RSS while ``count`` clients read.

    The readers are split over CLIENT_PROCESSES processes, so reading 200 streams does
    not itself become the bottleneck that the latency measures.
    """
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for k in range(CLIENT_PROCESSES if count else 0):
        parent, child = ctx.Pipe()
        share = count // CLIENT_PROCESSES + (k < count % CLIENT_PROCESSES)
        proc = ctx.Process(target=clients_main,
                           args=(url, auth, share, slow and k == 0, seconds, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    for parent in pipes:
        assert parent.poll(60.0) and parent.recv() == "measuring"
    cpu0, t0 = cpu_seconds(hub_pid), time.monotonic()
    if not count:
        time.sleep(seconds)
    latencies: list[float] = [x for parent in pipes for x in parent.recv()]
    cpu = (cpu_seconds(hub_pid) - cpu0) / (time.monotonic() - t0)
    rss = rss_mib(hub_pid)
    for proc in procs:
        proc.join(30)
    counters = web_counters(url, auth["hub-operator"])
    return {"clients": count, "slow_client": slow, "deltas": len(latencies), **counters,
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            "hub_cpu_cores": round(cpu, 3), "hub_rss_mib": round(rss, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--clients and --rounds must be at least 1, --seconds positive")
    directory = Path(tempfile.mkdtemp(prefix="bench-web-"))
    config = load_config(DEFAULT_CONFIG)
    files = write_auth_files(config, directory / "auth")
    auth = {p: "Basic " + base64.b64encode(f"{p}:{files.password(p)}".encode()).decode()
            for p in (*PARTNERS, "hub-operator")}
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
            results: dict[str, Any] = {"idle": phase(url, auth, hub.pid, 0, False, args.seconds)}
            # Rounds in ABBA order, so drift of the machine's load falls on both conditions.
            for round_ in range(args.rounds):
                for slow in ((False, True) if round_ % 2 == 0 else (True, False)):
                    name = f"{'readers_and_slow' if slow else 'readers'}_{round_ + 1}"
                    results[name] = phase(url, auth, hub.pid, args.clients, slow, args.seconds)
        finally:
            sim.terminate()
            hub.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                sim.wait(10)
                hub.wait(20)
    shutil.rmtree(directory, ignore_errors=True)
    idle = results["idle"]
    busy = [r for k, r in results.items() if k.startswith("readers_") and not r["slow_client"]]
    with_slow = [r for r in results.values() if r["slow_client"]]
    p99_busy = statistics.median(r["p99_ms"] for r in busy)
    p99_slow = statistics.median(r["p99_ms"] for r in with_slow)
    per_client = {
        "p50_ms_median": statistics.median(r["p50_ms"] for r in busy),
        "p99_ms_median": p99_busy, "p99_ms_median_with_slow": p99_slow,
        "slow_client_moves_p99_by": round(p99_slow / p99_busy - 1.0, 3),
        "cpu_cores_per_client": round((statistics.median(r["hub_cpu_cores"] for r in busy)
                                       - idle["hub_cpu_cores"]) / args.clients, 5),
        "rss_kib_per_client": round((busy[0]["hub_rss_mib"] - idle["hub_rss_mib"]) * 1024
                                    / args.clients, 1),
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
