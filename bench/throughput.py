#!/usr/bin/env python3
"""Frames per second of the engine's path without explainer, and the per-stage split.

    python bench/throughput.py [--video PATH] [--demo-seconds 20] [--max-frames N]

Runs source → face → spotter as the stream does (file sources never drop), and the flow + fusion
of every candidate as the worker does; prints one table per source. No explainer is run. In the
engine the flow + fusion runs on the worker thread, so the video thread's rate is what decides
whether a camera is kept up with; both figures are printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import EngineConfig, load_config  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "WolfgangLanger_Pexels.mp4"


def run(cfg: EngineConfig, label: str) -> None:
    from engine import flow
    from engine.face import create_tracker
    from engine.fusion import build_evidence
    from engine.sources import open_source
    from spotting import create_spotter

    source = open_source(cfg.source, cfg.demo)
    tracker = create_tracker(cfg.face)
    fps = cfg.source.fps or source.fps or 30.0
    spotter = create_spotter(cfg.spotting, "bench", fps)
    backend = flow.create(cfg.flow.name, **cfg.flow.params)
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
    tracker.close()
    source.close()
    print(f"\n== {label}: {frames} frames, {faces} with a face, {cands} candidates, flow {cfg.flow.name}")
    video = times["decode"] + times["face"] + times["spot"]
    print(f"   video thread (decode+face+spot): {frames / video:8.1f} frames/s  (keeps up with a camera?)")
    print(f"   whole path incl. flow+fusion of every candidate, one thread: {frames / total:8.1f} frames/s")
    for stage, s in times.items():
        per = 1000 * s / max(frames, 1)
        print(f"   {stage:<12} {per:8.2f} ms/frame  {100 * s / total:5.1f} %")
    if cands:
        print(f"   flow+fusion per candidate: {1000 * times['flow+fusion'] / cands:.1f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--video", default=str(DEFAULT_VIDEO))
    p.add_argument("--demo-seconds", type=float, default=20.0)
    p.add_argument("--max-frames", type=int, default=0)
    p.add_argument("--flow", default="opencv-tvl1")
    args = p.parse_args()
    common = {"flow.name": args.flow, "source.max_frames": args.max_frames}
    if Path(args.video).exists():
        run(load_config(None, {**common, "source.spec": args.video}), Path(args.video).name)
    else:
        print(f"(skipping the real video: {args.video} is absent)")
    run(load_config(None, {**common, "source.spec": "demo", "demo.duration_s": args.demo_seconds}), "demo")


if __name__ == "__main__":
    main()
