"""Named suppressors: what a calm, talking face does all the time, told apart from a micro-expression.

A seated person blinks, talks, moves the head and looks around; each of these moves the regions the
spotter watches as much as a micro-expression does. Each suppressor here reads one kind of evidence
from the tracked face itself (MediaPipe's blendshapes and landmarks, never the spotter's flow), keeps
its own rolling baseline, and says per frame whether that motion is going on:

- ``blink``: both eyes' ``eyeBlink`` blendshapes rising above their baseline, or both lid apertures
  dropping (a blink closes both eyes; a one-sided lid movement is no blink);
- ``speech``: the mouth opening (``jawOpen`` and the inner-lip gap) going up and down over the last
  ``speech_window_s``, i.e. sustained, quasi-periodic mouth motion;
- ``head``: the head pose changing (roll, scale and the face's position from the alignment
  transform; yaw and pitch from the nose tip against the eyes), which the 2-D alignment leaves
  behind;
- ``gaze``: the ``eyeLook*`` blendshapes changing (the lids follow the eyes).

`Suppression` keeps the flags of the recent frames; when the spotter has judged a candidate, it is
dropped if a suppressor that covers its leading region was active around it (``pad_s`` either side):
blink and head cover every region (a blink moves the eye corners the head-motion fit leans on, so its
error reaches the chin), gaze the eyelids and brows, speech only the mouth and chin (a brow movement
while talking is still reported). Each drop is counted by suppressor name
(`Suppression.stats`, reported in the engine's ``status``), and the dropped intervals are kept with
the suppressor's name in ``vetoed`` (drawn by ``python -m evaluation.plot``).

>>> from spotting.config import SuppressConfig
>>> s = Suppression(SuppressConfig(), fps=25.0)
>>> s.stats()["suppressed_blink"]
0
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.regions import NOSE_TIP, REGION_BASES, base_of
from engine.types import Candidate, FaceObservation
from spotting.signals import RollingStats, eye_apertures, frames_for

if TYPE_CHECKING:
    from spotting.config import SuppressConfig

SUPPRESSORS: tuple[str, ...] = ("blink", "speech", "head", "gaze")
# The region bases (engine.regions.REGION_BASES) each suppressor may silence.
ALL_BASES: frozenset[str] = frozenset(REGION_BASES)
# The region bases (engine.regions.REGION_BASES) each suppressor may silence: a blink moves the eye
# corners the head-motion fit leans on, so its error reaches every region (the chin most of all).
COVERS: dict[str, frozenset[str]] = {
    "blink": ALL_BASES,
    "speech": frozenset({"mouth_corner", "lip_upper", "lip_lower", "chin"}),
    "head": ALL_BASES,
    "gaze": frozenset({"eyelid_upper", "eyelid_lower", "brow_inner", "brow_outer"}),
}
EYE_OUTER_R, EYE_OUTER_L, LIP_INNER_UP, LIP_INNER_LOW = 33, 263, 13, 14
GAZE_KEYS = (
    ("eyeLookOutLeft", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutRight"),  # toward the subject's left
    ("eyeLookUpLeft", "eyeLookUpRight", "eyeLookDownLeft", "eyeLookDownRight"),  # up
)


def head_pose(obs: FaceObservation) -> np.ndarray:
    """(6,) float32: log scale and roll (radians) of the alignment, the face centre's position in face
    widths (x, y) and the nose tip against the eyes (yaw, pitch) in eye distances: what a head
    movement changes and an expression hardly does."""
    a = obs.transform
    scale = float(np.hypot(a[0, 0], a[1, 0]))
    roll = float(np.arctan2(a[1, 0], a[0, 0]))
    size = obs.crop.shape[0]
    # Position of the crop's centre in the original frame, in crop widths (~face widths).
    centre = np.linalg.solve(a[:, :2], np.array([size / 2, size / 2]) - a[:, 2]) / max(size / scale, 1e-9)
    lm = obs.crop_landmarks
    eyes = 0.5 * (lm[EYE_OUTER_R, :2] + lm[EYE_OUTER_L, :2])
    iod = max(float(np.hypot(*(lm[EYE_OUTER_R, :2] - lm[EYE_OUTER_L, :2]))), 1e-6)
    nose = (lm[NOSE_TIP, :2] - eyes) / iod
    return np.array([np.log(max(scale, 1e-9)), roll, centre[0], centre[1], nose[0], nose[1]], np.float32)


def mouth_opening(obs: FaceObservation) -> float:
    """The inner-lip gap over the eye distance (crop landmarks) plus MediaPipe's ``jawOpen``."""
    lm = obs.crop_landmarks
    iod = max(float(np.hypot(*(lm[EYE_OUTER_R, :2] - lm[EYE_OUTER_L, :2]))), 1e-6)
    gap = float(np.hypot(*(lm[LIP_INNER_UP, :2] - lm[LIP_INNER_LOW, :2]))) / iod
    return gap + float(obs.blendshapes.get("jawOpen", 0.0))


def gaze(obs: FaceObservation) -> np.ndarray:
    """(2,) float32: horizontal (toward the subject's left) and vertical (up) gaze from ``eyeLook*``."""
    bs = obs.blendshapes
    h = [bs.get(k, 0.0) for k in GAZE_KEYS[0]]
    v = [bs.get(k, 0.0) for k in GAZE_KEYS[1]]
    return np.array([h[0] - h[1] + h[2] - h[3], v[0] + v[1] - v[2] - v[3]], np.float32)


@dataclass(frozen=True, slots=True)
class FaceCues:
    """What the suppressors read from one observation: ``closed`` min(eyeBlinkLeft, eyeBlinkRight),
    ``apertures`` (2,) lid gap / eye width (left, right), ``mouth`` `mouth_opening`, ``pose`` (6,)
    `head_pose`, ``gaze`` (2,) `gaze`."""

    closed: float
    apertures: np.ndarray
    mouth: float
    pose: np.ndarray
    gaze: np.ndarray

    @classmethod
    def of(cls, obs: FaceObservation) -> FaceCues:
        bs = obs.blendshapes
        closed = min(bs.get("eyeBlinkLeft", 0.0), bs.get("eyeBlinkRight", 0.0))
        return cls(closed, eye_apertures(obs.crop_landmarks), mouth_opening(obs), head_pose(obs), gaze(obs))


class BlinkSuppressor:
    """Both eyes closing: ``min(eyeBlinkLeft, eyeBlinkRight)`` at least ``blink_rise`` above its rolling
    median, or both apertures under ``blink_ratio`` of theirs."""

    name = "blink"

    def __init__(self, cfg: SuppressConfig, fps: float) -> None:
        self.cfg = cfg
        self._stats = RollingStats(3, frames_for(cfg.baseline_s, fps, minimum=8), frames_for(0.2, fps))
        self._min = frames_for(0.5, fps, minimum=4)

    def update(self, cues: FaceCues) -> bool:
        x = np.concatenate([[cues.closed], cues.apertures]).astype(np.float32)
        active = False
        if self._stats.count >= self._min:
            med = self._stats.median
            rising = x[0] - med[0] >= self.cfg.blink_rise
            shut = bool(np.all(x[1:] < self.cfg.blink_ratio * med[1:]))
            active = bool(rising or shut)
        self._stats.push(x)
        return active

    def clear(self) -> None:
        self._stats.clear()


class _ChangeSuppressor:
    """Active when a per-frame vector changed by at least its threshold (per component) over ``lag``."""

    name = ""

    def __init__(self, lag: int, thresholds: np.ndarray) -> None:
        self._past: deque[np.ndarray] = deque(maxlen=lag + 1)
        self._thr = thresholds

    def _value(self, cues: FaceCues) -> np.ndarray:
        raise NotImplementedError

    def update(self, cues: FaceCues) -> bool:
        x = self._value(cues)
        self._past.append(x)
        if len(self._past) < 2:
            return False
        change = np.abs(np.stack(list(self._past)) - x).max(axis=0)
        return bool(np.any(change >= self._thr))

    def clear(self) -> None:
        self._past.clear()


class HeadSuppressor(_ChangeSuppressor):
    """The head moving: a pose component of `head_pose` changed by its threshold within ``head_lag_s``."""

    name = "head"

    def __init__(self, cfg: SuppressConfig, fps: float) -> None:
        thr = np.array(
            [
                cfg.head_scale,
                np.radians(cfg.head_roll_deg),
                cfg.head_shift,
                cfg.head_shift,
                cfg.head_turn,
                cfg.head_turn,
            ],
            np.float32,
        )
        super().__init__(frames_for(cfg.head_lag_s, fps), thr)

    def _value(self, cues: FaceCues) -> np.ndarray:
        return cues.pose


class GazeSuppressor(_ChangeSuppressor):
    """The eyes turning: `gaze` changed by ``gaze_change`` within ``head_lag_s``."""

    name = "gaze"

    def __init__(self, cfg: SuppressConfig, fps: float) -> None:
        super().__init__(frames_for(cfg.head_lag_s, fps), np.full(2, cfg.gaze_change, np.float32))

    def _value(self, cues: FaceCues) -> np.ndarray:
        return cues.gaze


class SpeechSuppressor:
    """Talking: over the last ``speech_window_s`` the mouth opening (`mouth_opening`) swung by at least
    ``speech_swing`` at least ``speech_swings`` times (up-down turns of a sustained rhythm)."""

    name = "speech"

    def __init__(self, cfg: SuppressConfig, fps: float) -> None:
        self.cfg = cfg
        self._x: deque[float] = deque(maxlen=frames_for(cfg.speech_window_s, fps, minimum=4))

    def update(self, cues: FaceCues) -> bool:
        self._x.append(cues.mouth)
        return swings(np.asarray(self._x), self.cfg.speech_swing) >= self.cfg.speech_swings

    def clear(self) -> None:
        self._x.clear()


def swings(x: np.ndarray, size: float) -> int:
    """How many times ``x`` turns after moving at least ``size`` from its last turn (a zig-zag count).

    >>> swings(np.array([0.0, 1.0, 0.0, 1.0, 0.9]), 0.5)
    3
    """
    if len(x) < 2:
        return 0
    n, ref, direction = 0, float(x[0]), 0
    for v in x[1:]:
        d = float(v) - ref
        if (direction >= 0 and d <= -size) or (direction <= 0 and d >= size):
            n += 1
            direction = 1 if d > 0 else -1
            ref = float(v)
        elif (direction > 0 and v > ref) or (direction < 0 and v < ref):
            ref = float(v)
    return n


class Suppression:
    """The suppressors of ``cfg`` over one stream: ``observe`` each observation, ``veto`` each judged
    candidate (the suppressor's name when it is dropped, counted, else None).

    ``flags`` holds the last observation's per-suppressor state (bool per name of `SUPPRESSORS`) for
    plots; `stats` the drops per suppressor and the candidates kept."""

    def __init__(self, cfg: SuppressConfig, fps: float) -> None:
        self.cfg = cfg
        self.fps = fps
        self._suppressors = [
            BlinkSuppressor(cfg, fps),
            SpeechSuppressor(cfg, fps),
            HeadSuppressor(cfg, fps),
            GazeSuppressor(cfg, fps),
        ]
        self._pad = frames_for(cfg.pad_s, fps, minimum=0)
        self._history: deque[tuple[int, np.ndarray]] = deque(maxlen=frames_for(cfg.history_s, fps))
        self.flags: dict[str, bool] = dict.fromkeys(SUPPRESSORS, False)
        self.counts: dict[str, int] = dict.fromkeys(SUPPRESSORS, 0)
        self.kept = 0
        # The last dropped candidates as (onset frame, offset frame, suppressor name), for plots.
        self.vetoed: deque[tuple[int, int, str]] = deque(maxlen=1000)

    def observe(self, index: int, cues: FaceCues) -> None:
        """Update every suppressor with the cues (`FaceCues.of`) of frame ``index`` (every frame, in
        order)."""
        state = np.array([s.update(cues) for s in self._suppressors], bool)
        self._history.append((index, state))
        self.flags = dict(zip(SUPPRESSORS, state.tolist(), strict=True))

    def clear(self) -> None:
        """Forget the baselines (face lost); the counters stay."""
        for s in self._suppressors:
            s.clear()
        self._history.clear()

    def active(self, first: int, last: int) -> dict[str, bool]:
        """Which suppressors were active in any frame of ``first - pad`` .. ``last + pad`` (indices)."""
        lo, hi = first - self._pad, last + self._pad
        states = [st for i, st in self._history if lo <= i <= hi]
        if not states:
            return dict.fromkeys(SUPPRESSORS, False)
        return dict(zip(SUPPRESSORS, np.any(states, axis=0).tolist(), strict=True))

    def veto(self, cand: Candidate) -> str | None:
        """The name of the suppressor that drops ``cand`` (counted), or None (kept, counted)."""
        if not self.cfg.enabled or not cand.regions:
            self.kept += 1
            return None
        lead = base_of(cand.regions[0])
        on = self.active(cand.onset.frame, cand.offset.frame)
        for name in SUPPRESSORS:
            if on[name] and name in self.cfg.use and lead in COVERS[name]:
                self.counts[name] += 1
                self.vetoed.append((cand.onset.frame, cand.offset.frame, name))
                return name
        self.kept += 1
        return None

    def stats(self) -> dict[str, int]:
        """``suppressed_<name>`` per suppressor and ``kept`` (candidates let through)."""
        return {**{f"suppressed_{k}": v for k, v in self.counts.items()}, "kept": self.kept}
