"""The hub's processing core, shared by the live service and by replay.

``handle`` validates one message and queues what it carries; ``flush`` moves
what the reorder window has passed into every release group's tracker whose
sources include the message's sensor (a scan in one pass for all of them,
hub.fusion.tracker.process_scan). No I/O happens here: the caller supplies
the receive time, so a replay of a recording is deterministic. What changes
the state (each accepted message, each frame's scan, each fusion step) goes to
``journal`` when one is set (hub.recovery), so a restart can replay it exactly.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Collection
from typing import Protocol

from hub import faults
from hub.config import HubConfig
from hub.errors import PayloadError, RefusalCode
from hub.fusion.measurements import Scan
from hub.fusion.platforms import PlatformTable
from hub.fusion.tracker import Tracker, TrackRows, process_scan
from hub.geo import EnuFrame
from hub.ingest.budget import SensorBudgets
from hub.ingest.deadletters import DeadLetters
from hub.ingest.frame_pool import WORKER_DIED, FrameOutcome, FramePool
from hub.ingest.reorder import ReorderBuffer
from hub.ingest.router import FrameJob, InboundItem, PlatformFix, Router
from hub.messages import DeadLetter
from hub.metrics import RateLimitedLog
from hub.release.groups import GroupTables, ReleaseGroup, group_of, release_groups
from hub.release.policy import ReleasePolicy
from hub.release.reload import changed_partners, with_rules_of

DEAD_LETTER_BACKLOG = 1_000

log = logging.getLogger(__name__)


class InputLog(Protocol):
    """Where the pipeline writes every input that changes its state, in order."""

    def message(self, t_received: float, topic: str, payload: bytes) -> None: ...

    def scan(self, t_received: float, scan: Scan) -> None: ...

    def fused(self, t_received: float) -> None: ...


class GroupFusion:
    """The tracker and friend platforms of one release group."""

    def __init__(self, group: ReleaseGroup, config: HubConfig, frame: EnuFrame,
                 rows: TrackRows) -> None:
        self.group = group
        kinds = [sensor.kind for sensor in config.sensors]
        self.tracker = Tracker(
            config.fusion, len(kinds),
            reporters=frozenset(i for i, kind in enumerate(kinds) if kind == "team"),
            radars=frozenset(i for i, kind in enumerate(kinds) if kind == "radar"), rows=rows)
        self.platforms = PlatformTable(config, frame)
        self.fused = 0

    def tables(self, t: float) -> GroupTables:
        """Snapshot the group's fused tracks and friend platforms (``t``: the fusion time)."""
        return GroupTables(t, (self.tracker.snapshot(t), self.platforms.snapshot()))


class Pipeline:
    """Validate, order and fuse inbound messages into one tracker per release group."""

    def __init__(self, config: HubConfig, frames: FramePool | None = None,
                 groups: Collection[str] | None = None) -> None:
        self.config = config
        self.frames = FramePool(config, wait=True) if frames is None else frames
        """Camera frames to scans; by default waiting for each (replay, tests)."""
        self.frame = config.mission.origin.frame()
        self.router = Router(config, self.frame)
        self.reorder: ReorderBuffer[InboundItem] = ReorderBuffer(config.fusion.reorder_window_s)
        self.policy = ReleasePolicy(config, self.frame)
        self.rows = TrackRows(config.fusion, len(config.sensors))
        """Every group's tracks, in one table (each group's rows its own)."""
        self._only = None if groups is None else frozenset(groups)
        self.groups = [GroupFusion(g, config, self.frame, self.rows)
                       for g in self._release_groups(config, self.policy)]
        """The release groups fused here: all, or those named by key (a cluster's worker)."""
        self.on_item: Callable[[InboundItem, float], bool] = self.queue
        """Where admitted items go: the reorder window, or (a cluster's ingest) a stream."""
        self.counters: Counter[str] = Counter()
        self.budgets = SensorBudgets(config, self.counters)
        self.refusals = DeadLetters(self.counters, DEAD_LETTER_BACKLOG)
        self.dead_letters: deque[DeadLetter] = self.refusals.ready
        self.fusion_time = 0.0
        self.journal: InputLog | None = None
        self._rejections = RateLimitedLog(log, level=logging.WARNING)
        self._floods = RateLimitedLog(log, level=logging.WARNING)

    def group_of(self, partner_id: str) -> GroupFusion:
        """The release group whose picture ``partner_id`` receives."""
        return self.groups[group_of([g.group for g in self.groups], partner_id)]

    def reload_rules(self, config: HubConfig) -> list[str]:
        """Adopt the release rules of ``config``; return the partners whose rules changed.

        A group whose set of sources is unchanged keeps its tracker; a new set
        starts a new, empty one, so no data a partner may no longer see stays
        in its picture. The caller checks the registry is unchanged first
        (hub.release.reload.restart_needed).
        """
        config = with_rules_of(self.config, config)
        policy = ReleasePolicy(config, self.frame)
        kept = {fusion.group.sensors: fusion for fusion in self.groups}
        groups = []
        for group in self._release_groups(config, policy):
            fusion = kept.pop(group.sensors, None) or GroupFusion(group, config, self.frame,
                                                                  self.rows)
            fusion.group = group
            groups.append(fusion)
        for dropped in kept.values():
            dropped.tracker.close()
        changed = changed_partners(self.policy, policy)
        self.config, self.policy, self.groups = config, policy, groups
        return changed

    def _release_groups(self, config: HubConfig, policy: ReleasePolicy) -> list[ReleaseGroup]:
        return [g for g in release_groups(config, policy)
                if self._only is None or g.key in self._only]

    def handle(self, topic: str, payload: bytes, t_received: float) -> bool:
        """Charge, validate and queue one message; False when it was dropped or refused."""
        self.counters["received"] += 1
        flooding = self.budgets.over(topic, len(payload), t_received)
        if flooding is not None:
            self._over_budget(flooding, topic, len(payload), t_received)
            return False
        try:
            item = self.router.route(topic, payload, t_received)
        except PayloadError as exc:
            self.reject(topic, len(payload), exc.code, exc.reason, t_received)
            return False
        except Exception as exc:  # a bug must cost one message, never the hub
            log.exception("unexpected error on %s", topic[:120])
            faults.survived(f"pipeline: {topic[:120]}", exc)
            self.reject(topic, len(payload), "internal",
                        f"internal error: {type(exc).__name__}", t_received)
            return False
        if isinstance(item, FrameJob):
            self._count_frame("received", item.sensor)
            self.frames.submit(item)
            return True
        if self.journal is not None:
            self.journal.message(t_received, topic, payload)
        if item is not None:
            self.on_item(item, t_received)
        return True

    def _over_budget(self, sensor_id: str, topic: str, size: int, t_received: float) -> None:
        """Drop a message over its sensor's budget: counted (by the budget) and summarised."""
        reason = self.budgets.reason(sensor_id)
        self._floods.error("dropping %s: %s", topic[:120], reason)
        self.refusals.add(sensor_id, topic, size, "rate", reason, t_received)

    def queue(self, item: InboundItem, t_received: float) -> bool:
        """Put ``item`` in the reorder window; one older than what has left is counted late."""
        if self.reorder.push(item.t, item, t_received):
            return True
        self.counters["late"] += 1
        return False

    def _count_frame(self, what: str, sensor: int) -> None:
        self.counters[f"frames_{what}"] += 1
        self.counters[f"frames_{what}.{self.config.sensors[sensor].id}"] += 1

    def collect_frames(self, t_received: float) -> None:
        """Queue the scans of finished frames; count drops; dead-letter refusals."""
        for outcome in self.frames.take():
            self._frame_outcome(outcome, t_received)

    def _frame_outcome(self, outcome: FrameOutcome, t_received: float) -> None:
        if outcome.dropped:
            self._count_frame("dropped", outcome.sensor)
        elif outcome.scan is None:
            refusal = outcome.refusal or WORKER_DIED
            if refusal.code == "internal":
                faults.survived(f"frame worker: {outcome.topic[:120]}",
                                RuntimeError(refusal.reason))
            self._count_frame("rejected", outcome.sensor)
            self.reject(outcome.topic, outcome.size, refusal.code, refusal.reason, t_received)
        else:
            self._count_frame("processed", outcome.sensor)
            self.counters["frame_detections"] += len(outcome.scan)
            # Pushed at the time the result is seen: the watermark moves with the clock.
            t = max(t_received, outcome.t_received)
            if self.journal is not None:
                self.journal.scan(t, outcome.scan)
            if not self.on_item(outcome.scan, t):  # a busy pool's result can miss the window
                self._count_frame("late", outcome.sensor)

    def reject(self, topic: str, size: int, code: RefusalCode, reason: str,
               t_received: float) -> None:
        """Count a rejected message (in all and by reason code) and report it on hub/deadletter."""
        self.counters["rejected"] += 1
        self.counters[f"rejected.{code}"] += 1
        self._rejections.error("rejected %s (%d bytes): %s", topic[:120], size, reason[:300])
        self.refusals.add(self._source_of(topic), topic, size, code, reason, t_received)

    def _source_of(self, topic: str) -> str:
        """Whose refusal it is: a registered sensor, a TAK connection (``cot/...``), or neither."""
        parts = topic.split("/", 2)
        if parts[0] == "sensors" and len(parts) == 3 and parts[1] in self.router.sensor_index:
            return parts[1]
        return topic if parts[0] == "cot" else ""

    def take_dead_letters(self, now: float) -> list[DeadLetter]:
        """The dead letters to send now, summaries of the windows passed by ``now`` included."""
        self.refusals.close(now)
        letters = list(self.dead_letters)
        self.dead_letters.clear()
        return letters

    def flush(self, t_received: float) -> int:
        """Fuse everything the reorder window has released; return how many items."""
        self.collect_frames(t_received)
        return self.fuse_ready(t_received)

    def fuse_ready(self, t_received: float) -> int:
        """Fuse what the reorder window releases at ``t_received`` (no frames collected)."""
        items = self.reorder.pop_ready(t_received)
        if items and self.journal is not None:
            self.journal.fused(t_received)
        return self._fuse(items)

    def finish(self) -> int:
        """Fuse everything still queued (end of a replay)."""
        self.collect_frames(self.fusion_time)
        return self._fuse(self.reorder.pop_all())

    def close(self) -> None:
        """Stop the frame workers."""
        self.frames.close()
        self.collect_frames(self.fusion_time)

    def _fuse(self, items: list[InboundItem]) -> int:
        for item in items:
            seeing = [fusion for fusion in self.groups if fusion.group.sees(item.sensor)]
            for fusion in seeing:
                fusion.fused += 1
            if isinstance(item, Scan):
                # One pass for every group that may see the scan, each keeping its own state.
                process_scan([fusion.tracker for fusion in seeing], item)
            elif isinstance(item, PlatformFix):
                for fusion in seeing:
                    fusion.platforms.update(item.sensor, item.telemetry, item.enu)
            self.fusion_time = max(self.fusion_time, item.t)
        if items:
            self.counters["fused"] += len(items)
            # Only the platforms move to the fusion time: a tracker's state moves
            # only with the scans it may see (a picture predicts a copy, see
            # GroupFusion.tables), so no withheld source's timing reaches it.
            for fusion in self.groups:
                fusion.platforms.advance(self.fusion_time)
        return len(items)
