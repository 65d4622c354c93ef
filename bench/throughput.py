#!/usr/bin/env python3
"""Frames per second of the engine's path without explainer, and the per-stage split.

    python bench/throughput.py [--video PATH] [--demo-seconds 20] [--max-frames N]

Runs the engine's own frame loop (`engine.loop.run_frames`: source → face a few frames ahead on a
helper thread → spotter, flushes included; file sources never drop) and hands every candidate to
the flow + fusion stage (`engine.fusion.build_stage`) as the worker does; prints one table per
source. No explainer is run. In the engine the flow + fusion runs on the worker thread, so the
video thread's rate (the loop without the flow + fusion time) is what decides whether a camera is
kept up with; both figures are printed. Decode and face run on the helper thread, overlapping the
spotter, so the stage times add up to more than the wall time on a multi-core CPU.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.cli import cli_main  # noqa: E402
from engine.config import EngineConfig, load_config  # noqa: E402
from engine.errors import UserError  # noqa: E402
from engine.face.base import FaceTracker  # noqa: E402
from engine.fusion.stage import EvidenceStage  # noqa: E402
from engine.sources.base import Source  # noqa: E402
from engine.types import Candidate, Frame  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "WolfgangLanger_Pexels.mp4"


def run(cfg: EngineConfig, label: str) -> None:
    from engine.face import create_tracker
    from engine.fusion import build_stage
    from engine.sources import open_source

    stage = build_stage(cfg.flow, cfg.fusion)  # a bad name fails before anything opens
    source = open_source(cfg.source, cfg.demo)
    tracker = create_tracker(cfg.face)
    try:
        _measure(cfg, label, source, tracker, stage)
    finally:  # closed on every path: MediaPipe's finaliser at exit prints a traceback otherwise
        tracker.close()
        source.close()


def _measure(
    cfg: EngineConfig, label: str, source: Source, tracker: FaceTracker, stage: EvidenceStage
) -> None:
    """Run the source to its end (or ``max_frames``) through the frame loop; print the split."""
    from engine.flow import for_spotting
    from engine.loop import run_frames
    from spotting import create_spotter

    fps = cfg.source.fps or source.fps or 30.0
    spotter = create_spotter(
        cfg.spotting, "bench", fps, flow=for_spotting(cfg.spotting.flow, cfg.spotting.flow_params)
    )
    times = {"decode": 0.0, "flow+fusion": 0.0}
    cands = 0

    def decoded() -> Iterator[Frame]:  # iterated on the loop's helper thread, as the reader's queue is
        it = iter(source.frames())
        n = 0
        while not (cfg.source.max_frames and n >= cfg.source.max_frames):
            t0 = time.perf_counter()
            frame = next(it, None)
            times["decode"] += time.perf_counter() - t0
            if frame is None:
                return
            n += 1
            yield frame

    def evidence(found: list[Candidate]) -> None:
        nonlocal cands
        t0 = time.perf_counter()
        for c in found:
            stage(c)
            cands += 1
        times["flow+fusion"] += time.perf_counter() - t0

    s = run_frames(decoded(), tracker.process, spotter, evidence)
    frames, total = s.frames, s.wall_s
    split = {"decode": times["decode"], "face": s.face_s, "spot": s.spot_s}
    split["flow+fusion"] = times["flow+fusion"]
    faces = s.face_frames
    print(f"\n== {label}: {frames} frames, {faces} with a face, {cands} candidates, flow {cfg.flow.name}")
    video = max(total - times["flow+fusion"], 1e-9)
    print(f"   video thread (the frame loop, decode+face ahead): {frames / video:8.1f} frames/s  (keeps up?)")
    print(f"   whole path incl. flow+fusion of every candidate, one thread: {frames / total:8.1f} frames/s")
    for name, sec in split.items():
        per = 1000 * sec / max(frames, 1)
        print(f"   {name:<12} {per:8.2f} ms/frame  {100 * sec / total:5.1f} % of the wall time")
    if cands:
        print(f"   flow+fusion per candidate: {1000 * times['flow+fusion'] / cands:.1f} ms")


@cli_main
def main(argv: list[str] | None = None) -> int:
    """Exit 0 after the figures, 2 with one line on a bad flag, 130 on Ctrl-C."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--video", default=str(DEFAULT_VIDEO))
    p.add_argument("--demo-seconds", type=float, default=20.0)
    p.add_argument("--max-frames", type=int, default=0)
    p.add_argument("--flow", default="opencv-tvl1")
    args = p.parse_args(argv)
    common = {"flow.name": args.flow, "source.max_frames": args.max_frames}
    if not 0 < args.demo_seconds < math.inf:
        raise UserError(f"--demo-seconds must be a finite number > 0, got {args.demo_seconds}")
    demo = {**common, "source.spec": "demo", "demo.duration_s": args.demo_seconds}
    demo_cfg = load_config(None, demo)
    from engine.sources import open_source

    try:  # the demo's events must fit its duration: say so now, not after the real video's run
        open_source(demo_cfg.source, demo_cfg.demo).close()
    except UserError as exc:
        raise UserError(
            f"--demo-seconds {args.demo_seconds:g} is too short ({exc}); pass a longer one"
        ) from None
    if Path(args.video).exists():
        run(load_config(None, {**common, "source.spec": args.video}), Path(args.video).name)
    else:
        print(f"(skipping the real video: {args.video} is absent)")
    run(demo_cfg, "demo")
    return 0


if __name__ == "__main__":
    sys.exit(main())
