"""The subscriber: formatting, gap detection, and the CLI as a real subprocess on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from engine.events import make_event
from engine.publish import PublishConfig, ZmqPublisher, read_lines
from engine.subscribe import SeqTracker, format_event, iter_events
from tests.helpers import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "engine.subscribe", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def candidate(n: int) -> dict[str, Any]:
    return make_event(
        "candidate",
        "demo",
        candidate_id=f"cand{n}",
        onset={"frame": 10 * n, "t": 0.4 * n},
        apex={"frame": 10 * n + 4, "t": 0.4 * n + 0.16},
        offset={"frame": 10 * n + 9, "t": 0.4 * n + 0.36},
        kind="micro",
        score=2.25,
        regions=["mouth_corner_L", "mouth_corner_R"],
    )


def explanation(n: int) -> dict[str, Any]:
    return make_event(
        "explanation",
        "demo",
        candidate_id=f"cand{n}",
        aus=[
            {"au": 6, "name": "Cheek Raiser", "side": "B", "confidence": 0.7},
            {"au": 12, "name": "Lip Corner Puller", "side": "L", "confidence": 0.9},
        ],
        emotion="positive",
        emotion_detail="happiness",
        text="The left lip corner moved up and out.\nAU6+AU12 read as happiness.",
        explainer="rules",
        latency_ms=12.5,
    )


def session() -> list[tuple[dict[str, Any], bytes | None]]:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    return [
        (candidate(1), png),
        (explanation(1), None),
        (candidate(2), png[::-1]),
        (make_event("dropped", "demo", candidate_id="cand2", reason="queue_full", detail="queue of 4 full"),
         None),
        (make_event("status", "demo", fps_in=25.0, fps_processed=24.5, frames_dropped=0, faces_lost=3,
                    queue_depth=1, reconnects=0, uptime_s=4.0), None),
        (make_event("error", "demo", where="source", message="camera reset"), None),
    ]


def publish_to_cli(tmp_path: Path, *cli_args: str) -> tuple[subprocess.CompletedProcess[str], PublishConfig]:
    """Start the CLI, wait until it subscribed, publish `session()`, and collect its output."""
    cfg = PublishConfig(
        endpoint=f"tcp://127.0.0.1:{free_port()}", journal=str(tmp_path / "j.jsonl"), startup_wait_s=0
    )
    pub = ZmqPublisher(cfg)
    proc = spawn(cfg.endpoint, "--count", str(len(session())), "--timeout", "10", *cli_args)
    try:
        assert pub.wait_for_subscribers(1, 20), "the subscriber never subscribed"
        for event, png in session():
            pub.emit(event, png)
        pub.close()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), cfg


def test_cli_when_events_then_readable_lines_and_maps_saved(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    res, _ = publish_to_cli(tmp_path, "--save-maps", str(maps))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "gap" not in out
    assert "candidate   demo #0 cand1 micro score 2.250" in out
    assert "onset 0.400s (frame 10)  apex 0.560s (frame 14)  offset 0.760s (frame 19)" in out
    assert "regions: mouth_corner_L, mouth_corner_R" in out
    assert "AU6 Cheek Raiser (B), AU12 Lip Corner Puller (L)" in out
    assert "positive/happiness [rules, 12.5 ms]" in out
    assert "The left lip corner moved up and out. AU6+AU12 read as happiness." in out
    assert "cand2 reason queue_full: queue of 4 full" in out
    assert "fps in 25.0 processed 24.5  dropped 0  faces lost 3  queue 1  reconnects 0" in out
    assert "error in source: camera reset" in out
    assert len(out.splitlines()) == 2 + 2 + 2 + 1 + 1 + 1
    pngs = [png for _, png in session() if png]
    assert (maps / "cand1.png").read_bytes() == pngs[0]
    assert (maps / "cand2.png").read_bytes() == pngs[1]
    assert f"map: {maps / 'cand1.png'}" in out


def test_cli_when_json_then_lines_equal_journal(tmp_path: Path) -> None:
    res, cfg = publish_to_cli(tmp_path, "--json")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == list(read_lines(cfg.journal))
    assert [json.loads(x)["seq"] for x in res.stdout.splitlines()] == list(range(len(session())))


def test_cli_when_seq_jumps_then_gap_line(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/raw.sock"
    ctx = zmq.Context()
    raw = ctx.socket(zmq.XPUB)  # a bare publisher (XPUB so the test sees the subscription arrive)
    raw.bind(endpoint)
    proc = spawn(endpoint, "--count", "5", "--timeout", "10")
    try:
        assert raw.poll(20_000), "the subscriber never subscribed"
        assert raw.recv() == b"\x01"
        for seq in (0, 1, 2, 5, 6):
            ev = {**make_event("error", "demo", where="t", message=str(seq)), "seq": seq}
            raw.send_multipart([b"mellm.error.demo", json.dumps(ev).encode()])
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raw.close(linger=0)
        ctx.term()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[3] == "gap: missed 2 events (seq 3..4)"
    assert lines[4].endswith("#5 error in t: 5") and len(lines) == 6


def test_cli_when_silent_then_timeout_exits_zero(tmp_path: Path) -> None:
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "engine.subscribe", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.3"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=20,
    )
    assert res.returncode == 0 and res.stdout == "" and res.stderr == ""
    assert time.monotonic() - t0 < 10


def test_recv_when_interrupt_is_pending_without_waking_the_poll_then_raises_within_a_slice() -> None:
    """The race behind a Ctrl-C that hung the CLI: the signal's flag is set but the zmq poll is not
    woken (here `_thread.interrupt_main`, which sends no OS signal). The sliced wait returns to
    Python within ~0.25 s, where the interrupt is raised; an unsliced one waited the whole timeout."""
    import _thread
    import threading

    from engine.subscribe import Subscriber

    with Subscriber(f"tcp://127.0.0.1:{free_port()}") as sub:
        timer = threading.Timer(0.2, _thread.interrupt_main)
        timer.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(KeyboardInterrupt):
                sub.recv(timeout_s=10.0)
        finally:
            timer.cancel()
        assert time.monotonic() - t0 < 3.0


def test_cli_when_sigint_then_exits_zero(tmp_path: Path) -> None:
    pub = ZmqPublisher(PublishConfig(endpoint=f"tcp://127.0.0.1:{free_port()}", startup_wait_s=0))
    proc = spawn(pub.endpoint)
    try:
        assert pub.wait_for_subscribers(1, 20)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pub.close()
    assert proc.returncode == 0 and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-endpoint"], "error: cannot connect to not-an-endpoint: Invalid argument;"),
        (["foo://x"], "error: cannot connect to foo://x: Protocol not supported;"),
        (["tcp://127.0.0.1:5556", "--count", "0"], "error: --count must be at least 1, got 0"),
    ],
)
def test_cli_when_bad_input_then_exit_2_one_line(args: list[str], message: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "engine.subscribe", *args],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=20,
    )
    assert res.returncode == 2
    assert res.stderr.startswith(message) and res.stderr.count("\n") == 1


def test_iter_events_when_timeout_then_yields_all_then_stops(tmp_path: Path) -> None:
    pub = ZmqPublisher(PublishConfig(endpoint=f"tcp://127.0.0.1:{free_port()}", startup_wait_s=0.3))
    for event, png in session():
        pub.emit(event, png)
    it = iter_events(pub.endpoint, timeout_s=1.0)
    got = []
    try:
        got.append(next(it))  # connects now, inside the publisher's start-up wait
        got.extend(it)
    finally:
        pub.close()
    assert [(t, e["seq"], p is not None) for t, e, p in got] == [
        ("mellm.candidate.demo", 0, True),
        ("mellm.explanation.demo", 1, False),
        ("mellm.candidate.demo", 2, True),
        ("mellm.dropped.demo", 3, False),
        ("mellm.status.demo", 4, False),
        ("mellm.error.demo", 5, False),
    ]


@pytest.mark.parametrize(
    ("seqs", "warnings"),
    [
        ([0, 1, 2], [None, None, None]),
        ([7, 8], [None, None]),  # joined late: no gap to report
        ([0, 2], [None, "gap: missed 1 event (seq 1..1)"]),
        ([3, 10], [None, "gap: missed 6 events (seq 4..9)"]),
        ([5, 0], [None, "seq restarted at 0 after 5 (publisher restarted?)"]),
        ([0, "x"], [None, "warning: event without an integer seq ('x')"]),
    ],
)
def test_seq_tracker_when_sequence_then_warnings(seqs: list[Any], warnings: list[str | None]) -> None:
    t = SeqTracker()
    assert [t.update(s) for s in seqs] == warnings


def test_format_event_when_unknown_or_partial_then_no_crash() -> None:
    lines = format_event({"type": "candidate", "seq": 1, "onset": "bad", "time": "nope"})
    assert lines[0].startswith("--:--:--.--- candidate") and "onset ?" in lines[1]
    assert "mystery" in format_event({"type": "mystery", "stream": "s"})[0]


def test_cli_save_maps_when_event_names_paths_writes_only_plain_names_inside_the_folder(tmp_path: Path):
    """Whoever can publish chooses the map's name: no escape by ``..``, absolute names or planted links.

    Old maps past ``--max-age-days`` are deleted as well (they show faces)."""
    maps, outside = tmp_path / "maps", tmp_path / "outside"
    maps.mkdir()
    outside.mkdir()
    target = outside / "target.png"
    target.write_bytes(b"not yours")
    (maps / "planted.png").symlink_to(target)
    (maps / "ok.png.tmp").symlink_to(target)  # where the writer used to put its temporary file
    for name, days in (("old.png", 10), ("keep.png", 1)):
        (maps / name).write_bytes(b"an earlier map")
        t = time.time() - days * 86_400
        os.utime(maps / name, (t, t))
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    sent = [("../escape", 0), ("/etc/evil", "../../evil"), ("planted", 2), ("ok", 3)]
    endpoint = f"ipc://{tmp_path}/raw.sock"
    ctx = zmq.Context()
    raw = ctx.socket(zmq.XPUB)
    raw.bind(endpoint)
    proc = spawn(endpoint, "--count", str(len(sent)), "--timeout", "10", "--save-maps", str(maps),
                 "--max-age-days", "5")
    try:
        assert raw.poll(20_000), "the subscriber never subscribed"
        assert raw.recv() == b"\x01"
        for cid, seq in sent:
            ev = {**make_event("candidate", "demo", candidate_id=cid), "seq": seq}
            raw.send_multipart([b"mellm.candidate.demo", json.dumps(ev).encode(), png])
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raw.close(linger=0)
        ctx.term()
    assert proc.returncode == 0, err
    names = ["keep.png", "ok.png", "ok.png.tmp", "planted.png", "seq0.png"]
    assert sorted(p.name for p in maps.iterdir()) == names
    assert (maps / "ok.png").read_bytes() == (maps / "seq0.png").read_bytes() == png
    assert (maps / "planted.png").is_symlink() and target.read_bytes() == b"not yours"  # refused, untouched
    assert sorted(p.name for p in tmp_path.rglob("*") if "evil" in p.name or "escape" in p.name) == []
    assert err.count("map not saved") == 2
