"""Sources on real media, frame folders, the demo stream, the reader thread's queue and shutdown, and
faults (issue 6): odd and broken frames, damaged files, and real HTTP/RTSP servers that die."""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.config import load_config
from engine.errors import SourceError, UserError
from engine.sources import FrameReader, open_source
from engine.sources.check import FrameCheck
from engine.sources.config import DemoConfig, SourceConfig
from engine.sources.demo import DemoSource
from engine.sources.folder import FolderSource
from engine.sources.video import NetworkSource, StreamClock, StreamLost, VideoFileSource, backoff_delay
from engine.synth import profile
from engine.types import Frame
from tests.conftest import ROOT, shared_path

DEBIAN_PYTHON = Path("/usr/bin/python3")  # Debian's python3-gi drives GStreamer's RTSP server
RTSP_SERVER = ROOT / "tests" / "rtsp_server.py"


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


# -- odd and broken frames (issue 6) --------------------------------------------------------------

_RNG = np.random.default_rng(0)
_BGR = _RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)

ODD_IMAGES = [  # label, image, expected BGR output (None = skipped), converted, invalid
    ("bgr passes untouched", _BGR, _BGR, 0, 0),
    ("grey H×W", _BGR[..., 0], np.repeat(_BGR[..., :1], 3, axis=2), 1, 0),
    ("grey H×W×1", _BGR[..., :1], np.repeat(_BGR[..., :1], 3, axis=2), 1, 0),
    ("bgra", np.dstack([_BGR, np.full((6, 8), 9, np.uint8)]), _BGR, 1, 0),
    ("16-bit", _BGR.astype(np.uint16) << 8, _BGR, 1, 0),
    ("missing", None, None, 0, 1),
    ("zero-size", np.zeros((0, 8, 3), np.uint8), None, 0, 1),
    ("two channels", _BGR[..., :2], None, 0, 1),
    ("4-D", _BGR[None], None, 0, 1),
]


@pytest.mark.parametrize(("label", "image", "expected", "converted", "invalid"), ODD_IMAGES)
def test_frame_check_when_image_odd_converts_or_skips_and_counts(label, image, expected, converted,
                                                                 invalid) -> None:
    check = FrameCheck("t")
    out = check(image)
    if expected is None:
        assert out is None, label
    else:
        assert out is not None and out.dtype == np.uint8 and out.shape == (6, 8, 3), label
        np.testing.assert_array_equal(out, expected)
    assert (check.converted, check.invalid, check.resolution_changes) == (converted, invalid, 0), label


def test_frame_check_when_size_changes_counts_each_change_not_skips() -> None:
    check = FrameCheck("t")
    sizes = [(6, 8), (6, 8), (12, 16), None, (12, 16), (6, 8)]
    outs = [check(None if s is None else np.zeros((*s, 3), np.uint8)) for s in sizes]
    assert [o is not None for o in outs] == [True, True, True, False, True, True]
    assert check.resolution_changes == 2 and check.invalid == 1 and check.shape == (6, 8)


def _flip_middle(src: Path, dst: Path, step: int = 97) -> int:
    """Copy ``src`` to ``dst`` with every ``step``-th byte of the middle fifth inverted."""
    data = bytearray(src.read_bytes())
    lo, hi = int(len(data) * 0.4), int(len(data) * 0.6)
    for i in range(lo, hi, step):
        data[i] ^= 0xFF
    dst.write_bytes(bytes(data))
    return len(range(lo, hi, step))


@pytest.mark.data
def test_video_file_when_bytes_flipped_in_middle_runs_to_end(tmp_path: Path) -> None:
    bad = tmp_path / "flipped.mp4"
    assert _flip_middle(shared_path("videos", "WolfgangLanger_Pexels.mp4"), bad) > 1000
    src = open_source(SourceConfig(spec=str(bad)))
    assert isinstance(src, VideoFileSource) and src.frame_count == 472
    frames = list(FrameReader(src, queue_size=8))
    t = np.array([f.t for f in frames])
    idx = np.array([f.index for f in frames])
    print(f"flipped file: {len(frames)} of 472 frames delivered, {src.frames_invalid} counted invalid")
    assert src.frames_invalid > 0, "the damage must be seen and counted"
    assert 0.9 * 472 < len(frames) < 472
    assert np.all(np.diff(t) > 0) and np.all(np.diff(idx) > 0)
    assert idx[-1] >= 468 and t[-1] == pytest.approx(471 * 1001 / 24000, abs=0.01)  # ran to the end
    assert all(f.image.shape == (360, 640, 3) for f in frames)


def test_folder_when_corrupt_images_in_middle_skips_and_counts(tmp_path: Path) -> None:
    _write_folder(tmp_path / "ep", ["img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg", "img5.jpg", "img6.jpg"])
    (tmp_path / "ep" / "img3.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    (tmp_path / "ep" / "img5.jpg").write_bytes(b"")
    src = FolderSource(tmp_path / "ep", fps=100)
    frames = list(FrameReader(src, queue_size=2))
    assert [f.index for f in frames] == [0, 1, 3, 5]  # indices keep matching the file order
    assert [f.t for f in frames] == [0.0, 0.01, 0.03, 0.05]
    assert [round(float(f.image.mean()) / 10) for f in frames] == [1, 2, 4, 6]
    assert src.frames_invalid == 2


def test_folder_when_resolution_changes_counts_and_keeps_frames(tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    for i, (h, w) in enumerate([(24, 32), (24, 32), (48, 64), (48, 64), (24, 32)], start=1):
        cv2.imwrite(str(tmp_path / "f" / f"img{i}.png"), np.full((h, w), 50, np.uint8))
    reader = FrameReader(FolderSource(tmp_path / "f", fps=25))
    shapes = [f.image.shape for f in reader]
    assert shapes == [(24, 32, 3), (24, 32, 3), (48, 64, 3), (48, 64, 3), (24, 32, 3)]
    assert reader.resolution_changes == 2 and reader.frames_invalid == 0
    assert reader.stats()["resolution_changes"] == 2


def test_source_config_when_backoff_cap_below_interval_raises_one_line() -> None:
    with pytest.raises(UserError, match=r"source\.reconnect_max_interval_s.*>= reconnect_interval_s") as info:
        load_config(None, {"source.reconnect_interval_s": "2", "source.reconnect_max_interval_s": "1"})
    assert "\n" not in str(info.value)
    cfg = load_config(None, {"source.reconnect_attempts": "0", "source.read_timeout_s": "2.5"}).source
    assert (cfg.reconnect_attempts, cfg.read_timeout_s) == (0, 2.5)


@pytest.mark.parametrize(("interval", "cap", "expected"), [
    (0.5, 10.0, [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]),
    (0.2, 1.0, [0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]),
    (1.0, 1.0, [1.0] * 7),
])
def test_backoff_delay_when_attempts_grow_doubles_up_to_cap(interval, cap, expected) -> None:
    assert [backoff_delay(k, interval, cap) for k in range(1, 8)] == pytest.approx(expected)
    assert backoff_delay(10_000, interval, cap) == cap


# -- network streams that drop: a real HTTP MJPEG server and a real RTSP server -----------------


def _jpeg_parts(video: Path, n: int, size: tuple[int, int] | None = None) -> list[bytes]:
    """The first ``n`` frames of a real video as JPEG bytes, resized to ``size`` (w, h) if given."""
    cap = cv2.VideoCapture(str(video))
    parts = []
    while len(parts) < n:
        ok, image = cap.read()
        if not ok:
            break
        if size is not None:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        parts.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    cap.release()
    return parts


class MjpegServer:
    """A camera-like HTTP server: ``multipart/x-mixed-replace`` JPEG parts in a loop at ``fps``.

    `stop` drops the listening socket and every open connection mid-stream (a camera crash);
    `start` serves again on the same port, possibly other ``parts``.
    """

    def __init__(self, parts: list[bytes], fps: float = 30.0) -> None:
        self.parts = parts
        self.fps = fps
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._down = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/face.mjpg"

    def start(self) -> float:
        """Listen; returns the monotonic time from which it serves."""
        owner = self
        down = self._down = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while not down.is_set():
                        part = owner.parts[i % len(owner.parts)]
                        head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(part)}\r\n\r\n"
                        self.wfile.write(head.encode() + part + b"\r\n")
                        i += 1
                        down.wait(1.0 / owner.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._server = server
        return time.monotonic()

    def stop(self) -> None:
        self._down.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class Outage:
    """What a reader saw across one server outage."""

    frames: list[tuple[Frame, float]]  # (frame, monotonic time the consumer got it)
    back_at: float  # when the restarted server was ready
    events: list[tuple[str, str]]

    @property
    def gap(self) -> int:
        """Position of the first frame after the outage (largest step in ``t``)."""
        t = np.array([f.t for f, _ in self.frames])
        return int(np.argmax(np.diff(t))) + 1

    @property
    def reconnect_s(self) -> float:
        """Server back → first frame of the new connection in the consumer's hands."""
        return self.frames[self.gap][1] - self.back_at


def _read_across_outage(reader: FrameReader, source: object, before: int, after: int,
                        outage: Callable[[], float], timeout_s: float = 40.0) -> Outage:
    """Read ``before`` frames, run ``outage`` (returns when the server is back) on a thread, then read
    until ``after`` frames arrived after the reconnect."""
    got: list[tuple[Frame, float]] = []
    back: list[float] = []
    started = threading.Event()

    def control() -> None:
        started.wait()
        back.append(outage())

    threading.Thread(target=control, daemon=True).start()
    reader.start()
    deadline = time.monotonic() + timeout_s
    seen_after = 0
    while time.monotonic() < deadline and seen_after < after:
        frame = reader.get(timeout=0.5)
        if frame is None:
            continue
        got.append((frame, time.monotonic()))
        if len(got) == before:
            started.set()
        if getattr(source, "reconnects", 0) >= 1:
            seen_after += 1
    reader.stop()
    assert back, "the outage did not finish"
    assert seen_after >= after, f"only {seen_after} frames after the outage"
    return Outage(got, back[0], [])


def _assert_resumed(out: Outage, source: NetworkSource, reason: str, label: str) -> None:
    t = np.array([f.t for f, _ in out.frames])
    idx = np.array([f.index for f, _ in out.frames])
    wall = np.array([w for _, w in out.frames])
    k = out.gap
    print(f"{label}: reconnect time (server back -> first frame) {out.reconnect_s:.2f} s, "
          f"outage {source.last_outage_s:.2f} s, t gap {t[k] - t[k - 1]:.2f} s")
    assert source.reconnects == 1 and source.outages == 1
    assert len(out.events) == 1 and out.events[0][0] == "source"
    assert reason in out.events[0][1] and "reconnecting" in out.events[0][1]
    assert np.all(np.diff(t) > 0) and np.all(np.diff(idx) > 0)  # t and indices never go back
    assert t[k] - t[k - 1] == pytest.approx(wall[k] - wall[k - 1], abs=0.15)  # t runs on over the gap
    assert t[k] - t[k - 1] > 0.5
    assert 0 <= out.reconnect_s < source.reconnect_max_interval_s + 4.0


def test_network_source_when_http_mjpeg_server_restarts_resumes_with_monotonic_t() -> None:
    video = shared_path("videos", "single_face.mp4")
    parts = _jpeg_parts(video, 60)
    parts[30] = b"\xff\xd8 a broken part: no JPEG data here"  # a decode error mid-stream
    server = MjpegServer(parts)
    server.start()
    events: list[tuple[str, str]] = []
    cfg = SourceConfig(spec=server.url, open_timeout_s=3, read_timeout_s=1.5, reconnect_interval_s=0.2,
                       reconnect_max_interval_s=1.0)
    src = open_source(cfg, on_event=lambda where, message: events.append((where, message)))
    assert isinstance(src, NetworkSource) and src.live and src.wall_clock and src.fps is None

    def outage() -> float:
        server.stop()
        time.sleep(1.0)
        server.parts = _jpeg_parts(video, 30, size=(320, 180))  # the camera comes back at another size
        return server.start()

    try:
        out = _read_across_outage(FrameReader(src, queue_size=64), src, 45, 30, outage)
    finally:
        server.stop()
    out.events = events
    _assert_resumed(out, src, "end of stream", "http mjpeg")
    shapes = [f.image.shape for f, _ in out.frames]
    assert set(shapes[: out.gap]) == {(360, 640, 3)} and set(shapes[out.gap:]) == {(180, 320, 3)}
    assert src.resolution_changes == 1 and src.frames_invalid >= 1  # the broken part, counted
    t = np.array([f.t for f, _ in out.frames[: out.gap]])
    assert 1 / np.median(np.diff(t)) == pytest.approx(30.0, rel=0.2)  # wall clock, not FFmpeg's 25 fps


def test_network_source_when_server_never_returns_raises_stream_lost_after_attempts() -> None:
    server = MjpegServer(_jpeg_parts(shared_path("videos", "single_face.mp4"), 10))
    server.start()
    events: list[tuple[str, str]] = []
    src = NetworkSource(server.url, open_timeout_s=2, read_timeout_s=1.0, reconnect_interval_s=0.1,
                        reconnect_max_interval_s=0.2, reconnect_attempts=3,
                        on_event=lambda w, m: events.append((w, m)))
    reader = FrameReader(src)
    got = []
    started = time.monotonic()
    with pytest.raises(StreamLost, match=r"not back after 3 reconnect attempts.*reconnect_attempts"):
        for frame in reader:
            got.append(frame)
            if len(got) == 10:
                server.stop()
    assert len(got) >= 10 and src.reconnects == 0 and src.outages == 1 and len(events) == 1
    assert time.monotonic() - started < 10


def test_network_source_when_stopped_during_outage_stops_promptly() -> None:
    server = MjpegServer(_jpeg_parts(shared_path("videos", "single_face.mp4"), 10))
    server.start()
    lost = threading.Event()
    src = NetworkSource(server.url, open_timeout_s=2, read_timeout_s=1.0, reconnect_interval_s=5.0,
                        reconnect_max_interval_s=5.0, on_event=lambda w, m: lost.set())
    reader = FrameReader(src).start()
    assert reader.get(timeout=5) is not None
    server.stop()
    assert lost.wait(5), "the outage was not reported"
    started = time.monotonic()
    assert reader.stop(timeout=2.0) is True  # waiting out the 5 s backoff would fail this
    assert time.monotonic() - started < 1.0 and src.reconnects == 0


def _rtsp_tooling() -> str:
    """Why the RTSP tests cannot run here, or '' when they can (CI installs the Debian packages)."""
    if not DEBIAN_PYTHON.is_file():
        return f"{DEBIAN_PYTHON} is absent (the GStreamer RTSP server runs under Debian's python3-gi)"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")
    done = subprocess.run([str(DEBIAN_PYTHON), "-c", probe], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer RTSP server bindings missing ({last}); see tests/rtsp_server.py for the packages"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """tests/rtsp_server.py (GStreamer rtsp-server) as a process that can be killed, paused, restarted."""

    def __init__(self, frames: Path, port: int, fps: int = 30) -> None:
        self.frames, self.port, self.fps = frames, port, fps
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/face"

    def start(self, timeout_s: float = 20.0) -> float:
        """Start and wait for ``ready``; returns the monotonic time it was ready."""
        cmd = [str(DEBIAN_PYTHON), str(RTSP_SERVER), str(self.port), str(self.frames), "--fps", str(self.fps)]
        proc = self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        line = proc.stdout.readline().strip() if ready else ""
        if line != "ready":
            proc.kill()
            err = proc.stderr.read().strip()
            if proc.wait() == 3:
                pytest.skip(err)
            raise RuntimeError(f"RTSP server did not start: {line!r} {err}")
        return time.monotonic()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def rtsp_frames(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real face video as numbered JPEGs for the RTSP server to loop (skips without the tooling)."""
    why = _rtsp_tooling()
    if why:
        pytest.skip(why)
    video = shared_path("videos", "WolfgangLanger_Pexels.mp4")
    folder = tmp_path_factory.mktemp("rtsp_frames")
    for i, part in enumerate(_jpeg_parts(video, 10_000)):
        (folder / f"{i:05d}.jpg").write_bytes(part)
    return folder


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("fault", ["killed", "stalled"])
def test_network_source_when_rtsp_server_fails_reconnects_once(rtsp_frames: Path, fault: str) -> None:
    """killed: the server process dies (end of stream). stalled: it freezes without closing anything
    (a camera resetting without end of stream): only the read timeout can notice."""
    server = RtspServer(rtsp_frames, _free_port())
    server.start()
    events: list[tuple[str, str]] = []
    cfg = SourceConfig(spec=server.url, open_timeout_s=5, read_timeout_s=1.5, reconnect_interval_s=0.25,
                       reconnect_max_interval_s=1.0)
    src = open_source(cfg, on_event=lambda where, message: events.append((where, message)))
    assert isinstance(src, NetworkSource)

    def outage() -> float:
        if fault == "killed":
            server.kill()
            time.sleep(1.0)
            return server.start()
        server.pause()
        time.sleep(3.0)
        server.resume()
        return time.monotonic()

    try:
        out = _read_across_outage(FrameReader(src, queue_size=64), src, 45, 45, outage)
    finally:
        server.kill()
    out.events = events
    _assert_resumed(out, src, "end of stream" if fault == "killed" else "no frame for 1.5 s", f"rtsp {fault}")
    assert all(f.image.shape == (360, 640, 3) for f, _ in out.frames)
    if fault == "killed":  # the new server starts its loop again: the first frame is the video's first
        first = cv2.imread(str(rtsp_frames / "00000.jpg")).astype(np.int16)
        diffs = [np.abs(f.image.astype(np.int16) - first).mean() for f, _ in out.frames[out.gap: out.gap + 3]]
        assert min(diffs) < 8.0, diffs


def _journal(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


@pytest.mark.slow
@pytest.mark.data
def test_cli_when_rtsp_server_restarts_stream_resumes_and_candidates_keep_order(
    rtsp_frames: Path, face_model: Path, tmp_path: Path
) -> None:
    """The real engine on a real RTSP stream of a real face; the server dies and comes back mid-run."""
    server = RtspServer(rtsp_frames, _free_port())
    server.start()
    journal = tmp_path / "events.jsonl"
    n_frames = 450  # 15 s of stream; the fast DIS flow keeps the worker's drain short on a busy machine
    cmd = [
        sys.executable, str(ROOT / "run_stream.py"), "--source", server.url, "--journal", str(journal),
        "--pub", f"tcp://127.0.0.1:{_free_port()}", "--face-model", str(face_model),
        "--max-frames", str(n_frames), "--log-level", "WARNING",
        "--set", "source.read_timeout_s=2", "--set", "source.reconnect_interval_s=0.25",
        "--set", "source.reconnect_max_interval_s=1", "--set", "publish.status_interval_s=0.5",
        "--set", "flow.name=dis",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.poll() is None:
            if any(e["type"] == "status" and e.get("frames", 0) >= 150 for e in _journal(journal)):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        server.kill()
        time.sleep(1.0)
        server.start()
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.kill()
    assert proc.returncode == 0, err[-3000:]
    events = _journal(journal)
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + len(events)))
    errors = [e for e in events if e["type"] == "error"]
    assert [e["where"] for e in errors] == ["source"] and "lost" in errors[0]["message"], errors
    statuses = [e for e in events if e["type"] == "status"]
    final = statuses[-1]
    assert events[-1] is final and final["reconnects"] == 1
    assert [s["reconnects"] for s in statuses] == sorted(s["reconnects"] for s in statuses)
    assert final["frames"] + final["frames_dropped"] == n_frames
    candidates = [e for e in events if e["type"] == "candidate"]
    ends = [e["candidate_id"] for e in events if e["type"] in ("explanation", "dropped")]
    assert sorted(ends) == sorted(c["candidate_id"] for c in candidates)  # each ends exactly once
    points = []
    for c in candidates:
        trio = [c["onset"], c["apex"], c["offset"]]
        assert [p["frame"] for p in trio] == sorted(p["frame"] for p in trio)
        assert [p["t"] for p in trio] == sorted(p["t"] for p in trio)
        points += trio
    onsets = [c["onset"]["t"] for c in candidates]
    assert onsets == sorted(onsets)  # published in stream order
    by_frame = sorted(points, key=lambda p: p["frame"])
    assert [p["t"] for p in by_frame] == sorted(p["t"] for p in by_frame)  # t never goes back
    print(f"cli over rtsp: {len(candidates)} candidates, {final['frames']} frames, "
          f"{final['frames_dropped']} dropped, reconnects {final['reconnects']}")
