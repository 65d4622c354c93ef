"""The ZeroMQ publisher and the journal on real sockets (loopback TCP and ipc://)."""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from engine.errors import UserError
from engine.events import make_event
from engine.publish import Journal, PublishConfig, ZmqPublisher, read_lines, segments
from engine.subscribe import Message, Subscriber


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cfg(tmp_path: Path, **kw: Any) -> PublishConfig:
    base: dict[str, Any] = {
        "endpoint": f"tcp://127.0.0.1:{free_port()}",
        "journal": str(tmp_path / "events.jsonl"),
        "startup_wait_s": 0.0,
        "linger_ms": 500,
    }
    base.update(kw)
    return PublishConfig(**base)


def candidate(stream: str, n: int) -> dict[str, Any]:
    return make_event(
        "candidate",
        stream,
        candidate_id=f"c{n:04d}",
        onset={"frame": n, "t": n / 25},
        apex={"frame": n + 3, "t": (n + 3) / 25},
        offset={"frame": n + 6, "t": (n + 6) / 25},
        kind="micro",
        score=1.5,
        regions=["mouth_corner_L"],
    )


def fake_png(n: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + bytes([n % 256]) * (1000 + n)


def drain(sub: Subscriber, n: int, timeout_s: float = 5.0) -> list[Message]:
    out: list[Message] = []
    while len(out) < n and (msg := sub.recv(timeout_s)) is not None:
        out.append(msg)
    return out


def test_publisher_when_threads_emit_then_all_arrive_in_seq_order_as_journaled(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path)
    pub = ZmqPublisher(cfg)
    with Subscriber(pub.endpoint) as sub:
        assert pub.wait_for_subscribers(1, 10)
        n_threads, per_thread = 4, 60

        def produce(k: int) -> None:
            for i in range(per_thread):
                if i % 3 == 0:
                    ev = candidate(f"cam{k}", i)
                    ev["producer"], ev["i"] = k, i
                    pub.emit(ev, png=fake_png(i))
                else:
                    pub.emit(make_event("error", f"cam{k}", where="test", message=f"ü {i}", producer=k, i=i))

        threads = [threading.Thread(target=produce, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        pub.close()
        msgs = drain(sub, n_threads * per_thread)

    total = n_threads * per_thread
    assert [m.event["seq"] for m in msgs] == list(range(total))
    assert [m.raw for m in msgs] == list(read_lines(cfg.journal))
    assert pub.stats().sent == total and pub.stats().refused == 0 and pub.stats().overflow == 0
    for m in msgs:
        ev = m.event
        assert m.topic == f"mellm.{ev['type']}.{ev['stream']}"
        assert list(ev)[:4] == ["schema", "type", "stream", "seq"]
        if ev["type"] == "candidate":
            assert m.png == fake_png(ev["i"])
        else:
            assert m.png is None
    for k in range(n_threads):  # each producer's own order survives the interleaving
        mine = [m.event["i"] for m in msgs if m.event["producer"] == k]
        assert mine == list(range(per_thread))
    assert "ü" in Path(cfg.journal).read_text(encoding="utf-8")  # ensure_ascii=False, UTF-8 on the wire


def test_publisher_when_maps_disabled_then_candidates_have_two_frames(tmp_path: Path) -> None:
    pub = ZmqPublisher(make_cfg(tmp_path, maps=False))
    with Subscriber(pub.endpoint) as sub:
        assert pub.wait_for_subscribers(1, 10)
        pub.emit(candidate("cam", 1), png=fake_png(1))
        pub.close()
        (msg,) = drain(sub, 1)
    assert msg.event["type"] == "candidate" and msg.png is None


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("mellm.candidate", [("candidate", "camA"), ("candidate", "camB")]),
        ("mellm.status.camB", [("status", "camB")]),
        ("mellm.", [("candidate", "camA"), ("status", "camA"), ("candidate", "camB"), ("status", "camB")]),
    ],
)
def test_subscriber_when_topic_prefix_then_only_matching_events(
    tmp_path: Path, prefix: str, expected: list[tuple[str, str]]
) -> None:
    pub = ZmqPublisher(make_cfg(tmp_path))
    with Subscriber(pub.endpoint, topic=prefix) as sub:
        assert pub.wait_for_subscribers(1, 10)
        for stream in ("camA", "camB"):
            pub.emit(candidate(stream, 0), png=fake_png(0))
            pub.emit(make_event("status", stream, fps_in=25.0))
        pub.close()
        got = drain(sub, len(expected) + 1, timeout_s=0.3)
    assert [(m.event["type"], m.event["stream"]) for m in got] == expected


def test_publisher_when_startup_wait_then_early_subscriber_gets_first_event(tmp_path: Path) -> None:
    pub = ZmqPublisher(make_cfg(tmp_path, startup_wait_s=0.5))
    pub.emit(make_event("error", "cam", where="start", message="first"))  # queued during the wait
    with Subscriber(pub.endpoint) as sub:
        pub.close()
        got = drain(sub, 1, timeout_s=2.0)
    assert [m.event["seq"] for m in got] == [0]


def test_publisher_when_no_subscriber_then_close_is_fast(tmp_path: Path) -> None:
    pub = ZmqPublisher(make_cfg(tmp_path, linger_ms=5000))
    for i in range(500):
        pub.emit(candidate("cam", i), png=fake_png(i))
    t0 = time.monotonic()
    pub.close()
    assert time.monotonic() - t0 < 3.0
    assert pub.stats().sent == 500
    pub.close()  # idempotent


def test_publisher_when_subscriber_stuck_at_hwm_then_refused_counted_close_bounded(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/pub.sock"
    cfg = make_cfg(tmp_path, endpoint=endpoint, sndhwm=2, linger_ms=300, send_timeout_ms=50)
    pub = ZmqPublisher(cfg)
    ctx = zmq.Context()
    stuck = ctx.socket(zmq.SUB)  # connects, subscribes, never reads
    stuck.setsockopt(zmq.RCVHWM, 1)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    stuck.connect(pub.endpoint)
    try:
        assert pub.wait_for_subscribers(1, 10)
        n = 300
        big = b"\x89PNG" + b"\0" * 200_000
        for i in range(n):
            pub.emit(candidate("cam", i), png=big)
        t0 = time.monotonic()
        pub.close()
        elapsed = time.monotonic() - t0
    finally:
        stuck.close(linger=0)
        ctx.term()
    stats = pub.stats()
    assert elapsed < 10.0
    assert stats.refused > 0 and stats.sent + stats.refused == n
    assert [json.loads(line)["seq"] for line in read_lines(cfg.journal)] == list(range(n))


def test_publisher_when_thread_blocked_then_emit_waits_and_counts_overflow(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, queue_size=2, emit_timeout_s=0.2)
    pub = ZmqPublisher(cfg)
    release = threading.Event()
    real_send = pub._send

    def slow_send(frames: list[bytes]) -> None:
        release.wait(10)
        real_send(frames)

    pub._send = slow_send  # type: ignore[method-assign]
    pub.emit(make_event("error", "cam", where="t", message="0"))  # taken by the thread, which blocks
    deadline = time.monotonic() + 5
    while pub.stats().queued and time.monotonic() < deadline:
        time.sleep(0.01)
    pub.emit(make_event("error", "cam", where="t", message="1"))
    pub.emit(make_event("error", "cam", where="t", message="2"))  # queue now full (2)
    t0 = time.monotonic()
    pub.emit(candidate("cam", 3))  # waits emit_timeout_s, then counted lost
    assert 0.15 < time.monotonic() - t0 < 2.0
    pub.emit(make_event("dropped", "cam", candidate_id="c0003", reason="error", detail=""))  # never lost
    assert pub.stats().overflow == 1
    release.set()
    pub.close()
    kinds = [json.loads(line)["type"] for line in read_lines(cfg.journal)]
    assert kinds == ["error", "error", "error", "dropped"]
    assert pub.stats().sent == 4


def test_publisher_when_journal_fails_then_emit_and_close_raise(tmp_path: Path) -> None:
    pub = ZmqPublisher(make_cfg(tmp_path))
    assert pub._journal is not None

    def full(line: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    pub._journal.write = full  # type: ignore[method-assign]
    pub.emit(make_event("error", "cam", where="t", message="x"))
    deadline = time.monotonic() + 5
    with pytest.raises(RuntimeError, match="No space left"):
        while time.monotonic() < deadline:
            pub.emit(make_event("error", "cam", where="t", message="y"))
            time.sleep(0.01)
    with pytest.raises(RuntimeError, match="No space left"):
        pub.close()


@pytest.mark.parametrize(
    ("event", "png", "match"),
    [
        ({"type": "nonsense", "stream": "cam"}, None, "event type"),
        ({"type": "status", "stream": ""}, None, "stream"),
        ({"type": "status", "stream": "cam", "seq": 3}, None, "seq"),
        ({"type": "status", "stream": "cam"}, b"png", "only .*map.* events carry a PNG"),
        ({"type": "status", "stream": "cam", "fps_in": float("nan")}, None, "not JSON compliant"),
    ],
)
def test_emit_when_event_invalid_then_valueerror(
    tmp_path: Path, event: dict[str, Any], png: bytes | None, match: str
) -> None:
    with ZmqPublisher(make_cfg(tmp_path)) as pub, pytest.raises(ValueError, match=match):
        pub.emit(event, png)


def test_emit_when_closed_then_runtimeerror(tmp_path: Path) -> None:
    pub = ZmqPublisher(make_cfg(tmp_path))
    pub.close()
    with pytest.raises(RuntimeError, match="closed"):
        pub.emit(make_event("error", "cam", where="t", message="late"))


def test_bind_when_port_in_use_then_usererror(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        endpoint = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(UserError) as info:
            ZmqPublisher(make_cfg(tmp_path, endpoint=endpoint))
    msg = str(info.value)
    assert msg == f"cannot bind {endpoint}: Address already in use; choose another --pub"
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("endpoint", "match"),
    [
        ("tcp://127.0.0.1:0", "no fixed port"),
        ("tcp://127.0.0.1:*", "no fixed port"),
        ("nonsense", "cannot bind nonsense: Invalid argument"),
        ("foo://x", "Protocol not supported"),
    ],
)
def test_bind_when_endpoint_bad_then_usererror(tmp_path: Path, endpoint: str, match: str) -> None:
    with pytest.raises(UserError, match=match):
        ZmqPublisher(make_cfg(tmp_path, endpoint=endpoint))


def test_journal_when_unwritable_then_usererror(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot open journal"):
        Journal(tmp_path / "file" / "events.jsonl")


def test_journal_when_max_bytes_then_rotates_without_losing_or_splitting_lines(tmp_path: Path) -> None:
    path = tmp_path / "j" / "events.jsonl"
    lines = [json.dumps({"seq": i, "pad": "x" * (i % 7)}, separators=(",", ":")) for i in range(200)]
    j = Journal(path, max_bytes=300)
    for line in lines:
        j.write(line)
    j.close()
    files = segments(path)
    assert len(files) > 5 and j.rotations == len(files) - 1
    assert files[-1] == path and files[0].name == "events.jsonl.1"
    assert all(f.stat().st_size <= 300 for f in files)
    assert list(read_lines(path)) == lines
    j2 = Journal(path, max_bytes=300)  # reopening continues the numbering, never overwrites
    for line in lines[:50]:
        j2.write(line)
    j2.close()
    assert list(read_lines(path)) == lines + lines[:50]


def test_journal_when_path_is_another_kind_of_file_then_refuses_and_leaves_it_intact(tmp_path: Path) -> None:
    """--journal interview.mp4 by mistake: a one-line UserError, and the file is not touched."""
    video = tmp_path / "interview.mp4"
    data = bytes(range(256)) * 64
    video.write_bytes(data)
    with pytest.raises(UserError, match="not a JSON-lines journal"):
        Journal(video)
    assert video.read_bytes() == data
