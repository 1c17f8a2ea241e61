"""Start a private NATS cluster: N ``nats-server`` nodes routed to each other on loopback.

Used by the tests and ``hub demo --cluster``, as ``hub.broker.launcher`` is for one
Mosquitto. Each node has a server name, a client port, a cluster route port (routed
to every other node), an HTTP monitor port, JetStream with its own store directory,
and an MQTT 3.1.1 listener (NATS serves MQTT only with a server name and JetStream).
Every node runs in its own session (Ctrl-C reaches only the parent, which then stops
them), keeps its config, log and store in ``workdir/<name>``, and is SIGKILLed when
its starter dies if started ``dies_with_parent``. Clusters still running at
interpreter exit are stopped by an ``atexit`` hook; ``stop()`` removes a private
workdir.

Ready means every node serves JetStream, knows the JetStream meta leader, and its
MQTT listener answers a CONNECT: the first MQTT session on a cluster creates
NATS's replicated MQTT streams, which should not fall on a caller's first connect.

Started with ``authorization`` (the ``nats-auth.conf`` of ``hub broker-config
--nats``, ``hub.cluster.auth``), every node includes it: clients log in as the
registry's identities, each confined to its subjects. Without it the cluster is
anonymous. The readiness probe's anonymous CONNECT is answered "not authorized",
which still proves the listener answers.

Started with ``tls`` (``ServerTls``), every node's client and MQTT listeners and its
routes speak only TLS and require a client certificate of the CA; the readiness
probe shows the node's own certificate. Independent of ``authorization``: with both,
a client needs a certificate and a password.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from hub.broker.launcher import answers_mqtt, find_server, free_port
from hub.children import end_child, exit_with_parent
from hub.errors import BrokerUnavailable

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
PORT_ATTEMPTS = 3
POLL_S = 0.05
# The first MQTT session on a node creates replicated streams: its CONNACK takes longer.
MQTT_PROBE_TIMEOUT_S = 3.0
CLUSTER_NAME = "hub"
LOG = "nats.log"
# JetStream's defaults claim 75 % of RAM and most of the disk per node; a test cluster
# of three on a shared machine asks for far less.
MAX_MEMORY_STORE = "256MB"
MAX_FILE_STORE = "2GB"
# JetStream replicates a stream to at most five nodes; three ride out one node's death.
MAX_REPLICAS = 3
_LIVE: weakref.WeakSet[NatsCluster] = weakref.WeakSet()


def find_nats_server() -> str | None:
    """Return the path of the ``nats-server`` binary, or None."""
    return find_server("nats-server")


@dataclass(frozen=True, slots=True)
class NodePorts:
    """The four loopback ports of one node."""

    client: int
    cluster: int
    http: int
    mqtt: int

    @classmethod
    def free(cls, host: str) -> NodePorts:
        """Ports nothing listens on right now (another process may still take one)."""
        return cls(free_port(host), free_port(host), free_port(host), free_port(host))


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The files of TLS on every node; clients must show a certificate ``cafile`` signed.

    ``certfile`` is for the nodes' host, and is shown as a client certificate too (to
    the other nodes' routes, by the readiness probe): it must allow both uses.
    """

    certfile: Path
    keyfile: Path
    cafile: Path

    def block(self, indent: str) -> list[str]:
        """The ``tls { }`` block of a listener, indented by ``indent``."""
        return [f"{indent}tls {{",
                f'{indent}  cert_file: "{self.certfile.resolve()}"',
                f'{indent}  key_file: "{self.keyfile.resolve()}"',
                f'{indent}  ca_file: "{self.cafile.resolve()}"',
                f"{indent}  verify: true",
                f"{indent}}}"]

    def client_context(self) -> ssl.SSLContext:
        """A context that checks a node against ``cafile`` and shows the node's certificate."""
        context = ssl.create_default_context(cafile=str(self.cafile))
        context.load_cert_chain(str(self.certfile), str(self.keyfile))
        return context


def node_config(name: str, host: str, ports: NodePorts, routes: list[int], directory: Path,
                authorization: Path | None = None, tls: ServerTls | None = None) -> str:
    """Return one node's nats-server config: routed to ``routes``, JetStream, MQTT.

    With ``authorization``, the node includes that file (users and permissions); the
    config itself holds no secret. nats-server 2.9 resolves an include against the
    including file's directory, even an absolute path: it is written relative. With
    ``tls``, the client and MQTT listeners and the routes require it.

    NATS keeps MQTT sessions and QoS 1 messages in JetStream streams. Left to itself it
    sizes them by the routes it has when the first MQTT client connects (2 of 3 nodes
    here): two replicas lose their quorum when either node dies. Every node up to three
    holds one.
    """
    route_urls = ", ".join(f'"nats-route://{host}:{port}"' for port in routes)
    return "\n".join([
        f'server_name: "{name}"',
        f'listen: "{host}:{ports.client}"',
        f'http: "{host}:{ports.http}"',
        f'log_file: "{directory / LOG}"',
        *_tls_lines(tls, ""),
        "jetstream {",
        f'  store_dir: "{directory / "jetstream"}"',
        f"  max_memory_store: {MAX_MEMORY_STORE}",
        f"  max_file_store: {MAX_FILE_STORE}",
        "}",
        "cluster {",
        f'  name: "{CLUSTER_NAME}"',
        f'  listen: "{host}:{ports.cluster}"',
        f"  routes: [{route_urls}]",
        *_tls_lines(tls, "  "),
        "}",
        "mqtt {",
        f'  listen: "{host}:{ports.mqtt}"',
        f"  stream_replicas: {min(len(routes) + 1, MAX_REPLICAS)}",
        *_tls_lines(tls, "  "),
        "}",
        *([] if authorization is None else [f'include "{_relative(authorization, directory)}"']),
    ]) + "\n"


class NatsNode:
    """One nats-server child process of a cluster; the cluster starts and ends it."""

    def __init__(self, binary: str, name: str, host: str, ports: NodePorts, directory: Path,
                 dies_with_parent: bool, authorization: Path | None = None,
                 tls: ServerTls | None = None) -> None:
        self.name = name
        self.authorization = authorization
        self.tls = tls
        self._probe_tls = None if tls is None else tls.client_context()
        self.host = host
        self.ports = ports
        self.directory = directory
        self.dies_with_parent = dies_with_parent
        self._argv = [binary, "-c", str(directory / "nats.conf")]
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The node's client address as a ``nats://`` URL (``tls://`` with TLS)."""
        return f"{'nats' if self.tls is None else 'tls'}://{self.host}:{self.ports.client}"

    @property
    def mqtt_port(self) -> int:
        """The port of the node's MQTT 3.1.1 listener."""
        return self.ports.mqtt

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self.running and self._process else None

    def write_config(self, routes: list[int]) -> None:
        """Write ``nats.conf`` into the node's directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        text = node_config(self.name, self.host, self.ports, routes, self.directory,
                           self.authorization, self.tls)
        (self.directory / "nats.conf").write_text(text)

    def spawn(self) -> None:
        """Start the child without waiting for it (the cluster waits for all at once)."""
        if self.running:
            return
        self._output = open(self.directory / "nats.out", "ab")  # noqa: SIM115 (kept open)
        self._process = subprocess.Popen(
            self._argv, stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=exit_with_parent() if self.dies_with_parent else None)

    def end(self, signum: signal.Signals) -> None:
        """Send ``signum`` and reap the child (SIGKILL after ``STOP_TIMEOUT_S``)."""
        process, self._process = self._process, None
        end_child(process, signum, STOP_TIMEOUT_S)
        if self._output is not None:
            self._output.close()
            self._output = None

    def monitor(self, path: str) -> dict[str, Any] | None:
        """GET ``path`` from the HTTP monitor; None when the node does not answer JSON."""
        url = f"http://{self.host}:{self.ports.http}{path}"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:  # /healthz says why with a 503
            body = exc.read()
        except OSError:
            return None
        try:
            answer = json.loads(body)
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def meta_leader(self) -> str | None:
        """The JetStream meta leader this node knows of, or None."""
        jsz = self.monitor("/jsz") or {}
        leader = (jsz.get("meta_cluster") or {}).get("leader")
        return leader if isinstance(leader, str) and leader else None

    def ready(self) -> bool:
        """Whether the node is healthy, knows a meta leader and answers MQTT."""
        # Not the full /healthz: nats-server 2.9 reports the MQTT streams and consumers of a
        # restarted node "not current" for long after it serves again.
        health = self.monitor("/healthz?js-enabled-only=true")
        if health is None or health.get("status") != "ok" or self.meta_leader() is None:
            return False
        return answers_mqtt(self.host, self.ports.mqtt, MQTT_PROBE_TIMEOUT_S, self._probe_tls)

    def exited(self) -> int | None:
        """The exit code when the child has exited on its own, else None."""
        return None if self._process is None else self._process.poll()

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the node's log and output."""
        text = []
        for name in (LOG, "nats.out"):
            path = self.directory / name
            if path.exists():
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def describe(self) -> str:
        """Name the node, its binary, its ports and its log, for errors."""
        p = self.ports
        return (f"{self._argv[0]} node {self.name} (client {p.client}, route {p.cluster}, "
                f"http {p.http}, mqtt {p.mqtt}; log {self.directory / LOG})")

    def __repr__(self) -> str:
        return f"<NatsNode {self.name} {self.url} mqtt {self.mqtt_port} pid={self.pid}>"


class NatsCluster:
    """Running nats-server nodes routed to each other; ``stop()`` or leaving ``with`` ends them."""

    def __init__(self, nodes: list[NatsNode], workdir: Path, owns_workdir: bool) -> None:
        self.nodes = nodes
        self.workdir = workdir
        self._owns_workdir = owns_workdir

    @property
    def urls(self) -> list[str]:
        """Every node's ``nats://`` client URL, in node order."""
        return [node.url for node in self.nodes]

    @property
    def mqtt_ports(self) -> list[int]:
        """Every node's MQTT port, in node order."""
        return [node.mqtt_port for node in self.nodes]

    def node(self, index: int) -> NatsNode:
        """The node at ``index``."""
        return self.nodes[index]

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start every node that is not running and wait until the cluster is ready."""
        _LIVE.add(self)
        for node in self.nodes:
            node.spawn()
        self.wait_ready(timeout)

    def kill(self, index: int) -> None:
        """Kill one node at once (SIGKILL), as a crash would; ``restart()`` brings it back."""
        self.nodes[index].end(signal.SIGKILL)

    def restart(self, index: int, timeout: float = START_TIMEOUT_S) -> None:
        """Start one node again on its ports and store; wait until it has rejoined."""
        node = self.nodes[index]
        node.end(signal.SIGTERM)
        node.spawn()
        self.wait_ready(timeout, [node])

    def wait_ready(self, timeout: float, nodes: list[NatsNode] | None = None) -> None:
        """Wait until ``nodes`` (default all running ones) are ready, or raise BrokerUnavailable.

        A node that exits or stays unready is named with its ports and its log's tail.
        """
        waiting = list(nodes if nodes is not None else [n for n in self.nodes if n.running])
        deadline = time.monotonic() + timeout
        while waiting:
            for node in list(waiting):
                code = node.exited()
                if code is not None:
                    self._fail(node, f"exited with code {code} on start")
                if node.ready():
                    waiting.remove(node)
            if waiting and time.monotonic() > deadline:
                self._fail(waiting[0], f"not ready (JetStream, MQTT) after {timeout:g} s")
            if waiting:
                time.sleep(POLL_S)

    def meta_leader(self) -> str | None:
        """The JetStream meta leader as the first answering node knows it."""
        for node in self.nodes:
            if node.running:
                leader = node.meta_leader()
                if leader is not None:
                    return leader
        return None

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL) and remove a private workdir."""
        for node in self.nodes:
            node.end(signal.SIGTERM)
        _LIVE.discard(self)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _fail(self, node: NatsNode, reason: str) -> None:
        raise BrokerUnavailable(f"{node.describe()} {reason}\n{node.log_tail()}")

    def __enter__(self) -> NatsCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<NatsCluster {' '.join(self.urls)}>"


def start_nats_cluster(nodes: int = 3, *, host: str = "127.0.0.1", workdir: Path | None = None,
                       timeout: float = START_TIMEOUT_S, dies_with_parent: bool = False,
                       authorization: Path | None = None,
                       tls: ServerTls | None = None) -> NatsCluster:
    """Start a private NATS cluster and return it once every node is ready.

    Args:
        nodes: how many nodes, at least 2 (nats-server 2.9 refuses a JetStream cluster
            without routes).
        host: loopback address every port listens on.
        workdir: where each node's config, log and store go (``workdir/n0`` ...); None for
            a private temp dir that ``stop()`` removes (a given directory is kept).
        timeout: seconds to wait for the cluster to be ready.
        dies_with_parent: every node gets SIGKILL when the thread that started it ends
            (hub.children.exit_with_parent), however: call from the main thread.
        authorization: an ``authorization`` file every node includes (``hub broker-config
            --nats`` writes one); None: anonymous.
        tls: TLS, with client certificates required, on every node's client and MQTT
            listeners and routes; None: plain TCP.
    """
    binary = find_nats_server()
    if binary is None:
        raise BrokerUnavailable("nats-server is not installed (apt-get install nats-server)")
    if nodes < 2:
        raise ValueError(f"a NATS cluster needs at least two nodes, not {nodes}")
    owns = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="hub-nats-")) if workdir is None else workdir
    for attempt in range(PORT_ATTEMPTS):
        cluster = _make_cluster(binary, nodes, host, directory, owns, dies_with_parent,
                                authorization, tls)
        try:
            cluster.start(timeout)
            return cluster
        except BrokerUnavailable:
            # Another process may have taken a port between free_port and the bind.
            cluster._owns_workdir = owns and attempt == PORT_ATTEMPTS - 1
            cluster.stop()
            if attempt == PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _make_cluster(binary: str, count: int, host: str, directory: Path, owns: bool,
                  dies_with_parent: bool, authorization: Path | None,
                  tls: ServerTls | None) -> NatsCluster:
    ports = [NodePorts.free(host) for _ in range(count)]
    nodes = [NatsNode(binary, f"n{i}", host, ports[i], directory / f"n{i}", dies_with_parent,
                      authorization, tls)
             for i in range(count)]
    for i, node in enumerate(nodes):
        node.write_config([p.cluster for j, p in enumerate(ports) if j != i])
    return NatsCluster(nodes, directory, owns)


def _tls_lines(tls: ServerTls | None, indent: str) -> list[str]:
    return [] if tls is None else tls.block(indent)


def _relative(path: Path, directory: Path) -> str:
    return os.path.relpath(path.resolve(), directory.resolve())


@atexit.register
def _stop_all() -> None:
    for cluster in list(_LIVE):
        cluster.stop()
