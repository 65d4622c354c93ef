"""The dashboard's memory: what it has heard from each engine, bounded so it never grows.

`DashboardState.ingest` is called by one subscriber thread per endpoint with every message of
event contract v2 (DESIGN.md); the web side reads views (`snapshot`, `stream_view`,
`candidate_view`) and the Prometheus text (`metrics_text`). Everything is behind one lock.

What is kept, and its bound:

* per stream: the latest ``status`` and a history of the last ``history`` status figures (a
  ``deque(maxlen)``, with a break marker where the engine restarted), counters of the events seen;
* per candidate: its candidate event, fused-map PNG and outcome (``explanation`` or ``dropped``),
  in an LRU of the last ``max_candidates`` ids (older ones are evicted with their PNG);
* per stream also its ``seq`` gap and restart markers (the last ``max_gaps`` of each).

A stream is identified by (endpoint, ``stream`` name): one engine publishes one stream, and
several engines may share an endpoint behind an ``engine.proxy``. Sessions and gaps come from the
per-publisher ``seq``, tracked per stream by `engine.subscribe.SeqTracker`: ``seq`` one more than
the previous is normal; a jump forward is a gap (events were lost; recorded with the missing
range); a ``seq`` at or below the previous one means the engine restarted (its publisher counts
from 0 again), which opens a new session and is not a gap. The first message heard of a stream
opens session 1 whatever its ``seq`` (the dashboard may join a running engine).

Every view carries ``rev``, a number that grows with each change, so a page that merges a full
snapshot with live updates keeps the newest version of each item.

>>> s = DashboardState()
>>> _ = s.ingest("tcp://127.0.0.1:5556", {"type": "status", "stream": "cam0", "seq": 0, "fps_in": 25.0})
>>> s.stream_view("cam0")["status"]["fps_in"]
25.0
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from engine.events import DROP_REASONS
from engine.subscribe import SeqTracker

#: The health figures of a ``status`` event (contract v2), in display order.
STATUS_FIGURES: tuple[str, ...] = (
    "fps_in",
    "fps_processed",
    "frames_dropped",
    "faces_lost",
    "queue_depth",
    "reconnects",
    "uptime_s",
)
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def safe_id(candidate_id: Any) -> str | None:
    """``candidate_id`` if it is a plain token usable in a URL path, else None."""
    cid = str(candidate_id) if candidate_id is not None else ""
    return cid if _SAFE_ID.fullmatch(cid) and cid not in (".", "..") else None


def clip_file_name(candidate_id: str, outcome: dict[str, Any] | None) -> str | None:
    """``<candidate_id>.mp4`` if ``outcome`` is an explanation whose ``clip`` ends in that file name.

    An event can name any path (``/etc/passwd``, ``../../x``): this keeps only the one name the
    engine's clip recorder gives a candidate's clip, so nothing else can ever be asked for.

    >>> clip_file_name("c1", {"type": "explanation", "clip": "/srv/clips/c1.mp4"})
    'c1.mp4'
    >>> [clip_file_name("c1", {"type": "explanation", "clip": c}) for c in ("/etc/passwd", "c2.mp4", 7)]
    [None, None, None]
    """
    if outcome is None or outcome.get("type") != "explanation":
        return None
    clip = outcome.get("clip")
    if not isinstance(clip, str):
        return None
    name = f"{candidate_id}.mp4"
    return name if clip.replace("\\", "/").rsplit("/", 1)[-1] == name else None


def _number(x: Any) -> float | None:
    """A finite float from an event field, or None (absent, not a number, NaN/inf)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class CandidateRecord:
    """One candidate's story as heard: its event, its map, its outcome (any may still be missing)."""

    candidate_id: str
    stream: str
    stream_id: str
    endpoint: str
    session: int
    received: float  # dashboard wall clock when first heard of
    candidate: dict[str, Any] | None = None
    png: bytes | None = None
    outcome: dict[str, Any] | None = None  # the explanation or dropped event
    rev: int = 0


LATENCY_WINDOW = 256  # explanations whose latency /metrics summarises, per stream


@dataclass
class StreamState:
    """One engine stream (the ``stream`` field of its events)."""

    id: str  # s1, s2, ... in order of appearance: a DOM/URL-safe key for (endpoint, name)
    name: str
    endpoint: str
    session: int
    first_seen: float
    last_event: float
    status: dict[str, Any] | None = None
    status_received: float | None = None
    #: (dashboard wall time, session, {figure: value}) or a break marker (time, session, None).
    history: deque[tuple[float, int, dict[str, float] | None]] = field(default_factory=deque)
    candidates: int = 0
    explanations: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    last_error: dict[str, Any] | None = None
    gap_count: int = 0
    missed: int = 0
    restarts: int = 0
    gaps: deque[dict[str, Any]] = field(default_factory=deque)
    restart_times: deque[dict[str, Any]] = field(default_factory=deque)
    rev: int = 0
    #: end-to-end latency (``latency_ms``: offset frame in -> explanation out) of the last explanations
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))


@dataclass
class EndpointState:
    """One subscribed endpoint: an engine, or several behind a proxy (seq tracked per stream)."""

    endpoint: str
    tracker: SeqTracker = field(default_factory=SeqTracker)
    messages: int = 0
    malformed: int = 0
    handshake_failures: int = 0
    last_message: float | None = None
    streams: set[str] = field(default_factory=set)


class DashboardState:
    """Thread-safe, bounded store of everything the dashboard shows (see the module docstring).

    ``history``: status samples kept per stream; ``max_candidates``: candidates kept (LRU);
    ``max_gaps``: gap and restart markers kept per endpoint; ``clock``: wall clock (tests).
    """

    def __init__(
        self,
        history: int = 150,
        max_candidates: int = 200,
        max_gaps: int = 50,
        clock: Any = time.time,
    ) -> None:
        if history < 2 or max_candidates < 1 or max_gaps < 1:
            raise ValueError(
                f"expected history >= 2, max_candidates >= 1, max_gaps >= 1; "
                f"got {history}, {max_candidates}, {max_gaps}"
            )
        self.history = history
        self.max_candidates = max_candidates
        self.max_gaps = max_gaps
        self._clock = clock
        self._lock = threading.Lock()
        self._rev = 0
        self._started = clock()
        self._streams: dict[tuple[str, str], StreamState] = {}  # (endpoint, stream name)
        self._endpoints: dict[str, EndpointState] = {}
        self._candidates: OrderedDict[str, CandidateRecord] = OrderedDict()
        self._evicted = 0

    # -- writers (subscriber threads) -------------------------------------------------------------
    def add_endpoint(self, endpoint: str) -> None:
        """Register ``endpoint`` so it is listed (and exported) before its first message."""
        with self._lock:
            self._endpoint(endpoint)

    def set_counts(self, endpoint: str, malformed: int, handshake_failures: int) -> list[dict[str, Any]]:
        """The subscriber's counts of malformed messages skipped and of refused CURVE handshakes.

        Returns the endpoint's update for live pages when a count changed (a refused handshake
        brings no message, so nothing else would tell the page), else nothing.
        """
        with self._lock:
            ep = self._endpoint(endpoint)
            if (ep.malformed, ep.handshake_failures) == (malformed, handshake_failures):
                return []
            ep.malformed, ep.handshake_failures = int(malformed), int(handshake_failures)
            return [{"kind": "endpoint", "endpoint": self._endpoint_view(ep)}]

    def ingest(self, endpoint: str, event: dict[str, Any], png: bytes | None = None) -> list[dict[str, Any]]:
        """Record one received message; returns the updates for live clients.

        Each update is ``{"kind": "stream" | "candidate" | "evict" | "endpoint", ...}`` carrying
        the full current view of what changed (so a client simply replaces its copy).
        """
        now = self._clock()
        with self._lock:
            ep = self._endpoint(endpoint)
            ep.messages += 1
            ep.last_message = now
            updates: list[dict[str, Any]] = []
            st = self._stream(str(event.get("stream") or "?"), ep, now)
            st.last_event = now
            seq = event.get("seq")
            prev = ep.tracker.last.get(st.name)
            warning = ep.tracker.update(seq, st.name)
            if warning is not None and prev is not None and type(seq) is int:
                if seq > prev + 1:
                    st.gap_count += 1
                    st.missed += seq - prev - 1
                    self._push(st.gaps, {
                        "time": now, "from": prev + 1, "to": seq - 1, "missed": seq - prev - 1,
                        "session": st.session,
                    })
                else:  # seq started again: the engine restarted; a new session, not a loss
                    st.session += 1
                    st.restarts += 1
                    st.status = None
                    st.status_received = None
                    st.history.append((now, st.session, None))
                    restart = {"time": now, "session": st.session, "seq": seq, "after": prev}
                    self._push(st.restart_times, restart)

            kind = event.get("type")
            if kind == "status":
                st.status = {k: event.get(k) for k in (*STATUS_FIGURES, "frames", "candidates")}
                st.status["seq"] = seq
                st.status["time"] = event.get("time")
                st.status_received = now
                st.history.append((now, st.session, {
                    k: v for k in STATUS_FIGURES if (v := _number(event.get(k))) is not None
                }))
            elif kind in ("candidate", "map", "explanation", "dropped"):
                cid = safe_id(event.get("candidate_id"))
                if cid is not None:
                    updates.extend(self._candidate_event(kind, cid, event, png, st, now))
                if kind == "candidate":
                    st.candidates += 1
                elif kind == "explanation":
                    st.explanations += 1
                    if (lat := _number(event.get("latency_ms"))) is not None:
                        st.latencies.append(lat)
                elif kind == "dropped":
                    st.dropped[str(event.get("reason", "unknown"))] += 1
            elif kind == "error":
                st.errors += 1
                st.last_error = {"where": event.get("where"), "message": event.get("message"), "time": now}
            st.rev = self._next_rev()
            updates.append({"kind": "stream", "stream": self._stream_view(st, now)})
            updates.append({"kind": "endpoint", "endpoint": self._endpoint_view(ep)})
            return updates

    # -- readers (web side) ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything, for ``/api/state``: streams, candidates (oldest first), endpoints, ``rev``."""
        now = self._clock()
        with self._lock:
            return {
                "rev": self._rev,
                "now": now,
                "started": self._started,
                "streams": [self._stream_view(s, now) for s in self._streams.values()],
                "candidates": [self._candidate_view(r) for r in self._candidates.values()],
                "endpoints": [self._endpoint_view(e) for e in self._endpoints.values()],
                "limits": {"history": self.history, "max_candidates": self.max_candidates},
                "evicted": self._evicted,
            }

    def stream_view(self, name: str, endpoint: str | None = None) -> dict[str, Any] | None:
        """The view of stream ``name`` (on ``endpoint``, or the first endpoint that has it)."""
        with self._lock:
            for (ep, n), st in self._streams.items():
                if n == name and endpoint in (None, ep):
                    return self._stream_view(st, self._clock())
            return None

    def candidate_view(self, candidate_id: str) -> dict[str, Any] | None:
        with self._lock:
            rec = self._candidates.get(candidate_id)
            return None if rec is None else self._candidate_view(rec)

    def map_png(self, candidate_id: str) -> bytes | None:
        """The fused-map PNG exactly as received with the candidate event, or None."""
        with self._lock:
            rec = self._candidates.get(candidate_id)
            return None if rec is None else rec.png

    def clip_name(self, candidate_id: str) -> str | None:
        """``<candidate_id>.mp4`` when the candidate's explanation event named that clip, else None.

        Only the file name of the event's ``clip`` counts (the engine writes ``<candidate_id>.mp4``),
        never its folder: the web side looks for it in its own clip folder (see `clip_file_name`).
        """
        with self._lock:
            rec = self._candidates.get(candidate_id)
            outcome = rec.outcome if rec is not None else None
        return clip_file_name(candidate_id, outcome)

    def metrics_text(self) -> str:
        """All figures in the Prometheus text exposition format 0.0.4 (see `render_metrics`)."""
        now = self._clock()
        with self._lock:
            return render_metrics(
                streams=list(self._streams.values()),
                endpoints=list(self._endpoints.values()),
                now=now,
                started=self._started,
                candidates_kept=len(self._candidates),
            )

    # -- internals (lock held) -------------------------------------------------------------------
    def _next_rev(self) -> int:
        self._rev += 1
        return self._rev

    def _push(self, dq: deque[dict[str, Any]], item: dict[str, Any]) -> None:
        dq.append(item)
        while len(dq) > self.max_gaps:
            dq.popleft()

    def _endpoint(self, endpoint: str) -> EndpointState:
        ep = self._endpoints.get(endpoint)
        if ep is None:
            ep = self._endpoints[endpoint] = EndpointState(endpoint)
        return ep

    def _stream(self, name: str, ep: EndpointState, now: float) -> StreamState:
        st = self._streams.get((ep.endpoint, name))
        if st is None:
            sid = f"s{len(self._streams) + 1}"
            st = StreamState(sid, name, ep.endpoint, 1, now, now, history=deque(maxlen=self.history))
            self._streams[(ep.endpoint, name)] = st
            ep.streams.add(name)
        return st

    def _candidate_event(
        self, kind: str, cid: str, event: dict[str, Any], png: bytes | None, st: StreamState, now: float
    ) -> list[dict[str, Any]]:
        updates: list[dict[str, Any]] = []
        rec = self._candidates.get(cid)
        if rec is None:
            rec = CandidateRecord(cid, st.name, st.id, st.endpoint, st.session, now)
            self._candidates[cid] = rec
            while len(self._candidates) > self.max_candidates:
                old_id, _ = self._candidates.popitem(last=False)
                self._evicted += 1
                updates.append({"kind": "evict", "candidate_id": old_id})
        if kind == "candidate":
            rec.candidate = event
            rec.png = png if png is not None else rec.png
        elif kind == "map":  # contract v2: the fused map follows the candidate in its own event
            if png is None:
                return updates
            rec.png = png
        else:
            rec.outcome = event
        rec.rev = self._next_rev()
        updates.append({"kind": "candidate", "candidate": self._candidate_view(rec)})
        return updates

    def _candidate_view(self, rec: CandidateRecord) -> dict[str, Any]:
        view: dict[str, Any] = {
            "candidate_id": rec.candidate_id,
            "stream": rec.stream,
            "stream_id": rec.stream_id,
            "endpoint": rec.endpoint,
            "session": rec.session,
            "received": rec.received,
            "rev": rec.rev,
            "map_url": f"/maps/{rec.candidate_id}.png" if rec.png is not None else None,
            "candidate": None,
            "outcome": None,
        }
        c = rec.candidate
        if c is not None:
            view["candidate"] = {
                k: c.get(k) for k in ("seq", "time", "onset", "apex", "offset", "kind", "score", "regions")
            }
        o = rec.outcome
        if o is not None and o.get("type") == "explanation":
            clip = clip_file_name(rec.candidate_id, o)
            view["outcome"] = "explanation"
            keys = ("seq", "time", "aus", "emotion", "emotion_detail", "text", "explainer", "latency_ms",
                    "timing_ms")
            view["explanation"] = {k: o.get(k) for k in keys}
            view["clip"] = clip
            view["clip_url"] = f"/clips/{rec.candidate_id}.mp4" if clip else None
            view["clip_video_url"] = f"/clips/{rec.candidate_id}.webm" if clip else None
        elif o is not None:
            view["outcome"] = "dropped"
            view["dropped"] = {k: o.get(k) for k in ("seq", "time", "reason", "detail", "latency_ms")}
        return view

    def _stream_view(self, st: StreamState, now: float) -> dict[str, Any]:
        return {
            "id": st.id,
            "name": st.name,
            "endpoint": st.endpoint,
            "session": st.session,
            "rev": st.rev,
            "first_seen": st.first_seen,
            "last_event": st.last_event,
            "silent_s": round(now - st.last_event, 3),
            "status": st.status,
            "status_age_s": None if st.status_received is None else round(now - st.status_received, 3),
            "history": [
                {"time": t, "session": s, **(fig or {}), "break": fig is None} for t, s, fig in st.history
            ],
            "counts": {
                "candidates": st.candidates,
                "explanations": st.explanations,
                "dropped": dict(st.dropped),
                "errors": st.errors,
            },
            "last_error": st.last_error,
            "seq": {"gaps": st.gap_count, "missed": st.missed, "restarts": st.restarts},
            "gaps": list(st.gaps),
            "restarts": list(st.restart_times),
        }

    def _endpoint_view(self, ep: EndpointState) -> dict[str, Any]:
        streams = [self._streams[(ep.endpoint, n)] for n in sorted(ep.streams)]
        return {
            "endpoint": ep.endpoint,
            "messages": ep.messages,
            "last_seq": dict(ep.tracker.last),
            "restarts": sum(st.restarts for st in streams),
            "gaps": sum(st.gap_count for st in streams),
            "missed": sum(st.missed for st in streams),
            "malformed": ep.malformed,
            "handshake_failures": ep.handshake_failures,
            "last_message": ep.last_message,
            "streams": sorted(ep.streams),
        }


# -- Prometheus text exposition format 0.0.4 ----------------------------------------------------------
# https://prometheus.io/docs/instrumenting/exposition_formats/ : per family one "# HELP name text"
# (backslash and newline escaped) and one "# TYPE name gauge|counter" line, then its samples
# `name{label="value",...} number`, label values with backslash, double quote and newline escaped.

#: (metric name, status figure, help) of the per-stream gauges, taken from the latest status event.
STATUS_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("mellm_fps_in", "fps_in", "Frames per second read from the source (latest status event)."),
    ("mellm_fps_processed", "fps_processed", "Frames per second through face tracking and spotting."),
    ("mellm_queue_depth", "queue_depth", "Candidates waiting for the explainer worker."),
    ("mellm_frames_dropped", "frames_dropped", "Frames the reader dropped since the engine started."),
    ("mellm_faces_lost", "faces_lost", "Frames without a face since the engine started."),
    ("mellm_reconnects", "reconnects", "Source reconnections since the engine started."),
    ("mellm_uptime_seconds", "uptime_s", "Seconds since the engine started."),
)


def escape_label(value: str) -> str:
    """A label value for the text format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text for the text format: backslash and newline escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(x: float | int) -> str:
    """A sample value: integers as integers, floats by repr, NaN and infinities as Prometheus spells them."""
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x))


def _family(
    lines: list[str], name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float | int]]
) -> None:
    lines.append(f"# HELP {name} {escape_help(help_)}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        body = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{body}}} {format_value(value)}" if body else f"{name} {format_value(value)}")


def render_metrics(
    streams: list[StreamState],
    endpoints: list[EndpointState],
    now: float,
    started: float,
    candidates_kept: int,
) -> str:
    """The Prometheus text of the dashboard's state (counters count events the dashboard received)."""
    lines: list[str] = []
    for name, figure, help_ in STATUS_GAUGES:
        samples = []
        for st in streams:
            v = _number(st.status.get(figure)) if st.status else None
            if v is not None:
                samples.append(({"stream": st.name, "endpoint": st.endpoint}, v))
        _family(lines, name, "gauge", help_, samples)
    _family(lines, "mellm_status_age_seconds", "gauge", "Seconds since the stream's last status event.", [
        ({"stream": st.name, "endpoint": st.endpoint}, round(now - st.status_received, 3))
        for st in streams if st.status_received is not None
    ])
    _family(lines, "mellm_session", "gauge", "Engine session of the stream (1 + restarts seen).", [
        ({"stream": st.name, "endpoint": st.endpoint}, st.session) for st in streams
    ])
    latency = []
    for st in streams:
        if st.latencies:
            values = sorted(st.latencies)
            for q in (0.5, 0.95):
                labels = {"stream": st.name, "endpoint": st.endpoint, "quantile": str(q)}
                pos = q * (len(values) - 1)  # linear interpolation between ranks, as numpy's default
                lo, hi = values[math.floor(pos)], values[math.ceil(pos)]
                latency.append((labels, round(lo + (hi - lo) * (pos - math.floor(pos)), 3)))
    _family(lines, "mellm_latency_ms", "gauge",
            f"End-to-end latency (offset frame in -> explanation out) over the last {LATENCY_WINDOW} "
            "explanations, by quantile.", latency)
    per_stream = (
        ("mellm_candidates_total", "Candidate events received.", lambda st: st.candidates),
        ("mellm_explanations_total", "Explanation events received.", lambda st: st.explanations),
        ("mellm_errors_total", "Error events received.", lambda st: st.errors),
    )
    for name, help_, get in per_stream:
        _family(lines, name, "counter", help_, [
            ({"stream": st.name, "endpoint": st.endpoint}, get(st)) for st in streams
        ])
    dropped = []
    for st in streams:
        for reason in sorted(set(DROP_REASONS) | set(st.dropped)):
            labels = {"stream": st.name, "endpoint": st.endpoint, "reason": reason}
            dropped.append((labels, st.dropped[reason]))
    _family(lines, "mellm_dropped_total", "counter", "Dropped events received, by reason.", dropped)
    per_stream = (
        ("mellm_seq_gaps_total", "Jumps in seq (lost messages) seen on the stream.", lambda st: st.gap_count),
        ("mellm_missed_events_total", "Messages lost according to seq.", lambda st: st.missed),
        ("mellm_engine_restarts_total", "Engine restarts (seq started again) seen.", lambda st: st.restarts),
    )
    for name, help_, get in per_stream:
        _family(lines, name, "counter", help_, [
            ({"stream": st.name, "endpoint": st.endpoint}, get(st)) for st in streams
        ])
    per_endpoint = (
        ("mellm_messages_total", "Messages received from the endpoint.", lambda e: e.messages),
        ("mellm_malformed_messages_total", "Messages skipped as malformed.", lambda e: e.malformed),
        ("mellm_handshake_failures_total", "CURVE handshakes with the endpoint that failed (wrong keys or "
         "a publisher without CURVE): nothing from it is received.", lambda e: e.handshake_failures),
    )
    for name, help_, get in per_endpoint:
        _family(lines, name, "counter", help_, [({"endpoint": e.endpoint}, get(e)) for e in endpoints])
    _family(lines, "mellm_dashboard_uptime_seconds", "gauge", "Seconds since the dashboard started.", [
        ({}, round(now - started, 3))
    ])
    _family(lines, "mellm_dashboard_candidates_kept", "gauge", "Candidates held in the dashboard's memory.", [
        ({}, candidates_kept)
    ])
    return "\n".join(lines) + "\n"


__all__ = [
    "STATUS_FIGURES",
    "CandidateRecord",
    "DashboardState",
    "EndpointState",
    "StreamState",
    "clip_file_name",
    "escape_label",
    "render_metrics",
    "safe_id",
]
