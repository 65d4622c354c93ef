"""OpenCV capture sources: video files, camera indices and rtsp/http streams.

``t`` comes from the capture's own timestamps (``CAP_PROP_POS_MSEC``, the container's PTS for
files), made relative to the first frame. When a container gives none or they stop increasing,
files fall back to ``index / fps`` and live sources to the monotonic clock, continuing from the
last good time so ``t`` never jumps back.

Faults (issue 6): every image goes through a `FrameCheck` (odd layouts converted, broken frames
skipped and counted); a file with undecodable frames in the middle runs to its end. A network
stream that ends, fails, or delivers no frame for ``read_timeout_s`` is an outage: the source
reports it once through ``on_event("source", message)``, reconnects with capped exponential
backoff, counts ``reconnects``, and continues ``t`` from the last frame's ``t`` plus the
wall-clock gap, so time never goes back across the outage.

>>> src = VideoFileSource("clip.mp4")  # doctest: +SKIP
>>> next(iter(src.frames())).image.shape  # doctest: +SKIP
(360, 640, 3)
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import queue
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

from engine.errors import SourceError
from engine.sources.check import CheckedSource, FrameCheck, as_bgr
from engine.threads import WorkerThread
from engine.timing import sane_fps
from engine.types import Frame

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0  # used for timing only when neither the container nor the user gives a rate
# Consecutive failed reads that end a source. A failed read inside a damaged file consumes one
# frame and decoding goes on; at the real end every read fails at once, so 250 costs nothing.
_MAX_BAD_RUN_FILE = 250
_MAX_BAD_RUN_CAMERA = 5
_MAX_BAD_RUN_STREAM = 3  # a network capture that fails 3 reads in a row has lost its stream
_WAIT_S = 0.25  # waits are sliced so close() is noticed within this time

EventHook = Callable[[str, str], None]
"""``on_event(where, message)``: how a source reports an outage (the pipeline turns it into an
``error`` event); called on the reader thread."""

__all__ = [
    "CameraSource",
    "EventHook",
    "NetworkSource",
    "StreamClock",
    "StreamLost",
    "VideoFileSource",
    "as_bgr",
    "backoff_delay",
]


class StreamClock:
    """Turns capture timestamps (ms) into ``t`` seconds since the first frame.

    ``fps_override`` > 0 ignores the capture and uses ``index / fps``. Otherwise the capture's
    timestamps are used while they are finite and strictly increasing; after the first bad one
    the clock falls back for good: ``index / fps`` for files, the monotonic clock for live sources.
    """

    def __init__(self, fps: float | None, live: bool, fps_override: float = 0.0) -> None:
        self.fps = fps_override if fps_override > 0 else (fps or DEFAULT_FPS)
        self.live = live
        self.use_capture = fps_override <= 0
        self._first_ms: float | None = None
        self._last_ms = -math.inf
        self._last_t = 0.0
        self._last_index = -1
        self._fallback_base: tuple[float, int, float] | None = None  # (t, index, monotonic) at switch
        self._mono0: float | None = None

    def __call__(self, index: int, pos_msec: float) -> float:
        now = time.monotonic()
        if self._mono0 is None:
            self._mono0 = now
        if not self.use_capture:
            t = index / self.fps
        elif (
            self._fallback_base is None
            and math.isfinite(pos_msec)
            and pos_msec >= 0
            and (self._first_ms is None or pos_msec > self._last_ms)
        ):
            if self._first_ms is None:
                self._first_ms = pos_msec
            self._last_ms = pos_msec
            t = (pos_msec - self._first_ms) / 1000.0
        else:
            if self._fallback_base is None:
                log.info(
                    "capture timestamps unusable at frame %s; timing falls back to %s",
                    index,
                    "the monotonic clock" if self.live else f"index/{self.fps:g} fps",
                )
                self._fallback_base = (self._last_t, self._last_index, now)
            t0, i0, m0 = self._fallback_base
            if self.live:
                t = t0 + (now - m0) if i0 >= 0 else now - self._mono0
            else:
                t = t0 + (index - i0) / self.fps if i0 >= 0 else index / self.fps
            t = max(t, self._last_t + 1e-6) if index > 0 else t
        self._last_t, self._last_index = t, index
        return t


_TEXT_CODECS = frozenset({"ansi", "tty", "text", "subr", "srt "})


def _fourcc(cap: cv2.VideoCapture) -> str:
    """The capture's codec as its four characters (``h264``, ``ansi`` for FFmpeg's text renderer)."""
    code = int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    return code.to_bytes(4, "little").decode("latin-1").lower()


def _looks_like_text(path: Path, probe: int = 8192) -> bool:
    """True when the file starts with UTF-8 text and no NUL byte (every video container has binary
    headers with zero bytes in its first kilobytes)."""
    with open(path, "rb") as fh:
        head = fh.read(probe)
    if not head or b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the probe's end is still text
        return exc.start >= len(head) - 3
    return True


def _open_capture(
    target: int | str, timeout_s: float, read_timeout_s: float | None = None
) -> cv2.VideoCapture:
    """A VideoCapture with open/read timeouts where the backend supports them (FFmpeg for URLs):
    FFmpeg's interrupt callback then ends a blocked open or read after the timeout."""
    if isinstance(target, str) and "://" in target:
        read_ms = int((read_timeout_s if read_timeout_s is not None else timeout_s) * 1000)
        open_ms = int(timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, open_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(target)


@contextlib.contextmanager
def _native_log_captured() -> Iterator[list[str]]:
    """Hold back what OpenCV and FFmpeg write to stderr (file descriptor 2) while a capture opens.

    A camera index that does not exist makes OpenCV print a dozen warnings before our one-line
    error; they are caught here instead, and the yielded list receives their lines so the error
    can quote the real cause (``Connection refused``). Used on the opening thread at start only.
    """
    lines: list[str] = []
    level = cv2.utils.logging.getLogLevel()
    with tempfile.TemporaryFile(mode="w+b") as held:
        saved = os.dup(2)
        try:
            os.dup2(held.fileno(), 2)
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            yield lines
        finally:
            cv2.utils.logging.setLogLevel(level)
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines += held.read().decode("utf-8", "replace").splitlines()


def _native_reason(lines: list[str]) -> str:
    """The cause FFmpeg gave for a failed open (``Connection refused``), else ''."""
    for line in reversed(lines):
        m = re.match(r"^\[[^\]]+ @ [^\]]+\]\s*(.+)$", line.strip())
        if m:
            text = m.group(1)
            return text.split("failed: ", 1)[-1] if "failed: " in text else text
    return ""


def _redact(url: str) -> str:
    """The URL without credentials (user:password@), for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def backoff_delay(attempt: int, interval_s: float, cap_s: float) -> float:
    """Capped exponential backoff: ``interval_s`` before attempt 1, doubling, never above ``cap_s``.

    >>> [backoff_delay(k, 0.5, 3.0) for k in range(1, 6)]
    [0.5, 1.0, 2.0, 3.0, 3.0]
    """
    if attempt < 1:
        raise ValueError(f"expected attempt >= 1, got {attempt}")
    return min(interval_s * 2.0 ** min(attempt - 1, 60), cap_s)


class StreamLost(RuntimeError):
    """A network stream that did not come back within the configured reconnect attempts."""


class _CaptureSource(CheckedSource):
    """Shared reading loop: one capture, frames with ``t`` from `StreamClock`, closable from any thread.

    ``close()`` only sets a flag: the capture is released by the reading thread itself (releasing
    it under a concurrent ``read()`` can crash OpenCV). Counters for the status: ``frames_invalid``,
    ``frames_converted``, ``resolution_changes`` (from ``check``) and ``reconnects``.
    """

    live: bool = False
    max_bad_run: int = _MAX_BAD_RUN_FILE

    def __init__(self, name: str, fps_override: float = 0.0) -> None:
        self.name = name
        self.fps_override = fps_override
        self.fps: float | None = None
        self.reconnects = 0
        self.check = FrameCheck(name)
        self._closed = threading.Event()
        self._lock = threading.Lock()  # hands the primed capture over to frames() or close(), not both
        self._cap: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None  # decoded while opening, to prove the source works
        self._first_ms = math.nan

    def _prime(self, cap: cv2.VideoCapture, what: str, fix: str) -> None:
        """Decode the first frame now so a broken source fails at open time with one line."""
        ok, image = cap.read()
        if not ok or image is None or image.size == 0:
            cap.release()
            raise SourceError(f"{what} opened but gave no frame; {fix}")
        self._cap = cap
        self._first = image
        self._first_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        nominal = sane_fps(cap.get(cv2.CAP_PROP_FPS))
        self.fps = self.fps_override if self.fps_override > 0 else nominal

    def _take_primed(self) -> tuple[cv2.VideoCapture | None, np.ndarray | None, float]:
        """The primed capture and first image, now owned by the caller (None after close)."""
        with self._lock:
            cap, first, ms = self._cap, self._first, self._first_ms
            self._cap, self._first = None, None
        return cap, first, ms

    def frames(self) -> Iterator[Frame]:
        """Frames to the end. A failed read consumes a frame index and decoding goes on; only
        `max_bad_run` failures in a row end the source (failures followed by a frame are counted
        in ``frames_invalid``)."""
        clock = StreamClock(self.fps, self.live, self.fps_override)
        cap, first, first_ms = self._take_primed()
        index = 0  # of the next frame
        bad = 0
        last_ms = first_ms
        try:
            if first is not None:
                image = self.check(first)
                if image is not None:
                    yield Frame(index, clock(index, first_ms), image)
                index += 1
            while cap is not None and not self._closed.is_set():
                ok, raw = cap.read()
                if not ok or raw is None:
                    bad += 1
                    if bad >= self.max_bad_run:
                        break
                    continue
                ms = cap.get(cv2.CAP_PROP_POS_MSEC)
                if bad:
                    skipped = self._skipped(bad, last_ms, ms)
                    log.warning(
                        "source %s: %s undecodable frame(s) before frame %s skipped",
                        self.name,
                        skipped,
                        index + skipped,
                    )
                    self.check.invalid += skipped
                    index += skipped
                    bad = 0
                last_ms = ms
                image = self.check(raw)
                if image is not None:
                    yield Frame(index, clock(index, ms), image)
                index += 1
        finally:
            if cap is not None:
                cap.release()

    def _skipped(self, failed_reads: int, last_ms: float, ms: float) -> int:
        """Frames lost in a damaged stretch: at least the failed reads, more when the timestamps
        say so (a failed read can swallow several packets), so indices keep matching the file."""
        rate = self.fps_override or self.fps
        if not rate or not (math.isfinite(last_ms) and math.isfinite(ms)) or ms <= last_ms:
            return failed_reads
        by_time = round((ms - last_ms) / 1000.0 * rate) - 1
        return max(failed_reads, by_time)

    def close(self) -> None:
        self._closed.set()
        cap, _, _ = self._take_primed()  # never iterated: nobody else holds the capture
        if cap is not None:
            cap.release()


class VideoFileSource(_CaptureSource):
    """A video file decoded by OpenCV; never dropped by the reader (``live`` False). Undecodable
    frames in the middle (a damaged file) are skipped and counted; the file runs to its end."""

    live = False
    max_bad_run = _MAX_BAD_RUN_FILE

    def __init__(self, path: str | Path, fps: float = 0.0) -> None:
        p = Path(path)
        super().__init__(p.stem, fps)
        if not p.is_file():
            raise SourceError(
                f"video file {p} does not exist; give an existing file, folder, camera index or URL"
            )
        not_video = f"{p} is not a video OpenCV can decode; give a video file (mp4, mov, avi, mkv)"
        if _looks_like_text(p):  # FFmpeg's tty demuxer would "play" a text file as ANSI art
            raise SourceError(not_video)
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened() or _fourcc(cap) in _TEXT_CODECS:
            cap.release()
            raise SourceError(not_video)
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._prime(cap, f"video file {p}", "check that the file is a complete, readable video")


class CameraSource(_CaptureSource):
    """A local camera by index (``cv2.VideoCapture(0)``); live: the reader drops the oldest frame."""

    live = True
    max_bad_run = _MAX_BAD_RUN_CAMERA

    def __init__(self, index: int, fps: float = 0.0, open_timeout_s: float = 10.0) -> None:
        super().__init__(f"cam{index}", fps)
        with _native_log_captured():
            cap = _open_capture(index, open_timeout_s)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {index} did not open; check that it is connected and free, or pass another index"
            )
        self._prime(cap, f"camera {index}", "check that no other program is using it")


_Item = tuple[bool, "np.ndarray | None", float]  # (read ok, image, CAP_PROP_POS_MSEC)


_SESSIONS: weakref.WeakSet[_Session] = weakref.WeakSet()
_EXIT_JOIN_S = 5.0  # at interpreter exit, wait this long in all for capture threads to leave FFmpeg


@atexit.register
def _end_sessions() -> None:
    """Abandon every capture thread and wait (bounded) until each has left its native read.

    A daemon thread that returns from FFmpeg into Python while the interpreter finalizes is
    unwound by pthread_exit through OpenCV's catch-all handlers, which aborts the process
    ("FATAL: exception not rethrown"): a clean exit 0 needs the threads gone before that.
    """
    sessions = list(_SESSIONS)
    for session in sessions:
        session.abandon()
    deadline = time.monotonic() + _EXIT_JOIN_S
    for session in sessions:
        session.join(max(0.0, deadline - time.monotonic()))


class _Session:
    """One connection to a stream, read on its own daemon thread.

    This is the watchdog: the source waits on ``get`` with a deadline, so a ``read()`` stuck in
    native code (a camera that resets without end of stream) can never stall the source. An
    abandoned session releases its capture as soon as its read returns (FFmpeg's read timeout
    bounds that). ``get`` returns an `_Item`, None when the connection failed or ended, or
    `_Session.TIMEOUT`.
    """

    TIMEOUT = object()

    def __init__(
        self,
        url: str,
        name: str,
        open_timeout_s: float,
        read_timeout_s: float,
        cap: cv2.VideoCapture | None = None,
    ) -> None:
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._cap = cap
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=4)
        self._thread = WorkerThread(f"capture-{name}", self._run)
        self._abandoned = self._thread.stop_event
        _SESSIONS.add(self)
        self._thread.start()

    def _offer(self, item: _Item | None) -> bool:
        while not self._abandoned.is_set():
            try:
                self._queue.put(item, timeout=_WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        cap = self._cap
        self._cap = None
        try:
            if cap is None:
                cap = _open_capture(self.url, self.open_timeout_s, self.read_timeout_s)
                if not cap.isOpened():
                    self._offer(None)
                    return
            while not self._abandoned.is_set():
                ok, image = cap.read()
                ms = cap.get(cv2.CAP_PROP_POS_MSEC) if ok else math.nan
                if not self._offer((bool(ok), image, ms)):
                    return
        except Exception:  # a capture that throws is a lost connection, never a dead reader
            log.exception("capture of %s failed", _redact(self.url))
            self._offer(None)
        finally:
            if cap is not None:
                cap.release()

    def get(self, timeout: float, closed: threading.Event) -> object:
        """The next item, None, or `TIMEOUT` after ``timeout`` seconds or once ``closed`` is set."""
        deadline = time.monotonic() + timeout
        while not closed.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                return self._queue.get(timeout=min(_WAIT_S, remaining))
            except queue.Empty:
                continue
        return self.TIMEOUT

    def abandon(self) -> None:
        """Stop reading: the thread releases its capture once its current open or read returns."""
        self._thread.request_stop()

    def join(self, timeout: float) -> bool:
        """True when the thread has ended within ``timeout`` seconds."""
        return self._thread.join(timeout)


class NetworkSource(_CaptureSource):
    """An rtsp(s):// or http(s):// stream through FFmpeg that survives outages; live: the reader
    drops the oldest frame.

    An outage is a stream that ends, fails ``_MAX_BAD_RUN_STREAM`` reads in a row, or delivers no
    frame for ``read_timeout_s``. Each outage calls ``on_event("source", message)`` once, then the
    source reconnects: attempt k waits ``min(reconnect_interval_s * 2**(k-1), reconnect_max_interval_s)``;
    ``reconnect_attempts`` failed attempts in a row (0 = never give up) raise `StreamLost`. An
    attempt succeeds when the new connection delivers a frame; ``reconnects`` counts those. Frame
    indices continue, and ``t`` continues from the last frame's ``t`` plus the wall-clock gap.
    MJPEG over HTTP carries no timestamps: there ``t`` is the wall clock (``wall_clock`` True).
    Also counted: ``outages``; ``last_outage_s`` is the time from losing the stream to its next frame.

    >>> src = NetworkSource("rtsp://127.0.0.1:8554/face", read_timeout_s=3)  # doctest: +SKIP
    >>> src.on_event = lambda where, message: print(where, message)  # doctest: +SKIP
    """

    live = True
    max_bad_run = _MAX_BAD_RUN_STREAM

    def __init__(
        self,
        url: str,
        fps: float = 0.0,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
        reconnect_interval_s: float = 0.5,
        reconnect_max_interval_s: float = 10.0,
        reconnect_attempts: int = 0,
        on_event: EventHook | None = None,
    ) -> None:
        for label, value in (
            ("open_timeout_s", open_timeout_s),
            ("read_timeout_s", read_timeout_s),
            ("reconnect_interval_s", reconnect_interval_s),
        ):
            if not value > 0:
                raise ValueError(f"expected {label} > 0, got {value}")
        if reconnect_max_interval_s < reconnect_interval_s or reconnect_attempts < 0:
            raise ValueError(
                f"expected reconnect_max_interval_s >= reconnect_interval_s and reconnect_attempts >= 0, got "
                f"{reconnect_max_interval_s}, {reconnect_interval_s}, {reconnect_attempts}"
            )
        shown = _redact(url)
        super().__init__(shown, fps)
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.reconnect_interval_s = reconnect_interval_s
        self.reconnect_max_interval_s = reconnect_max_interval_s
        self.reconnect_attempts = reconnect_attempts
        self.on_event = on_event
        self.outages = 0
        self.last_outage_s = 0.0
        started = time.monotonic()
        with _native_log_captured() as native:
            cap = _open_capture(url, open_timeout_s, read_timeout_s)
        if not cap.isOpened():
            cap.release()
            elapsed = time.monotonic() - started
            reason = _native_reason(native).replace(url, shown)
            if reason:
                why = f"{reason} after {elapsed:.1f} s"
            elif elapsed >= open_timeout_s * 0.9:
                why = f"no answer within the {open_timeout_s:g} s open timeout (source.open_timeout_s)"
            else:
                why = f"gave up after {elapsed:.1f} s"
            raise SourceError(
                f"stream {shown} did not open ({why}); check the URL, the network "
                "and the credentials"
            )
        # MJPEG over HTTP has no timestamps: FFmpeg invents 25 fps ones, so t follows the wall clock.
        self.wall_clock = url.lower().startswith(("http://", "https://")) and _fourcc(cap) == "mjpg"
        self._prime(cap, f"stream {shown}", "check that the URL points at a video stream")
        if self.wall_clock and fps <= 0:
            self.fps = None

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before reconnect attempt ``attempt`` (1-based)."""
        return backoff_delay(attempt, self.reconnect_interval_s, self.reconnect_max_interval_s)

    def frames(self) -> Iterator[Frame]:
        cap, first, first_ms = self._take_primed()
        if cap is None:
            return
        session: _Session | None = _Session(
            self.url, self.name, self.open_timeout_s, self.read_timeout_s, cap
        )
        pending: _Item | None = (True, first, first_ms)
        index = 0
        last: tuple[float, float] | None = None  # (t, monotonic time) of the last frame yielded
        try:
            while session is not None:
                clock = StreamClock(self.fps, True, self.fps_override)
                seg_index, offset, bad = 0, None, 0
                deadline = time.monotonic() + self.read_timeout_s
                reason = ""
                while True:
                    if pending is not None:
                        item: object = pending
                        pending = None
                    else:
                        item = session.get(deadline - time.monotonic(), self._closed)
                    if self._closed.is_set():
                        return
                    if item is _Session.TIMEOUT:
                        reason = f"no frame for {self.read_timeout_s:g} s"
                        break
                    if item is None:
                        reason = "the connection failed"
                        break
                    ok, raw, ms = item  # type: ignore[misc]
                    if not ok or raw is None:
                        bad += 1
                        if bad >= self.max_bad_run:
                            reason = "end of stream"
                            break
                        continue
                    if bad:
                        self.check.invalid += bad
                        bad = 0
                    image = self.check(raw)
                    if image is None:
                        continue  # counted; the deadline still runs, so only-broken frames is an outage
                    now = time.monotonic()
                    deadline = now + self.read_timeout_s
                    ts = clock(seg_index, math.nan if self.wall_clock else ms)
                    seg_index += 1
                    if offset is None:  # first frame of this connection: continue t across the gap
                        offset = 0.0 if last is None else last[0] + (now - last[1]) - ts
                    t = offset + ts
                    if last is not None and t <= last[0]:
                        t = last[0] + 1e-6
                    last = (t, now)
                    yield Frame(index, t, image)
                    index += 1
                session.abandon()
                session = None
                session, pending = self._reconnect(reason)
        finally:
            if session is not None:
                session.abandon()

    def _report(self, message: str) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event("source", message)
        except Exception:  # reporting must never break reading
            log.exception("on_event hook failed for %s", self.name)

    def _reconnect(self, reason: str) -> tuple[_Session | None, _Item | None]:
        """One outage: report it, retry with backoff until a connection delivers a frame.
        (None, None) when closed meanwhile; raises `StreamLost` after ``reconnect_attempts`` failures."""
        self.outages += 1
        lost_at = time.monotonic()
        limit = self.reconnect_attempts
        log.warning("stream %s lost: %s; reconnecting", self.name, reason)
        self._report(f"stream {self.name} lost: {reason}; reconnecting")
        attempt = 0
        while not self._closed.is_set():
            attempt += 1
            if limit and attempt > limit:
                raise StreamLost(
                    f"stream {self.name} lost ({reason}) and not back after {limit} reconnect attempts; "
                    "check the camera and the network, or raise source.reconnect_attempts (0 = forever)"
                )
            if self._closed.wait(self.backoff(attempt)):
                break
            session = _Session(self.url, self.name, self.open_timeout_s, self.read_timeout_s)
            item = session.get(self.open_timeout_s + self.read_timeout_s, self._closed)
            while isinstance(item, tuple) and not item[0]:  # failed reads right after opening
                item = session.get(self.read_timeout_s, self._closed)
            if isinstance(item, tuple):
                self.reconnects += 1
                self.last_outage_s = time.monotonic() - lost_at
                log.warning(
                    "stream %s back after %.2f s (attempt %s)", self.name, self.last_outage_s, attempt
                )
                return session, item
            session.abandon()
            log.info("stream %s: reconnect attempt %s failed", self.name, attempt)
        return None, None
