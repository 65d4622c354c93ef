"""``region-bump``: an online spotter on the per-region *bump* of residual motion (feature difference).

The MEGC feature-difference idea (Li et al., "Can micro-expression be recognized...", 2018; the
MDMD baseline) written with optical flow: a micro-expression is a movement that goes out and comes
back within a fraction of a second, so frame ``t`` differs from both frame ``t - k`` and frame
``t + k`` in the same way, while a slow head drift or a sustained expression does not. With
``v_t`` the residual (head motion removed) mean flow vector of each region from frame ``t - k`` to
frame ``t``, the bump is::

    b_t = (v_t - v_{t+k}) / 2  ≈  d(t) - (d(t - k) + d(t + k)) / 2

where ``d`` is a region's displacement. A constant-velocity drift cancels exactly, a step (onset
of a sustained expression) gives half, a transient of duration up to ``2k`` gives all of it. One
DIS flow per frame (``k = bump.lag_s`` frames back), so the cost stays ~0.5 ms per frame; the
answer comes ``k`` frames late.

Each region's ``|b|`` is scored against its own rolling median / MAD over ``baseline_s`` (an
adaptive threshold), minus a low percentile across regions (motion of the whole face). An
interval opens when a region's score reaches ``bump.threshold_k`` and closes after ``merge_gap_s``
below ``bump.release_k`` (hysteresis; this also merges bursts). Its extent is then delineated on
the bump's projection onto the peak direction (the side lobes at ``±k`` point the other way):
the frames where it stays above ``bump.frac`` of the peak, widened by the share of a
raised-cosine profile that lies under that fraction. Micro vs macro by the resulting duration.

The span so delineated is too short: near a movement's edges the frames ``t ± k`` the bump compares
with lie inside the movement, so the bump drops under ``bump.frac`` while the face is still displaced
(a raised-cosine model puts the onset 0-0.7 lags late and the offset 0.3-3 lags early for rises and
falls of 0.5-3 lags; falls are the longer side in the annotation sheets). The shortest-duration rule
(``min_duration_s``) still judges the span the bump delineates; the reported onset then moves
``bump.extend_onset`` lags earlier and the offset ``bump.extend_offset`` lags later. Because the
rule judges that shorter span, a movement under about 0.2 s rarely passes it; the rule mostly holds
back the face's own short movements.

Blinks: an eye aperture below ``blink_ratio`` of its rolling median (or MediaPipe's eyeBlink
rising) removes, in the frames within ``2k`` of it, the eyelid regions and every other region under
``blink_spill`` of the lids' peak there (a blink moves the eye corners the head-motion fit relies
on, so its error reaches the chin too); a movement further away in the same interval still counts.

Bilateral movements: a region moving on both sides at once fires at ``1 / bump.pair_gain`` of the
threshold (most action units are bilateral; talking, a blink's spill
and head motion rarely move both sides alike). Speech: when the mouth regions were above the
release level in more than ``speech_fraction`` of the last ``speech_window_s`` (talking is
sustained, rhythmic mouth motion), mouth regions cannot open an interval and their threshold is
multiplied by ``speech_gain`` in the judgement; a brow or nose movement while talking still fires.

Judging picks the apex on a running mean of the ratio over ``k`` frames (a movement's bump lasts
about ``k`` frames, a flow glitch one); when that movement delineates shorter than
``min_duration_s``, the next strongest one of the interval is tried. A window of ``k`` frames can
straddle a movement's main lobe and the opposite side lobe a lag away, so the pick may land on the
side lobe (reported with its apex before its onset): a pick with a stronger opposite bump within
``lobe_reach`` lags is moved to that main lobe.

The engine's default spotter. How its defaults were chosen on the injected benchmark
(``bench/spotting.py``), with the measured figures: docs/spotting-tuning.md.

>>> from spotting.config import SpottingConfig
>>> RegionBumpSpotter(SpottingConfig(), stream="cam0", fps=30.0).flush()
[]
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from engine.regions import REGION_BASES, REGION_NAMES, base_of
from engine.types import Candidate, FaceObservation
from spotting.common import FlowFn, RegionSpotterBase
from spotting.config import SpottingConfig
from spotting.signals import EYELID_MASK, RegionMotion, frames_for
from spotting.suppress import FaceCues, Suppression

log = logging.getLogger(__name__)

MOUTH_BASES = frozenset({"mouth_corner", "lip_upper", "lip_lower", "chin"})
MOUTH_MASK: np.ndarray = np.array([base_of(n) in MOUTH_BASES for n in REGION_NAMES], dtype=bool)
# Columns of the subject's left and right region of each base name (brow_inner_L / brow_inner_R, ...).
PAIR_L: np.ndarray = np.array([REGION_NAMES.index(f"{b}_L") for b in REGION_BASES], dtype=np.int64)
PAIR_R: np.ndarray = np.array([REGION_NAMES.index(f"{b}_R") for b in REGION_BASES], dtype=np.int64)


def with_pairs(ratio: np.ndarray, pair_gain: float) -> np.ndarray:
    """``ratio`` (..., R: score / threshold, >= 1 fires) with both sides of a region raised to
    ``pair_gain × min(left, right)`` where that is higher: a movement on both sides (most action units)
    fires at ``1 / pair_gain`` of the one-sided threshold, since talking and head motion rarely move
    the two sides alike. ``pair_gain`` <= 1 leaves ``ratio`` as it is."""
    if pair_gain <= 1.0:
        return ratio
    both = pair_gain * np.minimum(ratio[..., PAIR_L], ratio[..., PAIR_R])
    out = ratio.copy()
    out[..., PAIR_L] = np.maximum(out[..., PAIR_L], both)
    out[..., PAIR_R] = np.maximum(out[..., PAIR_R], both)
    return out


def running_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Mean of ``x`` (T, ...) over a window of ``width`` rows centred on each row (fewer at the ends).

    >>> running_mean(np.array([0.0, 3.0, 0.0, 0.0]), 3).tolist()
    [1.5, 1.0, 1.0, 0.0]
    """
    n = len(x)
    c = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    first = np.arange(n) - width // 2
    start, stop = np.clip(first, 0, n), np.clip(first + width, 0, n)
    return (c[stop] - c[start]) / (stop - start).reshape(-1, *([1] * (x.ndim - 1)))


@dataclass(slots=True)
class _Step:
    """A frame whose flow from ``k`` frames earlier is known: ``v`` is (R, 2) float32 region vectors."""

    obs: FaceObservation
    v: np.ndarray
    blink: bool


@dataclass(slots=True)
class _Scored:
    """A frame whose bump is known: ``b`` (R, 2) bump vectors, ``z`` (R,) scores, ``speech`` flag."""

    obs: FaceObservation
    b: np.ndarray
    z: np.ndarray
    blink: bool
    speech: bool


class RegionBumpSpotter(RegionSpotterBase):
    """The `spotting.base.Spotter` ``region-bump``; see the module docstring for the method.

    ``fps`` (the nominal rate; see `RegionSpotterBase` for the measured one) converts every duration
    of ``cfg`` into frames. One instance per stream, one thread.
    ``region_scores`` / ``region_thresholds`` hold the last scored frame's values (for plots),
    ``scored_index`` its frame index (``k`` frames behind the newest observation).
    """

    min_base_s = 0.5
    stats_per_baseline = 60
    # Peaks of an interval tried in turn when the strongest delineates too short (a glitch, a lobe).
    # How this and lobe_reach were chosen: docs/spotting-tuning.md.
    peak_tries = 2
    # A pick is checked for a stronger opposite bump this many lags either side (`_main_lobe`): side
    # lobes sit about one lag from the main one; much wider, and the check reaches a neighbouring
    # movement of a busy stretch.
    lobe_reach = 1.5

    def __init__(
        self,
        cfg: SpottingConfig,
        stream: str,
        fps: float,
        motion: RegionMotion | None = None,
        flow: FlowFn | None = None,
    ) -> None:
        self._open_at: int | None = None  # history position (as frame index) where the open interval began
        self._below = 0
        self.region_thresholds: np.ndarray | None = None
        self.scored_index: int | None = None
        super().__init__(cfg, stream, fps, motion, flow)

    def _build(self, fps: float) -> None:
        super()._build(fps)
        cfg = self.cfg
        self.k = frames_for(cfg.bump.lag_s, fps)
        self.hold = frames_for(cfg.merge_gap_s, fps)
        self._extend_on = round(cfg.bump.extend_onset * self.k)
        self._extend_off = round(cfg.bump.extend_offset * self.k)
        self._signals: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=self.k + 1)
        self._steps: deque[_Step] = deque(maxlen=self.k + 1)
        self._speech_n = frames_for(cfg.speech_window_s, fps)
        self._mouth_hits: deque[bool] = deque(maxlen=self._speech_n)
        self._max_len = frames_for(cfg.max_duration_s, fps)
        # Scored frames kept for delineation: the longest interval plus the bump's side lobes.
        self._history: deque[_Scored] = deque(maxlen=self._max_len + 4 * self.k + 2 * self.hold + 4)
        # -- suppression (spotting/suppress.py): rebuilt at the measured rate, its counters kept
        old = getattr(self, "suppression", None)
        self.suppression = Suppression(cfg.suppress, fps)
        if old is not None:
            self.suppression.counts, self.suppression.kept = old.counts, old.kept

    # -- the Spotter protocol ---------------------------------------------------------------
    def _update(self, obs: FaceObservation) -> list[Candidate]:
        """The next observation (checked); returns candidates whose interval closed (``k`` frames late)."""
        sig, points, eyes, blink = self._observe(obs)
        self._eye_stats.push(eyes)
        if self.cfg.suppress.enabled:  # suppression: off by default, then it costs nothing
            self.suppression.observe(obs.index, FaceCues.of(obs))
        out: list[Candidate] = []
        if len(self._signals) == self._signals.maxlen:
            ref, ref_points = self._signals[0]
            v = self.motion.measure_vectors(ref, ref_points, sig)
            if len(self._steps) == self._steps.maxlen:
                out = self._score(self._steps[0], v)
            self._steps.append(_Step(obs, v, blink))
        self._signals.append((sig, points))
        return out

    def reset(self) -> None:
        """Forget everything (face lost): an open interval is discarded, warm-up starts again."""
        super().reset()
        self._signals.clear()
        self._steps.clear()
        self._history.clear()
        self._mouth_hits.clear()
        self.suppression.clear()  # suppression
        self._open_at = None
        self._below = 0
        self.region_thresholds = None
        self.scored_index = None

    def _flush(self) -> list[Candidate]:
        """End of stream: judge the open interval with what was scored, then reset."""
        out: list[Candidate] = []
        if self._open_at is not None:
            cand = self._judge()
            out = [cand] if cand is not None else []
        self.reset()
        return out

    # -- internals ----------------------------------------------------------------------------
    def _score(self, step: _Step, v_later: np.ndarray) -> list[Candidate]:
        """The bump of ``step`` now that the flow ``k`` frames later is known; drive the interval."""
        cfg = self.cfg
        b = 0.5 * (step.v - v_later)
        m = np.hypot(b[:, 0], b[:, 1]).astype(np.float32)
        z: np.ndarray | None = None
        if self._stats.count >= self._min_base:
            z = self._zscore(m, self._stats)
        self._stats.push(m)
        if z is None:
            return []
        self._mouth_hits.append(bool(z[MOUTH_MASK].max() >= cfg.bump.release_k))
        speech = len(self._mouth_hits) >= self._speech_n // 2 and (
            sum(self._mouth_hits) / len(self._mouth_hits) >= cfg.speech_fraction
        )
        thresholds = self._thresholds(speech)
        self.region_scores, self.region_thresholds, self.scored_index = z, thresholds, step.obs.index
        self._history.append(_Scored(step.obs, b, z, step.blink, speech))
        warm = step.obs.t - (self._start_t or 0.0) >= cfg.warmup_s
        if self._open_at is None:
            fire = with_pairs(z / thresholds, cfg.bump.pair_gain) >= 1.0
            if speech:
                fire &= ~MOUTH_MASK
            if warm and fire.any():
                self._open_at = step.obs.index
                self._below = 0
            return []
        if float(z.max()) >= cfg.bump.release_k:
            self._below = 0
        else:
            self._below += 1
        too_long = step.obs.index - self._open_at >= self._max_len
        if self._below >= self.hold or too_long:
            cand = self._judge()
            return [cand] if cand is not None else []
        return []

    def stats(self) -> dict[str, int]:
        """Candidates dropped per suppressor (``suppressed_blink``, ...) and kept, since the start."""
        return self.suppression.stats()

    def _thresholds(self, speech: bool) -> np.ndarray:
        """The regions' thresholds (R,) float32 on a frame: the mouth's ``speech_gain`` higher in speech."""
        thresholds = np.full(len(REGION_NAMES), self.cfg.bump.threshold_k, np.float32)
        if speech:
            thresholds[MOUTH_MASK] *= self.cfg.speech_gain
        return thresholds

    def _judge(self) -> Candidate | None:
        """Delineate and judge the open interval; back to idle."""
        cfg = self.cfg
        opened = self._open_at
        self._open_at = None
        hist = list(self._history)
        pos = {s.obs.index: i for i, s in enumerate(hist)}
        i0 = pos.get(opened if opened is not None else -1, 0)
        i1 = len(hist) - 1 - self._below  # the last frame at or above release
        if i1 < i0:
            return None
        seg = hist[i0 : i1 + 1]
        z_all = np.stack([s.z for s in seg])  # (T, R)
        thr = np.stack([self._thresholds(s.speech) for s in seg])
        ratio = with_pairs(z_all / thr, cfg.bump.pair_gain)  # (T, R): >= 1 fires
        # Frames within 2k of a blink (a bump spans the flows from k before to k after its frame, and a
        # blink lasts up to about k): a blink also moves the eye corners, which the head-motion fit
        # leans on, so its error spreads over the whole face; there the lids are out and every other
        # region must outgrow the spill. A movement further from the blink is judged as it is.
        blinks = np.array([s.blink for s in hist], bool)
        reach = 2 * self.k
        near = np.array([bool(blinks[max(0, i - reach) : i + reach + 1].any()) for i in range(i0, i1 + 1)])
        if near.any():
            peaks_near = z_all[near].max(axis=0)
            spill = cfg.blink_spill * float(peaks_near[EYELID_MASK].max())
            allowed = ~EYELID_MASK & (peaks_near >= spill)
            ratio[near] = np.where(allowed, ratio[near], -np.inf)
        if not np.isfinite(ratio).any() or float(ratio.max()) < 1.0:
            log.debug("interval at frame %s dropped (blink or speech only)", seg[0].obs.index)
            return None
        # The apex is picked on a running mean of the ratio over k frames: a movement's bump lasts
        # about k frames, a flow glitch one; the frame picked must fire on its own too.
        finite = np.isfinite(ratio)
        pick = np.where(finite, running_mean(np.where(finite, ratio, 0.0), self.k), -np.inf)
        for _ in range(self.peak_tries):
            t_pick, r_peak = np.unravel_index(int(np.argmax(pick)), ratio.shape)
            if not np.isfinite(pick[t_pick, r_peak]) or ratio[t_pick, r_peak] < 1.0:
                return None
            # The running mean may land on a side lobe (the mean of k frames straddles both lobes of a
            # movement as long as the lag): judge the movement at its main lobe instead.
            t_peak = self._main_lobe(hist, i0, i1, int(t_pick), ratio)
            span = self._delineate(hist, i0, i1, t_peak, ratio[t_peak])
            if span is not None:
                on_i, apex_i, off_i, names = span
                # The shortest-duration rule judges the span the bump itself delineates (glitches are
                # short there); the extent reported is then widened by what the kernel cut off.
                if hist[off_i].obs.t - hist[on_i].obs.t >= cfg.min_duration_s:
                    # The frames after the last scored one are known too (their bump is not yet); the
                    # steps hold the scored frame itself only while it is being scored (not at flush).
                    last = hist[-1].obs.index
                    frames = [s.obs for s in hist] + [s.obs for s in self._steps if s.obs.index > last]
                    on_i = max(0, on_i - self._extend_on)
                    off_i = min(len(frames) - 1, off_i + self._extend_off)
                    o, ap, e = frames[on_i], frames[apex_i], frames[off_i]
                    cand = self._candidate(o, ap, e, float(z_all[t_peak, r_peak]), names)
                    # -- suppression: a blink, speech, head movement or gaze shift explains it
                    why = self.suppression.veto(cand)
                    if why is not None:
                        log.debug("candidate frames %s-%s suppressed: %s", o.index, e.index, why)
                        return None
                    log.debug("candidate %s frames %s-%s-%s", cand.kind, o.index, ap.index, e.index)
                    return cand
            # Too short or a side lobe: the next strongest movement of the interval, away from this one.
            for t in {int(t_pick), t_peak}:
                pick[max(0, t - self.k) : t + self.k + 1] = -np.inf
        return None

    def _active(self, ratio: np.ndarray) -> list[int]:
        """The regions (indices) a movement with region ratios ``ratio`` (R,) is judged on: the
        strongest ``max_regions`` at half the threshold or more."""
        return [int(r) for r in np.argsort(-ratio) if ratio[r] >= 0.5][: self.cfg.max_regions]

    @staticmethod
    def _projection(hist: list[_Scored], apex_i: int, active: list[int], lo: int, hi: int) -> np.ndarray:
        """The bump of the regions ``active`` at ``hist[lo:hi]`` projected on their directions at
        ``hist[apex_i]`` and summed: (hi - lo,) float, positive where they move as at the apex."""
        dirs = hist[apex_i].b[active]
        norms = np.maximum(np.hypot(dirs[:, 0], dirs[:, 1]), 1e-6)
        return np.array([float(np.sum((s.b[active] * dirs).sum(axis=1) / norms)) for s in hist[lo:hi]])

    def _main_lobe(self, hist: list[_Scored], i0: int, i1: int, t_peak: int, ratio: np.ndarray) -> int:
        """``t_peak`` (a position in the interval ``hist[i0:i1 + 1]``, ``ratio`` its (T, R) ratios), or
        the main lobe of the movement when ``t_peak`` is one of its side lobes.

        A movement's bump is flanked, about a lag before and after, by lobes pointing the other way and
        at most about half as strong (the frames ``t ± k`` it is compared with lie inside it there). So
        when the bump within ``lobe_reach`` lags of ``t_peak`` points the opposite way more strongly than at
        ``t_peak`` itself, ``t_peak`` is a side lobe, and that stronger opposite frame (if it fires on
        its own) is where the movement is."""
        apex_i = i0 + t_peak
        active = self._active(ratio[t_peak])
        reach = round(self.lobe_reach * self.k)
        lo, hi = max(i0, apex_i - reach), min(i1 + 1, apex_i + reach + 1)
        proj = self._projection(hist, apex_i, active, lo, hi)
        j = int(np.argmin(proj))
        main = lo + j - i0
        if proj[j] < -proj[apex_i - lo] and float(ratio[main].max()) >= 1.0:
            return main
        return t_peak

    def _delineate(
        self, hist: list[_Scored], i0: int, i1: int, t_peak: int, ratio: np.ndarray
    ) -> tuple[int, int, int, tuple[str, ...]] | None:
        """Onset, apex and offset (positions in ``hist``) and the region names of the movement peaking
        at ``i0 + t_peak`` with region ratios ``ratio`` (R,); None when its projection is not positive.

        The bump of the strongest regions is projected on their peak directions, from the side lobe
        before to the side lobe after: positive over the movement, negative in the lobes."""
        cfg = self.cfg
        apex_i = i0 + t_peak
        active = self._active(ratio)
        lo, hi = max(0, i0 - 2 * self.k), min(len(hist), i1 + 2 * self.k + 1)
        proj = self._projection(hist, apex_i, active, lo, hi)
        peak = proj[apex_i - lo]
        if peak <= 0:
            return None
        frac = cfg.bump.frac
        a = apex_i - lo
        while a > 0 and proj[a - 1] >= frac * peak:
            a -= 1
        f = apex_i - lo
        while f < len(proj) - 1 and proj[f + 1] >= frac * peak:
            f += 1
        # A raised-cosine rise is under frac of its peak for the first u0 of its length: widen by it.
        u0 = math.acos(1.0 - 2.0 * frac) / math.pi
        grow = u0 / max(1.0 - u0, 1e-6)
        on_i = max(0, lo + a - round(grow * (apex_i - lo - a)))
        off_i = min(len(hist) - 1, lo + f + round(grow * (lo + f - apex_i)))
        return on_i, apex_i, off_i, tuple(REGION_NAMES[r] for r in active)


def create(cfg: SpottingConfig, stream: str, fps: float, flow: FlowFn | None = None) -> RegionBumpSpotter:
    """Registry factory of ``region-bump``."""
    return RegionBumpSpotter(cfg, stream, fps, flow=flow)
