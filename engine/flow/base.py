"""The flow stage's contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class FlowBackend(Protocol):
    """Dense optical flow between grey frames.

    ``compute(prev, next)``: two H×W uint8 grey images → H×W×2 float32 flow in pixels (x right,
    y down) that maps ``prev`` onto ``next``. ``compute_batch`` does B pairs of one size and returns
    B×H×W×2 float32; it must equal B calls of ``compute``.
    """

    name: str

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray: ...

    def compute_batch(self, prevs: Sequence[np.ndarray], nexts: Sequence[np.ndarray]) -> np.ndarray: ...
