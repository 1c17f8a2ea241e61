"""The console in a real browser: Debian's Chromium, driven by Playwright, against ``hub run``.

One partner logs in through the page. Its map shows exactly its picture (ids
and count, checked against the API at the same ``seq``); a selected track's
details show its label; filters survive a reload; tracks the sensors stopped
reporting grey out; when the hub dies the page says so and resynchronises by
itself when it is back. No request may leave the hub: every request is routed
through a guard that fails on any other host.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import sync_playwright
from web_hub import WebHub, web_hub

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PARTNER = "gha"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebHub]:
    with web_hub(tmp_path_factory.mktemp("console"), stale_after_s=2.0) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install --no-install-recommends chromium",
                    pytrace=False)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, hub: WebHub) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A fresh page that may reach the hub and nothing else; (page, foreign, errors)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    foreign: list[str] = []
    errors: list[str] = []

    def guard(route: Any) -> None:
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page, foreign, errors
    finally:
        context.close()


def api(hub: WebHub, path: str, identity: str = PARTNER) -> Any:
    """The API as a tool sees it (HTTP Basic, the same credential)."""
    request = urllib.request.Request(hub.url + path)
    token = base64.b64encode(f"{identity}:{hub.password(identity)}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def log_in(page: Any, hub: WebHub) -> None:
    page.goto(f"{hub.url}/?test=1")
    page.fill("#login-identity", PARTNER)
    page.fill("#login-password", hub.password(PARTNER))
    page.click("#login-submit")
    wait_ready(page)


def wait_ready(page: Any) -> None:
    # Polled with evaluate: Playwright's wait_for_function evaluates strings in the page,
    # which the console's Content-Security-Policy (no 'unsafe-eval') rightly refuses.
    eventually(lambda: page.evaluate("Boolean(window.hubConsole && window.hubConsole.ready)"),
               "the console's first snapshot")


def eventually(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def map_matches_the_picture(page: Any, hub: WebHub) -> bool:
    """Whether the page holds exactly the API's picture, compared at the same seq."""
    picture = api(hub, "/api/v1/picture.geojson")
    seq = page.evaluate("window.hubConsole.lastSeq")
    if seq != picture["seq"]:
        return False
    held = set(page.evaluate("window.hubConsole.allTrackIds()"))
    return bool(held) and held == {f["id"] for f in picture["features"]}


def every_track_drawn(tab: Any) -> bool:
    """Whether the map's markers are exactly the console's tracks (at least 10)."""
    shown, markers = tab.evaluate("""() => [window.hubConsole.trackIds(),
        Array.from(document.querySelectorAll('.track-marker'), e => e.dataset.trackId)]""")
    return bool(sorted(markers) == sorted(shown) and len(shown) >= 10)


def test_the_map_shows_the_partners_picture_and_only_it(
        page: tuple[Any, list[str], list[str]], hub: WebHub, tmp_path: Path) -> None:
    tab, foreign, errors = page
    eventually(lambda: len(api(hub, "/api/v1/picture.geojson")["features"]) >= 10,
               "the picture to fill")
    log_in(tab, hub)
    eventually(lambda: map_matches_the_picture(tab, hub), "the map to equal the picture")
    # Both in one evaluation, and until they agree: a delta that comes between two reads
    # (or before the next frame draws it) is no error.
    eventually(lambda: every_track_drawn(tab), "a marker for every track and no other")
    assert tab.evaluate("window.hubConsole.audience") == PARTNER
    picture = api(hub, "/api/v1/picture.geojson")
    track = next(f for f in picture["features"] if f["properties"]["label"])
    tab.evaluate(f"window.hubConsole.select({json.dumps(track['id'])})")
    details = tab.inner_text("#track-details")
    label = track["properties"]["label"]
    assert label["classification"] in details
    assert all(partner.upper() in details.upper() for partner in label["releasable_to"])
    banner = tab.inner_text("#classification-banner")
    assert "REL TO" in banner.upper()
    # CONSOLE_SCREENSHOT=docs/console.png makes this the README's picture.
    tab.screenshot(path=os.environ.get("CONSOLE_SCREENSHOT", str(tmp_path / "console.png")))
    assert foreign == [], f"requests left the hub: {foreign}"
    assert errors == [], errors


def test_filters_survive_a_reload(page: tuple[Any, list[str], list[str]], hub: WebHub) -> None:
    tab, foreign, _ = page
    log_in(tab, hub)
    tab.select_option("#filter-affiliation", "friend")
    eventually(lambda: set(tab.evaluate("window.hubConsole.trackIds()")) == {
        f["id"] for f in api(hub, "/api/v1/picture.geojson")["features"]
        if f["properties"]["affiliation"] == "friend"}, "only friends shown", 10.0)
    tab.reload()
    wait_ready(tab)
    assert tab.input_value("#filter-affiliation") == "friend"
    shown = tab.evaluate("window.hubConsole.trackIds()")
    held = tab.evaluate("window.hubConsole.allTrackIds()")
    assert shown and len(shown) < len(held)
    tab.select_option("#filter-affiliation", "")
    assert foreign == []


def test_tracks_grey_out_when_their_sensors_stop_and_the_page_resyncs_after_a_hub_restart(
        page: tuple[Any, list[str], list[str]], hub: WebHub) -> None:
    tab, foreign, _ = page
    log_in(tab, hub)
    assert tab.evaluate("window.hubConsole.link") == "up"
    assert not tab.is_visible("#link-banner")
    hub.stop_sims()
    try:
        # Not updated for stale_after_s (2 s): grey, before the tracker drops them (8 s).
        eventually(lambda: tab.eval_on_selector_all(
            ".track-marker", "els => els.length > 0 && els.every(e => e.classList.contains("
            "'stale'))"), "every track to grey out", 15.0)
    finally:
        hub.start_sims()
    hub.stop_hub(kill=True)
    tab.wait_for_selector("#link-banner", state="visible", timeout=WAIT_MS)
    eventually(lambda: "link lost" in tab.inner_text("#link-banner"), "the banner's text")
    assert tab.evaluate("window.hubConsole.link") != "up"
    hub.start_hub()
    tab.wait_for_selector("#link-banner", state="hidden", timeout=WAIT_MS)
    assert tab.evaluate("window.hubConsole.link") == "up"
    eventually(lambda: map_matches_the_picture(tab, hub), "the map to resynchronise", 45.0)
    assert foreign == []
