"""Building blocks of the spotting signal: per-region residual motion, rolling statistics, eyelids.

Everything here is plain numpy + OpenCV and runs per frame, so each piece is kept to tens of
microseconds except the one DIS optical-flow call (~0.4 ms on a 128² crop at finest scale 1).

>>> frames_for(0.25, 200.0)
50
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from engine.regions import EYE_L, EYE_R, REGION_NAMES, REGIONS, RIGID_POINTS, base_of
from engine.timing import sane_fps

if TYPE_CHECKING:
    from spotting.config import SpottingConfig

DIS_PRESETS: dict[str, int] = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
EYELID_BASES: frozenset[str] = frozenset({"eyelid_upper", "eyelid_lower"})
# Boolean mask over REGION_NAMES: the regions a blink moves.
EYELID_MASK: np.ndarray = np.array([base_of(n) in EYELID_BASES for n in REGION_NAMES], dtype=bool)


def frames_for(seconds: float, fps: float, minimum: int = 1) -> int:
    """``seconds`` as a whole number of frames at ``fps`` (rounded, at least ``minimum``)."""
    return max(minimum, round(seconds * fps))


RATE_TOLERANCE = 0.05  # a measured rate within 5 % of the nominal one keeps the nominal one


def measured_rate(
    times: Sequence[float],
    nominal: float,
    fallback: float | None = None,
    tolerance: float = RATE_TOLERANCE,
) -> float:
    """The frame rate that the timestamps ``times`` (seconds, one per frame in order) show: one over
    their median interval; ``nominal`` when it agrees with that within ``tolerance``, so a
    constant-rate source keeps its exact rate. ``fallback`` (default ``nominal``) when they show no
    sane rate (fewer than two, not increasing, thousands per second: `engine.timing.sane_fps`).

    Containers and cameras misstate their rate: a phone's variable-rate .mov says 26.4 fps while its
    frames come at 30 (or 24), a webcam says 30 and delivers 15 in dim light. Durations in seconds
    are only right in frames at the rate the frames really come at.

    >>> measured_rate([0.0, 1 / 30, 2 / 30, 3 / 30], 26.4)
    30.0
    >>> measured_rate([0.0, 0.0417, 0.0834], 24.0), measured_rate([0.0], 24.0, fallback=30.0)
    (24.0, 30.0)
    """
    t = np.asarray(times, dtype=np.float64)
    step = float(np.median(np.diff(t))) if len(t) >= 2 and np.isfinite(t).all() else 0.0
    rate = sane_fps(1.0 / step) if step > 0 else None
    if rate is None:
        return float(nominal if fallback is None else fallback)
    if abs(rate / nominal - 1.0) <= tolerance:
        return float(nominal)
    return round(rate, 3)


def fit_similarity_motion(points: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity motion of ``points`` (N×2) moving by ``flow`` (N×2).

    Returns ``(A, b)`` with the modelled displacement of a point ``p`` equal to ``p @ A.T + b``.
    Closed form with complex numbers (as `engine.face.align.fit_similarity`), fitted on
    ``points → points + flow``.
    """
    p = points.astype(np.float64)
    q = p + flow.astype(np.float64)
    mu_p, mu_q = p.mean(axis=0), q.mean(axis=0)
    s = (p[:, 0] - mu_p[0]) + 1j * (p[:, 1] - mu_p[1])
    d = (q[:, 0] - mu_q[0]) + 1j * (q[:, 1] - mu_q[1])
    denom = float(np.sum(np.abs(s) ** 2))
    a = np.sum(np.conj(s) * d) / denom if denom > 1e-12 else 1.0 + 0j
    c, sn = float(np.real(a)), float(np.imag(a))
    rot = np.array([[c, -sn], [sn, c]])
    b = mu_q - rot @ mu_p
    return rot - np.eye(2), b


class RegionMotion:
    """Per-region motion between two aligned crops, residual rigid (head) motion removed.

    ``measure(ref, ref_points, cur)`` runs DIS flow from the reference signal crop to the current
    one (both ``size``² uint8) after cancelling their global shift (phase correlation, when
    ``register``), box-filters it, samples it at the reference frame's region and
    rigid landmarks (``ref_points``: P×2 float32 in signal pixels, the rows of `sample_points`),
    subtracts the similarity motion fitted on the rigid points (alignment leaves sub-pixel head
    motion that would otherwise move every region together), and returns for each region of
    `REGION_NAMES` the length of its mean residual vector (float32, signal pixels).

    >>> rm = RegionMotion(128)
    >>> pts = rm.sample_points(np.random.default_rng(0).uniform(40, 200, (478, 2)), 0.5)
    >>> img = np.zeros((128, 128), np.uint8)
    >>> rm.measure(img, pts, img).shape
    (20,)
    """

    def __init__(
        self,
        size: int,
        preset: str = "ultrafast",
        finest_scale: int = 1,
        register: bool = True,
        flow: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        patch_stride: int = 0,
    ) -> None:
        """``flow``: a flow function ``(prev, next) -> H×W×2 float32`` (a flow backend's ``compute``,
        chosen by name in ``spotting.flow`` and passed in by the pipeline); None = the built-in DIS
        with ``preset``, ``finest_scale`` and ``patch_stride`` (0 = the preset's). Spotting never
        imports a later stage itself."""
        if preset not in DIS_PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; expected one of {sorted(DIS_PRESETS)}")
        self.size = size
        self.register = register
        self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        self._dis.setFinestScale(int(finest_scale))
        if patch_stride > 0:
            if patch_stride > self._dis.getPatchSize():
                raise ValueError(
                    f"DIS patch stride {patch_stride} exceeds the patch size {self._dis.getPatchSize()}"
                )
            self._dis.setPatchStride(int(patch_stride))
        self._flow = flow
        k = max(3, (size // 24) | 1)
        self._box = (k, k)
        region_idx = [np.asarray(REGIONS[n], dtype=np.int64) for n in REGION_NAMES]
        self._n_region_points = int(sum(len(r) for r in region_idx))
        # Landmark indices sampled each frame: the region points (region by region) then the rigid ones.
        self.landmark_index = np.concatenate([*region_idx, np.asarray(RIGID_POINTS, dtype=np.int64)])
        self._starts = np.cumsum([0] + [len(r) for r in region_idx[:-1]])
        self._counts = np.array([len(r) for r in region_idx], dtype=np.float64)

    @classmethod
    def from_config(
        cls, cfg: SpottingConfig, flow: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    ) -> RegionMotion:
        """The signal ``cfg`` names: ``signal_size``, the DIS preset, finest scale and patch stride,
        shift registration; ``flow`` as in the constructor."""
        return cls(
            cfg.signal_size,
            cfg.dis_preset,
            cfg.dis_finest_scale,
            cfg.register_shift,
            flow=flow,
            patch_stride=cfg.dis_patch_stride,
        )

    def prepare(self, crop: np.ndarray, crop_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The signal crop (``size``² uint8, area-averaged) of an S×S face crop and the sample points of
        its landmarks in signal pixels (P×2 float32, `sample_points`)."""
        size = self.size
        sig = crop if crop.shape[0] == size else cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        return sig, self.sample_points(crop_landmarks, size / crop.shape[0])

    def sample_points(self, crop_landmarks: np.ndarray, scale: float) -> np.ndarray:
        """The sampled landmarks of one frame in signal pixels: P×2 float32."""
        return np.asarray(crop_landmarks, dtype=np.float32)[self.landmark_index, :2] * np.float32(scale)

    def measure(self, ref: np.ndarray, ref_points: np.ndarray, cur: np.ndarray) -> np.ndarray:
        """Region motion magnitudes ``ref → cur``: shape (len(REGION_NAMES),) float32."""
        vec = self.measure_vectors(ref, ref_points, cur)
        return np.hypot(vec[:, 0], vec[:, 1]).astype(np.float32)

    def measure_vectors(self, ref: np.ndarray, ref_points: np.ndarray, cur: np.ndarray) -> np.ndarray:
        """Mean residual motion vector of each region ``ref → cur``: (len(REGION_NAMES), 2) float32,
        signal pixels, x right / y down, rigid (similarity) motion removed."""
        if self.register:
            # Cancel the global shift first (phase correlation, ~0.15 ms): DIS under-estimates a
            # shift in low-texture skin, which the rigid fit below would leave as fake local motion.
            (sx, sy), _ = cv2.phaseCorrelate(ref.astype(np.float32), cur.astype(np.float32))
            if abs(sx) < 0.25 * self.size and abs(sy) < 0.25 * self.size:
                back = np.float32([[1, 0, sx], [0, 1, sy]])
                cur = cv2.warpAffine(
                    cur,
                    back,
                    (self.size, self.size),
                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                    borderMode=cv2.BORDER_REPLICATE,
                )
        flow = self._flow(ref, cur) if self._flow is not None else self._dis.calc(ref, cur, None)
        flow = cv2.blur(flow, self._box)
        ij = np.clip(np.rint(ref_points).astype(np.int64), 0, self.size - 1)
        vec = flow[ij[:, 1], ij[:, 0]].astype(np.float64)  # P×2
        n = self._n_region_points
        rigid_p, rigid_v = ref_points[n:].astype(np.float64), vec[n:]
        a, b = fit_similarity_motion(rigid_p, rigid_v)
        res = rigid_v - (rigid_p @ a.T + b)
        err = np.hypot(res[:, 0], res[:, 1])
        keep = err <= 2.5 * float(np.median(err)) + 1e-3  # one robust pass: drop rigid points that moved
        if 3 <= int(keep.sum()) < len(keep):
            a, b = fit_similarity_motion(rigid_p[keep], rigid_v[keep])
        resid = vec[:n] - (ref_points[:n].astype(np.float64) @ a.T + b)
        mean = np.add.reduceat(resid, self._starts, axis=0) / self._counts[:, None]
        return mean.astype(np.float32)


class RollingStats:
    """Rolling median and MAD of ``columns`` signals over the last ``length`` samples.

    The statistics are recomputed every ``stride`` pushes (and whenever fewer than ``length``
    samples exist), so a 600-sample window at 200 fps costs a few microseconds per frame.

    >>> rs = RollingStats(1, 5, stride=1)
    >>> for v in (1.0, 2.0, 3.0, 4.0, 100.0): rs.push(np.array([v]))
    >>> rs.median.tolist(), rs.mad.tolist()
    ([3.0], [1.0])
    """

    def __init__(self, columns: int, length: int, stride: int = 1) -> None:
        self._buf = np.zeros((max(1, length), columns), dtype=np.float32)
        self._n = 0
        self._pos = 0
        self._stride = max(1, stride)
        self._since = 0
        self.median = np.zeros(columns, dtype=np.float32)
        self.mad = np.zeros(columns, dtype=np.float32)

    @property
    def count(self) -> int:
        return self._n

    def push(self, values: np.ndarray) -> None:
        self._buf[self._pos] = values
        self._pos = (self._pos + 1) % len(self._buf)
        self._n = min(self._n + 1, len(self._buf))
        self._since += 1
        if self._since >= self._stride or self._n < len(self._buf):
            self._since = 0
            data = self._buf[: self._n]
            self.median = np.median(data, axis=0).astype(np.float32)
            self.mad = np.median(np.abs(data - self.median), axis=0).astype(np.float32)

    def clear(self) -> None:
        self._n = self._pos = self._since = 0
        self.median[:] = 0
        self.mad[:] = 0


def eye_apertures(crop_landmarks: np.ndarray) -> np.ndarray:
    """Eyelid opening of the subject's left and right eye: (2,) float32, lid gap / eye width."""
    lm = np.asarray(crop_landmarks, dtype=np.float32)
    out = np.empty(2, dtype=np.float32)
    for i, (up, low, outer, inner) in enumerate((EYE_L, EYE_R)):
        width = float(np.hypot(*(lm[outer, :2] - lm[inner, :2])))
        out[i] = float(np.hypot(*(lm[up, :2] - lm[low, :2]))) / max(width, 1e-6)
    return out


def blink_blendshapes(blendshapes: dict[str, float]) -> np.ndarray:
    """MediaPipe's ``eyeBlinkLeft`` / ``eyeBlinkRight`` scores: (2,) float32, 0 where absent."""
    return np.array(
        [blendshapes.get("eyeBlinkLeft", 0.0), blendshapes.get("eyeBlinkRight", 0.0)], dtype=np.float32
    )
