"""Frame-rate sanity shared by the sources (a container's stated rate) and the spotter (a measured one)."""

from __future__ import annotations

import math

MAX_SANE_FPS = 2000.0  # no camera or container this engine reads delivers more


def sane_fps(value: float | None) -> float | None:
    """``value`` as a frame rate, or None when it is missing or absurd (0, NaN, thousands).

    >>> sane_fps(29.97), sane_fps(0.0), sane_fps(float("nan")), sane_fps(90000.0)
    (29.97, None, None, None)
    """
    if value is None or not math.isfinite(value) or value <= 0 or value > MAX_SANE_FPS:
        return None
    return float(value)
