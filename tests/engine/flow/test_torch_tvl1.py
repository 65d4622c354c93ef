"""torch-tvl1 against OpenCV's Dual TV-L1 on real ground truth, and its building blocks.

Accuracy is measured where the truth is known: the Middlebury 2014 motorcycle stereo pair shipped
with scikit-image (left→right flow = −disparity, 0 vertically) and real face crops from
../shared/data warped by known smooth fields. torch-tvl1 must stay within 1.05× OpenCV's end-point
error on each. Tests run with one torch thread: on a shared 2-core box OpenMP's spinning threads
slow eager torch down by 10–25× under load.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.errors import UserError
from engine.flow import create
from engine.flow.groundtruth import smooth_field, warp_by_flow
from engine.flow.opencv_backends import OpenCVTVL1
from engine.flow.torch_tvl1 import (
    TorchTVL1,
    TVL1Module,
    TVL1Params,
    divergence,
    forward_gradient,
    median_filter,
    median_opencv,
    pyramid_sizes,
    resize_bilinear,
    sqrt_rounded,
    warp_opencv,
    warp_torch,
)
from tests.conftest import shared_path

EPE_RATIO = 1.05


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def epe(flow: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean end-point error (pixels) over ``mask``."""
    return float(np.linalg.norm(flow - truth, axis=2)[mask].mean())


def textured_pair(h: int = 64, w: int = 64, seed: int = 0, amplitude: float = 1.5) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    tex = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
    prev = ((tex - tex.min()) / np.ptp(tex) * 200 + 20).astype(np.uint8)
    flow = smooth_field(h, w, amplitude, seed)
    return prev, warp_by_flow(prev, flow), flow


# Face boxes (x0, y0, side) around MediaPipe's landmarks in these files (landmark extents:
# single_face.jpg x 191-373 y 177-399; single_face.mp4 frame 0 x 222-372 y 108-301;
# WolfgangLanger_Pexels.mp4 frame 0 x 331-547 y 90-348).
FACES = [
    ("images/single_face.jpg", None, (172, 178, 222)),
    ("videos/single_face.mp4", 0, (200, 100, 200)),
    ("videos/WolfgangLanger_Pexels.mp4", 0, (310, 88, 258)),
]


def face_crop(rel: str, frame: int | None, box: tuple[int, int, int], size: int = 128) -> np.ndarray:
    path = shared_path(*rel.split("/"))
    if frame is None:
        bgr = cv2.imread(str(path))
    else:
        cap = cv2.VideoCapture(str(path))
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, bgr = cap.read()
        cap.release()
        assert ok, f"cannot read frame {frame} of {path}"
    x0, y0, side = box
    grey = cv2.cvtColor(bgr[y0 : y0 + side, x0 : x0 + side], cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------ accuracy on real ground truth


@pytest.mark.slow
def test_torch_tvl1_when_middlebury_motorcycle_is_within_1_05_of_opencv() -> None:
    skdata = pytest.importorskip("skimage.data")
    left, right, disp = skdata.stereo_motorcycle()
    f = 4  # 741×500 → 185×125, disparities up to ~15 px
    gl = cv2.cvtColor(left, cv2.COLOR_RGB2GRAY)
    gr = cv2.cvtColor(right, cv2.COLOR_RGB2GRAY)
    h, w = gl.shape[0] // f, gl.shape[1] // f
    gl = cv2.resize(gl, (w, h), interpolation=cv2.INTER_AREA)
    gr = cv2.resize(gr, (w, h), interpolation=cv2.INTER_AREA)
    valid = np.isfinite(disp)
    total = cv2.resize(np.where(valid, disp, 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    coverage = cv2.resize(valid.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    mask = coverage > 0.999  # only cells whose every source pixel has a valid disparity
    # left pixel x shows the point the right view shows at x − d: left→right flow is (−d, 0)
    truth = np.stack([-total / np.maximum(coverage, 1e-6) / f, np.zeros_like(total)], -1)
    e_cv = epe(OpenCVTVL1().compute(gl, gr), truth, mask)
    e_torch = epe(TorchTVL1(compile=False).compute(gl, gr), truth, mask)
    assert e_cv < 5.0, f"OpenCV EPE {e_cv:.2f} px: the ground truth or its sign is wrong"
    assert e_torch <= EPE_RATIO * e_cv, f"torch EPE {e_torch:.3f} px vs OpenCV {e_cv:.3f} px"


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize(("face", "amplitude", "seed"), [(0, 1.5, 0), (1, 3.0, 1), (2, 2.0, 2)])
def test_torch_tvl1_when_real_face_is_warped_is_within_1_05_of_opencv(
    face: int, amplitude: float, seed: int
) -> None:
    prev = face_crop(*FACES[face])
    truth = smooth_field(*prev.shape, amplitude, seed)
    nxt = warp_by_flow(prev, truth)
    mask = np.zeros(prev.shape, bool)
    mask[8:-8, 8:-8] = True  # the border has no counterpart in the other frame
    e_cv = epe(OpenCVTVL1().compute(prev, nxt), truth, mask)
    e_torch = epe(TorchTVL1(compile=False).compute(prev, nxt), truth, mask)
    assert e_cv < 0.5 * amplitude, f"OpenCV EPE {e_cv:.3f} px on a {amplitude} px warp"
    assert e_torch <= EPE_RATIO * e_cv, f"torch EPE {e_torch:.4f} px vs OpenCV {e_cv:.4f} px"


# ------------------------------------------------------------------ contract


def test_torch_tvl1_when_batched_equals_single_pairs() -> None:
    pairs = [textured_pair(48, 56, seed, amp) for seed, amp in ((0, 1.0), (1, 2.5), (2, 0.3))]
    backend = TorchTVL1(compile=False, nscales=3, warps=3)
    batch = backend.compute_batch([p[0] for p in pairs], [p[1] for p in pairs])
    assert batch.shape == (3, 48, 56, 2) and batch.dtype == np.float32
    for i, (prev, nxt, _) in enumerate(pairs):
        np.testing.assert_allclose(batch[i], backend.compute(prev, nxt), atol=1e-4)


def test_torch_tvl1_when_a_pair_converges_it_leaves_the_batch() -> None:
    """A still pair stops after its first iteration per warp; the moving pairs go on without it."""
    still = textured_pair(48, 48, seed=7)[0]
    moving = [textured_pair(48, 48, seed, 2.0) for seed in (8, 9)]
    prevs, nexts = [still, *(m[0] for m in moving)], [still, *(m[1] for m in moving)]
    backend = TorchTVL1(compile=False, nscales=2, warps=2, check_every=1)
    sizes: list[int] = []
    iterate = backend._iterate

    def counting(u: torch.Tensor, *args: object) -> tuple:
        sizes.append(int(u.shape[0]))
        return iterate(u, *args)

    backend._iterate = counting
    batch = backend.compute_batch(prevs, nexts)
    # per level and warp: one call with all three pairs, then the two moving ones (then maybe one)
    assert sizes.count(3) == 4 and sizes.count(2) >= 4 * 4, sizes
    for i, (prev, nxt) in enumerate(zip(prevs, nexts, strict=True)):
        np.testing.assert_allclose(batch[i], backend.compute(prev, nxt), atol=1e-4)
    assert float(np.abs(batch[0]).max()) < 1e-3


def test_torch_tvl1_when_frames_are_equal_gives_zero_flow() -> None:
    prev = textured_pair(40, 40)[0]
    flow = create("torch-tvl1", compile=False, nscales=2, warps=2).compute(prev, prev)
    assert flow.shape == (40, 40, 2) and float(np.abs(flow).max()) < 1e-3


def test_torch_tvl1_when_shifted_recovers_the_shift_sign_and_size() -> None:
    prev, nxt, truth = textured_pair(64, 64, seed=3, amplitude=2.0)
    flow = TorchTVL1(compile=False).compute(prev, nxt)
    inner = (slice(8, -8), slice(8, -8))
    assert epe(flow[inner], truth[inner], np.ones((48, 48), bool)) < 0.2


def test_torch_tvl1_when_fixed_iterations_is_close_to_early_stopping() -> None:
    prev, nxt, _ = textured_pair(64, 64, seed=4)
    early = TorchTVL1(compile=False).compute(prev, nxt)
    fixed = TorchTVL1(compile=False, fixed_iterations=True, outer_iterations=2, inner_iterations=10).compute(
        prev, nxt
    )
    assert float(np.abs(early - fixed)[8:-8, 8:-8].mean()) < 0.05


def test_tvl1_module_when_fixed_equals_backend_up_to_warp_quantisation() -> None:
    """The exported (pure torch) module and the CPU backend (OpenCV warp/median) agree."""
    prev, nxt, _ = textured_pair(48, 48, seed=5)
    params = dict(nscales=3, warps=3, outer_iterations=2, inner_iterations=5)
    backend = TorchTVL1(compile=False, fixed_iterations=True, **params).compute(prev, nxt)
    module = TVL1Module(TVL1Params(**params))(torch.from_numpy(prev[None]), torch.from_numpy(nxt[None]))[0]
    assert float(np.abs(backend - module.numpy())[4:-4, 4:-4].max()) < 0.05


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"gamma": 0.5}, "gamma"),
        ({"scale_step": 1.2}, "scale_step"),
        ({"median_filtering": 4}, "median_filtering"),
        ({"warps": 0}, "warps"),
        ({"interpolation": "nearest"}, "interpolation"),
    ],
)
def test_torch_tvl1_when_parameter_is_invalid_raises_user_error(params: dict, fragment: str) -> None:
    with pytest.raises(UserError, match=fragment):
        TorchTVL1(compile=False, **params)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised on a machine without a GPU")
def test_torch_tvl1_when_cuda_is_absent_raises_user_error() -> None:
    with pytest.raises(UserError, match="no CUDA GPU"):
        TorchTVL1(device="cuda", compile=False)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"
)
def test_torch_tvl1_when_on_cuda_matches_cpu() -> None:
    pairs = [textured_pair(64, 64, seed) for seed in range(4)]
    prevs, nexts = [p[0] for p in pairs], [p[1] for p in pairs]
    gpu = TorchTVL1(device="cuda", compile=False).compute_batch(prevs, nexts)
    cpu = TorchTVL1(compile=False).compute_batch(prevs, nexts)
    assert float(np.abs(gpu - cpu)[:, 4:-4, 4:-4].mean()) < 0.02


@pytest.mark.slow
def test_torch_tvl1_when_compiled_equals_eager() -> None:
    prev, nxt, _ = textured_pair(48, 48, seed=6)
    compiled = TorchTVL1(nscales=1, warps=2, compile=True)  # one level: one set of kernels to compile
    flow_c = compiled.compute(prev, nxt)
    flow_e = TorchTVL1(nscales=1, warps=2, compile=False).compute(prev, nxt)
    assert compiled.compiled, "torch.compile fell back to eager on this machine"
    assert float(np.abs(flow_c - flow_e).max()) < 1e-2


# ------------------------------------------------------------------ building blocks


def test_divergence_when_paired_with_forward_gradient_is_its_negative_adjoint() -> None:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(2, 9, 11, generator=gen, dtype=torch.float64)
    p1, p2 = (
        torch.randn(2, 9, 11, generator=gen, dtype=torch.float64),
        torch.randn(2, 9, 11, dtype=torch.float64),
    )
    p1[..., :, -1] = 0  # dual fields vanish where the forward gradient is zero (last column / row)
    p2[..., -1, :] = 0
    gx, gy = forward_gradient(u)
    lhs = (gx * p1 + gy * p2).sum()
    assert torch.allclose(lhs, -(u * divergence(p1, p2)).sum())


@pytest.mark.parametrize("size", [3, 5])
def test_median_filter_when_torch_or_opencv_equals_cv2_median_blur(size: int) -> None:
    u = torch.randn(2, 2, 17, 23, generator=torch.Generator().manual_seed(size))
    want = np.stack([[cv2.medianBlur(u[b, c].numpy(), size) for c in range(2)] for b in range(2)])
    assert np.array_equal(median_filter(u, size).numpy(), want)
    assert np.array_equal(median_opencv(u, size).numpy(), want)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_warp_when_positions_are_on_opencv_grid_equals_cv2_remap_also_outside_the_image(mode: str) -> None:
    gen = torch.Generator().manual_seed(1)
    stack = torch.rand(2, 3, 20, 24, generator=gen) * 255
    # up to 6 px off: many samples partly or wholly outside the image, where the border rule matters
    u = torch.round((torch.rand(2, 2, 20, 24, generator=gen) * 12 - 6) * 32) / 32
    a, b = warp_torch(stack, u, mode), warp_opencv(stack, u, mode)  # on OpenCV's 1/32 grid: no quantisation
    assert float((a - b).abs().max()) < 1e-3  # grey levels 0..255: the same zero-border semantics
    outside = (u[:, 0] < -2.5 - torch.arange(24.0)) | (u[:, 0] > 25.5 - torch.arange(24.0))
    assert bool(outside.any()) and float(a.abs().amax(1)[outside].max()) == 0.0


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_warp_when_compared_with_grid_sample_zeros_agrees(mode: str) -> None:
    gen = torch.Generator().manual_seed(2)
    stack = torch.rand(1, 3, 20, 24, generator=gen) * 255
    u = torch.rand(1, 2, 20, 24, generator=gen) * 8 - 4
    gx = (torch.arange(24.0) + u[:, 0]) * (2 / 23) - 1
    gy = (torch.arange(20.0).view(20, 1) + u[:, 1]) * (2 / 19) - 1
    grid = torch.stack((gx, gy), -1)
    want = F.grid_sample(stack, grid, mode=mode, padding_mode="zeros", align_corners=True)
    assert float((warp_torch(stack, u, mode) - want).abs().max()) < 1e-2  # grid normalisation rounding


@pytest.mark.parametrize(("shape", "scale"), [((256, 256), 0.8), ((105, 131), 0.8), ((37, 50), 0.5)])
def test_resize_bilinear_when_scaled_equals_cv2_resize_with_fx(shape: tuple[int, int], scale: float) -> None:
    x = np.random.default_rng(0).random(shape).astype(np.float32) * 255
    want = cv2.resize(x, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    got = resize_bilinear(torch.from_numpy(x)[None], want.shape, scale)[0].numpy()
    assert float(np.abs(got - want).max()) < 1e-3
    up = cv2.resize(want, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)  # upsampling by size
    assert float(np.abs(resize_bilinear(torch.from_numpy(want)[None], shape)[0].numpy() - up).max()) < 1e-3


def test_sqrt_rounded_when_float32_equals_correctly_rounded_root() -> None:
    x = torch.rand(100_000, generator=torch.Generator().manual_seed(3)) * 50
    want = np.sqrt(x.numpy().astype(np.float64)).astype(np.float32)
    assert np.array_equal(sqrt_rounded(x).numpy(), want)


def test_pyramid_sizes_when_level_gets_small_stops_like_opencv() -> None:
    assert pyramid_sizes(256, 256, 5, 0.8) == [(256, 256), (205, 205), (164, 164), (131, 131), (105, 105)]
    assert pyramid_sizes(30, 40, 5, 0.5) == [(30, 40)]
