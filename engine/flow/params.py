"""Parameter checks shared by the two Dual TV-L1 backends (``opencv-tvl1`` and ``torch-tvl1``).

Both take OpenCV's ``DualTVL1OpticalFlow_create`` parameters under the same snake-case names, so
one function says which values are valid and how a bad one is reported. Kept free of torch so the
OpenCV backend does not import it.

>>> good = dict(tau=0.25, lambda_=0.15, theta=0.3, epsilon=0.01, nscales=5, warps=5,
...             inner_iterations=30, outer_iterations=10, scale_step=0.8, median_filtering=5)
>>> check_tvl1_params(good)
>>> check_tvl1_params({**good, "warps": 0})
Traceback (most recent call last):
...
engine.errors.UserError: flow parameter warps=0 must be an integer >= 1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.errors import UserError

POSITIVE = ("tau", "lambda_", "theta", "epsilon")
COUNTS = ("nscales", "warps", "inner_iterations", "outer_iterations")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def check_positive(name: str, value: Any) -> None:
    """``value`` must be a number > 0 (a string or None is refused, not compared)."""
    if not _is_number(value) or not value > 0:
        raise UserError(f"flow parameter {name}={value!r} must be > 0")


def check_at_least(name: str, value: Any, lowest: int) -> None:
    """``value`` must be a number >= ``lowest`` once truncated to an integer (OpenCV's setters)."""
    if not _is_number(value) or int(value) < lowest:
        raise UserError(f"flow parameter {name}={value!r} must be >= {lowest}")


def check_fraction(name: str, value: Any) -> None:
    """``value`` must be a number in (0, 1) (pyramid scale steps)."""
    if not _is_number(value) or not 0 < value < 1:
        raise UserError(f"flow parameter {name}={value!r} must be in (0, 1)")


def check_tvl1_params(params: Mapping[str, Any]) -> None:
    """Raise `UserError` naming the first invalid solver parameter of ``params`` (the names above plus
    ``scale_step`` and ``median_filtering``; other keys are the backend's own to check): weights and
    tolerance > 0, counts integers >= 1, ``scale_step`` in (0, 1), ``median_filtering`` an odd size
    >= 1 (1 = off)."""
    for key in POSITIVE:
        check_positive(key, params[key])
    for key in COUNTS:
        val = params[key]
        if not isinstance(val, int | np.integer) or val < 1:
            raise UserError(f"flow parameter {key}={val!r} must be an integer >= 1")
    scale_step, median = params["scale_step"], params["median_filtering"]
    check_fraction("scale_step", scale_step)
    if not isinstance(median, int | np.integer) or median < 1 or median % 2 == 0:
        raise UserError(f"flow parameter median_filtering={median!r} must be odd, >= 1 (1 = off)")
