"""A ground surveillance radar: polar detections with Gaussian noise and Poisson clutter.

Range is measured along the ground (horizontal distance in the radar's own
East-North-Up frame) and bearing clockwise from true north, as docs/PROTOCOL.md
defines polar detections. Most returns are unclassified; a few carry the true
class at a low confidence, as a radar's micro-Doppler classifier might.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hub.geo import EnuFrame
from simulators.scenario import Radar
from simulators.targets import Snapshot

Array = NDArray[np.float64]


@dataclass(frozen=True)
class RadarReturns:
    """One scan's returns; ``target`` is the truth index, or -1 for clutter."""

    range: Array
    bearing: Array
    cls: list[str]
    conf: Array
    target: NDArray[np.int64]


class RadarSim:
    """One radar: where it stands, what it can see and how badly it measures."""

    def __init__(self, spec: Radar, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.frame = EnuFrame(spec.position.lat, spec.position.lon, spec.position.alt)

    def true_polar(self, snap: Snapshot) -> tuple[Array, Array]:
        """Noise-free ground range (m) and bearing (deg) of every target."""
        return self.polar_of(*snap.geodetic)

    def polar_of(self, lat: Array, lon: Array, alt: Array) -> tuple[Array, Array]:
        """Noise-free ground range (m) and bearing (deg) of geodetic points."""
        e, n, _ = self.frame.to_enu(lat, lon, alt)
        return np.hypot(e, n), np.degrees(np.arctan2(e, n)) % 360.0

    def in_coverage(self, ground_range: Array) -> NDArray[np.bool_]:
        """Whether points at these ground ranges can be detected at all."""
        s = self.spec
        return np.asarray((ground_range >= s.min_range) & (ground_range <= s.max_range))

    def measure(self, snap: Snapshot) -> RadarReturns:
        """Detect, perturb and classify the targets of ``snap``, and add clutter."""
        s, rng = self.spec, self.rng
        r_true, b_true = self.true_polar(snap)
        covered = self.in_coverage(r_true)
        hit = np.flatnonzero(covered & (rng.random(len(snap)) < s.pd))
        r = np.abs(r_true[hit] + rng.normal(0.0, s.sigma_range, hit.size))
        b = (b_true[hit] + rng.normal(0.0, s.sigma_bearing, hit.size)) % 360.0
        k = int(rng.poisson(s.clutter_mean))
        # Uniform over the annulus: the squared range is uniform.
        r_c = np.sqrt(rng.uniform(s.min_range**2, s.max_range**2, k))
        b_c = rng.uniform(0.0, 360.0, k)
        target = np.concatenate([hit, np.full(k, -1, dtype=np.int64)])
        names = snap.class_names
        true_cls = np.concatenate([snap.cls[hit], rng.integers(0, len(names), k)])
        classified = rng.random(target.size) < s.classify_probability
        cls = [names[c] if known else "unknown"
               for c, known in zip(true_cls.tolist(), classified.tolist(), strict=True)]
        conf = np.where(classified, s.class_conf, 1.0)
        order = np.argsort(np.concatenate([b, b_c]), kind="stable")  # in sweep order
        return RadarReturns(
            range=np.concatenate([r, r_c])[order],
            bearing=np.concatenate([b, b_c])[order],
            cls=[cls[i] for i in order.tolist()],
            conf=conf[order],
            target=target[order],
        )

    def batch(self, ts: float, seq: int, returns: RadarReturns) -> dict[str, Any]:
        """The detection batch message of one scan, as plain Python values."""
        s = self.spec
        detections: list[dict[str, Any]] = []
        for rng_m, brg, cls, conf in zip(returns.range.tolist(), returns.bearing.tolist(),
                                         returns.cls, returns.conf.tolist(), strict=True):
            d: dict[str, Any] = {"kind": "polar", "range": rng_m, "bearing": brg,
                                 "sigma_range": s.sigma_range,
                                 "sigma_bearing": s.sigma_bearing, "cls": cls}
            if cls != "unknown":
                d["conf"] = conf
            detections.append(d)
        position = {"lat": s.position.lat, "lon": s.position.lon, "alt": s.position.alt}
        return {"ts": ts, "seq": seq, "sensor": position, "detections": detections}
