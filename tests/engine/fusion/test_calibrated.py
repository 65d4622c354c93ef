"""The calibrated colour map: pixel-scaled value, similarity head-motion removal, legend strip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.face.align import canonical_template
from engine.fusion.calibrated import calibrated_colours, calibrated_map, head_motion_field, legend_strip
from engine.fusion.mellm_map import direction_colour, hsv_table, mellm_map
from engine.regions import RIGID_POINTS

S = 128


@pytest.fixture
def landmarks() -> np.ndarray:
    return canonical_template(S)


def similarity_flow(angle_deg: float, scale: float, tx: float, ty: float, centre=(64.0, 64.0)) -> np.ndarray:
    """The flow of a similarity about ``centre``: H×W×2 float32, p ↦ R·s·(p − c) + c + t − p."""
    m = cv2.getRotationMatrix2D(centre, angle_deg, scale).astype(np.float64)
    m[:, 2] += (tx, ty)
    ys, xs = np.mgrid[0:S, 0:S].astype(np.float64)
    return np.stack(
        [m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs, m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys], -1
    ).astype(np.float32)


def mouth_motion(magnitude: float) -> np.ndarray:
    """A local expression: a 24×40 patch below the nose moving up-left, smooth edges."""
    flow = np.zeros((S, S, 2), np.float32)
    patch = np.zeros((S, S), np.float32)
    patch[90:114, 44:84] = 1.0
    patch = cv2.GaussianBlur(patch, (0, 0), 2.0)
    flow[..., 0] = -0.6 * magnitude * patch
    flow[..., 1] = -0.8 * magnitude * patch
    return flow


def test_calibrated_map_when_head_moves_by_a_similarity_removes_it(landmarks: np.ndarray) -> None:
    onset = np.full((S, S), 70, np.uint8)
    head = similarity_flow(angle_deg=3.0, scale=1.04, tx=2.5, ty=-1.5)
    bgr, rest = calibrated_map(onset, head, landmarks, legend=False)
    assert float(np.abs(head).max()) > 4.0
    assert float(np.abs(rest).max()) < 1e-2
    assert np.array_equal(bgr, cv2.cvtColor(onset, cv2.COLOR_GRAY2BGR))  # nothing left to colour


def test_calibrated_map_when_head_and_face_move_keeps_the_expression(landmarks: np.ndarray) -> None:
    onset = np.full((S, S), 70, np.uint8)
    expression = mouth_motion(2.0)
    assert (
        float(
            np.abs(
                expression[
                    [int(landmarks[i, 1]) for i in RIGID_POINTS], [int(landmarks[i, 0]) for i in RIGID_POINTS]
                ]
            ).max()
        )
        < 1e-3
    )
    field, _ = head_motion_field(similarity_flow(-2.0, 0.97, -1.0, 2.0) + expression, landmarks)
    _, rest = calibrated_map(
        onset, similarity_flow(-2.0, 0.97, -1.0, 2.0) + expression, landmarks, legend=False
    )
    assert float(np.abs(rest - expression).max()) < 1e-2
    assert float(np.abs(field).max()) > 2.0


def test_calibrated_map_when_flow_is_scaled_keeps_hue_and_scales_value(landmarks: np.ndarray) -> None:
    onset = np.zeros((S, S), np.uint8)  # black onset: the map is the colour layer itself
    small, large = mouth_motion(1.0), mouth_motion(2.0)
    a, _ = calibrated_map(onset, small, landmarks, px_full_scale=3.0, legend=False)
    b, _ = calibrated_map(onset, large, landmarks, px_full_scale=3.0, legend=False)
    hsv_a, hsv_b = cv2.cvtColor(a, cv2.COLOR_BGR2HSV), cv2.cvtColor(b, cv2.COLOR_BGR2HSV)
    moving = np.linalg.norm(small, axis=2) > 0.3
    assert moving.sum() > 200
    assert np.array_equal(hsv_a[..., 0][moving], hsv_b[..., 0][moving])  # same direction → same hue
    ratio = hsv_b[..., 2][moving].astype(float) / hsv_a[..., 2][moving]
    assert np.allclose(
        ratio, 2.0, atol=0.1
    )  # value proportional to pixels: twice the motion, twice as bright
    # the published min-max map cannot tell the two apart
    nose = landmarks[1]
    ma, _ = mellm_map(onset, small, nose)
    mb, _ = mellm_map(onset, large, nose)
    assert np.array_equal(ma, mb) and not np.array_equal(a, b)


def test_calibrated_colours_when_beyond_full_scale_saturates() -> None:
    flow = np.zeros((4, 4, 2), np.float32)
    flow[..., 0] = [0.0, 1.5, 3.0, 9.0]
    v = cv2.cvtColor(calibrated_colours(flow, px_full_scale=3.0), cv2.COLOR_BGR2HSV)[0, :, 2]
    assert list(v) == [0, 128, 255, 255]


@pytest.mark.parametrize("angle", [0, 45, 90, 135, 180, 225, 270, 315])
def test_calibrated_colours_when_moving_in_a_direction_uses_the_published_colour(angle: int) -> None:
    rad = np.radians(angle + 5)  # inside the bin, away from its edge
    flow = np.zeros((3, 3, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0 * np.cos(rad), 3.0 * np.sin(rad)
    assert tuple(int(c) for c in calibrated_colours(flow, 3.0)[1, 1]) == direction_colour(angle + 5)


def test_calibrated_map_when_legend_is_on_appends_wheel_and_scale(landmarks: np.ndarray) -> None:
    onset = np.full((S, S), 90, np.uint8)
    with_legend, _ = calibrated_map(onset, mouth_motion(1.0), landmarks, legend=True)
    without, _ = calibrated_map(onset, mouth_motion(1.0), landmarks, legend=False)
    assert with_legend.shape[1:] == (S, 3) and with_legend.shape[0] > S
    assert np.array_equal(with_legend[:S], without)
    strip = with_legend[S:].reshape(-1, 3)
    colours = {tuple(c) for c in strip}
    full = hsv_table()[:, 255]
    assert all(tuple(c) in colours for c in full), "every one of the 12 direction colours is in the wheel"
    ramp = hsv_table()[0]
    assert sum(tuple(c) in colours for c in ramp) > 64, "the magnitude ramp spans many values"


def test_legend_strip_when_labelled_shows_the_full_scale_in_pixels() -> None:
    a = legend_strip(256, px_full_scale=3.0)
    b = legend_strip(256, px_full_scale=5.0)
    assert a.shape == b.shape and not np.array_equal(a, b)  # the labels differ


def test_calibrated_map_when_inputs_are_wrong_raises_value_error(landmarks: np.ndarray) -> None:
    with pytest.raises(ValueError, match="flow"):
        calibrated_map(np.zeros((S, S), np.uint8), np.zeros((S, S + 1, 2), np.float32), landmarks)
    with pytest.raises(ValueError, match="crop_landmarks"):
        calibrated_map(np.zeros((S, S), np.uint8), np.zeros((S, S, 2), np.float32), landmarks[:10])
    with pytest.raises(ValueError, match="px_full_scale"):
        calibrated_map(
            np.zeros((S, S), np.uint8), np.zeros((S, S, 2), np.float32), landmarks, px_full_scale=0
        )
