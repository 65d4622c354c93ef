"""The calibrated motion-enhanced colour map: the MELLM map made comparable across events.

The published recipe (`engine.fusion.mellm_map`) min-max normalises the magnitude per map, so a
0.2 px twitch and a 5 px smile look equally bright, and it removes head motion as the mean flow of
a nose window (a translation only). This variant changes exactly those two things and adds a key:

1. Head motion: a least-squares similarity (rotation, uniform scale, translation) is fitted to the
   flow at the rigid landmarks (`engine.regions.RIGID_POINTS`: eye corners, nose bridge,
   forehead midline), p ↦ p + flow(p), and the flow field of that similarity is subtracted
   everywhere. A head that turns or approaches the camera leaves ~0, not a rotation pattern.
2. Value = ``min(|flow| / px_full_scale, 1) · 255``: a fixed pixel → brightness scale, so the
   same colour means the same motion in pixels of the aligned crop in every event.
3. Hue: the published 12 bins of 30° (same colours as the MELLM map); saturation 255; added with
   saturation onto the grey onset frame, as published.
4. Legend strip appended below the image: a direction wheel of the 12 bins (how each direction is
   coloured) and a magnitude ramp from 0 to ``px_full_scale`` pixels with labels.

>>> import numpy as np
>>> from engine.face.align import canonical_template
>>> onset = np.full((128, 128), 60, np.uint8)
>>> flow = np.zeros((128, 128, 2), np.float32); flow[..., 0] = 2.0      # the whole head moves right
>>> bgr, rest = calibrated_map(onset, flow, canonical_template(128))
>>> bgr.shape[0] > 128 and float(np.abs(rest).max()) < 1e-4
True
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.face.align import fit_similarity
from engine.fusion.mellm_map import hsv_table, hue_bin
from engine.regions import RIGID_POINTS

DEFAULT_PX_FULL_SCALE = 3.0


def _check_inputs(onset_grey: np.ndarray, flow: np.ndarray, landmarks: np.ndarray) -> None:
    if not isinstance(onset_grey, np.ndarray) or onset_grey.ndim != 2 or onset_grey.dtype != np.uint8:
        got = (onset_grey.shape, onset_grey.dtype) if isinstance(onset_grey, np.ndarray) else type(onset_grey)
        raise ValueError(f"onset_grey: expected an H×W uint8 grey image, got {got}")
    if not isinstance(flow, np.ndarray) or flow.shape != (*onset_grey.shape, 2):
        got = flow.shape if isinstance(flow, np.ndarray) else type(flow).__name__
        raise ValueError(f"flow: expected {(*onset_grey.shape, 2)} (the onset frame's H×W×2), got {got}")
    lm = np.asarray(landmarks)
    if lm.ndim != 2 or lm.shape[1] < 2 or lm.shape[0] <= max(RIGID_POINTS):
        raise ValueError(
            f"crop_landmarks: expected the face mesh as N×2 with N > {max(RIGID_POINTS)}, got {lm.shape}"
        )


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear flow at N×2 ``points`` (x, y pixels, clamped to the image): N×2 float32."""
    pts = np.asarray(points, dtype=np.float32)[:, :2]
    mx = np.ascontiguousarray(pts[:, 0].reshape(1, -1))
    my = np.ascontiguousarray(pts[:, 1].reshape(1, -1))
    out = cv2.remap(
        np.ascontiguousarray(flow, dtype=np.float32),
        mx,
        my,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(-1, 2)


def head_motion_field(flow: np.ndarray, crop_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The similarity that best explains the flow at the rigid landmarks, and its H×W×2 flow field.

    Returns ``(field, matrix)``: field H×W×2 float32 with ``field(x) = M·[x, 1] − x``, matrix the
    2×3 float32 similarity ``M`` (least squares, `engine.face.align.fit_similarity`).
    """
    src = np.asarray(crop_landmarks, dtype=np.float32)[list(RIGID_POINTS), :2]
    dst = src + sample_flow(flow, src)
    m = fit_similarity(src, dst).astype(np.float64)
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    field = np.empty((h, w, 2), dtype=np.float32)
    field[..., 0] = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs
    field[..., 1] = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys
    return field, m.astype(np.float32)


def calibrated_colours(flow: np.ndarray, px_full_scale: float = DEFAULT_PX_FULL_SCALE) -> np.ndarray:
    """H×W×2 flow → H×W×3 uint8 BGR: hue = published 30° bin, value = |flow| / ``px_full_scale`` · 255."""
    if not px_full_scale > 0:
        raise ValueError(f"px_full_scale: expected a positive number of pixels, got {px_full_scale!r}")
    u = np.ascontiguousarray(flow[..., 0], dtype=np.float32)
    v = np.ascontiguousarray(flow[..., 1], dtype=np.float32)
    mag, ang = cv2.cartToPolar(u, v, angleInDegrees=True)
    value = np.clip(np.rint(mag * (255.0 / px_full_scale)), 0, 255).astype(np.uint8)
    return hsv_table()[hue_bin(ang), value]


def legend_strip(
    width: int, px_full_scale: float = DEFAULT_PX_FULL_SCALE, height: int | None = None
) -> np.ndarray:
    """The key appended under a calibrated map: ``height``×``width``×3 uint8 BGR.

    Left: a wheel of the 12 direction bins at full value (right = 0°, down = 90°, image axes).
    Right: a ramp of value 0 → 255 in the hue of "right" with labels 0, half and full scale in px.
    """
    height = height if height is not None else max(40, width // 5)
    strip = np.full((height, width, 3), 32, dtype=np.uint8)
    table = hsv_table()
    r = (height - 6) // 2
    cx, cy = r + 3, height // 2
    ys, xs = np.mgrid[0:height, 0 : 2 * r + 6].astype(np.float32)
    dx, dy = xs - cx, ys - cy
    inside = dx * dx + dy * dy <= r * r
    angle = np.degrees(np.arctan2(dy, dx)) % 360.0
    wheel = strip[:, : 2 * r + 6]
    wheel[inside] = table[hue_bin(angle[inside]), 255]
    x0, x1 = 2 * r + 12, width - 6
    if x1 - x0 < 20:
        return strip
    bar_top, bar_bottom = 3, max(4, height // 2)
    ramp = np.linspace(0, 255, x1 - x0).round().astype(np.intp)
    strip[bar_top:bar_bottom, x0:x1] = table[0, ramp][None]
    scale = max(0.25, height / 110.0)
    for frac in (0.0, 0.5, 1.0):
        label = f"{px_full_scale * frac:g}" + (" px" if frac == 1.0 else "")
        (tw, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        x = int(np.clip(x0 + frac * (x1 - x0) - tw / 2, 0, width - tw))
        cv2.putText(
            strip, label, (x, height - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (230, 230, 230), 1, cv2.LINE_AA
        )
    return strip


def calibrated_map(
    onset_grey: np.ndarray,
    flow: np.ndarray,
    crop_landmarks: np.ndarray,
    px_full_scale: float = DEFAULT_PX_FULL_SCALE,
    legend: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated colour map of an onset→apex flow on the aligned crop.

    ``onset_grey``: H×W uint8; ``flow``: H×W×2 float (pixels); ``crop_landmarks``: the onset face's
    mesh in crop pixels (N×2, N > max(RIGID_POINTS)). Returns ``(bgr, flow_without_head)``: bgr is
    (H + legend height)×W×3 uint8 (just H×W×3 with ``legend=False``), flow_without_head the
    H×W×2 float32 flow with the rigid-landmark similarity removed (what region statistics read).
    """
    _check_inputs(onset_grey, flow, crop_landmarks)
    field, _ = head_motion_field(flow, crop_landmarks)
    rest = (flow.astype(np.float32) - field).astype(np.float32)
    fused = cv2.add(cv2.cvtColor(onset_grey, cv2.COLOR_GRAY2BGR), calibrated_colours(rest, px_full_scale))
    if legend:
        fused = np.vstack([fused, legend_strip(onset_grey.shape[1], px_full_scale)])
    return fused, rest


__all__ = [
    "DEFAULT_PX_FULL_SCALE",
    "calibrated_colours",
    "calibrated_map",
    "head_motion_field",
    "legend_strip",
    "sample_flow",
]
