"""MELLM v3's region text (`engine.explain.mellm_v3`): direction rule, line format, and the 29 regions
of a real face pair (single_face.jpg and the same face with both lip corners pulled up by engine.synth)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.explain.mellm_v3 import COMPASS, dominant_direction, region_line, region_lines, v3_regions
from tests.conftest import shared_path

# The released order and names (roi_combine.py's roi_name_map, in get_roi_flow's order).
V3_NAMES = [
    *(
        f"{eye} {lid} Eyelid ({part})"
        for lid, eyes in (("Lower", ("Left", "Right")), ("Upper", ("Left", "Right")))
        for eye in eyes
        for part in ("Left Side", "Center", "Right Side")
    ),
    "Left Outer Eyebrow",
    "Left Inner Eyebrow",
    "Right Outer Eyebrow",
    "Right Inner Eyebrow",
    "Left Nostril Wing",
    "Right Nostril Wing",
    "Left Mouth Corner",
    "Right Mouth Corner",
    "Upper Lip (Left Side)",
    "Upper Lip (Center)",
    "Upper Lip (Right Side)",
    "Lower Lip (Left Side)",
    "Lower Lip (Right Side)",
    "Lower Lip (Center)",
    "Chin",
    "Left Cheek",
    "Right Cheek",
]
_NUM = r"\d+(?:\.\d{1,3})?"
LINE = re.compile(
    rf'^\{{"region":"(?P<name>[^",]+),"mean_magnitude":(?P<mean>{_NUM}),"max_magnitude":(?P<max>{_NUM}),'
    rf'"direction":(?P<dir>(?:{"|".join(COMPASS)})\((?P<deg>\d{{1,3}})°\)\)'
    r"|No clear dominant direction \(.*\)\.|No significant motion detected \(.*\)\.)\}$"
)


@pytest.mark.parametrize("k", range(8))
def test_dominant_direction_when_flow_is_uniform_names_the_compass_point(k: int) -> None:
    angle = np.radians(45.0 * k + 10.0)  # 10° past each compass point, still nearest to it
    vec = np.array([np.cos(angle), -np.sin(angle)])  # image y points down, the angle counts up
    assert dominant_direction(np.tile(vec, (25, 1))) == f"{COMPASS[k]}({(45 * k + 10) % 360}°))"


def test_dominant_direction_when_scattered_or_still_says_so() -> None:
    ring = np.array([[np.cos(a), np.sin(a)] for a in np.linspace(0, 2 * np.pi, 36, endpoint=False)])
    assert dominant_direction(ring).startswith("No clear dominant direction (")
    assert "concentration ≈ 0.000" in dominant_direction(ring)
    nearly = np.vstack([ring, np.tile([1.0, 0.0], (7, 1))])  # 7/43 = 0.163 > 0.15: a direction
    assert dominant_direction(nearly) == "right(0°))"
    assert dominant_direction(np.zeros((4, 2))) == "No significant motion detected (mean magnitude ≈ 0)."


def test_region_line_when_given_a_patch_writes_the_released_format() -> None:
    patch = np.zeros((3, 3, 2))
    patch[..., 1] = -1.0
    patch[0, 0, 1] = -2.0
    assert region_line("Chin", patch) == (
        '{"region":"Chin,"mean_magnitude":1.111,"max_magnitude":2.0,"direction":up(90°))}'
    )


@pytest.fixture(scope="module")
def smile_pair(tmp_path_factory: pytest.TempPathFactory, face_model: Path) -> tuple[Path, Path]:
    """single_face.jpg (onset) and the same face with AU12 (lip corners up and out, 3 px) applied."""
    from engine import synth
    from engine.face import FaceConfig, create_tracker
    from engine.types import Frame

    onset = cv2.imread(str(shared_path("images", "single_face.jpg")))
    tracker = create_tracker(FaceConfig(model=str(face_model)))
    face = tracker.process(Frame(0, 0.0, onset))
    tracker.close()
    assert face is not None
    apex = synth.apply(onset, synth.displacement_field(face.landmarks, onset.shape, [12], 3.0))
    folder = tmp_path_factory.mktemp("smile")
    cv2.imwrite(str(folder / "onset.png"), onset)
    cv2.imwrite(str(folder / "apex.png"), apex)
    return folder / "onset.png", folder / "apex.png"


@pytest.mark.data
@pytest.mark.slow
def test_region_lines_when_real_face_smiles_lists_29_regions_with_mouth_corners_up(
    smile_pair: tuple[Path, Path], face_model: Path
) -> None:
    from engine.explain_pair import analyze_pair

    ev = analyze_pair(*smile_pair, explainer="rules", face_model=face_model).evidence
    landmarks = ev.candidate.onset_face.crop_landmarks
    sizes = {r.name: (r.box[2] - r.box[0], r.box[3] - r.box[1]) for r in v3_regions(landmarks, ev.flow.shape)}
    assert list(sizes) == V3_NAMES
    assert sizes["Left Upper Eyelid (Center)"] == (9, 9) and sizes["Left Inner Eyebrow"] == (14, 14)
    assert sizes["Right Nostril Wing"] == (20, 20) and sizes["Upper Lip (Center)"] == (14, 14)
    assert sizes["Chin"] == (24, 24) and sizes["Left Cheek"][0] == sizes["Left Cheek"][1] > 4

    text = region_lines(ev.flow, landmarks)
    assert text.endswith("}\n")
    rows = [LINE.match(line) for line in text.splitlines()]
    assert all(rows), [line for line, m in zip(text.splitlines(), rows, strict=True) if not m]
    by_name = {m["name"]: m for m in rows if m}
    assert list(by_name) == V3_NAMES
    means = {name: float(m["mean"]) for name, m in by_name.items()}
    strongest = sorted(means, key=means.get, reverse=True)[:4]
    assert {"Left Mouth Corner", "Right Mouth Corner"} <= set(strongest), means
    # "Left" is the image's left: that corner moves up and to the image's left, the other up and right
    # (angles counter-clockwise from the image's right).
    assert 90 < int(by_name["Left Mouth Corner"]["deg"]) < 180, by_name["Left Mouth Corner"]["dir"]
    assert 0 < int(by_name["Right Mouth Corner"]["deg"]) < 90, by_name["Right Mouth Corner"]["dir"]
