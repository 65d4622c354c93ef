"""The `rules` explainer on real faces: region motion → FACS AUs → emotion → MELLM-style text.

Regions are placed by real MediaPipe landmarks on a real photograph (scikit-image's public-domain
astronaut, aligned to a 256 px grey crop). Motion is a smooth flow field that moves chosen regions
in FACS directions by micro-expression amounts (0.8-2.5 px); the statistics come from the engine's
own `region_stats`. Each case runs twice: on the constructed flow (plus noise), and on the flow
that OpenCV DIS measures between the crop and the crop warped by that field.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import UserError
from engine.explain import create
from engine.explain.config import ExplainConfig
from engine.explain.rules import RulesExplainer, direction_words, to_motion
from engine.facs import AU_NAMES, classify, megc_class
from engine.fusion.region_stats import region_stats
from engine.regions import REGIONS, side_of
from engine.types import Candidate, Evidence, FaceObservation, RegionStat, TimePoint
from tests.conftest import ROOT, shared_path

CROP = 256


def _landmarks(rgb: np.ndarray, model: Path) -> np.ndarray:
    """478×2 float32 pixel landmarks of the one face in ``rgb`` (MediaPipe, IMAGE mode)."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model)),
        running_mode=vision.RunningMode.IMAGE,
        num_faces=1,
    )
    with vision.FaceLandmarker.create_from_options(opts) as landmarker:
        res = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    assert res.face_landmarks, "MediaPipe found no face in the test photograph"
    h, w = rgb.shape[:2]
    return np.array([[p.x * w, p.y * h] for p in res.face_landmarks[0]], np.float32)


def _aligned(rgb: np.ndarray, model: Path) -> tuple[np.ndarray, np.ndarray]:
    """(256×256 uint8 grey crop around the face, 478×2 crop landmarks)."""
    pts = _landmarks(rgb, model)
    lo, hi = pts.min(0), pts.max(0)
    centre, scale = (lo + hi) / 2, CROP / (float((hi - lo).max()) * 1.25)
    m = np.array(
        [[scale, 0, CROP / 2 - scale * centre[0]], [0, scale, CROP / 2 - scale * centre[1]]], np.float32
    )
    grey = cv2.warpAffine(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), m, (CROP, CROP), flags=cv2.INTER_LINEAR)
    return grey, (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)


@pytest.fixture(scope="module")
def astronaut(face_model: Path) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    return _aligned(data.astronaut(), face_model)


def both(base: str, up: float, out: float) -> dict[str, tuple[float, float]]:
    return {f"{base}_L": (up, out), f"{base}_R": (up, out)}


def flow_field(lm: np.ndarray, moves: dict[str, tuple[float, float]], sigma: float = 5.0) -> np.ndarray:
    """H×W×2 float32 flow moving each named region by (up, out) px in face terms, as smooth bumps
    (σ = ``sigma`` px) around its mesh points; ``out`` is away from the midline on that side."""
    yy, xx = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    flow = np.zeros((CROP, CROP, 2), np.float32)
    for region, (up, out) in moves.items():
        sign = 1.0 if side_of(region) == "L" else -1.0  # subject's left = image right
        weight = np.zeros((CROP, CROP), np.float32)
        for x, y in lm[list(REGIONS[region])]:
            weight = np.maximum(weight, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)))
        flow += weight[..., None] * np.array([sign * out, -up], np.float32)
    return flow


def dis_flow(grey: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Warp ``grey`` by ``field`` (content moves by the field) and measure the flow with OpenCV DIS."""
    yy, xx = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    warped = cv2.remap(
        grey, xx - field[..., 0], yy - field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(grey, warped, None)


# name, region moves (up, out px), expected AUs {au: side}, emotion, emotion_detail
CASES = [
    (
        "smile",
        {**both("mouth_corner", 1.5, 1.0), **both("cheek", 0.9, 0)},
        {6: "B", 12: "B"},
        "positive",
        "happiness",
    ),
    (
        "brow_lowerer",
        {**both("brow_inner", -1.0, -1.0), **both("brow_outer", -0.8, 0)},
        {4: "B"},
        "negative",
        "anger",
    ),
    (
        "surprise",
        {
            **both("brow_inner", 2.0, 0),
            **both("brow_outer", 2.0, 0),
            **both("eyelid_upper", 1.5, 0),
            **both("chin", -2.5, 0),
            **both("lip_lower", -2.2, 0),
        },
        {1: "B", 2: "B", 5: "B", 25: "B", 26: "B"},
        "surprise",
        "surprise",
    ),
    ("corners_down", both("mouth_corner", -1.2, 0), {15: "B"}, "negative", "sadness"),
    ("smile_left_only", {"mouth_corner_L": (1.5, 1.0)}, {12: "L"}, "positive", "happiness"),
    ("smile_right_only", {"mouth_corner_R": (1.5, 1.0)}, {12: "R"}, "positive", "happiness"),
    ("nose_wrinkle", both("nose_wing", 1.2, 0), {9: "B"}, "negative", "disgust"),
    ("dimpler_right", {"mouth_corner_R": (0.3, -1.2)}, {14: "R"}, "negative", "contempt"),
    (
        "chin_raise",
        {**both("chin", 1.5, 0), **both("lip_lower", 1.2, 0)},
        {17: "B"},
        "negative",
        "repression",
    ),
    (
        "chin_raise_press",
        {**both("chin", 1.5, 0), **both("lip_lower", 1.5, 0), **both("lip_upper", -1.0, 0)},
        {17: "B", 24: "B"},
        "negative",
        "anger",
    ),
    ("lip_stretch", both("mouth_corner", 0, 1.5), {20: "B"}, "negative", "fear"),
    (
        "lip_tighten",
        {**both("lip_upper", -1.0, 0), **both("lip_lower", 1.0, 0), **both("mouth_corner", 0, -1.0)},
        {23: "B", 24: "B"},
        "negative",
        "anger",
    ),
    ("inner_brows_up_together", both("brow_inner", 1.2, -1.0), {1: "B", 4: "B"}, "negative", "sadness"),
    (
        "brows_up_and_together",
        {**both("brow_inner", 1.2, -1.0), **both("brow_outer", 1.2, 0)},
        {1: "B", 2: "B", 4: "B"},
        "negative",
        "fear",
    ),
    ("lid_tighten", both("eyelid_lower", 1.0, 0), {7: "B"}, "others", "others"),
    ("upper_lip_raise", both("lip_upper", 1.2, 0), {10: "B", 25: "B"}, "negative", "disgust"),
    # AU6 lowers the brows a little as it draws the skin toward the eye: not a brow lowerer...
    (
        "smile_with_brows_drawn_down",
        {
            **both("cheek", 1.4, 0),
            **both("mouth_corner", 1.0, 1.0),
            **both("brow_inner", -0.5, 0),
            **both("brow_outer", -0.5, 0),
        },
        {6: "B", 12: "B"},
        "positive",
        "happiness",
    ),
    # ...but brows lowered well beyond that still are.
    (
        "frown_with_cheek_raise",
        {**both("cheek", 1.0, 0), **both("brow_inner", -1.6, -0.4), **both("brow_outer", -1.4, 0)},
        {4: "B", 6: "B"},
        "negative",
        "anger",
    ),
    ("no_motion", {}, {}, "others", "others"),
]


@pytest.mark.parametrize(("name", "moves", "aus", "emotion", "detail"), CASES, ids=[c[0] for c in CASES])
def test_rules_when_regions_move_in_facs_directions(astronaut, name, moves, aus, emotion, detail) -> None:
    grey, lm = astronaut
    noise = np.random.default_rng(0).normal(0, 0.05, (CROP, CROP, 2)).astype(np.float32)
    e = RulesExplainer().explain_regions(region_stats(flow_field(lm, moves) + noise, lm, grey.shape))
    assert {a.au: a.side for a in e.aus} == aus
    assert (e.emotion, e.emotion_detail, e.explainer) == (emotion, detail, "rules")
    assert all(a.name == AU_NAMES[a.au] and 0 < a.confidence <= 1 for a in e.aus)
    lines = e.text.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["Motion", "Action units", "Emotion"]
    if aus:
        assert " px" in lines[0]
        assert all(f"AU{au} {AU_NAMES[au]}" in lines[1] for au in aus)
        assert f"{emotion} ({detail})" in lines[2] and detail in lines[2]
    else:
        assert "no clear movement" in e.text


# Measured flow adds small spurious motions; the expected AUs and the emotion must survive them.
DIS_CASES = [c for c in CASES if c[0] not in ("upper_lip_raise",)]


@pytest.mark.parametrize(
    ("name", "moves", "aus", "emotion", "detail"), DIS_CASES, ids=[c[0] for c in DIS_CASES]
)
def test_rules_when_flow_is_measured_by_dis(astronaut, name, moves, aus, emotion, detail) -> None:
    grey, lm = astronaut
    e = RulesExplainer().explain_regions(region_stats(dis_flow(grey, flow_field(lm, moves)), lm, grey.shape))
    assert {a.au: a.side for a in e.aus} == aus
    assert (e.emotion, e.emotion_detail) == (emotion, detail)


@pytest.mark.data
def test_rules_when_face_is_the_shared_photograph(face_model: Path) -> None:
    img = cv2.imread(str(shared_path("images", "single_face.jpg")))
    grey, lm = _aligned(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), face_model)
    for moves, au, detail in (
        ({**both("mouth_corner", 1.5, 1.0), **both("cheek", 0.9, 0)}, 12, "happiness"),
        (both("mouth_corner", -1.2, 0), 15, "sadness"),
    ):
        e = RulesExplainer().explain_regions(
            region_stats(dis_flow(grey, flow_field(lm, moves)), lm, grey.shape)
        )
        assert au in {a.au for a in e.aus} and e.emotion_detail == detail


def test_rules_when_motion_is_below_the_floor(astronaut) -> None:
    grey, lm = astronaut
    tiny = flow_field(lm, both("mouth_corner", 0.12, 0.08))
    e = RulesExplainer().explain_regions(region_stats(tiny, lm, grey.shape))
    assert e.aus == () and e.emotion == "others" and "no clear movement" in e.text
    e = RulesExplainer(floor_px=0.05).explain_regions(region_stats(tiny, lm, grey.shape))
    assert [a.au for a in e.aus] == [12]


@pytest.mark.parametrize("drift", [(0.8, 0.5), (-0.6, 0.9)])
def test_rules_when_the_whole_face_drifts(astronaut, drift) -> None:
    grey, lm = astronaut
    smile = {**both("mouth_corner", 1.5, 1.0), **both("cheek", 0.9, 0)}
    for moves, want in (({}, set()), (smile, {6, 12})):
        f = flow_field(lm, moves) + np.array(drift, np.float32)
        e = RulesExplainer().explain_regions(region_stats(f, lm, grey.shape))
        assert {a.au for a in e.aus} == want


def test_rules_when_a_weak_motion_accompanies_a_strong_one(astronaut) -> None:
    grey, lm = astronaut
    moves = {**both("brow_inner", 3.0, 0), **both("brow_outer", 3.0, 0), **both("cheek", 0.4, 0)}
    e = RulesExplainer().explain_regions(region_stats(flow_field(lm, moves), lm, grey.shape))
    assert {a.au for a in e.aus} == {1, 2}  # the cheek's 0.4 px is below a quarter of the brows' motion


def test_rules_confidence_grows_with_magnitude(astronaut) -> None:
    grey, lm = astronaut
    conf = []
    for up in (0.5, 1.0, 2.0):
        moves = both("mouth_corner", -up, 0)
        noise = np.random.default_rng(1).normal(0, 0.05, (CROP, CROP, 2)).astype(np.float32)
        e = RulesExplainer(rel_to_peak=0.0).explain_regions(
            region_stats(flow_field(lm, moves) + noise, lm, grey.shape)
        )
        conf.append(next(a.confidence for a in e.aus if a.au == 15))
    assert conf[0] < conf[1] < conf[2]


def test_rules_explain_batch_on_evidence_through_the_registry(astronaut) -> None:
    grey, lm = astronaut
    face = FaceObservation(0, 0.0, lm, grey, np.eye(2, 3, dtype=np.float32), lm)
    cand = Candidate(
        "c1", "s", TimePoint(0, 0.0), TimePoint(3, 0.1), TimePoint(6, 0.2), "micro", 1.0, (), face, face
    )
    items = []
    for moves in (both("mouth_corner", 1.5, 1.0), {}):
        f = flow_field(lm, moves)
        items.append(
            Evidence(cand, f, np.zeros((CROP, CROP, 3), np.uint8), b"", region_stats(f, lm, grey.shape))
        )
    with pytest.raises(UserError, match=r"'model'.*allowed parameters: floor_px, rel_to_peak"):
        create("rules", model="an option of the model explainers")  # refused, not silently ignored
    explainer = create("rules", **ExplainConfig().explainer_params())
    explainer.warmup()
    out = explainer.explain_batch(items)
    explainer.close()
    assert explainer.name == "rules"
    assert [e.emotion for e in out] == ["positive", "others"]


def test_rules_when_statistics_are_not_finite() -> None:
    bad = RegionStat("chin_L", float("nan"), 0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="chin_L"):
        RulesExplainer().explain_regions([bad])
    with pytest.raises(ValueError, match="floor_px"):
        RulesExplainer(floor_px=0)


@pytest.mark.parametrize(
    ("name", "dx", "out"),
    [("mouth_corner_L", 1.0, 1.0), ("mouth_corner_R", 1.0, -1.0), ("cheek_R", -2.0, 2.0)],
)
def test_to_motion_outward_depends_on_the_side(name, dx, out) -> None:
    m = to_motion(RegionStat(name, 1.0, 1.0, 0.0, 1.0, dx, -0.5))
    assert (m.out, m.up) == (out, 0.5)


@pytest.mark.parametrize(
    ("up", "out", "words"),
    [
        (1, 0, "up"),
        (-1, 0, "down"),
        (1, 1, "up and outward"),
        (0, -1, "toward the midline"),
        (0.1, 1, "outward"),
    ],
)
def test_direction_words(up, out, words) -> None:
    assert direction_words(up, out) == words


@pytest.mark.parametrize(
    ("sides", "detail"),
    [
        ({6: "B", 12: "B"}, "happiness"),
        ({12: "L"}, "happiness"),
        ({12: "R", 14: "R"}, "contempt"),
        ({12: "B", 14: "B"}, "happiness"),  # contempt needs the unilateral form
        ({14: "L"}, "contempt"),  # a unilateral dimpler is the classic contempt display
        ({1: "B", 4: "B", 15: "B"}, "sadness"),
        ({1: "B", 2: "B", 5: "B", 26: "B"}, "surprise"),
        ({1: "B", 2: "B", 4: "B", 5: "B", 26: "B"}, "fear"),  # most of the fear prototype beats surprise
        ({4: "B", 7: "B"}, "anger"),
        ({4: "B", 9: "B"}, "disgust"),
        ({15: "B", 17: "B"}, "repression"),
        ({12: "B", 15: "B"}, "repression"),
        ({12: "B", 25: "B", 26: "B"}, "happiness"),  # an open mouth weighs less than a smile
        ({20: "B"}, "fear"),
        ({14: "B"}, "others"),
        ({}, "others"),
    ],
)
def test_classify_when_aus_form_a_pattern(sides, detail) -> None:
    m = classify(sides)
    assert m.detail == detail
    assert m.emotion == megc_class(detail)
    assert (m.pattern is None) == (detail == "others")


def test_classify_when_unilateral_aus_are_on_different_sides() -> None:
    m = classify({12: "L", 14: "R"})
    assert m.detail == "contempt" and m.pattern is not None and m.pattern.label() == "14"  # not 12+14
    assert "contempt pattern 14" in m.reason() and "MEGC negative" in m.reason()


def test_displays_when_drawn_then_a_reading_of_their_emotion_and_others_refused() -> None:
    """The injector draws only combinations the patterns read as the drawn emotion; classify reads
    each as drawn except the two codings the sources read two ways (AU15 and 15+17)."""
    from engine.facs import DISPLAYS, _displays, parse_aus

    misread = {
        (detail, aus): classify(dict.fromkeys(aus, side)).detail
        for detail, combos in DISPLAYS.items()
        for aus, side in combos
        if classify(dict.fromkeys(aus, side)).detail != detail
    }
    assert misread == {("repression", (15,)): "sadness", ("sadness", (15, 17)): "repression"}
    assert DISPLAYS["contempt"] == (((12, 14), "R"), ((12, 14), "L"))
    with pytest.raises(ValueError, match="display 14 of repression"):
        _displays({"repression": ("14",)})  # a bilateral dimpler is no repression coding
    with pytest.raises(ValueError, match="mixes sides"):
        parse_aus("R12+L14")


@pytest.mark.data
def test_repression_patterns_when_read_from_casme2_then_its_commonest_codings() -> None:
    from collections import Counter

    from engine.facs import DISPLAYS, PATTERNS
    from training.readers import read_sheet

    sheet = read_sheet(shared_path("annotations", "casme2", "CASME2-coding-20190701.csv"), "casme2")
    codings = Counter(
        tuple(sorted(c.au for c in r.aus)) for r in sheet.records if r.emotion == "repression"
    )
    top4 = {aus for aus, _ in codings.most_common(4)}
    assert {tuple(sorted(p.aus)) for p in PATTERNS if p.detail == "repression"} == top4
    assert {aus for aus, _ in DISPLAYS["repression"]} == top4


def test_rules_path_imports_no_torch() -> None:
    code = (
        "import sys, engine.explain as ex; from engine.explain.worker import ExplainWorker; "
        "e = ex.create('rules'); e.explain_regions([]); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0, r.stderr
