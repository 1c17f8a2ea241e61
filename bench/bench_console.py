"""The console in Chromium with 1,000 live tracks: time to apply a delta and redraw, and whether
the page stays interactive.

    python bench/bench_console.py [--tracks 1000] [--seconds 60]

The hub's own web server and web sink serve a synthetic audience: N tracks
moving in a 10 km square around the demo origin, a delta every second that
moves 90 % of them (and a full picture every 10 s), as a busy picture would.
Debian's Chromium (Playwright, headless) logs in and shows it. The page
records, for each delta, the milliseconds from the message's arrival to the
end of the next frame (``window.hubConsole.applyTimes``); interactivity is
the time from a click on a track's row to its details being drawn, and the
round trip of a trivial script while deltas flow. Written to
bench/results/console.json.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine_info, write_results

from hub.broker.files import write_auth_files
from hub.broker.launcher import free_port
from hub.config import DEFAULT_CONFIG, Web, load_config
from hub.messages import HubStatus, Label, Picture, Track
from hub.publish.pictures import sidc
from hub.publish.web import WebSink
from hub.release.policy import MISSION
from hub.web.metrics import HubMetrics
from hub.web.server import WebServer, web_context

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
LABEL = Label(policy="UN-SECTOR-EAST", classification="RESTRICTED",
              releasable_to=["gha", "ken"], caveats=["UN MISSION"])
CLASSES = ("person", "vehicle", "uav", "unknown")


class Scene:
    """N synthetic tracks, moving on straight legs in a square around the origin."""

    def __init__(self, count: int, lat0: float, lon0: float, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.lat0, self.lon0 = lat0, lon0
        self.state: list[list[Any]] = [[rng.uniform(-5000, 5000), rng.uniform(-5000, 5000),
                       rng.uniform(-15, 15), rng.uniform(-15, 15), rng.choice(CLASSES)]
                      for _ in range(count)]
        self.rng = rng
        self.updates = [0] * count

    def tracks(self, t: float, moved: float) -> list[Track]:
        out = []
        for i, s in enumerate(self.state):
            if i and self.rng.random() > moved:
                continue
            s[0] = max(-5000.0, min(5000.0, s[0] + s[2]))
            s[1] = max(-5000.0, min(5000.0, s[1] + s[3]))
            self.updates[i] += 1
            lat = self.lat0 + s[1] / 111_320.0
            lon = self.lon0 + s[0] / (111_320.0 * math.cos(math.radians(self.lat0)))
            friend = i < 10
            affiliation = "friend" if friend else "unknown"
            out.append(Track(
                id=f"F{i}" if friend else f"T{i}", ts=t, lat=lat, lon=lon, vn=s[3], ve=s[2],
                cov=(100.0, 10.0, 60.0), status="confirmed", cls=str(s[4]),
                cls_probs={str(s[4]): 1.0}, affiliation=affiliation,
                sidc=sidc(affiliation, str(s[4])), sources=["ken-radar-1"], nations=["KEN"],
                first_seen=t - 60.0, updates=self.updates[i], last_update=t, label=LABEL))
        return out


async def serve(tracks: int, seconds: float) -> dict[str, Any]:
    config = load_config(DEFAULT_CONFIG)
    directory = Path(tempfile.mkdtemp(prefix="bench-console-"))
    files = write_auth_files(config, directory / "auth")
    settings = Web(port=free_port(), passwd_file=str(files.auth.password_file))
    sink = WebSink(settings, [*[p.id for p in config.partners], MISSION], lambda a: 0.0)
    status = HubStatus(ts=time.time(), online=True, version="bench", broker="connected")
    context = web_context(config, settings, sink, lambda: status,
                          lambda a: [f"{a} sees the synthetic scene"], HubMetrics())
    server = WebServer(context)
    await server.start()
    origin = config.mission.origin
    scene = Scene(tracks, origin.lat, origin.lon)
    stop = asyncio.Event()

    async def publish() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            now = time.time()
            full = seq % 10 == 1
            sink.picture("gha", Picture(ts=now, seq=seq, partner="gha", full=full,
                                        tracks=scene.tracks(now, 1.0 if full else 0.9),
                                        removed=[]))
            await asyncio.sleep(1.0)

    publisher = asyncio.create_task(publish())
    try:
        return await asyncio.to_thread(drive_browser, server.url, files.password("gha"), seconds)
    finally:
        stop.set()
        publisher.cancel()
        await server.stop()


def drive_browser(url: str, password: str, seconds: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        page.fill("#login-identity", "gha")
        page.fill("#login-password", password)
        page.click("#login-submit")
        deadline = time.monotonic() + 60
        while not page.evaluate("Boolean(window.hubConsole && window.hubConsole.ready)"):
            assert time.monotonic() < deadline, "the console did not come up"
            time.sleep(0.2)
        time.sleep(5.0)
        page.evaluate("window.hubConsole.applyTimes.length = 0")
        round_trips, selects = [], []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            page.evaluate("1")
            round_trips.append((time.perf_counter() - t0) * 1000)
            ids = page.evaluate("window.hubConsole.trackIds()")
            t0 = time.perf_counter()
            page.click(f'#track-list [data-track-id="{ids[len(ids) // 2]}"]')
            page.wait_for_selector(f'#track-details:has-text("{ids[len(ids) // 2]}")')
            selects.append((time.perf_counter() - t0) * 1000)
            time.sleep(1.0)
        applied = page.evaluate("window.hubConsole.applyTimes.slice()")
        shown = len(page.evaluate("window.hubConsole.trackIds()"))
        browser.close()
    return {"tracks_shown": shown, "deltas": len(applied),
            "apply_redraw_ms": summary(applied), "click_to_details_ms": summary(selects),
            "script_round_trip_ms": summary(round_trips)}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {"p50": round(statistics.median(ordered), 1),
            "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
            "max": round(ordered[-1], 1), "n": len(ordered)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if args.tracks < 20 or args.seconds <= 0:
        parser.error("--tracks must be at least 20 and --seconds positive")
    figures = asyncio.run(serve(args.tracks, args.seconds))
    path = write_results("console", {"machine": machine_info(), "tracks": args.tracks,
                                     "seconds": args.seconds, **figures})
    print(figures)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
