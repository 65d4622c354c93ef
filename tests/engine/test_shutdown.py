"""Faults through the real command line: SIGTERM under explanation load, a corrupted video file.

The heavy explanation load is real: the engine's `openai` explainer talks HTTP to a local
OpenAI-compatible server (below) that takes seconds per answer, so candidates queue up behind it
when SIGTERM arrives, as they would behind a busy vLLM server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import shared_path
from tests.helpers import ROOT, check_accounting, env, free_port, run_cli

ANSWER = "Step 1: the lip corners rise. AU12 (lip corner puller) and AU6. Emotion: positive (happiness)"


class SlowChatServer(ThreadingHTTPServer):
    """``POST /v1/chat/completions`` answered after ``delay_s``; counts requests."""

    daemon_threads = True

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.requests = 0
        super().__init__(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: SlowChatServer

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._reply({"object": "list", "data": [{"id": "slow", "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests += 1
        time.sleep(self.server.delay_s)
        self._reply({"choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}}]})


def read_journal_strict(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "the journal ends in a torn line"
    return [json.loads(line) for line in text.splitlines()]  # every line must be valid JSON


@pytest.mark.slow
def test_cli_when_sigterm_under_explanation_load_then_exit_0_journal_complete(tmp_path: Path) -> None:
    server = SlowChatServer(delay_s=8.0)  # longer than drain_s + stop_grace_s
    journal = tmp_path / "events.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "run_stream.py"),
            "--source",
            "demo",
            "--fast",
            "--journal",
            str(journal),
            "--pub",
            f"tcp://127.0.0.1:{free_port()}",
            "--explainer",
            "openai",
            "--endpoint",
            server.url,
            "--model",
            "slow",
            "--log-level",
            "INFO",
            "--set",
            "explain.batch_size=1",
            "--set",
            "flow.name=dis",
            "--set",
            "demo.events=12",
            "--set",
            "demo.duration_s=40",
            "--set",
            "demo.min_gap_s=1.0",
            "--set",
            "explain.drain_s=1.0",
            "--set",
            "explain.stop_grace_s=2.0",
            "--set",
            "publish.status_interval_s=0.5",
        ],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        submitted = 0
        while time.monotonic() < deadline and proc.poll() is None:  # wait until candidates queue up
            if journal.exists():
                statuses = [
                    json.loads(x)
                    for x in journal.read_text(encoding="utf-8").splitlines()
                    if '"type":"status"' in x and x.endswith("}")
                ]
                submitted = statuses[-1]["worker"]["submitted"] if statuses else 0
                if submitted >= 3 and server.requests >= 1:
                    break
            time.sleep(0.2)
        assert proc.poll() is None, f"the engine ended before the signal: {proc.stderr.read()[-2000:]}"
        assert submitted >= 3, "no explanation load built up within the time limit"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
        stop_s = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop()
    assert proc.returncode == 0, err[-3000:]
    assert "received SIGTERM" in err
    events = read_journal_strict(journal)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "status"
    final = events[-1]
    assert final["frames"] < 40 * 30, "the run was not stopped mid-stream"
    outcome = check_accounting(events)
    reasons = [e["reason"] for e in events if e["type"] == "dropped"]
    assert len(outcome) == final["candidates"] == final["worker"]["submitted"] >= 3
    # the answer in progress (8 s) outlives drain_s + stop_grace_s, so at least it ends as shutdown
    assert reasons.count("shutdown") >= 1, reasons
    assert set(reasons) <= {"shutdown", "queue_full"}, reasons  # nothing timed out or failed
    assert stop_s < 1.0 + 2.0 + 15.0, f"stop took {stop_s:.1f} s: drain_s + stop_grace_s not honoured"


@pytest.mark.slow
@pytest.mark.data
def test_cli_when_video_file_corrupted_in_the_middle_then_runs_to_the_end(tmp_path: Path) -> None:
    original = shared_path("videos", "single_face.mp4")
    data = bytearray(original.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + 4096, 3):  # flip bits in the middle of the mdat payload
        data[i] ^= 0xA5
    broken = tmp_path / "single_face_corrupted.mp4"
    broken.write_bytes(bytes(data))
    journal = tmp_path / "events.jsonl"
    res = run_cli(
        "--source",
        str(broken),
        "--journal",
        str(journal),
        "--pub",
        f"tcp://127.0.0.1:{free_port()}",
        "--set",
        "flow.name=dis",
        "--log-level",
        "WARNING",
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    events = read_journal_strict(journal)
    final = events[-1]
    assert final["type"] == "status"
    assert final["frames"] > 36, f"stopped at frame {final['frames']} of 72: the corruption ended the run"
    check_accounting(events)
