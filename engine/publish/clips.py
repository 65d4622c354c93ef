"""Event clips: for each candidate an MP4 of the aligned face around the event, beside its fused map.

Optional and off by default. The video thread calls `ClipRecorder.push` for every frame; the
recorder keeps only a ring buffer (``deque(maxlen)``) of the recent *aligned face crops* and their
crop landmarks, never the full frames, so memory stays flat: about ``max_buffer_s × fps`` crops of
S×S bytes (S = the face crop side, 256 by default: 64 KiB a frame, 9.6 MiB for 5 s at 30 fps).

`ClipRecorder.add` takes a spotted candidate and returns at once the clip's path
``out_dir/<candidate_id>.mp4`` (absolute), which the pipeline puts in ``Candidate.clip`` so the
explanation event names it. Once a frame at or past ``offset + post_s`` has been pushed (or at
`close`), the frames from ``onset - pre_s`` to ``offset + post_s`` go to a writer thread through a
bounded queue: the video thread never waits on encoding. A full queue skips that clip (counted in
``stats().skipped`` and logged), it never blocks. The file is written under a temporary name and
renamed into place, so a reader that sees ``<id>.mp4`` sees a complete file.

Each clip frame is 2S×S: on the left the aligned grey face with the outlines of the regions that
moved most (``candidate.regions``, hulls of `engine.regions.REGIONS` on that frame's crop
landmarks), the stream time, the phase (onset/apex/offset) and a bar marking the onset→offset span;
on the right the MELLM fused map of the candidate. Which map: the one published with the candidate
when the flow worker hands it over with `ClipRecorder.set_map` (the writer waits up to
``map_wait_s`` for it; 0 = never waits); otherwise the recorder computes it itself with the same
recipe (`engine.fusion.mellm_map`) from the candidate's onset crop and its apex crop in the onset's
registration (`engine.face.align.registered_apex_crop`) and a fast flow (DIS
``medium``, about 2 ms on a 256×256 pair; pass ``flow=`` for another backend). So the clip never
depends on the worker, yet shows the published map when the worker provides it in time. On
sub-pixel motion the DIS map is noisier than a TV-L1 one: wire `set_map` where it matters.

Codec: ``mp4v`` (MPEG-4 Part 2) by default: OpenCV writes it here in about 2 ms a frame and decodes
it everywhere. Browsers do not play it; the dashboard re-encodes a clip to WebM for its player.
OpenCV's FFmpeg here has no H.264 encoder, and ``vp09`` (VP9 in MP4, browser-playable) costs about
200 ms a frame on this CPU; pass ``codec="vp09"`` where that is affordable.

Retention: clips show the faces of the people recorded. With ``max_age_days`` or ``max_bytes`` a
`engine.retention.Sweeper` deletes the folder's oldest ``*.mp4`` past either limit, at start (what
earlier runs left), after each written clip and every minute; ``stats().deleted`` counts them.

Integration (the video thread)::

    clips = ClipRecorder("clips", fps=source.fps or 30.0, map_wait_s=10.0)
    for frame in frames:
        obs = tracker.process(frame)
        clips.push(frame, obs)                       # every frame, face or not
        for c in spotter.update(obs):
            c = dataclasses.replace(c, clip=clips.add(c))
            worker.submit(c)
    clips.close()                                    # writes what is still pending

    # the flow worker, after build_evidence(candidate, ...):
    clips.set_map(candidate.candidate_id, evidence.fused_map)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from engine.errors import UserError
from engine.face.align import registered_apex_crop
from engine.flow.base import FlowBackend
from engine.fusion.mellm_map import mellm_map
from engine.paths import ensure_writable_dir
from engine.regions import NOSE_TIP, REGIONS
from engine.retention import Sweeper
from engine.threads import WorkerThread
from engine.types import Candidate, FaceObservation, Frame

log = logging.getLogger(__name__)

_REGION_COLOUR = (0, 215, 255)  # BGR amber: visible on grey and distinct from the map's hues
_TEXT_COLOUR = (255, 255, 255)
_BAR_H = 6
_EPS_S = 1e-6
_MAX_MAPS = 64


@dataclasses.dataclass(frozen=True, slots=True)
class BufferedFrame:
    """What the ring buffer keeps of one frame: its time and aligned face, never the full image.

    ``crop``: S×S uint8 grey (None when no face was found); ``landmarks``: 478×2 float32 crop pixels.
    """

    index: int
    t: float
    crop: np.ndarray | None
    landmarks: np.ndarray | None


@dataclasses.dataclass(frozen=True, slots=True)
class ClipStats:
    """Counts since construction: clips written, failed to write, skipped (queue full), still pending,
    and clips deleted by retention (with their bytes)."""

    written: int
    failed: int
    skipped: int
    pending: int
    queued: int
    buffered_frames: int
    buffer_capacity: int
    deleted: int = 0
    deleted_bytes: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class _Job:
    candidate: Candidate
    path: Path
    frames: tuple[BufferedFrame, ...]


class ClipRecorder:
    """Writes one MP4 per candidate from a ring buffer of recent aligned faces (see module docstring).

    ``out_dir``: created if missing; ``fps``: frame rate of the written clips (the source's);
    ``pre_s``/``post_s``: seconds before onset / after offset; ``max_buffer_s``: seconds of crops
    kept (must cover ``pre_s`` + the longest candidate + the spotter's delay in reporting it, or
    the clip starts later than asked; the default 6 s covers the spotter's 4 s maximum interval);
    ``codec``: a fourcc OpenCV can write into MP4; ``queue_size``: clips waiting for the writer;
    ``flow``: the flow backend of the side panel's own map (default DIS ``medium``);
    ``map_wait_s``: how long the writer waits for a `set_map` map before computing its own;
    ``max_age_days``/``max_bytes``: retention of the folder's clips (0 = off; module docstring).

    ``push`` and ``add`` are for one thread (the video thread); ``set_map``, ``stats`` and ``close``
    may be called from any thread.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        fps: float,
        pre_s: float = 0.5,
        post_s: float = 0.5,
        max_buffer_s: float = 6.0,
        codec: str = "mp4v",
        queue_size: int = 8,
        flow: FlowBackend | None = None,
        map_wait_s: float = 0.0,
        max_age_days: float = 0.0,
        max_bytes: int = 0,
    ) -> None:
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps: expected a positive frame rate, got {fps!r}")
        if pre_s < 0 or post_s < 0:
            raise ValueError(f"pre_s and post_s: expected seconds >= 0, got {pre_s} and {post_s}")
        if max_buffer_s <= pre_s + post_s:
            raise ValueError(
                f"max_buffer_s: expected more than pre_s + post_s = {pre_s + post_s}, got {max_buffer_s}"
            )
        if len(codec) != 4:
            raise ValueError(f"codec: expected a four-character code such as 'mp4v', got {codec!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size: expected at least 1, got {queue_size}")
        if map_wait_s < 0:
            raise ValueError(f"map_wait_s: expected seconds >= 0, got {map_wait_s}")
        self.out_dir = Path(out_dir).resolve()
        reason = ensure_writable_dir(self.out_dir)
        if reason:
            raise UserError(f"clip folder {self.out_dir} is not writable ({reason}); set another clips.dir")
        self.fps = float(fps)
        self.pre_s = float(pre_s)
        self.post_s = float(post_s)
        self.codec = codec
        self._flow = flow
        self.map_wait_s = float(map_wait_s)
        self._maps: OrderedDict[str, np.ndarray] = OrderedDict()  # set_map results, bounded
        self._maps_cond = threading.Condition()
        self.maps_used = 0  # clips whose side panel is the map handed over by set_map
        self._buffer: deque[BufferedFrame] = deque(maxlen=max(2, math.ceil(max_buffer_s * fps)))
        self._pending: list[tuple[Candidate, Path]] = []
        self._jobs: queue.Queue[_Job | None] = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self._written = 0
        self._failed = 0
        self._skipped = 0
        self._closed = False
        self._retention = Sweeper(self.out_dir, "*.mp4", max_age_days=max_age_days, max_bytes=max_bytes)
        self._writer = WorkerThread("clip-writer", self._write_loop).start()

    # -- video thread ----------------------------------------------------------------------------
    def push(self, frame: Frame, obs: FaceObservation | None) -> None:
        """Remember ``frame``'s aligned face (or its absence); hand over every clip now complete."""
        if obs is None:
            self._buffer.append(BufferedFrame(frame.index, frame.t, None, None))
        else:
            self._buffer.append(BufferedFrame(frame.index, frame.t, obs.crop, obs.crop_landmarks))
        if self._pending:
            self._release(lambda end: frame.t >= end - _EPS_S)

    def add(self, candidate: Candidate) -> str:
        """Schedule ``candidate``'s clip; returns its path (absolute, ``out_dir/<candidate_id>.mp4``)."""
        if self._closed:
            raise RuntimeError("ClipRecorder.add() called after close()")
        name = candidate.candidate_id
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"candidate_id: expected a plain file name, got {name!r}")
        path = self.out_dir / f"{name}.mp4"
        self._pending.append((candidate, path))
        newest = self._buffer[-1].t if self._buffer else -math.inf
        self._release(lambda end: newest >= end - _EPS_S)  # the spotter may report after offset + post_s
        return str(path)

    def _release(self, complete: Callable[[float], bool]) -> None:
        keep: list[tuple[Candidate, Path]] = []
        for cand, path in self._pending:
            if complete(cand.offset.t + self.post_s):
                self._enqueue(cand, path)
            else:
                keep.append((cand, path))
        self._pending = keep

    def _enqueue(self, cand: Candidate, path: Path) -> None:
        start, end = cand.onset.t - self.pre_s - _EPS_S, cand.offset.t + self.post_s + _EPS_S
        frames = tuple(f for f in self._buffer if start <= f.t <= end)
        evicted = len(self._buffer) == self._buffer.maxlen
        if evicted and frames and frames[0].t > cand.onset.t - self.pre_s + 1.0 / self.fps:
            log.warning(
                "clip %s starts %.3f s late: the ring buffer (%d frames) no longer holds onset - pre_s",
                cand.candidate_id,
                frames[0].t - (cand.onset.t - self.pre_s),
                self._buffer.maxlen,
            )
        try:
            self._jobs.put_nowait(_Job(cand, path, frames))
        except queue.Full:
            with self._lock:
                self._skipped += 1
            log.error(
                "clip writer is behind (%d clips queued): clip %s skipped", self._jobs.maxsize, path.name
            )

    # -- any thread --------------------------------------------------------------------------------
    def set_map(self, candidate_id: str, fused: np.ndarray) -> None:
        """Hand over the published fused map (S×S×3 uint8 BGR) of ``candidate_id`` for its clip."""
        if not (
            isinstance(fused, np.ndarray)
            and fused.ndim == 3
            and fused.shape[2] == 3
            and fused.dtype == np.uint8
        ):
            got = (fused.shape, fused.dtype) if isinstance(fused, np.ndarray) else type(fused)
            raise ValueError(f"fused: expected an H×W×3 uint8 BGR image, got {got}")
        with self._maps_cond:
            self._maps[candidate_id] = fused
            while len(self._maps) > _MAX_MAPS:  # maps of clips that were skipped or never added
                self._maps.popitem(last=False)
            self._maps_cond.notify_all()

    def stats(self) -> ClipStats:
        with self._lock:
            return ClipStats(
                written=self._written,
                failed=self._failed,
                skipped=self._skipped,
                pending=len(self._pending),
                queued=self._jobs.qsize(),
                buffered_frames=len(self._buffer),
                buffer_capacity=self._buffer.maxlen or 0,
                deleted=self._retention.deleted,
                deleted_bytes=self._retention.deleted_bytes,
            )

    def close(self, timeout_s: float = 60.0) -> None:
        """Write every pending clip with the frames there are, then stop the writer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        pending, self._pending = self._pending, []
        for cand, path in pending:
            start, end = cand.onset.t - self.pre_s - _EPS_S, cand.offset.t + self.post_s + _EPS_S
            frames = tuple(f for f in self._buffer if start <= f.t <= end)
            self._jobs.put(_Job(cand, path, frames), timeout=timeout_s)  # at shutdown waiting is fine
        self._jobs.put(None, timeout=timeout_s)
        if not self._writer.join(timeout_s):
            log.error("clip writer did not finish within %.0f s", timeout_s)
        self._retention.close()
        self._writer.raise_error()

    def __enter__(self) -> ClipRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer thread -----------------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                fused = self._map(job.candidate)
                write_clip(job.path, job.frames, job.candidate, self.fps, self.codec, fused)
            except Exception:  # one bad clip must not stop the others
                with self._lock:
                    self._failed += 1
                log.exception("clip %s could not be written", job.path.name)
            else:
                with self._lock:
                    self._written += 1
                self._retention.poke()

    def _map(self, cand: Candidate) -> np.ndarray:
        """The map given by `set_map` (waiting up to ``map_wait_s``), else computed from the crops."""
        deadline = time.monotonic() + self.map_wait_s
        with self._maps_cond:
            while cand.candidate_id not in self._maps and (left := deadline - time.monotonic()) > 0:
                self._maps_cond.wait(left)
            given = self._maps.pop(cand.candidate_id, None)
        if given is not None:
            self.maps_used += 1
            return given
        if self._flow is None:
            from engine.flow.opencv_backends import DISFlow

            self._flow = DISFlow(preset="medium")
        onset, apex = cand.onset_face, cand.apex_face
        flow = self._flow.compute(onset.crop, registered_apex_crop(onset, apex))
        fused, _ = mellm_map(onset.crop, flow, onset.crop_landmarks[NOSE_TIP])
        return fused


def _even(n: int) -> int:
    return n + (n % 2)


def _text(img: np.ndarray, text: str, org: tuple[int, int]) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.45, _TEXT_COLOUR, 1, cv2.LINE_AA)


def render_frame(
    f: BufferedFrame, cand: Candidate, fused: np.ndarray, side: int, phase: str | None
) -> np.ndarray:
    """One clip frame, 2·side×side BGR: annotated face (left) beside ``fused`` (right)."""
    out = np.zeros((side, 2 * side, 3), np.uint8)
    if f.crop is None:
        out[:, :side] = 40
        _text(out, "no face", (side // 2 - 30, side // 2))
    else:
        crop = f.crop if f.crop.shape[0] == side else cv2.resize(f.crop, (side, side))
        face = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        scale = side / f.crop.shape[0]
        if f.landmarks is not None:
            for name in cand.regions:
                idx = REGIONS.get(name)
                if idx is None:
                    continue
                pts = np.asarray(f.landmarks, np.float32)[list(idx), :2] * scale
                hull = cv2.convexHull(np.round(pts).astype(np.int32))
                cv2.polylines(face, [hull], True, _REGION_COLOUR, 1, cv2.LINE_AA)
        out[:, :side] = face
    fmap = fused if fused.shape[0] == side else cv2.resize(fused, (side, side))
    out[:, side:] = fmap
    label = f"t {f.t:.3f}s  #{f.index}" + (f"  {phase}" if phase else "")
    _text(out, label, (6, 16))
    _text(out, "fused map", (side + 6, 16))
    inside = cand.onset.t - _EPS_S <= f.t <= cand.offset.t + _EPS_S
    cv2.rectangle(out, (0, side - _BAR_H), (side - 1, side - 1), (0, 0, 255) if inside else (60, 60, 60), -1)
    return out


def write_clip(
    path: Path,
    frames: tuple[BufferedFrame, ...] | list[BufferedFrame],
    cand: Candidate,
    fps: float,
    codec: str,
    fused: np.ndarray,
) -> None:
    """Encode ``frames`` as ``path`` (via a temporary file renamed into place)."""
    if not frames:
        raise ValueError(f"clip {path.name}: no buffered frames between onset - pre_s and offset + post_s")
    side = _even(int(cand.onset_face.crop.shape[0]))
    phases = {cand.onset.frame: "onset", cand.apex.frame: "apex", cand.offset.frame: "offset"}
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")  # the suffix tells OpenCV the container
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), fps, (2 * side, side))
    try:
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot write {codec!r} video to {tmp}")
        for f in frames:
            writer.write(render_frame(f, cand, fused, side, phases.get(f.index)))
    finally:
        writer.release()
    os.replace(tmp, path)
