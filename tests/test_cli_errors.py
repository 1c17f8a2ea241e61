"""Bad ``hub`` command lines, run as the real command: one line on stderr, exit 2, no traceback.

Each case is a command line issue 11's tester found answered with a traceback
or a silent exit 0. None needs a broker: the checks come before any connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
import msgspec
import pytest

from hub.cli.score import TrackLine
from hub.config import DEFAULT_CONFIG
from hub.errors import PayloadError
from hub.recording import RecordingWriter, read_recording
from simulators.engine import write_recording
from simulators.scenario import load_scenario

HUB = [sys.executable, "-m", "hub.cli"]
KEPT = 40
"""Whole records before the cut in the truncated recording."""
# Root reads and writes past file modes: such cases run without its override capabilities.
AS_FILE_MODES_ALLOW = (["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
                       if os.geteuid() == 0 else [])
NEEDS_FILE_MODES = pytest.mark.skipif(
    bool(AS_FILE_MODES_ALLOW) and shutil.which("setpriv") is None,
    reason="running as root without setpriv (util-linux) to drop the file-mode override")


def write_truncated(records: list[tuple[float, str, bytes]], path: Path) -> int:
    """KEPT whole records and the first half of the next; return where the cut record starts."""
    with RecordingWriter(path) as writer:
        writer.write_all(records[:KEPT])
    cut_at = path.stat().st_size
    cut = msgpack.packb(list(records[KEPT]), use_bin_type=True)
    with path.open("ab") as file:
        file.write(cut[:len(cut) // 2])
    return cut_at


def write_claiming_2gib(path: Path) -> None:
    """One record whose payload's length prefix (bin 32) claims 2 GiB; the file holds 54 bytes."""
    head = msgpack.packb(1.7e9) + msgpack.packb("sensors/ken-radar-1/detections")
    path.write_bytes(b"\x93" + head + b"\xc6" + (2 << 30).to_bytes(4, "big") + b"\x00" * 8)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The files the cases name, made once: ``{name}`` in a case is replaced by its path."""
    d = tmp_path_factory.mktemp("cli-errors")
    recording = d / "mission.mpk"
    write_recording(load_scenario("default").with_duration(3.0), recording)
    cut_at = write_truncated(list(read_recording(recording)), d / "truncated.mpk")
    write_claiming_2gib(d / "claims-2gib.mpk")
    far = TrackLine(t=0.0, track_id="T1", lat=-1.3, lon=36.8, vn=0.0, ve=0.0, status="confirmed")
    (d / "tracks-1970.jsonl").write_bytes(msgspec.json.encode(far) + b"\n")
    (d / "empty.jsonl").write_bytes(b"")
    clustered = Path(DEFAULT_CONFIG).read_text() + '\n[cluster]\nservers = ["nats://127.0.0.1:9"]\n'
    (d / "clustered.toml").write_text(clustered.replace('protocol = "5"', 'protocol = "3.1.1"'))
    (d / "cluster_user.toml").write_text(clustered + 'username = "ops"\n')
    no_ca = d / "no-ca.pem"
    (d / "cluster_tls.toml").write_text(clustered.replace('protocol = "5"', 'protocol = "3.1.1"')
                                        + f'[cluster.tls]\ncafile = "{no_ca}"\n'
                                        f'certfile = "{recording}"\nkeyfile = "{recording}"\n')
    (d / "binary.bin").write_bytes(bytes(range(256)))
    (d / "unreadable.mpk").write_bytes(recording.read_bytes()[:100])
    (d / "unreadable.mpk").chmod(0)
    (d / "read-only").mkdir(mode=0o500)
    names = {p.stem.replace("-", "_"): str(p) for p in d.iterdir()}
    return {**names, "dir": str(d), "missing": str(d / "missing.mpk"),
            "no_folder": str(d / "no-such-folder"), "cut_at": str(cut_at), "kept": str(KEPT)}


def case(case_id: str, argv: str, *named: str, file_modes: bool = False) -> object:
    """A bad command line and what its one stderr line must name (``{file}`` templates).

    ``file_modes``: the case needs file permissions to hold, so it runs as root would not.
    """
    prefix = AS_FILE_MODES_ALLOW if file_modes else []
    return pytest.param([*prefix, *HUB, *argv.split()], named, id=case_id,
                        marks=NEEDS_FILE_MODES if file_modes else ())


CASES = [
    case("replay-missing-file", "replay {missing}", "{missing}", "No such file"),
    case("replay-a-directory", "replay {dir}", "{dir}", "directory"),
    case("replay-unreadable-file", "replay {unreadable}", "{unreadable}", "Permission denied",
         file_modes=True),
    case("replay-read-error", "replay /proc/self/mem", "/proc/self/mem", "cannot read"),
    case("replay-tracks-out-in-missing-folder",
         "replay {mission} --tracks-out {no_folder}/t.jsonl", "--tracks-out", "{no_folder}"),
    case("replay-truncated", "replay {truncated} --tracks-out {dir}/t.jsonl",
         "{truncated}", "byte {cut_at}", "after {kept} records", "--allow-truncated"),
    case("replay-length-claims-2gib", "replay {claims_2gib}", "{claims_2gib}", "byte 0",
         "after 0 records"),
    case("replay-no-recording-given", "replay", "recording"),
    case("score-missing-truth", "score --truth {missing} --tracks {tracks_1970}", "--truth",
         "{missing}"),
    case("score-missing-tracks", "score --truth {mission} --tracks {missing}", "--tracks",
         "{missing}"),
    case("score-negative-cutoff", "score --truth {mission} --tracks {tracks_1970} --cutoff -1",
         "--cutoff", "-1"),
    case("score-order-0", "score --truth {mission} --tracks {tracks_1970} --order 0",
         "--order", "0"),
    case("score-no-time-overlap", "score --truth {mission} --tracks {tracks_1970}",
         "{tracks_1970}", "{mission}", "1970-01-01"),
    case("score-truncated-truth", "score --truth {truncated} --tracks {tracks_1970}",
         "{truncated}", "byte {cut_at}", "cut-short truth"),
    case("score-empty-tracks", "score --truth {mission} --tracks {empty}", "{empty}",
         "no track lines"),
    case("run-port-0", "run --port 0 --duration 1 -q", "--port", "0"),
    case("run-port-70000", "run --port 70000 --duration 1 -q", "--port", "70000"),
    case("run-pid-file-in-missing-folder", "run --pid-file {no_folder}/hub.pid --duration 1 -q",
         "--pid-file", "{no_folder}"),
    case("run-role-without-cluster", "run --role fusion --duration 1 -q", "--role",
         "no [cluster]"),
    case("run-unknown-role", "run -c {clustered} --role sorting --duration 1 -q", "--role",
         "sorting"),
    case("run-publish-with-nothing-to-serve", "run -c {clustered} --role publish --duration 1 -q",
         "$.web", "neither"),
    case("run-bad-worker-id", "run -c {clustered} --worker-id a/b --duration 1 -q",
         "--worker-id", "a/b"),
    case("run-cluster-tls-missing-cafile", "run -c {cluster_tls} --duration 1 -q",
         "$.cluster.tls.cafile", "{dir}/no-ca.pem", "No such file"),
    case("sim-speed-0", "sim --speed 0 --duration 1", "--speed", "0"),
    case("sim-credentials-binary", "sim --credentials {binary} --duration 1", "--credentials",
         "{binary}", "UTF-8"),
    case("record-into-missing-folder", "record -o {no_folder}/r.mpk --duration 1", "--output",
         "{no_folder}"),
    case("broker-config-into-a-file", "broker-config -o {mission}", "--output", "{mission}",
         "a file"),
    case("broker-config-into-proc", "broker-config -o /proc/feedhub-test", "/proc/feedhub-test"),
    case("broker-config-nats-without-cluster", "broker-config -o {dir}/nats --nats",
         "$.cluster", "--nats"),
    case("broker-config-nats-another-user", "broker-config -c {cluster_user} -o {dir}/nats --nats",
         "$.cluster.username", "'ops'"),
    case("broker-config-into-read-only-folder", "broker-config -o {read_only}/broker",
         "{read_only}", "cannot write", file_modes=True),
]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(("command", "named"), CASES)
def test_a_bad_command_line_gets_one_line_and_exit_2(files: dict[str, str], command: list[str],
                                                     named: tuple[str, ...]) -> None:
    done = run([arg.format(**files) for arg in command])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr, done.stderr
    assert (done.returncode, len(lines)) == (2, 1), done.stderr
    for name in named:
        assert name.format(**files) in lines[0]


def test_allow_truncated_replays_up_to_the_damage_and_warns(files: dict[str, str],
                                                            tmp_path: Path) -> None:
    tracks = tmp_path / "tracks.jsonl"
    done = run([*HUB, "replay", files["truncated"], "--allow-truncated", "--tracks-out",
                str(tracks)])
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: ") and done.stderr.count("\n") == 1, done.stderr
    assert f"damaged at byte {files['cut_at']} " in done.stderr
    assert f"after {KEPT} records" in done.stderr
    assert " messages (0 rejected)" in done.stdout and tracks.exists()


@pytest.mark.parametrize("damage", [b"\xc1", msgpack.packb(7), msgpack.packb([1.0, "x"])],
                         ids=["not-msgpack", "not-an-array", "short-array"])
def test_reading_stops_at_damage_after_the_whole_records(files: dict[str, str], tmp_path: Path,
                                                         damage: bytes) -> None:
    path = tmp_path / "damaged.mpk"
    whole = Path(files["truncated"]).read_bytes()[:int(files["cut_at"])]
    path.write_bytes(whole + damage + whole)
    read = []
    with pytest.raises(PayloadError, match=f"byte {len(whole)} of .* after {KEPT} records"):
        read.extend(read_recording(path))
    assert len(read) == KEPT
