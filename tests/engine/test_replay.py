"""Gap-free consumption: the journal under concurrent writes and rotation, replay, replay-then-live."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import UserError
from engine.events import make_event
from engine.publish import PublishConfig, ZmqPublisher, read_lines, segments
from engine.subscribe import replay
from tests.helpers import ROOT, env, free_port


def cfg(journal: Path, **kw: Any) -> PublishConfig:
    base: dict[str, Any] = {
        "endpoint": f"tcp://127.0.0.1:{free_port()}",
        "journal": str(journal),
        "startup_wait_s": 0.0,
        "linger_ms": 500,
    }
    base.update(kw)
    return PublishConfig(**base)


def event(i: int, stream: str = "cam0") -> dict[str, Any]:
    return make_event("error", stream, where="replay-test", message=f"event {i} " + "x" * (i % 37))


def subscribe_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.subscribe", *args],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_journal_when_threads_emit_and_reader_polls_then_rotation_loses_no_line(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    pub = ZmqPublisher(cfg(journal, journal_max_bytes=3000))
    n_threads, per_thread = 4, 250
    stop = threading.Event()
    snapshots: list[list[int]] = []

    def reader() -> None:  # reads while the publisher writes and rotates
        while not stop.is_set():
            snapshots.append([json.loads(x)["seq"] for x in read_lines(journal)])

    def produce(k: int) -> None:
        for i in range(per_thread):
            pub.emit(event(i, f"cam{k}"))

    r = threading.Thread(target=reader)
    r.start()
    producers = [threading.Thread(target=produce, args=(k,)) for k in range(n_threads)]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    pub.close()
    stop.set()
    r.join()
    total = n_threads * per_thread
    files = segments(journal)
    assert len(files) > 20, "the test must rotate many times"
    assert all(f.stat().st_size <= 3000 for f in files)
    lines = list(read_lines(journal))
    assert [json.loads(x)["seq"] for x in lines] == list(range(total))
    for k in range(n_threads):  # each producer's events in its own order, none missing
        mine = [json.loads(x)["message"] for x in lines if json.loads(x)["stream"] == f"cam{k}"]
        assert [m.split()[1] for m in mine] == [str(i) for i in range(per_thread)]
    assert len(snapshots) > 3
    for snap in snapshots:  # every concurrent read was a gap-free, duplicate-free prefix
        assert snap == list(range(len(snap)))


def test_replay_when_subscriber_missed_events_then_rotated_journal_gives_exactly_them(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    pub = ZmqPublisher(cfg(journal, journal_max_bytes=2000))
    for i in range(200):
        pub.emit(event(i))
    pub.close()
    assert len(segments(journal)) > 5
    all_lines = list(read_lines(journal))
    missed_from = 57  # the subscriber saw seq 0..56, then was offline
    got = [m.raw for m in replay(journal, missed_from)]
    assert got == all_lines[missed_from:]
    assert [m.raw for m in replay(journal, 10, below_seq=13)] == all_lines[10:13]
    assert [m.event["seq"] for m in replay(journal, 0, topic="mellm.status")] == []
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.subscribe",
            "--replay",
            str(journal),
            "--from",
            str(missed_from),
            "--json",
        ],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == all_lines[missed_from:]
    res = subprocess.run(
        [sys.executable, "-m", "engine.subscribe", "--replay", str(journal), "--from", "198"],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and [x.split()[3] for x in res.stdout.splitlines()] == ["#198", "#199"]


def test_replay_when_engine_restarted_on_same_journal_then_latest_run_only(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    for run, n in enumerate((30, 12)):
        pub = ZmqPublisher(cfg(journal, journal_max_bytes=1500))
        for i in range(n):
            pub.emit(event(1000 * run + i))
        pub.close()
    got = [m.event for m in replay(journal, 5)]
    assert [e["seq"] for e in got] == list(range(5, 12))
    assert all(e["message"].startswith(f"event {1000 + e['seq']} ") for e in got)


def test_replay_when_journal_has_torn_or_bad_lines_then_skipped(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    good = [json.dumps({**event(i), "seq": i}) for i in range(4)]
    journal.write_text(good[0] + "\nnot json\n" + "\n".join(good[1:]) + "\n" + '{"seq": 4, "type": "err')
    assert [m.event["seq"] for m in replay(journal)] == [0, 1, 2, 3]  # the torn last line is not returned
    with pytest.raises(UserError, match="not found"):
        list(replay(tmp_path / "missing.jsonl"))


def test_cli_when_replay_then_live_then_every_event_once_in_order(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    pub = ZmqPublisher(cfg(journal, journal_max_bytes=4000))
    total, head = 400, 150
    for i in range(head):  # published before the subscriber exists: only in the journal
        pub.emit(event(i))
    while pub.stats().journal_lines < head:
        time.sleep(0.01)
    proc = subscribe_cli(
        pub.endpoint,
        "--replay",
        str(journal),
        "--from",
        "0",
        "--json",
        "--count",
        str(total),
        "--timeout",
        "15",
    )
    try:
        for i in range(head, total):  # the rest is published while the subscriber replays and joins
            pub.emit(event(i))
            if i % 10 == 0:
                time.sleep(0.02)
        out, err = proc.communicate(timeout=60)
    finally:
        pub.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.splitlines() == list(read_lines(journal))
    assert [json.loads(x)["seq"] for x in out.splitlines()] == list(range(total))


def test_publisher_when_journal_fsync_interval_then_periodic_fsync(tmp_path: Path) -> None:
    for interval, expect_sync in ((0.2, True), (0.0, False)):
        pub = ZmqPublisher(cfg(tmp_path / f"j{interval}.jsonl", journal_fsync_s=interval))
        for i in range(5):
            pub.emit(event(i))
            time.sleep(0.15)
        time.sleep(0.4)
        synced = pub.stats().journal_fsyncs
        pub.close()
        assert (synced >= 1) == expect_sync, (interval, synced)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give an ENDPOINT"),
        (["--from", "3", "tcp://127.0.0.1:1"], "--from needs --replay"),
        (["--replay", "j.jsonl", "--from", "-1"], "--from must be"),
        (["--replay", "/nonexistent/j.jsonl"], "not found"),
    ],
)
def test_cli_when_replay_arguments_bad_then_exit_2_one_line(args: list[str], message: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "engine.subscribe", *args],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and message in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_run_when_live_jumps_or_repeats_then_filled_from_journal_and_deduplicated(tmp_path: Path) -> None:
    """A raw publisher journals 0..9 but sends 2 twice and never 5..7 (refused at a high-water mark)."""
    import io

    import zmq

    from engine.publish import Journal
    from engine.subscribe import run

    journal_path = tmp_path / "events.jsonl"
    lines = [json.dumps({**event(i), "seq": i}, separators=(",", ":")) for i in range(10)]
    journal = Journal(journal_path, max_bytes=700)
    for line in lines[:3]:
        journal.write(line)
    endpoint = f"ipc://{tmp_path}/raw.sock"
    ctx = zmq.Context()
    raw = ctx.socket(zmq.XPUB)
    raw.bind(endpoint)
    out = io.StringIO()
    t = threading.Thread(
        target=run,
        args=(endpoint,),
        kwargs={"as_json": True, "replay_journal": journal_path, "count": 10, "timeout_s": 10, "out": out},
    )
    t.start()
    try:
        assert raw.poll(20_000) and raw.recv() == b"\x01", "the subscriber never subscribed"
        for line in lines[3:]:
            journal.write(line)  # the publisher journals before it sends
        for i in (2, 3, 4, 8, 9):
            raw.send_multipart([b"mellm.error.cam0", lines[i].encode()])
        t.join(30)
    finally:
        journal.close()
        raw.close(linger=0)
        ctx.term()
    assert not t.is_alive()
    assert out.getvalue().splitlines() == lines


def test_cli_when_from_is_past_the_journal_end_then_says_so(tmp_path: Path) -> None:
    """Without an endpoint: exit 2 and one line naming where the journal ends (it waited in silence)."""
    journal = tmp_path / "events.jsonl"
    pub = ZmqPublisher(cfg(journal))
    for i in range(5):
        pub.emit(event(i))
    pub.close()
    res = subprocess.run(
        [sys.executable, "-m", "engine.subscribe", "--replay", str(journal), "--from", "100"],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "ends at seq 4" in res.stderr and "--from" in res.stderr


def test_cli_when_from_is_past_the_journal_end_with_endpoint_then_notes_it_and_goes_live(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "events.jsonl"
    pub = ZmqPublisher(cfg(journal))
    for i in range(5):
        pub.emit(event(i))
    while pub.stats().journal_lines < 5:
        time.sleep(0.01)
    proc = subscribe_cli(
        pub.endpoint, "--replay", str(journal), "--from", "100", "--json", "--count", "1", "--timeout", "20"
    )
    try:
        deadline = time.monotonic() + 30
        i = 5
        while proc.poll() is None and time.monotonic() < deadline:  # live events until it has one
            pub.emit(event(i))
            i += 1
            time.sleep(0.05)
        out, err = proc.communicate(timeout=30)
    finally:
        pub.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    ends = re.search(r"ends at seq (\d+);", err)  # live events may be journaled before it reads
    assert ends and int(ends.group(1)) >= 4 and "waiting for live events" in err
    assert len(out.splitlines()) == 1 and json.loads(out)["seq"] >= 5
