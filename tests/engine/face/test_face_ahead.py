"""`engine.face.ahead.track_ahead`: the face stage a few frames ahead of the spotter on a helper thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from engine.face.ahead import track_ahead
from engine.types import FaceObservation, Frame


def _frames(n: int) -> Iterator[Frame]:
    for i in range(n):
        yield Frame(i, i / 30.0, np.full((4, 4, 3), i % 255, np.uint8))


def _face(frame: Frame) -> FaceObservation | None:
    """A stand-in tracker: a face on even frames, none on odd ones, tracked on whatever thread calls it."""
    if frame.index % 2:
        return None
    lm = np.zeros((478, 2), np.float32)
    return FaceObservation(frame.index, frame.t, lm, np.zeros((8, 8), np.uint8), np.eye(2, 3), lm)


def test_track_ahead_when_consumed_then_every_frame_in_order_with_its_face_from_another_thread() -> None:
    threads: set[str] = set()

    def track(frame: Frame) -> FaceObservation | None:
        threads.add(threading.current_thread().name)
        time.sleep(0.001)
        return _face(frame)

    out = list(track_ahead(_frames(50), track, depth=4))
    assert [f.index for f, _, _ in out] == list(range(50))
    assert all((obs is None) == bool(f.index % 2) for f, obs, _ in out)
    assert all(obs is None or obs.index == f.index for f, obs, _ in out)
    assert all(s >= 0.001 for _, _, s in out)  # the time track took, measured on the helper
    assert threads == {"face-ahead"}


def test_track_ahead_when_track_raises_then_consumer_gets_it_after_the_frames_before() -> None:
    def track(frame: Frame) -> FaceObservation | None:
        if frame.index == 7:
            raise RuntimeError("landmarker died at frame 7")
        return _face(frame)

    seen = []
    with pytest.raises(RuntimeError, match="frame 7"):
        for frame, _, _ in track_ahead(_frames(20), track):
            seen.append(frame.index)
    assert seen == list(range(7))


def test_track_ahead_when_frames_raise_then_consumer_gets_it() -> None:
    def frames() -> Iterator[Frame]:
        yield from _frames(3)
        raise OSError("camera unplugged")

    with pytest.raises(OSError, match="unplugged"):
        list(track_ahead(frames(), _face))


def test_track_ahead_when_consumer_stops_then_helper_tracks_no_more_and_ends() -> None:
    calls = []

    def track(frame: Frame) -> FaceObservation | None:
        calls.append(frame.index)
        return _face(frame)

    gen = track_ahead(_frames(10_000), track, depth=3)
    for frame, _, _ in gen:
        if frame.index == 5:
            break
    gen.close()
    stopped_at = len(calls)
    assert stopped_at <= 5 + 1 + 3 + 1  # consumed, plus at most the queue and the one in hand
    time.sleep(0.3)
    assert len(calls) == stopped_at
    assert not any(t.name == "face-ahead" and t.is_alive() for t in threading.enumerate())


def test_track_ahead_when_depth_not_positive_then_rejected() -> None:
    with pytest.raises(ValueError, match="depth"):
        next(track_ahead(_frames(1), _face, depth=0))
