"""The `demo` source: a real public-domain face with injected FACS micro-movements and known truth.

The face is scikit-image's ``astronaut()`` (Eileen Collins, NASA, public domain), framed so the
face is about 36 % of the frame width. Every frame is the base image warped once by
``cv2.remap``: slow head sway (translation and a tiny rotation), blinks (AU45 distractors, not in
the truth) and the injected events of `engine.synth`, then Gaussian sensor noise. Everything
is drawn from ``seed``, so the same config gives the same frames, and a frame costs a few ms.

The 478 MediaPipe landmarks of the photograph were computed once, offline, and ship as
``data/astronaut_landmarks.npy`` (478×3 float32, pixels of the 512×512 photograph; z in the same
scale); regenerate them with ``python -m engine.sources.demo --make-landmarks MODEL.task``.

>>> src = DemoSource.from_config(DemoConfig(duration_s=5, events=1))
>>> len(src.truth)
1
>>> frame = next(iter(src.frames()))
>>> frame.image.shape
(512, 512, 3)
"""

from __future__ import annotations

import argparse
import math
import threading
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from engine.errors import UserError
from engine.facs import BLINK_AU
from engine.sources.config import DemoConfig
from engine.synth import (
    InjectedEvent,
    TruthEvent,
    UniformDurations,
    blink_field,
    displacement_field,
    face_axes,
    identity_grid,
    plan_events,
    profile,
)
from engine.types import Frame

DATA_DIR = Path(__file__).with_name("data")
LANDMARKS_FILE = DATA_DIR / "astronaut_landmarks.npy"
FACE_FRACTION = 0.36  # face width / frame width in the demo framing
_FACE_CENTRE_Y = 0.46  # where the face centre sits, as a fraction of the frame height
_ROTATION_DEG = 0.3  # peak head roll; the sway's translation comes from DemoConfig.head_motion_px
_BLINK_GAP_S = 0.4  # blinks stay this far from injected events so the truth is unambiguous


def astronaut_bgr() -> np.ndarray:
    """The 512×512 photograph as uint8 BGR (scikit-image package data, public domain)."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@lru_cache(maxsize=1)
def _shipped_landmarks() -> np.ndarray:
    if not LANDMARKS_FILE.is_file():
        raise UserError(
            f"demo landmarks {LANDMARKS_FILE} are missing; reinstall the package or run "
            "python -m engine.sources.demo --make-landmarks MODEL.task"
        )
    pts = np.load(LANDMARKS_FILE)
    if pts.shape != (478, 3):
        raise UserError(
            f"demo landmarks {LANDMARKS_FILE} have shape {pts.shape}, expected (478, 3); regenerate them"
        )
    return pts.astype(np.float32)


def demo_landmarks() -> np.ndarray:
    """478×2 float32 landmarks of the photograph in its own 512×512 pixel frame (a copy)."""
    return _shipped_landmarks()[:, :2].copy()


def make_landmarks(model_path: str | Path, out: str | Path = LANDMARKS_FILE) -> np.ndarray:
    """Run MediaPipe Face Landmarker (IMAGE mode) once on the photograph and save 478×3 pixels.

    Offline tool: the engine never calls it at run time (the result ships as package data)."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    rgb = cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(model_path)),
        running_mode=vision.RunningMode.IMAGE,
        num_faces=1,
    )
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        result = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    if not result.face_landmarks:
        raise RuntimeError("MediaPipe found no face in the astronaut photograph")
    pts = np.array([[p.x * w, p.y * h, p.z * w] for p in result.face_landmarks[0]], np.float32)
    np.save(out, pts)
    return pts


def _framing(size: int, landmarks: np.ndarray) -> np.ndarray:
    """2×3 affine from photograph pixels to demo frame pixels: scale so the face is `FACE_FRACTION`
    of the frame, face centre at mid-width and `_FACE_CENTRE_Y` height."""
    _, _, width = face_axes(landmarks)
    scale = FACE_FRACTION * size / width
    cx, cy = landmarks[:, :2].mean(axis=0)
    return np.array(
        [[scale, 0.0, size / 2 - scale * cx], [0.0, scale, _FACE_CENTRE_Y * size - scale * cy]], np.float64
    )


def _plan_blinks(
    rng: np.random.Generator, n_frames: int, fps: float, per_min: float, events: list[InjectedEvent]
) -> list[InjectedEvent]:
    """Blinks as a Poisson process (closing and opening 0.15-0.3 s in all), kept clear of the events."""
    if per_min <= 0:
        return []
    blinks: list[InjectedEvent] = []
    t = float(rng.exponential(60.0 / per_min))
    gap = round(_BLINK_GAP_S * fps)
    while True:
        length = max(2, round(float(rng.uniform(0.15, 0.3)) * fps))
        onset = round(t * fps)
        if onset + length >= n_frames:
            break
        clear = all(onset + length + gap < e.onset or onset > e.offset + gap for e in events)
        if clear:
            apex = onset + max(1, round(length * float(rng.uniform(0.35, 0.5))))
            blinks.append(InjectedEvent(onset, apex, onset + length, (BLINK_AU,), "others", "blink", 0.0))
        t += length / fps + float(rng.exponential(60.0 / per_min))
    return blinks


class DemoSource:
    """A deterministic synthetic stream: ``truth`` (list of `TruthEvent`) says what was injected where.

    ``events``: the injected `InjectedEvent` list (frame indices); ``blinks``: the AU45 distractors;
    ``landmarks``: 478×2 float32 landmarks of the neutral face in frame pixels. Not live: the reader
    never drops its frames. ``paced`` (``demo.realtime``, the default) makes the reader play it at
    its frame rate like a camera, so a subscriber sees events as they happen; False runs it flat out.
    """

    live = False

    def __init__(
        self,
        *,
        size: int = 512,
        fps: float = 30.0,
        duration_s: float = 20.0,
        events: int = 6,
        seed: int = 0,
        noise: float = 2.0,
        head_motion_px: float = 1.5,
        blinks_per_min: float = 12.0,
        amplitude_px: tuple[float, float] = (1.0, 3.0),
        min_gap_s: float = 1.5,
        paced: bool = False,
    ) -> None:
        self.name = "demo"
        self.paced = bool(paced)
        self.fps: float | None = float(fps)
        self.size = int(size)
        self.seed = int(seed)
        self.noise = float(noise)
        self.head_motion_px = float(head_motion_px)
        self.n_frames = max(1, round(duration_s * fps))
        self._closed = threading.Event()

        raw = _shipped_landmarks()[:, :2]
        affine = _framing(self.size, raw)
        self.base = cv2.warpAffine(
            astronaut_bgr(), affine, (self.size, self.size),
            flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101,
        )
        self.landmarks = (raw @ affine[:, :2].T + affine[:, 2]).astype(np.float32)

        rng = np.random.default_rng(self.seed)
        try:
            self.events = plan_events(
                rng, events, self.n_frames, fps, start_s=2.0, end_s=1.0, min_gap_s=min_gap_s,
                durations=UniformDurations(0.2, 0.5), amplitude_range=amplitude_px,
            )
        except ValueError as exc:
            raise UserError(f"demo.events={events} with demo.duration_s={duration_s:g}: {exc}") from None
        self.blinks = _plan_blinks(rng, self.n_frames, fps, blinks_per_min, self.events)
        self.truth: list[TruthEvent] = [TruthEvent.from_event(e, fps) for e in self.events]
        # Head sway: two sinusoids per axis at 0.05-0.3 Hz with random phases (slow: < 0.1 px/frame).
        self._sway = rng.uniform([0.05, 0.05, 0.05, 0.05, 0.05], [0.3, 0.3, 0.3, 0.3, 0.2]), rng.uniform(
            0, 2 * math.pi, 5
        )
        self._grid = identity_grid(self.base.shape)
        self._fields: dict[int, np.ndarray] = {}
        shape = self.base.shape
        for k, ev in enumerate(self.events):
            self._fields[k] = displacement_field(self.landmarks, shape, ev.aus, ev.amplitude_px, ev.side)
        self._blink_field = blink_field(self.landmarks, shape) if self.blinks else None
        self._centre = self.landmarks.mean(axis=0)

    @classmethod
    def from_config(cls, cfg: DemoConfig, fps: float = 0.0) -> DemoSource:
        """Build from `DemoConfig`; ``fps`` > 0 (the source's --fps) overrides ``cfg.fps``."""
        return cls(
            size=cfg.size,
            fps=fps if fps > 0 else cfg.fps,
            duration_s=cfg.duration_s,
            events=cfg.events,
            seed=cfg.seed,
            noise=cfg.noise,
            head_motion_px=cfg.head_motion_px,
            blinks_per_min=cfg.blinks_per_min,
            amplitude_px=(cfg.amplitude_min_px, cfg.amplitude_max_px),
            paced=cfg.realtime,
            min_gap_s=cfg.min_gap_s,
        )

    def head_pose(self, index: int) -> tuple[float, float, float]:
        """(dx, dy, roll in degrees) of the head at frame ``index``."""
        (f, phase), t = self._sway, index / float(self.fps or 30.0)
        a = self.head_motion_px
        w = 2 * math.pi * t
        dx = a * (0.6 * math.sin(w * f[0] + phase[0]) + 0.4 * math.sin(w * f[1] + phase[1]))
        dy = a * (0.6 * math.sin(w * f[2] + phase[2]) + 0.4 * math.sin(w * f[3] + phase[3]))
        roll = _ROTATION_DEG * math.sin(w * f[4] + phase[4]) if a > 0 else 0.0
        return dx, dy, roll

    def render(self, index: int) -> np.ndarray:
        """Frame ``index`` (H×W×3 uint8 BGR); a pure function of the configuration and ``index``."""
        gx, gy = self._grid
        # Expression displacement, in the neutral face's coordinates.
        fx: np.ndarray | None = None
        fy: np.ndarray | None = None
        actives = [
            (self._fields[k], profile(index, ev)) for k, ev in enumerate(self.events) if ev.active(index)
        ]
        if self._blink_field is not None:
            actives += [(self._blink_field, profile(index, b)) for b in self.blinks if b.active(index)]
        for fld, wgt in actives:
            if wgt <= 0:
                continue
            w32 = np.float32(wgt)
            fx = w32 * fld[..., 0] if fx is None else fx + w32 * fld[..., 0]
            fy = w32 * fld[..., 1] if fy is None else fy + w32 * fld[..., 1]
        # Head motion H (roll about the face centre, then shift): out(p) = expr(H^-1 p). The expression
        # field is read at p rather than H^-1 p: an error of (sway × field gradient), far below 0.01 px.
        dx, dy, roll = self.head_pose(index)
        th = math.radians(roll)
        c, s = math.cos(th), math.sin(th)
        cx, cy = float(self._centre[0]), float(self._centre[1])
        qx, qy = gx - (cx + dx), gy - (cy + dy)
        map_x = c * qx + s * qy + cx
        map_y = -s * qx + c * qy + cy
        if fx is not None and fy is not None:
            map_x -= fx
            map_y -= fy
        image = cv2.remap(self.base, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if self.noise > 0:
            noise = np.empty(image.shape, np.int16)
            cv2.setRNGSeed((self.seed * 1_000_003 + index) & 0x7FFFFFFF)  # OpenCV's RNG is per thread
            cv2.randn(noise, (0.0,) * 3, (self.noise,) * 3)  # per channel: a scalar would set only one
            image = cv2.add(image, noise, dtype=cv2.CV_8U)
        return image

    def frames(self) -> Iterator[Frame]:
        fps = float(self.fps or 30.0)
        for index in range(self.n_frames):
            if self._closed.is_set():
                return
            yield Frame(index, index / fps, self.render(index))

    def close(self) -> None:
        self._closed.set()


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.sources.demo --make-landmarks MODEL`` regenerates the shipped landmarks;
    without it, prints the ground truth of the default demo."""
    from engine.synth import format_truth

    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--make-landmarks", metavar="MODEL", help="face_landmarker.task to run on the photograph")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.make_landmarks:
        pts = make_landmarks(args.make_landmarks)
        print(f"wrote {LANDMARKS_FILE} {pts.shape}")
        return 0
    print(format_truth(DemoSource.from_config(DemoConfig(seed=args.seed)).truth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
