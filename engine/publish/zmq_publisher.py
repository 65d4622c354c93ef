"""The ZeroMQ publisher: one thread owns the socket, stamps ``seq``, journals, and sends.

Event contract v2 (DESIGN.md): every message is ``[topic, json]`` or ``[topic, json, png]`` with
``topic = mellm.<type>.<stream>``. The JSON text is serialised once by the publisher thread and the
same text is the journal line, so both are byte-identical.

Why an XPUB socket: a plain PUB socket drops silently at its high-water mark (``send`` never
raises ``zmq.Again`` for PUB, even with ``NOBLOCK``). XPUB is wire-compatible with every SUB
subscriber, and with ``XPUB_NODROP`` a send at the high-water mark raises ``zmq.Again``, so a refused
message is seen and counted instead of vanishing. XPUB also reports subscriptions, which
`ZmqPublisher.wait_for_subscribers` uses (tests, tools that must not miss the first events).

``seq`` starts at 0 for the first message of a publisher and grows by 1 per message, whatever its
type or stream. A message the socket refused still consumes its ``seq`` (and is in the journal), so
a subscriber sees the gap.

Durability: the journal is fsynced ``journal_fsync_s`` (default 2 s) after the first line not yet
on disk, at every rotation and at close, so a power cut loses at most the last couple of seconds of
journal lines; a crash of the process alone loses none (lines reach the OS as they are written).

Security: ``curve_secret_key`` + ``curve_allow_dir`` make the socket a CURVE server that admits only
the listed client keys (`engine.publish.curve`). Without them, an endpoint other than loopback
logs one ``UNENCRYPTED`` warning line. ``connect = true`` connects the socket to the XSUB side of
``python -m engine.proxy`` instead of binding (several engines, one address for subscribers).

Slow joiners: ZeroMQ PUB/SUB delivers only to subscriptions that have reached the publisher, so a
subscriber started together with the engine could miss the first events. The publisher thread
therefore waits ``startup_wait_s`` after the bind before it sends the first message (events emitted
meanwhile wait in the queue; ``emit`` does not block on this).

>>> from engine.publish.config import PublishConfig
>>> from engine.events import error_event
>>> pub = ZmqPublisher(PublishConfig(endpoint="tcp://127.0.0.1:5599", startup_wait_s=0))
>>> pub.emit(error_event("cam0", "doc", "hello"))
>>> pub.close()
>>> pub.stats().sent
1
"""

from __future__ import annotations

import errno
import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import zmq

from engine.errors import UserError
from engine.events import TYPES, topic
from engine.publish.config import PublishConfig
from engine.publish.curve import check_server_config, make_server, start_authenticator, warn_if_exposed
from engine.publish.journal import Journal
from engine.threads import WorkerThread

log = logging.getLogger(__name__)

#: Event types that may be counted lost when ``emit`` has waited ``emit_timeout_s`` on a full queue.
#: Every other type (explanation, dropped, error) is always queued: each closes a candidate's story.
LOSSABLE_TYPES = frozenset({"candidate", "map", "status"})
PNG_TYPES = ("map", "candidate")  # v2 sends maps in `map` events; a v1-style candidate PNG is kept

_JOIN_TIMEOUT_S = 30.0
_IDLE_WAIT_S = 0.05
_LOOPBACK_NAMES = frozenset({"localhost", "lo", "[::1]", "::1"})  # "lo": the loopback interface
_LOOPBACK_V4 = re.compile(r"127\.\d{1,3}\.\d{1,3}\.\d{1,3}")


@dataclass(frozen=True, slots=True)
class PublishStats:
    """What the publisher did so far (all counts since construction)."""

    seq: int  # the next seq to be stamped (= messages processed by the thread)
    sent: int  # messages the socket accepted
    refused: int  # messages the socket refused at the high-water mark (still journaled)
    overflow: int  # events emit() gave up on after emit_timeout_s on a full queue (not journaled)
    queued: int  # events waiting for the publisher thread now
    journal_lines: int
    journal_fsyncs: int  # periodic fsyncs so far (journal_fsync_s)
    subscriptions: int  # subscribe messages seen by the XPUB socket

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def is_loopback(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address (reachable from this machine only)."""
    if not endpoint.startswith(("tcp://", "pgm://", "epgm://", "ws://", "udp://")):
        return True
    host = endpoint.split("://", 1)[1].rsplit(":", 1)[0].lower()
    return host in _LOOPBACK_NAMES or bool(_LOOPBACK_V4.fullmatch(host))


def _check_endpoint(endpoint: str) -> None:
    m = re.fullmatch(r"tcp://(.+):(\*|\d+)", endpoint)
    if endpoint.startswith("tcp://") and m and m.group(2) in ("*", "0"):
        raise UserError(
            f"endpoint {endpoint} has no fixed port, so no subscriber could find it; "
            "give one, e.g. --pub tcp://127.0.0.1:5556"
        )


def open_pub_socket(context: zmq.Context, cfg: PublishConfig) -> zmq.Socket:
    """An XPUB socket on ``cfg.endpoint`` with SNDHWM, LINGER and NODROP set, CURVE when configured.

    It binds, or with ``cfg.connect`` connects to a proxy's XSUB (`engine.proxy`). With
    ``cfg.curve_secret_key`` the socket is a CURVE server; the caller must run the allowlist
    authenticator (`engine.publish.curve.start_authenticator`) on ``context`` first, or every
    client is refused. A bind failure or a bad key file is a `UserError` of one line.
    """
    _check_endpoint(cfg.endpoint)
    check_server_config(cfg.curve_secret_key, cfg.curve_allow_dir, cfg.connect)
    sock = context.socket(zmq.XPUB)
    try:
        sock.setsockopt(zmq.SNDHWM, cfg.sndhwm)
        sock.setsockopt(zmq.LINGER, cfg.linger_ms)
        sock.setsockopt(zmq.XPUB_NODROP, 1)  # refuse (zmq.Again) instead of silently dropping at HWM
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # pass every subscribe, not only the first per topic
        if cfg.curve_secret_key:
            make_server(sock, cfg.curve_secret_key)
        if cfg.connect:
            sock.connect(cfg.endpoint)
        else:
            sock.bind(cfg.endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)
        verb = "connect to" if cfg.connect else "bind"
        if exc.errno == errno.EADDRINUSE:
            hint = "choose another --pub"
        else:
            hint = "give an endpoint like --pub tcp://127.0.0.1:5556"
        raise UserError(f"cannot {verb} {cfg.endpoint}: {zmq.strerror(exc.errno)}; {hint}") from None
    except BaseException:
        sock.close(linger=0)
        raise
    warn_if_exposed(cfg.endpoint, bool(cfg.curve_secret_key), is_loopback(cfg.endpoint))
    return sock


class ZmqPublisher:
    """`engine.events.EventSink` over ZeroMQ: thread-safe ``emit``, one socket-owning thread.

    ``emit`` validates the event in the caller's thread (type, stream, JSON-serialisable without
    NaN) and queues it. A full queue (``cfg.queue_size``) blocks ``emit`` for up to
    ``cfg.emit_timeout_s``; after that a ``candidate`` or ``status`` event is counted in
    ``stats().overflow`` and logged, while explanation/dropped/error events are queued anyway, so
    nothing disappears in silence. ``close`` is idempotent and bounded by the queue drain plus
    ``cfg.linger_ms``; if the thread failed (e.g. the journal's disk is full), ``emit`` and ``close``
    raise that error.

    ``context``: a shared `zmq.Context` (needed for inproc:// endpoints); the publisher terminates
    only a context it created itself.
    """

    def __init__(self, cfg: PublishConfig, context: zmq.Context | None = None) -> None:
        self.cfg = cfg
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._journal: Journal | None = None
        self._auth: Any = None
        try:
            check_server_config(cfg.curve_secret_key, cfg.curve_allow_dir, cfg.connect)
            if cfg.curve_secret_key:
                self._auth = start_authenticator(self._context, cfg.curve_allow_dir)
            if cfg.journal:
                self._journal = Journal(cfg.journal, cfg.journal_max_bytes)
            self._socket = open_pub_socket(self._context, cfg)
        except BaseException:
            if self._journal is not None:
                self._journal.close()
            if self._auth is not None:
                self._auth.stop()
            if self._own_context:
                self._context.term()
            raise
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._bound_at = time.monotonic()
        self._items: deque[tuple[dict[str, Any], bytes | None]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._closed = False
        self._seq = 0
        self._sent = 0
        self._refused = 0
        self._overflow = 0
        self._subscriptions = 0
        self._congested = False
        self._episode_refused = 0
        self._synced_lines = 0
        self._dirty_since: float | None = None
        self._fsyncs = 0
        self._thread = WorkerThread("publisher", self._run, on_end=self._end).start()

    @property
    def _error(self) -> BaseException | None:
        """The publisher thread's error (kept by the thread), re-raised to emit()/close() callers."""
        return self._thread.error

    # -- any thread ---------------------------------------------------------------------------
    def emit(self, event: dict[str, Any], png: bytes | None = None) -> None:
        """Queue ``event`` (without ``seq``) and, for a ``map`` event, its fused map ``png``."""
        kind = event.get("type")
        if kind not in TYPES:
            raise ValueError(f"event type must be one of {TYPES}, got {kind!r}")
        stream = event.get("stream")
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"event stream must be a non-empty string, got {stream!r}")
        if "seq" in event:
            raise ValueError("events must not carry 'seq': the publisher stamps it")
        if png is not None and kind not in PNG_TYPES:
            raise ValueError(f"only {PNG_TYPES} events carry a PNG frame, got one with a {kind!r} event")
        json.dumps(event, ensure_ascii=False, allow_nan=False)  # fail here, where the bad value was made
        item = (dict(event), png if self.cfg.maps else None)
        with self._cond:
            self._check_usable()
            if len(self._items) >= self.cfg.queue_size:
                deadline = time.monotonic() + self.cfg.emit_timeout_s
                while len(self._items) >= self.cfg.queue_size and self._error is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                self._check_usable()
                if len(self._items) >= self.cfg.queue_size and kind in LOSSABLE_TYPES:
                    self._overflow += 1
                    log.error(
                        "publisher queue full for %.1f s: %s event %s not published (%d so far)",
                        self.cfg.emit_timeout_s, kind, event.get("candidate_id", ""), self._overflow,
                    )
                    return
            self._items.append(item)
            self._cond.notify_all()

    def stats(self) -> PublishStats:
        with self._cond:
            return PublishStats(
                seq=self._seq,
                sent=self._sent,
                refused=self._refused,
                overflow=self._overflow,
                queued=len(self._items),
                journal_lines=self._journal.lines if self._journal else 0,
                journal_fsyncs=self._fsyncs,
                subscriptions=self._subscriptions,
            )

    def wait_for_subscribers(self, n: int = 1, timeout_s: float = 10.0) -> bool:
        """Block until ``n`` subscribe messages have reached the socket; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._subscriptions < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._error is not None or self._closed:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        """Send what is queued, fsync the journal, close the socket with linger, end the context."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._closing = True
            self._cond.notify_all()
        if not self._thread.join(_JOIN_TIMEOUT_S):
            # The thread still owns the socket; closing it from here is unsafe and term() would hang.
            log.error("publisher thread did not finish within %.0f s; socket left open", _JOIN_TIMEOUT_S)
        else:
            if self._auth is not None:
                self._auth.stop()  # its ZAP socket lives in our context: stop before term()
            if self._own_context:
                self._context.term()  # bounded: every socket is closed and LINGER is set
        stats = self.stats()
        if stats.refused or stats.overflow:
            log.warning(
                "publisher closed: %d sent, %d refused at the high-water mark, %d lost to a full queue",
                stats.sent, stats.refused, stats.overflow,
            )
        if self._error is not None:
            raise RuntimeError(f"publisher failed: {self._error}") from self._error

    def __enter__(self) -> ZmqPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_usable(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"publisher failed: {self._error}") from self._error
        if self._closed:
            raise RuntimeError("publisher is closed")

    # -- publisher thread only ------------------------------------------------------------------
    def _run(self) -> None:
        while (left := self._bound_at + self.cfg.startup_wait_s - time.monotonic()) > 0:
            self._read_subscriptions()
            time.sleep(min(left, _IDLE_WAIT_S))
        while True:
            with self._cond:
                if not self._items:
                    if self._closing:
                        break
                    self._cond.wait(_IDLE_WAIT_S)
                batch = list(self._items)
                self._items.clear()
                self._cond.notify_all()
            self._read_subscriptions()
            for event, png in batch:
                self._publish(event, png)
            self._maybe_fsync()

    def _end(self) -> None:
        """The thread's end path: after a failure wake the waiting emitters; release socket and journal."""
        if self._error is not None:
            log.error("publisher thread failed", exc_info=self._error)
            with self._cond:
                lost = len(self._items)
                self._items.clear()
                self._cond.notify_all()
            if lost:
                log.error("publisher failed with %d events still queued; they were not published", lost)
        try:
            self._socket.close(linger=self.cfg.linger_ms)
        finally:
            if self._journal is not None:
                try:
                    self._journal.close()
                except OSError:
                    log.exception("journal close failed")

    def _maybe_fsync(self) -> None:
        """fsync the journal ``journal_fsync_s`` after the first unsynced line (bounded loss on power cut)."""
        j = self._journal
        if j is None or not self.cfg.journal_fsync_s or j.lines == self._synced_lines:
            return
        now = time.monotonic()
        if self._dirty_since is None:
            self._dirty_since = now
        if now - self._dirty_since >= self.cfg.journal_fsync_s:
            j.flush(fsync=True)
            self._synced_lines = j.lines
            self._dirty_since = None
            self._fsyncs += 1

    def _publish(self, event: dict[str, Any], png: bytes | None) -> None:
        with self._cond:
            seq = self._seq
            self._seq += 1
        msg: dict[str, Any] = {k: event[k] for k in ("schema", "type", "stream") if k in event}
        msg["seq"] = seq
        msg.update((k, v) for k, v in event.items() if k not in msg)
        text = json.dumps(msg, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        if self._journal is not None:
            self._journal.write(text)
            if png is not None and self.cfg.journal_maps:
                try:
                    self._journal.write_map(str(msg.get("candidate_id", "")), png)
                except OSError as exc:  # a lost map file must not stop the events
                    log.error("map of %s not written beside the journal: %s", msg.get("candidate_id"), exc)
        frames = [topic(msg), text.encode("utf-8")]
        if png is not None:
            frames.append(png)
        self._send(frames)

    def _send(self, frames: list[bytes]) -> None:
        """Send without blocking; at the HWM retry for ``send_timeout_ms`` (once per congestion)."""
        deadline = time.monotonic() + self.cfg.send_timeout_ms / 1000.0
        while True:
            try:
                self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                if self._congested or time.monotonic() >= deadline:
                    break
                time.sleep(0.001)
                continue
            with self._cond:
                self._sent += 1
            if self._congested:
                log.warning("subscribers take messages again after %d refused", self._episode_refused)
                self._congested = False
            return
        with self._cond:
            self._refused += 1
        if not self._congested:
            log.warning("a subscriber is at the high-water mark (%d): refusing messages", self.cfg.sndhwm)
            self._congested = True
            self._episode_refused = 0
        self._episode_refused += 1

    def _read_subscriptions(self) -> None:
        while True:
            try:
                msg = self._socket.recv(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                log.debug("subscription %r", msg[1:])
                with self._cond:
                    self._subscriptions += 1
                    self._cond.notify_all()
