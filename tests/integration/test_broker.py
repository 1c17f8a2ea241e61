"""hub.broker: the private broker starts, answers MQTT, and leaves nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mqtt_peer import Peer, until

from hub.broker.launcher import (
    EPHEMERAL_RANGE,
    LISTEN_FLOOR,
    find_mosquitto,
    free_port,
    start_broker,
)
from hub.errors import BrokerUnavailable


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state to tell.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_mosquitto_is_installed() -> None:
    assert find_mosquitto() is not None, "apt-get install mosquitto"


async def test_mosquitto_serves_mqtt5_and_stop_cleans_up() -> None:
    with start_broker(prefer="mosquitto") as handle:
        assert (handle.kind, handle.protocol, handle.host) == ("mosquitto", "5", "127.0.0.1")
        pid, workdir = handle.pid, handle.workdir
        assert pid is not None and (workdir / "mosquitto.conf").exists()
        peer = Peer(handle, "5", "broker-test")
        try:
            peer.subscribe("b/t")
            peer.publish("b/t", b"echo")
            assert await peer.receive(1) == [("b/t", b"echo", False)]
        finally:
            peer.close()
    assert not handle.running and not pid_alive(pid)
    assert not workdir.exists()
    with pytest.raises(OSError), socket.create_connection((handle.host, handle.port), timeout=1):
        pass


def test_kill_and_restart_keep_the_port(tmp_path: Path) -> None:
    handle = start_broker(prefer="mosquitto", workdir=tmp_path)
    try:
        port = handle.port
        handle.kill()
        assert not handle.running
        handle.restart()
        assert handle.running and handle.port == port
        socket.create_connection((handle.host, port), timeout=1).close()
    finally:
        handle.stop()
    assert tmp_path.exists(), "a given workdir belongs to the caller"


def test_a_taken_port_is_reported() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(BrokerUnavailable, match="exited"):
            start_broker(prefer="mosquitto", port=port)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_free_ports_are_never_ones_an_outgoing_connection_could_take_nor_repeated() -> None:
    low, high = map(int, EPHEMERAL_RANGE.read_text().split())
    ports = [free_port() for _ in range(200)]
    if low > LISTEN_FLOOR + 100:
        assert len(set(ports)) == len(ports)
        assert all(LISTEN_FLOOR <= port < low for port in ports), (low, high)
    else:  # no room below this system's range: the kernel's choice, as bind(0) gives it
        assert all(low <= port <= high for port in ports), (low, high)


async def test_amqtt_fallback_serves_mqtt311() -> None:
    with start_broker(prefer="amqtt") as handle:
        assert (handle.kind, handle.protocol) == ("amqtt", "3.1.1")
        pid = handle.pid
        assert pid is not None
        peer = Peer(handle, "3.1.1", "amqtt-test")
        try:
            peer.subscribe("a/t")
            peer.publish("a/t", b"echo")
            assert await peer.receive(1) == [("a/t", b"echo", False)]
        finally:
            peer.close()
    assert not pid_alive(pid)


async def test_embedded_broker_exits_when_its_parent_dies(tmp_path: Path) -> None:
    # A parent that starts the broker, prints its pid and dies without cleaning up.
    script = textwrap.dedent("""
        import os
        from hub.broker.launcher import start_broker
        handle = start_broker(prefer="amqtt")
        print(handle.pid, flush=True)
        os._exit(0)
    """)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True,
                         text=True, timeout=60, check=True)
    pid = int(out.stdout.strip())
    await until(lambda: not pid_alive(pid), "the orphaned embedded broker to exit")
