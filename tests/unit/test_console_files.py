"""The console's files: every vendored file is the one locked, with its licence; nothing remote."""

from __future__ import annotations

import hashlib
import re

from hub.web.app import static_root

VENDOR = static_root() / "vendor"


def locked() -> dict[str, str]:
    lines = (VENDOR / "VENDOR.lock").read_text().splitlines()
    return {path: digest for digest, path in (line.split(None, 1) for line in lines if line)}


def test_every_vendored_file_matches_the_lock_and_nothing_else_is_there() -> None:
    lock = locked()
    present = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*") if p.is_file()
               and p.name not in ("VENDOR.lock", "THIRD_PARTY_LICENSES.md")}
    assert present == set(lock)
    for path, digest in lock.items():
        assert hashlib.sha256((VENDOR / path).read_bytes()).hexdigest() == digest, path


def test_each_vendored_package_carries_its_licence_and_is_listed() -> None:
    listed = (VENDOR / "THIRD_PARTY_LICENSES.md").read_text()
    for package in (p for p in VENDOR.iterdir() if p.is_dir()):
        assert any(f.name.lower().startswith("license") for f in package.iterdir()), package
        name = package.name.rsplit("-", 1)[0]
        assert name in listed, package.name


def test_the_page_loads_nothing_from_another_host() -> None:
    root = static_root()
    for path in [root / "index.html", root / "app.css", *sorted((root / "js").glob("*.js"))]:
        text = path.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), path
        assert not re.search(r"url\(\s*[\"']?(https?:)?//", text), path
        assert "fetch(\"http" not in text and "fetch('http" not in text, path
