"""Similarity alignment of a tracked face to a canonical grey crop.

The rigid points of the mesh (`engine.regions.RIGID_POINTS`: eye corners, nose bridge,
forehead midline) are fitted to the same points of MediaPipe's canonical face (package data
``data/canonical_face.npy``, built by `engine.face.data.make_template`) by a least-squares
similarity (rotation, uniform scale, translation; closed-form Umeyama fit). Least squares rather
than a random-sampling robust fit (LMEDS/RANSAC) because it is deterministic: the same landmarks
give the same crop, so the crop does not jitter from frame to frame and head motion does not leak
into the spotter's motion signal. In the crop the eyes are level and at fixed positions, and the
canonical mesh's bounding box fills the crop with a 4 % margin above and below.

>>> crop, transform, crop_lm = align_face(frame_bgr, landmarks, 256)  # doctest: +SKIP
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import cv2
import numpy as np

from engine.regions import RIGID_POINTS
from engine.types import FaceObservation

N_LANDMARKS = 478
TEMPLATE_FILE = "canonical_face.npy"


@lru_cache(maxsize=1)
def _unit_template() -> np.ndarray:
    """The canonical face in unit-crop coordinates: 468×2 float32, x right, y down, in [0, 1]."""
    with resources.files("engine.face.data").joinpath(TEMPLATE_FILE).open("rb") as fh:
        template = np.load(fh)
    template.setflags(write=False)
    return template


@lru_cache(maxsize=8)
def canonical_template(crop_size: int) -> np.ndarray:
    """The canonical face's 468 points in pixels of a ``crop_size``² crop: 468×2 float32 (read-only)."""
    template = (_unit_template() * np.float32(crop_size)).astype(np.float32)
    template.setflags(write=False)
    return template


def rigid_template(crop_size: int) -> np.ndarray:
    """Where the `RIGID_POINTS` land in a ``crop_size``² crop: K×2 float32."""
    return canonical_template(crop_size)[list(RIGID_POINTS)]


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity mapping ``src`` (N×2) onto ``dst`` (N×2): a 2×3 float32 affine matrix.

    Closed form (Umeyama 1991 without reflection, written with complex numbers): with centred
    points ``s`` and ``d`` as complex numbers, ``a = Σ conj(s)·d / Σ |s|²`` is scale·e^{iθ}.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"expected two N×2 point sets with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s = (src[:, 0] - mu_s[0]) + 1j * (src[:, 1] - mu_s[1])
    d = (dst[:, 0] - mu_d[0]) + 1j * (dst[:, 1] - mu_d[1])
    denom = float(np.sum(np.abs(s) ** 2))
    if denom <= 1e-12:
        raise ValueError("source points are all at one place; cannot fit a similarity")
    a = np.sum(np.conj(s) * d) / denom
    c, sn = a.real, a.imag
    tx = mu_d[0] - (c * mu_s[0] - sn * mu_s[1])
    ty = mu_d[1] - (sn * mu_s[0] + c * mu_s[1])
    return np.array([[c, -sn, tx], [sn, c, ty]], dtype=np.float32)


def transform_points(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine ``transform`` to N×2 ``points``: N×2 float32."""
    pts = np.asarray(points, dtype=np.float32)[:, :2]
    return (pts @ transform[:, :2].T + transform[:, 2]).astype(np.float32)


def align_face(
    image: np.ndarray, landmarks: np.ndarray, crop_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp the face to the canonical crop.

    ``image``: H×W×3 uint8 BGR or H×W uint8 grey; ``landmarks``: 478×2 (or ×3) in its pixels.
    Returns ``(crop, transform, crop_landmarks)``: crop ``crop_size``² uint8 grey, transform 2×3
    float32 mapping image pixels to crop pixels, crop_landmarks 478×2 float32 in crop pixels.
    Borders replicate edge pixels so a face near the frame edge does not gain a moving black edge.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected an H×W×3 BGR or H×W grey uint8 image, got {image.shape} {image.dtype}")
    lm = np.asarray(landmarks, dtype=np.float32)
    if lm.ndim != 2 or lm.shape[0] != N_LANDMARKS or lm.shape[1] < 2:
        raise ValueError(f"expected {N_LANDMARKS}×2 landmarks, got {lm.shape}")
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    transform = fit_similarity(lm[list(RIGID_POINTS), :2], rigid_template(crop_size))
    crop = cv2.warpAffine(
        grey, transform, (crop_size, crop_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return crop, transform, transform_points(lm, transform)


def invert_affine(transform: np.ndarray) -> np.ndarray:
    """The inverse of a 2×3 affine ``transform``: 2×3 float64."""
    return cv2.invertAffineTransform(np.asarray(transform, dtype=np.float64))


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer ∘ inner`` of two 2×3 affines (``inner`` applied first): 2×3 float64."""
    o = np.vstack([np.asarray(outer, np.float64), [0.0, 0.0, 1.0]])
    i = np.vstack([np.asarray(inner, np.float64), [0.0, 0.0, 1.0]])
    return (o @ i)[:2]


def reregister_crop(crop: np.ndarray, transform: np.ndarray, target_transform: np.ndarray) -> np.ndarray:
    """A crop made with ``transform`` as if it had been made with ``target_transform``.

    The crop is warped by ``target ∘ transform⁻¹`` (crop → frame → target crop), so two frames of
    one candidate share one registration: landmark jitter between them no longer turns into flow.
    Done on the crop rather than the frame because the candidate carries crops only; what falls
    outside the first crop (a few pixels at the border for the sub-pixel to few-pixel jitter of a
    tracked face) replicates the edge, as `align_face` does.
    """
    relative = compose_affine(target_transform, invert_affine(transform))
    if np.allclose(relative, [[1, 0, 0], [0, 1, 0]], atol=1e-6):
        return crop
    h, w = crop.shape[:2]
    return cv2.warpAffine(crop, relative, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def registered_apex_crop(onset: FaceObservation, apex: FaceObservation) -> np.ndarray:
    """The apex crop in the onset's registration (`reregister_crop` with the onset's transform). One
    registration per candidate, so the flow between ``onset.crop`` and this crop holds the face's
    motion, not the landmark tracker's jitter; the head's own motion between the two frames stays
    in it for the fusion recipe to remove (the nose window of ``mellm``: translation only).

    An ECC rotation + translation fit on the pixels around the rigid points was tried on top and
    left out: it took the upward cheek motion of AU6 near the eye corners for head motion.
    """
    return reregister_crop(apex.crop, apex.transform, onset.transform)
