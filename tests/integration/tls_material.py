"""Certificates for the TLS tests (made by ``trustme``), and logins that probe a listener.

One CA signs the server's certificate (for 127.0.0.1) and one client certificate
per identity, CN = the identity; another CA signs a certificate for ``hub`` that
must not get in. The probes log in by hand, on MQTT or on NATS, through TLS or
not, and say what the server answered: a refusal is a result, not an error.
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import trustme
from mqtt_peer import WAIT_S
from secured import client_tls

from hub.cluster.nats_server import ServerTls
from hub.config import Broker

HOST = "127.0.0.1"
PROBE_WAIT_S = 5.0
MQTT_ACCEPTED = b"\x20\x02\x00\x00"
"""The CONNACK of an accepted MQTT 3.1.1 login."""


def issue(ca: trustme.CA, directory: Path, *names: str) -> None:
    """Write ``NAME.pem`` and ``NAME.key`` for each client identity, signed by ``ca``."""
    for name in names:
        cert = ca.issue_cert(name, common_name=name)
        cert.cert_chain_pems[0].write_to_path(str(directory / f"{name}.pem"))
        cert.private_key_pem.write_to_path(str(directory / f"{name}.key"))


def write_certificates(directory: Path, *identities: str) -> ServerTls:
    """``ca.pem``, ``server.pem``/``.key`` for HOST, a certificate per identity, and
    ``other/hub.pem``/``.key`` signed by another CA; return the server's files."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server = ca.issue_cert(HOST)
    server.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    issue(ca, directory, *identities)
    (directory / "other").mkdir()
    issue(trustme.CA(), directory / "other", "hub")
    return ServerTls(certfile=directory / "server.pem", keyfile=directory / "server.key",
                     cafile=directory / "ca.pem")


def tls_settings(tls_port: int, certs: Path, protocol: str, identity: str) -> Broker:
    """Bus settings for ``identity`` on ``tls_port``; no password: the certificate is the
    identity."""
    return Broker(host=HOST, port=tls_port, protocol=protocol,  # type: ignore[arg-type]
                  client_id=identity, keepalive=10, tls=client_tls(certs))


def client_context(certs: Path, cert: Path | None) -> ssl.SSLContext:
    """Trust ``certs``' CA; show ``cert`` (its key beside it) when given."""
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if cert is not None:
        context.load_cert_chain(str(cert), str(cert.with_suffix(".key")))
    return context


def connack(sock: socket.socket) -> bytes:
    """Send an MQTT 3.1.1 CONNECT without credentials; return what came back (b'' if closed)."""
    client_id = b"tls-probe"
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(client_id).to_bytes(2, "big") + client_id
    try:
        sock.sendall(bytes([0x10, len(body)]) + body)
        return sock.recv(4)
    except (ssl.SSLError, ConnectionError):
        return b""


def probe(port: int, context: ssl.SSLContext | None) -> bytes:
    """Connect to ``port`` (through TLS with ``context`` when given) and try an MQTT CONNECT."""
    with socket.create_connection((HOST, port), timeout=PROBE_WAIT_S) as raw:
        if context is None:
            return connack(raw)
        try:
            with context.wrap_socket(raw, server_hostname=HOST) as sock:
                return connack(sock)
        except (ssl.SSLError, ConnectionError):
            return b""


def nats_login(host: str, port: int, user: str | None = None, password: str | None = None,
               tls: ssl.SSLContext | None = None) -> str:
    """CONNECT and PING on the NATS protocol; the server's answer line (PONG: let in).

    With ``tls`` the connection turns to TLS after the server's INFO, as NATS clients
    do; '' when the server ends it there (it refused the certificate).
    """
    login = {"verbose": False, "pedantic": False, "protocol": 1}
    if user is not None:
        login |= {"user": user, "pass": password}
    request = f"CONNECT {json.dumps(login)}\r\nPING\r\n".encode()
    with socket.create_connection((host, port), timeout=WAIT_S) as raw:
        assert _line(raw).startswith(b"INFO ")
        if tls is None:
            return _ask(raw, request)
        try:
            with tls.wrap_socket(raw, server_hostname=host) as sock:
                return _ask(sock, request)
        except (ssl.SSLError, ConnectionError):
            return ""


def _ask(sock: socket.socket, request: bytes) -> str:
    sock.sendall(request)
    return _line(sock).decode().strip()


def _line(sock: socket.socket) -> bytes:
    """Bytes up to a CRLF (the server sends nothing more before we answer), or to the end."""
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data
