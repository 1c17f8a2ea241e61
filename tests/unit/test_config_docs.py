"""The config explains itself: every field described, and docs/CONFIG.md is `hub config docs`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec.inspect as mi
import pytest

from hub.cli.config_docs import reference, undocumented
from hub.cli.main import main
from hub.config import Base, doc

CONFIG_MD = Path(__file__).resolve().parents[2] / "docs" / "CONFIG.md"


def test_every_field_of_the_schema_has_a_description() -> None:
    assert undocumented() == []


class Inner(Base, frozen=True, kw_only=True):
    told: Annotated[int, doc("Told.")] = 1
    untold: int = 2


class Outer(Base, frozen=True, kw_only=True):
    inner: Annotated[Inner, doc("A table.")] = Inner()
    bare: str = ""


def test_a_field_without_a_description_is_found() -> None:
    info = mi.type_info(Outer)
    assert isinstance(info, mi.StructType)
    assert undocumented(info, "$") == ["$.inner.untold", "$.bare"]


def test_docs_config_md_is_the_commands_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "docs"]) == 0
    printed = capsys.readouterr().out
    assert printed == reference()
    assert CONFIG_MD.read_text() == printed, "regenerate: hub config docs > docs/CONFIG.md"


def test_the_reference_names_key_type_default_bounds_and_description() -> None:
    text = reference()
    assert ("| `broker.port` | integer | `1883` | ≥ 1, ≤ 65535 | Broker TCP port (the TLS "
            "listener's port when `tls` is set). |") in text
    assert "| `fusion.gate_chi2` | float | `13.8` | > 0 | Mahalanobis gate" in text
    # A table below an array element, and defaults taken from the mission-wide table.
    assert "## `[sensors.camera]`" in text and "## `[[releases]]`" in text
    assert "| `imagery.pose_noise.sigma_px` | float | `1.0` | > 0 |" in text
    assert "| `sensors[].camera.sigma_px` | float | none | > 0 |" in text
