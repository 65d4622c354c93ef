"""OpenCV flow backends on known motions of a real face (scikit-image's astronaut photograph)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from engine.errors import UnknownNameError, UserError
from engine.flow import create
from engine.flow.opencv_backends import DISFlow, FarnebackFlow, OpenCVTVL1

SIZE = 128
MARGIN = SIZE // 8  # borders have no information about what moved in; compare the interior

# (name, params, tolerance of the mean end-point error in px for translation, for the smooth warp).
# Measured here: TV-L1 0.015 / 0.072, DIS fast 0.10 / 0.15, Farneback 0.05 / 0.10 (zero flow: 0.72 / 0.46).
BACKENDS = [
    ("opencv-tvl1", {}, 0.05, 0.12),
    ("dis", {"preset": "fast"}, 0.2, 0.22),
    ("dis", {"preset": "medium"}, 0.12, 0.12),
    ("farneback", {}, 0.1, 0.15),
]


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """The astronaut's face, grey, SIZE×SIZE uint8."""
    grey = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey[45:205, 145:305], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth displacement field of up to 0.8 px (H×W×2 float32)."""
    u = 0.8 * np.sin(2 * np.pi * x / SIZE) * np.cos(np.pi * y / SIZE)
    v = 0.6 * np.cos(2 * np.pi * y / SIZE) * np.sin(np.pi * x / SIZE)
    return np.stack([u, v], axis=-1).astype(np.float32)


def _epe(flow: np.ndarray, truth: np.ndarray) -> float:
    d = (flow - truth)[MARGIN:-MARGIN, MARGIN:-MARGIN]
    return float(np.hypot(d[..., 0], d[..., 1]).mean())


@pytest.mark.parametrize(("name", "params", "tol_shift", "tol_warp"), BACKENDS)
def test_backend_when_face_shifted_by_subpixel_translation(name, params, tol_shift, tol_warp, face):
    tx, ty = 0.6, -0.4
    shifted = cv2.warpAffine(face, np.float32([[1, 0, tx], [0, 1, ty]]), (SIZE, SIZE),
                             flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    flow = create(name, **params).compute(face, shifted)
    assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32
    truth = np.broadcast_to(np.float32([tx, ty]), flow.shape)
    assert _epe(flow, truth) < tol_shift
    inner = flow[MARGIN:-MARGIN, MARGIN:-MARGIN].reshape(-1, 2).mean(axis=0)
    np.testing.assert_allclose(inner, [tx, ty], atol=tol_shift)


@pytest.mark.parametrize(("name", "params", "tol_shift", "tol_warp"), BACKENDS)
def test_backend_when_face_warped_smoothly(name, params, tol_shift, tol_warp, face):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    d = _field(xx, yy)
    # next(y) = prev(y - d(y)); the flow u with next(x + u) = prev(x) solves u = d(x + u).
    warped = cv2.remap(face, xx - d[..., 0], yy - d[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    truth = d.copy()
    for _ in range(20):
        truth = _field(xx + truth[..., 0], yy + truth[..., 1])
    flow = create(name, **params).compute(face, warped)
    assert _epe(np.zeros_like(truth), truth) > 0.4  # the motion is real, so the tolerance means something
    assert _epe(flow, truth) < tol_warp


@pytest.mark.parametrize(
    ("backend", "size"),
    [(OpenCVTVL1(nscales=3, warps=3), 64), (DISFlow(preset="medium"), SIZE), (FarnebackFlow(), SIZE)],
    ids=["opencv-tvl1", "dis", "farneback"],
)
def test_compute_batch_when_given_pairs_equals_single_calls(backend, size, face):
    small = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    shift = cv2.warpAffine(small, np.float32([[1, 0, 0.7], [0, 1, 0.3]]), (size, size),
                           borderMode=cv2.BORDER_REFLECT)
    flipped = np.ascontiguousarray(small[:, ::-1])
    prevs, nexts = [small, shift, flipped], [shift, small, np.roll(flipped, 1, axis=0)]
    batch = backend.compute_batch(prevs, nexts)
    assert batch.shape == (3, size, size, 2) and batch.dtype == np.float32
    for i, (p, n) in enumerate(zip(prevs, nexts, strict=True)):
        np.testing.assert_array_equal(batch[i], backend.compute(p, n))


GREY = np.zeros((32, 32), np.uint8)
BAD_PAIRS = [
    ("colour", np.zeros((32, 32, 3), np.uint8), GREY, "ndim 2"),
    ("float", GREY.astype(np.float32), GREY, "uint8"),
    ("shapes", GREY, np.zeros((32, 40), np.uint8), "equal shape"),
    ("list", [[0, 0], [0, 0]], GREY, "numpy array"),
    ("tiny", np.zeros((1, 32), np.uint8), np.zeros((1, 32), np.uint8), "2×2"),
]


@pytest.mark.parametrize("name", ["opencv-tvl1", "dis", "farneback"])
@pytest.mark.parametrize(("case", "prev", "nxt", "message"), BAD_PAIRS, ids=[b[0] for b in BAD_PAIRS])
def test_compute_when_input_is_bad_raises_value_error(name, case, prev, nxt, message):
    with pytest.raises(ValueError, match=message):
        create(name).compute(prev, nxt)


@pytest.mark.parametrize(
    ("prevs", "nexts", "message"),
    [
        ([GREY, GREY], [GREY], "as many"),
        ([], [], "empty"),
        ([GREY, np.zeros((16, 16), np.uint8)], [GREY, np.zeros((16, 16), np.uint8)], "pair 1"),
        ([GREY], [GREY.astype(np.int16)], "pair 0: next: expected dtype uint8"),
    ],
    ids=["lengths", "empty", "mixed-sizes", "dtype"],
)
def test_compute_batch_when_input_is_bad_raises_value_error(prevs, nexts, message):
    with pytest.raises(ValueError, match=message):
        DISFlow().compute_batch(prevs, nexts)


@pytest.mark.parametrize(
    ("name", "params", "error", "message"),
    [
        ("dis", {"preset": "slow"}, UnknownNameError, "ultrafast, fast, medium"),
        ("dis", {"patch_size": 0}, UserError, "patch_size"),
        ("opencv-tvl1", {"median_filtering": 4}, UserError, "median_filtering"),
        ("opencv-tvl1", {"scale_step": 1.5}, UserError, "scale_step"),
        ("opencv-tvl1", {"tau": 0}, UserError, "tau"),
        ("farneback", {"poly_n": 6}, UserError, "poly_n"),
    ],
)
def test_backend_when_parameter_is_bad_raises_user_error(name, params, error, message):
    with pytest.raises(error, match=message):
        create(name, **params)


def test_auto_when_torch_is_installed_picks_torch_tvl1_with_the_given_parameters():
    pytest.importorskip("torch", reason="auto picks torch-tvl1 only when torch is installed")
    backend = create("auto", warps=3, compile=False)
    assert backend.name == "torch-tvl1" and backend.params.warps == 3
    with pytest.raises(UserError, match="allowed parameters"):
        create("auto", warp=3)


def test_backends_when_created_by_name_report_their_name():
    for name in ("opencv-tvl1", "dis", "farneback"):
        assert create(name).name == name
    tvl1 = create("opencv-tvl1", tau=0.2, warps=3)
    assert tvl1._tvl1.getTau() == pytest.approx(0.2) and tvl1._tvl1.getWarpingsNumber() == 3
