"""The dashboard's API, SSE and /metrics, fed by real ZeroMQ publishers on loopback.

Events are built from real candidates: the demo stream tracked by MediaPipe, the fused map and
region statistics of `build_evidence`, and the `rules` explainer's explanation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from engine.dashboard.app import Dashboard, create_app
from engine.dashboard.state import DashboardState, render_metrics
from engine.events import (
    Timing,
    candidate_event,
    dropped_event,
    error_event,
    explanation_event,
    make_event,
    map_event,
    status_event,
    topic,
)
from engine.explain import create as create_explainer
from engine.face.config import FaceConfig
from engine.face.mediapipe_tracker import MediaPipeTracker, create_landmarker
from engine.flow.opencv_backends import DISFlow
from engine.fusion import build_evidence
from engine.fusion.config import FusionConfig
from engine.publish.config import PublishConfig
from engine.publish.zmq_publisher import ZmqPublisher
from engine.sources.config import DemoConfig
from engine.sources.demo import DemoSource
from engine.types import Candidate, Evidence, Explanation, FaceObservation, TimePoint
from tests.helpers import ROOT, env, free_port, read_journal

STATUS = {
    "fps_in": 29.5, "fps_processed": 28.25, "frames_dropped": 3, "faces_lost": 7,
    "queue_depth": 2, "reconnects": 1, "uptime_s": 12.5,
}


def real_story(face_model: Path, n: int = 2) -> list[tuple[Candidate, Evidence, Explanation]]:
    """``n`` real candidates (demo truth intervals, MediaPipe crops) with their evidence and explanation."""
    src = DemoSource.from_config(DemoConfig(duration_s=3.0 + 2.0 * n, fps=30.0, events=n, seed=5))
    wanted = {p.frame for tr in src.truth for p in (tr.onset, tr.apex)}
    obs: dict[int, FaceObservation] = {}
    cfg = FaceConfig()
    with MediaPipeTracker(create_landmarker(str(face_model), cfg), cfg.crop_size) as tracker:
        for frame in src.frames():
            o = tracker.process(frame)
            if frame.index in wanted:
                assert o is not None
                obs[frame.index] = o
            if len(obs) == len(wanted):
                break
    explainer = create_explainer("rules")
    story = []
    for k, tr in enumerate(src.truth):
        c = Candidate(
            candidate_id=f"c{k}x{tr.onset.frame}", stream="demo",
            onset=TimePoint(tr.onset.frame, tr.onset.t), apex=TimePoint(tr.apex.frame, tr.apex.t),
            offset=TimePoint(tr.offset.frame, tr.offset.t), kind="micro", score=3.5 + k,
            regions=("mouth_corner_L", "mouth_corner_R"),
            onset_face=obs[tr.onset.frame], apex_face=obs[tr.apex.frame],
        )
        ev = build_evidence(c, DISFlow(preset="medium"), FusionConfig())
        story.append((c, ev, explainer.explain_batch([ev])[0]))
    return story


@pytest.fixture(scope="module")
def story(face_model: Path) -> list[tuple[Candidate, Evidence, Explanation]]:
    return real_story(face_model)


def wait_for(check: Any, timeout_s: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def received(client: TestClient, n: int) -> dict[str, Any]:
    """/api/state once the (single) endpoint has delivered ``n`` messages."""
    def check() -> dict[str, Any] | None:
        s = client.get("/api/state").json()
        return s if s["endpoints"][0]["messages"] == n else None

    return wait_for(check, what=f"{n} messages at the dashboard")


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text page (parsed by prometheus_client)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def write_clip(path: Path, crops: list[np.ndarray], fps: float = 30.0) -> None:
    size = (crops[0].shape[1], crops[0].shape[0])
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert w.isOpened()
    for c in crops:
        w.write(cv2.cvtColor(c, cv2.COLOR_GRAY2BGR))
    w.release()


@pytest.mark.slow
def test_dashboard_when_fed_by_publisher_serves_state_maps_clips_and_metrics(story, tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    journal = tmp_path / "events.jsonl"
    (c1, ev1, ex1), (c2, ev2, _) = story
    clip = tmp_path / f"{c1.candidate_id}.mp4"
    write_clip(clip, [c1.onset_face.crop, c1.apex_face.crop] * 6)
    c1 = Candidate(**{f: getattr(c1, f) for f in c1.__dataclass_fields__ if f != "clip"}, clip=str(clip))
    dashboard = Dashboard([endpoint], clips_dir=tmp_path)
    with TestClient(create_app(dashboard)) as client:
        assert client.get("/api/state").json()["streams"] == []
        pub = ZmqPublisher(PublishConfig(endpoint=endpoint, journal=str(journal), startup_wait_s=0))
        try:
            assert pub.wait_for_subscribers(1, 10), "the dashboard never subscribed"
            pub.emit(status_event("demo", **STATUS))
            pub.emit(candidate_event(c1))  # contract v2: when first, the map in its own event after
            pub.emit(map_event(c1), ev1.png)
            pub.emit(explanation_event(c1, ex1, Timing(arrived=0.0, decided=0.004).to_json(0.0125)))
            pub.emit(candidate_event(c2))
            pub.emit(map_event(c2), ev2.png)
            pub.emit(dropped_event(c2, "queue_full", "queue of 1 full (drop_newest)"))
            pub.emit(error_event("demo", "worker", 'bad "thing"\nhappened'))
            pub.emit(status_event("demo", **{**STATUS, "fps_in": 30.0, "queue_depth": 0}))
        finally:
            pub.close()
        events = read_journal(journal)
        assert len(events) == 9
        state = received(client, 9)

        (stream,) = state["streams"]
        assert stream["name"] == "demo" and stream["session"] == 1 and stream["gaps"] == []
        assert stream["status"]["fps_in"] == 30.0 and stream["status"]["queue_depth"] == 0
        assert [h["fps_in"] for h in stream["history"]] == [29.5, 30.0]
        counts = {"candidates": 2, "explanations": 1, "dropped": {"queue_full": 1}, "errors": 1}
        assert stream["counts"] == counts
        assert stream["last_error"]["message"] == 'bad "thing"\nhappened'
        cands = {c["candidate_id"]: c for c in state["candidates"]}
        v1, v2 = cands[c1.candidate_id], cands[c2.candidate_id]
        assert v1["outcome"] == "explanation" and v2["outcome"] == "dropped"
        assert v1["candidate"]["onset"] == {"frame": c1.onset.frame, "t": round(c1.onset.t, 6)}
        assert [(a["au"], a["name"]) for a in v1["explanation"]["aus"]] == [(a.au, a.name) for a in ex1.aus]
        assert v1["explanation"]["text"] == ex1.text and v1["explanation"]["latency_ms"] == 12.5
        assert v1["explanation"]["timing_ms"]["since_decision"] == 8.5
        assert v2["dropped"] == {"seq": 6, "time": events[6]["time"], "reason": "queue_full",
                                 "detail": "queue of 1 full (drop_newest)", "latency_ms": None}

        # The fused maps come back byte-identical; nothing else is served as a map.
        for c, ev in ((c1, ev1), (c2, ev2)):
            r = client.get(f"/maps/{c.candidate_id}.png")
            assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content == ev.png
        assert client.get("/maps/nope.png").status_code == 404
        assert client.get("/maps/..%2F..%2Fetc%2Fpasswd.png").status_code == 404

        # The clip named in the explanation event is served; the page's WebM decodes to the same frames.
        r = client.get(f"/clips/{c1.candidate_id}.mp4")
        assert r.status_code == 200 and r.content == clip.read_bytes()
        r = client.get(f"/clips/{c1.candidate_id}.webm")
        assert r.status_code == 200 and r.headers["content-type"] == "video/webm"
        webm = tmp_path / "back.webm"
        webm.write_bytes(r.content)
        cap = cv2.VideoCapture(str(webm))
        n = 0
        while cap.read()[0]:
            n += 1
        assert n == 12
        assert client.get(f"/clips/{c2.candidate_id}.mp4").status_code == 404  # dropped: no clip
        assert client.get("/clips/..%2F..%2Fetc%2Fpasswd.mp4").status_code == 404

        # /metrics: Prometheus text whose counters match the journal and gauges the last status.
        r = client.get("/metrics")
        assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = metric_samples(r.text)
        lab = (("endpoint", endpoint), ("stream", "demo"))
        kinds = Counter(e["type"] for e in events)
        assert samples[("mellm_candidates_total", lab)] == kinds["candidate"] == 2
        assert samples[("mellm_explanations_total", lab)] == kinds["explanation"] == 1
        assert samples[("mellm_errors_total", lab)] == kinds["error"] == 1
        reasons = Counter(e["reason"] for e in events if e["type"] == "dropped")
        for reason in ("queue_full", "timeout", "shutdown", "error"):
            by_reason = (*lab[:1], ("reason", reason), *lab[1:])
            assert samples[("mellm_dropped_total", by_reason)] == reasons[reason]
        assert samples[("mellm_seq_gaps_total", lab)] == 0
        for q in ("0.5", "0.95"):  # the end-to-end latency of the one explanation
            assert samples[("mellm_latency_ms", (*lab[:1], ("quantile", q), *lab[1:]))] == 12.5
        assert samples[("mellm_messages_total", (("endpoint", endpoint),))] == len(events)
        last = events[-1]
        for name, key in (("mellm_fps_in", "fps_in"), ("mellm_fps_processed", "fps_processed"),
                          ("mellm_queue_depth", "queue_depth"), ("mellm_frames_dropped", "frames_dropped"),
                          ("mellm_faces_lost", "faces_lost"), ("mellm_reconnects", "reconnects"),
                          ("mellm_uptime_seconds", "uptime_s")):
            assert samples[(name, lab)] == last[key], name
        types = {ln.split()[2]: ln.split()[3] for ln in r.text.splitlines() if ln.startswith("# TYPE")}
        assert types["mellm_candidates_total"] == "counter" and types["mellm_fps_in"] == "gauge"
    assert not any(t.is_alive() for t in dashboard._threads), "subscriber threads outlived the app"


def _raw_xpub(endpoint: str, ctx: zmq.Context) -> zmq.Socket:
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.bind(endpoint)
    assert sock.poll(10_000), "the dashboard never subscribed"
    assert sock.recv()[:1] == b"\x01"
    return sock


def test_dashboard_when_seq_jumps_shows_gap_and_when_engine_restarts_opens_new_session() -> None:
    """Engine A (seq 0..2), then a publisher that loses seq 5..8, then engine B from seq 0 again."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    dashboard = Dashboard([endpoint])
    with TestClient(create_app(dashboard)) as client:
        a = ZmqPublisher(PublishConfig(endpoint=endpoint, startup_wait_s=0))
        assert a.wait_for_subscribers(1, 10)
        for k in range(3):
            a.emit(status_event("cam0", **{**STATUS, "uptime_s": float(k)}))
        a.close()
        received(client, 3)

        ctx = zmq.Context()
        raw = _raw_xpub(endpoint, ctx)
        for seq in (3, 4, 9):  # 5..8 never arrive
            ev = {**make_event("status", "cam0", **STATUS), "seq": seq}
            raw.send_multipart([topic(ev), json.dumps(ev).encode()])
        raw.close()
        ctx.term()
        state = received(client, 6)
        (stream,) = state["streams"]
        assert stream["session"] == 1 and stream["restarts"] == []
        assert [(g["from"], g["to"], g["missed"]) for g in stream["gaps"]] == [(5, 8, 4)]

        b = ZmqPublisher(PublishConfig(endpoint=endpoint, startup_wait_s=0))
        assert b.wait_for_subscribers(1, 10)
        b.emit(status_event("cam0", **{**STATUS, "uptime_s": 0.5}))
        b.emit(status_event("cam0", **{**STATUS, "uptime_s": 2.5}))
        b.close()
        state = received(client, 8)
        (stream,) = state["streams"]
        assert stream["session"] == 2, "a seq restart must open a new session"
        assert len(stream["gaps"]) == 1, "a seq restart is not a gap"
        assert [(r["after"], r["seq"]) for r in stream["restarts"]] == [(9, 0)]
        assert stream["status"]["uptime_s"] == 2.5
        breaks = [h for h in stream["history"] if h["break"]]
        assert len(breaks) == 1 and stream["history"][-1]["session"] == 2
        samples = metric_samples(client.get("/metrics").text)
        lab = (("endpoint", endpoint), ("stream", "cam0"))
        assert samples[("mellm_seq_gaps_total", lab)] == 1
        assert samples[("mellm_missed_events_total", lab)] == 4
        assert samples[("mellm_engine_restarts_total", lab)] == 1
        assert samples[("mellm_session", lab)] == 2


@pytest.mark.slow
def test_dashboard_events_when_engine_publishes_pushes_updates_to_an_open_page(story) -> None:
    """Server-sent events over a real uvicorn server: an open /events stream receives each change."""
    import uvicorn

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Dashboard([endpoint])), host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, what="uvicorn")
    (c1, ev1, ex1) = story[0]
    pub = ZmqPublisher(PublishConfig(endpoint=endpoint, startup_wait_s=0))
    got: list[dict[str, Any]] = []
    try:
        assert pub.wait_for_subscribers(1, 10)
        with httpx.stream("GET", f"http://127.0.0.1:{port}/events", timeout=10) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            for line in lines:
                if line.startswith("data:"):
                    assert json.loads(line[5:])["kind"] == "hello"
                    break
            pub.emit(status_event("demo", **STATUS))
            pub.emit(candidate_event(c1))
            pub.emit(map_event(c1), ev1.png)
            pub.emit(explanation_event(c1, ex1, Timing(arrived=0.0, decided=0.0).to_json(0.003)))
            for line in lines:
                if line.startswith("data:"):
                    got.append(json.loads(line[5:]))
                    if got[-1]["kind"] == "candidate" and got[-1]["candidate"]["outcome"] == "explanation":
                        break
    finally:
        pub.close()
        server.should_exit = True
        thread.join(10)
    streams = [u["stream"] for u in got if u["kind"] == "stream"]
    assert streams[0]["status"]["fps_in"] == STATUS["fps_in"]
    cands = [u["candidate"] for u in got if u["kind"] == "candidate"]
    assert [c["outcome"] for c in cands] == [None, None, "explanation"]  # candidate, map, explanation
    assert cands[0]["map_url"] is None and cands[1]["map_url"] == f"/maps/{c1.candidate_id}.png"
    assert cands[2]["rev"] > cands[1]["rev"] > cands[0]["rev"]
    assert not thread.is_alive(), "uvicorn did not stop with an open event stream"


def test_state_when_fed_beyond_its_bounds_keeps_only_the_newest() -> None:
    state = DashboardState(history=5, max_candidates=3)
    ep = "tcp://127.0.0.1:1"
    evicted = []
    for seq in range(20):
        if seq % 2:
            ev = make_event("status", "cam0", **STATUS)
        else:
            ev = make_event("candidate", "cam0", candidate_id=f"id{seq}")
        updates = state.ingest(ep, {**ev, "seq": seq}, b"png" if seq % 2 == 0 else None)
        evicted += [u["candidate_id"] for u in updates if u["kind"] == "evict"]
    snap = state.snapshot()
    assert [c["candidate_id"] for c in snap["candidates"]] == ["id14", "id16", "id18"]
    assert evicted == [f"id{k}" for k in range(0, 14, 2)]
    assert state.map_png("id0") is None and state.map_png("id18") == b"png"
    assert len(snap["streams"][0]["history"]) == 5
    assert snap["streams"][0]["counts"]["candidates"] == 10  # counters count all, memory keeps few


@pytest.mark.parametrize("name", ['a"b', "back\\slash", "new\nline", "plain-name_1"])
def test_metrics_when_label_has_special_characters_round_trips_through_the_parser(name: str) -> None:
    state = DashboardState()
    state.ingest("tcp://127.0.0.1:1", {**make_event("status", name, **STATUS), "seq": 0})
    samples = metric_samples(state.metrics_text())
    labels = (("endpoint", "tcp://127.0.0.1:1"), ("stream", name))
    assert samples[("mellm_fps_in", labels)] == STATUS["fps_in"]


def test_render_metrics_when_empty_still_declares_every_family() -> None:
    text = render_metrics([], [], now=10.0, started=4.0, candidates_kept=0)
    fams = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert fams["mellm_candidates"] == "counter" and fams["mellm_queue_depth"] == "gauge"
    assert "mellm_dashboard_uptime_seconds 6.0" in text.splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sub", "tcp://127.0.0.1:5556", "--bind", "nonsense"], "--bind expects HOST:PORT"),
        (["--sub", "not-an-endpoint"], "cannot connect to not-an-endpoint"),
        (["--sub", "tcp://127.0.0.1:5556", "--history", "1"], "--history must be at least 2"),
    ],
)
def test_dashboard_cli_when_argument_is_bad_exits_2_with_one_line(args: list[str], message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "engine.dashboard", *args], cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and message in r.stderr


def test_dashboard_cli_when_port_is_busy_exits_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        args = ["--sub", "tcp://127.0.0.1:5556", "--bind", f"127.0.0.1:{port}"]
        r = subprocess.run([sys.executable, "-m", "engine.dashboard", *args],
                           cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "choose another --bind port" in r.stderr
