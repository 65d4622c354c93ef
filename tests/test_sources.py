"""Sources on real media, frame folders, the demo stream, and the reader thread's queue and shutdown."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import SourceError, UserError
from engine.sources import FrameReader, open_source
from engine.sources.config import DemoConfig, SourceConfig
from engine.sources.demo import DemoSource
from engine.sources.folder import FolderSource
from engine.sources.video import StreamClock, VideoFileSource
from engine.types import Frame
from spotting.inject import profile
from tests.conftest import shared_path


def _open(spec: str, **kw: object) -> object:
    return open_source(SourceConfig(spec=spec, **kw), DemoConfig(duration_s=4, events=1))


# -- video files (real cv2 on the real videos) --------------------------------------------------

VIDEOS = [  # name, frames, (w, h), nominal fps, frame interval of the PTS in seconds (None: variable)
    ("single_face.mp4", 72, (640, 360), 30.0, 1 / 30),
    ("WolfgangLanger_Pexels.mp4", 472, (640, 360), 23.976, 1001 / 24000),
    ("face_noface.mov", 169, (960, 540), 26.398, None),
    ("noface_face.mov", 169, (960, 540), 26.495, None),
    ("no_face.mp4", 95, (960, 540), 23.672, 1 / 24),  # nominal rate is an average; the PTS tick at 24
]


@pytest.mark.data
@pytest.mark.parametrize(("name", "count", "size", "fps", "interval"), VIDEOS)
def test_video_file_when_read_gives_every_frame_with_monotonic_t(name, count, size, fps, interval) -> None:
    src = open_source(SourceConfig(spec=str(shared_path("videos", name))))
    assert isinstance(src, VideoFileSource) and not src.live
    frames = list(src.frames())
    assert len(frames) == count
    assert [f.index for f in frames] == list(range(count))
    assert all(f.image.shape == (size[1], size[0], 3) and f.image.dtype == np.uint8 for f in frames)
    t = np.array([f.t for f in frames])
    assert t[0] == 0.0 and np.all(np.diff(t) > 0)
    assert src.fps == pytest.approx(fps, rel=1e-3)
    if interval is not None:  # constant-rate streams: t = index × the PTS interval
        np.testing.assert_allclose(t, np.arange(count) * interval, atol=2e-3)
    else:  # variable-rate .mov: t follows the real PTS, spanning the clip's 6.4 s
        assert 6.0 < t[-1] < 6.6 and np.diff(t).min() < 0.02 < 0.04 < np.diff(t).max()


@pytest.mark.data
def test_video_file_when_fps_given_overrides_container_timing() -> None:
    src = open_source(SourceConfig(spec=str(shared_path("videos", "single_face.mp4")), fps=10))
    t = [f.t for f in src.frames()]
    assert src.fps == 10.0
    np.testing.assert_allclose(t, np.arange(72) / 10.0)


def test_stream_clock_when_timestamps_stall_falls_back_without_going_back() -> None:
    clock = StreamClock(fps=25.0, live=False)
    ts = [clock(i, ms) for i, ms in enumerate([0.0, 40.0, 80.0, 80.0, 0.0, float("nan")])]
    assert ts[:3] == [0.0, 0.04, 0.08]
    np.testing.assert_allclose(ts[3:], [0.12, 0.16, 0.20])


# -- frame folders ------------------------------------------------------------------------------


def _write_folder(folder: Path, names: list[str]) -> None:
    folder.mkdir()
    for name in names:
        number = int("".join(c for c in name if c.isdigit()))
        cv2.imwrite(str(folder / name), np.full((24, 32, 3), number * 10, np.uint8))


def test_folder_when_names_numbered_sorts_numerically(tmp_path: Path) -> None:
    _write_folder(tmp_path / "ep", ["img10.jpg", "img2.jpg", "img1.jpg", "img3.png"])
    (tmp_path / "ep" / "notes.txt").write_text("not a frame")
    src = open_source(SourceConfig(spec=str(tmp_path / "ep"), fps=200))
    assert isinstance(src, FolderSource) and not src.live and src.fps == 200
    frames = list(src.frames())
    assert [p.name for p in src.paths] == ["img1.jpg", "img2.jpg", "img3.png", "img10.jpg"]
    assert src.frame_numbers == [1, 2, 3, 10]
    assert [round(float(f.image.mean()) / 10) for f in frames] == [1, 2, 3, 10]
    assert [f.t for f in frames] == [0.0, 0.005, 0.01, 0.015]


def test_folder_when_grey_and_bgra_images_gives_bgr(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    cv2.imwrite(str(tmp_path / "f" / "img1.png"), np.full((8, 8), 77, np.uint8))
    cv2.imwrite(str(tmp_path / "f" / "img2.png"), np.full((8, 8, 4), 99, np.uint8))
    frames = list(FolderSource(tmp_path / "f", fps=25).frames())
    assert [f.image.shape for f in frames] == [(8, 8, 3), (8, 8, 3)]
    assert frames[0].image[0, 0].tolist() == [77, 77, 77] and frames[1].image[0, 0].tolist() == [99, 99, 99]


def test_folder_when_fps_missing_raises_user_error(tmp_path: Path) -> None:
    _write_folder(tmp_path / "ep", ["img1.jpg"])
    with pytest.raises(UserError, match=r"frame folder .*ep needs --fps") as info:
        _open(str(tmp_path / "ep"))
    assert "\n" not in str(info.value)


# -- bad inputs -----------------------------------------------------------------------------------


def _bad_specs(tmp_path: Path) -> list[tuple[str, str]]:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello, I am not a video\n" * 50)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "img1.jpg").write_text("not a jpeg")
    return [
        (str(tmp_path / "missing.mp4"), "does not exist"),
        (str(tmp_path / "empty"), "holds no jpg/png/bmp images"),
        (str(tmp_path / "notes.txt"), "not a video OpenCV can decode"),
        (str(tmp_path / "broken"), "not an image OpenCV can decode"),
        ("ftp://example.invalid/x.mp4", "unsupported URL scheme"),
        ("97", "camera 97 did not open"),
        ("rtsp://127.0.0.1:9/none", "did not open"),
    ]


def test_open_source_when_input_bad_raises_one_line_source_error(tmp_path: Path) -> None:
    for spec, message in _bad_specs(tmp_path):
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            open_source(SourceConfig(spec=spec, fps=25, open_timeout_s=3), DemoConfig())
        text = str(info.value)
        assert message in text and "\n" not in text, (spec, text)
        assert time.monotonic() - started < 10, spec


# -- the demo stream ----------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_when_same_seed_is_identical_and_other_seed_differs() -> None:
    cfg = DemoConfig(duration_s=10, events=3, seed=5)
    a, b = DemoSource.from_config(cfg), DemoSource.from_config(cfg)
    c = DemoSource.from_config(cfg.model_copy(update={"seed": 6}))
    assert a.truth == b.truth and a.blinks == b.blinks
    assert a.truth != c.truth
    assert sum(1 for _ in a.frames()) == 300
    streamed = {f.index: f.image for f in b.frames() if f.index < 20}
    assert all(np.array_equal(a.render(i), img) for i, img in streamed.items())
    probes = [e.apex for e in a.events] + [x.apex for x in a.blinks] + [0, 150, 299]
    assert all(np.array_equal(a.render(i), b.render(i)) for i in probes)
    assert not np.array_equal(a.render(100), c.render(100))


def test_demo_when_rendered_moves_only_inside_truth_intervals() -> None:
    src = DemoSource(duration_s=14, events=4, seed=1, noise=0, head_motion_px=0, blinks_per_min=0)
    assert len(src.truth) == 4
    moving = set()
    for ev, tr in zip(src.events, src.truth, strict=True):
        assert 0 < tr.onset.frame < tr.apex.frame < tr.offset.frame < src.n_frames
        assert tr.onset.t == pytest.approx(tr.onset.frame / 30.0) and tr.kind == "micro"
        assert 0.2 - 1 / 30 <= tr.duration <= 0.5 + 1 / 30
        moving.update(range(ev.onset + 1, ev.offset))
        apex = src.render(ev.apex).astype(np.int16)
        diff = np.abs(apex - src.base).max(axis=2)
        assert diff.max() >= 10, "the apex frame must differ visibly from the neutral face"
        ys, xs = np.nonzero(diff > 3)
        lm = src.landmarks
        assert xs.min() >= lm[:, 0].min() - 30 and xs.max() <= lm[:, 0].max() + 30  # on the face
        assert ys.min() >= lm[:, 1].min() - 30 and ys.max() <= lm[:, 1].max() + 30
    for a, b in itertools.pairwise(src.events):
        assert a.offset < b.onset  # never overlap
    for index in range(0, src.n_frames, 7):
        if index not in moving:
            assert np.array_equal(src.render(index), src.base), index


def test_demo_when_noisy_has_configured_noise_and_sway() -> None:
    src = DemoSource(duration_s=4, events=0, seed=2, noise=2.0, head_motion_px=1.5, blinks_per_min=0)
    still = DemoSource(duration_s=4, events=0, seed=2, noise=2.0, head_motion_px=0, blinks_per_min=0)
    diff = still.render(10).astype(np.float32) - still.base
    assert float(diff.std()) == pytest.approx(2.0, rel=0.15)
    poses = np.array([src.head_pose(i)[:2] for i in range(120)])
    assert 0.1 < np.abs(poses).max() <= 1.5 + 1e-9
    assert np.abs(np.diff(poses, axis=0)).max() < 0.2  # slow: under 0.2 px per frame


def test_demo_when_blink_scheduled_stays_clear_of_events() -> None:
    src = DemoSource(duration_s=60, events=10, seed=4, blinks_per_min=20)
    assert len(src.blinks) >= 5
    for b in src.blinks:
        assert 0.15 - 1 / 30 <= (b.offset - b.onset) / 30 <= 0.3 + 1 / 30
        assert all(b.offset < e.onset or b.onset > e.offset for e in src.events)
        assert profile(b.apex, b) == 1.0


def test_demo_when_streamed_is_faster_than_real_time() -> None:
    src = DemoSource(duration_s=8, events=2, seed=0)
    started = time.perf_counter()
    n = sum(1 for _ in src.frames())
    rate = n / (time.perf_counter() - started)
    assert n == 240 and rate > 30.0, f"demo renders {rate:.0f} fps"


def test_open_source_when_demo_prints_and_writes_truth(tmp_path: Path, capsys) -> None:
    out = tmp_path / "truth.csv"
    src = open_source(SourceConfig(spec="demo", fps=25), DemoConfig(duration_s=10, events=3, print_truth=True,
                                                                   truth_csv=str(out)))
    assert isinstance(src, DemoSource) and src.fps == 25.0 and src.n_frames == 250
    printed = capsys.readouterr().out
    assert "3 events" in printed
    rows = [line.split(",") for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(len(r) == 11 for r in rows)
    for row, tr in zip(rows, src.truth, strict=True):
        assert [int(row[2]), int(row[3]), int(row[4])] == [tr.onset.frame, tr.apex.frame, tr.offset.frame]
        assert f"{tr.onset.t:6.2f}s" in printed


# -- the reader thread ----------------------------------------------------------------------------


class FakeSource:
    """A scriptable source: ``n`` frames (None = endless), optional per-frame delay, an error after
    ``fail_after`` frames, or a block on an Event that ``close`` may (or may not) release."""

    def __init__(self, live: bool, n: int | None = 100, delay: float = 0.0, fail_after: int | None = None,
                 block: bool = False, close_unblocks: bool = True) -> None:
        self.name = "fake"
        self.live = live
        self.fps: float | None = 30.0
        self.n, self.delay, self.fail_after, self.block = n, delay, fail_after, block
        self.close_unblocks = close_unblocks
        self.released = threading.Event()
        self.produced = 0

    def frames(self) -> Iterator[Frame]:
        image = np.zeros((4, 4, 3), np.uint8)
        i = 0
        while self.n is None or i < self.n:
            if self.block:
                self.released.wait()
                return
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError(f"decoder died at frame {i}")
            if self.delay:
                time.sleep(self.delay)
            self.produced += 1
            yield Frame(i, i / 30.0, image)
            i += 1

    def close(self) -> None:
        if self.close_unblocks:
            self.released.set()


def test_reader_when_live_and_consumer_slow_drops_oldest_and_counts() -> None:
    src = FakeSource(live=True, n=200)
    reader = FrameReader(src, queue_size=4, policy="auto")
    assert reader.policy == "drop_oldest"
    got = []
    for frame in reader:
        got.append(frame.index)
        time.sleep(0.002)
    assert reader.frames_read == 200 and reader.dropped > 0
    assert len(got) + reader.dropped == 200
    assert got == sorted(got) and got[-1] == 199  # the newest frames survive, end marker never lost


@pytest.mark.data
def test_reader_when_file_and_consumer_slow_never_drops() -> None:
    src = open_source(SourceConfig(spec=str(shared_path("videos", "single_face.mp4"))))
    reader = FrameReader(src, queue_size=2, policy="auto")
    assert reader.policy == "block"
    got = []
    for frame in reader:
        got.append(frame.index)
        time.sleep(0.003)
    assert got == list(range(72)) and reader.dropped == 0 and reader.frames_read == 72


def test_reader_when_demo_and_max_frames_stops_after_n() -> None:
    reader = FrameReader(DemoSource(duration_s=4, events=0), queue_size=3, max_frames=7)
    assert [f.index for f in reader] == list(range(7))
    assert reader.frames_read == 7 and reader.dropped == 0


def test_reader_when_realtime_paces_at_source_fps() -> None:
    reader = FrameReader(FakeSource(live=False, n=20), queue_size=64, realtime=True)
    started = time.monotonic()
    n = sum(1 for _ in reader)
    elapsed = time.monotonic() - started
    assert n == 20 and 19 / 30.0 - 0.02 < elapsed < 1.5
    assert reader.fps_in == pytest.approx(30.0, rel=0.25)


def test_reader_when_producer_blocked_on_full_queue_stop_returns_promptly() -> None:
    src = FakeSource(live=False, n=None)
    reader = FrameReader(src, queue_size=2).start()
    deadline = time.monotonic() + 2
    while reader.frames_read < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert reader.frames_read == 2  # blocked: files never drop
    started = time.monotonic()
    assert reader.stop(timeout=2.0) is True
    assert time.monotonic() - started < 1.0
    assert reader.dropped == 0


@pytest.mark.parametrize("close_unblocks", [True, False])
def test_reader_when_consumer_blocked_stop_returns_promptly(close_unblocks: bool) -> None:
    src = FakeSource(live=True, block=True, close_unblocks=close_unblocks)
    reader = FrameReader(src, queue_size=4)
    consumer_done = threading.Event()
    got: list[Frame] = []

    def consume() -> None:
        got.extend(reader)
        consumer_done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    time.sleep(0.2)
    assert not consumer_done.is_set()
    started = time.monotonic()
    ended = reader.stop(timeout=0.5)
    assert consumer_done.wait(1.0), "a blocked consumer must return after stop()"
    assert time.monotonic() - started < 1.5
    assert ended is close_unblocks  # a source stuck in a native read is left to its daemon thread
    assert got == []
    src.released.set()


def test_reader_when_source_fails_reraises_first_error_after_frames() -> None:
    reader = FrameReader(FakeSource(live=False, n=10, fail_after=3), queue_size=8)
    got = []
    with pytest.raises(RuntimeError, match="decoder died at frame 3"):
        for frame in reader:
            got.append(frame.index)
    assert got == [0, 1, 2]
    assert isinstance(reader.error, RuntimeError)


def test_reader_when_policy_unknown_raises() -> None:
    with pytest.raises(ValueError, match="policy"):
        FrameReader(FakeSource(live=False), policy="drop_newest")  # type: ignore[arg-type]
