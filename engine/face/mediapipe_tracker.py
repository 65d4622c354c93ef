"""MediaPipe Face Landmarker (Tasks API, VIDEO mode) as the engine's `FaceTracker`.

One face per frame: 478 landmarks in pixels of the original frame, the 52 blendshape scores, and
the similarity-aligned grey crop (`engine.face.align`). VIDEO mode tracks the face between frames
(the detector runs only when tracking is lost), which is what keeps it near 8 ms per 640×360 frame
on one CPU core. mediapipe is imported when a tracker is built, not when `engine.face` is imported,
so the command line's error paths stay fast.

>>> tracker = MediaPipeTracker.from_config(FaceConfig())  # doctest: +SKIP
>>> obs = tracker.process(frame)  # FaceObservation, or None when no face is found
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np

from engine.errors import UserError
from engine.face.align import N_LANDMARKS, align_face
from engine.face.config import FaceConfig
from engine.face.model import resolve_face_model
from engine.types import FaceObservation, Frame

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _native_stderr_muted() -> Iterator[None]:
    """Mute file descriptor 2 while MediaPipe builds its graph (unless logging is at DEBUG).

    MediaPipe and TFLite print INFO/WARNING lines about delegates and feedback tensors straight to
    stderr from C++ while the landmarker is created; they say nothing a user can act on and bury
    the engine's own log. Failures still surface: MediaPipe raises a Python exception, which
    becomes a `UserError`. Only creation is muted, never the running stream.
    """
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def create_landmarker(model_path: str, cfg: FaceConfig) -> Any:
    """A MediaPipe ``FaceLandmarker`` in VIDEO mode for one face, options from ``cfg``."""
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=model_path),
        running_mode=vision.RunningMode.VIDEO,
        num_faces=1,
        min_face_detection_confidence=cfg.min_detection_confidence,
        min_face_presence_confidence=cfg.min_presence_confidence,
        min_tracking_confidence=cfg.min_tracking_confidence,
        output_face_blendshapes=cfg.blendshapes,
    )
    try:
        with _native_stderr_muted():
            return vision.FaceLandmarker.create_from_options(options)
    except ValueError as exc:  # MediaPipe's "cannot load this model" error
        raise UserError(f"face model {model_path!r} could not be loaded by MediaPipe: {exc}") from exc


class MediaPipeTracker:
    """Frames in timestamp order → `FaceObservation` or None; implements `engine.face.base.FaceTracker`.

    ``frames_without_face`` counts the frames where no face was found (for the ``faces_lost``
    status). Not thread-safe: one tracker per stream, used from one thread.
    """

    def __init__(self, landmarker: Any, crop_size: int) -> None:
        """``landmarker``: a ready MediaPipe FaceLandmarker in VIDEO mode (see `create_landmarker`)."""
        self._landmarker = landmarker
        self.crop_size = crop_size
        self._last_ts_ms = -1
        self.frames_without_face = 0
        self.frames_processed = 0

    @classmethod
    def from_config(cls, cfg: FaceConfig) -> MediaPipeTracker:
        """Resolve the model (`resolve_face_model`) and build the landmarker from ``cfg``."""
        model = resolve_face_model(cfg.model or None)
        log.info("face landmarker model: %s", model)
        return cls(create_landmarker(str(model), cfg), cfg.crop_size)

    def _timestamp_ms(self, t: float) -> int:
        """Integer ms from ``t``, forced strictly increasing as detect_for_video requires."""
        ts = round(t * 1000.0) if math.isfinite(t) else self._last_ts_ms + 1
        if ts <= self._last_ts_ms:
            ts = self._last_ts_ms + 1
        self._last_ts_ms = ts
        return ts

    def process(self, frame: Frame) -> FaceObservation | None:
        """Track the face in ``frame`` (H×W×3 uint8 BGR); None when there is none."""
        if self._landmarker is None:
            raise RuntimeError("MediaPipeTracker.process() called after close()")
        image = frame.image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 uint8 BGR frame, got {image.shape} {image.dtype}")
        import mediapipe as mp

        self.frames_processed += 1
        # The one colour copy MediaPipe needs; cvtColor also makes it contiguous.
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        result = self._landmarker.detect_for_video(
            mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb), self._timestamp_ms(frame.t)
        )
        if not result.face_landmarks:
            self.frames_without_face += 1
            return None
        h, w = image.shape[:2]
        points = result.face_landmarks[0]
        landmarks = np.fromiter(
            (c for p in points for c in (p.x, p.y)), dtype=np.float32, count=2 * len(points)
        ).reshape(-1, 2)
        if landmarks.shape[0] != N_LANDMARKS:
            raise RuntimeError(f"MediaPipe returned {landmarks.shape[0]} landmarks, expected {N_LANDMARKS}")
        landmarks *= np.array([w, h], dtype=np.float32)
        blendshapes: dict[str, float] = {}
        if result.face_blendshapes:
            blendshapes = {c.category_name: float(c.score) for c in result.face_blendshapes[0]}
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        crop, transform, crop_landmarks = align_face(grey, landmarks, self.crop_size)
        return FaceObservation(
            index=frame.index,
            t=frame.t,
            landmarks=landmarks,
            crop=crop,
            transform=transform,
            crop_landmarks=crop_landmarks,
            blendshapes=blendshapes,
        )

    def close(self) -> None:
        """Release the landmarker (idempotent)."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> MediaPipeTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
