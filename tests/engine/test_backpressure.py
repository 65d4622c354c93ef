"""Files, folders and the demo are analysed offline: a source that outruns a slow worker loses no
candidate (the video thread waits for room; live sources keep their drop
policy, tests/engine/explain/test_worker.py).

The real pipeline (`build_pipeline`: demo source, MediaPipe, the spotter, DIS flow and fusion, the
worker) with a slow explainer behind a one-job queue: its first call holds until the third candidate
event is out (one job in the explainer, one queued, the third submit must wait), so the queue is
full however slowly the loaded machine runs the frames.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from engine.config import load_config
from engine.explain import EXPLAINERS
from engine.explain.rules import RulesExplainer
from engine.pipeline import build_pipeline, close_all
from engine.types import Evidence, Explanation
from tests.engine.explain.test_worker import RecordingSink
from tests.helpers import check_accounting

THIRD_CANDIDATE = threading.Event()


class SlowExplainer(RulesExplainer):
    """The rules explainer whose first call waits for the third candidate event (60 s at most), then
    0.5 s more, so the third submit finds the one-job queue full."""

    name = "slow-rules"

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.calls = 0

    def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]:
        self.calls += 1
        if self.calls == 1:
            THIRD_CANDIDATE.wait(60.0)
            time.sleep(0.5)
        return super().explain_batch(items)


class CountingSink(RecordingSink):
    def emit(self, event: dict[str, Any], png: bytes | None = None) -> None:
        super().emit(event, png)
        if len(self.of("candidate")) >= 3:
            THIRD_CANDIDATE.set()


@pytest.fixture
def slow_explainer() -> Iterator[str]:
    EXPLAINERS.register("slow-rules", SlowExplainer)
    try:
        yield "slow-rules"
    finally:
        EXPLAINERS._entries.pop("slow-rules", None)


@pytest.mark.slow
def test_a_demo_source_that_outruns_a_slow_worker_loses_no_candidate(slow_explainer: str) -> None:
    cfg = load_config(None, {
        "source.spec": "demo", "demo.duration_s": 12, "demo.events": 4, "demo.seed": 3,
        "explain.name": slow_explainer, "explain.queue_size": 1, "flow.name": "dis",
    })
    THIRD_CANDIDATE.clear()
    sink = CountingSink()
    pipeline, closers = build_pipeline(cfg, sink)
    try:
        pipeline.run()
    finally:
        close_all(closers)
    outcome = check_accounting(sink.all())
    worker = pipeline.worker.stats()
    assert THIRD_CANDIDATE.is_set(), "too few candidates to fill a one-job queue"
    assert worker["backpressure_waits"] >= 1 and worker["backpressure_s"] > 0  # the video thread waited ...
    assert set(outcome.values()) == {"explanation"}  # ... and no candidate was dropped
    assert worker["dropped_total"] == 0 and worker["explained"] == len(outcome)
