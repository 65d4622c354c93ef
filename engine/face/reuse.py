"""Landmark reuse across nearby frames: the face stage at 200 fps on CPU.

MediaPipe's landmarker costs ~8-9 ms per frame on these CPUs, so a 200-fps camera cannot have it
on every frame. Between two landmarker calls (key frames) the face moves little: `ReusingTracker`
tracks a handful of points from the key frame with pyramidal Lucas-Kanade (rigid points: eye
corners, nose bridge, forehead; and probe points on the eyelids), fits a similarity to the
rigid ones, moves the key frame's 478 landmarks by it and aligns the crop as usual
(`engine.face.align.align_face`). The spotter works on aligned crops and measures local motion
itself, so reused landmarks cost it nothing as long as the crop stays aligned.

The landmarker runs again when ``max_reuse`` frames were reused, when the face moved more than
``max_shift`` face widths since the key frame, when Lucas-Kanade loses a probe point or more than
``max_lost`` rigid points (the forehead points near the hairline or the frame's top edge are the
ones it loses), or when a probe point (the eyelids) moved more than ``probe`` face widths off the
similarity of its own eye's two corners (a head turn moves the eyes unlike the nose and forehead,
so the global fit saw lids move that did not): a blink then gets fresh landmarks (and blendshapes),
which the blink suppression needs. Limits are fractions of the face width (contour points 234-454)
so a 640x360 webcam and a 1080p camera behave alike. Lucas-Kanade runs on the key face's region of
the frame only. On WolfgangLanger_Pexels.mp4 (24 fps, face 210 px wide, talking and turning) with
``max_reuse`` 7 the key frames fell from 163 to 126 of 472 with these limits (fixed 8 px / 2 px and
no lost point before) and to 112 with the per-eye probe, at the same injected-benchmark F1 within
its noise; a looser probe (3 px) saved more key frames but missed blinks (F1 0.30 instead of 0.37).
The lips are not probed: the spotter measures mouth motion itself with optical flow, and probing
them sent a talking face to the landmarker on most frames (WolfgangLanger: 279 of 472 key frames
with lip probes at 1 px, 163 with eyelid probes at 2 px, max_reuse 7).

>>> tracker = ReusingTracker(create_tracker(FaceConfig()), ReuseConfig(max_reuse=3), 256)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.face.align import align_face, fit_similarity, transform_points
from engine.face.base import FaceTracker
from engine.regions import RIGID_POINTS, face_width
from engine.types import FaceObservation, Frame

# Probe points that move with blinks: upper and lower lid of each eye.
PROBE_POINTS: tuple[int, ...] = (159, 145, 386, 374)
# Per eye: positions of its two corners in RIGID_POINTS and of its two lids in PROBE_POINTS.
_EYES: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((RIGID_POINTS.index(33), RIGID_POINTS.index(133)), (0, 1)),
    ((RIGID_POINTS.index(362), RIGID_POINTS.index(263)), (2, 3)),
)


@dataclass(frozen=True, slots=True)
class ReuseConfig:
    """When landmarks of a key frame may be reused (see the module docstring)."""

    max_reuse: int = 3  # frames in a row without the landmarker (0 = landmarker on every frame)
    max_shift: float = 0.08  # face motion since the key frame (face widths) that forces a refresh
    probe: float = 0.01  # non-rigid motion of an eyelid probe (face widths: 2 px of a 200 px face)
    max_lost: int = 3  # rigid points Lucas-Kanade may lose (the similarity is fitted on the rest)
    lk_window: int = 15  # Lucas-Kanade window side in pixels
    lk_levels: int = 2  # pyramid levels

    def __post_init__(self) -> None:
        if self.max_reuse < 0 or self.max_shift <= 0 or self.probe <= 0 or self.max_lost < 0:
            raise ValueError(f"expected max_reuse, max_lost >= 0 and positive motion limits, got {self}")


class ReusingTracker:
    """A `FaceTracker` that calls ``inner`` only on key frames and reuses its landmarks in between.

    ``keyframes`` and ``reused`` count the two kinds of frames (for benches and status).
    """

    def __init__(self, inner: FaceTracker, cfg: ReuseConfig, crop_size: int) -> None:
        self.inner = inner
        self.cfg = cfg
        self.crop_size = crop_size
        self._key_grey: np.ndarray | None = None  # the key frame's face region (grey)
        self._roi = (0, 0, 0, 0)  # x0, y0, x1, y1 of that region in the frame
        self._width = 0.0  # the key face's width in frame pixels
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
        self._key, self._key_grey, self._since = obs, None, 0
        if obs is not None:
            self._set_key(obs, grey)
        return obs

    def _set_key(self, key: FaceObservation, grey: np.ndarray) -> None:
        """Keep the key frame's face region (the points' box plus the largest allowed shift and the
        Lucas-Kanade reach): later frames are tracked in that region only (~2x cheaper than the frame)."""
        pts = key.landmarks[self._idx, :2]
        width = face_width(key.landmarks)
        reach = self.cfg.max_shift * width + self.cfg.lk_window * 2**self.cfg.lk_levels
        h, w = grey.shape
        x0, y0 = (max(0, int(v - reach)) for v in pts.min(axis=0))
        x1, y1 = (int(v + reach) + 1 for v in pts.max(axis=0))
        x1, y1 = min(w, x1), min(h, y1)
        self._roi = (x0, y0, x1, y1)
        self._width = width
        self._key_grey = grey[y0:y1, x0:x1]

    def _reuse(self, frame: Frame, grey: np.ndarray) -> FaceObservation | None:
        key, key_grey = self._key, self._key_grey
        assert key is not None and key_grey is not None
        x0, y0, x1, y1 = self._roi
        offset = np.array([x0, y0], np.float32)
        p0 = (key.landmarks[self._idx, :2].astype(np.float32) - offset).reshape(-1, 1, 2)
        win = (self.cfg.lk_window, self.cfg.lk_window)
        p1, status, _ = cv2.calcOpticalFlowPyrLK(
            key_grey,
            grey[y0:y1, x0:x1],
            p0,
            None,
            winSize=win,
            maxLevel=self.cfg.lk_levels,
            criteria=self._criteria,
        )
        if p1 is None:
            return None
        n = self._n_rigid
        found = status.ravel().astype(bool)
        if not found[n:].all() or int((~found[:n]).sum()) > self.cfg.max_lost:
            return None
        src, dst = p0.reshape(-1, 2) + offset, p1.reshape(-1, 2) + offset
        rigid = found[:n]
        transform = fit_similarity(src[:n][rigid], dst[:n][rigid])
        width = self._width
        if float(np.abs(dst[:n][rigid] - src[:n][rigid]).max()) > self.cfg.max_shift * width:
            return None
        # Each eye's lids against the similarity of that eye's own two corners: a head turn moves the
        # eyes unlike the nose and forehead the global fit leans on, a blink moves lids off corners.
        for corners, lids in _EYES:
            if not found[list(corners)].all():
                return None
            t_eye = fit_similarity(src[list(corners)], dst[list(corners)])
            off = dst[[n + i for i in lids]] - transform_points(src[[n + i for i in lids]], t_eye)
            if float(np.hypot(off[:, 0], off[:, 1]).max()) > self.cfg.probe * width:
                return None  # an eyelid moved on its own (a blink): fresh landmarks
        landmarks = transform_points(key.landmarks, transform)
        crop, to_crop, crop_lm = align_face(grey, landmarks, self.crop_size)
        return FaceObservation(frame.index, frame.t, landmarks, crop, to_crop, crop_lm, key.blendshapes)

    def close(self) -> None:
        self.inner.close()
