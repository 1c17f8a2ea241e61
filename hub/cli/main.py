"""The ``hub`` command: demo, run, reload, sim, record, replay, score, frames, config tools."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from hub.cli.arguments import (
    Parser,
    UsageError,
    at_least_one,
    input_file,
    output_dir,
    output_file,
    port,
    positive,
    text_file,
)
from hub.config import DEFAULT_CONFIG, DEFAULT_SCENARIO, HubConfig, load_config
from hub.errors import ConfigError, HubError, PayloadError
from hub.heap import keep_freed_memory

Handler = Callable[[argparse.Namespace], int]


def _config(args: argparse.Namespace) -> HubConfig:
    return load_config(args.config)


def _with_broker(config: HubConfig, args: argparse.Namespace) -> HubConfig:
    """Override the config's broker address with --host/--port/--protocol if given."""
    changes = {k: v for k, v in (("host", args.host), ("port", args.port),
                                 ("protocol", args.protocol)) if v is not None}
    return msgspec.structs.replace(config, broker=msgspec.structs.replace(config.broker, **changes))


def cmd_demo(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hub-demo-"))
    if args.cluster:
        from hub.cli.cluster_demo import run_cluster_demo

        return run_cluster_demo(_config(args), Path(args.scenario), args.duration, args.speed,
                                workdir)
    from hub.cli.demo import run_demo

    return run_demo(_config(args), Path(args.scenario), args.duration, args.speed, workdir,
                    args.broker)


def cmd_run(args: argparse.Namespace) -> int:
    # asyncio (with ssl and subprocess, 50-60 ms) here and not at the top: the
    # commands that run no event loop (replay, score, config) start without it.
    import asyncio

    from hub.broker.files import as_hub_identity, hub_login
    from hub.cli.console import LiveTable
    from hub.cli.pidfile import default_pid_file, pid_file
    from hub.lifecycle import stop_event
    from hub.service import HubService

    config = _with_broker(_config(args), args)
    password = config.broker.password()
    if args.credentials:
        config, password = hub_login(config, Path(args.credentials))
    if config.cluster is not None or args.role is not None:
        return _run_worker(config, args, password)
    service = HubService(config, password=password)
    address = f"mqtt://{config.broker.host}:{config.broker.port}"

    def adjust(new: HubConfig) -> HubConfig:
        new = _with_broker(new, args)
        return as_hub_identity(new) if args.credentials else new

    async def serve() -> None:
        stop = stop_event(args.duration)
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, service.reload, args.config, adjust)
        await service.run(stop, on_tick=None if args.quiet else LiveTable(address).show)

    with pid_file(Path(args.pid_file) if args.pid_file else default_pid_file(config)):
        asyncio.run(serve())
    return 0


def _run_worker(config: HubConfig, args: argparse.Namespace, password: str | None) -> int:
    """``hub run`` of one process of a clustered hub (docs/SCALING.md)."""
    import asyncio

    from hub.cluster.worker import (
        check_worker_id,
        default_roles,
        default_worker_id,
        parse_roles,
        run_worker,
    )
    from hub.lifecycle import stop_event

    if config.cluster is None:
        return _report(f"error: --role: {args.config} has no [cluster] section", 2)
    try:
        roles = parse_roles(args.role) if args.role else default_roles(config)
        worker_id = check_worker_id(args.worker_id or default_worker_id())
    except ValueError as exc:
        return _report(f"error: --role/--worker-id: {exc}", 2)
    print(f"worker {worker_id}: {', '.join(sorted(roles))} on {', '.join(config.cluster.servers)}",
          flush=True)

    async def serve() -> None:
        await run_worker(config, roles, worker_id, stop_event(args.duration), password)

    asyncio.run(serve())
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    from hub.cli.pidfile import default_pid_file, signal_hub

    config = _config(args)  # a bad file stops here, named, and the hub is not disturbed
    path = Path(args.pid_file) if args.pid_file else default_pid_file(config)
    pid = signal_hub(path)
    print(f"{args.config}: ok; sent SIGHUP to the hub (pid {pid}), which now reloads its "
          "release rules; the outcome is in its log and in hub/status (reloads, "
          "reload_failures)")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    # The simulators are a field unit's code, not the hub's: `hub sim` runs them as they are.
    argv = [sys.executable, "-m", "simulators", "-s", args.scenario, "-c", args.config,
            "--speed", str(args.speed)]
    for option, value in (("--host", args.host), ("--port", args.port),
                          ("--protocol", args.protocol), ("--duration", args.duration),
                          ("--seed", args.seed), ("--credentials", args.credentials)):
        if value is not None:
            argv += [option, str(value)]
    if args.no_progress:
        argv.append("--no-progress")
    # Become that process, so signals, the exit status and the terminal are its own.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def cmd_record(args: argparse.Namespace) -> int:
    import asyncio

    from hub.cli.record import record

    config = _with_broker(_config(args), args)
    password: str | None
    if args.credentials:
        from hub.broker.files import read_credentials
        from hub.cli.record import recorder_login

        config, password = recorder_login(config, read_credentials(Path(args.credentials)))
    else:
        password = config.broker.password()
    asyncio.run(record(config, Path(args.output), args.duration, password))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from hub.cli.replay import replay_file

    def progress(count: int) -> None:
        print(f"\rreplayed {count} messages", end="", file=sys.stderr)

    summary = replay_file(args.recording, _config(args), args.tracks_out, args.picture,
                          progress if sys.stderr.isatty() else None, args.all_groups)
    print(("\r" if sys.stderr.isatty() else "") + summary.describe())
    if summary.damage is None:
        return 0
    if args.allow_truncated:
        return _report(f"warning: {summary.damage}; replayed those only", 0)
    return _report(f"error: {summary.damage}; replayed those only (--allow-truncated accepts "
                 "this)", 2)


def cmd_score(args: argparse.Namespace) -> int:
    from hub.cli.score import format_report, score

    report = score(args.truth, args.tracks, cutoff=args.cutoff, order=args.order,
                   picture=args.picture)
    print(format_report(report))
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from hub.release.policy import describe

    config = load_config(args.file)
    print(f"{args.file}: ok ({len(config.sensors)} sensors, {len(config.partners)} partners, "
          f"{len(config.releases)} releases)")
    print("\n".join(describe(config)))
    return 0


def cmd_config_docs(args: argparse.Namespace) -> int:
    from hub.cli.config_docs import reference

    sys.stdout.write(reference())
    return 0


def cmd_broker_config(args: argparse.Namespace) -> int:
    from hub.broker.files import CONF, describe_generated, hand_over, write_broker_config

    if args.nats:
        return _nats_config(args)
    files = write_broker_config(_config(args), Path(args.output))
    print(f"wrote {files.directory / CONF}, {files.auth.password_file.name}, "
          f"{files.auth.acl_file.name} ({len(files.identities)} identities); "
          f"run: mosquitto -c {files.directory / CONF}")
    print(hand_over(files))
    print(f"the hub logs in with: hub run -c {args.config} --credentials {files.credentials}")
    print(describe_generated(files))
    return 0


def _nats_config(args: argparse.Namespace) -> int:
    """``hub broker-config --nats``: the cluster's users and permissions, same passwords."""
    from hub.broker.files import describe_generated, write_auth_files
    from hub.cluster.auth import cluster_names, write_nats_auth

    config = _config(args)
    names = cluster_names(config)  # a config it cannot serve writes nothing
    files = write_auth_files(config, Path(args.output))
    path = write_nats_auth(files, names)
    print(f"wrote {path} ({len(files.identities)} users, mode 0600); include it in every "
          "node's config (include \"PATH\", relative to that config's directory)")
    print(f"the workers log in with: hub run -c {args.config} --role ... --credentials "
          f"{files.credentials}")
    print(describe_generated(files))
    return 0


def cmd_frames_inspect(args: argparse.Namespace) -> int:
    from hub.cli.inspect_frames import default_output, draw, inspect, read_frame, write_png
    from hub.ingest.frame_pool import FrameWorker

    config = _config(args)
    found = read_frame(args.file, args.index, args.sensor)
    # As the hub's workers see it: this unit's pose noise, the terrain, the pixel limit.
    worker = FrameWorker(config)
    sensor = config.sensor_index().get(found.sensor or "")
    terrain_alt = (args.terrain_alt if args.terrain_alt is not None
                   else config.imagery.terrain_height)
    result = inspect(found, worker.enu, terrain_alt=terrain_alt, max_pixels=worker.max_pixels,
                     reduce=worker.reduce, noise=None if sensor is None else worker.noise[sensor],
                     height=worker.height)
    output = Path(args.output) if args.output else default_output(args.file, args.index,
                                                                   args.sensor)
    write_png(draw(result), output)
    print(result.table())
    print(f"wrote {output}")
    return 0


def _broker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="broker host (overrides the config)")
    parser.add_argument("--port", type=port, help="broker port (overrides the config)")
    parser.add_argument("--protocol", choices=("5", "3.1.1"), help="MQTT version")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every ``hub`` subcommand."""
    parser = Parser(prog="hub", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if name not in ("score", "config"):
            p.add_argument("-c", "--config", default=str(DEFAULT_CONFIG), help="hub config TOML")
        return p

    p = command("demo", cmd_demo, "broker, simulators and hub on this machine, no set-up")
    p.add_argument("-s", "--scenario", default=str(DEFAULT_SCENARIO))
    p.add_argument("--duration", type=positive, help="stop after S seconds (default: Ctrl-C)")
    p.add_argument("--speed", type=positive, default=1.0, help="simulation speed factor")
    p.add_argument("--workdir", help="where logs go (default: a new temp dir)")
    p.add_argument("--cluster", action="store_true",
                   help="the hub as several processes on a local 3-node NATS cluster "
                        "(needs nats-server); kill a worker or a node and watch it go on")
    p.add_argument("--broker", choices=("auto", "mosquitto", "amqtt"), default="auto",
                   help="auto: Mosquitto when installed, else the embedded amqtt (MQTT 3.1.1)")

    p = command("run", cmd_run, "run the hub service against the configured broker")
    _broker_options(p)
    p.add_argument("--duration", type=positive, help="stop after S seconds")
    p.add_argument("-q", "--quiet", action="store_true", help="no live table")
    p.add_argument("--pid-file", type=output_file,
                   help="where to write the pid (default: $TMPDIR/feedhub-<client id>.pid); "
                        "SIGHUP reloads the release rules")
    p.add_argument("--credentials", metavar="FILE", type=text_file,
                   help="credentials.toml from `hub broker-config`: log in as the hub's "
                        "identity with the password kept there")
    p.add_argument("--role", help="with [cluster]: the roles of this process, "
                   "comma-separated, of ingest, imagery, fusion, publish (default: all; "
                   "publish when the config has [web] or [tak])")
    p.add_argument("--worker-id", help="with [cluster]: this process's name among the "
                   "workers (default: host-pid)")

    p = command("reload", cmd_reload, "check the config, then make the running hub reload "
                "its release rules (SIGHUP)")
    p.add_argument("--pid-file", help="the running hub's pid file (default: as `hub run`)")

    p = command("sim", cmd_sim, "run the simulators of a scenario against a broker")
    p.add_argument("-s", "--scenario", default=str(DEFAULT_SCENARIO))
    _broker_options(p)
    p.add_argument("--speed", type=positive, default=1.0, help="10 runs ten times faster")
    p.add_argument("--duration", type=positive, help="stop after S simulated seconds")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--credentials", metavar="FILE", type=text_file,
                   help="credentials.toml from `hub broker-config`: each unit logs in as itself")

    p = command("record", cmd_record, "record inbound sensor topics and sim/truth to a file")
    p.add_argument("-o", "--output", required=True, type=output_file)
    _broker_options(p)
    p.add_argument("--duration", type=positive, help="stop after S seconds")
    p.add_argument("--credentials", metavar="FILE", type=text_file,
                   help="credentials.toml from `hub broker-config`: record as the recorder "
                        "identity (broker_server.recorder_identity), not as the hub")

    p = command("replay", cmd_replay, "replay a recording through ingest and fusion")
    p.add_argument("recording", type=input_file)
    p.add_argument("--tracks-out", type=output_file, help="write tracks as JSON Lines")
    p.add_argument("--picture", default="mission", help="'mission' or a partner id")
    p.add_argument("--all-groups", action="store_true",
                   help="fuse every release group, as the live hub does (its load); by default "
                        "only the picture's group, the only one its tracks depend on")
    p.add_argument("--allow-truncated", action="store_true",
                   help="exit 0 after replaying a damaged (cut short) recording up to the "
                        "damage; without it that replay exits 2 (the warning says where)")

    p = command("score", cmd_score, "score tracks against ground truth (GOSPA)")
    p.add_argument("--truth", required=True, type=input_file,
                   help="recording holding sim/truth")
    p.add_argument("--tracks", required=True, type=input_file,
                   help="tracks JSON Lines from hub replay")
    p.add_argument("--cutoff", type=positive, default=100.0, help="GOSPA cutoff c, metres")
    p.add_argument("--order", type=at_least_one, default=2.0, help="GOSPA order p")
    p.add_argument("--picture", default=None, help="score only this picture's lines")

    p = command("broker-config", cmd_broker_config,
                "write a Mosquitto config, password file and ACL from the registry "
                "(--nats: a NATS cluster's users and permissions)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", type=output_dir,
                   help="directory for mosquitto.conf, passwd, acl, credentials.toml")
    p.add_argument("--nats", action="store_true",
                   help="for a [cluster]: nats-auth.conf (the NATS users and permissions, "
                        "for every node to include) instead of mosquitto.conf")

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file without starting")
    check.add_argument("file")
    check.set_defaults(handler=cmd_config_check)
    docs = config_sub.add_parser("docs", help="print the configuration reference (Markdown): "
                                 "every key's path, type, default, bounds and description")
    docs.set_defaults(handler=cmd_config_docs)

    frames = sub.add_parser("frames", help="camera frame tools")
    frames_sub = frames.add_subparsers(dest="frames_command", required=True)
    inspect = frames_sub.add_parser(
        "inspect", help="detect and georeference one frame; write a PNG with the detections",
        description="Run a frame from a payload file or a recording through the hub's "
                    "decode, detector and georeferencing; write a PNG with each detection's "
                    "box, lat/lon and 1-sigma ground error; print a table of detections.")
    inspect.add_argument("file", help="a frames payload (raw MessagePack) or a recording")
    inspect.add_argument("-o", "--output", help="PNG to write (default: FILE.frameN.png)")
    inspect.add_argument("--index", type=int, default=0,
                         help="N-th frame of the recording, from 0 (of --sensor if given)")
    inspect.add_argument("--sensor", help="only frames of this sensor id")
    inspect.add_argument("--terrain-alt", type=float, default=None,
                         help="ground height, m above WGS84 (default: the mission origin's)")
    inspect.add_argument("-c", "--config", default=str(DEFAULT_CONFIG),
                         help="hub config TOML (the mission origin)")
    inspect.set_defaults(handler=cmd_frames_inspect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hub`` console script."""
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        return _report(f"config error: {exc}", 2)
    except (UsageError, PayloadError) as exc:  # the command line, or a file it names, is bad
        return _report(f"error: {exc}", 2)
    except HubError as exc:  # the world is not as needed: no broker, no running hub
        return _report(f"error: {exc}", 1)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `hub score ... | head`: the reader has gone, nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's flush quiet
        return 0
    except OSError as exc:  # a named file that passed its check but failed when used
        if exc.filename is None:
            raise
        return _report(f"error: {exc.filename}: {exc.strerror}", 2)


def _report(line: str, status: int) -> int:
    """Print ``line`` on stderr; return the exit status ``status``."""
    print(line, file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
