"""What a region spotter (``region-bump`` today) is built on: input checks, the per-frame signal crop
and eye signals, blink detection, region z-scores and the candidate it emits.

A spotter keeps its own method (what it compares, when an interval opens and closes, how it is
judged); `RegionSpotterBase` holds the steps that do not depend on it.

>>> from spotting.bump import RegionBumpSpotter
>>> from spotting.config import SpottingConfig
>>> spotter = RegionBumpSpotter(SpottingConfig(), stream="cam0", fps=30.0)
>>> isinstance(spotter, RegionSpotterBase), spotter._is_blink(np.ones(4, np.float32))  # no eye baseline yet
(True, False)
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import numpy as np

from engine.regions import REGION_NAMES
from engine.types import Candidate, FaceObservation, TimePoint
from spotting.config import SpottingConfig
from spotting.signals import (
    RegionMotion,
    RollingStats,
    blink_blendshapes,
    eye_apertures,
    frames_for,
    measured_rate,
)

N_LANDMARKS = 478

log = logging.getLogger(__name__)


FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A flow function ``(prev, next) -> H×W×2 float32``: a flow backend's ``compute``."""


class RegionSpotterBase:
    """Shared state and steps of the region spotters; a subclass adds its method as ``_update`` and
    ``_flush`` (the `spotting.base.Spotter` verbs are here) and extends ``_build`` and ``reset``.

    ``fps`` is the source's nominal rate; durations of ``cfg`` are converted into frames at the rate
    the observations' timestamps show (`measured_rate`: the nominal one unless they disagree by more
    than 5 %), measured anew after every reset, and kept in ``fps``. ``motion`` may be passed
    ready-made (tests), else it is built from ``cfg``. The region and eye baselines span
    ``baseline_s``, are trusted after the subclass's ``min_base_s`` (at most the whole baseline) and
    are recomputed ``stats_per_baseline`` times per baseline.
    """

    min_base_s: float
    stats_per_baseline: int
    rate_frames = 9  # observations whose timestamps give the measured rate (8 intervals)

    def __init__(
        self,
        cfg: SpottingConfig,
        stream: str,
        fps: float,
        motion: RegionMotion | None = None,
        flow: FlowFn | None = None,
    ) -> None:
        if not fps > 0:
            raise ValueError(f"expected a frame rate > 0 for the spotter, got {fps!r}")
        self.cfg = cfg
        self.stream = stream
        self.nominal_fps = float(fps)
        self.motion = motion or RegionMotion.from_config(cfg, flow)
        self._pending: list[FaceObservation] | None = []  # frames held while the rate is measured
        self._start_t: float | None = None
        self._last_index: int | None = None
        self.region_scores: np.ndarray | None = None
        """z-scores of the last scored frame by `REGION_NAMES` (None while unscored): for plots, benches."""
        self._build(self.nominal_fps)

    def _build(self, fps: float) -> None:
        """Size everything counted in frames for ``fps``; a subclass extends it with its own. Called
        with the nominal rate, and again after a reset when the frames arrive at another rate."""
        self.fps = float(fps)
        n_base = frames_for(self.cfg.baseline_s, fps, minimum=8)
        self._n_base = n_base
        self._min_base = min(n_base, max(8, frames_for(self.min_base_s, fps)))
        stride = max(1, n_base // self.stats_per_baseline)
        self._stats = RollingStats(len(REGION_NAMES), n_base, stride)
        self._eye_stats = RollingStats(4, n_base, stride)

    # -- the Spotter protocol: the rate is measured, then the subclass's _update / _flush run -------
    def update(self, obs: FaceObservation) -> list[Candidate]:
        """Feed the next observation; returns the candidates whose interval closed.

        The first ``rate_frames`` observations after a start or a reset are held until their
        timestamps give the rate the frames really come at (`measured_rate`), then replayed. Neither
        spotter scores a frame before its ninth (the baseline needs 8 scores), so no candidate comes
        later for it."""
        self._check(obs)
        if self._pending is None:
            return self._update(obs)
        self._pending.append(obs)
        if len(self._pending) < self.rate_frames:
            return []
        return self._replay()

    def flush(self) -> list[Candidate]:
        """End of stream or face lost: judge what is open, return it, forget everything."""
        out = self._replay() if self._pending else []
        return out + self._flush()

    def reset(self) -> None:
        """Forget the baselines and the stream's start and frame order (face lost); the next frames
        measure the rate again."""
        self._stats.clear()
        self._eye_stats.clear()
        self._pending = []
        self._start_t = None
        self._last_index = None
        self.region_scores = None

    def _update(self, obs: FaceObservation) -> list[Candidate]:
        raise NotImplementedError

    def _flush(self) -> list[Candidate]:
        raise NotImplementedError

    def _replay(self) -> list[Candidate]:
        """Settle the rate on the held observations and feed them through."""
        held, self._pending = self._pending or [], None
        # Too few frames or no usable clock keep the rate in use (a face seen for a frame or two).
        rate = measured_rate([o.t for o in held], self.nominal_fps, fallback=self.fps)
        if rate != self.fps:
            if rate != self.nominal_fps:
                log.info(
                    "stream %s: frames arrive at %.2f fps, not the nominal %.2f: durations use %.2f",
                    self.stream,
                    rate,
                    self.nominal_fps,
                    rate,
                )
            self._build(rate)
        out: list[Candidate] = []
        for obs in held:
            out += self._update(obs)
        return out

    def _check(self, obs: FaceObservation) -> None:
        """Raise ``ValueError`` unless ``obs`` has an S×S uint8 crop, 478 crop landmarks and comes
        after the previous frame."""
        crop = obs.crop
        if (
            not isinstance(crop, np.ndarray)
            or crop.ndim != 2
            or crop.dtype != np.uint8
            or (crop.shape[0] != crop.shape[1])
        ):
            got = f"{crop.shape} {crop.dtype}" if isinstance(crop, np.ndarray) else type(crop).__name__
            raise ValueError(f"expected an S×S uint8 grey face crop, got {got}")
        lm = obs.crop_landmarks
        if lm.ndim != 2 or lm.shape[0] != N_LANDMARKS or lm.shape[1] < 2:
            raise ValueError(f"expected {N_LANDMARKS}×2 crop landmarks, got {lm.shape}")
        if self._last_index is not None and obs.index <= self._last_index:
            raise ValueError(
                f"observations must arrive in frame order: frame {obs.index} after {self._last_index}"
            )
        self._last_index = obs.index

    def _observe(self, obs: FaceObservation) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Note the stream's start (``update`` checked ``obs``); returns its signal crop (``signal_size``²
        uint8), the motion sample points (P×2 float32, signal pixels), the eye signals ((4,): apertures
        L/R, eyeBlink blendshapes L/R) and whether an eye is closing. Does not learn the eye baseline."""
        if self._start_t is None:
            self._start_t = obs.t
        sig, points = self.motion.prepare(obs.crop, obs.crop_landmarks)
        eyes = np.concatenate([eye_apertures(obs.crop_landmarks), blink_blendshapes(obs.blendshapes)])
        return sig, points, eyes, self._is_blink(eyes)

    def _is_blink(self, eyes: np.ndarray) -> bool:
        """Either eye closing: aperture below ``blink_ratio`` of its median, or the blendshape rising."""
        if self._eye_stats.count < self._min_base:
            return False
        med = self._eye_stats.median
        closing = eyes[:2] < self.cfg.blink_ratio * med[:2]
        rising = eyes[2:] - med[2:] >= self.cfg.blink_blendshape_rise
        return bool(closing.any() or rising.any())

    def _zscore(self, m: np.ndarray, stats: RollingStats) -> np.ndarray:
        """Region scores (R,) float32 of magnitudes ``m`` (R,): each region against its own baseline,
        minus the face-wide level.

        Subtracting a low percentile across regions removes what moves the whole face at once
        (head rotation's parallax, which the 2-D similarity cannot model) and keeps local motion.
        """
        mad = np.maximum(stats.mad, np.float32(self.cfg.mad_floor_px))
        z = (m - stats.median) / mad
        if self.cfg.global_percentile > 0:
            z = z - max(0.0, float(np.percentile(z, self.cfg.global_percentile)))
        return z.astype(np.float32)

    def _candidate(
        self,
        onset: FaceObservation,
        apex: FaceObservation,
        offset: FaceObservation,
        score: float,
        regions: tuple[str, ...],
    ) -> Candidate:
        """The candidate of an interval judged real: micro when it lasts at most ``micro_max_s``."""
        return Candidate(
            candidate_id=uuid.uuid4().hex,
            stream=self.stream,
            onset=TimePoint(onset.index, onset.t),
            apex=TimePoint(apex.index, apex.t),
            offset=TimePoint(offset.index, offset.t),
            kind="micro" if offset.t - onset.t <= self.cfg.micro_max_s else "macro",
            score=score,
            regions=regions,
            onset_face=onset,
            apex_face=apex,
        )
