"""FACS-driven face warping for synthetic micro-expressions with known ground truth.

A micro-expression moves the skin by a pixel or two for 0.04-0.5 s. This module makes such
movements on demand: each action unit moves the mesh regions `engine.facs.AU_MOVES` says it moves
(region names from `engine.regions`, subject's own sides) in the direction FACS gives, as a
smooth displacement field (a sum of Gaussian bumps anchored on the region's landmarks, sigma scaled
to the face) times an onset-apex-offset profile. Frames are warped with ``cv2.remap`` using the
backward map ``src(p) = p - w * d(p)``, so texture at ``q`` moves to about ``q + w * d(q)`` (exact to
first order for the smooth, small fields used here).

Used by the `demo` source (below the sources: it imports no later stage) and by the offline
injected-event benchmark (`evaluation.inject`). Events are drawn with `plan_events`: durations from
a `DurationSampler` (`UniformDurations` here; real annotated events in `evaluation.annotations`),
emotion and AUs from `engine.facs.DISPLAYS`; the truth is written in the CAS(ME)^2 long-video layout.

>>> import numpy as np
>>> from engine.sources.demo import demo_landmarks  # 478x2 landmarks of the shipped demo face
>>> lm = demo_landmarks()
>>> field = displacement_field(lm, (512, 512), (6, 12), amplitude_px=2.0)
>>> field.shape, field.dtype
((512, 512, 2), dtype('float32'))
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from engine.facs import AU_MOVES, BLINK_AU, DISPLAYS, SUPPORTED_AUS, megc_class
from engine.regions import EYE_L, EYE_R, REGIONS, RIGID_POINTS, face_width
from engine.types import Side, TimePoint

# Amplitudes are given for a face this wide (pixels between the face-contour points 234 and 454).
REFERENCE_FACE_WIDTH = 200.0
# Gaussian bump sigma as a fraction of the face width (12 px on a 200 px face): wide enough for a
# smooth field over the region's landmarks, narrow enough to stay inside the region.
SIGMA_FRAC = 0.06
# Real action units leave the eye corners, the nose bridge and tip and the upper forehead in place
# (they are the rigid points the head motion is measured on). Each bump is multiplied by
# prod_r (1 - exp(-|p - r|^2 / (2 s^2))) over those points, s = RIGID_SIGMA_FRAC × face width
# (5 px on a 200 px face): zero at the rigid points, untouched a couple of s away.
RIGID_SIGMA_FRAC = 0.025
_UPPER_TRAVEL = 0.75  # in a blink the upper lid covers 3/4 of the opening, the lower lid rises 1/4

# The subject's lateral axis runs from the right eye's outer corner to the left eye's (image left
# to image right on a non-mirrored frame); the face width is `engine.regions.face_width`.
_EYE_OUTER_R, _EYE_OUTER_L = 33, 263


@dataclass(frozen=True, slots=True)
class InjectedEvent:
    """One injected movement. ``onset``/``apex``/``offset`` are frame indices (onset <= apex <= offset);
    ``amplitude_px`` the peak displacement on a 200 px wide face; ``side`` L / R / B (subject's)."""

    onset: int
    apex: int
    offset: int
    aus: tuple[int, ...]
    emotion: str = "others"
    emotion_detail: str = "others"
    amplitude_px: float = 2.0
    side: Side = "B"

    def __post_init__(self) -> None:
        if not self.onset <= self.apex <= self.offset:
            raise ValueError(
                f"expected onset <= apex <= offset, got {self.onset}, {self.apex}, {self.offset}"
            )
        unknown = [a for a in self.aus if a not in SUPPORTED_AUS]
        if unknown:
            raise ValueError(f"AU {unknown} cannot be injected; supported: {list(SUPPORTED_AUS)}")

    def active(self, frame_index: int) -> bool:
        return self.onset <= frame_index <= self.offset


@dataclass(frozen=True, slots=True)
class TruthEvent:
    """Ground truth of one injected event in stream time (what a spotter should find)."""

    onset: TimePoint
    apex: TimePoint
    offset: TimePoint
    aus: tuple[int, ...]
    emotion: str
    emotion_detail: str
    amplitude_px: float
    side: Side = "B"
    kind: str = field(default="micro")

    @property
    def duration(self) -> float:
        return self.offset.t - self.onset.t

    @classmethod
    def from_event(cls, ev: InjectedEvent, fps: float, micro_max_s: float = 0.5) -> TruthEvent:
        """Times from frame indices at ``fps``; ``kind`` micro when onset-to-offset <= ``micro_max_s``."""
        tp = [TimePoint(i, i / fps) for i in (ev.onset, ev.apex, ev.offset)]
        kind = "micro" if (ev.offset - ev.onset) / fps <= micro_max_s + 1e-9 else "macro"
        return cls(tp[0], tp[1], tp[2], ev.aus, ev.emotion, ev.emotion_detail, ev.amplitude_px, ev.side, kind)


# ---------------------------------------------------------------------------------------------
# Geometry


def face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(lateral, up, face_width) of a 478×2 mesh: ``lateral`` the unit vector toward the subject's left
    (image right on a non-mirrored frame), ``up`` the unit vector toward the forehead, in pixels."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    if pts.shape[0] < 478:
        raise ValueError(f"expected the 478-point MediaPipe mesh, got {pts.shape[0]} points")
    lateral = pts[_EYE_OUTER_L] - pts[_EYE_OUTER_R]
    norm = float(np.hypot(*lateral))
    if norm < 1e-6:
        raise ValueError("degenerate landmarks: the eye corners coincide")
    lateral /= norm
    up = np.array([lateral[1], -lateral[0]])
    return lateral, up, face_width(pts)


def _sides(side: Side) -> tuple[str, ...]:
    return {"B": ("L", "R"), "L": ("L",), "R": ("R",)}[side]


def _add_region_bump(
    out: np.ndarray,
    points: np.ndarray,
    vector: np.ndarray,
    sigma: float,
    still: np.ndarray | None = None,
    still_sigma: float = 1.0,
) -> None:
    """Add ``vector`` × (sum of Gaussians on ``points``, normalised to peak 1) to ``out`` in place.

    ``still`` (K×2) are points that must not move (the rigid points): the bump is multiplied by
    ``prod_k (1 - exp(-|p - still_k|^2 / (2 still_sigma^2)))``, so it vanishes there. Computed on the
    bounding box of the points widened by 3 sigma, so the cost does not grow with the frame size."""
    h, w = out.shape[:2]
    pad = 3.0 * sigma
    x0 = max(math.floor(float(points[:, 0].min()) - pad), 0)
    x1 = min(math.ceil(float(points[:, 0].max()) + pad) + 1, w)
    y0 = max(math.floor(float(points[:, 1].min()) - pad), 0)
    y1 = min(math.ceil(float(points[:, 1].max()) + pad) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return
    xs = np.arange(x0, x1, dtype=np.float32)
    ys = np.arange(y0, y1, dtype=np.float32)
    inv = np.float32(-0.5 / (sigma * sigma))
    s = np.zeros((y1 - y0, x1 - x0), np.float32)
    for px, py in points:  # separable Gaussian: outer product of 1-D profiles
        s += np.outer(np.exp(inv * (ys - py) ** 2), np.exp(inv * (xs - px) ** 2))
    peak = float(s.max())
    if peak <= 0:
        return
    s /= peak
    if still is not None:
        inv_r = np.float32(-0.5 / (still_sigma * still_sigma))
        for px, py in still:
            if x0 - pad <= px < x1 + pad and y0 - pad <= py < y1 + pad:
                s *= 1.0 - np.outer(np.exp(inv_r * (ys - py) ** 2), np.exp(inv_r * (xs - px) ** 2))
    out[y0:y1, x0:x1, 0] += np.float32(vector[0]) * s
    out[y0:y1, x0:x1, 1] += np.float32(vector[1]) * s


def displacement_field(
    landmarks: np.ndarray,
    shape: tuple[int, ...],
    aus: Sequence[int],
    amplitude_px: float,
    side: Side = "B",
    sigma_frac: float = SIGMA_FRAC,
) -> np.ndarray:
    """The forward displacement (H×W×2 float32, pixels, x right / y down) of ``aus`` at their apex.

    ``landmarks``: 478×2 (or ×3) mesh in pixels of the frame; ``shape``: the frame's (H, W[, C]);
    ``amplitude_px``: peak displacement on a 200 px wide face, scaled to this face's width;
    ``side``: the subject's side(s) the AUs act on. AU45 (blink) is handled by `blink_field`.
    """
    h, w = int(shape[0]), int(shape[1])
    pts = np.asarray(landmarks, dtype=np.float32)[:, :2]
    lateral, up, width = face_axes(pts)
    amp = float(amplitude_px) * width / REFERENCE_FACE_WIDTH
    sigma = max(sigma_frac * width, 1.0)
    still = pts[list(RIGID_POINTS)]
    still_sigma = max(RIGID_SIGMA_FRAC * width, 0.5)
    out = np.zeros((h, w, 2), np.float32)
    for au in aus:
        if au == BLINK_AU:
            out += blink_field(pts, (h, w), side=side)
            continue
        moves = AU_MOVES.get(int(au))
        if moves is None:
            raise ValueError(f"AU {au} cannot be injected; supported: {list(SUPPORTED_AUS)}")
        for move in moves:
            for s in _sides(side):
                outward = lateral if s == "L" else -lateral
                vec = amp * move.gain * (move.outward * outward + move.up * up)
                _add_region_bump(
                    out, pts[list(REGIONS[f"{move.region}_{s}"])], vec, sigma, still, still_sigma
                )
    return out


def blink_field(landmarks: np.ndarray, shape: tuple[int, ...], side: Side = "B") -> np.ndarray:
    """The displacement (H×W×2 float32) that closes the eyelids fully at weight 1 (AU45).

    The eye opening is modelled as a lens between the corners whose local aperture falls as a
    parabola from the centre (upper-lid point to lower-lid point) to 0 at 1.15 half-widths.
    Designed for the backward map: the upper lid slides down over 3/4 of the opening and the lower
    lid up over the rest, meeting at a lash line; the skin above and below stretches linearly (the
    field's slope stays below 1: no fold) and nothing moves beyond 1.2 apertures above the lid or
    one below. At weight ``c`` the lids have travelled ``c`` times their full course.
    """
    h, w = int(shape[0]), int(shape[1])
    pts = np.asarray(landmarks, dtype=np.float32)[:, :2]
    _, up, width = face_axes(pts)
    down = -up
    out = np.zeros((h, w, 2), np.float32)
    for s in _sides(side):
        upper_i, lower_i, outer_i, inner_i = EYE_L if s == "L" else EYE_R
        p_up, p_lo, p_out, p_in = pts[upper_i], pts[lower_i], pts[outer_i], pts[inner_i]
        a = max(float(np.dot(p_lo - p_up, down)), 0.01 * width)  # central aperture along "down"
        half = 0.5 * float(np.hypot(*(p_out - p_in)))
        axis = (p_out - p_in) / max(2 * half, 1e-6)
        centre = 0.5 * (p_out + p_in)
        mid = 0.5 * (p_up + p_lo)
        r = 1.15 * half
        ext = r + 3.5 * a
        xs = (float(p_out[0]), float(p_in[0]), float(mid[0]))
        x0, x1 = int(max(min(xs) - ext, 0)), int(min(max(xs) + ext, w))
        y0, y1 = int(max(mid[1] - ext, 0)), int(min(mid[1] + ext, h))
        if x1 <= x0 or y1 <= y0:
            continue
        gx, gy = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        u = (gx - centre[0]) * axis[0] + (gy - centre[1]) * axis[1]  # along the eye
        v = (gx - mid[0]) * down[0] + (gy - mid[1]) * down[1]  # below the eye's mid-line
        a_loc = a * np.clip(1.0 - (u / r) ** 2, 0.0, 1.0)  # local aperture
        s_norm = (v + 0.5 * a_loc) / np.maximum(a_loc, 0.2 * a)  # 0 at the upper lid, 1 at the lower
        # Displacement along "down" in local apertures: the lid skin above stretches over 1.2 apertures,
        # the opening samples the upper lid (down by 0.75) above the line where the lids meet and the
        # lower lid (up by 0.25) below it; below the lower lid the skin relaxes over one aperture.
        g = np.where(
            s_norm < 0,
            _UPPER_TRAVEL * np.clip((s_norm + 1.2) / 1.2, 0.0, 1.0),
            np.where(
                s_norm < _UPPER_TRAVEL,
                _UPPER_TRAVEL,
                -(1.0 - _UPPER_TRAVEL) * np.clip(2.0 - s_norm, 0.0, 1.0),
            ),
        ) * a_loc
        out[y0:y1, x0:x1, 0] += down[0] * g
        out[y0:y1, x0:x1, 1] += down[1] * g
    return out


# ---------------------------------------------------------------------------------------------
# Time and warping


def profile(frame_index: float, event: InjectedEvent) -> float:
    """Weight in [0, 1] of ``event`` at ``frame_index``: 0 outside [onset, offset], 1 at the apex,
    a raised-cosine rise from onset to apex and decay from apex to offset (smooth, no jerk at the ends)."""
    f = float(frame_index)
    if f < event.onset or f > event.offset:
        return 0.0
    if f <= event.apex:
        span = event.apex - event.onset
        u = 1.0 if span == 0 else (f - event.onset) / span
    else:
        span = event.offset - event.apex
        u = 1.0 if span == 0 else (event.offset - f) / span
    return 0.5 - 0.5 * math.cos(math.pi * u)


def identity_grid(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(map_x, map_y) of the identity for an H×W frame, float32 (precompute once per size)."""
    h, w = int(shape[0]), int(shape[1])
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx, gy


def apply(
    image: np.ndarray,
    field: np.ndarray,
    weight: float = 1.0,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Warp ``image`` (H×W[×C] uint8) so its texture moves by ``weight × field`` (H×W×2 float32).

    Backward map ``src(p) = p - weight * field(p)``, bilinear, borders reflected. ``grid`` is an
    optional precomputed `identity_grid` of the same size."""
    if field.shape[:2] != image.shape[:2] or field.ndim != 3 or field.shape[2] != 2:
        raise ValueError(f"expected a field of shape {(*image.shape[:2], 2)}, got {field.shape}")
    if weight == 0.0:
        return image.copy()
    gx, gy = grid if grid is not None else identity_grid(image.shape)
    wgt = np.float32(weight)
    map_x = gx - wgt * field[..., 0]
    map_y = gy - wgt * field[..., 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


# ---------------------------------------------------------------------------------------------
# Drawing realistic events


class DurationSampler(Protocol):
    """Draws (onset→apex, apex→offset) in seconds. The hook for durations fitted to real annotation
    sheets (CASME II, SAMM, CAS(ME)^3 rescaled to the video's fps): implement ``sample`` and say in
    ``max_s`` the longest onset→offset it can draw (used to space events)."""

    max_s: float

    def sample(self, rng: np.random.Generator) -> tuple[float, float]: ...


@dataclass(frozen=True, slots=True)
class UniformDurations:
    """Onset→offset uniform in [min_s, max_s]; the apex at a uniform fraction in [apex_lo, apex_hi]."""

    min_s: float = 0.2
    max_s: float = 0.5
    apex_lo: float = 0.3
    apex_hi: float = 0.6

    def sample(self, rng: np.random.Generator) -> tuple[float, float]:
        total = float(rng.uniform(self.min_s, self.max_s))
        rise = total * float(rng.uniform(self.apex_lo, self.apex_hi))
        return rise, total - rise


@dataclass(frozen=True, slots=True)
class EmotionPrior:
    """Which emotion to draw (``weights`` by detail label; uniform over `engine.facs.DISPLAYS` when
    empty) and, for it, one of its typical AU combinations (uniform)."""

    weights: dict[str, float] = field(default_factory=dict)

    def sample(self, rng: np.random.Generator) -> tuple[str, tuple[int, ...], Side]:
        """(emotion_detail, aus, side)."""
        names = [n for n in DISPLAYS if not self.weights or self.weights.get(n, 0.0) > 0]
        if not names:
            raise ValueError(f"no emotion with a positive weight; known: {sorted(DISPLAYS)}")
        p = np.array([self.weights.get(n, 1.0) if self.weights else 1.0 for n in names], np.float64)
        emotion = names[int(rng.choice(len(names), p=p / p.sum()))]
        combos = DISPLAYS[emotion]
        aus, side = combos[int(rng.integers(len(combos)))]
        return emotion, aus, side


def draw_event(
    rng: np.random.Generator,
    onset: int,
    fps: float,
    durations: DurationSampler | None = None,
    prior: EmotionPrior | None = None,
    amplitude_range: tuple[float, float] = (1.0, 3.0),
) -> InjectedEvent:
    """One event starting at frame ``onset``: emotion and AUs from ``prior``, timing from ``durations``
    (rounded to frames at ``fps``, at least one frame each side of the apex), amplitude uniform."""
    durations = durations or UniformDurations()
    sample_aus = getattr(durations, "sample_aus", None)
    if prior is None and callable(sample_aus):
        # A sampler of real annotated events (evaluation.annotations.SheetEvents): AUs, emotion and
        # timing come from the same expression.
        detail, aus, side = sample_aus(rng)
    else:
        detail, aus, side = (prior or EmotionPrior()).sample(rng)
    rise_s, fall_s = durations.sample(rng)
    rise = max(1, round(rise_s * fps))
    fall = max(1, round(fall_s * fps))
    amp = float(rng.uniform(*amplitude_range))
    emotion = megc_class(detail)
    return InjectedEvent(onset, onset + rise, onset + rise + fall, tuple(aus), emotion, detail, amp, side)


def plan_events(
    rng: np.random.Generator,
    count: int,
    n_frames: int,
    fps: float,
    start_s: float = 2.0,
    end_s: float = 1.0,
    min_gap_s: float = 1.0,
    durations: DurationSampler | None = None,
    prior: EmotionPrior | None = None,
    amplitude_range: tuple[float, float] = (1.0, 3.0),
) -> list[InjectedEvent]:
    """``count`` non-overlapping events in frames [start_s, n_frames/fps - end_s), at least
    ``min_gap_s`` apart: the span is cut into equal slots and each event placed at random in its own.

    Raises ValueError when the events do not fit (the message says how many would)."""
    if count <= 0:
        return []
    durations = durations or UniformDurations()
    max_len_s = durations.max_s
    span = n_frames / fps - start_s - end_s
    slot = span / count
    if slot < max_len_s + min_gap_s:
        fit = max(int(span // (max_len_s + min_gap_s)), 0)
        raise ValueError(
            f"{count} events of up to {max_len_s} s with {min_gap_s} s gaps do not fit in "
            f"{n_frames / fps:.1f} s (at most {fit})"
        )
    events: list[InjectedEvent] = []
    for k in range(count):
        ev = draw_event(rng, 0, fps, durations, prior, amplitude_range)
        length = (ev.offset - ev.onset) / fps
        lo = start_s + k * slot + 0.5 * min_gap_s
        hi = max(start_s + (k + 1) * slot - 0.5 * min_gap_s - length, lo)
        onset = round(float(rng.uniform(lo, hi)) * fps)
        events.append(
            InjectedEvent(
                onset, onset + ev.apex, onset + ev.offset, ev.aus, ev.emotion, ev.emotion_detail,
                ev.amplitude_px, ev.side,
            )
        )
    return events


# ---------------------------------------------------------------------------------------------
# Ground truth files


def format_aus(aus: Sequence[int], side: Side = "B") -> str:
    """AUs as the annotation sheets write them: ``4+7``, unilateral ``R12+R14``."""
    prefix = "" if side == "B" else side
    return "+".join(f"{prefix}{a}" for a in aus)


def truth_rows(
    truth: Sequence[TruthEvent], subject: str = "1", clip: str = "demo", video: str = "demo"
) -> list[list[str]]:
    """Rows in the CAS(ME)^2 long-video layout (no header): subject, clip, onset, apex, offset, AUs,
    emotion class, micro-expression | macro-expression, emotion, duration (frames), video path."""
    rows = []
    for k, ev in enumerate(truth, 1):
        rows.append([
            subject, f"{clip}_{k}", str(ev.onset.frame), str(ev.apex.frame), str(ev.offset.frame),
            format_aus(ev.aus, ev.side), ev.emotion, f"{ev.kind}-expression", ev.emotion_detail,
            str(ev.offset.frame - ev.onset.frame), video,
        ])
    return rows


def write_truth_csv(path: str, truth: Sequence[TruthEvent], **kw: str) -> None:
    """Write `truth_rows` to ``path`` (CAS(ME)^2 long-video layout, no header)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(truth_rows(truth, **kw))


def format_truth(truth: Sequence[TruthEvent]) -> str:
    """A readable table of the ground truth, one event per line."""
    lines = [f"{'#':>2} {'onset':>13} {'apex':>13} {'offset':>13} {'kind':5} {'AUs':12} emotion"]
    for k, ev in enumerate(truth, 1):
        cells = [f"{tp.frame:5d} {tp.t:6.2f}s" for tp in (ev.onset, ev.apex, ev.offset)]
        lines.append(
            f"{k:>2} {cells[0]} {cells[1]} {cells[2]} {ev.kind:5} {format_aus(ev.aus, ev.side):12} "
            f"{ev.emotion} ({ev.emotion_detail}), {ev.amplitude_px:.1f} px"
        )
    return "\n".join(lines)
