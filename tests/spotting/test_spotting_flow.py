"""The spotting signal's flow backend is chosen by name in the config (spotting.flow), as the map's is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import flow
from spotting import create_spotter
from spotting.config import SpottingConfig
from tests.helpers import check_accounting, free_port, read_journal, run_cli
from tests.spotting.test_spotting import MOUTH_R, Bump, astronaut, iou, run, stream  # noqa: F401 (fixture)


@pytest.mark.parametrize("name", ["region-bump"])
def test_spotter_when_given_a_flow_backend_uses_it_and_still_finds_the_bump(astronaut, name: str) -> None:  # noqa: F811
    backend = flow.create("farneback")
    calls: list[tuple[int, ...]] = []

    def counted(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        calls.append(prev.shape)
        return backend.compute(prev, nxt)

    cfg = SpottingConfig(name=name)
    sp = create_spotter(cfg, "test", 30.0, flow=counted)
    ev = Bump(t0=2.0, landmarks=MOUTH_R, amp=2.0)
    cands = run(sp, stream(astronaut, 30.0, 3.0, [ev]))
    side = cfg.signal_size
    assert calls and all(shape == (side, side) for shape in calls)  # the signal crop went through it
    assert any(iou((c.onset.t, c.offset.t), (ev.t0, ev.t1)) > 0 for c in cands), cands


@pytest.mark.slow
def test_run_stream_when_spotting_flow_is_named_then_runs_and_spots(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    proc = run_cli(
        "--source",
        "demo",
        "--set",
        "demo.duration_s=8",
        "--set",
        "demo.events=2",
        "--set",
        "demo.seed=3",
        "--set",
        "spotting.flow=dis",
        "--set",
        "spotting.flow_params={preset='ultrafast'}",
        "--set",
        "flow.name=dis",
        "--pub",
        f"tcp://127.0.0.1:{free_port()}",
        "--journal",
        str(journal),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = read_journal(journal)
    check_accounting(events)
    assert events[-1]["type"] == "status" and events[-1]["frames"] == 240


def test_run_stream_when_spotting_flow_name_is_unknown_then_one_line() -> None:
    proc = run_cli("--set", "spotting.flow=raft")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown flow backend 'raft'" in proc.stderr
