"""The MELLM motion-enhanced colour map (Zhao et al., arXiv 2505.07007), exactly as published.

Recipe, given the onset→apex flow of an aligned face:

1. Head motion: subtract the mean flow of a ``window``×``window`` (11×11) patch centred on the nose
   tip, which carries the rigid head motion but almost no expression.
2. Polar form with ``cv2.cartToPolar(u, v, angleInDegrees=True)``: angle in [0, 360) degrees
   measured from +x towards +y. Image y points down, so 0 = right, 90 = down, 180 = left,
   270 = up (clockwise on screen). OpenCV's own function, because the recipe is the OpenCV
   flow-visualisation idiom (cartToPolar → HSV → BGR); it is a fast atan (error up to about
   0.3°, e.g. 44.99 for 45), so a direction exactly on a bin edge may fall either side of it.
3. Hue = direction quantised to 30 degrees: bin ``k = floor(angle / 30) mod 12`` covers
   [30k, 30k + 30) and gets hue 30k degrees (bin start, the ``angle // 30 * 30`` idiom). OpenCV's
   8-bit HSV stores hue as degrees / 2 in 0..179, so the stored hue is ``15 * k`` (0, 15, ..., 165),
   exact in uint8. ``mod 12`` folds the 360.0 that the fast atan can return into bin 0.
   Consequence of bin starts on the axes: motion straight up (or right, down, left) sits on a bin
   edge, so noisy vertical motion shows both neighbouring hues (240° blue and 270° violet for up).
4. Saturation 255; value = magnitude min-max normalised to 0..255 over the whole map
   (``cv2.normalize(NORM_MINMAX)``; a constant magnitude, e.g. none left after step 1, gives 0).
5. HSV → BGR with OpenCV's ``COLOR_HSV2BGR``. With S = 255 and hues on 30° steps a channel is V,
   0 or V/2, and the V/2 ties land on 127 or 128 by float rounding. OpenCV's SIMD path and its
   scalar tail round those ties differently, so one ``cvtColor`` call gives the same direction two
   colours depending on the pixel's column. We therefore convert through a 12×256 table holding
   OpenCV's scalar (single-pixel) result for every (hue bin, value): every pixel of a direction
   gets one colour, and it is exactly what ``cv2.cvtColor`` returns for that HSV pixel alone.
6. The colour is added with saturation (``cv2.add``) onto the grey onset frame turned BGR, so still
   regions keep the face's grey and moving regions glow in their direction's colour.

>>> import numpy as np
>>> onset = np.full((32, 32), 40, np.uint8)
>>> flow = np.zeros((32, 32, 2), np.float32); flow[:8, :8, 1] = -2.0   # a patch moves up
>>> fused, _ = mellm_map(onset, flow, (16.0, 16.0))
>>> tuple(int(c) for c in fused[0, 0]) == tuple(min(40 + c, 255) for c in direction_colour(270))
True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

HUE_BIN_DEG = 30
N_HUE_BINS = 360 // HUE_BIN_DEG


def _check_flow(flow: np.ndarray, shape: tuple[int, ...] | None = None) -> None:
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        got = flow.shape if isinstance(flow, np.ndarray) else type(flow).__name__
        raise ValueError(f"flow: expected an H×W×2 array, got {got}")
    if not np.issubdtype(flow.dtype, np.floating):
        raise ValueError(f"flow: expected a float dtype, got {flow.dtype}")
    if shape is not None and flow.shape[:2] != shape:
        raise ValueError(f"flow: expected spatial shape {shape} (the onset frame's), got {flow.shape[:2]}")


def hue_bin(angle_deg: np.ndarray | float) -> np.ndarray:
    """The 30-degree bin index 0..11 of an angle in degrees (floor, wrapped into [0, 360))."""
    a = np.mod(np.asarray(angle_deg, dtype=np.float64), 360.0)
    return (np.floor(a / HUE_BIN_DEG).astype(np.int64)) % N_HUE_BINS


@functools.cache
def hsv_table() -> np.ndarray:
    """12×256×3 uint8: OpenCV's BGR of hue bin k (OpenCV hue 15k), saturation 255, value V.

    Built from one single-pixel ``cvtColor`` per entry (scalar path, about 7 ms, once per process).
    """
    table = np.empty((N_HUE_BINS, 256, 3), dtype=np.uint8)
    hsv = np.empty((1, 1, 3), dtype=np.uint8)
    hsv[..., 1] = 255
    for k in range(N_HUE_BINS):
        hsv[..., 0] = k * (HUE_BIN_DEG // 2)
        for v in range(256):
            hsv[..., 2] = v
            table[k, v] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    table.flags.writeable = False
    return table


def direction_colour(angle_deg: float) -> tuple[int, int, int]:
    """The published BGR colour of a flow direction (0 = right, 90 = down, 270 = up) at full magnitude.

    >>> direction_colour(0)     # right → red
    (0, 0, 255)
    >>> direction_colour(270)   # up → hue 270° (violet)
    (255, 0, 128)
    """
    b, g, r = hsv_table()[int(hue_bin(angle_deg)), 255]
    return int(b), int(g), int(r)


def remove_head_motion(
    flow: np.ndarray, nose_xy: Sequence[float] | np.ndarray, window: int = 11
) -> np.ndarray:
    """``flow`` minus the mean flow of the ``window``×``window`` patch centred on ``nose_xy`` (x, y pixels).

    The patch is centred on the nearest pixel and clipped to the image; a nose outside the image is
    a ``ValueError``. Returns a new H×W×2 float32 array.
    """
    _check_flow(flow)
    if window < 1:
        raise ValueError(f"window: expected a side >= 1, got {window}")
    h, w = flow.shape[:2]
    cx, cy = (int(np.floor(float(c) + 0.5)) for c in nose_xy[:2])
    if not (0 <= cx < w and 0 <= cy < h):
        raise ValueError(f"nose_xy: expected a point inside the {w}×{h} flow, got {tuple(nose_xy[:2])}")
    half = window // 2
    patch = flow[max(cy - half, 0): cy - half + window, max(cx - half, 0): cx - half + window]
    mean = patch.reshape(-1, 2).astype(np.float64).mean(axis=0).astype(np.float32)
    return (flow.astype(np.float32) - mean).astype(np.float32)


def flow_to_bgr(flow: np.ndarray) -> np.ndarray:
    """Steps 2–5 of the recipe: H×W×2 flow → H×W×3 uint8 BGR (hue = 30° bin, S = 255, V = min-max |flow|)."""
    _check_flow(flow)
    u = np.ascontiguousarray(flow[..., 0], dtype=np.float32)
    v = np.ascontiguousarray(flow[..., 1], dtype=np.float32)
    mag, ang = cv2.cartToPolar(u, v, angleInDegrees=True)
    value = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    return hsv_table()[hue_bin(ang), value]


def mellm_map(
    onset_grey: np.ndarray,
    flow: np.ndarray,
    nose_xy: Sequence[float] | np.ndarray,
    window: int = 11,
) -> tuple[np.ndarray, np.ndarray]:
    """The motion-enhanced colour map of MELLM.

    ``onset_grey``: H×W uint8 grey onset frame; ``flow``: H×W×2 float onset→apex in pixels;
    ``nose_xy``: nose tip (x, y) in the same pixels (``FaceObservation.crop_landmarks[NOSE_TIP]``).
    Returns ``(fused, flow_without_head)``: H×W×3 uint8 BGR map and the H×W×2 float32 flow with
    the nose-window mean removed (what region statistics should read).
    """
    if not isinstance(onset_grey, np.ndarray) or onset_grey.ndim != 2 or onset_grey.dtype != np.uint8:
        got = (onset_grey.shape, onset_grey.dtype) if isinstance(onset_grey, np.ndarray) else type(onset_grey)
        raise ValueError(f"onset_grey: expected an H×W uint8 grey image, got {got}")
    _check_flow(flow, onset_grey.shape)
    flow_nh = remove_head_motion(flow, nose_xy, window)
    colour = flow_to_bgr(flow_nh)
    fused = cv2.add(cv2.cvtColor(onset_grey, cv2.COLOR_GRAY2BGR), colour)
    return fused, flow_nh


def encode_png(bgr: np.ndarray, level: int = 3) -> bytes:
    """PNG bytes of an H×W×3 uint8 BGR image at zlib ``level`` 0..9 (the published third frame)."""
    if not isinstance(bgr, np.ndarray) or bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        got = (bgr.shape, bgr.dtype) if isinstance(bgr, np.ndarray) else type(bgr)
        raise ValueError(f"bgr: expected an H×W×3 uint8 image, got {got}")
    if not 0 <= level <= 9:
        raise ValueError(f"level: expected a PNG compression level 0..9, got {level}")
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(level)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode the fused map as PNG")
    return buf.tobytes()
