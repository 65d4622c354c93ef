"""Dual TV-L1 optical flow in plain torch tensor ops: batched, CPU or CUDA, exportable to ONNX.

The algorithm is the one of OpenCV's ``DualTVL1OpticalFlow`` (Zach, Pock, Bischof 2007, "A duality
based approach for realtime TV-L1 optical flow"; Wedel et al. 2009, "An improved algorithm for
TV-L1 optical flow"), step for step, so its parameters mean the same thing:

- an image pyramid of ``nscales`` levels, each ``scale_step`` times the previous one (bilinear,
  stops above 16 pixels), solved coarse to fine; the flow is upsampled and multiplied by
  ``1 / scale_step`` between levels;
- per level, ``warps`` warpings of the later image (and of its centred gradient) by the current
  flow; per warping, up to ``outer_iterations`` × ``inner_iterations`` primal-dual iterations
  (thresholding step with ``lambda_ * theta``, divergence of the dual, primal update with
  ``theta``, dual projection with ``tau / theta``), stopping when the squared change of the flow
  summed over the level falls to ``epsilon² · area`` (per pair of a batch);
- a ``median_filtering``-sized median of the flow at the start of each outer iteration (after each
  warp), which is Wedel et al.'s robustness step.

The warp is bicubic like OpenCV's ``remap`` (``interpolation="bilinear"`` is available but
measured ~8 % worse end-point error on warped faces). ``fixed_iterations=True`` turns early
stopping off so that the work is data independent (what ONNX export and CUDA graphs need).

Where the work goes: the primal-dual iterations are plain torch ops, fused by ``torch.compile``
(≈0.2 ms instead of ≈1.9 ms eager per iteration on 256×256 CPU, DESIGN.md). On CPU the warp and
the median go through ``cv2.remap`` / ``cv2.medianBlur`` (`warp_opencv`, `median_opencv`):
bicubic gathers and 25-way medians do not vectorise under inductor and cost more than all the
iterations together; on CUDA and in the exported graph they are `warp_torch` (explicit gathers
on a zero-padded stack) and `median_filter` (``topk``).

Border semantics are OpenCV's everywhere: the warp reads zeros outside the image (``remap``'s
``BORDER_CONSTANT``), gradients and the median replicate the edge. The exported graph avoids
operators whose arithmetic differs between runtimes (``GridSample``, ``Resize``, ``MatMul``) and the
module uses a correctly rounded square root, so onnxruntime reproduces torch bit for bit on CPU:
TV-L1 amplifies ulp-level differences near the image border to pixels over hundreds of iterations.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> prev = (rng.random((32, 32)) * 255).astype(np.uint8)
>>> flow = TorchTVL1(nscales=1, warps=1, compile=False).compute(prev, prev)
>>> flow.shape, flow.dtype, float(abs(flow).max()) < 1e-3
((32, 32, 2), dtype('float32'), True)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engine.errors import UserError
from engine.flow.opencv_backends import check_batch, check_pair
from engine.flow.params import check_tvl1_params

log = logging.getLogger(__name__)

_EPS = float(np.finfo(np.float32).eps)
# torch-tvl1's stopping tolerance, chosen with bench/flow.py (OpenCV's default is 0.01): far fewer
# iterations at an end-point error within 5 % of OpenCV's on the bench faces and on Middlebury.
TORCH_EPSILON = 0.015
_MIN_LEVEL_SIDE = 16  # OpenCV stops the pyramid before a level narrower than 16 pixels

Interpolation = Literal["bilinear", "bicubic"]
StepFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
IterateFn = Callable[..., tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]]
WarpFn = Callable[[torch.Tensor, torch.Tensor, Interpolation], torch.Tensor]
LineariseFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]
MedianFn = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class TVL1Params:
    """OpenCV DualTVL1 parameters (same names as ``cv2.optflow.DualTVL1OpticalFlow_create``, snake case)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    median_filtering: int = 5
    gamma: float = 0.0
    interpolation: Interpolation = "bicubic"

    def check(self) -> None:
        """Raise `UserError` naming the first invalid parameter."""
        check_tvl1_params(asdict(self))
        if self.gamma != 0:
            raise UserError(
                f"flow parameter gamma={self.gamma!r}: torch-tvl1 supports only gamma=0 (OpenCV's default)"
            )
        if self.interpolation not in ("bilinear", "bicubic"):
            raise UserError(
                f"flow parameter interpolation={self.interpolation!r} must be 'bilinear' or 'bicubic'"
            )


def pyramid_sizes(height: int, width: int, nscales: int, scale_step: float) -> list[tuple[int, int]]:
    """Level sizes, finest first, as OpenCV computes them (each level rounded from the previous one)."""
    sizes = [(height, width)]
    for _ in range(1, nscales):
        h, w = sizes[-1]
        nh, nw = int(np.floor(h * scale_step + 0.5)), int(np.floor(w * scale_step + 0.5))
        if nh < _MIN_LEVEL_SIDE or nw < _MIN_LEVEL_SIDE:
            break
        sizes.append((nh, nw))
    return sizes


# ---------------------------------------------------------------- building blocks (B×H×W tensors)


def _interp_taps(
    n_in: int, n_out: int, scale: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D linear resizing with half-pixel centres and edge clamping as two taps per output.

    Returns ``(lo, hi, frac)`` (n_out each; int64, int64, float32): output i is
    ``(1 − frac)·x[lo] + frac·x[hi]``. The same weights as ``cv2.resize`` (source index
    ``(i + ½)/scale − ½``, clamped to the image) with ``scale = n_out/n_in`` by default (also
    ``F.interpolate(mode="bilinear", align_corners=False)`` up to float rounding). OpenCV's TV-L1 builds its
    pyramid with ``fx = fy = scale_step``, so there the step is exactly ``1/scale_step`` and not
    the ratio of the rounded sizes (≈0.2 px apart at the far edge of a 205-pixel level; the
    mismatch cost ≈0.5 % end-point error on the bench faces).
    """
    n_in, n_out = int(n_in), int(n_out)
    step = n_in / n_out if scale is None else 1.0 / float(scale)
    src = np.maximum((np.arange(n_out) + 0.5) * step - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (src - lo).astype(np.float32)


def resize_bilinear(x: torch.Tensor, size: tuple[int, int], scale: float | None = None) -> torch.Tensor:
    """Bilinear resize of the last two dims of ``x`` to ``size``, rows first, by gathers and weights.

    ``scale=None``: equal to ``cv2.resize(x, size)`` (and, up to float rounding of the source
    index, ``F.interpolate(..., mode="bilinear", align_corners=False)``); a ``scale`` equals
    ``cv2.resize(x, None, fx=scale, fy=scale)`` (see `_interp_taps`). Exported as Gather/Mul/Add
    with constant indices and weights, so torch and onnxruntime round identically: onnxruntime's
    ``Resize`` extrapolates where torch clamps the first source index when upsampling, and a
    ``MatMul`` form accumulates in a different order per runtime; TV-L1 amplifies either
    difference near the border over hundreds of iterations.
    """
    h, w = (int(d) for d in x.shape[-2:])  # plain ints also while tracing for export
    for dim, n_in, n_out in ((-2, h, size[0]), (-1, w, size[1])):
        lo, hi, frac = (torch.from_numpy(a).to(x.device) for a in _interp_taps(n_in, n_out, scale))
        shape = (n_out, 1) if dim == -2 else (n_out,)
        frac = frac.to(x.dtype).view(shape)
        x = (1.0 - frac) * x.index_select(dim, lo) + frac * x.index_select(dim, hi)
    return x


def centred_gradient(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences ½(I[x+1] − I[x−1]) with replicated borders: OpenCV's ``centeredGradient``."""
    padded = F.pad(img.unsqueeze(1), (1, 1, 1, 1), mode="replicate").squeeze(1)
    dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return dx, dy


def forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences, zero on the last column / row (OpenCV's ``forwardGradient``)."""
    dx = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1))
    dy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def divergence(v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
    """Backward-difference divergence, the adjoint of `forward_gradient` (OpenCV's ``divergence``)."""
    return v1 - F.pad(v1[..., :, :-1], (1, 0)) + v2 - F.pad(v2[..., :-1, :], (0, 0, 1, 0))


def median_filter(u: torch.Tensor, size: int) -> torch.Tensor:
    """``size``×``size`` median of each channel of B×C×H×W ``u`` with replicated borders (``cv2.medianBlur``).

    Written as a stack of shifted views and a ``topk`` so that it exports to ONNX (TopK).
    """
    r = size // 2
    h, w = u.shape[-2:]
    padded = F.pad(u, (r, r, r, r), mode="replicate")
    shifted = torch.stack(
        [padded[..., dy : dy + h, dx : dx + w] for dy in range(size) for dx in range(size)], 2
    )
    return shifted.topk(size * size // 2 + 1, dim=2, largest=False).values[:, :, -1]


def sqrt_rounded(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root (IEEE 754's, onnxruntime's), via float64 for float32 tensors.

    torch's eager CPU ``sqrt`` of float32 is 1 ulp off on ~0.7 % of values; in TV-L1's dual step
    that seeds differences that grow to ~1e-4 px in 20 iterations. While exporting it is a plain
    ``Sqrt`` (float32, correctly rounded by onnxruntime; no float64 in the graph for TensorRT).
    """
    if x.dtype != torch.float32 or torch.onnx.is_in_onnx_export():
        return torch.sqrt(x)
    return torch.sqrt(x.double()).float()


def make_step(params: TVL1Params, exact_sqrt: bool = False) -> StepFn:
    """One primal-dual iteration with the parameters bound.

    ``exact_sqrt`` uses `sqrt_rounded` (what the exported module needs for bit-level parity with
    onnxruntime); the default ``torch.sqrt`` is faster and what ``torch.compile`` fuses.

    ``u``: B×2×H×W flow; ``p``: B×4×H×W dual (p11, p12, p21, p22); ``i1wx``, ``i1wy``: warped
    gradient, ``grad`` = its squared norm, ``rho_c`` = I1w − ∇I1w·u0 − I0 (B×H×W each). Returns the
    new ``u``, ``p`` and the per-pair summed squared change of ``u`` (B).
    """
    l_t = params.lambda_ * params.theta
    theta = params.theta
    sqrt = sqrt_rounded if exact_sqrt else torch.sqrt
    taut = params.tau / params.theta

    def step(
        u: torch.Tensor,
        p: torch.Tensor,
        i1wx: torch.Tensor,
        i1wy: torch.Tensor,
        grad: torch.Tensor,
        rho_c: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u1, u2 = u[:, 0], u[:, 1]
        # thresholding step (estimateV)
        rho = rho_c + i1wx * u1 + i1wy * u2
        lg = l_t * grad
        fi = torch.where(
            rho < -lg,
            l_t,
            torch.where(rho > lg, -l_t, torch.where(grad > _EPS, -rho / grad.clamp_min(_EPS), 0.0)),
        )
        v1 = u1 + fi * i1wx
        v2 = u2 + fi * i1wy
        # primal step (divergence, estimateU)
        p11, p12, p21, p22 = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
        n1 = v1 + theta * divergence(p11, p12)
        n2 = v2 + theta * divergence(p21, p22)
        # dual step (forwardGradient, estimateDualVariables)
        u1x, u1y = forward_gradient(n1)
        u2x, u2y = forward_gradient(n2)
        ng1 = 1.0 + taut * sqrt(u1x * u1x + u1y * u1y)
        ng2 = 1.0 + taut * sqrt(u2x * u2x + u2y * u2y)
        new_u = torch.stack((n1, n2), 1)
        new_p = torch.stack(
            (
                (p11 + taut * u1x) / ng1,
                (p12 + taut * u1y) / ng1,
                (p21 + taut * u2x) / ng2,
                (p22 + taut * u2y) / ng2,
            ),
            1,
        )
        change = ((n1 - u1) ** 2 + (n2 - u2) ** 2).sum((-2, -1))
        return new_u, new_p, change

    return step


def make_iterate(params: TVL1Params, exact_sqrt: bool = False) -> IterateFn:
    """``n`` primal-dual iterations in a row (the unit that ``torch.compile`` fuses).

    With ``scaled_eps`` a number, each pair stops at the first of these iterations whose summed
    squared change of ``u`` is ``<= scaled_eps`` (OpenCV's stopping test; later iterations leave it
    as it is), and ``running`` (B bool) says which pairs have not stopped. ``scaled_eps=None`` runs
    all ``n`` iterations (fixed-iteration mode) and ``running`` is None. Returns ``(u, p, running)``.
    """
    step = make_step(params, exact_sqrt)

    def iterate(
        u: torch.Tensor,
        p: torch.Tensor,
        i1wx: torch.Tensor,
        i1wy: torch.Tensor,
        grad: torch.Tensor,
        rho_c: torch.Tensor,
        scaled_eps: float | None,
        n: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        running: torch.Tensor | None = None
        for _ in range(n):
            new_u, new_p, change = step(u, p, i1wx, i1wy, grad, rho_c)
            if running is None:
                u, p = new_u, new_p
            else:  # a pair that stopped earlier in this chunk keeps its u and p
                keep = running.view(-1, 1, 1, 1)
                u, p = torch.where(keep, new_u, u), torch.where(keep, new_p, p)
            if scaled_eps is not None:
                more = change > scaled_eps
                running = more if running is None else running & more
        return u, p, running

    return iterate


_WARP_PAD = 4  # zero border around the warped stack: every bicubic tap of a clamped position is inside
_CUBIC_A = -0.75  # OpenCV's (and torch's) bicubic kernel parameter


def _cubic_weights(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights of the taps at offsets −1, 0, 1, 2 for fraction ``t``: OpenCV's ``interpolateCubic``."""
    a = _CUBIC_A
    t1, s = t + 1.0, 1.0 - t
    w0 = ((a * t1 - 5.0 * a) * t1 + 8.0 * a) * t1 - 4.0 * a
    w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    w2 = ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0
    return w0, w1, w2, 1.0 - w0 - w1 - w2


def warp_torch(i1_stack: torch.Tensor, u: torch.Tensor, interpolation: Interpolation) -> torch.Tensor:
    """Sample B×C×H×W ``i1_stack`` at x + u (B×2×H×W), zero outside the image: ``cv2.remap``'s
    ``BORDER_CONSTANT`` semantics, without its 1/32-pixel quantisation.

    Written as explicit gathers and weight arithmetic rather than ``grid_sample``: the stack gets a
    zero border of `_WARP_PAD` pixels and each sample position is clamped to where all its taps are
    zero anyway (x ≤ −2 or x ≥ W + 1 for bicubic), so every tap reads inside the padded image and
    no runtime's out-of-image rule is involved. Torch and onnxruntime then run the same float
    operations in the same order: ``GridSample``'s own weight formulas differ from torch's by a few
    ulps, and TV-L1 amplifies such differences near the border to ~2 px over 500 iterations.
    """
    b, c, h, w = (int(d) for d in i1_stack.shape)
    pad = _WARP_PAD
    wp = w + 2 * pad
    flat = F.pad(i1_stack, (pad, pad, pad, pad)).reshape(b, c, (h + 2 * pad) * wp)
    xs = torch.arange(w, dtype=u.dtype, device=u.device).view(1, 1, w) + float(pad)
    ys = torch.arange(h, dtype=u.dtype, device=u.device).view(1, h, 1) + float(pad)
    if interpolation == "bicubic":
        lo, hi, offsets = -2.0, 2.0, (-1, 0, 1, 2)
    else:
        lo, hi, offsets = -1.0, 1.0, (0, 1)
    x = torch.clamp(xs + u[:, 0], pad + lo, pad + w - 1 + hi).reshape(b, 1, h * w)
    y = torch.clamp(ys + u[:, 1], pad + lo, pad + h - 1 + hi).reshape(b, 1, h * w)
    x0, y0 = torch.floor(x), torch.floor(y)
    tx, ty = x - x0, y - y0
    if interpolation == "bicubic":
        wx, wy = _cubic_weights(tx), _cubic_weights(ty)
    else:
        wx, wy = (1.0 - tx, tx), (1.0 - ty, ty)
    base = (y0.long() * wp + x0.long()).expand(b, c, h * w)
    out: torch.Tensor | None = None
    for j, dy in enumerate(offsets):
        row: torch.Tensor | None = None
        for i, dx in enumerate(offsets):
            term = wx[i] * torch.gather(flat, 2, base + (dy * wp + dx))
            row = term if row is None else row + term
        term = wy[j] * row
        out = term if out is None else out + term
    assert out is not None
    return out.reshape(b, c, h, w)


def warp_opencv(i1_stack: torch.Tensor, u: torch.Tensor, interpolation: Interpolation) -> torch.Tensor:
    """`warp_torch` through ``cv2.remap`` (CPU tensors): OpenCV TV-L1's own warp, several times faster.

    Bicubic gathers do not vectorise under inductor; ``remap`` is SIMD code. Like OpenCV's TV-L1 it
    quantises sample positions to 1/32 pixel and is zero outside the image.
    """
    b, c, h, w = i1_stack.shape
    img = i1_stack.permute(0, 2, 3, 1).contiguous().numpy()
    flow = u.detach().numpy()
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    flag = cv2.INTER_CUBIC if interpolation == "bicubic" else cv2.INTER_LINEAR
    out = np.empty((b, h, w, c), dtype=np.float32)
    for i in range(b):
        cv2.remap(img[i], xs + flow[i, 0], ys + flow[i, 1], flag, dst=out[i], borderMode=cv2.BORDER_CONSTANT)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def linearise(
    warped: torch.Tensor, u: torch.Tensor, i0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Data term around the current flow (OpenCV's ``calcGradRho``).

    ``warped``: B×3×H×W (I1, ∂x I1, ∂y I1 sampled at x + u). Returns ``(i1wx, i1wy, grad, rho_c)``
    with ``grad = |∇I1w|²`` and ``rho_c = I1w − ∇I1w·u − I0``.
    """
    i1w, i1wx, i1wy = warped[:, 0], warped[:, 1], warped[:, 2]
    grad = i1wx * i1wx + i1wy * i1wy
    rho_c = i1w - i1wx * u[:, 0] - i1wy * u[:, 1] - i0
    return i1wx, i1wy, grad, rho_c


def median_opencv(u: torch.Tensor, size: int) -> torch.Tensor:
    """`median_filter` through ``cv2.medianBlur`` (CPU tensors, size 3 or 5): same values, ~10× faster.

    A median has no elementwise form that inductor fuses well, and OpenCV's is SIMD code.
    """
    x = u.detach().cpu().numpy()
    out = np.empty_like(x)
    for idx in np.ndindex(*x.shape[:-2]):
        out[idx] = cv2.medianBlur(np.ascontiguousarray(x[idx]), size)
    return torch.from_numpy(out)


def tvl1(
    i0: torch.Tensor,
    i1: torch.Tensor,
    params: TVL1Params,
    *,
    fixed_iterations: bool,
    iterate: IterateFn | None = None,
    warp: WarpFn = warp_torch,
    lin: LineariseFn = linearise,
    median: MedianFn = median_filter,
    check_every: int = 5,
) -> torch.Tensor:
    """Flow B×2×H×W from ``i0`` to ``i1`` (B×H×W float, grey levels 0..255).

    ``iterate`` is `make_iterate(params)` (default) or its compiled form. With ``fixed_iterations``
    every loop runs to its count (no data-dependent branch: traceable for export); otherwise each
    pair stops on its own at the first iteration whose flow changes by less than ``epsilon`` (RMS,
    pixels) as in OpenCV, and leaves the batch at the end of that chunk of ``check_every``
    iterations (`_converge`; ``check_every`` trades wasted iterations against calls).
    """
    iterate = iterate if iterate is not None else make_iterate(params)
    b, h, w = (int(d) for d in i0.shape)  # plain ints also while tracing for export
    sizes = pyramid_sizes(h, w, params.nscales, params.scale_step)
    pyr0, pyr1 = [i0], [i1]
    for lh, lw in sizes[1:]:
        pyr0.append(resize_bilinear(pyr0[-1], (lh, lw), params.scale_step))
        pyr1.append(resize_bilinear(pyr1[-1], (lh, lw), params.scale_step))
    u = torch.zeros((b, 2, *sizes[-1]), dtype=i0.dtype, device=i0.device)
    p = torch.zeros((b, 4, *sizes[-1]), dtype=i0.dtype, device=i0.device)
    med = params.median_filtering
    inner = params.inner_iterations
    for level in range(len(sizes) - 1, -1, -1):
        lh, lw = sizes[level]
        if u.shape[-2:] != (lh, lw):
            u = resize_bilinear(u, (lh, lw)) * (1.0 / params.scale_step)
            # the dual restarts from zero at each level as in OpenCV (upsampling it was measured
            # to cost ~20 % end-point error on the bench faces)
            p = torch.zeros((b, 4, lh, lw), dtype=i0.dtype, device=i0.device)
        l1 = pyr1[level]
        i1x, i1y = centred_gradient(l1)
        i1_stack = torch.stack((l1, i1x, i1y), -1).permute(0, 3, 1, 2)  # channels last, as remap reads it
        scaled_eps = float(params.epsilon * params.epsilon * lh * lw)
        for _ in range(params.warps):
            data = lin(warp(i1_stack, u, params.interpolation), u, pyr0[level])
            if fixed_iterations:
                for _ in range(params.outer_iterations):
                    if med > 1:
                        u = median(u, med)
                    for done in range(0, inner, check_every):
                        u, p, _ = iterate(u, p, *data, None, min(check_every, inner - done))
            else:
                u, p = _converge(u, p, data, params, iterate, median, check_every, scaled_eps)
    return u


def _converge(
    u: torch.Tensor,
    p: torch.Tensor,
    data: tuple[torch.Tensor, ...],
    params: TVL1Params,
    iterate: IterateFn,
    median: MedianFn,
    check_every: int,
    scaled_eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One warp's iterations (OpenCV's outer × inner loops with its stopping rule), each pair of the
    batch until its own flow stops changing: a finished pair is written back and leaves the batch,
    so the remaining iterations cost only what the unfinished pairs need."""
    med, inner = params.median_filtering, params.inner_iterations
    idx: torch.Tensor | None = None  # batch rows still iterating; None = all of them
    cu, cp = u, p
    for _ in range(params.outer_iterations):
        if med > 1:
            cu = median(cu, med)
        done = 0
        while done < inner:
            n = min(check_every, inner - done)
            cu, cp, running = iterate(cu, cp, *data, scaled_eps, n)
            assert running is not None
            done += n
            finished = ~running
            n_finished = int(finished.sum())
            if n_finished == 0:
                continue
            if n_finished == len(finished):
                return _write_back(u, p, idx, cu, cp)
            u, p = _write_back(u, p, idx, cu, cp)
            keep = torch.nonzero(~finished).flatten()
            idx = keep if idx is None else idx[keep]
            cu, cp = cu[keep], cp[keep]
            data = tuple(d[keep] for d in data)
    return _write_back(u, p, idx, cu, cp)


def _write_back(
    u: torch.Tensor, p: torch.Tensor, idx: torch.Tensor | None, cu: torch.Tensor, cp: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``u`` and ``p`` with batch rows ``idx`` (all when None) replaced by ``cu`` and ``cp``."""
    if idx is None:
        return cu, cp
    return u.index_copy(0, idx, cu), p.index_copy(0, idx, cp)


class TVL1Module(torch.nn.Module):
    """TV-L1 in fixed-iteration mode as an ``nn.Module``: what the ONNX exporter traces.

    ``forward(prev, next)``: B×H×W uint8 (or float 0..255) → B×H×W×2 float32 flow (x, y) in pixels.
    Pure torch ops (the median is `median_filter`'s TopK), so every step has an ONNX operator.
    """

    def __init__(self, params: TVL1Params) -> None:
        super().__init__()
        params.check()
        self.params = params
        self._iterate = make_iterate(params, exact_sqrt=True)

    def forward(self, prev: torch.Tensor, next: torch.Tensor) -> torch.Tensor:
        u = tvl1(
            prev.float(),
            next.float(),
            self.params,
            fixed_iterations=True,
            iterate=self._iterate,
            check_every=self.params.inner_iterations,
        )
        return u.permute(0, 2, 3, 1).contiguous()


class TorchTVL1:
    """Flow backend ``torch-tvl1``: OpenCV's Dual TV-L1 in torch, batched, on ``device`` cpu or cuda.

    Parameters as `TVL1Params` (OpenCV's DualTVL1 defaults but ``epsilon`` = `TORCH_EPSILON`; the
    warp is bicubic like OpenCV's ``remap``). ``fixed_iterations=True`` runs every iteration (no
    early stopping); ``check_every`` is the number of iterations per call of the compiled step
    (the stop is exact either way). ``compile`` passes the iterations and the linearisation
    through ``torch.compile`` (static shapes: the first call
    at a new size compiles one kernel set per pyramid level, cached on disk by inductor); if
    compiling fails the backend logs why and runs eagerly. On CPU the median uses
    ``cv2.medianBlur`` (identical values to the torch median, much faster).

    >>> backend = TorchTVL1(compile=False)  # doctest: +SKIP
    >>> backend.compute_batch(prevs, nexts).shape  # doctest: +SKIP
    (8, 256, 256, 2)
    """

    name = "torch-tvl1"

    def __init__(
        self,
        *,
        tau: float = 0.25,
        lambda_: float = 0.15,
        theta: float = 0.3,
        nscales: int = 5,
        warps: int = 5,
        epsilon: float = TORCH_EPSILON,
        inner_iterations: int = 30,
        outer_iterations: int = 10,
        scale_step: float = 0.8,
        median_filtering: int = 5,
        gamma: float = 0.0,
        interpolation: Interpolation = "bicubic",
        fixed_iterations: bool = False,
        device: str = "cpu",
        compile: bool = True,
        check_every: int = 1,
    ) -> None:
        self.params = TVL1Params(
            tau=tau,
            lambda_=lambda_,
            theta=theta,
            nscales=nscales,
            warps=warps,
            epsilon=epsilon,
            inner_iterations=inner_iterations,
            outer_iterations=outer_iterations,
            scale_step=scale_step,
            median_filtering=median_filtering,
            gamma=gamma,
            interpolation=interpolation,
        )
        self.params.check()
        if check_every < 1:
            raise UserError(f"flow parameter check_every={check_every!r} must be >= 1")
        self.check_every = int(check_every)
        self.fixed_iterations = bool(fixed_iterations)
        self.device = resolve_device(device)
        self._eager_iterate = make_iterate(self.params)
        self._iterate: IterateFn = self._eager_iterate
        self._lin: LineariseFn = linearise
        self._warp: WarpFn = warp_torch
        self._median: MedianFn = median_filter
        if self.device.type == "cpu":
            self._warp = warp_opencv
            if self.params.median_filtering in (3, 5):
                self._median = median_opencv
        self.compiled = bool(compile)
        if self.compiled:
            self._compiled_iterate = torch.compile(self._eager_iterate, dynamic=None, fullgraph=True)
            self._iterate = self._batch_dynamic_iterate
            self._lin = torch.compile(linearise, dynamic=False, fullgraph=True)

    def _batch_dynamic_iterate(
        self, u: torch.Tensor, p: torch.Tensor, *rest: object
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The compiled iterations with the batch size symbolic above 1: pairs leave the batch as
        they converge, and every size from 2 up shares one graph per level (1 has its own)."""
        if u.shape[0] > 1:
            for t in (u, p, *rest[:4]):
                torch._dynamo.mark_dynamic(t, 0)
        return self._compiled_iterate(u, p, *rest)

    def _solve(self, i0: torch.Tensor, i1: torch.Tensor) -> torch.Tensor:
        return tvl1(
            i0,
            i1,
            self.params,
            fixed_iterations=self.fixed_iterations,
            iterate=self._iterate,
            warp=self._warp,
            lin=self._lin,
            median=self._median,
            check_every=self.check_every,
        )

    def _run(self, prevs: np.ndarray, nexts: np.ndarray) -> np.ndarray:
        i0 = torch.from_numpy(prevs).to(self.device, torch.float32)
        i1 = torch.from_numpy(nexts).to(self.device, torch.float32)
        with torch.no_grad():
            if not self.compiled:
                u = self._solve(i0, i1)
            else:
                try:
                    # static image sizes: compiled graphs per pyramid level (only the batch size of
                    # the iterations is symbolic, see `_batch_dynamic_iterate`)
                    with torch._dynamo.config.patch(
                        recompile_limit=max(64, torch._dynamo.config.recompile_limit),
                        automatic_dynamic_shapes=False,
                    ):
                        u = self._solve(i0, i1)
                except Exception as exc:  # compile failures surface at the first call, in many types
                    log.warning(
                        "torch.compile of torch-tvl1 failed (%s: %s); running eagerly",
                        type(exc).__name__,
                        exc,
                    )
                    self._iterate, self._lin, self.compiled = self._eager_iterate, linearise, False
                    u = self._solve(i0, i1)
        return u.permute(0, 2, 3, 1).contiguous().cpu().numpy()

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        """Flow H×W×2 float32 (pixels, x right, y down) such that ``next(x + flow(x)) ≈ prev(x)``."""
        check_pair(prev, next)
        return self._run(prev[None], next[None])[0]

    def compute_batch(self, prevs: Sequence[np.ndarray], nexts: Sequence[np.ndarray]) -> np.ndarray:
        """B pairs of one size → B×H×W×2 float32 in one batched solve (equal to B calls of `compute`)."""
        check_batch(prevs, nexts)
        return self._run(np.stack(prevs), np.stack(nexts))


def resolve_device(device: str) -> torch.device:
    """``cpu`` or ``cuda[:n]`` as a torch device; CUDA without a visible GPU is a `UserError`."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(
            f"flow parameter device={device!r} is not a torch device; use 'cpu' or 'cuda'"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"flow parameter device={device!r}: torch sees no CUDA GPU here; use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"flow parameter device={device!r}: torch-tvl1 runs on 'cpu' or 'cuda'")
    return dev
