"""The hub beside Stone Soup on every scenario family of simulators.families (issue 12).

Each family's recording (simulators.families: motion and sensor models of its
own, not the hub's simulator) is replayed through the hub with the shipped
defaults (config/hub.toml, no per-family tuning) and run through Stone Soup's
standard GNN + Kalman tracker (bench_stonesoup: EKF updates for polar
detections) once per process noise of a small grid, keeping the best per
GOSPA setting, as a user tuning it per family would. Both are scored on the
mission picture with GOSPA c = 50 m, p = 1 and c = 100 m, p = 2.

Run: .venv/bin/python bench/bench_families.py [--families quiet gmti] [--seed 3]
[--stonesoup-from earlier.json] (figures to bench/results/families.json, the
table to stdout; with --stonesoup-from only the hub runs, a few seconds in all).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stonesoup import read_scans, run_stonesoup

from hub.cli.replay import replay_file
from hub.cli.score import ScoreReport, score
from hub.config import HubConfig, load_config
from hub.geo import EnuFrame
from simulators.families import FAMILIES, write_family

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "families.json"
SS_GRID = (0.1, 0.3, 1.0)
"""Stone Soup's CV acceleration noise grid, m/s² (its q is the square)."""
SETTINGS = {"c50p1": {"cutoff": 50.0, "order": 1.0}, "c100p2": {"cutoff": 100.0, "order": 2.0}}


def parts(report: ScoreReport) -> dict[str, float]:
    """GOSPA and its parts (m) and the ID switches of one score."""
    return {"gospa": round(report.gospa, 2), "localisation": round(report.localisation, 2),
            "missed": round(report.missed, 2), "false": round(report.false, 2),
            "id_switches": report.id_switches}


def scores(recording: Path, tracks: Path) -> dict[str, dict[str, float]]:
    """Both GOSPA settings' parts."""
    return {name: parts(score(recording, tracks, **kw))  # type: ignore[arg-type]
            for name, kw in SETTINGS.items()}


def run_family(name: str, seed: int | None, config: HubConfig, folder: Path,
               grid: tuple[float, ...], known: dict[str, Any] | None = None) -> dict[str, Any]:
    """The hub's and Stone Soup's best scores on one family (Stone Soup's from ``known``'s row)."""
    recording = folder / f"{name}.rec"
    write_family(name, recording, seed)
    hub_tracks = folder / f"{name}_hub.jsonl"
    replay_file(recording, config, hub_tracks)
    row: dict[str, Any] = {"family": name, "hub": scores(recording, hub_tracks),
                           "stonesoup": {}, "stonesoup_q": {}}
    if known is not None:
        row["stonesoup"], row["stonesoup_q"] = known["stonesoup"], known["stonesoup_q"]
        return row
    o = config.mission.origin
    frame = EnuFrame(o.lat, o.lon, o.alt)
    for q in grid:
        ss_tracks = folder / f"{name}_ss.jsonl"
        with open(ss_tracks, "w") as out:
            run_stonesoup(read_scans(recording, config, frame), config, frame, out, q)
        for setting, result in scores(recording, ss_tracks).items():
            best = row["stonesoup"].get(setting)
            if best is None or result["gospa"] < best["gospa"]:
                row["stonesoup"][setting], row["stonesoup_q"][setting] = result, q
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per family and setting, hub vs Stone Soup with parts and switches."""
    head = ("family", "GOSPA", "hub", "Stone Soup (q)", "hub better", "loc hub/SS",
            "missed hub/SS", "false hub/SS", "ID sw hub/SS")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        for setting in SETTINGS:
            h, s = row["hub"][setting], row["stonesoup"][setting]
            lines.append(
                f"| {row['family']} | {setting} | {h['gospa']:.1f} | {s['gospa']:.1f} "
                f"({row['stonesoup_q'][setting]:g}) | {gain(row, setting):+.1f} % | "
                f"{h['localisation']:.1f} / {s['localisation']:.1f} | "
                f"{h['missed']:.1f} / {s['missed']:.1f} | {h['false']:.1f} / {s['false']:.1f} | "
                f"{h['id_switches']} / {s['id_switches']} |")
    for setting in SETTINGS:
        gains = [gain(row, setting) for row in rows]
        lines.append(f"\n{setting}: median {statistics.median(gains):+.1f} %, "
                     f"worst {min(gains):+.1f} % ({len(gains)} families)")
    return "\n".join(lines)


def gain(row: dict[str, Any], setting: str) -> float:
    """How much lower the hub's GOSPA is than Stone Soup's best, in percent."""
    h, s = row["hub"][setting]["gospa"], row["stonesoup"][setting]["gospa"]
    return float(100.0 * (s - h) / s)


def _known(path: str | None, seed: int | None, grid: list[float]
           ) -> dict[str, dict[str, Any]] | None:
    """Stone Soup's rows of an earlier run by family, or None; exits if that run differs."""
    if path is None:
        return None
    earlier = json.loads(Path(path).read_text())
    if earlier["seed"] != seed or earlier["grid"] != grid:
        raise SystemExit(f"--stonesoup-from {path}: seed {earlier['seed']}, grid "
                         f"{earlier['grid']}; this run has seed {seed}, grid {grid}")
    return {row["family"]: row for row in earlier["rows"]}


def main(argv: list[str] | None = None) -> int:
    """Run every (or the named) family, print the table, save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--seed", type=int, default=None, help="default: each family's own")
    parser.add_argument("--grid", type=float, nargs="*", default=list(SS_GRID))
    parser.add_argument("-c", "--config", default=str(ROOT / "config" / "hub.toml"))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--stonesoup-from", metavar="JSON",
                        help="take Stone Soup's figures from an earlier run's --out of the same "
                             "seed and grid (Stone Soup takes most of the time; the hub is rerun)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    known = _known(args.stonesoup_from, args.seed, args.grid)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families:
            rows.append(run_family(name, args.seed, config, Path(tmp), tuple(args.grid),
                                   known.get(name) if known is not None else None))
            print(table(rows[-1:]).split("\n\n")[0], flush=True)
    print()
    print(table(rows))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seed": args.seed, "grid": args.grid, "rows": rows},
                                         indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
