"""Mosquitto 2.0 password hashes, written and checked without the ``mosquitto_passwd`` binary.

The format is what ``mosquitto_passwd`` writes: ``user:$7$ITER$SALT$HASH`` where
``$7$`` is PBKDF2-HMAC-SHA512 over the UTF-8 password, SALT 12 random bytes and
HASH the 64-byte derived key, both in standard base64. Mosquitto 2.0 uses 101
iterations; its verifier reads the count from the line, so more would work too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping

ITERATIONS = 101
SALT_BYTES = 12
KEY_BYTES = 64
SECRET_BYTES = 24


def hash_password(password: str, salt: bytes | None = None,
                  iterations: int = ITERATIONS) -> str:
    """Return ``$7$ITER$SALT$HASH`` for ``password``, as ``mosquitto_passwd`` writes it."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, KEY_BYTES)
    return f"$7${iterations}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (from us or from ``mosquitto_passwd``)."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        return False
    salt, key = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    derived = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(key))
    return hmac.compare_digest(derived, key)


def new_secret() -> str:
    """Return a fresh random password (URL-safe characters, 192 bits)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def password_file(passwords: Mapping[str, str]) -> str:
    """Return a Mosquitto password file: one ``user:hash`` line per identity, sorted."""
    for user in passwords:
        if not user or ":" in user or "\n" in user:
            raise ValueError(f"invalid broker user name {user[:80]!r}")
    return "".join(f"{user}:{hash_password(passwords[user])}\n" for user in sorted(passwords))


def parse_password_file(text: str) -> dict[str, str]:
    """Map each user of a Mosquitto password file to its hash."""
    entries = (line.split(":", 1) for line in text.splitlines() if line and line[0] != "#")
    return {user: encoded for user, encoded in entries}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
