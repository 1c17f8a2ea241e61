"""Command line: ``python -m simulators -s SCENARIO [-c HUB_CONFIG] [--host H --port P ...]``.

``hub sim`` runs this in a process of its own, so the hub never imports the simulators.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import msgspec

from hub.broker.files import read_credentials
from hub.config import Broker, load_config, parse_endpoint
from hub.errors import BrokerUnavailable, ConfigError
from simulators.engine import write_recording
from simulators.publisher import run
from simulators.scenario import load_scenario


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the simulator's command line."""
    p = argparse.ArgumentParser(prog="python -m simulators",
                                description="Publish a simulated scenario to an MQTT broker.")
    p.add_argument("-s", "--scenario", default="default",
                   help="scenario file, or a name in config/scenarios/ (default: default)")
    p.add_argument("-c", "--config", default=None,
                   help="hub config TOML whose [broker] to use (default: 127.0.0.1:1883, MQTT 5)")
    p.add_argument("--host", default=None, help="broker host (overrides the config)")
    p.add_argument("--port", type=int, default=None, help="broker port (overrides the config)")
    p.add_argument("--protocol", choices=("5", "3.1.1"), default=None)
    p.add_argument("--failover", metavar="HOST:PORT", action="append", default=None,
                   help="another broker to go on at when the connection is lost (a clustered "
                        "hub's other nodes; repeat; default: the config's broker.failover)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="scenario seconds per wall-clock second")
    p.add_argument("--duration", type=float, default=None, help="scenario seconds to run")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--username", default=None)
    p.add_argument("--password-env", default=None,
                   help="environment variable holding the broker password")
    p.add_argument("--credentials", metavar="FILE", default=None,
                   help="credentials.toml from `hub broker-config`: each unit logs in as itself")
    p.add_argument("--record-to", metavar="FILE", default=None,
                   help="write the stream to a recording file instead of publishing")
    return p.parse_args(argv)


def _broker(args: argparse.Namespace) -> Broker:
    """The config's broker (or the defaults) with the command line's address on top."""
    broker = load_config(args.config).broker if args.config else Broker()
    changes = {k: v for k, v in (("host", args.host), ("port", args.port),
                                 ("protocol", args.protocol), ("failover", args.failover))
               if v is not None}
    broker = msgspec.structs.replace(broker, **changes)
    for entry in broker.failover:
        try:
            parse_endpoint(entry)
        except ValueError as exc:
            raise ConfigError(f"--failover: {exc}") from exc
    return broker


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the simulators; return the process exit status."""
    args = parse_args(argv)
    # A parent (hub demo) stops us with SIGTERM: end as cleanly as on Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        scenario = load_scenario(args.scenario)
        if args.record_to:
            if args.duration is not None:
                scenario = scenario.with_duration(args.duration)
            count = write_recording(scenario, args.record_to, seed=args.seed)
            print(f"wrote {count} messages to {args.record_to}", file=sys.stderr)
            return 0
        broker = _broker(args)
        password = os.environ.get(args.password_env) if args.password_env else None
        credentials = None
        if args.credentials:
            credentials = read_credentials(Path(args.credentials))
            if not credentials:
                raise ConfigError(f"{args.credentials}: no broker credentials in it")
        sent = run(scenario, broker.host, broker.port, protocol=broker.protocol,
                   speed=args.speed, duration=args.duration, progress=not args.no_progress,
                   username=args.username, password=password, credentials=credentials,
                   seed=args.seed, tls=broker.tls, failover=broker.endpoints()[1:])
        print(f"sent {sent} messages", file=sys.stderr)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
