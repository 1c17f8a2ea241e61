"""Write the scale scenario and its hub config: bench/scale/scenario.toml and hub.toml.

1,000 targets in a 40 km square, 100 sensors of 10 nations (each 4 radars and 6
UAVs), 10 partners, one per nation. Every nation releases its radars to all
partners and its UAVs to its own partner only, so each partner sees the 40
radars and its own 6 UAVs: 10 distinct release groups besides the mission
picture, 11 trackers, and every radar scan goes to all 11. The files are
committed; rerun this after changing it:

    .venv/bin/python bench/scale_files.py
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from hub.geo import EnuFrame

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "scale"
ORIGIN = {"lat": -1.2921, "lon": 36.8219, "alt": 1650.0}
NATIONS = ("KEN", "GHA", "NLD", "BRA", "IND", "PAK", "BGD", "NPL", "RWA", "URY")
HALF = 20_000.0
"""Half the side of the square the targets move in, metres."""
RADARS_PER_NATION, UAVS_PER_NATION = 4, 6
RADAR_RANGE = 6_000.0
DURATION_S = 60.0
SEED = 1000

CLASSES = {
    "person": {"weight": 0.45, "speed": [0.8, 2.0], "turn_rate": 20.0,
               "turn_probability": 0.05, "turn_duration": [2.0, 8.0]},
    "vehicle": {"weight": 0.45, "speed": [5.0, 18.0], "turn_rate": 8.0,
                "turn_probability": 0.03, "turn_duration": [3.0, 10.0]},
    "uav": {"weight": 0.1, "speed": [12.0, 30.0], "alt": [80.0, 300.0], "turn_rate": 12.0,
            "turn_probability": 0.04, "turn_duration": [3.0, 10.0]},
}


def radar_sites() -> list[tuple[float, float]]:
    """40 sites on an 8 x 5 grid over the square, so most places see two or three radars."""
    east = np.linspace(-0.85 * HALF, 0.85 * HALF, 8)
    north = np.linspace(-0.8 * HALF, 0.8 * HALF, 5)
    return [(float(e), float(n)) for n in north for e in east]


def radars(frame: EnuFrame, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The radars, dealt to the nations in turn."""
    out = []
    for k, (east, north) in enumerate(radar_sites()):
        lat, lon, _ = frame.to_geodetic(np.array([east]), np.array([north]), 0.0)
        nation = NATIONS[k % len(NATIONS)]
        out.append({
            "id": f"{nation.lower()}-radar-{k // len(NATIONS) + 1}",
            "position": {"lat": round(float(lat[0]), 6), "lon": round(float(lon[0]), 6),
                         "alt": 1660.0},
            "scan_period_s": 1.0, "min_range": 100.0, "max_range": RADAR_RANGE,
            "sigma_range": float(rng.choice([10.0, 15.0])), "sigma_bearing": 0.3,
            "pd": 0.9, "clutter_mean": 2.0, "classify_probability": 0.1, "class_conf": 0.4})
    return out


def uavs(rng: np.random.Generator) -> list[dict[str, Any]]:
    """The UAVs: orbits over random points of the square, each nation's own."""
    out = []
    for nation in NATIONS:
        for k in range(UAVS_PER_NATION):
            center = rng.uniform(-0.8 * HALF, 0.8 * HALF, 2)
            out.append({
                "id": f"{nation.lower()}-uav-{k + 1}",
                "pattern": {"kind": "orbit", "center": {"east": round(float(center[0])),
                                                        "north": round(float(center[1]))},
                            "radius": 1500.0, "clockwise": bool(k % 2),
                            "start_angle": round(float(rng.uniform(0.0, 360.0)))},
                "altitude": 400.0, "speed": 25.0, "footprint_radius": 600.0, "pd": 0.85,
                "sigma": 8.0, "clutter_mean": 0.2, "telemetry_rate": 5.0,
                "detection_rate": 2.0})
    return out


def scenario(frame: EnuFrame) -> dict[str, Any]:
    """The simulator's scenario."""
    rng = np.random.default_rng(SEED)
    return {
        "name": "scale", "seed": SEED, "duration_s": DURATION_S, "truth_rate": 1.0,
        "origin": ORIGIN,
        "targets": {"count": 1000, "birth_rate": 0.0, "death_rate": 0.0,
                    "area": {"east": 0.0, "north": 0.0, "half_width": HALF,
                             "half_height": HALF},
                    "classes": CLASSES},
        "radars": radars(frame, rng), "uavs": uavs(rng)}


def hub_config(sensors: list[dict[str, Any]]) -> dict[str, Any]:
    """The hub's registry: one partner per nation; radars to all, UAVs to their own nation."""
    return {
        "mission": {"name": "Scale benchmark", "origin": ORIGIN},
        "fusion": {"reorder_window_s": 0.5},
        "publish": {"interval_s": 1.0},
        "partners": [{"id": n.lower(), "name": n, "nation": n} for n in NATIONS],
        "groups": {"ALL": [n.lower() for n in NATIONS]},
        "sensors": [{"id": s["id"], "nation": s["id"].split("-")[0].upper(),
                     "kind": "radar" if "radar" in s["id"] else "uav"} for s in sensors],
        "releases": [rule for n in NATIONS for rule in (
            {"by": n, "kinds": ["radar"], "to": ["ALL"]},
            {"by": n, "kinds": ["uav"], "to": [n.lower()]})],
    }


def main() -> None:
    """Write both files."""
    frame = EnuFrame(ORIGIN["lat"], ORIGIN["lon"], ORIGIN["alt"])
    scene = scenario(frame)
    lines = ["Generated by bench/scale_files.py (edit that, then rerun it).",
             *__doc__.splitlines()[2:7]]
    comment = "".join(f"# {line}".rstrip() + "\n" for line in lines)
    OUT.mkdir(exist_ok=True)
    (OUT / "scenario.toml").write_text(comment + tomli_w.dumps(scene))
    (OUT / "hub.toml").write_text(comment + tomli_w.dumps(hub_config(
        scene["radars"] + scene["uavs"])))
    print(f"wrote {OUT}/scenario.toml and hub.toml")


if __name__ == "__main__":
    main()
