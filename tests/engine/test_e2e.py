"""The whole path through the real command line: demo → ZeroMQ subscriber, and real videos."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from engine.config import load_config
from tests.conftest import shared_path
from tests.helpers import ROOT, check_accounting, env, free_port, read_journal, run_cli

DEMO_ARGS = [
    "--source",
    "demo",
    "--set",
    "demo.duration_s=12",
    "--set",
    "demo.events=4",
    "--set",
    "demo.seed=3",
]


def _demo_truth(overrides: dict) -> list:
    from engine.sources import open_source

    cfg = load_config(None, overrides)
    src = open_source(cfg.source, cfg.demo)
    try:
        return list(src.truth)
    finally:
        src.close()


@pytest.mark.slow
def test_demo_end_to_end_with_subscriber(tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    journal = tmp_path / "events.jsonl"
    maps = tmp_path / "maps"
    sub = subprocess.Popen(
        [sys.executable, "-m", "engine.subscribe", endpoint, "--json", "--save-maps", str(maps)],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # the subscriber connects first; the engine waits after bind as well
        proc = run_cli(*DEMO_ARGS, "--pub", endpoint, "--journal", str(journal))
        assert proc.returncode == 0, proc.stderr[-3000:]
        time.sleep(1.0)
    finally:
        sub.send_signal(signal.SIGINT)
        out, err = sub.communicate(timeout=20)
    assert sub.returncode == 0, err

    raw_lines = [ln for ln in journal.read_text(encoding="utf-8").splitlines() if ln.strip()]
    events = [json.loads(ln) for ln in raw_lines]
    # seq: +1 per message, no gap
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert all(e["schema"] == "mellm.event/2" for e in events)
    types = {e["type"] for e in events}
    assert {"candidate", "explanation", "status"} <= types
    assert events[-1]["type"] == "status"
    outcome = check_accounting(events)
    assert "explanation" in outcome.values()

    # the subscriber process saw exactly what the journal holds, byte for byte
    sub_lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert sub_lines == raw_lines

    # fused maps arrived as PNG third frames
    cands = [e for e in events if e["type"] == "candidate"]
    pngs = sorted(maps.glob("*.png"))
    assert {p.stem for p in pngs} == {
        c["candidate_id"] for c in cands if outcome[c["candidate_id"]] == "explanation"
    }
    img = cv2.imread(str(pngs[0]))
    assert img is not None and img.ndim == 3 and img.shape[0] >= 64

    # at least one candidate overlaps an injected ground-truth interval
    truth = _demo_truth({"demo.duration_s": 12, "demo.events": 4, "demo.seed": 3})
    assert truth

    def overlaps(c: dict, g) -> bool:
        return c["onset"]["frame"] <= g.offset.frame and g.onset.frame <= c["offset"]["frame"]

    assert any(overlaps(c, g) for c in cands for g in truth)
    expl = [e for e in events if e["type"] == "explanation"]
    assert all(e["explainer"] == "rules" and e["text"] for e in expl)


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("name", ["no_face.mp4", "face_noface.mov", "noface_face.mov", "single_face.mp4"])
def test_real_videos_run_through(tmp_path: Path, name: str) -> None:
    video = shared_path("videos", name)
    journal = tmp_path / "events.jsonl"
    proc = run_cli(
        "--source", str(video), "--pub", f"tcp://127.0.0.1:{free_port()}", "--journal", str(journal)
    )
    # a video with no face at all explains nothing: exit 3 and the summary says why (issue 24.5)
    assert proc.returncode == (3 if name == "no_face.mp4" else 0), proc.stderr[-3000:]
    events = read_journal(journal)
    check_accounting(events)
    final = events[-1]
    assert final["type"] == "status"
    cap = cv2.VideoCapture(str(video))
    n_frames = 0
    while cap.grab():  # the container's frame count is an estimate: count what decodes
        n_frames += 1
    assert final["frames"] == n_frames
    if name == "no_face.mp4":
        assert not [e for e in events if e["type"] == "candidate"]
        assert final["faces_lost"] == final["frames"]
    elif name != "single_face.mp4":
        assert 0 < final["faces_lost"] < final["frames"]


@pytest.mark.slow
def test_demo_clips_through_the_cli(tmp_path: Path) -> None:
    """clips.enabled: each explained candidate names an MP4 of the right length and size."""
    journal = tmp_path / "events.jsonl"
    clips = tmp_path / "clips"
    proc = run_cli(
        "--source",
        "demo",
        "--set",
        "demo.duration_s=8",
        "--set",
        "demo.events=2",
        "--set",
        "demo.seed=1",
        "--set",
        "clips.enabled=true",
        "--set",
        f"clips.dir='{clips}'",
        "--pub",
        f"tcp://127.0.0.1:{free_port()}",
        "--journal",
        str(journal),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = read_journal(journal)
    cands = {e["candidate_id"]: e for e in events if e["type"] == "candidate"}
    expl = [e for e in events if e["type"] == "explanation"]
    assert expl
    for e in expl:
        path = Path(e["clip"])
        assert path.parent == clips and path.is_file()
        c = cands[e["candidate_id"]]
        cap = cv2.VideoCapture(str(path))
        n = 0
        ok, img = cap.read()
        size = img.shape[:2]
        while ok:
            n += 1
            ok, _ = cap.read()
        expected = (c["offset"]["t"] - c["onset"]["t"] + 1.0) * 30 + 1  # 0.5 s before and after, 30 fps
        assert abs(n - expected) <= 1.5, (n, expected)
        assert size == (256, 512)  # aligned face beside the fused map
