"""OpenCV capture sources: video files, camera indices and rtsp/http streams.

``t`` comes from the capture's own timestamps (``CAP_PROP_POS_MSEC``, the container's PTS for
files), made relative to the first frame. When a container gives none or they stop increasing,
files fall back to ``index / fps`` and live sources to the monotonic clock, continuing from the
last good time so ``t`` never jumps back.

>>> src = VideoFileSource("clip.mp4")  # doctest: +SKIP
>>> next(iter(src.frames())).image.shape  # doctest: +SKIP
(360, 640, 3)
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from engine.errors import SourceError
from engine.types import Frame

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0  # used for timing only when neither the container nor the user gives a rate
_MAX_SANE_FPS = 2000.0


def as_bgr(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 BGR from what a capture returns (grey H×W or H×W×1, BGRA H×W×4, 16-bit)."""
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise SourceError(f"unsupported frame layout {image.shape}; expected grey, BGR or BGRA images")


def sane_fps(value: float) -> float | None:
    """The capture's nominal fps, or None when it is missing or absurd (0, NaN, thousands)."""
    if value is None or not math.isfinite(value) or value <= 0 or value > _MAX_SANE_FPS:
        return None
    return float(value)


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
        elif self._fallback_base is None and math.isfinite(pos_msec) and pos_msec >= 0 and (
            self._first_ms is None or pos_msec > self._last_ms
        ):
            if self._first_ms is None:
                self._first_ms = pos_msec
            self._last_ms = pos_msec
            t = (pos_msec - self._first_ms) / 1000.0
        else:
            if self._fallback_base is None:
                log.info("capture timestamps unusable at frame %s; timing falls back to %s",
                         index, "the monotonic clock" if self.live else f"index/{self.fps:g} fps")
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


def _open_capture(target: int | str, timeout_s: float) -> cv2.VideoCapture:
    """A VideoCapture with open/read timeouts where the backend supports them (FFmpeg for URLs)."""
    ms = int(timeout_s * 1000)
    if isinstance(target, str) and "://" in target:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
    return cv2.VideoCapture(target)


def _redact(url: str) -> str:
    """The URL without credentials (user:password@), for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


class _CaptureSource:
    """Shared reading loop: one capture, frames with ``t`` from `StreamClock`, closable from any thread.

    ``close()`` only sets a flag: the capture is released by the reading thread itself (releasing
    it under a concurrent ``read()`` can crash OpenCV).
    """

    live: bool = False

    def __init__(self, name: str, fps_override: float = 0.0) -> None:
        self.name = name
        self.fps_override = fps_override
        self.fps: float | None = None
        self.reconnects = 0
        self._closed = threading.Event()
        self._cap: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None  # decoded while opening, to prove the source works
        self._first_ms = math.nan

    def _prime(self, cap: cv2.VideoCapture, what: str, fix: str) -> None:
        """Decode the first frame now so a broken source fails at open time with one line."""
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise SourceError(f"{what} opened but gave no frame; {fix}")
        self._cap = cap
        self._first = image
        self._first_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        nominal = sane_fps(cap.get(cv2.CAP_PROP_FPS))
        self.fps = self.fps_override if self.fps_override > 0 else nominal

    def _reopen(self) -> cv2.VideoCapture | None:
        """A fresh capture after a read failure (live streams); None ends the stream."""
        return None

    def frames(self) -> Iterator[Frame]:
        clock = StreamClock(self.fps, self.live, self.fps_override)
        cap = self._cap
        index = 0
        try:
            if self._first is not None and cap is not None:
                image, ms, self._first = self._first, self._first_ms, None
                yield Frame(index, clock(index, ms), as_bgr(image))
                index += 1
            while cap is not None and not self._closed.is_set():
                ok, image = cap.read()
                if not ok or image is None:
                    cap.release()
                    cap = self._cap = self._reopen()
                    continue
                yield Frame(index, clock(index, cap.get(cv2.CAP_PROP_POS_MSEC)), as_bgr(image))
                index += 1
        finally:
            if cap is not None:
                cap.release()
            self._cap = None

    def close(self) -> None:
        self._closed.set()
        if self._cap is not None and self._first is not None:
            # Never iterated: nobody else holds the capture, release it here.
            self._cap.release()
            self._cap = None
            self._first = None


class VideoFileSource(_CaptureSource):
    """A video file decoded by OpenCV; never dropped by the reader (``live`` False)."""

    live = False

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
        self._prime(cap, f"video file {p}", "check that the file is a complete, readable video")
        self.frame_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)


class CameraSource(_CaptureSource):
    """A local camera by index (``cv2.VideoCapture(0)``); live: the reader drops the oldest frame."""

    live = True

    def __init__(self, index: int, fps: float = 0.0, open_timeout_s: float = 10.0) -> None:
        super().__init__(f"cam{index}", fps)
        cap = _open_capture(index, open_timeout_s)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {index} did not open; check that it is connected and free, or pass another index"
            )
        self._prime(cap, f"camera {index}", "check that no other program is using it")


class NetworkSource(_CaptureSource):
    """An rtsp(s):// or http(s):// stream through FFmpeg, reopened up to ``max_reconnects`` times
    after a read failure (``reconnects`` counts them); live: the reader drops the oldest frame."""

    live = True

    def __init__(
        self, url: str, fps: float = 0.0, open_timeout_s: float = 10.0, max_reconnects: int = 3
    ) -> None:
        shown = _redact(url)
        super().__init__(shown, fps)
        self.url = url
        self.open_timeout_s = open_timeout_s
        self.max_reconnects = max_reconnects
        cap = _open_capture(url, open_timeout_s)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"stream {shown} did not open within {open_timeout_s:g} s; check the URL, the network "
                "and the credentials"
            )
        self._prime(cap, f"stream {shown}", "check that the URL points at a video stream")

    def _reopen(self) -> cv2.VideoCapture | None:
        while self.reconnects < self.max_reconnects and not self._closed.is_set():
            self.reconnects += 1
            log.warning(
                "stream %s lost; reconnecting (%s of %s)", self.name, self.reconnects, self.max_reconnects
            )
            if self._closed.wait(min(2.0 ** (self.reconnects - 1), 8.0)):
                return None
            cap = _open_capture(self.url, self.open_timeout_s)
            if cap.isOpened():
                return cap
            cap.release()
        return None
