"""Camera frames to scans in worker processes, without starving the event loop.

The router validates a frame's message (schema, time, ``seq``) on the loop and
hands over a ``FrameJob``: the raw payload bytes, the sensor and the receive
time. A worker process decodes the payload again (cheap next to the image),
decodes the image, detects and georeferences (``hub.ingest.imagery``) and
sends back a small ``Scan`` (east/north, covariance, class, confidence) or the
``PayloadError`` reason; the pipeline fuses the scan like a detection batch
from that sensor, or dead-letters the reason.

Two policies:

- **live** (``wait=False``): at most ``JOBS_PER_WORKER * workers`` jobs in flight
  (one running and one waiting in the executor, so a worker does not idle while
  its result travels back to the loop and the next job is sent); each sensor has
  ``queue_per_sensor`` pending slots (1 by default) and a newer frame pushes
  out the oldest pending one, which comes back as a *dropped* outcome (latest
  wins: a UAV's newest frame is worth more than a stale one). Completions are
  handed to the event loop with ``loop.call_soon_threadsafe``; nothing blocks it.
- **wait** (``wait=True``, replay): every job is run to completion before
  ``submit`` returns, so nothing is dropped and a replay is deterministic.

Workers start with the "forkserver" method (or "spawn"), never "fork": the
parent runs paho's threads. Each builds its detector, terrain and pose noise
once, in the initializer, with OpenCV on one thread. ``workers = 0`` runs the
same code in the hub's own process (tests, debugging).

Workers die with the hub, however it dies: each watches the pool's lifeline
(hub.children), a pipe only the hub can write to, and exits at its end of
file. Left alone they would live on after a SIGKILL of the hub, blocked on
their job queue (they hold its write end themselves); and the forkserver lives
as long as any of them does (they hold its "alive" pipe), so the workers
ending is what ends it, and the resource tracker after it. Not
PR_SET_PDEATHSIG: a worker's parent is that forkserver, not the hub, and the
signal follows the thread that started a process, while the pool may start
from a passing thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, NamedTuple, TypeVar

import msgspec
import numpy as np

from hub.children import Lifeline, watch_lifeline
from hub.config import HubConfig
from hub.errors import PayloadError, RefusalCode
from hub.fusion.measurements import Scan
from hub.geo import EnuFrame
from hub.ingest.camera import LevelTerrain, PoseNoise
from hub.ingest.detections import UNKNOWN
from hub.ingest.router import FrameJob
from hub.messages import CLASSES, Frame, decode

log = logging.getLogger(__name__)

JOBS_PER_WORKER = 2
Dispatch = Callable[..., object]
"""``loop.call_soon_threadsafe``-like: call ``fn(*args)`` on the owner's thread."""
T = TypeVar("T")


class Refusal(NamedTuple):
    """Why a worker refused a frame: a reason code and the text for people."""

    code: RefusalCode
    reason: str


WORKER_DIED = Refusal("internal", "internal error: worker died")


class FrameWorker:
    """What one worker needs to turn a frame payload into a scan, built once."""

    def __init__(self, config: HubConfig) -> None:
        # Imported here: OpenCV takes 0.2 s to load, and only a process that
        # reads frames (a worker, or the hub with ``workers = 0``) needs it.
        from hub.ingest.imagery import BandDetector, frame_detections, height_prior

        self.frame_detections = frame_detections
        origin = config.mission.origin
        imagery = config.imagery
        self.enu = EnuFrame(origin.lat, origin.lon, origin.alt)
        height = origin.alt if imagery.terrain_height is None else imagery.terrain_height
        self.terrain = LevelTerrain(self.enu, height)
        self.detector = BandDetector()
        self.noise = [PoseNoise(**msgspec.structs.asdict(imagery.noise_for(sensor)))
                      for sensor in config.sensors]
        self.max_frame_bytes = config.ingest.max_frame_bytes
        self.max_pixels = imagery.max_pixels
        self.reduce = imagery.reduce
        self.max_range = imagery.max_range_m
        # Blobs carry no class yet: every one may be an airborne object.
        self.height = height_prior(CLASSES[UNKNOWN], imagery.max_object_height_m)

    def process(self, payload: bytes, sensor: int) -> Scan | Refusal:
        """Return the frame's detections as a scan, or why the frame was refused."""
        try:
            frame = decode(payload, Frame, self.max_frame_bytes)
            ground = self.frame_detections(
                frame, self.detector, self.terrain, self.noise[sensor], self.enu,
                max_pixels=self.max_pixels, reduce=self.reduce, max_range=self.max_range,
                height=self.height)
        except PayloadError as exc:
            return Refusal(exc.code, exc.reason)
        n = len(ground.blobs)
        return Scan(t=frame.ts, sensor=sensor, z=np.ascontiguousarray(ground.enu[:, :2]),
                    R=ground.cov, cls=np.full(n, UNKNOWN, np.int16),
                    conf=np.asarray(ground.blobs.score, dtype=np.float64))


_worker: FrameWorker | None = None


def _init_worker(config: HubConfig, lifeline: Connection) -> None:
    """Build this process's ``FrameWorker`` (the pool's initializer); end with the hub."""
    global _worker
    watch_lifeline(lifeline)
    _worker = FrameWorker(config)


def _process(payload: bytes, sensor: int) -> Scan | Refusal:
    """Run in a worker process: the job's outcome."""
    assert _worker is not None, "the pool initializer did not run"
    return _worker.process(payload, sensor)


def _ready() -> int:
    """A no-op that makes the pool start a worker (warm-up); returns its pid."""
    return os.getpid()


class InlineExecutor(Executor):
    """Run each call in the caller's thread: the ``workers = 0`` pool."""

    def __init__(self, worker: FrameWorker) -> None:
        self.worker = worker

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` now (``_process`` on this executor's own worker) and return its future."""
        future: Future[T] = Future()
        try:
            call: Callable[..., Any] = self.worker.process if fn is _process else fn
            future.set_result(call(*args, **kwargs))
        except BaseException as exc:  # the future carries it, as a process pool's would
            future.set_exception(exc)
        return future


@dataclass(frozen=True, slots=True)
class FrameOutcome:
    """What became of one frame job: a scan, a refusal with its reason, or a drop."""

    sensor: int
    topic: str
    size: int
    t_received: float
    scan: Scan | None = None
    refusal: Refusal | None = None
    dropped: bool = False


def start_method() -> str:
    """The multiprocessing start method of the pool: forkserver where there is one."""
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class FramePool:
    """Run frame jobs on worker processes: latest wins per sensor live, waits in replay."""

    def __init__(self, config: HubConfig, *, wait: bool, workers: int | None = None,
                 executor: Executor | None = None, dispatch: Dispatch | None = None) -> None:
        self.config = config
        self.wait = wait
        self.workers = config.imagery.worker_count() if workers is None else workers
        self.queue_per_sensor = config.imagery.queue_per_sensor
        self.in_flight = 0
        self._executor = executor
        self._lifeline: Lifeline | None = None
        self._dispatch = dispatch
        self._pending: dict[int, deque[FrameJob]] = {}
        self._done: list[FrameOutcome] = []
        self._booting = False

    @property
    def ready(self) -> bool:
        """Whether the workers have been started (frames go to them, not to the wait queue)."""
        return self._executor is not None and not self._booting

    @property
    def pending(self) -> int:
        """Jobs waiting for a worker."""
        return sum(len(q) for q in self._pending.values())

    def executor(self) -> Executor:
        """The executor, started on first use (no process before the first frame)."""
        if self._executor is None:
            if self.workers == 0:
                self._executor = InlineExecutor(FrameWorker(self.config))
            else:
                context = multiprocessing.get_context(start_method())
                if isinstance(context, multiprocessing.context.ForkServerContext):
                    # Forked from a server that has imported OpenCV and numpy once.
                    context.set_forkserver_preload([__name__, "hub.ingest.imagery"])
                if self._lifeline is None:
                    self._lifeline = Lifeline()
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=context, initializer=_init_worker,
                    initargs=(self.config, self._lifeline.reader))
        return self._executor

    def warm_up(self) -> None:
        """Start every worker now, so the first frames do not wait for Python to boot."""
        executor = self.executor()
        for _ in range(self.workers):
            executor.submit(_ready)

    async def boot(self) -> None:
        """Warm up off the loop; frames that come meanwhile wait (latest wins per sensor).

        Starting the pool takes seconds on a busy machine (the fork server
        imports OpenCV). Frames must neither wait for it on the loop nor start
        a second pool beside the one being built.
        """
        import asyncio  # the live hub's alone: a replay runs no loop and does without it

        self._booting = True
        try:
            await asyncio.to_thread(self.warm_up)
        except Exception:  # the next frame tries again, and counts what it costs
            log.exception("frame workers did not start")
        finally:
            self._booting = False
        while self._has_room():
            job = self._next_pending()
            if job is None:
                break
            self._start(job)

    def submit(self, job: FrameJob) -> None:
        """Queue ``job``: run it now (wait), start it, or hold it (latest wins)."""
        if self.wait:
            future = self._submit(job)
            if future is not None:
                self._done.append(_outcome(job, future))
            return
        if not self._booting and self._has_room():
            self._start(job)
            return
        queue = self._pending.setdefault(job.sensor, deque())
        if len(queue) >= self.queue_per_sensor:
            self._done.append(_dropped(queue.popleft()))
        queue.append(job)

    def take(self) -> list[FrameOutcome]:
        """Remove and return the outcomes that are ready, in completion order."""
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        """Stop the workers; pending jobs are dropped."""
        for queue in self._pending.values():
            self._done.extend(_dropped(job) for job in queue)
        self._pending.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._lifeline is not None:  # after the shutdown: workers end their jobs first
            self._lifeline.close()
            self._lifeline = None

    def _has_room(self) -> bool:
        """Whether another job may go to the workers now."""
        return self.in_flight < max(self.workers, 1) * JOBS_PER_WORKER

    def _start(self, job: FrameJob) -> None:
        import asyncio  # see boot

        dispatch = self._dispatch or asyncio.get_running_loop().call_soon_threadsafe
        self._dispatch = dispatch
        future = self._submit(job)
        if future is None:
            return
        self.in_flight += 1
        future.add_done_callback(lambda f: _call_on_owner(dispatch, self._finished, job, f))

    def _submit(self, job: FrameJob) -> Future[Scan | Refusal] | None:
        """Send ``job`` to a worker; a broken pool (a worker died) is replaced, the job lost."""
        try:
            return self.executor().submit(_process, job.payload, job.sensor)
        except BrokenExecutor:
            log.error("frame worker pool broken (a worker died): starting a new one; if every "
                      "frame does this, the program that started the hub may lack an "
                      "`if __name__ == '__main__':` guard (forkserver workers import it)")
            self._executor = None
            self._done.append(FrameOutcome(job.sensor, job.topic, len(job.payload),
                                           job.t_received, refusal=WORKER_DIED))
            return None

    def _finished(self, job: FrameJob, future: Future[Scan | Refusal]) -> None:
        """On the owner's thread: record the outcome and give the worker the next job."""
        self.in_flight -= 1
        self._done.append(_outcome(job, future))
        nxt = self._next_pending()
        if nxt is not None:
            self._start(nxt)

    def _next_pending(self) -> FrameJob | None:
        """The oldest pending job of the sensor served longest ago (fair between sensors)."""
        for sensor, queue in self._pending.items():
            if queue:
                job = queue.popleft()
                del self._pending[sensor]  # re-inserted at the end: round robin
                if queue:
                    self._pending[sensor] = queue
                return job
        return None


def _call_on_owner(dispatch: Dispatch, fn: Callable[..., object], *args: object) -> None:
    """Hand ``fn(*args)`` to the owner's thread; a closed loop means the hub is stopping."""
    try:
        dispatch(fn, *args)
    except RuntimeError:
        log.debug("frame result after the event loop closed: discarded")


def _outcome(job: FrameJob, future: Future[Scan | Refusal]) -> FrameOutcome:
    """The outcome of a finished job; a crashed worker costs this frame, not the hub."""
    base = (job.sensor, job.topic, len(job.payload), job.t_received)
    if future.cancelled():  # the pool was closed under it
        return FrameOutcome(*base, dropped=True)
    try:
        result = future.result()
    except Exception as exc:
        log.exception("frame worker failed on %s", job.topic)
        return FrameOutcome(*base, refusal=Refusal("internal",
                                                   f"internal error: {type(exc).__name__}"))
    if isinstance(result, Refusal):
        return FrameOutcome(*base, refusal=result)
    return FrameOutcome(*base, scan=result)


def _dropped(job: FrameJob) -> FrameOutcome:
    return FrameOutcome(job.sensor, job.topic, len(job.payload), job.t_received, dropped=True)
