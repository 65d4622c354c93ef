"""Smoke test of the spotting benchmark on one real video, and landmark reuse (`ReusingTracker`)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from engine.face.config import FaceConfig
from spotting.config import SpottingConfig
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
    from spotting.annotations import SheetEvents
    from spotting.inject import AU_MOVES

    sampler = SheetEvents.from_sheets(shared_path("annotations"), sorted(AU_MOVES))
    res = bench_video(
        _video(), sampler, 1, FaceConfig(), SpottingConfig(), truth_dir=tmp_path, say=lambda s: None
    )
    assert res is not None and res.events == 1 and res.score.overall.n_gt == 1
    assert res.face_s > 2.0 and res.path_fps and min(res.path_fps) > 0
    (row,) = list(csv.reader(open(tmp_path / "single_face_seed0.csv")))
    assert len(row) == 11 and row[7] in ("micro-expression", "macro-expression")
    assert int(row[2]) <= int(row[3]) <= int(row[4])


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
