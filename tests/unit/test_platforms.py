"""Friend tracks from registered platforms' telemetry."""

import numpy as np

from hub.config import load_config
from hub.fusion.platforms import PlatformTable
from hub.fusion.tracks import CONFIRMED
from hub.geo import EnuFrame
from hub.messages import CLASSES, Telemetry

CONFIG = load_config("config/hub.toml")
ORIGIN = CONFIG.mission.origin
FRAME = EnuFrame(ORIGIN.lat, ORIGIN.lon, ORIGIN.alt)
UAV = CONFIG.sensor_index()["nld-uav-1"]
RADAR = CONFIG.sensor_index()["ken-radar-1"]
T0 = 1.8e9


def _fix(t: float, east: float, north: float, **vel: float) -> Telemetry:
    lat, lon, _ = FRAME.to_geodetic(east, north, 200.0)
    return Telemetry(ts=T0 + t, seq=int(t), lat=float(lat), lon=float(lon), alt=float(ORIGIN.alt)
                     + 200.0, heading=0.0, pitch=0.0, roll=0.0, **vel)


def test_platform_velocity_from_fix_or_differenced_and_extrapolated() -> None:
    table = PlatformTable(CONFIG, FRAME)
    table.update(UAV, _fix(0.0, 100.0, 200.0))
    table.update(UAV, _fix(2.0, 120.0, 190.0))  # differenced: (10, -5) m/s
    table.update(RADAR, _fix(2.0, 0.0, 0.0))  # not a platform: ignored
    table.advance(T0 + 3.0)
    snap = table.snapshot()
    assert snap.id.tolist() == [UAV] and snap.status.tolist() == [CONFIRMED]
    np.testing.assert_allclose(snap.x[0], [130.0, 185.0, 10.0, -5.0], atol=0.05)
    assert snap.cls_probs[0].argmax() == CLASSES.index("uav")
    assert snap.sources[0].tolist() == [i == UAV for i in range(len(CONFIG.sensors))]
    assert snap.updates.tolist() == [2] and snap.first_seen.tolist() == [T0]
    table.update(UAV, _fix(4.0, 0.0, 0.0, vn=3.0, ve=-1.0))
    table.update(UAV, _fix(3.5, 999.0, 999.0))  # older than the last fix: ignored
    np.testing.assert_allclose(table.snapshot().x[0], [0.0, 0.0, -1.0, 3.0], atol=0.05)


def test_platform_times_out_and_is_reported_removed() -> None:
    table = PlatformTable(CONFIG, FRAME)
    table.update(UAV, _fix(0.0, 0.0, 0.0))
    table.advance(T0 + CONFIG.fusion.friend_timeout_s - 0.1)
    assert len(table.snapshot()) == 1 and table.timed_out == 0
    table.advance(T0 + CONFIG.fusion.friend_timeout_s + 0.1)
    assert table.snapshot().id.tolist() == [] and table.timed_out == 1
