"""The shape of the code, checked: what may import what, and every module named in the docs.

Each rule below is one arrow of docs/ARCHITECTURE.md that must never run back
up. The imports are read with ``ast`` (lazy imports inside functions count), so
nothing is imported to check them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("hub", "simulators")

BASE = ("hub.messages", "hub.topics", "hub.errors", "hub.geo")
"""The wire contracts and their helpers: they import nothing of the hub but each other."""

OUTPUTS = ("hub.publish", "hub.mqtt", "hub.service", "hub.cli", "hub.broker")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # A tracker knows nothing of who sees it, how it is sent, or where data came from.
    "hub.fusion": ("hub.release", "hub.ingest", "hub.pipeline", *OUTPUTS),
    # The release decision hands released tables to outputs; it never reaches into one.
    "hub.release": ("hub.ingest", "hub.pipeline", *OUTPUTS),
    # Outputs turn released pictures into messages; the transport is handed to them.
    "hub.publish": ("hub.mqtt", "hub.ingest", "hub.pipeline", "hub.service", "hub.cli",
                    "hub.broker", "hub.web", "hub.tak"),
    # The web app serves what the web sink holds; the service hands it everything else.
    "hub.web": ("hub.mqtt", "hub.ingest", "hub.pipeline", "hub.fusion", "hub.service",
                "hub.cli", "hub.tak"),
    # TAK hands inbound reports to the hub through a callback, as MQTT messages would come.
    "hub.tak": ("hub.mqtt", "hub.ingest", "hub.pipeline", "hub.fusion", "hub.service",
                "hub.cli", "hub.web"),
    "hub.ingest": ("hub.release", "hub.pipeline", *OUTPUTS),
    # The pipeline writes its journal through a protocol; it knows no file.
    "hub.pipeline": (*OUTPUTS, "hub.recovery"),
    # Recovery saves and replays the pipeline; the service drives it, never the reverse.
    "hub.recovery": ("hub.mqtt", "hub.service", "hub.cli", "hub.broker", "hub.web", "hub.tak"),
    "hub.config": ("hub.fusion", "hub.ingest", "hub.release", "hub.pipeline", *OUTPUTS),
}
NEVER = ("simulators", "bench", "tests")
"""No product module imports these (the simulators are a field unit's code, not the hub's)."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PRODUCT
            for p in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(modules: dict[str, Path]) -> list[str]:
    """``importer -> imported`` for every import a rule forbids."""
    found = []
    for name, path in modules.items():
        for imported in sorted(imports_of(path)):
            if any(within(imported, never) for never in NEVER) and name.startswith("hub"):
                found.append(f"{name} -> {imported}")
            if name in BASE and within(imported, "hub") and imported != "hub" and not any(
                    within(imported, base) for base in BASE):
                found.append(f"{name} -> {imported}")
            for package, banned in FORBIDDEN.items():
                if within(name, package) and any(within(imported, b) for b in banned):
                    found.append(f"{name} -> {imported}")
            if within(imported, "hub.cli") and not within(name, "hub.cli"):
                found.append(f"{name} -> {imported}")
    return sorted(set(found))


def test_no_import_runs_against_the_layers() -> None:
    modules = product_modules()
    assert len(modules) > 50
    assert violations(modules) == []


@pytest.mark.parametrize(("module", "bad_import"), [
    ("hub.fusion.tracker", "from hub.release.policy import ReleasePolicy"),
    ("hub.fusion.tracker", "from hub.ingest.router import Router"),
    ("hub.release.view", "from hub.publish.mqtt import MqttPictureSink"),
    ("hub.publish.mqtt", "from hub.mqtt.bus import Bus"),
    ("hub.messages", "from hub.config import HubConfig"),
    ("hub.pipeline", "import simulators.engine"),
    ("hub.service", "from hub.cli.console import LiveTable"),
    ("hub.web.app", "from hub.pipeline import Pipeline"),
    ("hub.publish.web", "from hub.web.app import build_app"),
    ("hub.tak.server", "from hub.pipeline import Pipeline"),
    ("hub.pipeline", "from hub.recovery.store import RecoveryStore"),
    ("hub.recovery.store", "from hub.service import HubService"),
])
def test_each_rule_catches_a_forbidden_import(tmp_path: Path, module: str,
                                              bad_import: str) -> None:
    modules = product_modules()
    planted = tmp_path / "planted.py"
    planted.write_text(modules[module].read_text()
                       + f"\n\ndef _planted() -> None:\n    {bad_import}\n")
    modules[module] = planted
    assert [v for v in violations(modules) if v.startswith(module + " ->")]


def documented_modules() -> set[str]:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    table = text.split("## Modules, by role", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(hub/[\w/]+\.py)`", table))


def test_architecture_names_every_module_of_the_hub_and_no_other() -> None:
    files = {str(p.relative_to(ROOT)) for p in (ROOT / "hub").rglob("*.py")
             if p.name not in ("__init__.py", "__main__.py")}
    documented = documented_modules()
    assert sorted(files - documented) == [], "modules missing from docs/ARCHITECTURE.md"
    assert sorted(documented - files) == [], "docs/ARCHITECTURE.md names modules that are gone"
