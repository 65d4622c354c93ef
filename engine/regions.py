"""Facial regions on MediaPipe's 478-point mesh, each side separately.

Sides are the subject's own: ``_L`` is the subject's left, which appears on the right of a
non-mirrored image (MediaPipe's 2xx-4xx indices). The vocabulary is shared by the spotter, the
region statistics, the explainers and the dataset builder, so names never change.
"""

from __future__ import annotations

import numpy as np

# Subject's right side (image left) first; the left side mirrors it.
_RIGHT: dict[str, tuple[int, ...]] = {
    "brow_inner": (107, 66, 55, 65, 108),
    "brow_outer": (70, 63, 46, 53, 105, 52),
    "eyelid_upper": (159, 158, 160, 157, 161, 246, 27, 29, 30, 28, 56),
    "eyelid_lower": (145, 144, 153, 154, 163, 7, 23, 24, 22, 110),
    "nose_wing": (129, 98, 64, 48, 102, 49, 219, 235),
    "mouth_corner": (61, 146, 185, 76, 62, 184, 57, 43),
    "lip_upper": (37, 39, 40, 82, 81, 80, 72, 73),
    "lip_lower": (84, 181, 91, 87, 178, 88, 85, 180),
    "chin": (175, 171, 148, 176, 140, 32, 208, 199),
    "cheek": (50, 101, 36, 205, 187, 123, 117, 118, 119, 100),
}
_LEFT: dict[str, tuple[int, ...]] = {
    "brow_inner": (336, 296, 285, 295, 337),
    "brow_outer": (300, 293, 276, 283, 334, 282),
    "eyelid_upper": (386, 385, 387, 384, 388, 466, 257, 259, 260, 258, 286),
    "eyelid_lower": (374, 373, 380, 381, 390, 249, 253, 254, 252, 339),
    "nose_wing": (358, 327, 294, 278, 331, 279, 439, 455),
    "mouth_corner": (291, 375, 409, 306, 292, 408, 287, 273),
    "lip_upper": (267, 269, 270, 312, 311, 310, 302, 303),
    "lip_lower": (314, 405, 321, 317, 402, 318, 315, 404),
    "chin": (175, 396, 377, 400, 369, 262, 428, 199),
    "cheek": (280, 330, 266, 425, 411, 352, 346, 347, 348, 329),
}

REGION_BASES: tuple[str, ...] = tuple(_RIGHT)
REGIONS: dict[str, tuple[int, ...]] = {
    **{f"{base}_L": idx for base, idx in _LEFT.items()},
    **{f"{base}_R": idx for base, idx in _RIGHT.items()},
}
REGION_NAMES: tuple[str, ...] = tuple(REGIONS)

NOSE_TIP = 1
# Points that move little with expression: eye corners, nose bridge and tip, upper forehead.
RIGID_POINTS: tuple[int, ...] = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 10, 151, 9, 8)
# Eyelid apertures for blink detection: (upper, lower, outer corner, inner corner) per side.
EYE_R = (159, 145, 33, 133)
EYE_L = (386, 374, 263, 362)
# Face-contour points on the subject's right and left cheek: the face width is measured between them.
CONTOUR_R, CONTOUR_L = 234, 454


def region_centres(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Mean position (x, y) of each region's points; ``landmarks`` is 478×2 (or ×3)."""
    pts = np.asarray(landmarks, dtype=np.float32)[:, :2]
    return {name: pts[list(idx)].mean(axis=0) for name, idx in REGIONS.items()}


def face_width(landmarks: np.ndarray) -> float:
    """Distance between the contour points `CONTOUR_R` and `CONTOUR_L` of a 478×2 (or ×3) mesh, in
    its pixels: the scale that injected amplitudes and landmark-reuse limits are given in."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return float(np.hypot(*(pts[CONTOUR_L, :2] - pts[CONTOUR_R, :2])))


def side_of(name: str) -> str:
    """'L' or 'R' from a region name such as ``mouth_corner_L``."""
    return name.rsplit("_", 1)[1]


def base_of(name: str) -> str:
    """``mouth_corner`` from ``mouth_corner_L``."""
    return name.rsplit("_", 1)[0]
