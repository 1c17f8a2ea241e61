"""The hub's tracker beside Stone Soup's standard GNN + Kalman tracker, on the same detections.

Both trackers see the same recording of a scenario: the hub through ``hub
replay`` (decode, validate, reorder, every release group's tracker), Stone Soup
through the hub's own decode, one scan at a time in recording order. Geo
detections reach Stone Soup as the hub's ENU positions with their R
(``batch_to_scan``); polar radar detections as range and bearing, with
CartesianToBearingRange from the radar's ENU position and EKF updates (a user
of Stone Soup would not hand it converted measurements). Both write ``--tracks-out``
JSON Lines at one picture per second of measurement time and are scored by
``hub.cli.score.score`` against the recording's ``sim/truth``.

Stone Soup is set up as its tutorials set up a standard tracker, with the hub's
own parameters (config [fusion]) wherever Stone Soup has one:

* ConstantVelocity in east and north with noise_diff_coeff = process_noise²;
* LinearGaussian measurement model per geo detection, mapping (0, 2), with its
  R; CartesianToBearingRange per polar detection (bearing turned from
  clockwise-from-north at the radar into Stone Soup's anticlockwise-from-east
  in the mission frame, meridian convergence included);
* KalmanPredictor, ExtendedKalmanUpdater (the Kalman update for linear models);
* DistanceHypothesiser with the Mahalanobis measure and missed_distance =
  sqrt(gate_chi2), GNNWith2DAssignment;
* MultiMeasurementInitiator (min_points = confirm_m, velocity prior sigma
  init_speed_sigma) with its own GNN and deleter;
* UpdateTimeDeleter (delete_after_s for tracks, 3 s for tentative ones). Its
  step-counting sibling UpdateTimeStepsDeleter counts scans of every sensor,
  including UAV scans whose footprint never covers the track, so with six
  scans a second it would drop tracks after a fraction of a second.

Detections/s is measured per tracker on one core of the same machine: for the
hub the replay's own figure (decode through fusion, every release group); for
Stone Soup decode plus conversion plus tracking.

Run: .venv/bin/python bench/bench_stonesoup.py --scenario targets50
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import msgspec
import numpy as np
from stonesoup.dataassociator.neighbour import GNNWith2DAssignment
from stonesoup.deleter.time import UpdateTimeDeleter
from stonesoup.hypothesiser.distance import DistanceHypothesiser
from stonesoup.initiator.simple import MultiMeasurementInitiator
from stonesoup.measures import Mahalanobis
from stonesoup.models.measurement.linear import LinearGaussian
from stonesoup.models.measurement.nonlinear import CartesianToBearingRange
from stonesoup.models.transition.linear import (
    CombinedLinearGaussianTransitionModel,
    ConstantVelocity,
)
from stonesoup.predictor.kalman import KalmanPredictor
from stonesoup.types.angle import Bearing
from stonesoup.types.array import StateVector
from stonesoup.types.detection import Detection
from stonesoup.types.state import GaussianState
from stonesoup.types.track import Track
from stonesoup.updater.kalman import ExtendedKalmanUpdater

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub import topics
from hub.cli.replay import replay_file
from hub.cli.score import ScoreReport, format_report, score
from hub.config import Fusion, HubConfig, load_config
from hub.fusion.tracker import COAST_AFTER_S
from hub.geo import EnuFrame
from hub.ingest.detections import batch_to_scan, sensor_origin
from hub.messages import DetectionBatch, PolarDetection, SensorPosition, decode
from hub.recording import read_recording
from simulators.engine import write_recording
from simulators.scenario import load_scenario, resolve_scenario

ROOT = Path(__file__).resolve().parent.parent
EPOCH = datetime(1970, 1, 1)
MAPPING = (0, 2)  # Stone Soup's combined CV state is [e, ve, n, vn]
PolarModel = tuple[CartesianToBearingRange, float]
"""A radar's measurement model and its meridian convergence (rad)."""


@dataclass(frozen=True)
class SsScan:
    """One batch's detections as Stone Soup takes them, at time ``t``."""

    t: float
    detections: frozenset[Detection]

    def __len__(self) -> int:
        return len(self.detections)


def read_scans(path: Path, config: HubConfig, frame: EnuFrame) -> Iterator[SsScan]:
    """Decode every detection batch of a recording for Stone Soup, in file order."""
    index = config.sensor_index()
    polar_models: dict[tuple[SensorPosition, float, float], PolarModel] = {}
    for _, topic, payload in read_recording(path):
        if not topic.startswith("sensors/") or not topic.endswith("/detections"):
            continue
        sensor_id, _ = topics.parse_sensor_topic(topic)
        batch = decode(payload, DetectionBatch, config.ingest.max_payload_bytes)
        scan = batch_to_scan(batch, index[sensor_id], frame)  # geo rows used as they are
        when = EPOCH + timedelta(seconds=scan.t)
        detections = set()
        for det, z, r in zip(batch.detections, scan.z, scan.R, strict=True):
            if isinstance(det, PolarDetection):
                assert batch.sensor is not None
                detections.add(_polar_detection(det, batch.sensor, frame, when, polar_models))
            else:
                detections.add(Detection(z.reshape(2, 1), timestamp=when,
                                         measurement_model=LinearGaussian(4, MAPPING, r)))
        yield SsScan(scan.t, frozenset(detections))


def _polar_detection(det: PolarDetection, sensor: SensorPosition, frame: EnuFrame,
                     when: datetime, models: dict[tuple[SensorPosition, float, float], PolarModel]
                     ) -> Detection:
    """A range-bearing detection with its (cached) CartesianToBearingRange model."""
    cos_el = math.cos(math.radians(det.elevation or 0.0))
    key = (sensor, det.sigma_range * cos_el, det.sigma_bearing)
    cached = models.get(key)
    if cached is None:
        e0, n0, gamma = sensor_origin(sensor, frame)
        noise = np.diag([math.radians(det.sigma_bearing) ** 2, key[1] ** 2])
        cached = models[key] = (CartesianToBearingRange(
            4, MAPPING, noise, translation_offset=StateVector([[e0], [n0]])), gamma)
    model, gamma = cached
    # Clockwise from north at the radar -> anticlockwise from east in the mission frame.
    phi = math.pi / 2.0 - (math.radians(det.bearing) + gamma)
    return Detection(StateVector([[Bearing(phi)], [det.range * cos_el]]), timestamp=when,
                     measurement_model=model)


@dataclass
class StoneSoupTracker:
    """Stone Soup's standard multi-target loop (as MultiTargetTracker runs it), one scan a call."""

    fusion: Fusion
    process_noise: float | None = None
    """Acceleration noise of the CV model, m/s²; None: the hub's ``process_noise``."""

    def __post_init__(self) -> None:
        q = (self.process_noise or self.fusion.process_noise) ** 2
        transition = CombinedLinearGaussianTransitionModel(
            [ConstantVelocity(q), ConstantVelocity(q)])
        self.predictor = KalmanPredictor(transition)
        nominal = LinearGaussian(ndim_state=4, mapping=MAPPING, noise_covar=np.eye(2) * 100.0)
        self.updater = ExtendedKalmanUpdater(nominal)
        hypothesiser = DistanceHypothesiser(self.predictor, self.updater, measure=Mahalanobis(),
                                            missed_distance=math.sqrt(self.fusion.gate_chi2))
        self.associator = GNNWith2DAssignment(hypothesiser)
        self.deleter = UpdateTimeDeleter(timedelta(seconds=self.fusion.delete_after_s))
        v2 = self.fusion.init_speed_sigma**2
        self.initiator = MultiMeasurementInitiator(
            prior_state=GaussianState(np.zeros((4, 1)), np.diag([0.0, v2, 0.0, v2])),
            measurement_model=nominal, deleter=UpdateTimeDeleter(timedelta(seconds=3)),
            data_associator=GNNWith2DAssignment(hypothesiser), updater=self.updater,
            min_points=self.fusion.confirm_m)
        self.tracks: set[Track] = set()
        self.updated: dict[str, float] = {}  # track id -> time of its last update

    def process(self, scan: SsScan) -> None:
        """Associate, update, delete and initiate with one scan."""
        when = EPOCH + timedelta(seconds=scan.t)
        detections = set(scan.detections)
        associations = self.associator.associate(self.tracks, detections, when)
        used = set()
        for track, hypothesis in associations.items():
            if hypothesis:
                track.append(self.updater.update(hypothesis))
                used.add(hypothesis.measurement)
                self.updated[track.id] = scan.t
            else:
                track.append(hypothesis.prediction)
        for track in self.deleter.delete_tracks(self.tracks):
            self.tracks.discard(track)
            self.updated.pop(track.id, None)
        born = self.initiator.initiate(detections - used, when)
        self.updated.update((track.id, scan.t) for track in born)
        self.tracks |= born

    def picture(self, t: float, frame: EnuFrame) -> list[dict[str, Any]]:
        """The current tracks as --tracks-out records at time ``t`` (states predicted to t)."""
        tracks = list(self.tracks)
        if not tracks:
            return []
        x = np.array([np.asarray(track.state_vector, dtype=float).ravel() for track in tracks])
        dt = np.array([t - (track.timestamp - EPOCH).total_seconds() for track in tracks])
        lat, lon, _ = frame.to_geodetic(x[:, 0] + x[:, 1] * dt, x[:, 2] + x[:, 3] * dt, 0.0)
        # Coasting as the hub reports it: no update for more than COAST_AFTER_S.
        return [{"t": round(t, 3), "track_id": track.id, "lat": la, "lon": lo, "vn": s[3],
                 "ve": s[1], "status": "coasting" if t - self.updated[track.id] > COAST_AFTER_S
                 else "confirmed", "cls": "unknown", "affiliation": "unknown",
                 "picture": "mission"}
                for track, la, lo, s in zip(tracks, lat.tolist(), lon.tolist(), x.tolist(),
                                            strict=True)]


def run_stonesoup(scans: Iterable[SsScan], config: HubConfig, frame: EnuFrame,
                  out: TextIO, process_noise: float | None = None) -> tuple[int, float]:
    """Track every scan, write one picture per publish interval; return detections, seconds."""
    tracker = StoneSoupTracker(config.fusion, process_noise)
    interval = config.publish.interval_s
    next_picture, detections, last_t = float("-inf"), 0, 0.0
    started = time.perf_counter()
    for scan in scans:
        tracker.process(scan)
        detections += len(scan)
        last_t = scan.t
        if scan.t >= next_picture:
            _write(out, tracker.picture(scan.t, frame))
            next_picture = scan.t + interval
    _write(out, tracker.picture(last_t, frame))
    return detections, time.perf_counter() - started


def _write(out: TextIO, records: list[dict[str, Any]]) -> None:
    out.writelines(json.dumps(record) + "\n" for record in records)


def summarise(name: str, detections: int, seconds: float, report: ScoreReport) -> dict[str, Any]:
    """One row of the comparison table."""
    return {"tracker": name, "detections": detections, "seconds": round(seconds, 3),
            "detections_per_s": round(detections / seconds) if seconds > 0 else 0,
            "gospa": round(report.gospa, 2), "localisation": round(report.localisation, 2),
            "missed": round(report.missed, 2), "false": round(report.false, 2),
            "mean_confirmed": round(report.mean_confirmed, 2),
            "mean_truths": round(report.mean_truths, 2), "id_switches": report.id_switches}


def main(argv: list[str] | None = None) -> int:
    """Generate the scenario, run both trackers, score both, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="targets50")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="cut the scenario (s)")
    parser.add_argument("-c", "--config", default=str(ROOT / "config" / "hub.toml"))
    parser.add_argument("--out", default=None, help="keep recording and tracks in this dir")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)

    scenario = load_scenario(resolve_scenario(args.scenario))
    if args.duration is not None:
        scenario = msgspec.structs.replace(scenario, duration_s=args.duration)
    config = load_config(args.config)
    origin = config.mission.origin
    frame = EnuFrame(origin.lat, origin.lon, origin.alt)
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.out or tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        recording = out_dir / f"{scenario.name}.rec"
        write_recording(scenario, recording, args.seed)

        hub_tracks = out_dir / "hub_tracks.jsonl"
        summary = replay_file(recording, config, hub_tracks)
        hub_report = score(recording, hub_tracks)

        ss_tracks = out_dir / "stonesoup_tracks.jsonl"
        started = time.perf_counter()
        with open(ss_tracks, "w") as out:
            detections, _ = run_stonesoup(read_scans(recording, config, frame), config, frame,
                                          out)
        ss_seconds = time.perf_counter() - started
        ss_report = score(recording, ss_tracks)

    rows = [summarise("hub", summary.detections, summary.seconds, hub_report),
            summarise("stonesoup", detections, ss_seconds, ss_report)]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        seed = scenario.seed if args.seed is None else args.seed
        print(f"scenario {scenario.name}, seed {seed}, {scenario.duration_s:g} s")
        for name, report in (("hub", hub_report), ("Stone Soup", ss_report)):
            print(f"\n== {name}\n{format_report(report)}")
        print()
        print(_table(rows))
    return 0


def _table(rows: list[dict[str, Any]]) -> str:
    head = ("tracker", "detections", "detections_per_s", "gospa", "localisation", "missed",
            "false", "mean_confirmed", "mean_truths", "id_switches")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(row[key]) for key in head) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
