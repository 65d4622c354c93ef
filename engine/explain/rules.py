"""The offline default explainer: region motion → FACS action units → emotion → explanation text.

No model, no torch: it reads the per-region statistics of the onset→apex flow (`RegionStat`, head
motion removed, pixels of the aligned crop) and applies what FACS says each action unit moves
(../shared/FACS.md), then the emotion patterns of `engine.facs`. The text follows MELLM's
three steps: what moved where → which AUs and why → why this emotion.

Geometry. Every region is measured per side of the subject (``_L`` = subject's left = image
right). A region's mean flow (dx, dy) is turned into face terms: ``up = -dy`` and ``out`` = motion
away from the facial midline (``+dx`` on the subject's left, ``-dx`` on the right).

Residual motion. The fusion stage already removes head motion (mean flow at the nose tip), but a
residual drift of the whole face would read as AUs; so the component-wise median of the regions'
mean flow (a robust estimate of what the whole face does, since an expression moves a minority of
the 20 regions, or pairs moving in opposite directions) is subtracted first.

Threshold. A motion counts when its component along an AU's direction reaches
``max(floor_px, rel_to_peak × strongest region, noise_k × 25th percentile of mean magnitudes)``:
an absolute floor (micro-expressions move 0.5-3 px on a 256 px crop; flow noise is ~0.1 px), a
share of the strongest motion (only what stands out is an AU), and a multiple of the background
level (flow noise over the whole face). The percentile, not the median,
because a full expression (surprise) moves half of the regions.

>>> from engine.regions import REGION_NAMES
>>> from engine.types import RegionStat
>>> still = [RegionStat(n, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0) for n in REGION_NAMES if "mouth_corner" not in n]
>>> up = [RegionStat(f"mouth_corner_{s}", 1.5, 2.0, 0, 0.95, d, -1.2) for s, d in (("L", 0.8), ("R", -0.8))]
>>> e = RulesExplainer().explain_regions(still + up)
>>> [(a.au, a.side) for a in e.aus], e.emotion, e.emotion_detail
([(12, 'B')], 'positive', 'happiness')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from engine.facs import au_name, classify
from engine.regions import base_of, side_of
from engine.types import ActionUnit, Evidence, Explanation, RegionStat, Side

SIDES: tuple[str, str] = ("L", "R")
MIN_REGIONS_FOR_MEDIAN = 8
_SIDE_WORD = {"L": "left", "R": "right"}
_REGION_WORD = {
    "brow_inner": "inner brow",
    "brow_outer": "outer brow",
    "eyelid_upper": "upper eyelid",
    "eyelid_lower": "lower eyelid",
    "nose_wing": "nose wing",
    "mouth_corner": "mouth corner",
    "lip_upper": "upper lip",
    "lip_lower": "lower lip",
    "chin": "chin",
    "cheek": "cheek",
}


@dataclass(frozen=True, slots=True)
class Motion:
    """One region's mean motion in face terms (pixels): ``up`` (-dy), ``out`` (away from the midline)."""

    name: str
    up: float
    out: float
    stat: RegionStat

    @property
    def down(self) -> float:
        return -self.up

    @property
    def inward(self) -> float:
        return -self.out

    @property
    def size(self) -> float:
        return math.hypot(self.up, self.out)


_STILL = Motion("", 0.0, 0.0, RegionStat("", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))


def to_motion(stat: RegionStat) -> Motion:
    """Face-term motion of ``stat``: outward is -x on the subject's right side, +x on the left."""
    sign = 1.0 if side_of(stat.name) == "L" else -1.0
    return Motion(stat.name, -stat.dy, sign * stat.dx, stat)


def direction_words(up: float, out: float, lateral: bool = True) -> str:
    """``"up and outward"``, ``"down"``, ``"toward the midline"``: the components that matter (≥ 38%)."""
    size = math.hypot(up, out)
    if size == 0:
        return "nowhere"
    words = []
    if abs(up) >= 0.38 * size:
        words.append("up" if up > 0 else "down")
    if abs(out) >= 0.38 * size:
        if lateral:
            words.append("outward" if out > 0 else "toward the midline")
        else:
            words.append("sideways")
    return " and ".join(words)


def region_phrase(name: str) -> str:
    """``mouth_corner_L`` → ``left mouth corner`` (the subject's left)."""
    return f"{_SIDE_WORD.get(side_of(name), '')} {_REGION_WORD.get(base_of(name), base_of(name))}".strip()


@dataclass(frozen=True, slots=True)
class AUFinding:
    """A detected AU: per-side strength (component / threshold, ≥ 1 means present), why, confidence."""

    au: int
    side: Side
    strength: dict[str, float]
    confidence: float
    why: str

    def action_unit(self) -> ActionUnit:
        return ActionUnit(self.au, au_name(self.au), self.side, round(self.confidence, 4))


# One rule per AU: given the side's motions and the threshold, the signed amount (px) along the
# AU's direction and a short description of what that amount is. Present when amount >= threshold.
Rule = Callable[[dict[str, Motion], float], tuple[float, str, tuple[str, ...]]]


def _jaw_down(m: dict[str, Motion]) -> float:
    return max(m["chin"].down, 0.0)


def _corner_up(m: dict[str, Motion]) -> float:
    """Corner lift with the jaw's drag removed: a dropping jaw pulls the corners down about half as far.

    The correction only cancels downward motion; it never turns a still corner into a rising one.
    """
    up = m["mouth_corner"].up
    return up if up >= 0 else min(0.0, up + 0.5 * _jaw_down(m))


def _angle(m: dict[str, Motion]) -> tuple[float, float]:
    """(angle in degrees, size) of the jaw-corrected mouth-corner motion; 0 = outward, 90 = up, 180 = in."""
    up, out = _corner_up(m), m["mouth_corner"].out
    return math.degrees(math.atan2(up, out)), math.hypot(up, out)


def _au1(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    return m["brow_inner"].up, "inner brow up", ("brow_inner",)


def _au2(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    return m["brow_outer"].up, "outer brow up", ("brow_outer",)


def _au4(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    # AU6 draws the skin around the eye toward it and may lower the brows a little (FACS manual, AU6
    # appearance changes): brow lowering up to half the cheek's rise is AU6's, not a brow lowerer.
    down = max(m["brow_inner"].down, m["brow_outer"].down) - 0.5 * max(m["cheek"].up, 0.0)
    inward = m["brow_inner"].inward
    if inward > down:
        return inward, "inner brow pulled toward the midline", ("brow_inner",)
    return down, "brow down", ("brow_inner", "brow_outer")


def _au5(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    # The eye must widen: upper lid up beyond the lower lid (a whole eye moving up is head motion).
    # Brows drag the skin above the eye up; the lid itself must rise at least half as much.
    brow = max(m["brow_inner"].up, m["brow_outer"].up, 0.0)
    lid = m["eyelid_upper"].up
    widening = lid - max(m["eyelid_lower"].up, 0.0)
    return (widening if lid >= 0.5 * brow else 0.0), "upper eyelid up", ("eyelid_upper",)


def _au6(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    return m["cheek"].up, "cheek up", ("cheek",)


def _au7(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    # The eye must narrow from below: lower lid up beyond the upper lid. A rising cheek pushes the
    # lower lid up as far as itself; the lid tightens when it rises more.
    lid = m["eyelid_lower"].up
    narrowing = lid - max(m["eyelid_upper"].up, 0.0)
    return (narrowing if lid > 1.2 * max(m["cheek"].up, 0.0) else 0.0), "lower eyelid up", ("eyelid_lower",)


def _au9(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    nose = m["nose_wing"].up
    return (nose if nose >= 0.8 * m["lip_upper"].up else 0.0), "nose wing up", ("nose_wing",)


def _au10(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    lip = m["lip_upper"].up
    return (lip if lip >= 0.8 * m["nose_wing"].up else 0.0), "upper lip up", ("lip_upper",)


def _au12(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    a, size = _angle(m)
    return (size if 20 <= a <= 115 else 0.0), "mouth corner up and outward", ("mouth_corner",)


def _au14(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    a, size = _angle(m)
    inward = size if (a > 115 or a < -160) else 0.0
    if _lips_converge(m) >= thr:
        inward = 0.0  # narrowing lips (AU23) explain inward corners
    return inward, "mouth corner pulled inward", ("mouth_corner",)


def _au15(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    a, size = _angle(m)
    return (size if -160 <= a <= -20 else 0.0), "mouth corner down", ("mouth_corner",)


def _au16(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    return m["lip_lower"].down - _jaw_down(m), "lower lip down beyond the jaw", ("lip_lower",)


def _au17(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    return m["chin"].up, "chin up", ("chin",)


def _au20(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    a, size = _angle(m)
    return (size if -20 < a < 20 else 0.0), "mouth corner sideways outward", ("mouth_corner",)


def _lips_converge(m: dict[str, Motion]) -> float:
    """Upper lip down plus lower lip up beyond what the chin does (a rising chin lifts the lower lip)."""
    return max(m["lip_upper"].down, 0.0) + max(m["lip_lower"].up - max(m["chin"].up, 0.0), 0.0)


def _au23(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    c = _lips_converge(m)
    narrowing = m["mouth_corner"].inward >= 0.5 * thr
    return (
        (c if narrowing else 0.0),
        "lips toward each other with the corners drawn in",
        ("lip_upper", "lip_lower", "mouth_corner"),
    )


def _au24(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    return _lips_converge(m), "lips pressed toward each other", ("lip_upper", "lip_lower")


def _au25(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    return m["lip_lower"].down - m["lip_upper"].down, "lips moving apart", ("lip_upper", "lip_lower")


def _au26(m: dict[str, Motion], thr: float) -> tuple[float, str, tuple[str, ...]]:
    return m["chin"].down, "chin (jaw) down", ("chin",)


RULES: dict[int, Rule] = {
    1: _au1,
    2: _au2,
    4: _au4,
    5: _au5,
    6: _au6,
    7: _au7,
    9: _au9,
    10: _au10,
    12: _au12,
    14: _au14,
    15: _au15,
    16: _au16,
    17: _au17,
    20: _au20,
    23: _au23,
    24: _au24,
    25: _au25,
    26: _au26,
}


class RulesExplainer:
    """FACS rules on region statistics; deterministic, ~0.3 ms per candidate, no model.

    ``floor_px``: smallest motion that counts (pixels of the aligned crop). ``rel_to_peak``: share of
    the strongest region's motion that a motion must reach. ``noise_k``: multiple of the 25th
    percentile of region mean magnitudes (the background level) that a motion must reach.
    ``max_regions``: how many moving regions the text lists. ``remove_median``: subtract the median
    region motion first (needs at least ``MIN_REGIONS_FOR_MEDIAN`` regions). Configured in
    ``[explain.rules]``.
    """

    name = "rules"

    def __init__(
        self,
        floor_px: float = 0.25,
        rel_to_peak: float = 0.25,
        noise_k: float = 1.5,
        max_regions: int = 6,
        remove_median: bool = True,
    ) -> None:
        if floor_px <= 0 or not 0 <= rel_to_peak < 1 or noise_k < 0 or max_regions < 1:
            raise ValueError(
                "rules explainer: expected floor_px > 0, 0 <= rel_to_peak < 1, noise_k >= 0, "
                f"max_regions >= 1; got {floor_px}, {rel_to_peak}, {noise_k}, {max_regions}"
            )
        self.floor_px = floor_px
        self.rel_to_peak = rel_to_peak
        self.noise_k = noise_k
        self.max_regions = max_regions
        self.remove_median = remove_median

    def warmup(self) -> None:
        """Nothing to load."""

    def close(self) -> None:
        """Nothing to release."""

    def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]:
        return [self.explain_regions(ev.regions) for ev in items]

    def explain(self, evidence: Evidence) -> Explanation:
        return self.explain_regions(evidence.regions)

    def residual(self, regions: Sequence[RegionStat]) -> list[RegionStat]:
        """``regions`` with the median region motion (dx, dy) taken out of each; mean magnitudes drop
        by the median's length (the triangle-inequality bound), so background noise stays measurable.
        """
        if not self.remove_median or len(regions) < MIN_REGIONS_FOR_MEDIAN:
            return list(regions)
        mx = float(np.median([r.dx for r in regions]))
        my = float(np.median([r.dy for r in regions]))
        shift = math.hypot(mx, my)
        if shift == 0:
            return list(regions)
        out = []
        for r in regions:
            dx, dy = r.dx - mx, r.dy - my
            out.append(
                replace(
                    r,
                    dx=dx,
                    dy=dy,
                    mean_mag=max(r.mean_mag - shift, math.hypot(dx, dy)),
                    direction_deg=math.degrees(math.atan2(dy, dx)) % 360.0,
                )
            )
        return out

    def threshold(self, regions: Sequence[RegionStat]) -> float:
        """The motion (px) an AU component must reach on this candidate (see module docstring)."""
        if not regions:
            return self.floor_px
        peak = max(math.hypot(r.dx, r.dy) for r in regions)
        background = float(np.percentile([r.mean_mag for r in regions], 25))
        return max(self.floor_px, self.rel_to_peak * peak, self.noise_k * background)

    def detect(self, regions: Sequence[RegionStat]) -> tuple[list[AUFinding], float]:
        """The AUs the region motions show (as given: `explain_regions` takes out the median motion
        first, see `residual`), and the threshold used."""
        thr = self.threshold(regions)
        by_side: dict[str, dict[str, Motion]] = {s: {} for s in SIDES}
        for r in regions:
            side = side_of(r.name)
            if side in by_side:
                by_side[side][base_of(r.name)] = to_motion(r)
        motions = {s: _Filled(by_side[s]) for s in SIDES}
        found: list[AUFinding] = []
        for au, rule in RULES.items():
            amount: dict[str, float] = {}
            why = ""
            used: tuple[str, ...] = ()
            for s in SIDES:
                amount[s], why_s, used_s = rule(motions[s], thr)
                if amount[s] >= thr:
                    why, used = why_s, used_s
            active = [s for s in SIDES if amount[s] >= thr]
            if not active:
                continue
            side: Side = "B" if len(active) == 2 else active[0]  # type: ignore[assignment]
            strength = {s: amount[s] / thr for s in active}
            conc = float(np.mean([motions[s][b].stat.concentration for s in active for b in used]))
            s_mean = float(np.mean(list(strength.values())))
            confidence = max(0.0, min(1.0, conc)) * (1.0 - 0.5**s_mean)
            where = ", ".join(f"{_SIDE_WORD[s]} {amount[s]:.2f} px" for s in active)
            found.append(AUFinding(au, side, strength, confidence, f"{why} ({where})"))
        return found, thr

    def explain_regions(self, regions: Sequence[RegionStat]) -> Explanation:
        """The explanation of one candidate from its region statistics."""
        for r in regions:
            if not all(math.isfinite(v) for v in (r.mean_mag, r.max_mag, r.dx, r.dy, r.concentration)):
                raise ValueError(f"region {r.name}: expected finite statistics, got {r}")
        regions = self.residual(regions)
        found, thr = self.detect(regions)
        moving = sorted(
            (to_motion(r) for r in regions if math.hypot(r.dx, r.dy) >= thr),
            key=lambda m: m.size,
            reverse=True,
        )
        if not moving or not found:
            return Explanation((), "others", "others", self._still_text(regions, thr), self.name)
        sides = {f.au: f.side for f in found}
        match = classify(sides, {f.au: f.confidence for f in found})
        text = "\n".join(
            (
                "Motion: " + self._motion_text(moving),
                "Action units: "
                + "; ".join(f"AU{f.au} {au_name(f.au)} ({_side_text(f.side)}): {f.why}" for f in found)
                + ".",
                f"Emotion: {match.reason()}. So the emotion is {match.emotion} ({match.detail}).",
            )
        )
        aus = tuple(f.action_unit() for f in found)
        return Explanation(aus, match.emotion, match.detail, text, self.name)

    def _motion_text(self, moving: Sequence[Motion]) -> str:
        parts = []
        for m in moving[: self.max_regions]:
            lateral = base_of(m.name) not in ("chin", "lip_upper", "lip_lower")
            parts.append(
                f"the {region_phrase(m.name)} moved {direction_words(m.up, m.out, lateral)} "
                f"by {m.size:.2f} px "
                f"(max {m.stat.max_mag:.2f} px, concentration {m.stat.concentration:.2f})"
            )
        rest = len(moving) - len(parts)
        tail = f"; {rest} more region(s) moved less" if rest > 0 else ""
        return "; ".join(parts) + tail + "."

    def _still_text(self, regions: Sequence[RegionStat], thr: float) -> str:
        if regions:
            top = max(regions, key=lambda r: math.hypot(r.dx, r.dy))
            size = math.hypot(top.dx, top.dy)
            most = f"the strongest mean motion was {size:.2f} px at the {region_phrase(top.name)}"
        else:
            most = "no region statistics were given"
        return (
            f"Motion: no clear movement: {most}, below the {thr:.2f} px threshold "
            "or matching no action unit.\n"
            "Action units: none.\n"
            "Emotion: without action units there is no FACS basis for an emotion. "
            "So the emotion is others (others)."
        )


def _side_text(side: str) -> str:
    return {"B": "both sides", "L": "subject's left", "R": "subject's right"}[side]


class _Filled(dict):
    """Region motions of one side; a region missing from the statistics reads as still."""

    def __missing__(self, key: str) -> Motion:
        return _STILL
