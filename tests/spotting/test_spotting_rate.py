"""Durations in seconds at the rate frames really come at, not the rate a container or camera states.

A phone's variable-rate .mov (the shared ``face_noface.mov``) says 26.4 fps while its face part runs
at 30; a webcam says 30 and delivers 15 in dim light. The spotters measure the rate on the
timestamps of their first observations after every start or reset (`spotting.signals.measured_rate`)
and size their lags and windows for it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.types import Candidate
from spotting import create_spotter
from spotting.config import SpottingConfig
from spotting.signals import frames_for, measured_rate
from tests.conftest import shared_path
from tests.spotting.test_spotting import MOUTH_R, Bump, Face, _align, run, stream


@pytest.fixture(scope="module")
def face() -> Face:
    from skimage import data

    return _align(data.astronaut())


def _spans(cands: list[Candidate]) -> list[tuple[int, int, int, tuple[str, ...]]]:
    return [(c.onset.frame, c.apex.frame, c.offset.frame, c.regions) for c in cands]


def test_measured_rate_when_frames_come_faster_than_stated_then_their_rate() -> None:
    times = np.arange(20) / 30.0
    assert measured_rate(times, 26.4) == pytest.approx(30.0)
    assert measured_rate(np.arange(20) / 15.0, 30.0) == pytest.approx(15.0)  # a webcam in dim light


def test_measured_rate_when_close_to_nominal_or_unusable_then_the_nominal_rate() -> None:
    rng = np.random.default_rng(0)
    jittered = np.cumsum(1 / 30.0 + rng.uniform(-0.003, 0.003, 20))  # a live camera's jitter
    assert measured_rate(jittered, 30.0) == 30.0
    assert measured_rate([0.0], 24.0) == 24.0  # one frame shows no rate
    assert measured_rate([0.0, 0.0, 0.0], 24.0) == 24.0  # a clock that does not advance
    assert measured_rate([0.3, 0.2, 0.1], 24.0) == 24.0  # nor one that goes back
    assert measured_rate([0.0, math.nan, 0.1], 24.0) == 24.0
    assert measured_rate([0.0, 1e-5, 2e-5], 24.0) == 24.0  # 100 000 fps is not a camera


def test_measured_rate_when_a_few_frames_dropped_then_the_median_interval_wins() -> None:
    times = np.delete(np.arange(30) / 30.0, [5, 12, 20])  # three dropped frames: three double gaps
    assert measured_rate(times, 24.0) == pytest.approx(30.0)


@pytest.mark.parametrize("name", ["region-bump"])
def test_spotter_when_stated_rate_is_wrong_then_finds_what_the_true_rate_finds(face: Face, name: str) -> None:
    """Frames at 15 fps from a source that says 30: the same detections as with the true rate."""
    ev = Bump(t0=2.0, landmarks=MOUTH_R, amp=2.0, rise=0.2, decay=0.3)
    frames = list(stream(face, 15.0, 3.5, [ev]))
    told_true = create_spotter(SpottingConfig(name=name), "s", 15.0)
    told_wrong = create_spotter(SpottingConfig(name=name), "s", 30.0)
    expected = run(told_true, iter(frames))
    assert len(expected) == 1
    assert _spans(run(told_wrong, iter(frames))) == _spans(expected)
    assert told_wrong.fps == 15.0 and told_wrong.nominal_fps == 30.0


def test_region_bump_when_stated_rate_is_wrong_then_its_lag_follows_the_frames(face: Face) -> None:
    cfg = SpottingConfig(name="region-bump")
    sp = create_spotter(cfg, "s", 26.4)
    assert sp.k == frames_for(cfg.bump.lag_s, 26.4) == 3
    for obs in stream(face, 30.0, 0.5):
        sp.update(obs)
    assert sp.fps == 30.0 and sp.k == frames_for(cfg.bump.lag_s, 30.0) == 4


def test_spotter_when_reset_then_measures_the_rate_again(face: Face) -> None:
    sp = create_spotter(SpottingConfig(), "s", 30.0)
    run(sp, stream(face, 15.0, 1.0))
    assert sp.fps == 15.0
    run(sp, stream(face, 30.0, 1.0, start_index=100))
    assert sp.fps == 30.0


def test_spotter_when_stream_ends_while_measuring_then_flush_feeds_what_it_held(face: Face) -> None:
    sp = create_spotter(SpottingConfig(), "s", 30.0)
    frames = list(stream(face, 15.0, 0.3))
    assert len(frames) < sp.rate_frames
    assert run(sp, iter(frames)) == []
    assert sp.fps == 15.0  # measured on the few frames it had
    sp.update(frames[0])  # after the flush a new stream starts: held while measuring, yet checked at once
    with pytest.raises(ValueError, match="frame order"):
        sp.update(frames[0])


@pytest.mark.data
def test_spotter_on_variable_rate_mov_sizes_for_its_face_frames() -> None:
    """The shared phone clip: container 26.4 fps, face part at 30 fps (33.3 ms apart)."""
    from engine.face import create_tracker
    from engine.face.config import FaceConfig
    from engine.sources import open_source
    from engine.sources.config import SourceConfig
    from evaluation.megc import run_spotting

    path = shared_path("videos", "face_noface.mov")
    src = open_source(SourceConfig(spec=str(path)))
    tracker = create_tracker(FaceConfig())
    try:
        nominal = float(src.fps)
        sp = create_spotter(SpottingConfig(), "mov", nominal)
        run = run_spotting(src.frames(), tracker.process, sp)
    finally:
        tracker.close()
        src.close()
    assert nominal == pytest.approx(26.4, abs=0.1)
    assert run.face_frames > 40
    assert sp.fps == pytest.approx(30.0, abs=0.05)
    assert sp.k == frames_for(SpottingConfig().bump.lag_s, 30.0)
