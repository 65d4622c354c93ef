"""Issue 24, the first hour of a new user: each test runs the real command a user would type and
checks what it says (stderr lines, exit code), against what used to mislead or stay silent."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.helpers import ROOT, env, free_port, read_journal, run_cli


def test_run_stream_when_camera_does_not_open_then_only_our_line() -> None:
    proc = run_cli("--source", "7", timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        "run_stream.py: error: camera 7 did not open; check that it is connected and free, "
        "or pass another index"
    ], proc.stderr


def test_run_stream_when_stream_refused_then_real_cause_and_time() -> None:
    port = free_port()  # nothing listens there: the connection is refused at once
    started = time.monotonic()
    proc = run_cli("--source", f"rtsp://127.0.0.1:{port}/face", timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "within 10 s" not in lines[0] and "refused" in lines[0].lower(), lines[0]
    assert time.monotonic() - started < 10


def test_run_stream_when_bump_threshold_below_release_then_names_keys_not_dict() -> None:
    proc = run_cli("--set", "spotting.bump.threshold_k=2", timeout=60)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "spotting.bump.threshold_k" in line and "{" not in line, line


def test_megc_when_micro_detects_macro_truth_then_table_says_why_rows_differ(tmp_path: Path) -> None:
    from tests.evaluation.test_evaluate import CASME2_ROWS

    sheet = tmp_path / "CAS(ME)^2code_final(Updated).csv"
    with open(sheet, "w", newline="") as fh:
        csv.writer(fh).writerows(CASME2_ROWS)
    det = tmp_path / "det.csv"  # a micro detection of the macro truth 60-75, and the micro truth 20-30
    det.write_text("video,onset,offset,kind\ns15/15_0101x,60,74,micro\ns15/15_0101x,20,30,micro\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation.megc",
            "--dataset",
            "casme2_long",
            "--sheet",
            str(sheet),
            "--detections",
            str(det),
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1:4] for line in proc.stdout.splitlines() if line.strip()}
    assert rows["overall"][0] == "2" and rows["micro"][0] == "1" and rows["macro"][0] == "0"
    assert "note: 1 kind mismatch" in proc.stdout, proc.stdout


# a short demo run: 8 s, 2 events, the fast DIS flow, on a free port
DEMO8 = (
    "--source",
    "demo",
    "--set",
    "demo.duration_s=8",
    "--set",
    "demo.events=2",
    "--set",
    "demo.seed=5",
    "--set",
    "flow.name=dis",
    "--pub",
    f"tcp://127.0.0.1:{free_port()}",
)


def _summary(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("run_stream.py: summary:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_run_stream_when_no_face_in_any_frame_then_summary_says_so_and_exit_3(tmp_path: Path) -> None:
    for i in range(1, 13):  # a grey frame folder: nothing a face detector could find
        cv2.imwrite(str(tmp_path / f"img{i}.jpg"), np.full((240, 320, 3), 128, np.uint8))
    proc = run_cli(
        "--source",
        str(tmp_path),
        "--fps",
        "30",
        "--pub",
        f"tcp://127.0.0.1:{free_port()}",
        "--log-level",
        "WARNING",
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    line = _summary(proc.stderr)
    assert "12 frames, a face found in 0" in line and "No face was found" in line, line


def test_run_stream_when_openai_server_absent_then_one_line_at_start() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = run_cli("--source", "demo", "--explainer", "openai", "--endpoint", url, timeout=60)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "does not answer" in lines[0] and url in lines[0], proc.stderr


class _FailingChat(BaseHTTPRequestHandler):
    """An OpenAI-compatible server that lists a model and answers every chat request with HTTP 400."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_error(400, "no such model")


def test_run_stream_when_every_explanation_fails_then_summary_and_exit_3(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingChat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        proc = run_cli(
            *DEMO8, "--explainer", "openai", "--endpoint", url, "--log-level", "ERROR", timeout=300
        )
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 3, proc.stderr[-3000:]
    line = _summary(proc.stderr)
    assert " 0 explained" in line and "Not one candidate was explained" in line, line


def test_run_stream_when_frame_folder_then_events_name_the_image_of_each_point(tmp_path: Path) -> None:
    from engine.sources.config import DemoConfig
    from engine.sources.demo import DemoSource

    folder = tmp_path / "EP01"  # CASME II style: the first image is img101.jpg, stream frame 0
    folder.mkdir()
    for frame in DemoSource.from_config(DemoConfig(duration_s=8, events=2, seed=5)).frames():
        cv2.imwrite(str(folder / f"img{frame.index + 101}.jpg"), frame.image)
    journal = tmp_path / "events.jsonl"
    proc = run_cli(
        "--source",
        str(folder),
        "--fps",
        "30",
        "--journal",
        str(journal),
        "--set",
        "flow.name=dis",
        "--pub",
        f"tcp://127.0.0.1:{free_port()}",
        "--log-level",
        "WARNING",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    candidates = [e for e in read_journal(journal) if e["type"] == "candidate"]
    assert candidates, proc.stderr[-3000:]
    for c in candidates:
        for point in ("onset", "apex", "offset"):
            assert c[point]["image"] == f"img{c[point]['frame'] + 101}.jpg", c


@pytest.mark.slow
def test_plot_when_sheet_holds_other_videos_then_only_this_one_drawn_and_every_detection_explained(
    tmp_path: Path, face_model: Path
) -> None:
    from engine.sources.demo import DemoSource
    from engine.synth import truth_rows

    src = DemoSource(duration_s=7.0, events=2, seed=3, size=320, blinks_per_min=0, min_gap_s=1.0)
    folder = tmp_path / "s15" / "15_0101x"
    folder.mkdir(parents=True)
    for f in src.frames():
        cv2.imwrite(str(folder / f"img{f.index:04d}.jpg"), f.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    mine = truth_rows(src.truth, clip="x", video="s15/15_0101x")
    other = [
        [
            "2",
            "y_1",
            "4000",
            "4100",
            "4500",
            "4",
            "negative",
            "macro-expression",
            "anger",
            "500",
            "s16/16_0402y",
        ]
    ]
    only, mixed, foreign = tmp_path / "only.csv", tmp_path / "mixed.csv", tmp_path / "foreign.csv"
    for path, rows in ((only, mine), (mixed, mine + other), (foreign, [*other, [*other[0][:10], "s17/z"]])):
        with open(path, "w", newline="") as fh:
            csv.writer(fh).writerows(rows)

    def plot(truth: Path) -> tuple[subprocess.CompletedProcess, Path]:
        out = tmp_path / f"{truth.stem}.png"
        argv = ["-m", "evaluation.plot", "--video", str(folder), "--fps", "30", "--truth", str(truth)]
        proc = subprocess.run(
            [sys.executable, *argv, "--out", str(out)],
            cwd=ROOT,
            env=env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        return proc, out

    proc, out_only = plot(only)
    assert proc.returncode == 0, proc.stderr[-2000:]
    said = proc.stdout.strip()
    n_det = int(said.split(": ", 1)[1].split(" detections")[0])
    assert n_det > 0 and "2 truth intervals" in said and "undrawn" not in said, said
    fired = sum(int(n) for n in re.findall(r"(\d+) by (?:one side|both sides)", said))
    assert fired == n_det, said  # every shaded detection is explained by a drawn line it crossed
    proc, out_mixed = plot(mixed)
    assert proc.returncode == 0 and "2 truth intervals" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert np.array_equal(
        cv2.imread(str(out_only)), cv2.imread(str(out_mixed))
    )  # the other video is not drawn
    proc, _ = plot(foreign)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "15_0101x" in lines[0], proc.stderr


@pytest.mark.parametrize("key", ["explain.rules.language", "explain.language"])
def test_run_stream_when_chinese_asked_of_rules_explainer_then_one_line_says_english_only(key: str) -> None:
    proc = run_cli("--source", "demo", "--set", f"{key}=zh", timeout=60)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "rules explainer writes English only" in lines[0] and "explain.vlm.language" in lines[0], lines[0]


def _read_all(realtime: bool) -> float:
    from engine.sources.config import DemoConfig
    from engine.sources.demo import DemoSource
    from engine.sources.reader import FrameReader

    cfg = DemoConfig(duration_s=1.0, fps=30, events=0, size=128, blinks_per_min=0, realtime=realtime)
    started = time.monotonic()
    frames = list(FrameReader(DemoSource.from_config(cfg)))
    assert len(frames) == 30
    return time.monotonic() - started


def test_demo_when_default_then_played_at_its_frame_rate_and_fast_runs_flat_out() -> None:
    assert _read_all(realtime=True) >= 0.95  # frame 29 is due at 29/30 s
    assert _read_all(realtime=False) < 0.9


def test_demo_when_run_then_prints_what_it_found_against_its_truth(tmp_path: Path) -> None:
    proc = run_cli(*DEMO8, "--log-level", "WARNING", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(
        r"^demo: found (\d+) of 2 injected events .*; missed (\d+).*; (\d+) false alarms?", proc.stdout, re.M
    )
    assert m, proc.stdout
    found, missed, false_alarms = map(int, m.groups())
    candidates = int(re.search(r"(\d+) candidates", _summary(proc.stderr)).group(1))
    assert found + missed == 2 and found + false_alarms == candidates and found >= 1, proc.stdout
