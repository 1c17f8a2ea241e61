"""Partners that park a persistent session: what Mosquitto, as `hub broker-config` writes it,
keeps for them, and for how long.

    python bench/bench_parked_partner.py [--minutes 30] [--rate 1] [--picture-bytes 110903]
                                         [--expiry-s S] [--unbounded]

A private Mosquitto runs the files `hub broker-config` writes for the default registry,
unchanged but for one ACL line: the bench's `hub-monitor` may also read `$SYS`.
The hub's identity publishes a picture for partners ken and gha at ``--rate`` a second
each, ``--picture-bytes`` long (default: a full targets300 picture, bench_publish),
QoS 1. Both partners connect with a persistent session, subscribe to their pictures
and stop reading (their network loop stops, the socket stays open), so the broker
first holds what is in flight to them, then drops them after 1.5 x their 60 s
keepalive and holds their parked sessions:

- ken, MQTT 3.1.1 with clean session false, asks to be kept for ever: the broker's
  `persistent_client_expiration` (1 h, Mosquitto's finest unit) applies;
- gha, MQTT 5, asks for a session expiry of ``--expiry-s`` (default: a third of the
  parked time), so its session expires during the run.

Every 10 s (Mosquitto's `$SYS` interval): Mosquitto's RSS, `$SYS/broker/store/messages/
{count,bytes}`, `$SYS/broker/clients/{disconnected,expired}` and `$SYS/broker/heap/current`.
At the end each partner returns to its session and counts what the broker kept.
``--unbounded`` runs the config as it was before issue 11 (100,000 queued, no byte bound,
no expiry), for comparison. Written to bench/results/parked_partner[_unbounded].json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from common import rss_mib, write_results
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub import topics
from hub.broker.files import CONF, BrokerFiles, write_broker_config
from hub.broker.launcher import (
    BrokerHandle,
    find_mosquitto,
    free_port,
    mosquitto_config,
    mosquitto_handle,
)
from hub.broker.limits import BrokerLimits, broker_limits
from hub.config import DEFAULT_CONFIG, HubConfig, load_config

SYS_TOPICS = ("$SYS/broker/store/messages/count", "$SYS/broker/store/messages/bytes",
              "$SYS/broker/clients/disconnected", "$SYS/broker/clients/expired",
              "$SYS/broker/heap/current")
SAMPLE_S = 10.0
KEEPALIVE_S = 60
QUIET_S = 3.0
MONITOR = "hub-monitor"


@dataclasses.dataclass(frozen=True)
class Partner:
    """A parked partner: who, over which MQTT version, asking for which session expiry."""

    name: str
    protocol: str
    expiry_s: int | None  # None: MQTT 3.1.1 clean session false, "for ever"


def client(files: BrokerFiles, identity: str, protocol: str,
           persistent: bool = True) -> mqtt.Client:
    """A paho client logged in as ``identity`` (not yet connected)."""
    v5 = protocol == "5"
    made = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=identity,
                       clean_session=None if v5 else not persistent,
                       protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311)
    made.username_pw_set(identity, files.password(identity))
    return made


def connect(made: mqtt.Client, broker: BrokerHandle, partner: Partner) -> bool:
    """Connect to the partner's session; whether the broker still had it."""
    answered: queue.Queue[bool] = queue.Queue()
    made.on_connect = lambda c, u, flags, rc, p: answered.put(flags.session_present)
    properties = None
    if partner.protocol == "5":
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = partner.expiry_s
        made.connect(broker.host, broker.port, KEEPALIVE_S, clean_start=False,
                     properties=properties)
    else:
        made.connect(broker.host, broker.port, KEEPALIVE_S)
    made.loop_start()
    return answered.get(timeout=15)


def park(broker: BrokerHandle, files: BrokerFiles, partner: Partner) -> mqtt.Client:
    """Subscribe with a persistent session, then stop reading with the socket left open."""
    made = client(files, partner.name, partner.protocol)
    connect(made, broker, partner)
    subscribed: queue.Queue[int] = queue.Queue()
    made.on_subscribe = lambda c, u, mid, rc, p: subscribed.put(mid)
    _, mid = made.subscribe(topics.partner_picture(partner.name), 1)
    assert subscribed.get(timeout=15) == mid
    made.loop_stop()  # no more reads, no more pings: the broker drops it after 1.5 x keepalive
    return made


def come_back(broker: BrokerHandle, files: BrokerFiles, partner: Partner) -> dict[str, Any]:
    """Return to the session and count what the broker kept for it."""
    made = client(files, partner.name, partner.protocol)
    got: queue.Queue[int] = queue.Queue()
    made.on_message = lambda c, u, m: got.put(len(m.payload))
    present = connect(made, broker, partner)
    sizes = []
    while True:
        try:
            sizes.append(got.get(timeout=QUIET_S))
        except queue.Empty:
            break
    made.disconnect()
    made.loop_stop()
    return {"session_present": present, "messages": len(sizes), "bytes": sum(sizes)}


class Monitor:
    """The latest `$SYS` figures, read as the monitor identity."""

    def __init__(self, broker: BrokerHandle, files: BrokerFiles) -> None:
        self.values: dict[str, float] = {}
        self.client = client(files, MONITOR, "5", persistent=False)
        self.client.on_message = lambda c, u, m: self.values.__setitem__(
            m.topic.rsplit("broker/", 1)[1], float(m.payload))
        self.client.connect(broker.host, broker.port, KEEPALIVE_S)
        self.client.loop_start()
        for topic in SYS_TOPICS:
            self.client.subscribe(topic, 0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Publisher(threading.Thread):
    """The hub's identity publishing each partner's pictures at ``rate`` a second."""

    def __init__(self, broker: BrokerHandle, files: BrokerFiles, partners: list[Partner],
                 rate: float, size: int) -> None:
        super().__init__(daemon=True)
        self.client = client(files, "hub", "5", persistent=False)
        self.client.connect(broker.host, broker.port, KEEPALIVE_S)
        self.client.loop_start()
        self.partners, self.period, self.size = partners, 1.0 / rate, size
        self.sent = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        body = os.urandom(self.size)
        due = time.monotonic()
        while not self.stopping.is_set():
            for partner in self.partners:
                payload = self.sent.to_bytes(8, "big") + body[8:]
                self.client.publish(topics.partner_picture(partner.name), payload, qos=1)
            self.sent += 1
            due += self.period
            self.stopping.wait(max(due - time.monotonic(), 0.0))

    def stop(self) -> None:
        self.stopping.set()
        self.join()
        self.client.disconnect()
        self.client.loop_stop()


def start(config: HubConfig, directory: Path, unbounded: bool) -> tuple[BrokerHandle, BrokerFiles]:
    """Mosquitto with the generated files (or, ``unbounded``, the config before issue 11)."""
    binary = find_mosquitto()
    if binary is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    files = write_broker_config(config, directory)
    with files.auth.acl_file.open("a") as acl:
        acl.write(f"\n# the bench reads the broker's figures\nuser {MONITOR}\ntopic read $SYS/#\n")
    host, port = config.broker.host, config.broker.port
    text = (mosquitto_config(host, port, files.data, True, files.auth) if unbounded
            else (directory / CONF).read_text())
    broker = mosquitto_handle(binary, text, host, port, directory)
    broker.start()
    return broker, files


def sample(started: float, broker: BrokerHandle, monitor: Monitor) -> dict[str, float]:
    assert broker.pid is not None
    row = {"t_s": round(time.monotonic() - started), "rss_mib": round(rss_mib(broker.pid), 1)}
    row.update(monitor.values)
    return row


def describe(row: dict[str, float]) -> str:
    return (f"{row['t_s']:>5.0f} s  RSS {row['rss_mib']:7.1f} MiB  stored "
            f"{row.get('store/messages/count', 0):7.0f} msgs "
            f"{row.get('store/messages/bytes', 0) / 2**20:7.1f} MiB  heap "
            f"{row.get('heap/current', 0) / 2**20:7.1f} MiB  disconnected "
            f"{row.get('clients/disconnected', 0):.0f}  expired "
            f"{row.get('clients/expired', 0):.0f}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    parked_s = args.minutes * 60.0
    expiry_s = args.expiry_s or max(30, round(parked_s / 3))
    partners = [Partner("ken", "3.1.1", None), Partner("gha", "5", expiry_s)]
    config = load_config(DEFAULT_CONFIG)
    config = msgspec.structs.replace(config, broker=msgspec.structs.replace(
        config.broker, port=free_port()))
    limits: BrokerLimits = broker_limits(config)
    directory = Path(tempfile.mkdtemp(prefix="bench-parked-"))
    broker, files = start(config, directory / "broker", args.unbounded)
    try:
        monitor = Monitor(broker, files)
        parked = [park(broker, files, p) for p in partners]
        publisher = Publisher(broker, files, partners, args.rate, args.picture_bytes)
        started = time.monotonic()
        publisher.start()
        samples = []
        while time.monotonic() - started < parked_s:
            time.sleep(min(SAMPLE_S, max(parked_s - (time.monotonic() - started), 0.0)))
            samples.append(sample(started, broker, monitor))
            print(describe(samples[-1]), flush=True)
        publisher.stop()
        for made in parked:
            made.socket().close()  # type: ignore[union-attr]
        back = {p.name: come_back(broker, files, p) for p in partners}
        time.sleep(SAMPLE_S + 1.0)  # the next $SYS figures, with every queue taken
        after = sample(started, broker, monitor)
        print(describe(after), "(partners back, queues taken)", flush=True)
        monitor.close()
    finally:
        broker.stop()
        shutil.rmtree(directory, ignore_errors=True)
    sent_bytes = publisher.sent * args.picture_bytes
    for name, got in back.items():
        print(f"{name}: session kept {got['session_present']}, {got['messages']} pictures, "
              f"{got['bytes'] / 2**20:.1f} MiB kept of {publisher.sent} sent "
              f"({sent_bytes / 2**20:.1f} MiB)")
    return {"minutes": args.minutes, "rate": args.rate, "picture_bytes": args.picture_bytes,
            "expiry_s": {"ken": None, "gha": expiry_s}, "unbounded": args.unbounded,
            "bounds": None if args.unbounded else dataclasses.asdict(limits),
            "sent_per_partner": publisher.sent, "sent_bytes_per_partner": sent_bytes,
            "samples": samples, "came_back": back, "after_coming_back": after,
            "peak_rss_mib": max(s["rss_mib"] for s in samples),
            "peak_stored_mib": round(max(s.get("store/messages/bytes", 0)
                                         for s in samples) / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long they stay parked")
    parser.add_argument("--rate", type=float, default=1.0, help="pictures a second, each")
    parser.add_argument("--picture-bytes", type=int, default=110_903,
                        help="bytes per picture (default: a full targets300 picture)")
    parser.add_argument("--expiry-s", type=int, default=None,
                        help="gha's MQTT 5 session expiry (default: a third of --minutes)")
    parser.add_argument("--unbounded", action="store_true",
                        help="the config before issue 11, for comparison")
    args = parser.parse_args()
    figures = run(args)
    path = write_results("parked_partner" + ("_unbounded" if args.unbounded else ""), figures)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
