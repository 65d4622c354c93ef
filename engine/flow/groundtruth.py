"""Known smooth warps for measuring a flow backend's accuracy (benchmarks and tests share them).

`smooth_field` makes a ground-truth flow; `warp_by_flow` makes the later frame that this flow
maps a real image onto, so the end-point error of any backend can be measured on real texture.
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_field(h: int, w: int, amplitude: float, seed: int) -> np.ndarray:
    """A smooth H×W×2 float32 flow: three long-wave sinusoids per component, max |component| = amplitude."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    field = np.zeros((h, w, 2))
    for c in range(2):
        for _ in range(3):
            kx, ky = rng.uniform(0.5, 2.0, 2) * 2 * np.pi / np.array([w, h])
            field[..., c] += np.sin(kx * xs + ky * ys + rng.uniform(0, 2 * np.pi))
    return (field * (amplitude / np.abs(field).max())).astype(np.float32)


def warp_by_flow(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """The later frame for a prev→next ``flow``: next(x + flow(x)) = prev(x), inverted by fixed point."""
    h, w = img.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x, y = xs.copy(), ys.copy()
    for _ in range(30):  # x = y − u(x) converges: |∇u| << 1 for these smooth fields
        x = xs - cv2.remap(flow[..., 0], x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        y = ys - cv2.remap(flow[..., 1], x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.remap(img, x, y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
