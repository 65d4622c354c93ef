#!/usr/bin/env python3
"""Frames per second of the engine's path without explainer, and the per-stage split.

    python bench/throughput.py [--video PATH] [--demo-seconds 20] [--max-frames N]

Runs source → face → spotter as the stream does (file sources never drop), and the flow + fusion
of every candidate as the worker does; prints one table per source. No explainer is run. In the
engine the flow + fusion runs on the worker thread, so the video thread's rate is what decides
whether a camera is kept up with; both figures are printed. The stages are timed one after the
other here; in the engine the face stage runs a few frames ahead of the spotter on a helper thread
(`engine.face.ahead`), so the summed video-thread figure is a lower bound of its rate.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.cli import cli_main  # noqa: E402
from engine.config import EngineConfig, load_config  # noqa: E402
from engine.errors import UserError  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "WolfgangLanger_Pexels.mp4"


def run(cfg: EngineConfig, label: str) -> None:
    from engine import flow
    from engine.face import create_tracker
    from engine.fusion import build_evidence
    from engine.sources import open_source
    from spotting import create_spotter

    backend = flow.create(cfg.flow.name, **cfg.flow.params)  # a bad name fails before anything opens
    source = open_source(cfg.source, cfg.demo)
    tracker = create_tracker(cfg.face)
    try:
        _measure(cfg, label, source, tracker, backend, create_spotter, build_evidence)
    finally:  # closed on every path: MediaPipe's finaliser at exit prints a traceback otherwise
        tracker.close()
        source.close()


def _measure(
    cfg: EngineConfig,
    label: str,
    source: Any,
    tracker: Any,
    backend: Any,
    create_spotter: Any,
    build_evidence: Any,
) -> None:
    """Run the source to its end (or ``max_frames``) and print the per-stage split."""
    fps = cfg.source.fps or source.fps or 30.0
    from engine.flow import for_spotting

    spotter = create_spotter(
        cfg.spotting, "bench", fps, flow=for_spotting(cfg.spotting.flow, cfg.spotting.flow_params)
    )
    times = {"decode": 0.0, "face": 0.0, "spot": 0.0, "flow+fusion": 0.0}
    frames = faces = cands = 0
    it = iter(source.frames())
    t_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        frame = next(it, None)
        t1 = time.perf_counter()
        times["decode"] += t1 - t0
        if frame is None or (cfg.source.max_frames and frames >= cfg.source.max_frames):
            break
        frames += 1
        obs = tracker.process(frame)
        t2 = time.perf_counter()
        times["face"] += t2 - t1
        if obs is None:
            spotter.reset()
            continue
        faces += 1
        found = spotter.update(obs)
        t3 = time.perf_counter()
        times["spot"] += t3 - t2
        for c in found:
            build_evidence(c, backend, cfg.fusion)
            cands += 1
        times["flow+fusion"] += time.perf_counter() - t3
    total = time.perf_counter() - t_start
    print(f"\n== {label}: {frames} frames, {faces} with a face, {cands} candidates, flow {cfg.flow.name}")
    video = times["decode"] + times["face"] + times["spot"]
    print(f"   video thread (decode+face+spot): {frames / video:8.1f} frames/s  (keeps up with a camera?)")
    print(f"   whole path incl. flow+fusion of every candidate, one thread: {frames / total:8.1f} frames/s")
    for stage, s in times.items():
        per = 1000 * s / max(frames, 1)
        print(f"   {stage:<12} {per:8.2f} ms/frame  {100 * s / total:5.1f} %")
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
