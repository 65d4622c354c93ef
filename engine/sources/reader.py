"""The reader thread: pulls frames from a `Source` into a bounded queue the pipeline iterates.

Overflow policy (STYLE.md: explicit, counted): live sources drop the oldest queued frame
(``dropped`` counts them), files, folders and the demo block the reader until there is room.
End of stream and errors travel on a separate path (a flag under the queue's lock), so they are
never dropped or stuck behind frames; the first source error is re-raised to the consumer.

>>> reader = FrameReader(source, queue_size=64, policy="auto")  # doctest: +SKIP
>>> for frame in reader:  # doctest: +SKIP
...     process(frame)
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Literal

from engine.sources.base import Source
from engine.threads import WorkerThread
from engine.types import Frame

log = logging.getLogger(__name__)

Policy = Literal["auto", "drop_oldest", "block"]
POLICIES: tuple[str, ...] = ("auto", "drop_oldest", "block")
FPS_WINDOW_S = 2.0  # fps_in is measured over the frames read in this many last seconds
_WAIT_S = 0.25  # bounded waits: a lost notify can delay a wake-up by this much, never hang


class FrameReader:
    """Reads ``source`` on a daemon thread into a queue of at most ``queue_size`` frames.

    ``policy``: "auto" (drop_oldest when ``source.live``, else block), "drop_oldest" or "block".
    ``max_frames`` > 0 stops after that many frames; ``realtime`` (or the source's own ``paced``)
    paces non-live sources at their own ``t`` like a camera. Iterating yields frames until end of
    stream (then re-raises the first source error, if any) or until `stop`. Counters:
    ``frames_read``, ``dropped``, ``fps_in``, ``queue_depth``, and the source's ``frames_invalid``,
    ``resolution_changes``, ``reconnects`` (all in `stats`). The thread starts on first iteration or `start`.
    """

    def __init__(
        self,
        source: Source,
        queue_size: int = 64,
        policy: Policy = "auto",
        max_frames: int = 0,
        realtime: bool = False,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"expected policy in {POLICIES}, got {policy!r}")
        if queue_size < 1:
            raise ValueError(f"expected queue_size >= 1, got {queue_size}")
        self.source = source
        self.queue_size = queue_size
        self.policy: Policy = ("drop_oldest" if source.live else "block") if policy == "auto" else policy
        self.max_frames = max_frames
        # a source may ask to be paced itself (the demo plays at its frame rate by default)
        self.realtime = (realtime or bool(getattr(source, "paced", False))) and not source.live
        self.frames_read = 0
        self.dropped = 0
        self._queue: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._ended = False
        self._read_times: deque[float] = deque()
        self._thread = WorkerThread(f"reader-{source.name}", self._run, on_end=self._end)
        self._stop = self._thread.stop_event

    # -- control -------------------------------------------------------------------------------

    def start(self) -> FrameReader:
        """Start the reader thread (idempotent)."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop reading and wake a blocked reader and a blocked consumer; True when the thread ended
        within ``timeout`` (a source stuck inside a native read is left to its daemon thread)."""
        self._thread.request_stop()
        try:
            self.source.close()
        except Exception:  # closing is best effort; the stop must still happen
            log.exception("closing source %s failed", self.source.name)
        with self._cond:
            self._cond.notify_all()
        return self._thread.join(timeout)

    def __enter__(self) -> FrameReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- counters ------------------------------------------------------------------------------

    @property
    def fps_in(self) -> float:
        """Frames read per second over the last `FPS_WINDOW_S` seconds (0 before two frames)."""
        with self._cond:
            times = list(self._read_times)
        if len(times) < 2:
            return 0.0
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else 0.0

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def frames_invalid(self) -> int:
        """Frames the source skipped as undecodable or unusable (0 for sources that never skip)."""
        return int(getattr(self.source, "frames_invalid", 0))

    @property
    def resolution_changes(self) -> int:
        """Times the frame size changed mid-stream (the pipeline restarts its spotter there)."""
        return int(getattr(self.source, "resolution_changes", 0))

    @property
    def reconnects(self) -> int:
        """Times a network source came back after an outage."""
        return int(getattr(self.source, "reconnects", 0))

    def stats(self) -> dict[str, float]:
        """The reader's figures for a ``status`` event, keyed as the pipeline's ``reader_stats``."""
        return {
            "fps_in": self.fps_in,
            "frames_dropped": self.dropped,
            "frame_queue_depth": self.queue_depth,
            "reconnects": self.reconnects,
            "last_outage_s": float(getattr(self.source, "last_outage_s", 0.0)),
            "frames_invalid": self.frames_invalid,
            "resolution_changes": self.resolution_changes,
        }

    @property
    def error(self) -> BaseException | None:
        """The source's first error (re-raised to the consumer once the queued frames are taken)."""
        return self._thread.error

    @property
    def ended(self) -> bool:
        """True once the reader reached end of stream, failed, or was stopped."""
        return self._ended or self._stop.is_set()

    # -- producer ------------------------------------------------------------------------------

    def _put(self, frame: Frame) -> bool:
        """Queue ``frame`` under the policy, stamped with its arrival (``Frame.arrived``, unless the
        source stamped it); False when stopped while waiting for room."""
        if not frame.arrived:  # the latency figures count from here (engine.events.timing_json)
            frame = dataclasses.replace(frame, arrived=time.monotonic())
        with self._cond:
            if self.policy == "block":
                while len(self._queue) >= self.queue_size and not self._stop.is_set():
                    self._cond.wait(_WAIT_S)
                if self._stop.is_set():
                    return False
            elif len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(frame)
            self.frames_read += 1
            now = time.monotonic()
            self._read_times.append(now)
            while self._read_times and now - self._read_times[0] > FPS_WINDOW_S:
                self._read_times.popleft()
            self._cond.notify_all()
        return True

    def _run(self) -> None:
        """The reader thread; an error is kept by the thread and re-raised to the consumer."""
        pace0: float | None = None
        for frame in self.source.frames():
            if self._stop.is_set():
                break
            if self.realtime:
                now = time.monotonic()
                if pace0 is None:
                    pace0 = now - frame.t
                delay = pace0 + frame.t - now
                if delay > 0 and self._stop.wait(delay):
                    break
            if not self._put(frame):
                break
            if self.max_frames and self.frames_read >= self.max_frames:
                break

    def _end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        log.debug("reader %s ended: %s frames, %s dropped", self.source.name, self.frames_read, self.dropped)

    # -- consumer ------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None at end of stream, after `stop`, or when ``timeout`` expires.
        Raises the source's error once the queued frames are consumed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue and not self._ended and not self._stop.is_set():
                remaining = _WAIT_S if deadline is None else min(_WAIT_S, deadline - time.monotonic())
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._stop.is_set():
                return None
            if self._queue:
                frame = self._queue.popleft()
                self._cond.notify_all()
                return frame
        if self.error is not None:
            raise self.error
        return None

    def __iter__(self) -> Iterator[Frame]:
        self.start()
        while True:
            frame = self.get()
            if frame is None:
                return
            yield frame
