"""Event contract v1 (DESIGN.md): builders for every event type, and `EventSink`, where events go.

Each builder returns the JSON object without ``seq``; the publisher stamps ``seq`` when it sends,
so the number is per-publisher and gap-free. `EventSink` lives here, in the base layer, so the
stages that emit events (explain worker, pipeline) need nothing of the publish stage that
implements it (`engine.publish.ZmqPublisher`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Protocol

from engine.types import Candidate, Explanation

SCHEMA = "mellm.event/1"
TYPES = ("candidate", "explanation", "dropped", "status", "error")
DROP_REASONS = ("queue_full", "timeout", "shutdown", "error")


class EventSink(Protocol):
    """Where events go. ``emit`` is thread-safe, never drops silently, and stamps ``seq``.

    ``png`` is the fused map sent as the third message frame of a candidate event.
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


def explanation_event(c: Candidate, e: Explanation, latency_ms: float) -> dict[str, Any]:
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
        latency_ms=round(float(latency_ms), 3),
        **extra,
    )


def dropped_event(c: Candidate, reason: str, detail: str = "") -> dict[str, Any]:
    if reason not in DROP_REASONS:
        raise ValueError(f"drop reason must be one of {DROP_REASONS}, got {reason!r}")
    return make_event("dropped", c.stream, candidate_id=c.candidate_id, reason=reason, detail=detail)


def status_event(stream: str, **figures: Any) -> dict[str, Any]:
    """``figures``: fps_in, fps_processed, frames_dropped, faces_lost, queue_depth, reconnects, uptime_s.

    Extra figures may follow the contract's ones.
    """
    return make_event("status", stream, **figures)


def error_event(stream: str, where: str, message: str) -> dict[str, Any]:
    return make_event("error", stream, where=where, message=message)
