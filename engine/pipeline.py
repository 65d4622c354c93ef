"""The engine's composition: source → face → spotter → worker (flow + fusion, explainer) → publisher.

Built in two steps (STYLE.md): `build_pipeline(cfg)` makes every stage from the configuration;
`Pipeline.__init__` takes ready collaborators, so tests can pass fakes. The video thread runs the
frame loop (`engine.loop.run_frames`) and never waits on flow or explanation: candidates go to the
worker's bounded queue (its ``candidate`` event is published there and then); the face stage runs a
few frames ahead of it on a helper thread. Files, folders and the demo are analysed offline: there
the video thread waits for room in the worker's queue (back-pressure) instead of dropping.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from engine.config import EngineConfig
from engine.events import EventSink, error_event, status_event
from engine.loop import LoopStats, run_frames
from engine.threads import WorkerThread
from engine.types import Candidate, FaceObservation, Frame
from spotting.base import Spotter

log = logging.getLogger(__name__)


class CandidateWorker(Protocol):
    """What the pipeline hands candidates to (`engine.explain.worker.ExplainWorker`)."""

    def submit(self, candidate: Candidate) -> bool: ...

    def release(self) -> None: ...

    def stop(self, drain_s: float | None = None) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class ClipSink(Protocol):
    """The optional event-clip recorder (`engine.publish.clips.ClipRecorder`), fed on the video thread."""

    def push(self, frame: Frame, obs: FaceObservation | None) -> None: ...

    def add(self, candidate: Candidate) -> str: ...

    def close(self) -> None: ...


def stream_name(spec: str) -> str:
    """A topic-safe stream name derived from a source spec (``demo``, ``cam0``, file stem, host)."""
    if spec == "demo":
        return "demo"
    if spec.isdigit():
        return f"cam{spec}"
    m = re.match(r"^[a-z]+s?://(?:[^@/]*@)?([^/:?]+)", spec)
    base = m.group(1) if m else re.sub(r"\.[^./\\]+$", "", re.split(r"[/\\]", spec.rstrip("/\\"))[-1])
    return re.sub(r"[^A-Za-z0-9_-]+", "_", base).strip("_") or "stream"


class Pipeline:
    """Runs frames through the frame loop (`engine.loop.run_frames`) and owns shutdown.

    ``frames``: an iterable of `Frame` (the reader); ``track``: Frame → FaceObservation | None;
    ``spotter``: the `Spotter`; ``worker``: the `CandidateWorker`; ``sink``: the `EventSink`;
    ``reader_stats`` returns the reader's fps_in, frames_dropped and reconnects; ``stop_reader``
    ends the frames (`request_stop`); ``clips``: the optional `ClipSink`; ``max_gap_s``: a larger
    gap between two frames' ``t`` flushes the spotter. ``frame_name``: frame index → image file name
    (frame folders), added to each candidate's onset/apex/offset. ``run_info``: the configuration and versions
    (`engine.runinfo`), sent once in the ``run`` field of the first status event; the last status
    event carries ``final: true``, so a reader can tell a finished journal from one cut short.
    ``offline`` (files, folders, the demo): at the end of the source the worker explains every
    waiting candidate (no drain limit unless a stop is requested). Status events go on every
    ``status_interval_s`` until the worker has drained; the final one's ``fps_processed`` is the
    whole run's rate (frames / seconds of the frame loop), the others' the rate since the last one.
    """

    def __init__(
        self,
        *,
        stream: str,
        frames: Iterable[Frame],
        track: Callable[[Frame], FaceObservation | None],
        spotter: Spotter,
        worker: CandidateWorker,
        sink: EventSink,
        reader_stats: Callable[[], dict[str, float]],
        status_interval_s: float = 2.0,
        drain_s: float = 30.0,
        stop_reader: Callable[[], None] | None = None,
        clips: ClipSink | None = None,
        max_gap_s: float = 1.0,
        run_info: dict[str, Any] | None = None,
        offline: bool = False,
        frame_name: Callable[[int], str] | None = None,
    ) -> None:
        self.stream = stream
        self.frames = frames
        self.track = track
        self.spotter = spotter
        self.worker = worker
        self.sink = sink
        self.reader_stats = reader_stats
        self.status_interval_s = status_interval_s
        self.drain_s = drain_s
        self.stop_reader = stop_reader
        self.max_gap_s = max_gap_s
        self.clips = clips
        self.run_info = run_info
        self.offline = offline
        self._stop_requested = False
        self._loop_s: float | None = None  # the frame loop's duration, once it ended
        self.frame_name = frame_name
        self.counters = LoopStats()
        self.kinds: Counter[str] = Counter()  # candidates by kind (micro/macro), for the run's summary
        self.spans: list[tuple[int, int, str]] | None = None  # (onset, offset, kind) kept when not None
        self.started = time.monotonic()
        self._status_thread = WorkerThread("status", self._status_loop)
        self._last = (time.monotonic(), 0)

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The figures of a `status` event (contract fields first, then extras)."""
        now = time.monotonic()
        last_t, last_frames = self._last
        frames = self.counters.frames
        dt = now - last_t
        fps_processed = (frames - last_frames) / dt if dt > 0 else 0.0
        self._last = (now, frames)
        if self._loop_s is not None:  # the frame loop ended: the whole run's rate
            fps_processed = frames / self._loop_s if self._loop_s > 0 else 0.0
        rs = self.reader_stats()
        ws = self.worker.stats()
        return {
            "fps_in": round(float(rs.get("fps_in", 0.0)), 3),
            "fps_processed": round(fps_processed, 3),
            "frames_dropped": int(rs.get("frames_dropped", 0)),
            "faces_lost": self.counters.faces_lost,
            "queue_depth": int(ws.get("queue_depth", 0)),
            "reconnects": int(rs.get("reconnects", 0)),
            "uptime_s": round(now - self.started, 3),
            "stream_t": round(self.counters.last_t, 6),
            "frame_queue_depth": int(rs.get("frame_queue_depth", 0)),
            "frames_invalid": int(rs.get("frames_invalid", 0)),
            "resolution_changes": int(rs.get("resolution_changes", 0)),
            "last_outage_s": round(float(rs.get("last_outage_s", 0.0)), 3),
            "frames": frames,
            "candidates": self.counters.candidates,
            "worker": ws,
            "publish": self.sink.stats().to_json() if hasattr(self.sink, "stats") else {},
            **({"clips": dataclasses.asdict(self.clips.stats())} if self.clips is not None else {}),
            # candidates dropped per suppressor (spotting/suppress.py) and kept
            "spotting": self.spotter.stats() if hasattr(self.spotter, "stats") else {},
        }

    def _status_loop(self) -> None:
        while not self._status_thread.stop_event.wait(self.status_interval_s):
            try:
                self.sink.emit(status_event(self.stream, **self.status()))
            except Exception:  # a status failure must never stop the stream
                log.exception("status event failed")

    # -- run ----------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop reading (SIGINT/SIGTERM path); frames in flight finish, then the worker drains for
        ``drain_s`` at most."""
        self._stop_requested = True
        self.worker.release()  # a video thread waiting for room (back-pressure) goes on
        if self.stop_reader is not None:
            self.stop_reader()

    def _submit(self, candidates: list[Candidate]) -> None:
        for c in candidates:
            self.kinds[c.kind] += 1
            if self.spans is not None:
                self.spans.append((c.onset.frame, c.offset.frame, c.kind))
            if self.frame_name is not None:  # a frame folder: name each point's image file too
                name = self.frame_name
                c = dataclasses.replace(
                    c, **{p: dataclasses.replace(getattr(c, p), image=name(getattr(c, p).frame))
                          for p in ("onset", "apex", "offset")}
                )
            if self.clips is not None:
                c = dataclasses.replace(c, clip=self.clips.add(c))
            self.worker.submit(c)

    def run(self) -> None:
        """Process every frame until the source ends or a stop is requested, then shut down cleanly."""
        if self.run_info is not None:
            self.sink.emit(status_event(self.stream, **self.status(), run=self.run_info))
        self._status_thread.start()
        started = time.monotonic()
        try:
            run_frames(
                self.frames,
                self.track,
                self.spotter,
                self._submit,
                max_gap_s=self.max_gap_s,
                on_frame=None if self.clips is None else self.clips.push,
                stats=self.counters,
            )
        except Exception as exc:
            self.sink.emit(error_event(self.stream, "pipeline", f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            self._loop_s = time.monotonic() - started
            # status events go on while the worker drains (fused maps of the last candidates)
            self.worker.stop(math.inf if self.offline and not self._stop_requested else self.drain_s)
            if self.clips is not None:
                self.clips.close()
            self._status_thread.stop(5.0)
            self.sink.emit(status_event(self.stream, **self.status(), final=True))


def build_pipeline(
    cfg: EngineConfig, sink: EventSink | None = None
) -> tuple[Pipeline, list[Callable[[], None]]]:
    """Make every stage from ``cfg``; returns the pipeline and the close callbacks (in order).

    The face model and the source are checked first so user mistakes fail fast with one line,
    before any heavy import or socket bind. What was made before a failure is closed again.
    """
    closers: list[Callable[[], None]] = []
    try:
        return _build(cfg, sink, closers)
    except BaseException:
        close_all(closers)
        raise


def close_all(closers: list[Callable[[], None]]) -> bool:
    """Run every closer in reverse order, each on its own; False when any of them failed."""
    ok = True
    for close in reversed(closers):
        try:
            close()
        except Exception:
            log.exception("error while closing")
            ok = False
    closers.clear()
    return ok


def _build(
    cfg: EngineConfig, sink: EventSink | None, closers: list[Callable[[], None]]
) -> tuple[Pipeline, list[Callable[[], None]]]:
    from engine import flow

    # cheap checks first, so a user mistake costs no mediapipe/torch import and binds no socket
    from engine.explain import EXPLAINERS
    from engine.explain.worker import ExplainWorker, build_explainer
    from engine.face import create_tracker
    from engine.face.model import resolve_face_model
    from engine.fusion import build_stage
    from engine.publish.journal import check_appendable
    from engine.runinfo import run_info
    from engine.sources import FrameReader, open_source
    from spotting import create_spotter

    EXPLAINERS.resolve_name(cfg.explain.name)
    flow.FLOW_BACKENDS.resolve_name(cfg.flow.name)
    flow.check_spotting_names(cfg.spotting)
    resolve_face_model(cfg.face.model or None)
    if cfg.publish.journal:
        check_appendable(Path(cfg.publish.journal))
    source = open_source(cfg.source, cfg.demo)
    closers.append(source.close)
    stream = cfg.source.stream or stream_name(cfg.source.spec)
    fps = cfg.source.fps or source.fps or 30.0
    clips = None  # optional event clips; made before the tracker so a bad folder fails fast
    if cfg.clips.enabled:
        from engine.publish.clips import ClipRecorder

        cc = cfg.clips
        clips = ClipRecorder(
            cc.dir,
            fps,
            pre_s=cc.pre_s,
            post_s=cc.post_s,
            max_buffer_s=cc.max_buffer_s,
            map_wait_s=cc.map_wait_s,
            max_age_days=cc.max_age_days,
            max_bytes=cc.max_bytes,
        )
        closers.append(clips.close)

    tracker = create_tracker(cfg.face)
    closers.append(tracker.close)

    stage = build_stage(cfg.flow, cfg.fusion, on_map=None if clips is None else clips.set_map)
    explainer = build_explainer(cfg.explain)
    if sink is None:
        from engine.publish import ZmqPublisher

        sink = ZmqPublisher(cfg.publish)
    closers.append(sink.close)

    # offline sources (file, folder, demo) never drop a candidate: the video thread waits instead
    worker = ExplainWorker(
        explainer, stage, sink, cfg.explain, stream=stream, block_when_full=not source.live
    ).start()
    closers.append(worker.stop)  # no-op after the pipeline's own drain; closes the explainer
    spot_flow = flow.for_spotting(cfg.spotting.flow, cfg.spotting.flow_params)
    spotter = create_spotter(cfg.spotting, stream, fps, flow=spot_flow)
    reader = FrameReader(
        source,
        queue_size=cfg.source.queue_size,
        policy=cfg.source.policy,
        max_frames=cfg.source.max_frames,
        realtime=cfg.source.realtime,
    )

    def on_source_event(where: str, message: str) -> None:
        sink.emit(error_event(stream, where, message))

    if hasattr(source, "on_event"):
        source.on_event = on_source_event

    return Pipeline(
        stream=stream,
        frames=reader,
        track=tracker.process,
        spotter=spotter,
        worker=worker,
        sink=sink,
        reader_stats=reader.stats,
        status_interval_s=cfg.publish.status_interval_s,
        drain_s=cfg.explain.drain_s,
        stop_reader=reader.stop,
        clips=clips,
        run_info=run_info(cfg.model_dump(mode="json")),
        offline=not source.live,
        frame_name=getattr(source, "frame_name", None),
    ), closers
