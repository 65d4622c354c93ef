"""Fusion recipes by name: onset crop + onset→apex flow → (colour map, flow without head motion).

A recipe is made once from its config section (``[fusion.mellm]``, ``[fusion.calibrated]``) and then
called per candidate: ``recipe(onset_grey, flow, crop_landmarks)`` with the H×W uint8 onset crop,
the H×W×2 float32 flow in crop pixels and the onset face's N×2 crop landmarks; it returns the
H'×W×3 uint8 BGR map and the H×W×2 float32 flow with head motion removed.

>>> sorted(RECIPES.names())
['calibrated', 'mellm']
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from engine.regions import NOSE_TIP
from engine.registry import Registry


class Recipe(Protocol):
    def __call__(
        self, onset_grey: np.ndarray, flow: np.ndarray, crop_landmarks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]: ...


def mellm_recipe(nose_window: int = 11) -> Recipe:
    """The published MELLM map; head motion is the mean flow of a ``nose_window`` square at the nose tip."""
    from engine.fusion.mellm_map import mellm_map

    def fuse(
        onset_grey: np.ndarray, flow: np.ndarray, crop_landmarks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return mellm_map(onset_grey, flow, crop_landmarks[NOSE_TIP], nose_window)

    return fuse


def calibrated_recipe(px_full_scale: float = 3.0, legend: bool = True) -> Recipe:
    """`engine.fusion.calibrated.calibrated_map`: brightness in pixels, rigid head-motion fit, legend."""
    from engine.fusion.calibrated import calibrated_map

    def fuse(
        onset_grey: np.ndarray, flow: np.ndarray, crop_landmarks: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        return calibrated_map(onset_grey, flow, crop_landmarks, px_full_scale, legend)

    return fuse


RECIPES: Registry[Recipe] = Registry("fusion recipe")
RECIPES.register("mellm", mellm_recipe)
RECIPES.register("calibrated", calibrated_recipe)
