"""MELLM v3's region text: 29 facial patches of the onset→apex flow, one line each, for its LLM.

MELLM v3 (``zyzhangUstc/MELLM``, ``MELLM_pipeline/roi_combine.py`` and ``flow_feature.py``) places
29 small square patches with a 98-point (WFLW) landmark detector and describes each patch of the
flow by its mean and max magnitude and its dominant direction. Its fine-tuned LLM was trained on
that text, so `region_lines` rebuilds the same patches on MediaPipe's 478-point mesh and writes
the same line format (including the released format's unbalanced quote after the region name and
its double closing parenthesis after the angle, which the model saw in training).

Mapping of the WFLW points the released code uses (0-based) onto MediaPipe's mesh. WFLW's "left"
is the image's left (the subject's right side), and the released region names keep that meaning:

=====================================  ===========================  =========================
WFLW points (0-based)                  what they are                MediaPipe indices
=====================================  ===========================  =========================
60 / 72                                outer eye corners            33 / 263
61, 62, 63 / 69, 70, 71                upper eyelids                160, 159, 158 / 385, 386, 387
65, 66, 67 / 73, 74, 75                lower eyelids                153, 145, 144 / 373, 374, 380
33, 34, 41 / 45, 46, 47                outer brows                  70, 63, 53 / 293, 300, 283
36, 37, 38, 39 / 42, 43, 49, 50        inner brows                  66, 107, 55, 65 / 336, 296, 295, 285
55 / 59                                outer nostril points         98 / 327
76 / 82                                mouth corners                61 / 291
77, 79, 81                             outer upper lip              39, 0, 269
86, 87 / 83, 84 / 85                   outer lower lip              84, 181 / 405, 314 / 17
16                                     chin                         152
=====================================  ===========================  =========================

Patch sizes are the released ones, in pixels of the flow they are cut from: eyelids 9×9 (a 10-px
box offset 5 px outwards from the lid), brows 14×14, nostril wings 20×20 (shifted 7 px up and
outwards), mouth patches 14×14 (corners shifted 7 px outwards), chin 24×24, cheeks a square of
12 % of the face height (brow top to chin) between the outer eye corner and the mouth corner,
moved 5 % of that height up and outwards. The released code cuts them from a MEFlowNet flow of the
full frame; here they are cut from the candidate's flow on the aligned crop (``Evidence.flow``,
head motion already removed), so magnitudes are in crop pixels.

A direction is the circular mean of the patch's vectors, in mathematical angles (counter-clockwise
from right, up positive), named by the nearest of eight compass directions; when the resultant
length divided by the summed magnitudes is below ``CONCENTRATION_MIN`` the patch has no clear
dominant direction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CONCENTRATION_MIN = 0.15
MEAN_MAG_MIN = 1e-4
COMPASS = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")

Box = tuple[int, int, int, int]  # x0, y0, x1, y1: the patch is flow[y0:y1, x0:x1]


@dataclass(frozen=True, slots=True)
class V3Region:
    """One of the 29 patches: its name in the released text and its clipped box on the flow."""

    name: str
    box: Box


def _square(cx: float, cy: float, half: int, side: int) -> Box:
    """Box of ``side`` pixels whose top-left is the rounded centre minus ``half``."""
    x0, y0 = round(cx) - half, round(cy) - half
    return x0, y0, x0 + side, y0 + side


def _cheek(cx: float, cy: float, side: int) -> Box:
    """The cheek square as released: the corner is rounded after subtracting half the side."""
    x0, y0 = round(cx - side // 2), round(cy - side // 2)
    return x0, y0, x0 + side, y0 + side


def _eyelids(p: Callable[[int], np.ndarray]) -> list[tuple[str, Box]]:
    """Twelve 9×9 patches 5 px above (upper) or below (lower) the lids, the ends 5 px further out."""
    out: list[tuple[str, Box]] = []
    lids = (
        ("Left Lower Eyelid", (144, 145, 153), 5),
        ("Right Lower Eyelid", (380, 374, 373), 5),
        ("Left Upper Eyelid", (160, 159, 158), -5),
        ("Right Upper Eyelid", (385, 386, 387), -5),
    )
    for label, idx, dy in lids:
        for part, i, dx in zip(("(Left Side)", "(Center)", "(Right Side)"), idx, (-5, 0, 5), strict=True):
            x, y = p(i)
            out.append((f"{label} {part}", _square(x + dx, y + dy, 5, 9)))
    return out


def _centre(p: Callable[[int], np.ndarray], idx: tuple[int, ...]) -> np.ndarray:
    return np.mean([p(i) for i in idx], axis=0)


def _brows_wings(p: Callable[[int], np.ndarray]) -> list[tuple[str, Box]]:
    out = [
        (name, _square(*_centre(p, idx), 7, 14))
        for name, idx in (
            ("Left Outer Eyebrow", (70, 63, 53)),
            ("Left Inner Eyebrow", (66, 107, 55, 65)),
            ("Right Outer Eyebrow", (293, 300, 283)),
            ("Right Inner Eyebrow", (336, 296, 295, 285)),
        )
    ]
    (lx, ly), (rx, ry) = p(98), p(327)
    out.append(("Left Nostril Wing", _square(lx - 7, ly - 7, 10, 20)))
    out.append(("Right Nostril Wing", _square(rx + 7, ry - 7, 10, 20)))
    return out


def _mouth(p: Callable[[int], np.ndarray]) -> list[tuple[str, Box]]:
    (lx, ly), (rx, ry) = p(61), p(291)
    return [
        ("Left Mouth Corner", _square(lx - 7, ly, 7, 14)),
        ("Right Mouth Corner", _square(rx + 7, ry, 7, 14)),
        ("Upper Lip (Left Side)", _square(*p(39), 7, 14)),
        ("Upper Lip (Center)", _square(*p(0), 7, 14)),
        ("Upper Lip (Right Side)", _square(*p(269), 7, 14)),
        ("Lower Lip (Left Side)", _square(*_centre(p, (84, 181)), 7, 14)),
        ("Lower Lip (Right Side)", _square(*_centre(p, (405, 314)), 7, 14)),
        ("Lower Lip (Center)", _square(*p(17), 7, 14)),
    ]


def _chin_cheeks(p: Callable[[int], np.ndarray], height: int, face_h: float) -> list[tuple[str, Box]]:
    cx, cy = p(152)
    if height - cy < 12.5:  # chin too close to the bottom edge: halfway up to the lower lip
        cy = (cy + p(17)[1]) // 2
    side = max(4, round(0.12 * face_h))
    shift = 0.05 * face_h
    left = (p(33) + p(61)) / 2.0
    right = (p(263) + p(291)) / 2.0
    lbox = _cheek(left[0] - shift, left[1] - shift, side)
    cx_r, cy_r = right[0] + shift, right[1] - shift
    rbox = _cheek(cx_r, cy_r, side)
    top = round(p(263)[1])
    if rbox[1] < top:  # as released: the right cheek never starts above its outer eye corner
        rbox = _cheek(cx_r, cy_r + top - rbox[1], side)
    return [("Chin", _square(cx, cy, 12, 24)), ("Left Cheek", lbox), ("Right Cheek", rbox)]


# Brow tops and chin of the mapped points: the released face height is the y-extent of the 98 points.
_EXTENT = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300, 152)


def v3_regions(landmarks: np.ndarray, shape: tuple[int, ...]) -> list[V3Region]:
    """The 29 patches in the released order, boxes clipped to the ``shape`` (H, W) image.

    ``landmarks``: 478×2 (or ×3) MediaPipe points in the flow's pixels. A patch that falls
    entirely outside the image is left out, as the released code leaves out empty patches.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 478 or pts.shape[1] < 2:
        raise ValueError(f"landmarks: expected 478×2 (or ×3) mesh points, got {pts.shape}")

    def p(i: int) -> np.ndarray:
        return pts[i, :2]

    h, w = int(shape[0]), int(shape[1])
    face_h = float(np.ptp(pts[list(_EXTENT), 1]))
    boxes = _eyelids(p) + _brows_wings(p) + _mouth(p) + _chin_cheeks(p, h, face_h)
    out: list[V3Region] = []
    for name, (x0, y0, x1, y1) in boxes:
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 > x0 and y1 > y0:
            out.append(V3Region(name, (x0, y0, x1, y1)))
    return out


def dominant_direction(vectors: np.ndarray) -> str:
    """The released direction phrase of N×2 flow vectors (x right, y down, pixels)."""
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 2)
    mag = np.hypot(v[:, 0], v[:, 1])
    mean_mag = float(mag.mean()) if mag.size else 0.0
    if mean_mag < MEAN_MAG_MIN:
        return f"No significant motion detected (mean magnitude ≈ {mean_mag:.6g})."
    rx, ry = float(v[:, 0].sum()), float(-v[:, 1].sum())  # y up: mathematical angles
    concentration = float(np.hypot(rx, ry) / (mag.sum() + 1e-12))
    if concentration < CONCENTRATION_MIN:
        return (
            "No clear dominant direction (motion is more isotropic or noisy; "
            f"mean magnitude ≈ {mean_mag:.6g}, concentration ≈ {concentration:.3f})."
        )
    angle = float(np.degrees(np.arctan2(ry, rx)) % 360.0)
    name = COMPASS[round(angle / 45.0) % 8]
    return f"{name}({round(angle) % 360}°))"


def region_line(name: str, patch: np.ndarray) -> str:
    """One line of the released text for the flow ``patch`` (h×w×2) of region ``name``."""
    v = np.asarray(patch, dtype=np.float64).reshape(-1, 2)
    mag = np.hypot(v[:, 0], v[:, 1])
    mean, peak = round(float(mag.mean()), 3), round(float(mag.max()), 3)
    return (
        f'{{"region":"{name},"mean_magnitude":{mean},"max_magnitude":{peak},'
        f'"direction":{dominant_direction(v)}}}'
    )


def region_lines(flow: np.ndarray, landmarks: np.ndarray) -> str:
    """The released 29-line region text of ``flow`` (H×W×2 float, pixels) with its 478 ``landmarks``."""
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        got = flow.shape if isinstance(flow, np.ndarray) else type(flow).__name__
        raise ValueError(f"flow: expected an H×W×2 array, got {got}")
    lines = []
    for region in v3_regions(landmarks, flow.shape):
        x0, y0, x1, y1 = region.box
        lines.append(region_line(region.name, flow[y0:y1, x0:x1]))
    return "\n".join(lines) + "\n"
