"""Smoke test of the spotting benchmark on one real video, and landmark reuse (`ReusingTracker`)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from engine.face.config import FaceConfig
from spotting.config import BumpConfig, SpottingConfig
from tests.conftest import shared_path

VIDEO = ("videos", "single_face.mp4")


def _video() -> Path:
    p = shared_path(*VIDEO)
    if not p.is_file():
        pytest.skip("../shared/data/videos/single_face.mp4 is absent")
    return p


@pytest.mark.data
@pytest.mark.slow
def test_bench_video_when_single_face_then_events_injected_scored_and_truth_written(
    tmp_path: Path, face_model: Path
) -> None:
    from bench.spotting import bench_video
    from engine.facs import AU_MOVES
    from evaluation.annotations import SheetEvents

    sampler = SheetEvents.from_sheets(shared_path("annotations"), sorted(AU_MOVES))
    res = bench_video(
        _video(), sampler, 1, FaceConfig(), SpottingConfig(), truth_dir=tmp_path, say=lambda s: None
    )
    assert res is not None and res.events == 1 and res.score.overall.n_gt == 1
    assert res.face_s > 2.0 and res.path_fps and min(res.path_fps) > 0
    (row,) = list(csv.reader(open(tmp_path / "single_face_seed0.csv")))
    assert len(row) == 11 and row[7] in ("micro-expression", "macro-expression")
    assert int(row[2]) <= int(row[3]) <= int(row[4])
    assert 0 <= res.tp_time_only <= res.score.overall.tp


def test_time_only_when_detection_names_no_region_the_event_moves_then_counted() -> None:
    """The bench's breakdown of MEGC matches: a brow event (AU4) "found" by a lip detection that
    spans it counts as matched by time only; one naming a brow region (either side) does not."""
    from bench.spotting import time_only
    from engine.facs import BLINK_AU
    from evaluation.inject import moved_bases

    assert moved_bases([4]) == {"brow_inner", "brow_outer"}
    assert moved_bases([BLINK_AU]) == {"eyelid_upper", "eyelid_lower"}
    regions = [("lip_lower_R",), ("brow_outer_L", "chin_R"), ("eyelid_upper_R",), ("chin_L",)]
    aus = [(4,), (4,), (BLINK_AU,), (17,)]
    pairs = [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert time_only(pairs, regions, aus) == 1
    assert time_only([(0, 1), (3, 0)], regions, aus) == 2  # the pairs decide which event a detection met
    assert time_only([], regions, aus) == 0


@pytest.mark.data
@pytest.mark.slow
def test_reusing_tracker_when_real_video_then_reuses_and_stays_close_to_the_landmarker(
    face_model: Path,
) -> None:
    from bench.spotting import decode
    from engine.face import create_tracker
    from engine.face.reuse import ReuseConfig, ReusingTracker

    frames, _ = decode(_video())
    frames = frames[:40]
    full = create_tracker(FaceConfig())
    ref = [full.process(f) for f in frames]
    full.close()
    reuse = ReusingTracker(create_tracker(FaceConfig()), ReuseConfig(max_reuse=3), 256)
    got = [reuse.process(f) for f in frames]
    reuse.close()
    assert reuse.reused > 0 and reuse.keyframes + reuse.reused == len(frames)
    assert reuse.keyframes >= len(frames) // 4  # never more than 3 frames in a row without the landmarker
    err = [float(np.abs(a.landmarks - b.landmarks).mean()) for a, b in zip(ref, got, strict=True) if a and b]
    assert np.median(err) < 2.0  # pixels of the 640x360 frame, talking face
    assert all(g is None or g.crop.shape == (256, 256) for g in got)


@pytest.mark.data
@pytest.mark.slow
def test_reusing_tracker_when_limits_scale_with_face_then_fewer_key_frames_same_accuracy(
    face_model: Path,
) -> None:
    """Forehead points lost near the hairline and a talking head's turns no longer force the landmarker
    (limits in face widths, up to 3 rigid points lost), and the reused landmarks stay as close."""
    from bench.spotting import decode
    from engine.face import create_tracker
    from engine.face.reuse import ReuseConfig, ReusingTracker

    frames, _ = decode(shared_path("videos", "WolfgangLanger_Pexels.mp4"))
    frames = frames[:96]
    full = create_tracker(FaceConfig())
    ref = [full.process(f) for f in frames]
    full.close()
    runs = {}
    # The former fixed limits: 8 and 2 px of this 210 px wide face, no lost point allowed.
    for name, cfg in {
        "strict": ReuseConfig(max_reuse=7, max_shift=0.038, probe=0.0095, max_lost=0),
        "default": ReuseConfig(max_reuse=7),
    }.items():
        tracker = ReusingTracker(create_tracker(FaceConfig()), cfg, 256)
        got = [tracker.process(f) for f in frames]
        tracker.close()
        pairs = [(a, b) for a, b in zip(ref, got, strict=True) if a and b]
        err = [float(np.abs(a.landmarks - b.landmarks).mean()) for a, b in pairs]
        runs[name] = (tracker.keyframes, float(np.median(err)))
    assert runs["default"][0] < runs["strict"][0]
    assert runs["default"][0] >= len(frames) // 8  # never more than 7 frames in a row without the landmarker
    assert runs["default"][1] < 2.0 and runs["strict"][1] < 2.0, runs


def test_reuse_config_when_limits_not_positive_then_rejected() -> None:
    from engine.face.reuse import ReuseConfig

    for bad in ({"max_shift": 0.0}, {"probe": -1.0}, {"max_lost": -1}, {"max_reuse": -1}):
        with pytest.raises(ValueError, match="motion limits"):
            ReuseConfig(**bad)


@pytest.mark.parametrize(
    ("onset", "apex", "offset", "k", "low", "high"),
    [
        (10, 12, 14, 3, 0.999, 1.001),  # over before the bump's side frames: it sees all of it
        (0, 20, 40, 3, 0.02, 0.06),  # 40 frames: a 3-frame bump sees the curvature only
        (10, 16, 22, 3, 0.45, 0.55),  # a half-width as long as the rise: about half
    ],
)
def test_bump_share_when_profile_long_then_bump_sees_less(
    onset: int, apex: int, offset: int, k: int, low: float, high: float
) -> None:
    from bench.spotting import bump_share
    from engine.synth import InjectedEvent

    assert low <= bump_share(InjectedEvent(onset, apex, offset, (4,)), k) <= high


@pytest.mark.data
@pytest.mark.slow
def test_bench_video_when_visibility_asked_then_each_event_rated_against_the_faces_own_motion(
    face_model: Path,
) -> None:
    from bench.spotting import bench_video, decode, natural_bumps, track_faces
    from engine.facs import AU_MOVES
    from evaluation.annotations import SheetEvents

    frames, fps = decode(_video())
    bumps = natural_bumps(track_faces(frames, FaceConfig()), SpottingConfig(), fps)
    assert bumps.shape == (len(frames), 20) and np.isnan(bumps[-3:]).all()  # the last lag has no "after"
    live = bumps[np.isfinite(bumps).all(axis=1)]
    assert len(live) > 40 and 0.0 < float(np.median(live)) < 1.0  # a still face: sub-pixel own motion
    sampler = SheetEvents.from_sheets(shared_path("annotations"), sorted(AU_MOVES))
    res = bench_video(
        _video(), sampler, 2, FaceConfig(), SpottingConfig(), say=lambda s: None, visibility=True
    )
    assert res is not None and len(res.visibility) == res.events == 2
    assert all(np.isfinite(v) and v > 0 for v, _ in res.visibility)
    assert sum(found for _, found in res.visibility) == res.score.overall.tp


@pytest.mark.slow
def test_reusing_tracker_when_eyes_blink_then_fresh_landmarks_close_the_eyes(face_model: Path) -> None:
    """The per-eye probe sends blinks to the landmarker, so the eye apertures the blink suppression reads
    close in reused mode as with landmarks on every frame (the demo face sways, turns and blinks)."""
    from engine.face import create_tracker
    from engine.face.reuse import ReuseConfig, ReusingTracker
    from engine.sources.demo import DemoSource
    from spotting.signals import eye_apertures

    src = DemoSource(duration_s=6.0, events=0, blinks_per_min=30.0, seed=3)
    frames = list(src.frames())
    blink_frames = {i for b in src.blinks for i in range(b.onset, b.offset + 1)}
    assert len(src.blinks) >= 2
    tracker = ReusingTracker(create_tracker(FaceConfig()), ReuseConfig(max_reuse=7), 256)
    got = [tracker.process(f) for f in frames]
    tracker.close()
    assert tracker.reused > len(frames) // 2  # the still, open-eyed frames reuse landmarks
    aperture = {o.index: float(eye_apertures(o.crop_landmarks).min()) for o in got if o is not None}
    open_eyes = np.median([a for i, a in aperture.items() if i not in blink_frames])
    for b in src.blinks:
        closing = min(aperture[i] for i in range(b.onset, b.offset + 1) if i in aperture)
        assert closing < 0.7 * open_eyes, (b, closing, open_eyes)


def test_set_aside_own_when_detection_overlaps_the_untouched_videos_own_then_dropped_unless_it_hits() -> None:
    """The breakdown line of the bench: a detection that overlaps one of the untouched video (its own
    movement) is set aside, unless it matches an injected event (IoU >= 0.5); others stay."""
    from bench.spotting import set_aside_own

    truth = [(100, 110, "micro")]
    own = [(102, 108, "micro"), (200, 215, "macro")]
    detections = [(101, 111, "micro"), (205, 212, "micro"), (300, 309, "micro"), (99, 104, "micro")]
    kept = set_aside_own(detections, truth, own)
    # (101, 111) hits the truth although it overlaps an own detection; (205, 212) is the video's own;
    # (300, 309) overlaps nothing and stays a false positive; (99, 104): IoU 5/12 with the truth, own.
    assert kept == [(101, 111, "micro"), (300, 309, "micro")]
    assert set_aside_own(detections, truth, []) == detections


def test_parse_sweep_when_field_and_values_valid_then_one_validated_config_per_value() -> None:
    from bench.spotting import parse_sweep

    base = SpottingConfig(bump=BumpConfig(frac=0.25), signal_size=128)
    points = parse_sweep("bump.threshold_k=6, 8,14", base)
    assert [p.value for p in points] == [6.0, 8.0, 14.0]
    assert all(p.field_name == "bump.threshold_k" for p in points)
    assert [p.cfg.bump.threshold_k for p in points] == [6.0, 8.0, 14.0]
    assert all(p.cfg.bump.frac == 0.25 and p.cfg.signal_size == 128 for p in points)  # the rest as configured
    assert [p.cfg.signal_size for p in parse_sweep("signal_size=96,160", base)] == [96, 160]


def test_docs_page_when_written_then_holds_the_runs_command_date_and_figures() -> None:
    from bench.spotting import docs_page

    summary = {
        "label": "landmarks every frame",
        "f1": 0.4871,
        "precision": 0.52,
        "recall": 0.4583,
        "micro_f1": 0.5,
        "macro_f1": 0.3,
        "events": 126,
        "tp": 58,
        "detections": 112,
        "f1_own_set_aside": 0.55,
        "precision_own_set_aside": 0.61,
        "tp_time_only": 4,
        "false_alarms": 9,
        "false_alarms_per_min": 17.8,
        "path_fps": {"WolfgangLanger_Pexels.mp4": 241.3},
        "visibility": {"0-0.5": [30, 5]},
        "sweep": [
            {"value": 6.0, "tp": 58, "detections": 112, "precision": 0.52, "recall": 0.46, "f1": 0.49,
             "false_alarms": 9, "false_alarms_per_min": 17.8},
        ],
    }
    page = docs_page([summary], "python bench/spotting.py --seeds 9", "2026-12-03 19:00 UTC", "OpenCV 5.1")
    lines = page.splitlines()
    assert lines[0] == "# Spotting tuning figures"
    assert "- command: `python bench/spotting.py --seeds 9`" in lines
    assert "- date: 2026-12-03 19:00 UTC" in lines and "- libraries: OpenCV 5.1" in lines
    assert "| 0.4871 | 0.5200 | 0.4583 | 0.5000 | 0.3000 | 126 | 58 | 112 | 17.80 |" in lines
    assert "| WolfgangLanger_Pexels.mp4 | 241.3 |" in lines and "| 0-0.5 | 30 | 5 |" in lines
    assert "| 6.0 | 58 | 112 | 0.5200 | 0.4600 | 0.4900 | 17.80 |" in lines


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("threshold=6", "not a spotting config field"),
        ("bump=6", "not a spotting config field"),
        ("bump_threshold_k=6", "now bump.threshold_k"),
        ("bump.threshold_k=6,-1", "greater than 0"),
        ("bump.threshold_k=six", "bump.threshold_k='six' rejected"),
        ("bump.threshold_k=2", "release_k"),
        ("name=region-bump,nope", "unknown spotter 'nope'"),
        ("bump.threshold_k", "expects FIELD=V1,V2"),
        ("bump.threshold_k=", "expects FIELD=V1,V2"),
    ],
)
def test_parse_sweep_when_field_or_value_wrong_then_one_line_reason(text: str, says: str) -> None:
    from bench.spotting import parse_sweep

    with pytest.raises(ValueError, match=says) as err:
        parse_sweep(text, SpottingConfig())
    assert "\n" not in str(err.value)


@pytest.mark.data
@pytest.mark.slow
def test_bench_video_when_sweep_then_configured_value_reproduces_the_table_and_a_high_threshold_silences(
    face_model: Path,
) -> None:
    """The sweep spots the kept observations again: at the configured value it must find exactly what
    the normal path found (same detections, same untouched false alarms); far above, nothing."""
    from bench.spotting import bench_video, parse_sweep
    from engine.facs import AU_MOVES
    from evaluation.annotations import SheetEvents

    sampler = SheetEvents.from_sheets(shared_path("annotations"), sorted(AU_MOVES))
    # a low threshold, so the still face gives detections to reproduce
    cfg = SpottingConfig(bump=BumpConfig(threshold_k=4.0))
    res = bench_video(
        _video(),
        sampler,
        2,
        FaceConfig(),
        cfg,
        say=lambda s: None,
        sweep=parse_sweep("bump.threshold_k=4,1e6", cfg),
    )
    assert res is not None and [p.value for p in res.sweep] == [4.0, 1e6]
    same, silent = res.sweep
    assert res.score.overall.n_det > 0
    assert (same.score.overall.tp, same.score.overall.n_det) == (
        res.score.overall.tp,
        res.score.overall.n_det,
    )
    assert same.score.per_video == res.score.per_video and same.false_alarms == res.false_alarms
    assert silent.score.overall.n_det == 0 and silent.false_alarms == 0
    assert silent.score.overall.n_gt == res.score.overall.n_gt == res.events


@pytest.mark.slow
def test_respot_when_config_names_a_spotting_flow_then_that_backend_computes_the_signal(
    face_model: Path, farneback_calls: list[int]
) -> None:
    """The bench made its spotters without ``spotting.flow`` (the built-in DIS whatever the config
    said); they are now made as the pipeline makes them."""
    from bench.spotting import respot, track_faces
    from engine.sources.demo import DemoSource

    calls = farneback_calls
    frames = list(DemoSource(duration_s=3.0, events=0, seed=2, size=320).frames())
    observations = track_faces(frames, FaceConfig())
    respot(observations, 30.0, SpottingConfig())
    assert calls == []
    respot(observations, 30.0, SpottingConfig(flow="farneback"))
    assert len(calls) >= len(frames) - 10  # one flow per frame after the lag
