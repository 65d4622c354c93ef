"""Landmark reuse across nearby frames: the face stage at 200 fps on CPU.

MediaPipe's landmarker costs ~8-9 ms per frame on these CPUs, so a 200-fps camera cannot have it
on every frame. Between two landmarker calls (key frames) the face moves little: `ReusingTracker`
tracks a handful of points from the key frame with pyramidal Lucas-Kanade (rigid points: eye
corners, nose bridge, forehead; and probe points on the eyelids), fits a similarity to the
rigid ones, moves the key frame's 478 landmarks by it and aligns the crop as usual
(`engine.face.align.align_face`). The spotter works on aligned crops and measures local motion
itself, so reused landmarks cost it nothing as long as the crop stays aligned.

The landmarker runs again when ``max_reuse`` frames were reused, when the face moved more than
``max_shift_px`` since the key frame, when Lucas-Kanade loses points, or when a probe point
(the eyelids) moved more than ``probe_px`` beyond the rigid motion: a blink then gets fresh
landmarks (and blendshapes), which the blink suppression needs. The lips are not probed: the
spotter measures mouth motion itself with optical flow, and probing them sent a talking face to the
landmarker on most frames (WolfgangLanger: 279 of 472 key frames with lip probes at 1 px, 163 with
eyelid probes at 2 px, max_reuse 7).

>>> tracker = ReusingTracker(create_tracker(FaceConfig()), ReuseConfig(max_reuse=3), 256)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.face.align import align_face, fit_similarity, transform_points
from engine.face.base import FaceTracker
from engine.face.regions import RIGID_POINTS
from engine.types import FaceObservation, Frame

# Probe points that move with blinks: upper and lower lid of each eye.
PROBE_POINTS: tuple[int, ...] = (159, 145, 386, 374)


@dataclass(frozen=True, slots=True)
class ReuseConfig:
    """When landmarks of a key frame may be reused (see the module docstring)."""

    max_reuse: int = 3  # frames in a row without the landmarker (0 = landmarker on every frame)
    max_shift_px: float = 8.0  # face motion since the key frame (pixels of the frame) that forces a refresh
    probe_px: float = 2.0  # non-rigid motion of an eyelid probe (frame pixels) that forces a refresh
    lk_window: int = 15  # Lucas-Kanade window side in pixels
    lk_levels: int = 2  # pyramid levels

    def __post_init__(self) -> None:
        if self.max_reuse < 0 or self.max_shift_px <= 0 or self.probe_px <= 0:
            raise ValueError(f"expected max_reuse >= 0 and positive pixel limits, got {self}")


class ReusingTracker:
    """A `FaceTracker` that calls ``inner`` only on key frames and reuses its landmarks in between.

    ``keyframes`` and ``reused`` count the two kinds of frames (for benches and status).
    """

    def __init__(self, inner: FaceTracker, cfg: ReuseConfig, crop_size: int) -> None:
        self.inner = inner
        self.cfg = cfg
        self.crop_size = crop_size
        self._key_grey: np.ndarray | None = None
        self._key: FaceObservation | None = None
        self._since = 0
        self.keyframes = 0
        self.reused = 0
        self._idx = np.array([*RIGID_POINTS, *PROBE_POINTS])
        self._n_rigid = len(RIGID_POINTS)
        self._criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03)

    def process(self, frame: Frame) -> FaceObservation | None:
        """The face of ``frame`` (H×W×3 uint8 BGR): landmarker on key frames, reuse in between."""
        grey = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        if self._key is not None and self._since < self.cfg.max_reuse:
            obs = self._reuse(frame, grey)
            if obs is not None:
                self._since += 1
                self.reused += 1
                return obs
        obs = self.inner.process(frame)
        self.keyframes += 1
        self._key, self._key_grey, self._since = obs, (grey if obs is not None else None), 0
        return obs

    def _reuse(self, frame: Frame, grey: np.ndarray) -> FaceObservation | None:
        key, key_grey = self._key, self._key_grey
        assert key is not None and key_grey is not None
        p0 = key.landmarks[self._idx].astype(np.float32).reshape(-1, 1, 2)
        win = (self.cfg.lk_window, self.cfg.lk_window)
        p1, status, _ = cv2.calcOpticalFlowPyrLK(
            key_grey, grey, p0, None, winSize=win, maxLevel=self.cfg.lk_levels, criteria=self._criteria
        )
        if p1 is None or not bool(status.all()):
            return None
        src, dst = p0.reshape(-1, 2), p1.reshape(-1, 2)
        n = self._n_rigid
        transform = fit_similarity(src[:n], dst[:n])
        moved = transform_points(src, transform)
        if float(np.abs(dst[:n] - src[:n]).max()) > self.cfg.max_shift_px:
            return None
        if float(np.hypot(*(dst[n:] - moved[n:]).T).max()) > self.cfg.probe_px:
            return None  # an eyelid moved on its own (a blink): fresh landmarks
        landmarks = transform_points(key.landmarks, transform)
        crop, to_crop, crop_lm = align_face(grey, landmarks, self.crop_size)
        return FaceObservation(frame.index, frame.t, landmarks, crop, to_crop, crop_lm, key.blendshapes)

    def close(self) -> None:
        self.inner.close()
