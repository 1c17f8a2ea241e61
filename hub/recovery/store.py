"""One hub's recovery directory: its lock, checkpoint and journal, and the restart sequence.

On start: take the lock (one hub per directory), load the checkpoint, replay
the journal written after it, and journal from then on (into a new segment;
the next periodic checkpoint supersedes the replayed ones).
A checkpoint of another registry or release grouping is set aside, not
restored, but its track ids are still never given again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import msgspec

from hub.config import HubConfig
from hub.errors import ConfigError
from hub.metrics import RateLimitedLog
from hub.pipeline import Pipeline
from hub.publish.publisher import PicturePublisher
from hub.recovery import checkpoint as checkpoints
from hub.recovery.codec import decode_scan
from hub.recovery.journal import Journal, read_segment, segment_path, segments

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.npz"


def recovery_dir(config: HubConfig) -> Path:
    """The configured directory, or the hub's own under ``$XDG_STATE_HOME``."""
    if config.recovery.dir:
        return Path(config.recovery.dir).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "hub" / config.broker.client_id


def with_recovery_key(config: HubConfig) -> HubConfig:
    """``config`` with its friend-id key kept beside its recovery state, unless it names one.

    A hub that recovers its tracks must give its friend platforms the same ids
    again, so their key must outlive the process as the checkpoint does.
    """
    if not config.recovery.enabled or config.mission.id_key_file is not None:
        return config
    directory = _made(recovery_dir(config))
    mission = msgspec.structs.replace(config.mission, id_key_file=str(directory / "id.key"))
    return msgspec.structs.replace(config, mission=mission)


def _made(directory: Path) -> Path:
    """``directory``, created (0700) if missing; a ConfigError naming the key if it cannot be."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"$.recovery.dir: cannot use {directory}: {exc.strerror}") from exc
    return directory


@dataclass(frozen=True, slots=True)
class Restored:
    """What a start recovered."""

    checkpoint_age_s: float | None
    """How old the checkpoint was (None: there was none to use)."""
    replayed: int
    """Journal records replayed after it."""
    heard_at: float | None
    """Receive time of the last input the previous run took (None: nothing to go by)."""
    seconds: float


class RecoveryStore:
    """The recovery directory of one hub; ``start`` before the bus, ``close`` after it."""

    def __init__(self, config: HubConfig) -> None:
        self.directory = recovery_dir(config)
        self.counters: Counter[str] = Counter()
        self.journal: Journal | None = None
        self._lock: int | None = None
        self._errors = RateLimitedLog(log)

    def start(self, pipeline: Pipeline, publisher: PicturePublisher) -> Restored:
        """Lock the directory, bring ``pipeline`` back to where it was and start journalling."""
        started = time.monotonic()
        self._take_lock()
        age, first = self._restore(pipeline, publisher)
        replayed, heard_at = 0, None if age is None else time.time() - age
        for number in (n for n in segments(self.directory) if n >= first):
            path = segment_path(self.directory, number)
            count, skipped, last = _replay(pipeline, path)
            replayed += count
            heard_at = heard_at if last is None else max(heard_at or last, last)
            if skipped:
                self.counters["journal_skipped"] += skipped
                log.warning("journal %s: %d records of no known form skipped", path.name,
                            skipped)
        self.counters["recovered_records"] += replayed
        last = max([first - 1, *segments(self.directory)])
        self.journal = Journal(self.directory, last + 1, self.counters)
        if age is None:
            # Nothing on disk holds the ids this run must not give again: write it now.
            # A restored checkpoint does, and replaying it again is exact, so that
            # one waits for the first periodic checkpoint, after the first picture.
            self.checkpoint(pipeline, publisher)
        pipeline.journal = self.journal
        return Restored(age, replayed, heard_at, time.monotonic() - started)

    def checkpoint(self, pipeline: Pipeline, publisher: PicturePublisher) -> None:
        """Save the state; the journal before it is no longer needed.

        A directory that refuses it (a full disk) keeps the last checkpoint and
        every segment after it: counted, logged at most once per 10 s.
        """
        assert self.journal is not None
        try:
            segment = self.journal.rotate()
            state = checkpoints.capture(pipeline, publisher, segment)
            state.meta["saved_at"] = time.time()
            checkpoints.save(self.directory / CHECKPOINT, state)
        except OSError as exc:
            self.counters["checkpoint_failed"] += 1
            self._errors.error("recovery %s: cannot checkpoint (%s): a restart will replay "
                               "more journal", self.directory, exc.strerror)
            return
        for number in segments(self.directory):
            if number < segment:
                segment_path(self.directory, number).unlink(missing_ok=True)
        self.counters["checkpoints"] += 1

    def close(self, pipeline: Pipeline, publisher: PicturePublisher) -> None:
        """Checkpoint a last time and let the directory go."""
        if self.journal is not None:
            self.checkpoint(pipeline, publisher)
            self.counters["journal_records"] = self.journal.records
            self.journal.close()
            pipeline.journal = self.journal = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _take_lock(self) -> None:
        where = "$.recovery.dir"
        try:
            self._lock = os.open(_made(self.directory) / "lock",
                                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot use {self.directory}: {exc.strerror}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise ConfigError(f"{where}: {self.directory} is in use by another hub "
                              "(give each hub its own directory or broker.client_id)") from None
        os.ftruncate(self._lock, 0)
        os.write(self._lock, f"{os.getpid()}\n".encode())

    def _restore(self, pipeline: Pipeline, publisher: PicturePublisher
                 ) -> tuple[float | None, int]:
        """Load the checkpoint into ``pipeline``; return its age and the segment to replay from."""
        path = self.directory / CHECKPOINT
        if not path.exists():
            return None, 0
        try:
            state = checkpoints.load(path)
            if state.meta["fingerprint"] != checkpoints.fingerprint(pipeline):
                _keep_ids(pipeline, state.meta)
                raise ValueError("taken with another registry or release grouping")
            checkpoints.restore(state, pipeline, publisher)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("checkpoint %s not restored (%s): starting from nothing; it is kept "
                        "as %s.unused", path, exc, CHECKPOINT)
            os.replace(path, path.with_name(CHECKPOINT + ".unused"))
            for number in segments(self.directory):
                segment_path(self.directory, number).unlink()
            return None, 0
        age = time.time() - float(state.meta.get("saved_at", time.time()))
        return age, int(state.meta["segment"])


def _keep_ids(pipeline: Pipeline, meta: dict[str, object]) -> None:
    """Never give again an id an unrestorable checkpoint's trackers had given."""
    given = meta.get("next_ids")
    floor = max((int(i) for i in given), default=1) if isinstance(given, list) else 1
    for fusion in pipeline.groups:
        fusion.tracker.reserve_ids(floor)


def _replay(pipeline: Pipeline, path: Path) -> tuple[int, int, float | None]:
    """Apply one segment's records to ``pipeline`` in order.

    Returns how many were applied, how many were skipped (well-formed
    MessagePack but no record this hub writes), and the last receive time.
    """
    count, skipped, last = 0, 0, None
    for record in read_segment(path):
        try:
            kind, t, *rest = record
            last = float(t)
            if kind == "m":
                topic, payload = rest
                pipeline.handle(str(topic), bytes(payload), last)
            elif kind == "s":
                pipeline.queue(decode_scan(rest[0]), last)
            elif kind == "f":
                pipeline.fuse_ready(last)
            else:
                raise ValueError(f"kind {kind!r}")
        except (ValueError, TypeError):
            skipped += 1
            continue
        count += 1
    return count, skipped, last
