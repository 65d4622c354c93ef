"""Issue 24, the first hour of a new user: each test runs the real command a user would type and
checks what it says (stderr lines, exit code), against what used to mislead or stay silent."""

from __future__ import annotations

import time

from tests.helpers import free_port, run_cli


def test_run_stream_when_camera_does_not_open_then_only_our_line() -> None:
    proc = run_cli("--source", "7", timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["run_stream.py: error: camera 7 did not open; check that it is connected and free, "
                     "or pass another index"], proc.stderr


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
