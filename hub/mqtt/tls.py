"""Client-side TLS for the broker connection: one SSL context per client certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

from hub.config import ClientTls
from hub.errors import ConfigError

WHERE = "$.broker.tls"


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSLSocket that closes itself when its handshake fails.

    paho drops the socket of a failed handshake without closing it (a ResourceWarning
    per refused attempt, and a descriptor until the collector runs).
    """

    def do_handshake(self, block: bool = False) -> None:
        """Handshake; close the socket if it fails."""
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def tls_context(tls: ClientTls, client_id: str = "", where: str = WHERE) -> ssl.SSLContext:
    """Return a context that checks the broker against ``cafile`` and shows our certificate.

    ``{id}`` in ``certfile`` / ``keyfile`` becomes ``client_id``. Errors name the key.
    """
    certfile = tls.certfile.replace("{id}", client_id)
    keyfile = tls.keyfile.replace("{id}", client_id)
    for key, path in (("cafile", tls.cafile), ("certfile", certfile), ("keyfile", keyfile)):
        _readable(f"{where}.{key}", path)
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.cafile)
    except ssl.SSLError as exc:
        raise ConfigError(f"{where}.cafile: not a CA certificate: {exc.reason}") from exc
    # create_default_context already sets CERT_REQUIRED and check_hostname; say so here.
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.sslsocket_class = _ClosingSSLSocket
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise ConfigError(f"{where}.keyfile: does not fit {where}.certfile "
                          f"({certfile}): {exc.reason}") from exc
    return context


def _readable(key: str, path: str) -> None:
    try:
        with Path(path).open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from exc
