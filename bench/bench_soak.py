"""Memory under steady traffic: ``hub run`` fed by ``hub sim`` for an hour, RSS every 30 s.

The default scenario (300 scenario seconds) is run again each time it ends.

The hub's RSS is sampled every ``--every`` seconds; the slope (least squares,
MiB per minute) is taken over the samples after ``--warm-up`` minutes, when
the picture has filled and the caches have grown to their bounds. Flat means
a slope under 0.05 MiB/min.

    python bench/bench_soak.py --minutes 60 --speed 12
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, rss_mib, write_results

from hub import messages, topics
from hub.broker.launcher import start_broker
from hub.config import DEFAULT_CONFIG
from hub.messages import HubStatus

FLAT_MIB_PER_MIN = 0.05


def slope_mib_per_min(samples: list[tuple[float, float]], warm_up_s: float) -> float | None:
    """Least-squares slope of RSS against time over the samples after the warm-up."""
    kept = np.array([(t, rss) for t, rss in samples if t >= warm_up_s])
    if kept.shape[0] < 3:
        return None
    return float(np.polyfit(kept[:, 0] / 60.0, kept[:, 1], 1)[0])


def hub_counters(port: int) -> dict[str, int]:
    """The counters of the retained ``hub/status``."""
    out = subprocess.run(["mosquitto_sub", "-p", str(port), "-t", topics.HUB_STATUS, "-C", "1",
                          "-W", "10"], capture_output=True, check=False).stdout
    return dict(messages.decode(out[:-1], HubStatus, 1 << 20).counters) if out else {}


def soak(minutes: float, speed: float, every_s: float, warm_up_min: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, start_broker(prefer="mosquitto") as broker:
        config = Path(tmp) / "hub.toml"
        config.write_text(DEFAULT_CONFIG.read_text().replace("port = 1883",
                                                             f"port = {broker.port}")
                          + f'\n[recovery]\ndir = "{Path(tmp) / "state"}"\n')
        hub_cmd = [sys.executable, "-m", "hub.cli"]
        log = (Path(tmp) / "processes.log").open("wb")
        hub = subprocess.Popen([*hub_cmd, "run", "-c", str(config), "--quiet"], cwd=ROOT,
                               stdout=log, stderr=log)
        time.sleep(3.0)  # the hub is subscribed before the first measurement goes out
        sim_cmd = [*hub_cmd, "sim", "-c", str(config), "--speed", str(speed), "--no-progress"]
        sim = subprocess.Popen(sim_cmd, cwd=ROOT, stdout=log, stderr=log)
        runs = 1
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < minutes * 60:
                if sim.poll() == 0:  # the scenario ended: run it again, as a tester would
                    sim = subprocess.Popen(sim_cmd, cwd=ROOT, stdout=log, stderr=log)
                    runs += 1
                if sim.poll() not in (None, 0) or hub.poll() is not None:
                    log.close()
                    raise SystemExit("a process ended early:\n"
                                     + (Path(tmp) / "processes.log").read_text()[-2000:])
                samples.append((elapsed, rss_mib(hub.pid)))
                print(f"{elapsed / 60:5.1f} min  RSS {samples[-1][1]:7.1f} MiB", flush=True)
                time.sleep(every_s)
            counters = hub_counters(broker.port)
        finally:
            sim.terminate()
            hub.terminate()
            sim.wait(30)
            hub.wait(30)
            log.close()
    return {"minutes": minutes, "speed": speed, "every_s": every_s, "warm_up_min": warm_up_min,
            "rss_first_mib": samples[0][1], "rss_last_mib": samples[-1][1],
            "slope_mib_per_min": slope_mib_per_min(samples, warm_up_min * 60),
            "simulator_runs": runs, "received": counters.get("received"),
            "fused": counters.get("fused"),
            "rejected": counters.get("rejected"), "late": counters.get("late"),
            "samples": samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--speed", type=float, default=12.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--warm-up", type=float, default=10.0, help="minutes not in the slope")
    args = parser.parse_args()
    figures = soak(args.minutes, args.speed, args.every, args.warm_up)
    write_results("soak", figures)
    print({k: v for k, v in figures.items() if k != "samples"})
    slope = figures["slope_mib_per_min"]
    return 0 if slope is not None and slope < FLAT_MIB_PER_MIN else 1


if __name__ == "__main__":
    sys.exit(main())
