"""Dependencies agree with the code: the installed hub needs exactly its runtime dependencies."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"hub", "simulators", "tests", "bench"}


def top_level_imports(*folders: str) -> set[str]:
    found: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module.split(".")[0])
    return found


def local_modules(*folders: str) -> set[str]:
    """Helper modules the tests and benchmarks import by their bare name."""
    return {p.stem for folder in folders for p in (ROOT / folder).rglob("*.py")}


def distributions(modules: set[str]) -> set[str]:
    """The distributions providing ``modules`` (stdlib and first party left out).

    A module no installed distribution provides (``stonesoup`` before ``make bench``
    installs it) is taken to come from the distribution of its own name.
    """
    providers = packages_distributions()
    third_party = modules - set(sys.stdlib_module_names) - FIRST_PARTY
    return {normalise(providers[m][0] if m in providers else m) for m in third_party}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(*groups: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) if "runtime" in groups else []
    for group in groups:
        requirements += project["optional-dependencies"].get(group, [])
    return {normalise(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in requirements}


def test_runtime_dependencies_are_what_the_installed_hub_imports() -> None:
    assert distributions(top_level_imports("hub", "simulators")) == declared("runtime")


def test_what_tests_and_benchmarks_import_is_declared() -> None:
    needed = distributions(top_level_imports("tests", "bench") - local_modules("tests", "bench"))
    assert needed - declared("runtime", "test", "lint", "bench") == set()
