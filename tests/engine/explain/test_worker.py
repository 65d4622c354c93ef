"""The explanation worker: every candidate ends in exactly one explanation or dropped event.

A recording sink, the real `rules` explainer, and fake explainers that block on an `Event` (so the
queue fills deterministically), sleep, raise, or hang. Every test checks the accounting: one
``candidate`` event per candidate, then exactly one ``explanation`` or ``dropped``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from engine.errors import UnknownNameError
from engine.explain.config import ExplainConfig
from engine.explain.rules import RulesExplainer
from engine.explain.worker import ExplainWorker, ProcessExplainer, build_explainer
from engine.regions import REGION_NAMES
from engine.types import Candidate, Evidence, Explanation, FaceObservation, RegionStat, TimePoint
from tests.helpers import check_accounting

# A smile: both mouth corners up and outward, everything else still.
SMILE = tuple(
    RegionStat(n, 1.5, 2.0, 300.0, 0.95, 0.8 if n.endswith("_L") else -0.8, -1.2)
    if n.startswith("mouth_corner")
    else RegionStat(n, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0)
    for n in REGION_NAMES
)


def candidate(cid: str) -> Candidate:
    crop = np.zeros((8, 8), np.uint8)
    lm = np.zeros((478, 2), np.float32)
    face = FaceObservation(0, 0.0, lm, crop, np.eye(2, 3, dtype=np.float32), lm)
    return Candidate(
        cid,
        "s",
        TimePoint(0, 0.0),
        TimePoint(2, 0.1),
        TimePoint(4, 0.2),
        "micro",
        1.0,
        ("mouth",),
        face,
        face,
    )


def prepare(c: Candidate) -> Evidence:
    return Evidence(
        c,
        np.zeros((8, 8, 2), np.float32),
        np.zeros((8, 8, 3), np.uint8),
        f"png-{c.candidate_id}".encode(),
        SMILE,
    )


class RecordingSink:
    """Thread-safe list of (event, png) in emission order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[dict[str, Any], bytes | None]] = []

    def emit(self, event: dict[str, Any], png: bytes | None = None) -> None:
        with self.lock:
            self.events.append((event, png))

    def close(self) -> None:
        pass

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e, _ in self.events]

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.all() if e["type"] == type_]

    def ended(self) -> int:
        """How many candidates have ended so far (no accounting check: jobs may be in flight)."""
        return sum(1 for e in self.all() if e["type"] in ("explanation", "dropped"))

    def outcome(self) -> dict[str, str]:
        """candidate id → "explanation" or the drop reason; also checks the accounting."""
        evs = self.all()
        check_accounting(evs)
        return {
            e["candidate_id"]: e.get("reason", e["type"])
            for e in evs
            if e["type"] in ("explanation", "dropped")
        }

    def png_of(self, cid: str) -> bytes | None:
        """The fused map of ``cid``'s ``map`` event (None without one); the candidate event has none."""
        with self.lock:
            cand = next(p for e, p in self.events if e["type"] == "candidate" and e["candidate_id"] == cid)
            assert cand is None
            return next((p for e, p in self.events if e["type"] == "map" and e["candidate_id"] == cid), None)


class GateExplainer:
    """The rules explainer behind a gate: ``explain_batch`` waits for ``release`` (at most 10 s),
    sleeps ``delay``, records the batch, raises for candidate ids in ``fail``."""

    name = "gate"

    def __init__(self, delay: float = 0.0, open_gate: bool = False, fail: dict[str, Exception] | None = None):
        self.entered = threading.Event()
        self.release = threading.Event()
        if open_gate:
            self.release.set()
        self.delay = delay
        self.fail = fail or {}
        self.batches: list[list[str]] = []
        self.calls: list[str] = []
        self.rules = RulesExplainer()

    def warmup(self) -> None:
        self.calls.append("warmup")

    def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]:
        ids = [ev.candidate.candidate_id for ev in items]
        self.calls.append("explain")
        self.batches.append(ids)
        self.entered.set()
        self.release.wait(10.0)
        time.sleep(self.delay)
        for cid in ids:
            if cid in self.fail:
                raise self.fail[cid]
        return self.rules.explain_batch(items)

    def close(self) -> None:
        self.calls.append("close")


def wait_for(pred, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def cfg(**kw: Any) -> ExplainConfig:
    return ExplainConfig(**{"drain_s": 5.0, "stop_grace_s": 2.0, **kw})


@pytest.mark.parametrize(
    ("policy", "kept", "dropped"),
    [("drop_newest", ["c1", "c2"], ["c3", "c4", "c5"]), ("drop_oldest", ["c4", "c5"], ["c1", "c2", "c3"])],
)
def test_worker_when_queue_overflows(policy, kept, dropped) -> None:
    sink, ex = RecordingSink(), GateExplainer()
    w = ExplainWorker(ex, prepare, sink, cfg(queue_size=2, policy=policy)).start()
    assert w.submit(candidate("c0"))
    ex.entered.wait(5)  # c0 is in the explainer; the queue is empty
    took = []
    for i in range(1, 6):
        t0 = time.perf_counter()
        accepted = w.submit(candidate(f"c{i}"))
        took.append(time.perf_counter() - t0)
        assert accepted == (policy == "drop_oldest" or f"c{i}" in kept)
    assert max(took) < 0.05  # submit never waits for the blocked explainer
    # the overflow is published at once, while the explainer is still blocked
    assert sorted(e["candidate_id"] for e in sink.of("dropped")) == dropped
    assert w.stats()["queue_depth"] == 2
    ex.release.set()
    w.stop(drain_s=5.0)
    out = sink.outcome()
    assert out == {
        "c0": "explanation",
        **dict.fromkeys(kept, "explanation"),
        **dict.fromkeys(dropped, "queue_full"),
    }
    assert all(sink.png_of(c) is None for c in dropped)
    assert all(sink.png_of(c) == f"png-{c}".encode() for c in ["c0", *kept])
    st = w.stats()
    assert (st["explained"], st["dropped"]["queue_full"], st["queue_depth"], st["submitted"]) == (3, 3, 0, 6)
    assert ex.batches == [["c0"], [kept[0]], [kept[1]]]


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_worker_when_jobs_outlive_their_deadline() -> None:
    sink, ex, clock = RecordingSink(), GateExplainer(), FakeClock()
    w = ExplainWorker(ex, prepare, sink, cfg(deadline_s=1.0), clock=clock).start()
    w.submit(candidate("c0"))
    ex.entered.wait(5)
    clock.t = 0.5
    w.submit(candidate("c1"))
    w.submit(candidate("c2"))
    clock.t = 1.2  # c1, c2 waited 0.7 s: still within the deadline ...
    w.submit(candidate("c3"))
    clock.t = 2.0  # ... but c1, c2 are 1.5 s old when dequeued, c3 only 0.8 s
    ex.release.set()
    w.stop()
    assert sink.outcome() == {"c0": "explanation", "c1": "timeout", "c2": "timeout", "c3": "explanation"}
    detail = next(e["detail"] for e in sink.of("dropped") if e["candidate_id"] == "c1")
    assert "1.500 s" in detail and "deadline 1.0 s" in detail
    assert sink.png_of("c1") is None
    lat = {e["candidate_id"]: e["latency_ms"] for e in sink.of("explanation")}
    assert lat == {"c0": 2000.0, "c3": 800.0}  # submitted (decided) at t=0 resp. t=1.2, explained at t=2


def test_worker_when_the_explainer_raises() -> None:
    sink = RecordingSink()
    ex = GateExplainer(
        open_gate=True, fail={"c1": RuntimeError("CUDA out of memory"), "c3": TimeoutError("slow")}
    )
    w = ExplainWorker(ex, prepare, sink, cfg()).start()
    for i in range(5):
        w.submit(candidate(f"c{i}"))
    wait_for(lambda: sink.ended() == 5)
    assert w.alive
    w.stop()
    assert sink.outcome() == {
        "c0": "explanation",
        "c1": "error",
        "c2": "explanation",
        "c3": "timeout",
        "c4": "explanation",
    }
    errors = sink.of("error")
    assert [(e["where"], e["stream"]) for e in errors] == [("explain", "s"), ("explain", "s")]
    assert "RuntimeError: CUDA out of memory" in errors[0]["message"]
    # the worker thread's own events, in its order (candidate events come from the submitting thread)
    types = [(e["type"], e.get("candidate_id")) for e in sink.all() if e["type"] != "candidate"]
    i = types.index(("error", None))
    assert types[i - 1] == ("map", "c1") and types[i + 1] == ("dropped", "c1")
    assert w.stats()["errors"] == 2 and w.stats()["dropped"] == {
        "queue_full": 0,
        "timeout": 1,
        "shutdown": 0,
        "error": 1,
    }


def test_worker_when_prepare_raises() -> None:
    def flaky(c: Candidate) -> Evidence:
        if c.candidate_id == "c1":
            raise ValueError("crops of different shapes")
        return prepare(c)

    sink = RecordingSink()
    w = ExplainWorker(RulesExplainer(), flaky, sink, cfg()).start()
    for i in range(3):
        w.submit(candidate(f"c{i}"))
    w.stop()
    assert sink.outcome() == {"c0": "explanation", "c1": "error", "c2": "explanation"}
    (err,) = sink.of("error")
    assert err["where"] == "flow" and "c1" in err["message"] and "crops of different shapes" in err["message"]
    assert sink.png_of("c1") is None


def test_worker_when_the_explainer_returns_the_wrong_count() -> None:
    class Short(GateExplainer):
        def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]:
            return super().explain_batch(items)[:-1]

    sink = RecordingSink()
    w = ExplainWorker(Short(open_gate=True), prepare, sink, cfg()).start()
    w.submit(candidate("c0"))
    w.stop()
    assert sink.outcome() == {"c0": "error"}
    assert "0 explanations for 1 items" in sink.of("error")[0]["message"]


def test_worker_batches_waiting_jobs() -> None:
    sink, ex = RecordingSink(), GateExplainer()
    w = ExplainWorker(ex, prepare, sink, cfg(batch_size=4)).start()
    w.submit(candidate("c0"))
    ex.entered.wait(5)
    for i in range(1, 6):
        w.submit(candidate(f"c{i}"))
    ex.release.set()
    w.stop()
    assert ex.batches == [["c0"], ["c1", "c2", "c3", "c4"], ["c5"]]
    assert set(sink.outcome().values()) == {"explanation"}
    explained = sink.of("explanation")
    assert all(e["explainer"] == "rules" and e["emotion"] == "positive" for e in explained)
    assert [a["au"] for a in explained[0]["aus"]] == [12]
    assert w.stats()["mean_batch"] == 2.0 and w.stats()["batches"] == 3


def test_worker_when_stopped_with_pending_jobs_and_a_slow_model() -> None:
    sink, ex = RecordingSink(), GateExplainer(delay=0.1, open_gate=True)
    w = ExplainWorker(ex, prepare, sink, cfg()).start()
    for i in range(8):
        w.submit(candidate(f"c{i}"))
    ex.entered.wait(5)
    t0 = time.monotonic()
    w.stop(drain_s=0.25)
    took = time.monotonic() - t0
    assert took < 0.25 + 0.1 + 0.3  # drain time + the job in progress (+ scheduling slack)
    out = sink.outcome()
    assert len(out) == 8
    assert 1 <= list(out.values()).count("explanation") <= 5
    assert set(out.values()) == {"explanation", "shutdown"}
    assert not w.alive and ex.calls[0] == "warmup" and ex.calls[-1] == "close"
    assert not w.submit(candidate("late"))  # after stop: published and dropped at once
    assert sink.outcome()["late"] == "shutdown"


def test_worker_when_stopped_while_the_model_hangs() -> None:
    sink, ex = RecordingSink(), GateExplainer()  # the gate stays shut: a hung model
    w = ExplainWorker(ex, prepare, sink, cfg(stop_grace_s=0.2)).start()
    for i in range(3):
        w.submit(candidate(f"c{i}"))
    ex.entered.wait(5)
    t0 = time.monotonic()
    w.stop(drain_s=0.1)
    assert time.monotonic() - t0 < 0.1 + 0.2 + 0.3
    assert sink.outcome() == dict.fromkeys(["c0", "c1", "c2"], "shutdown")
    n = len(sink.all())
    ex.release.set()  # the model returns after all: c0 must not end a second time
    wait_for(lambda: not w.alive)
    assert len(sink.all()) == n and w.stats()["explained"] == 0


def test_worker_when_stopped_before_start() -> None:
    sink = RecordingSink()
    w = ExplainWorker(RulesExplainer(), prepare, sink, cfg())
    w.submit(candidate("c0"))
    w.stop()
    assert sink.outcome() == {"c0": "shutdown"}


def test_worker_when_warmup_fails_it_still_explains() -> None:
    class ColdExplainer(GateExplainer):
        def warmup(self) -> None:
            raise OSError("model folder missing")

    sink = RecordingSink()
    w = ExplainWorker(ColdExplainer(open_gate=True), prepare, sink, cfg(), stream="cam0").start()
    w.submit(candidate("c0"))
    w.stop()
    (err,) = sink.of("error")
    assert (err["where"], err["stream"]) == ("explain", "cam0") and "warm-up failed" in err["message"]
    assert sink.outcome() == {"c0": "explanation"}


def test_worker_timing_counts_from_the_offset_frame_and_adds_up() -> None:
    def slow_prepare(c: Candidate) -> Evidence:
        time.sleep(0.05)  # flow + fusion: part of the latency now
        return prepare(c)

    sink = RecordingSink()
    w = ExplainWorker(GateExplainer(delay=0.03, open_gate=True), slow_prepare, sink, cfg()).start()
    now = time.monotonic()
    w.submit(dataclasses.replace(candidate("c0"), offset_arrived=now - 0.2, decided=now - 0.1))
    w.stop()
    (e,) = sink.of("explanation")
    types = [ev["type"] for ev in sink.all()]
    assert types == ["candidate", "map", "explanation"]  # when, then the map, then what
    t = e["timing_ms"]
    assert e["latency_ms"] == t["since_offset"] >= 200 + 50 + 30
    assert 99.0 <= t["spotter"] <= 101.0
    assert t["since_offset"] - t["since_decision"] == pytest.approx(t["spotter"], abs=0.01)
    assert t["flow"] == 0.0 and t["fusion"] >= 50.0 and t["explain"] >= 30.0  # a fake stage: no flow measured
    parts = t["queue"] + t["flow"] + t["fusion"] + t["explain"]
    assert parts <= t["since_decision"] <= parts + 20.0
    assert w.stats()["latency_p50_ms"] == e["latency_ms"] and w.stats()["prepare_ms_p50"] >= 50.0


def test_worker_stats_with_the_rules_explainer() -> None:
    sink = RecordingSink()
    w = ExplainWorker(RulesExplainer(), prepare, sink, cfg(queue_size=64, latency_window=8)).start()
    for i in range(40):
        w.submit(candidate(f"c{i}"))
    w.stop()
    st = w.stats()
    assert set(sink.outcome().values()) == {"explanation"}
    assert st["explained"] == 40 and st["dropped_total"] == 0 and st["queue_depth"] == 0
    assert 0 <= st["latency_p50_ms"] <= st["latency_p95_ms"] < 150.0
    assert st["explain_ms_p50"] < 20.0
    assert len(w._latency_ms) == 8  # a bounded window


@pytest.mark.slow
def test_process_mode_runs_the_explainer_in_a_child() -> None:
    ex = build_explainer(ExplainConfig(mode="process"))
    assert isinstance(ex, ProcessExplainer)
    sink = RecordingSink()
    w = ExplainWorker(ex, prepare, sink, cfg()).start()
    for i in range(3):
        w.submit(candidate(f"c{i}"))
    w.stop()
    assert set(sink.outcome().values()) == {"explanation"}
    expected = RulesExplainer().explain_regions(SMILE)
    assert all(e["text"] == expected.text and e["explainer"] == "rules" for e in sink.of("explanation"))
    assert ex.pid is None  # closed with the worker


class HangingExplainer(RulesExplainer):
    """Hangs (for a minute) on candidates whose id starts with ``hang``; used in a child process."""

    name = "hanging"

    def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]:
        if any(ev.candidate.candidate_id.startswith("hang") for ev in items):
            time.sleep(60)
        return super().explain_batch(items)


@pytest.mark.slow
def test_process_mode_kills_a_hung_model_and_lives_on() -> None:
    ex = ProcessExplainer("tests.engine.explain.test_worker:HangingExplainer", timeout_s=0.5)
    sink = RecordingSink()
    w = ExplainWorker(ex, prepare, sink, cfg()).start()
    w.submit(candidate("hang-0"))
    w.submit(candidate("ok-1"))
    w.stop()
    assert sink.outcome() == {"hang-0": "timeout", "ok-1": "explanation"}
    assert "took longer than 0.5 s" in sink.of("error")[0]["message"]


def test_process_mode_rejects_an_unknown_explainer() -> None:
    with pytest.raises(UnknownNameError, match=r"choose one of: .*rules"):
        build_explainer(ExplainConfig(name="nope", mode="process"))
