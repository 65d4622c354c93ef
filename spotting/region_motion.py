"""``region-motion``: an online spotter on per-region residual motion of the aligned face crop.

The signal (MEGC feature-difference idea): a micro-expression is a short bump of local motion
against the face's own baseline. Each frame, DIS optical flow runs from the crop ``window_s / 2``
earlier to the current crop (downscaled to ``signal_size``); the similarity motion of the rigid
points is subtracted (head motion the alignment left), and each region of the mesh gets the
length of its mean residual vector. Each region is scored against its own rolling baseline,
``z = (m - median) / MAD`` over ``baseline_s`` of quiet frames, so a region that is always busy
(a talking mouth) needs more to fire than a still brow; a low percentile of the scores across
regions is subtracted, so motion of the whole face (head rotation) does not fire.

An interval opens when any region's ``z`` reaches ``threshold_k``. Its onset is found by walking
back while those regions stayed above ``release_k``; from then on motion of those regions is
measured against a frozen reference (the mean crop of the frames before onset) and scored by the
statistics of motion over ``long_window_s``, so a sustained expression keeps the interval open
(macro) and the return to neutral closes it. It closes after ``merge_gap_s`` below ``release_k``
(hysteresis, which also merges bursts closer than that), or is cut at ``max_duration_s``.

Blinks: when an eye's aperture (lid gap / eye width on the crop landmarks) falls below
``blink_ratio`` of its rolling median, or MediaPipe's eyeBlink blendshape rises, the eyelid regions
are removed from the interval before it is judged, and so are brows and cheeks whose peak stays
under ``blink_spill`` times the eyelids' peak (the flow's patches spread lid motion onto them):
a blink alone yields nothing, a clearly separate movement at the same time still yields a candidate.

Not the default: on the injected benchmark (``bench/spotting.py --spotter region-motion``, held-out
seeds 3-11, landmarks every frame) it finds 2 of 126 events (F1 0.02, 5 false alarms on the
untouched videos), where ``region-bump`` finds 52 (F1 0.46, 8 false alarms). It stays for comparison
and for sustained expressions, which its frozen reference follows; use ``region-bump`` to spot
micro-expressions.

>>> from spotting.config import SpottingConfig
>>> spotter = RegionMotionSpotter(SpottingConfig(), stream="cam0", fps=30.0)
>>> spotter.flush()
[]
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import numpy as np

from engine.face.regions import REGION_NAMES
from engine.types import Candidate, FaceObservation
from spotting.common import FlowFn, RegionSpotterBase
from spotting.config import SpottingConfig
from spotting.signals import EYELID_MASK, PERIOCULAR_MASK, RegionMotion, RollingStats, frames_for

log = logging.getLogger(__name__)

MAX_REF_FRAMES = 16  # the resting reference averages at most this many frames


@dataclass(slots=True)
class _Sample:
    """One frame as the spotter saw it: ``z`` is (R,) float32 region scores, None when unscored."""

    obs: FaceObservation
    z: np.ndarray | None
    blink: bool


@dataclass(slots=True)
class _Interval:
    """An open detection: its frozen reference and the scored frames since onset."""

    ref_signal: np.ndarray
    ref_points: np.ndarray
    samples: list[_Sample]
    active: np.ndarray  # (R,) bool, regions at or above threshold_k when the interval opened
    blink: bool
    last_above: int  # position in samples of the last frame at or above release_k
    below: int = 0  # frames in a row below release_k


class RegionMotionSpotter(RegionSpotterBase):
    """The `spotting.base.Spotter` of issue 2/3: see the module docstring for the method.

    ``fps`` (the nominal rate; see `RegionSpotterBase` for the measured one) converts every duration
    of ``cfg`` into frames; ``motion`` may be passed ready-made (tests), else it is built from
    ``cfg``. One instance per stream, used from one thread.
    """

    min_base_s = 0.2
    stats_per_baseline = 50

    def __init__(
        self,
        cfg: SpottingConfig,
        stream: str,
        fps: float,
        motion: RegionMotion | None = None,
        flow: FlowFn | None = None,
    ) -> None:
        self._open: _Interval | None = None
        super().__init__(cfg, stream, fps, motion, flow)

    def _build(self, fps: float) -> None:
        super()._build(fps)
        cfg = self.cfg
        self.lag = frames_for(cfg.window_s / 2, fps)  # reference distance in frames
        self.hold = frames_for(cfg.merge_gap_s, fps)
        self.long_lag = max(self.lag, frames_for(cfg.long_window_s, fps))
        # The long-distance statistics are a distribution, not a signal: sampling them every
        # ~0.1 s halves the per-frame cost of quiet frames.
        self._long_every = frames_for(0.1, fps)
        self._long_stats = RollingStats(len(REGION_NAMES), max(8, self._n_base // self._long_every), 1)
        self._long_min = min(8, self._min_base)
        self._ref_frames = min(self.lag, MAX_REF_FRAMES)
        # Previous signal crops (signal, sample points, frame index): enough for the long reference,
        # and for an interval's reference to sit before a slow onset.
        keep = max(3 * self.lag, self.long_lag + self._ref_frames) + 1
        self._signals: deque[tuple[np.ndarray, np.ndarray, int]] = deque(maxlen=keep)
        self._recent: deque[_Sample] = deque(maxlen=2 * self.lag + 1)  # idle frames, for the onset walk-back

    @classmethod
    def from_config(cls, cfg: SpottingConfig, stream: str, fps: float) -> RegionMotionSpotter:
        return cls(cfg, stream, fps)

    # -- the Spotter protocol ---------------------------------------------------------------
    def _update(self, obs: FaceObservation) -> list[Candidate]:
        """The next observation (checked); returns the candidates whose interval closed at this frame."""
        sig, points, eyes, blink = self._observe(obs)
        out: list[Candidate] = []
        if self._open is None:
            out = self._idle(obs, sig, eyes, blink)
        else:
            # Against the frozen reference the face drifts for seconds: judge it by the statistics
            # of motion over long_window_s, not over the short lag.
            stats = self._long_stats if self._long_stats.count >= self._long_min else self._stats
            z = self._zscore(self.motion.measure(self._open.ref_signal, self._open.ref_points, sig), stats)
            self.region_scores = z
            out = self._advance(_Sample(obs, z, blink))
        self._signals.append((sig, points, obs.index))
        return out

    def reset(self) -> None:
        """Forget everything (face lost): the open interval is discarded, warm-up starts again."""
        super().reset()
        self._signals.clear()
        self._recent.clear()
        self._long_stats.clear()
        self._open = None

    def _flush(self) -> list[Candidate]:
        """End of stream: close the open interval at its last active frame, then reset."""
        out = self._close(self._open.last_above) if self._open is not None else []
        self.reset()
        return out

    # -- internals ----------------------------------------------------------------------------
    def _reference(self, newest: int) -> tuple[np.ndarray, np.ndarray]:
        """The face at rest: mean signal crop and sample points of up to ``_ref_frames`` frames ending at
        frame ``newest`` (or the oldest kept). Averaging cancels the reference's own sensor noise and
        alignment jitter, which a frozen single-frame reference would add to every later comparison.
        """
        entries = [e for e in self._signals if e[2] <= newest] or [self._signals[0]]
        entries = entries[-self._ref_frames :]
        if len(entries) == 1:
            return entries[0][0], entries[0][1]
        crops = np.stack([e[0] for e in entries])
        mean = (crops.sum(axis=0, dtype=np.uint32) + len(entries) // 2) // len(entries)
        return mean.astype(np.uint8), np.mean([e[1] for e in entries], axis=0, dtype=np.float32)

    def _idle(self, obs: FaceObservation, sig: np.ndarray, eyes: np.ndarray, blink: bool) -> list[Candidate]:
        """No open interval: score against the frame ``lag`` earlier, learn the baseline, maybe open."""
        z: np.ndarray | None = None
        m: np.ndarray | None = None
        if len(self._signals) >= self.lag:
            ref_sig, ref_points = self._reference(self._signals[-self.lag][2])
            m = self.motion.measure(ref_sig, ref_points, sig)
            if self._stats.count >= self._min_base:
                z = self._zscore(m, self._stats)
        self.region_scores = z
        sample = _Sample(obs, z, blink)
        warm = self._start_t is not None and obs.t - self._start_t >= self.cfg.warmup_s
        if z is not None and warm and float(z.max()) >= self.cfg.threshold_k:
            self._start_interval(sample)
            return []
        if m is not None:
            self._stats.push(m)
            if len(self._signals) >= self.long_lag and obs.index % self._long_every == 0:
                ref_sig, ref_points = self._reference(self._signals[-self.long_lag][2])
                self._long_stats.push(self.motion.measure(ref_sig, ref_points, sig))
        self._eye_stats.push(eyes)
        self._recent.append(sample)
        return []

    def _start_interval(self, trigger: _Sample) -> None:
        assert trigger.z is not None
        k_rel = self.cfg.release_k
        active = trigger.z >= self.cfg.threshold_k
        pre: list[_Sample] = []
        for s in reversed(self._recent):
            if s.z is None or float(s.z[active].max()) < k_rel:
                break
            pre.append(s)
        pre.reverse()
        samples = [*pre, trigger]
        onset_index = samples[0].obs.index
        # Reference: before the onset and at least one lag back, so it shows the face at rest.
        want = min(onset_index - 1, trigger.obs.index - self.lag)
        ref_sig, ref_points = self._reference(want)
        first = min(want, self._signals[-1][2]) - self._ref_frames
        blink = trigger.blink or any(s.blink for s in self._recent if s.obs.index > first)
        self._recent.clear()
        self._open = _Interval(ref_sig, ref_points, samples, active, blink, last_above=len(samples) - 1)
        log.debug(
            "interval opened at frame %s (onset %s, reference up to %s)", trigger.obs.index, onset_index, want
        )

    def _advance(self, sample: _Sample) -> list[Candidate]:
        iv = self._open
        assert iv is not None and sample.z is not None
        iv.samples.append(sample)
        iv.blink |= sample.blink
        pos = len(iv.samples) - 1
        if float(sample.z[iv.active].max()) >= self.cfg.release_k:
            iv.last_above, iv.below = pos, 0
        else:
            iv.below += 1
        if iv.below >= self.hold:
            return self._close(iv.last_above)
        if sample.obs.t - iv.samples[0].obs.t >= self.cfg.max_duration_s:
            return self._close(pos)
        return []

    def _close(self, end: int) -> list[Candidate]:
        """Judge the open interval up to position ``end`` and go back to idle after it."""
        iv = self._open
        assert iv is not None
        self._open = None
        # Frames up to the end of the motion must not serve as the next idle reference.
        last_index = iv.samples[end].obs.index
        while self._signals and self._signals[0][2] <= last_index:
            self._signals.popleft()
        cand = self._judge(iv, iv.samples[: end + 1])
        return [cand] if cand is not None else []

    def _judge(self, iv: _Interval, samples: list[_Sample]) -> Candidate | None:
        cfg = self.cfg
        z_all = np.stack([s.z for s in samples])  # every sample of an interval is scored
        allowed = iv.active.copy()
        if iv.blink:
            # A blink moves the lids, and coarse flow spreads that onto the brows and cheeks: drop
            # the lids, and the periocular regions that moved less than that spill-over.
            peaks_all = z_all.max(axis=0)
            spill = cfg.blink_spill * float(peaks_all[EYELID_MASK].max())
            allowed &= ~EYELID_MASK & ~(PERIOCULAR_MASK & (peaks_all < spill))
        if not allowed.any():
            log.debug("interval at frame %s dropped: eyelid motion during a blink", samples[0].obs.index)
            return None
        z = np.where(allowed, z_all, -np.inf)
        score = z.max(axis=1)
        if float(score.max()) < cfg.threshold_k:
            return None
        above = np.flatnonzero(score >= cfg.release_k)
        on, off = int(above[0]), int(above[-1])
        times = np.array([s.obs.t for s in samples])
        off = min(off, int(np.searchsorted(times, times[on] + cfg.max_duration_s, side="right")) - 1)
        duration = float(times[off] - times[on])
        if duration < cfg.min_duration_s:
            return None
        apex = on + int(np.argmax(score[on : off + 1]))
        peaks = z[on : off + 1].max(axis=0)
        order = [int(i) for i in np.argsort(-peaks) if allowed[i]]
        names = [REGION_NAMES[i] for i in order if peaks[i] >= cfg.threshold_k][: cfg.max_regions]
        if not names:
            names = [REGION_NAMES[order[0]]]
        o, a, f = samples[on].obs, samples[apex].obs, samples[off].obs
        cand = self._candidate(o, a, f, float(score[apex]), tuple(names))
        log.debug(
            "candidate %s %s frames %s-%s-%s regions %s",
            cand.kind,
            cand.candidate_id,
            o.index,
            a.index,
            f.index,
            names,
        )
        return cand


def create(cfg: SpottingConfig, stream: str, fps: float, flow: FlowFn | None = None) -> RegionMotionSpotter:
    """Registry factory of ``region-motion``."""
    return RegionMotionSpotter(cfg, stream, fps, flow=flow)
