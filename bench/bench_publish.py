"""Cost of publishing partner pictures, with the release rules of a config and without.

Replays a scenario (default targets300, 60 s) through the pipeline and times
``PicturePublisher.publish`` once per second of measurement time: every
partner's picture through its release rules (views, labels, deltas, encode).
"Without rules" is the same config with every sensor released unrestricted to
every partner, one group, no labels to vary. Usage:

    .venv/bin/python bench/bench_publish.py [--scenario targets300] [--seconds 60]
"""

from __future__ import annotations

import argparse
import time

import msgspec
from common import machine_info, write_results

from hub.config import DEFAULT_CONFIG, HubConfig, load_config
from hub.pipeline import Pipeline
from hub.publish.mqtt import MqttPictureSink
from hub.publish.publisher import PicturePublisher
from hub.release.view import ReleaseView
from simulators.engine import generate
from simulators.scenario import load_scenario


def unrestricted(config: HubConfig) -> HubConfig:
    """``config`` with every sensor released to every partner, no rule shaping the output."""
    everyone = [p.id for p in config.partners]
    sensors = [msgspec.structs.replace(s, release_to=everyone) for s in config.sensors]
    return msgspec.structs.replace(config, sensors=sensors, releases=[])


def time_publishing(config: HubConfig, records: list[tuple[float, str, bytes]]
                    ) -> dict[str, float]:
    """Milliseconds per publish and bytes per picture over the replay."""
    pipeline = Pipeline(config)
    sizes: list[int] = []

    def keep_size(topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        sizes.append(len(payload))
        return True

    publisher = PicturePublisher(ReleaseView(pipeline), [MqttPictureSink(keep_size)])
    spent, publishes, next_t = 0.0, 0, float("-inf")
    for t, topic, payload in records:
        if not topic.startswith("sensors/"):
            continue
        pipeline.handle(topic, payload, t)
        pipeline.flush(t)
        if t >= next_t:
            started = time.perf_counter()
            publisher.publish(t)
            spent += time.perf_counter() - started
            publishes, next_t = publishes + 1, t + 1.0
    return {"ms_per_publish": 1e3 * spent / publishes, "publishes": publishes,
            "bytes_per_picture": sum(sizes) / max(len(sizes), 1), "pictures": len(sizes)}


def main() -> None:
    """Run both configurations and print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="targets300")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    records = list(generate(load_scenario(args.scenario).with_duration(args.seconds)))
    config = load_config(DEFAULT_CONFIG)
    figures = {"with_rules": time_publishing(config, records),
               "unrestricted": time_publishing(unrestricted(config), records)}
    for name, f in figures.items():
        print(f"{name:>12}: {f['ms_per_publish']:.2f} ms per publish ({len(config.partners)} "
              f"partners), {f['bytes_per_picture']:,.0f} B per picture")
    write_results("publish", {"scenario": args.scenario, "seconds": args.seconds,
                              "machine": machine_info(), **figures})


if __name__ == "__main__":
    main()
