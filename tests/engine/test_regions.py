"""Facial regions sit where their names say: on MediaPipe's canonical mesh and on a real face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.face import FaceConfig, create_tracker
from engine.face.align import canonical_template
from engine.regions import (
    EYE_L,
    EYE_R,
    NOSE_TIP,
    REGION_BASES,
    REGION_NAMES,
    REGIONS,
    RIGID_POINTS,
    base_of,
    region_centres,
    side_of,
)
from engine.types import Frame
from tests.conftest import shared_path

# The canonical mesh has 468 vertices; 468-477 are the iris points added by the landmarker.
TEMPLATE = canonical_template(1)  # 468×2, unit crop, x right, y down, symmetric about x = 0.5


def mirror(index: int) -> int:
    """The canonical vertex mirroring ``index`` across the face's midline."""
    target = np.array([1.0 - TEMPLATE[index, 0], TEMPLATE[index, 1]])
    return int(np.argmin(np.linalg.norm(TEMPLATE - target, axis=1)))


def test_region_names_cover_every_base_on_both_sides() -> None:
    assert set(REGION_NAMES) == {f"{b}_{s}" for b in REGION_BASES for s in "LR"}
    assert {side_of(n) for n in REGION_NAMES} == {"L", "R"}
    assert base_of("mouth_corner_L") == "mouth_corner" and side_of("mouth_corner_L") == "L"
    for idx in [*REGIONS.values(), RIGID_POINTS, EYE_L, EYE_R]:
        assert all(0 <= i < 468 for i in idx) and len(set(idx)) == len(idx)


@pytest.mark.parametrize("base", REGION_BASES)
def test_left_region_mirrors_right_region(base: str) -> None:
    """On the symmetric canonical mesh, ``X_L`` is point-for-point the mirror image of ``X_R``."""
    right, left = REGIONS[f"{base}_R"], REGIONS[f"{base}_L"]
    assert len(right) == len(left)
    assert [mirror(i) for i in right] == list(left)


def test_eyes_mirror() -> None:
    assert [mirror(i) for i in EYE_R] == list(EYE_L)


def check_layout(centres: dict[str, np.ndarray], nose_tip: np.ndarray, eye_r: np.ndarray, eye_l: np.ndarray):
    """Assert the anatomical layout of region centres on an upright, non-mirrored frontal face."""
    y = {n: c[1] for n, c in centres.items()}
    x = {n: c[0] for n, c in centres.items()}
    for s in "LR":
        # top to bottom: brows, eyelids, nose wings, lips, chin (image y grows downward)
        assert max(y[f"brow_inner_{s}"], y[f"brow_outer_{s}"]) < y[f"eyelid_upper_{s}"]
        assert y[f"eyelid_upper_{s}"] < y[f"eyelid_lower_{s}"] < y[f"cheek_{s}"]
        assert y[f"eyelid_lower_{s}"] < y[f"nose_wing_{s}"] < y[f"lip_upper_{s}"]
        assert y[f"lip_upper_{s}"] < y[f"lip_lower_{s}"] < y[f"chin_{s}"]
        assert y[f"lip_upper_{s}"] < y[f"mouth_corner_{s}"] < y[f"lip_lower_{s}"] + 1e-6
    mid = nose_tip[0]
    for base in REGION_BASES:
        # subject's left (_L) on the image right
        assert x[f"{base}_R"] < mid < x[f"{base}_L"], base
    # lateral ordering on each side, measured outward from the midline
    for s, sign in (("R", -1.0), ("L", 1.0)):
        out = {n: sign * (c - mid) for n, c in x.items() if n.endswith(f"_{s}")}
        assert out[f"brow_outer_{s}"] > out[f"brow_inner_{s}"]
        assert out[f"cheek_{s}"] > out[f"nose_wing_{s}"]
        assert out[f"mouth_corner_{s}"] > max(out[f"lip_upper_{s}"], out[f"lip_lower_{s}"])
    assert eye_r[0] < mid < eye_l[0]


def test_regions_on_canonical_face() -> None:
    centres = region_centres(np.vstack([TEMPLATE, np.zeros((10, 2), np.float32)]))
    check_layout(centres, TEMPLATE[NOSE_TIP], TEMPLATE[EYE_R[2]], TEMPLATE[EYE_L[2]])


@pytest.mark.data
def test_regions_on_real_frontal_face(face_model: Path) -> None:
    image = cv2.imread(str(shared_path("images", "single_face.jpg")))
    assert image is not None
    tracker = create_tracker(FaceConfig(model=str(face_model)))
    try:
        obs = tracker.process(Frame(index=0, t=0.0, image=image))
    finally:
        tracker.close()
    assert obs is not None
    lm = obs.landmarks
    check_layout(region_centres(lm), lm[NOSE_TIP], lm[EYE_R[2]], lm[EYE_L[2]])
    # the same layout in the aligned crop
    check_layout(
        region_centres(obs.crop_landmarks),
        obs.crop_landmarks[NOSE_TIP],
        obs.crop_landmarks[EYE_R[2]],
        obs.crop_landmarks[EYE_L[2]],
    )
