"""Subscriber rate of hub.mqtt.bus against a bare paho subscriber, through a private Mosquitto.

    .venv/bin/python bench/bench_bus.py [--messages 200000] [--rounds 3] [--protocol 5]

A publisher process writes a burst of small QoS 0 PUBLISH packets straight to
the socket (pre-encoded, so the publisher is never the bottleneck); the
subscriber under test runs in this process. Reported per subscriber, median
over rounds: messages received, rate from first to last message, and
subscriber CPU per message.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import remaining_length

from hub.broker.launcher import BrokerHandle, start_broker
from hub.config import Broker
from hub.mqtt.bus import Bus

TOPIC = "bench/sensors/x"
PAYLOAD = bytes(64)
IDLE_S = 3.0


@dataclass
class Result:
    """What one subscriber saw in one round."""

    received: int
    seconds: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu_s / max(self.received, 1)


def _publisher(host: str, port: int, count: int, start: mp.synchronize.Event) -> None:
    """Connect with MQTT 3.1.1, wait for the go, send ``count`` QoS 0 PUBLISH packets."""
    topic = TOPIC.encode()
    body = struct.pack("!H", len(topic)) + topic + PAYLOAD
    packet = b"\x30" + remaining_length(len(body)) + body
    client_id = b"bench-pub"
    var = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(client_id)) + client_id
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"\x10" + remaining_length(len(var)) + var)
        assert sock.recv(4)[:1] == b"\x20", "no CONNACK"
        start.wait()
        chunk = packet * 1000
        for _ in range(count // 1000):
            sock.sendall(chunk)
        sock.sendall(packet * (count % 1000))
        sock.sendall(b"\xe0\x00")  # DISCONNECT


class Clock:
    """First and last message times, and CPU time from the first message on."""

    def __init__(self) -> None:
        self.count = 0
        self.first = self.last = 0.0
        self.cpu0 = 0.0

    def tick(self) -> None:
        if self.count == 0:
            self.first, self.cpu0 = time.perf_counter(), time.process_time()
        self.count += 1
        self.last = time.perf_counter()

    def result(self) -> Result:
        return Result(self.count, self.last - self.first, time.process_time() - self.cpu0)


def _run_publisher(handle: BrokerHandle, count: int) -> tuple[mp.Process, mp.synchronize.Event]:
    start = mp.Event()
    proc = mp.Process(target=_publisher, args=(handle.host, handle.port, count, start))
    proc.start()
    return proc, start


def bare_paho(handle: BrokerHandle, protocol: str, count: int) -> Result:
    """Subscribe with plain paho driven by its own loop() and count messages."""
    clock = Clock()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare",
                         protocol=MQTTProtocolVersion.MQTTv5 if protocol == "5"
                         else MQTTProtocolVersion.MQTTv311)
    client.on_message = lambda c, u, m: clock.tick()
    client.connect(handle.host, handle.port, keepalive=30)
    client.subscribe(TOPIC, 0)
    for _ in range(20):
        client.loop(0.05)
    proc, start = _run_publisher(handle, count)
    start.set()
    last_seen, last_count = time.monotonic(), 0
    while clock.count < count and time.monotonic() - last_seen < IDLE_S:
        client.loop(0.2)
        if clock.count != last_count:
            last_seen, last_count = time.monotonic(), clock.count
    result = clock.result()
    client.disconnect()
    proc.join()
    return result


def bus_subscriber(handle: BrokerHandle, protocol: str, count: int) -> Result:
    """Subscribe with hub.mqtt.bus.Bus and count messages in the handler."""
    return asyncio.run(_bus_subscriber(handle, protocol, count))


async def _bus_subscriber(handle: BrokerHandle, protocol: str, count: int) -> Result:
    clock = Clock()
    settings = Broker(host=handle.host, port=handle.port, protocol=protocol,  # type: ignore[arg-type]
                      client_id="bench-bus")
    tick = clock.tick
    async with Bus(settings, subscriptions=[(TOPIC, 0)], handler=lambda t, p: tick(),
                   will=None) as bus:
        await bus.wait_connected(10)
        proc, start = _run_publisher(handle, count)
        start.set()
        last_seen, last_count = time.monotonic(), 0
        while clock.count < count and time.monotonic() - last_seen < IDLE_S:
            await asyncio.sleep(0.05)
            if clock.count != last_count:
                last_seen, last_count = time.monotonic(), clock.count
        result = clock.result()
    proc.join()
    return result


def _median(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.rate)[len(results) // 2]


def main() -> None:
    """Run the rounds and print one line per subscriber."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    args = parser.parse_args()
    runners: dict[str, Callable[[BrokerHandle, str, int], Result]] = {
        "bare paho": bare_paho, "hub.mqtt.bus.Bus": bus_subscriber}
    results: dict[str, list[Result]] = {name: [] for name in runners}
    with start_broker(prefer="mosquitto") as handle:
        print(f"broker {handle.url}, MQTT {args.protocol}, {args.messages} x "
              f"{len(PAYLOAD)} B QoS 0, {args.rounds} rounds")
        for _ in range(args.rounds):
            for name, run in runners.items():
                results[name].append(run(handle, args.protocol, args.messages))
    for name, rs in results.items():
        med = _median(rs)
        rates = ", ".join(f"{r.rate:,.0f}" for r in rs)
        print(f"{name:12s} median {med.rate:9,.0f} msg/s  {med.cpu_us:5.1f} us CPU/msg  "
              f"received {med.received}/{args.messages}  (rounds: {rates})")
    ratio = _median(results["hub.mqtt.bus.Bus"]).rate / _median(results["bare paho"]).rate
    print(f"Bus / bare paho rate: {ratio:.0%}")


if __name__ == "__main__":
    main()
