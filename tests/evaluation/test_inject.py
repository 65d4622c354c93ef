"""The injector (`engine.synth`) moves real face texture the way FACS says, by the intended amount, at
the intended time."""

from __future__ import annotations

import csv
import io
import itertools

import cv2
import numpy as np
import pytest

from engine import facs, synth
from engine.regions import REGION_NAMES, REGIONS, RIGID_POINTS
from engine.sources.demo import DemoSource
from evaluation import inject


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    """The demo's neutral real face (astronaut photograph, 512×512 BGR) and its 478×2 landmarks."""
    src = DemoSource(events=0, blinks_per_min=0, noise=0, head_motion_px=0)
    return src.base, src.landmarks


def _region_mean(arr: np.ndarray, landmarks: np.ndarray, name: str) -> np.ndarray:
    p = np.round(landmarks[list(REGIONS[name])]).astype(int)
    return arr[p[:, 1], p[:, 0]].mean(axis=0)


# (AUs, region, expected direction in image coordinates: x right, y down); the subject's left (_L)
# is on the image right, so "outward" is +x on _L and -x on _R.
CASES = [
    ((12,), "mouth_corner_L", (1, -1)),  # corners up and outward
    ((12,), "mouth_corner_R", (-1, -1)),
    ((4,), "brow_inner_L", (-1, 1)),  # brows down and together
    ((4,), "brow_inner_R", (1, 1)),
    ((1,), "brow_inner_L", (0, -1)),  # inner brows up
    ((2,), "brow_outer_R", (0, -1)),  # outer brows up
    ((15,), "mouth_corner_L", (0, 1)),  # corners down
    ((14,), "mouth_corner_L", (-1, 0)),  # corners inward
    ((20,), "mouth_corner_R", (-1, 0)),  # corners sideways (outward)
    ((9,), "nose_wing_R", (0, -1)),  # nose wings up
    ((6,), "cheek_L", (0, -1)),  # cheeks up
    ((17,), "chin_L", (0, -1)),  # chin up
    ((26,), "chin_R", (0, 1)),  # jaw down
]


@pytest.mark.parametrize(("aus", "region", "direction"), CASES)
def test_apply_when_warped_moves_texture_in_facs_direction(face, aus, region, direction) -> None:
    image, lm = face
    field = synth.displacement_field(lm, image.shape, aus, amplitude_px=3.0)
    warped = synth.apply(image, field, 1.0)
    g0, g1 = (cv2.cvtColor(x, cv2.COLOR_BGR2GRAY) for x in (image, warped))
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(g0, g1, None)
    measured = _region_mean(flow, lm, region)
    intended = _region_mean(field, lm, region)
    want = np.asarray(direction, np.float64) / np.hypot(*direction)
    cos = float(measured @ want) / float(np.linalg.norm(measured))
    assert cos > 0.85, f"{aus} {region}: flow {measured} not along {direction}"
    ratio = float(np.linalg.norm(measured) / np.linalg.norm(intended))
    assert 0.5 < ratio < 1.3, f"{aus} {region}: flow {measured} vs intended {intended}"


def test_displacement_field_when_amplitude_given_scales_to_face_width(face) -> None:
    image, lm = face
    _, _, width = synth.face_axes(lm)
    field = synth.displacement_field(lm, image.shape, (1,), amplitude_px=2.0)
    peak = float(np.hypot(field[..., 0], field[..., 1]).max())
    assert peak == pytest.approx(2.0 * width / synth.REFERENCE_FACE_WIDTH, rel=0.05)
    # Far from the face nothing moves.
    assert np.abs(field[:40]).max() == 0 and np.abs(field[-40:]).max() == 0


@pytest.mark.parametrize("aus", [(6, 12), (1, 2), (4,), (5,), (7,), (9,), (10,)])
def test_displacement_field_when_au_near_rigid_points_leaves_them_still(face, aus) -> None:
    """Real AUs leave eye corners, nose bridge/tip and forehead in place: the spotter measures head motion
    there, so an injected bump reaching them would move the whole face in its eyes (issue 3)."""
    image, lm = face
    _, _, width = synth.face_axes(lm)
    amp = 3.0 * width / synth.REFERENCE_FACE_WIDTH
    field = synth.displacement_field(lm, image.shape, aus, amplitude_px=3.0)
    p = np.round(lm[list(RIGID_POINTS)]).astype(int)
    still = np.hypot(*field[p[:, 1], p[:, 0]].T)
    assert still.max() < 0.03 * amp, f"{aus}: rigid points moved {still.max():.3f} px of {amp:.2f}"
    gain = max(m.gain for au in aus for m in facs.AU_MOVES[au])
    moved = np.hypot(field[..., 0], field[..., 1]).max()
    assert moved > 0.9 * gain * amp  # the AU's own regions still move by their amplitude


def test_displacement_field_when_one_side_moves_only_that_side(face) -> None:
    image, lm = face
    field = synth.displacement_field(lm, image.shape, (12,), 3.0, side="R")
    assert np.linalg.norm(_region_mean(field, lm, "mouth_corner_R")) > 1.0
    assert np.linalg.norm(_region_mean(field, lm, "mouth_corner_L")) < 0.05


def test_blink_field_when_applied_closes_the_eye(face) -> None:
    image, lm = face
    field = synth.blink_field(lm, image.shape)
    closed = cv2.cvtColor(synth.apply(image, field, 1.0), cv2.COLOR_BGR2GRAY)
    opened = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    # The dark iris between the lids is covered by lid skin: the eye centre gets brighter.
    for upper, lower in ((159, 145), (386, 374)):
        cx, cy = np.round((lm[upper] + lm[lower]) / 2).astype(int)
        before = opened[cy - 2 : cy + 3, cx - 2 : cx + 3].mean()
        after = closed[cy - 2 : cy + 3, cx - 2 : cx + 3].mean()
        assert after > before + 40, (before, after)
    # The brows do not move.
    for name in ("brow_inner_L", "brow_outer_R"):
        assert np.abs(_region_mean(field, lm, name)).max() < 0.5


@pytest.mark.parametrize(
    ("frame", "expected"),
    [(9, 0.0), (10, 0.0), (14, 1.0), (20, 0.0), (21, 0.0), (12, 0.5), (17, 0.5)],
)
def test_profile_when_frame_given_rises_to_one_at_apex(frame: int, expected: float) -> None:
    ev = synth.InjectedEvent(10, 14, 20, (12,))
    assert synth.profile(frame, ev) == pytest.approx(expected, abs=1e-9)


def test_profile_when_sampled_is_monotone_each_side_of_apex() -> None:
    ev = synth.InjectedEvent(100, 107, 121, (4,))
    w = [synth.profile(f / 4, ev) for f in range(400, 485)]
    apex = 28
    assert all(a <= b for a, b in itertools.pairwise(w[: apex + 1]))
    assert all(a >= b for a, b in itertools.pairwise(w[apex:]))
    assert max(w) == 1.0 and min(w) == 0.0


def test_injected_event_when_bad_rejects() -> None:
    with pytest.raises(ValueError, match="onset <= apex"):
        synth.InjectedEvent(10, 5, 20, (12,))
    with pytest.raises(ValueError, match="supported"):
        synth.InjectedEvent(1, 2, 3, (99,))


def test_plan_events_when_seeded_are_spaced_and_realistic() -> None:
    fps = 30.0
    events = synth.plan_events(np.random.default_rng(3), 8, 900, fps, min_gap_s=1.0)
    assert events == synth.plan_events(np.random.default_rng(3), 8, 900, fps, min_gap_s=1.0)
    for a, b in itertools.pairwise(events):
        assert (b.onset - a.offset) / fps >= 1.0 - 1 / fps
    for ev in events:
        assert 0.2 - 1 / fps <= (ev.offset - ev.onset) / fps <= 0.5 + 1 / fps
        assert ev.onset < ev.apex < ev.offset
        combos = {aus for aus, _ in facs.DISPLAYS[ev.emotion_detail]}
        assert ev.aus in combos
        assert ev.emotion == facs.megc_class(ev.emotion_detail) != "others"
        assert 1.0 <= ev.amplitude_px <= 3.0
    with pytest.raises(ValueError, match="do not fit"):
        synth.plan_events(np.random.default_rng(0), 50, 300, fps)


def test_truth_rows_when_written_match_casme2_long_layout(tmp_path, shared_data) -> None:
    sheet = next((shared_data / "annotations" / "casme2_long").glob("*.csv"))
    with open(sheet, newline="", encoding="utf-8", errors="replace") as fh:
        real = next(csv.reader(fh))
    events = [
        synth.InjectedEvent(30, 34, 41, (4, 7), "negative", "anger", 2.0),
        synth.InjectedEvent(90, 95, 120, (12, 14), "negative", "contempt", 1.5, "R"),
    ]
    truth = [synth.TruthEvent.from_event(ev, 30.0) for ev in events]
    out = tmp_path / "truth.csv"
    synth.write_truth_csv(str(out), truth, subject="7", clip="demo", video="demo/seed0")
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert [len(r) for r in rows] == [len(real)] * 2
    assert rows[0] == ["7", "demo_1", "30", "34", "41", "4+7", "negative", "micro-expression", "anger", "11",
                       "demo/seed0"]
    assert rows[1][5] == "R12+R14" and rows[1][7] == "macro-expression"  # 30 frames = 1 s at 30 fps
    # Same column types as the real sheet: integers where it has integers.
    for col in (0, 2, 3, 4, 9):
        assert real[col].lstrip("-").isdigit() and rows[0][col].isdigit()
    assert real[7].endswith("-expression")


def test_region_displacement_when_au12_then_mouth_corners_move_and_brows_stay(face) -> None:
    """The ground truth of what a region signal should see: the field's mean at the region's landmarks,
    the same number `_region_mean` reads off the field, and zero where the AU does not reach."""
    image, lm = face
    ev = synth.InjectedEvent(0, 3, 6, (12,), amplitude_px=3.0, side="L")
    disp = inject.region_displacement(lm, image.shape, ev)
    names = REGION_NAMES
    field = synth.displacement_field(lm, image.shape, (12,), 3.0, side="L")
    got = disp[names.index("mouth_corner_L")]
    np.testing.assert_allclose(got, _region_mean(field, lm, "mouth_corner_L"), rtol=1e-5, atol=1e-6)
    assert got[0] > 0.5 and got[1] < -0.5  # outward (+x on the subject's left) and up
    assert np.hypot(*disp[names.index("mouth_corner_R")]) < 0.05  # one-sided event
    assert np.hypot(*disp[names.index("brow_inner_L")]) < 0.01
