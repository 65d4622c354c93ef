"""`Pipeline` built in-process from fakes (source, tracker, spotter, worker, sink): the frame loop's
flushes, the order of events, shutdown, and every candidate ending exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from engine.explain.config import ExplainConfig
from engine.explain.worker import ExplainWorker
from engine.pipeline import Pipeline
from engine.types import Candidate, Evidence, Explanation, FaceObservation, Frame, TimePoint

FPS = 30.0
SMALL = np.zeros((4, 6, 3), np.uint8)
LARGE = np.zeros((8, 10, 3), np.uint8)


def frame(index: int, t: float | None = None, image: np.ndarray = SMALL) -> Frame:
    return Frame(index, index / FPS if t is None else t, image)


def face(index: int, t: float = 0.0) -> FaceObservation:
    lm = np.zeros((478, 2), np.float32)
    return FaceObservation(index, t, lm, np.zeros((8, 8), np.uint8), np.eye(2, 3, dtype=np.float32), lm)


def candidate(cid: str, at: int) -> Candidate:
    tp = TimePoint(at, at / FPS)
    return Candidate(cid, "test", tp, tp, tp, "micro", 1.0, ("mouth_corner_L",), face(at), face(at))


class Spotter:
    """Reports one candidate per update listed in ``fire`` and, on flush, one for the open interval
    (any update since the last flush); logs every call."""

    def __init__(self, fire: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.fire = fire
        self.calls: list[str] = []
        self.open: list[int] = []

    def update(self, obs: FaceObservation) -> list[Candidate]:
        self.calls.append(f"update {obs.index}")
        self.open.append(obs.index)
        return [candidate(f"u{obs.index}", obs.index)] if obs.index in self.fire else []

    def flush(self) -> list[Candidate]:
        self.calls.append("flush")
        found = [candidate(f"f{self.open[0]}-{self.open[-1]}", self.open[0])] if self.open else []
        self.open = []
        return found

    def reset(self) -> None:
        self.calls.append("reset")
        self.open = []


class Worker:
    """Records what the pipeline hands over."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.stopped: list[float | None] = []

    def submit(self, c: Candidate) -> bool:
        self.submitted.append(c.candidate_id)
        return True

    def release(self) -> None:
        pass

    def stop(self, drain_s: float | None = None) -> None:
        self.stopped.append(drain_s)

    def stats(self) -> dict[str, Any]:
        return {"queue_depth": 0}


class Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.pngs: dict[str, bytes | None] = {}
        self._lock = threading.Lock()

    def emit(self, event: dict[str, Any], png: bytes | None = None) -> None:
        with self._lock:
            self.events.append(event)
            if event["type"] in ("candidate", "map"):
                self.pngs[event["candidate_id"]] = png

    def close(self) -> None:
        pass

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


def tracker(without_face: set[int] = frozenset()):  # type: ignore[assignment]
    def track(f: Frame) -> FaceObservation | None:
        return None if f.index in without_face else face(f.index, f.t)

    return track


def pipeline(frames: Any, track: Any, spotter: Any, worker: Any, sink: Sink, **kw: Any) -> Pipeline:
    return Pipeline(
        stream="test",
        frames=frames,
        track=track,
        spotter=spotter,
        worker=worker,
        sink=sink,
        reader_stats=lambda: {},
        status_interval_s=3600.0,
        **kw,
    )


def test_pipeline_flushes_on_a_time_gap_a_resolution_change_a_face_loss_and_the_end() -> None:
    frames = [
        *(frame(i) for i in range(3)),
        frame(3, t=2 / FPS + 1.5),  # 1.5 s after frame 2: an outage
        frame(4, t=2 / FPS + 1.5 + 1 / FPS),
        frame(5, t=3.0, image=LARGE),  # a new resolution
        frame(6, t=3.0 + 1 / FPS, image=LARGE),
        frame(7, t=3.0 + 2 / FPS, image=LARGE),  # no face from here ...
        frame(8, t=3.0 + 3 / FPS, image=LARGE),  # ... still none: no second flush
        frame(9, t=3.0 + 4 / FPS, image=LARGE),
    ]
    spotter, worker, sink = Spotter(fire={1}), Worker(), Sink()
    p = pipeline(frames, tracker({7, 8}), spotter, worker, sink, max_gap_s=1.0)
    p.run()
    assert spotter.calls == [
        "update 0", "update 1", "update 2",
        "flush",  # the gap
        "update 3", "update 4",
        "flush",  # the resolution change
        "update 5", "update 6",
        "flush",  # the face left
        "update 9",
        "flush",  # the end
    ]  # fmt: skip
    assert worker.submitted == ["u1", "f0-2", "f3-4", "f5-6", "f9-9"]
    assert worker.stopped == [30.0]
    assert sink.types() == ["status"]  # the fake worker publishes nothing; the last status
    final = sink.events[-1]
    assert (final["frames"], final["candidates"], final["faces_lost"]) == (10, 5, 2)


def test_pipeline_when_a_gap_is_below_max_gap_s_then_the_spotter_goes_on() -> None:
    frames = [frame(0), frame(1, t=0.9), frame(2, t=1.8)]
    spotter = Spotter()
    pipeline(frames, tracker(), spotter, Worker(), Sink(), max_gap_s=1.0).run()
    assert spotter.calls == ["update 0", "update 1", "update 2", "flush"]


class Explainer:
    """Explains every item; every call waits for ``gate`` first."""

    name = "fake"

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def warmup(self) -> None:
        pass

    def explain_batch(self, items: list[Evidence]) -> list[Explanation]:
        self.gate.wait()
        return [Explanation((), "others", "", "fake", "fake") for _ in items]

    def close(self) -> None:
        pass


def evidence(c: Candidate) -> Evidence:
    m = np.zeros((8, 8, 3), np.uint8)
    return Evidence(c, np.zeros((8, 8, 2), np.float32), m, c.candidate_id.encode(), ())


def test_pipeline_with_the_explain_worker_ends_every_candidate_once_after_its_candidate_event() -> None:
    gate = threading.Event()

    def source() -> Iterator[Frame]:  # the worker is held until the frames are all read
        yield from (frame(i) for i in range(40))
        gate.set()

    sink = Sink()
    cfg = ExplainConfig(queue_size=1, policy="drop_newest", batch_size=1, deadline_s=60.0)
    worker = ExplainWorker(Explainer(gate), evidence, sink, cfg, stream="test").start()
    spotter = Spotter(fire={5, 10, 15, 20, 25, 30})
    pipeline(source(), tracker({35}), spotter, worker, sink).run()

    ids = ["u5", "u10", "u15", "u20", "u25", "u30", "f0-34", "f36-39"]
    ends = [e for e in sink.events if e["type"] in ("explanation", "dropped")]
    assert sorted(e["candidate_id"] for e in ends) == sorted(ids)  # each ends exactly once
    position = {(e["type"], e.get("candidate_id")): k for k, e in enumerate(sink.events)}
    for e in ends:  # its candidate event first, published once
        assert position[("candidate", e["candidate_id"])] < position[(e["type"], e["candidate_id"])]
    assert sorted(e["candidate_id"] for e in sink.events if e["type"] == "candidate") == sorted(ids)
    reasons = [e.get("reason") for e in ends if e["type"] == "dropped"]
    # u5 ... u30 come while the worker is held (the face stage is at most 9 frames ahead of the
    # spotter, the source ends at frame 39): it holds one, its queue one, the other four are dropped
    assert reasons.count("queue_full") >= 4 and set(reasons) <= {"queue_full"}
    explained = [e["candidate_id"] for e in ends if e["type"] == "explanation"]
    assert explained and all(sink.pngs[cid] == cid.encode() for cid in explained)  # the stage's map event
    assert sink.events[-1]["type"] == "status" and sink.events[-1]["candidates"] == len(ids)


def test_pipeline_when_stopped_then_a_blocking_source_ends_and_the_spotter_is_flushed() -> None:
    stop = threading.Event()
    seen = threading.Event()

    def source() -> Iterator[Frame]:  # a camera: frames, then nothing until stopped
        yield from (frame(i) for i in range(5))
        stop.wait()

    def track(f: Frame) -> FaceObservation:
        if f.index == 4:
            seen.set()
        return face(f.index, f.t)

    spotter, worker, sink = Spotter(), Worker(), Sink()
    p = pipeline(source(), track, spotter, worker, sink, stop_reader=stop.set)
    runner = threading.Thread(target=p.run)
    runner.start()
    assert seen.wait(10.0)
    p.request_stop()
    runner.join(10.0)
    assert not runner.is_alive()
    assert spotter.calls == [*(f"update {i}" for i in range(5)), "flush"]
    assert worker.submitted == ["f0-4"] and worker.stopped == [30.0]
    assert sink.events[-1]["type"] == "status" and sink.events[-1]["frames"] == 5


def test_pipeline_when_the_tracker_raises_then_error_event_worker_drained_and_error_raised() -> None:
    def track(f: Frame) -> FaceObservation:
        if f.index == 3:
            raise RuntimeError("landmarker died")
        return face(f.index, f.t)

    spotter, worker, sink = Spotter(), Worker(), Sink()
    p = pipeline([frame(i) for i in range(6)], track, spotter, worker, sink)
    with pytest.raises(RuntimeError, match="landmarker died"):
        p.run()
    assert sink.types() == ["error", "status"]
    assert sink.events[0]["where"] == "pipeline" and "landmarker died" in sink.events[0]["message"]
    assert spotter.calls == ["update 0", "update 1", "update 2"]  # no flush after a failure
    assert worker.stopped == [30.0]


def test_pipeline_status_keeps_its_interval_while_the_flow_drains_and_the_final_rate_is_the_runs() -> None:
    """Status events used to stop while the worker drained the last fused maps after the source ended
    (issue #24.7), and the final fps_processed was the rate over that drain. The stage here is the
    real OpenCV TV-L1 on 256x256 pairs (the default flow, which holds no GIL while it runs)."""
    import cv2

    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.integers(0, 255, (256, 256), dtype=np.uint8), (0, 0), 3)
    b = np.roll(a, 1, axis=1)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create() if hasattr(cv2, "optflow") else None
    runs = []

    def slow_stage(c: Candidate) -> Evidence:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:  # at least 1 s of real flow per candidate
            if tvl1 is not None:
                tvl1.calc(a, b, None)
            else:
                cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 10, 7, 1.5, 0)
        runs.append(time.monotonic() - t0)
        return evidence(c)

    sink = Sink()
    cfg = ExplainConfig(queue_size=4, batch_size=1)
    open_gate = threading.Event()
    open_gate.set()
    worker = ExplainWorker(Explainer(open_gate), slow_stage, sink, cfg, stream="test").start()
    p = Pipeline(
        stream="test", frames=[frame(i) for i in range(60)], track=tracker(), spotter=Spotter(fire={5, 10}),
        worker=worker, sink=sink, reader_stats=lambda: {}, status_interval_s=0.25, offline=True,
    )
    p.run()
    statuses = [e for e in sink.events if e["type"] == "status"]
    times = [e["time"] for e in statuses]
    gaps = np.diff(times)
    assert len(runs) == 3 and sum(runs) >= 3.0  # u5, u10 and the final flush: >= 3 s of draining
    assert len(statuses) >= 3.0 / 0.25 - 2 and gaps.max() < 0.25 + 0.5, gaps.round(3).tolist()
    final = statuses[-1]
    assert final["final"] is True and final["frames"] == 60
    loop_rate = 60 / p._loop_s
    assert final["fps_processed"] == pytest.approx(loop_rate, rel=1e-3)
    assert final["fps_processed"] > 3 * 60 / final["uptime_s"]  # the loop's rate, not diluted by the drain
