"""Event contract v2 (DESIGN.md, README): builders for every event type, and `EventSink`, where events go.

Each builder returns the JSON object without ``seq``; the publisher stamps ``seq`` when it sends,
so the number is per-publisher and gap-free. `EventSink` lives here, in the base layer, so the
stages that emit events (explain worker, pipeline) need nothing of the publish stage that
implements it (`engine.publish.ZmqPublisher`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from engine.types import Candidate, Explanation

SCHEMA = "mellm.event/2"
TYPES = ("candidate", "map", "explanation", "dropped", "status", "error")
DROP_REASONS = ("queue_full", "timeout", "shutdown", "error")


class EventSink(Protocol):
    """Where events go. ``emit`` is thread-safe, never drops silently, and stamps ``seq``.

    ``png`` is the fused map sent as the third message frame of a ``map`` event.
    """

    def emit(self, event: dict[str, Any], png: bytes | None = None) -> None: ...

    def close(self) -> None: ...


def make_event(type_: str, stream: str, **fields: Any) -> dict[str, Any]:
    """The common fields plus ``fields``; ``type_`` must be one of `TYPES`."""
    if type_ not in TYPES:
        raise ValueError(f"event type must be one of {TYPES}, got {type_!r}")
    return {
        "schema": SCHEMA,
        "type": type_,
        "stream": stream,
        "event_id": uuid.uuid4().hex,
        "time": time.time(),
        **fields,
    }


def topic(event: dict[str, Any]) -> bytes:
    """``mellm.<type>.<stream>`` as UTF-8, the first message frame."""
    return f"mellm.{event['type']}.{event['stream']}".encode()


def candidate_event(c: Candidate) -> dict[str, Any]:
    return make_event(
        "candidate",
        c.stream,
        candidate_id=c.candidate_id,
        onset=c.onset.to_json(),
        apex=c.apex.to_json(),
        offset=c.offset.to_json(),
        kind=c.kind,
        score=round(float(c.score), 6),
        regions=list(c.regions),
    )


@dataclass(frozen=True, slots=True)
class Timing:
    """Where a candidate's time went, in seconds of one monotonic clock (None: that step did not run).

    ``arrived``: its offset frame entered the engine; ``decided``: the spotter closed it; ``started``:
    the worker began its flow; ``flow_s``, ``fusion_s``, ``explain_s``: durations of those steps
    (``explain_s`` is the whole explainer call, a batch included).
    """

    arrived: float
    decided: float
    started: float | None = None
    flow_s: float | None = None
    fusion_s: float | None = None
    explain_s: float | None = None

    def to_json(self, now: float) -> dict[str, float | None]:
        """The ``timing_ms`` object of an outcome event published at ``now`` (README's event table)."""

        def ms(v: float | None) -> float | None:
            return None if v is None else round(1000 * max(0.0, v), 3)

        return {
            "since_offset": ms(now - self.arrived),
            "since_decision": ms(now - self.decided),
            "spotter": ms(self.decided - self.arrived),
            "queue": ms((now if self.started is None else self.started) - self.decided),
            "flow": ms(self.flow_s),
            "fusion": ms(self.fusion_s),
            "explain": ms(self.explain_s),
        }


def map_event(c: Candidate) -> dict[str, Any]:
    """The fused map of ``c`` follows as the third message frame (PNG)."""
    return make_event("map", c.stream, candidate_id=c.candidate_id)


def explanation_event(c: Candidate, e: Explanation, timing_ms: dict[str, float | None]) -> dict[str, Any]:
    """``latency_ms`` is ``timing_ms["since_offset"]``: offset frame in → this event out."""
    extra = {"clip": c.clip} if c.clip else {}
    return make_event(
        "explanation",
        c.stream,
        candidate_id=c.candidate_id,
        aus=[a.to_json() for a in e.aus],
        emotion=e.emotion,
        emotion_detail=e.emotion_detail,
        text=e.text,
        explainer=e.explainer,
        latency_ms=timing_ms["since_offset"],
        timing_ms=timing_ms,
        **extra,
    )


def dropped_event(
    c: Candidate, reason: str, detail: str = "", timing_ms: dict[str, float | None] | None = None
) -> dict[str, Any]:
    if reason not in DROP_REASONS:
        raise ValueError(f"drop reason must be one of {DROP_REASONS}, got {reason!r}")
    extra = {} if timing_ms is None else {"latency_ms": timing_ms["since_offset"], "timing_ms": timing_ms}
    return make_event("dropped", c.stream, candidate_id=c.candidate_id, reason=reason, detail=detail, **extra)


def status_event(stream: str, **figures: Any) -> dict[str, Any]:
    """``figures``: fps_in, fps_processed, frames_dropped, faces_lost, queue_depth, reconnects, uptime_s.

    Extra figures may follow the contract's ones.
    """
    return make_event("status", stream, **figures)


def error_event(stream: str, where: str, message: str) -> dict[str, Any]:
    return make_event("error", stream, where=where, message=message)
