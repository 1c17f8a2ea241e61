"""Who is asking: the broker's credentials, signed session cookies, and a login rate limit.

One credential per identity, the broker's own: a login is checked against the
``passwd`` file ``hub broker-config`` wrote (``$7$`` PBKDF2 hashes). A partner
sees its own picture, the operator the mission's; no other identity may log
in, and the audience comes from the credential, never from the request.

Sessions are stateless: the cookie holds the identity and expiry, signed with
HMAC-SHA256 under a key kept in ``web.session_secret_file``, so a restarted hub
still honours them. Logging out revokes the token until it would have expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from hub.broker.passwords import hash_password, parse_password_file, verify_password
from hub.config import KEY_BYTES, HubConfig, key_file
from hub.errors import ConfigError
from hub.release.policy import MISSION

WINDOW_S = 60.0
# A hash to check unknown identities against, so a miss costs what a hit costs.
_DECOY = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated identity and the picture it sees."""

    identity: str
    audience: str
    expires: float


class Credentials:
    """The identities that may use the console, checked against the broker's password file."""

    def __init__(self, config: HubConfig, passwd_file: Path) -> None:
        self.path = passwd_file
        self.audiences = {p.id: p.id for p in config.partners}
        self.audiences[config.broker_server.operator_identity] = MISSION
        self._hashes: dict[str, str] = {}
        self._mtime = -1.0
        self._load()

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self._hashes = parse_password_file(self.path.read_text())
                self._mtime = mtime
        except OSError as exc:
            raise ConfigError(f"$.web.passwd_file: cannot read {self.path}: "
                              f"{exc.strerror}") from exc

    def check(self, identity: str, password: str) -> str | None:
        """The audience of ``identity`` if ``password`` is its own, else None."""
        self._load()  # `hub broker-config` may have rotated passwords
        audience = self.audiences.get(identity)
        encoded = self._hashes.get(identity) if audience is not None else None
        ok = verify_password(password, encoded or _DECOY)
        return audience if ok and encoded is not None else None


class Sessions:
    """Signed, expiring session tokens: ``identity.expiry.nonce.signature``."""

    def __init__(self, key: bytes, ttl_s: float, credentials: Credentials) -> None:
        self.key = key
        self.ttl_s = ttl_s
        self.credentials = credentials
        self._revoked: dict[str, float] = {}

    def issue(self, identity: str, now: float | None = None) -> tuple[str, float]:
        """A token for ``identity`` and when it expires."""
        expires = (time.time() if now is None else now) + self.ttl_s
        body = f"{identity}.{int(expires)}.{secrets.token_urlsafe(9)}"
        return f"{body}.{self._sign(body)}", float(int(expires))

    def principal(self, token: str, now: float | None = None) -> Principal | None:
        """Who holds ``token``, if it is ours, unexpired, not revoked, and still a console user."""
        now = time.time() if now is None else now
        body, _, signature = token.rpartition(".")
        parts = body.split(".")
        if len(parts) != 3 or not hmac.compare_digest(signature, self._sign(body)):
            return None
        identity, expiry, _ = parts
        if not expiry.isdigit() or int(expiry) <= now or token in self._revoked:
            return None
        audience = self.credentials.audiences.get(identity)
        return None if audience is None else Principal(identity, audience, float(expiry))

    def revoke(self, token: str, now: float | None = None) -> None:
        """End ``token`` before its expiry; revocations are forgotten once it would expire."""
        now = time.time() if now is None else now
        self._revoked = {t: e for t, e in self._revoked.items() if e > now}
        parts = token.rpartition(".")[0].split(".")
        if len(parts) == 3 and parts[1].isdigit():
            self._revoked[token] = float(parts[1])

    def _sign(self, body: str) -> str:
        digest = hmac.new(self.key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def session_key(path: str | None) -> bytes:
    """The session signing key: read from ``path`` (created 0600 if missing), else a new one."""
    if path is None:
        return secrets.token_bytes(KEY_BYTES)
    return key_file(path, "$.web.session_secret_file")


class LoginLimiter:
    """At most ``attempts`` failed logins a minute per key (an address, an identity)."""

    MAX_KEYS = 10_000
    """Beyond this many keys, those with no recent failure are swept (a spray stays bounded)."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, keys: tuple[str, ...], now: float | None = None) -> float:
        """Seconds to wait before another attempt under any of ``keys`` (0: go ahead)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            failures = self._failures.get(key)
            if failures is None:
                continue
            _expire(failures, now)
            if len(failures) >= self.attempts:
                wait = max(wait, failures[0] + WINDOW_S - now)
        return wait

    def failed(self, keys: tuple[str, ...], now: float | None = None) -> None:
        """Count a failed attempt under each of ``keys``."""
        now = time.monotonic() if now is None else now
        if len(self._failures) > self.MAX_KEYS:
            for key, failures in list(self._failures.items()):
                _expire(failures, now)
                if not failures:
                    del self._failures[key]
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)


def _expire(failures: deque[float], now: float) -> None:
    while failures and failures[0] <= now - WINDOW_S:
        failures.popleft()


def basic_credentials(header: str) -> tuple[str, str] | None:
    """``(identity, password)`` of an ``Authorization: Basic`` header, if well formed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        identity, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (identity, password) if sep else None
