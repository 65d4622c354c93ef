"""The MELLM v1 motion-enhanced colour map, as the authors' released code draws it.

The authors' MELLM v1 (``preprocess.py`` of ``zyzhangUstc/mellmv1-base-on-Qwen2.5vl-7B-``) was
fine-tuned on this map, so every step follows the released arithmetic. Given onset→apex flow:

1. Head motion: subtract the mean flow of the ``window``×``window`` (11×11) patch around the nose
   tip; the centre pixel is the nose tip's coordinates truncated to integers (``int(x)``), the patch
   is clipped to the image.
2. Polar form with ``cv2.cartToPolar(u, v)`` in radians, turned into degrees (×180/π, float32):
   angle in [0, 360) from +x towards +y. Image y points down, so 0 = right, 90 = down, 180 = left,
   270 = up (clockwise on screen). OpenCV's atan is a fast approximation (error up to ~0.3°).
3. Hue = direction quantised to the NEAREST 30° bin: ``k = round(angle / 30) mod 12`` (numpy's
   round, half to even), OpenCV hue ``15 k`` (degrees / 2, 0..165). Bins are centred on the axes,
   so right, down, left and up each have one hue; the diagonals (45°, 135°, ...) sit on bin edges.
   The released prompt's colour key reads: up = purple (270°), up-right = magenta/pink (300/330°),
   right = red (0°), down-right = orange-yellow (30/60°), down = yellow-green (90°), down-left =
   green (120/150°), left = cyan (180°), up-left = blue (210/240°).
4. Saturation 255; value = magnitude min-max normalised to 0..255 over the whole map in float and
   truncated to uint8 (the released code assigns the float result into a uint8 array); a constant
   magnitude, e.g. no motion left after step 1, gives 0 everywhere.
5. HSV → BGR with one ``cv2.cvtColor(COLOR_HSV2BGR)`` over the whole image, as released. (OpenCV's
   vector path and its scalar tail may round the V/2 channel of a hue to 127 or 128 differently;
   the released maps carry that ±1 and so does ours.)
6. The colour is added with saturation (``cv2.add``) onto the grey onset frame turned BGR, so still
   regions keep the face's grey and moving regions glow in their direction's colour. (The
   released code's 0-percentile mask keeps every pixel above the minimum magnitude, whose value
   is 0 anyway: no masking.)

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
    """The index 0..11 of the nearest 30-degree bin (bin k is centred on 30k°; numpy round, half to even).

    Float32 input is quantised in float32, as the released code does with OpenCV's float32 angles.
    """
    a = np.asarray(angle_deg)
    if a.dtype != np.float32:
        a = a.astype(np.float64)
    a = np.mod(a, 360)
    return np.round(a / HUE_BIN_DEG).astype(np.int64) % N_HUE_BINS


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
    >>> direction_colour(270)   # up → hue 270° (purple)
    (255, 0, 128)
    >>> direction_colour(90)    # down → hue 90° (yellow-green)
    (0, 255, 128)
    """
    b, g, r = hsv_table()[int(hue_bin(angle_deg)), 255]
    return int(b), int(g), int(r)


def remove_head_motion(
    flow: np.ndarray, nose_xy: Sequence[float] | np.ndarray, window: int = 11
) -> np.ndarray:
    """``flow`` minus the mean flow of the ``window``×``window`` patch centred on ``nose_xy`` (x, y pixels).

    The patch is centred on the pixel ``(int(x), int(y))`` (truncation, as released) and clipped to
    the image; a nose outside the image is
    a ``ValueError``. Returns a new H×W×2 float32 array.
    """
    _check_flow(flow)
    if window < 1:
        raise ValueError(f"window: expected a side >= 1, got {window}")
    h, w = flow.shape[:2]
    cx, cy = (int(float(c)) for c in nose_xy[:2])
    if not (0 <= cx < w and 0 <= cy < h):
        raise ValueError(f"nose_xy: expected a point inside the {w}×{h} flow, got {tuple(nose_xy[:2])}")
    half = window // 2
    patch = flow[max(cy - half, 0): cy - half + window, max(cx - half, 0): cx - half + window]
    mean = patch.reshape(-1, 2).astype(np.float64).mean(axis=0).astype(np.float32)
    return (flow.astype(np.float32) - mean).astype(np.float32)


def flow_to_bgr(flow: np.ndarray) -> np.ndarray:
    """Steps 2–5 of the recipe: H×W×2 flow → H×W×3 uint8 BGR (hue = nearest 30° bin, S = 255,
    V = min-max |flow| truncated)."""
    _check_flow(flow)
    u = np.ascontiguousarray(flow[..., 0], dtype=np.float32)
    v = np.ascontiguousarray(flow[..., 1], dtype=np.float32)
    mag, ang = cv2.cartToPolar(u, v)
    hsv = np.empty((*flow.shape[:2], 3), dtype=np.uint8)
    hsv[..., 0] = hue_bin(ang * np.float32(180) / np.float32(np.pi)) * (HUE_BIN_DEG // 2)
    hsv[..., 1] = 255
    hsv[..., 2] = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX)  # float → uint8 truncates
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


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
