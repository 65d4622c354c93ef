"""Per-region motion statistics on MediaPipe's 478-point mesh (all regions of ``engine.regions``).

Mask of a region: the convex hull of its mesh points, dilated by ``margin`` × face size, where face
size is the larger side of the bounding box of all landmarks. Hulls, not disks around points,
because several regions are drawn as outlines (eyelid arcs, lip contours) whose inside is the skin
that moves; the dilation gives thin arcs (an eyelid is a crescent) enough pixels, and scaling it by
face size keeps masks equivalent across crop sizes. Regions may overlap (the mouth corner touches
both lips); each is measured on its own mask.

Statistics on the flow inside the mask (head motion already removed):
- ``mean_mag``: mean of per-pixel magnitudes;
- ``max_mag``: the ``max_percentile`` (95th) percentile of magnitudes, a robust maximum: TV-L1
  leaves a few outlier pixels at occlusion edges (eyelashes, teeth) that a true max would report;
- ``dx``, ``dy``: mean flow components; ``direction_deg``: angle of that mean vector, degrees
  in [0, 360), 0 = right, 90 = down, 270 = up (image y down, same convention as the colour map);
- ``concentration``: length of the mean of per-pixel unit vectors (pixels with magnitude below
  ``1e-6`` px have no direction and are left out), 1 = all pixels move the same way, 0 = no
  agreement or no motion.

>>> import numpy as np
>>> from engine.regions import REGIONS
>>> pts = np.random.default_rng(0).uniform(40, 90, (478, 2)).astype(np.float32)
>>> stats = region_stats(np.zeros((128, 128, 2), np.float32), pts, (128, 128))
>>> len(stats) == len(REGIONS) and all(s.mean_mag == 0 for s in stats)
True
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.regions import REGIONS
from engine.types import RegionStat

_STILL_PX = 1e-6


def face_size(landmarks: np.ndarray) -> float:
    """The larger side of the bounding box of all landmarks, in their pixels."""
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    return float(np.ptp(pts, axis=0).max())


def _region_windows(
    landmarks: np.ndarray, shape: tuple[int, ...], margin: float
) -> list[tuple[str, slice, slice, np.ndarray]]:
    """Per region: the (rows, cols) window holding its mask and the bool mask inside that window.

    Working in the hull's bounding box keeps the cost proportional to the region, not the image.
    """
    pts = np.asarray(landmarks, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[0] < 478 or pts.shape[1] < 2:
        raise ValueError(f"landmarks: expected 478×2 (or ×3) mesh points, got {pts.shape}")
    h, w = int(shape[0]), int(shape[1])
    radius = max(round(margin * face_size(pts)), 0)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    out: list[tuple[str, slice, slice, np.ndarray]] = []
    for name, idx in REGIONS.items():
        hull = cv2.convexHull(np.round(pts[list(idx), :2]).astype(np.int32))
        x0, y0 = hull[:, 0].min(axis=0) - radius
        x1, y1 = hull[:, 0].max(axis=0) + radius + 1
        m = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(m, hull - [x0, y0], 1)
        if radius:
            m = cv2.dilate(m, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        cy0, cy1, cx0, cx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
        if cy0 >= cy1 or cx0 >= cx1:  # the region lies outside the image
            out.append((name, slice(0, 0), slice(0, 0), np.zeros((0, 0), bool)))
            continue
        sub = m[cy0 - y0: cy1 - y0, cx0 - x0: cx1 - x0].astype(bool)
        out.append((name, slice(int(cy0), int(cy1)), slice(int(cx0), int(cx1)), sub))
    return out


def region_masks(
    landmarks: np.ndarray, shape: tuple[int, ...], margin: float = 0.02
) -> dict[str, np.ndarray]:
    """One H×W bool mask per region: convex hull of its points dilated by ``margin`` × face size."""
    masks: dict[str, np.ndarray] = {}
    for name, rows, cols, sub in _region_windows(landmarks, shape, margin):
        m = np.zeros((int(shape[0]), int(shape[1])), bool)
        m[rows, cols] = sub
        masks[name] = m
    return masks


def stat_of(name: str, vectors: np.ndarray, max_percentile: float = 95.0) -> RegionStat:
    """Statistics of N×2 flow vectors (pixels) of one region; an empty region reports all zeros."""
    if vectors.shape[0] == 0:
        return RegionStat(name, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    v = vectors.astype(np.float64)
    mag = np.hypot(v[:, 0], v[:, 1])
    dx, dy = v.mean(axis=0)
    moving = mag > _STILL_PX
    if moving.any():
        unit = v[moving] / mag[moving, None]
        concentration = float(np.hypot(*unit.sum(axis=0)) / v.shape[0])
    else:
        concentration = 0.0
    direction = float(np.degrees(np.arctan2(dy, dx)) % 360.0) if np.hypot(dx, dy) > _STILL_PX else 0.0
    return RegionStat(
        name=name,
        mean_mag=float(mag.mean()),
        max_mag=float(np.percentile(mag, max_percentile)),
        direction_deg=direction,
        concentration=min(concentration, 1.0),
        dx=float(dx),
        dy=float(dy),
    )


def region_stats(
    flow: np.ndarray,
    crop_landmarks: np.ndarray,
    shape: tuple[int, ...],
    *,
    margin: float = 0.02,
    max_percentile: float = 95.0,
) -> tuple[RegionStat, ...]:
    """Motion statistics of every region in ``REGIONS`` order.

    ``flow``: H×W×2 float (head motion removed), ``crop_landmarks``: 478×2 in the flow's pixels
    (the onset frame's, since the flow is defined on it), ``shape``: (H, W) of the flow.
    """
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        got = flow.shape if isinstance(flow, np.ndarray) else type(flow).__name__
        raise ValueError(f"flow: expected an H×W×2 array, got {got}")
    if tuple(flow.shape[:2]) != tuple(shape[:2]):
        raise ValueError(f"flow: expected spatial shape {tuple(shape[:2])}, got {flow.shape[:2]}")
    if not 0 < max_percentile <= 100:
        raise ValueError(f"max_percentile: expected a value in (0, 100], got {max_percentile}")
    windows = _region_windows(crop_landmarks, shape, margin)
    return tuple(stat_of(name, flow[rows, cols][sub], max_percentile) for name, rows, cols, sub in windows)
