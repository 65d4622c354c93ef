"""Event clips (engine/publish/clips.py) on the real demo stream tracked by real MediaPipe.

The candidates are the demo's injected ground-truth intervals with the tracked observations of
their onset and apex frames, so the clip's expected span is known exactly.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.face.align import registered_apex_crop
from engine.face.config import FaceConfig
from engine.face.mediapipe_tracker import MediaPipeTracker, create_landmarker
from engine.flow.opencv_backends import DISFlow
from engine.fusion.mellm_map import mellm_map
from engine.publish.clips import ClipRecorder
from engine.regions import NOSE_TIP
from engine.retention import DAY_S, prune
from engine.sources.config import DemoConfig
from engine.sources.demo import DemoSource
from engine.types import Candidate, FaceObservation, Frame, TimePoint
from tests.helpers import free_port, read_journal, run_cli

FPS = 30.0
PRE_S = POST_S = 0.5
REGIONS = ("mouth_corner_L", "mouth_corner_R")


def _candidate(cid: str, truth: object, obs: dict[int, FaceObservation]) -> Candidate:
    on, ap, off = truth.onset, truth.apex, truth.offset  # type: ignore[attr-defined]
    return Candidate(
        candidate_id=cid,
        stream="demo",
        onset=TimePoint(on.frame, on.t),
        apex=TimePoint(ap.frame, ap.t),
        offset=TimePoint(off.frame, off.t),
        kind="micro",
        score=1.0,
        regions=REGIONS,
        onset_face=obs[on.frame],
        apex_face=obs[ap.frame],
    )


@pytest.fixture(scope="module")
def recorded(face_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Runs the demo through MediaPipe and a ClipRecorder; adds one candidate per truth event.

    The first candidate is added 10 frames after its offset (before offset + post_s: the recorder
    must wait), the second 25 frames after (already complete: written at once).
    """
    out = tmp_path_factory.mktemp("clips")
    src = DemoSource.from_config(DemoConfig(duration_s=8.0, fps=FPS, events=2, seed=3))
    assert len(src.truth) == 2
    delays = (10, 25)
    tracker = MediaPipeTracker(create_landmarker(str(face_model), FaceConfig()), FaceConfig().crop_size)
    rec = ClipRecorder(out, fps=FPS, pre_s=PRE_S, post_s=POST_S, max_buffer_s=4.0)
    obs: dict[int, FaceObservation] = {}
    paths: dict[str, str] = {}
    push_s: list[float] = []
    add_s: list[float] = []
    with tracker:
        for frame in src.frames():
            o = tracker.process(frame)
            assert o is not None, f"MediaPipe lost the demo face at frame {frame.index}"
            obs[frame.index] = o
            t0 = time.perf_counter()
            rec.push(frame, o)
            push_s.append(time.perf_counter() - t0)
            for k, (truth, delay) in enumerate(zip(src.truth, delays, strict=True)):
                if frame.index == truth.offset.frame + delay:
                    cand = _candidate(f"cand{k}", truth, obs)
                    t0 = time.perf_counter()
                    paths[cand.candidate_id] = rec.add(cand)
                    add_s.append(time.perf_counter() - t0)
                    paths[cand.candidate_id + ":cand"] = cand  # type: ignore[assignment]
    rec.close()
    return {"rec": rec, "truth": src.truth, "paths": paths, "obs": obs, "push_s": push_s, "add_s": add_s,
            "out": out}


def _decode(path: str) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(path)
    assert cap.isOpened(), f"OpenCV cannot open {path}"
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames, fps


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 1])
def test_clip_when_candidate_added_has_span_size_and_content(recorded: dict, k: int) -> None:
    truth = recorded["truth"][k]
    path = recorded["paths"][f"cand{k}"]
    assert path == str(recorded["out"] / f"cand{k}.mp4") and Path(path).is_absolute()
    frames, fps = _decode(path)
    expected = (truth.offset.t - truth.onset.t + PRE_S + POST_S) * FPS + 1
    assert abs(len(frames) - expected) <= 1, f"{len(frames)} frames, expected {expected:.1f}"
    assert fps == pytest.approx(FPS)
    side = FaceConfig().crop_size
    assert frames[0].shape == (side, 2 * side, 3)

    # Left half: the aligned face of that frame (lossy codec; text rows and the bar excluded).
    first = round((truth.onset.t - PRE_S) * FPS)
    obs = recorded["obs"]
    for j in (0, len(frames) // 2, len(frames) - 1):
        crop = obs[first + j].crop
        left = cv2.cvtColor(frames[j][:, :side], cv2.COLOR_BGR2GRAY)
        diff = np.abs(left[24:-10].astype(int) - crop[24:-10].astype(int))
        assert np.median(diff) <= 4, f"clip frame {j} is not the aligned face of frame {first + j}"
    # Right half: the MELLM map of the candidate's onset→apex flow (DIS, the recorder's default), the
    # apex crop in the onset's registration.
    cand = recorded["paths"][f"cand{k}:cand"]
    apex_crop = registered_apex_crop(cand.onset_face, cand.apex_face)
    flow = DISFlow(preset="medium").compute(cand.onset_face.crop, apex_crop)
    fused, _ = mellm_map(cand.onset_face.crop, flow, cand.onset_face.crop_landmarks[NOSE_TIP])
    right = frames[len(frames) // 2][:, side:]
    assert np.median(np.abs(right[24:].astype(int) - fused[24:].astype(int))) <= 6
    # The moving regions are outlined in amber on the face; the bar is red inside onset..offset.
    apex_j = truth.apex.frame - first
    amber = (frames[apex_j][:, :side, 2] > 200) & (frames[apex_j][:, :side, 1] > 150) & (
        frames[apex_j][:, :side, 0] < 90)
    assert amber.sum() > 20, "no region outline drawn on the apex frame"
    bar = frames[apex_j][side - 3, 5]
    assert bar[2] > 150 and bar[0] < 100, f"onset..offset bar not red at the apex: {bar}"
    assert frames[0][side - 3, 5][2] < 120, "bar is red before the onset"


@pytest.mark.slow
def test_clip_recorder_when_running_never_waits_on_the_writer(recorded: dict) -> None:
    stats = recorded["rec"].stats()
    assert (stats.written, stats.failed, stats.skipped, stats.pending) == (2, 0, 0, 0)
    # Encoding a clip takes tens of ms; push/add are bookkeeping only.
    assert max(recorded["add_s"]) < 0.02, recorded["add_s"]
    assert np.percentile(recorded["push_s"], 99) < 0.005


@pytest.mark.slow
def test_clip_recorder_when_writer_is_behind_skips_instead_of_blocking(recorded: dict, tmp_path: Path):
    obs = recorded["obs"]
    truth = recorded["truth"][0]
    rec = ClipRecorder(tmp_path, fps=FPS, queue_size=1, max_buffer_s=4.0)
    for i in range(truth.offset.frame + 20):
        rec.push(Frame(i, i / FPS, np.zeros((4, 4, 3), np.uint8)), obs[i])
    t0 = time.perf_counter()
    for n in range(6):  # each clip is complete at once; at most one in progress plus one queued
        rec.add(_candidate(f"busy{n}", truth, obs))
    elapsed = time.perf_counter() - t0
    rec.close()
    stats = rec.stats()
    assert elapsed < 0.05, f"add() blocked for {elapsed:.3f} s"
    assert stats.skipped >= 4 and stats.written + stats.skipped == 6 and stats.failed == 0
    assert len(list(tmp_path.glob("busy*.mp4"))) == stats.written


@pytest.mark.slow
def test_clip_recorder_when_closed_early_writes_pending_clip_with_frames_so_far(recorded: dict, tmp_path):
    obs = recorded["obs"]
    truth = recorded["truth"][0]
    rec = ClipRecorder(tmp_path, fps=FPS, max_buffer_s=4.0)
    last = truth.offset.frame + 3  # the stream ends 3 frames after the offset, before offset + post_s
    for i in range(last + 1):
        rec.push(Frame(i, i / FPS, np.zeros((4, 4, 3), np.uint8)), obs[i])
    path = rec.add(_candidate("early", truth, obs))
    assert rec.stats().pending == 1
    rec.close()
    frames, _ = _decode(path)
    assert len(frames) == last - round((truth.onset.t - PRE_S) * FPS) + 1


@pytest.mark.slow
def test_clip_recorder_when_worker_hands_over_map_late_uses_it(recorded: dict, tmp_path: Path) -> None:
    obs = recorded["obs"]
    truth = recorded["truth"][0]
    rec = ClipRecorder(tmp_path, fps=FPS, max_buffer_s=4.0, map_wait_s=10.0)
    for i in range(truth.offset.frame + 20):
        rec.push(Frame(i, i / FPS, np.zeros((4, 4, 3), np.uint8)), obs[i])
    published = np.zeros((256, 256, 3), np.uint8)
    published[:, :, 0] = 200  # a map no flow would produce: solid blue
    path = rec.add(_candidate("late", truth, obs))
    timer = threading.Timer(0.5, rec.set_map, ("late", published))
    timer.start()
    rec.close()
    timer.join()
    frames, _ = _decode(path)
    right = frames[len(frames) // 2][30:, 256:].astype(int)
    assert rec.maps_used == 1
    assert np.median(np.abs(right - published[30:].astype(int))) <= 3


def test_clip_recorder_when_fed_long_keeps_memory_flat(tmp_path: Path) -> None:
    """Only S×S crops are kept, at most max_buffer_s × fps of them; full frames are never retained."""
    side = 256
    rng = np.random.default_rng(0)
    landmarks = rng.uniform(0, side, (478, 2)).astype(np.float32)
    rec = ClipRecorder(tmp_path, fps=30.0, max_buffer_s=2.0)
    cap = rec.stats().buffer_capacity
    assert cap == 60

    def feed(start: int, n: int) -> None:
        for i in range(start, start + n):
            image = np.zeros((720, 1280, 3), np.uint8)  # a new full frame each time, 2.7 MB
            crop = np.full((side, side), i % 256, np.uint8)
            eye = np.eye(2, 3, dtype=np.float32)
            o = FaceObservation(i, i / 30.0, landmarks, crop, eye, landmarks.copy())
            rec.push(Frame(i, i / 30.0, image), o)

    tracemalloc.start()
    try:
        feed(0, 3 * cap)
        after_warm, _ = tracemalloc.get_traced_memory()
        feed(3 * cap, 10 * cap)
        after_long, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        rec.close()
    assert rec.stats().buffered_frames == cap
    assert after_warm < cap * (side * side + 2 * 478 * 8) * 1.5, "buffer holds more than crops"
    assert after_long - after_warm < 0.05 * after_warm, (after_warm, after_long)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fps": 0}, "fps"),
        ({"fps": 30, "pre_s": -1}, "pre_s"),
        ({"fps": 30, "max_buffer_s": 0.5}, "max_buffer_s"),
        ({"fps": 30, "codec": "h264x"}, "codec"),
    ],
)
def test_clip_recorder_when_arguments_are_bad_raises_value_error(tmp_path: Path, kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message):
        ClipRecorder(tmp_path, **kwargs)


# -- retention (clips.max_age_days, clips.max_bytes) -------------------------------------------------


def _aged(path: Path, days: float) -> Path:
    t = time.time() - days * DAY_S
    os.utime(path, (t, t), follow_symlinks=False)
    return path


@pytest.mark.parametrize(
    ("max_age_days", "max_bytes", "kept"),
    [
        (0, 0, "abcde"),  # no limit: nothing deleted
        (0, 250, "de"),  # 500 bytes: the oldest go until 200 remain
        (2.5, 0, "de"),  # older than 2.5 days: a (5 d), b (4 d), c (3 d)
        (4.5, 150, "e"),  # a by age, then b, c, d by size
        (0, 100, "e"),
        (0, 99, ""),  # even the newest clip, alone over the limit
    ],
)
def test_prune_when_limits_set_deletes_oldest_clips_first_and_nothing_else(
    tmp_path: Path, max_age_days: float, max_bytes: int, kept: str
) -> None:
    folder, outside = tmp_path / "clips", tmp_path / "outside.mp4"
    folder.mkdir()
    outside.write_bytes(b"o" * 100)
    _aged(outside, 9)
    for age, name in zip((5, 4, 3, 2, 1), "abcde", strict=True):  # a is the oldest
        (folder / f"{name}.mp4").write_bytes(b"x" * 100)
        _aged(folder / f"{name}.mp4", age)
    # Never touched, however old: a clip being written, other files, a link (and where it leads), a folder.
    others = [folder / ".f.part.mp4", folder / "notes.txt", folder / "link.mp4", folder / "sub.mp4"]
    others[0].write_bytes(b"p" * 100)
    others[1].write_text("n" * 100)
    others[2].symlink_to(outside)
    others[3].mkdir()
    for p in others:
        _aged(p, 30)
    done = prune(folder, "*.mp4", max_age_s=max_age_days * DAY_S, max_bytes=max_bytes)
    assert sorted(p.stem for p in folder.glob("?.mp4")) == list(kept)
    assert (done.deleted, done.deleted_bytes) == (5 - len(kept), 100 * (5 - len(kept)))
    assert all(os.path.lexists(p) for p in others) and outside.read_bytes() == b"o" * 100


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["max_bytes", "max_age_days"])
def test_clip_recorder_when_retention_set_deletes_oldest_clips_and_counts_them(
    recorded: dict, tmp_path: Path, limit: str
) -> None:
    """Clips of earlier runs (3, 2, 1 days old) and a new one: the two oldest go, counted in stats."""
    real = Path(recorded["paths"]["cand0"])
    size = real.stat().st_size
    for k, age in enumerate((3, 2, 1)):
        _aged(Path(shutil.copyfile(real, tmp_path / f"old{k}.mp4")), age)
    kw = {"max_bytes": int(2.5 * size)} if limit == "max_bytes" else {"max_age_days": 1.5}
    rec = ClipRecorder(tmp_path, fps=FPS, max_buffer_s=4.0, **kw)
    obs, truth = recorded["obs"], recorded["truth"][0]
    for i in range(truth.offset.frame + 20):
        rec.push(Frame(i, i / FPS, np.zeros((4, 4, 3), np.uint8)), obs[i])
    rec.add(_candidate("fresh", truth, obs))
    rec.close()
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["fresh.mp4", "old2.mp4"]
    stats = rec.stats()
    assert (stats.written, stats.deleted, stats.deleted_bytes) == (1, 2, 2 * size)


@pytest.mark.slow
def test_run_stream_when_clips_max_bytes_tiny_deletes_every_clip_and_status_counts_them(tmp_path: Path):
    journal, clips = tmp_path / "events.jsonl", tmp_path / "clips"
    sets = ["demo.duration_s=8", "demo.events=2", "demo.seed=1", "clips.enabled=true", f"clips.dir='{clips}'",
            "clips.max_bytes=1"]
    proc = run_cli("--source", "demo", *(a for kv in sets for a in ("--set", kv)),
                   "--pub", f"tcp://127.0.0.1:{free_port()}", "--journal", str(journal))
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = read_journal(journal)
    final = [e for e in events if e["type"] == "status"][-1]["clips"]
    explained = [e for e in events if e["type"] == "explanation"]
    assert explained and final["written"] == len(explained) and final["failed"] == 0
    assert final["deleted"] == final["written"] and final["deleted_bytes"] > 0
    assert list(clips.glob("*.mp4")) == []
