#!/usr/bin/env python3
"""Soak test: the real engine for N minutes on a looping real video, watched from outside.

    python bench/soak.py                     # 10 minutes, real-time pace, WolfgangLanger_Pexels.mp4
    python bench/soak.py --minutes 1         # quick check
    python bench/soak.py --source rtsp://127.0.0.1:8554/cam --minutes 30   # a live source instead

What it does: writes the video looped end to end into a temporary file (enough loops for the run;
re-encoded with OpenCV's mp4v, so ``t`` stays monotonic), starts ``run_stream.py`` on it with
``--realtime`` (camera pace), a journal and a ZeroMQ endpoint, subscribes to that endpoint, samples
the engine's resident memory (process tree, psutil) every ``--sample-s``, and sends SIGTERM when
the time is up (the shutdown path is part of the soak). Then it reports:

- resident memory: after warm-up (the first sample past ``--warmup-s``), at the end, peak, and the
  growth in % (target < 5 %); plus the slope of a least-squares line through the samples, MB/min;
- queue depth: the largest explanation-queue and frame-queue depth seen in ``status`` events;
- lost candidates: candidates without exactly one explanation/dropped in the journal (target 0),
  the ``dropped`` reasons, publisher refusals/overflow, frames dropped, and seq gaps seen live;
- reconnects and reconnect time: from ``status.reconnects`` and the ``error`` event that opened each
  outage (time from that error to the first status showing the reconnect). Filled in by live sources
  that reconnect (part B of the reliability work); "-" for a file.

``--json-out FILE`` writes every figure as JSON. Exit 0 when the run completed (whatever the
figures), 1 when the engine exited non-zero.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "WolfgangLanger_Pexels.mp4"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def video_fps(path: Path) -> float:
    import cv2

    return float(cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FPS) or 30.0)


def loop_video(src: Path, seconds: float, out: Path) -> tuple[int, float]:
    """Write ``src`` repeated until it lasts ``seconds`` into ``out``; returns (frames, fps)."""
    import cv2

    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {src}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    need = math.ceil(seconds * fps)
    written = 0
    while written < need:
        cap = cv2.VideoCapture(str(src))
        while written < need:
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(frame)
            written += 1
        cap.release()
    writer.release()
    return written, fps


class Watcher:
    """Samples the engine's RSS (process tree) and collects live events from its endpoint."""

    def __init__(self, pid: int, endpoint: str, sample_s: float) -> None:
        import psutil

        from engine.subscribe import SeqTracker, Subscriber

        self.proc = psutil.Process(pid)
        self.sample_s = sample_s
        self.samples: list[tuple[float, float]] = []  # (seconds since start, RSS MiB)
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.tracker = SeqTracker()
        self.gap_lines: list[str] = []
        self._stop = threading.Event()
        self._sub = Subscriber(endpoint)
        self._t0 = time.monotonic()
        self._threads = [
            threading.Thread(target=self._sample, daemon=True),
            threading.Thread(target=self._listen, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _rss_mib(self) -> float:
        import psutil

        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total / 2**20

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(self.sample_s):
            try:
                self.samples.append((time.monotonic() - self._t0, self._rss_mib()))
            except psutil.Error:
                return

    def _listen(self) -> None:
        while not self._stop.is_set():
            msg = self._sub.recv(0.2)
            if msg is None:
                continue
            self.events.append((time.monotonic() - self._t0, msg.event))
            if line := self.tracker.update(msg.event.get("seq"), str(msg.event.get("stream", ""))):
                self.gap_lines.append(line)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        self._sub.close()


def accounting(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Candidates that did not end in exactly one explanation or dropped event, and drop reasons."""
    seen: set[str] = set()
    ends: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for ev in events:
        cid = str(ev.get("candidate_id"))
        if ev.get("type") == "candidate":
            seen.add(cid)
        elif ev.get("type") in ("explanation", "dropped"):
            ends[cid] = ends.get(cid, 0) + 1
            if ev["type"] == "dropped":
                reasons[ev.get("reason", "?")] = reasons.get(ev.get("reason", "?"), 0) + 1
    lost = [c for c in seen if ends.get(c, 0) != 1]
    orphans = [c for c in ends if c not in seen]
    return {
        "candidates": len(seen),
        "explained": sum(1 for e in events if e.get("type") == "explanation"),
        "dropped": reasons,
        "lost": len(lost) + len(orphans),
    }


def reconnect_times(events: list[dict[str, Any]]) -> list[float]:
    """Seconds from each source ``error`` event to the first ``status`` whose ``reconnects`` grew."""
    out: list[float] = []
    last_reconnects = 0
    outage_at: float | None = None
    for ev in events:
        if ev.get("type") == "error" and ev.get("where") == "source" and outage_at is None:
            outage_at = float(ev.get("time", 0))
        elif ev.get("type") == "status":
            r = int(ev.get("reconnects", 0) or 0)
            if r > last_reconnects and outage_at is not None:
                out.append(round(float(ev.get("time", 0)) - outage_at, 3))
                outage_at = None
            last_reconnects = max(last_reconnects, r)
    return out


class RtspServer:
    """A real GStreamer RTSP server (tests/rtsp_server.py under Debian's python3) looping a video.

    ``restart(down_s)`` kills it and starts it again on the same port after ``down_s`` seconds,
    like a camera that resets; ``back_at`` is when it listened again (monotonic clock).
    """

    def __init__(self, video: Path, folder: Path, fps: int) -> None:
        import cv2

        folder.mkdir(parents=True, exist_ok=True)
        cap = cv2.VideoCapture(str(video))
        n = 0
        ok, img = cap.read()
        while ok:
            cv2.imwrite(str(folder / f"{n:05d}.jpg"), img)
            n += 1
            ok, img = cap.read()
        self.folder, self.fps, self.port = folder, fps, free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/face"
        self.proc: subprocess.Popen[str] | None = None
        self.back_at = 0.0
        self.down_s = 0.0
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "/usr/bin/python3",
                str(ROOT / "tests" / "rtsp_server.py"),
                str(self.port),
                str(self.folder),
                "--fps",
                str(self.fps),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if line.strip() != "ready":
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise SystemExit(f"the RTSP server did not start: {err.strip() or line.strip()}")
        self.back_at = time.monotonic()

    def restart(self, down_s: float) -> None:
        self.stop()
        time.sleep(down_s)
        self.down_s = down_s
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def memory_figures(samples: list[tuple[float, float]], warmup_s: float) -> dict[str, Any]:
    if not samples:
        return {}
    warm = [s for s in samples if s[0] >= warmup_s] or samples[-1:]
    start, end = warm[0][1], warm[-1][1]
    n = len(warm)
    slope = 0.0
    if n >= 2:
        mt = sum(t for t, _ in warm) / n
        mr = sum(r for _, r in warm) / n
        den = sum((t - mt) ** 2 for t, _ in warm)
        slope = sum((t - mt) * (r - mr) for t, r in warm) / den * 60 if den else 0.0
    return {
        "rss_warm_mib": round(start, 1),
        "rss_end_mib": round(end, 1),
        "rss_peak_mib": round(max(r for _, r in samples), 1),
        "rss_growth_pct": round(100.0 * (end - start) / start, 2) if start else None,
        "rss_slope_mib_per_min": round(slope, 3),
        "samples": n,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="looped to last the whole run")
    p.add_argument("--source", help="use this source spec instead of the looped video (e.g. rtsp://...)")
    p.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pace the file at its frame rate like a camera (default on)",
    )
    p.add_argument("--sample-s", type=float, default=5.0, help="seconds between RSS samples")
    p.add_argument("--warmup-s", type=float, default=60.0, help="memory growth is measured from here")
    p.add_argument(
        "--rtsp-restart-at",
        type=float,
        metavar="MIN",
        help="serve the video over a real RTSP server, kill it at this minute and restart it 2 s later",
    )
    p.add_argument("--explainer", default="rules")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to run_stream.py")
    p.add_argument("--json-out", type=Path)
    p.add_argument("--keep", type=Path, help="keep the journal and engine log in this folder")
    args = p.parse_args(argv)
    duration = args.minutes * 60.0
    warmup = min(args.warmup_s, duration / 4)

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rtsp: RtspServer | None = None
        if args.source:
            spec = args.source
        elif args.rtsp_restart_at is not None:
            rtsp = RtspServer(args.video, Path(tmp) / "frames", fps=round(video_fps(args.video)))
            spec = rtsp.url
        else:
            if not args.video.is_file():
                raise SystemExit(f"video {args.video} not found (../shared/data/videos); give --video")
            spec = str(Path(tmp) / "looped.mp4")
            t0 = time.monotonic()
            frames, fps = loop_video(args.video, duration + 30.0, Path(spec))
            print(
                f"looped {args.video.name}: {frames} frames at {fps:.3f} fps in {time.monotonic() - t0:.0f} s"
            )
        journal = work / "soak.jsonl"
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        cmd = [
            sys.executable,
            str(ROOT / "run_stream.py"),
            "--source",
            spec,
            "--journal",
            str(journal),
            "--pub",
            endpoint,
            "--explainer",
            args.explainer,
            "--log-level",
            "WARNING",
        ]
        if args.realtime:
            cmd.append("--realtime")
        for item in args.set:
            cmd += ["--set", item]
        log_path = work / "engine.log"
        with open(log_path, "w") as log:
            engine = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            watcher = Watcher(engine.pid, endpoint, args.sample_s)
            started = time.monotonic()
            print(f"engine pid {engine.pid} on {spec} for {args.minutes:g} min ...", flush=True)
            ended_early = False
            restarted = False
            while time.monotonic() - started < duration:
                if engine.poll() is not None:
                    ended_early = True
                    break
                if (
                    rtsp is not None
                    and not restarted
                    and time.monotonic() - started >= args.rtsp_restart_at * 60
                ):
                    rtsp.restart(down_s=2.0)
                    restarted = True
                    print("RTSP server killed and restarted", flush=True)
                time.sleep(1.0)
            t_sig = time.monotonic()
            if engine.poll() is None:
                engine.send_signal(signal.SIGTERM)
            try:
                code = engine.wait(timeout=120)
            except subprocess.TimeoutExpired:
                engine.kill()
                code = engine.wait()
            stop_s = time.monotonic() - t_sig
            watcher.stop()
            if rtsp is not None:
                rtsp.stop()

        from engine.publish import read_lines

        events = [json.loads(x) for x in read_lines(journal)] if journal.exists() else []
        statuses = [e for e in events if e["type"] == "status"]
        final = statuses[-1] if statuses else {}
        figures: dict[str, Any] = {
            "minutes": round((t_sig - started) / 60, 2),
            "engine_exit": code,
            "ended_before_deadline": ended_early,
            "stop_s": round(stop_s, 2),
            "memory": memory_figures(watcher.samples, warmup),
            "max_queue_depth": max((int(s.get("queue_depth", 0)) for s in statuses), default=None),
            "max_frame_queue_depth": max(
                (int(s.get("frame_queue_depth", 0)) for s in statuses), default=None
            ),
            "frames": final.get("frames"),
            "fps_in_last": final.get("fps_in"),
            "frames_dropped": final.get("frames_dropped"),
            "faces_lost": final.get("faces_lost"),
            "accounting": accounting(events),
            "publish": final.get("publish"),
            "journal_lines": len(events),
            "live_events": len(watcher.events),
            "live_seq_gaps": watcher.tracker.missed,
            "reconnects": final.get("reconnects"),
            "reconnect_s": reconnect_times(events),
            # outage seen by the source: stream lost -> first frame again; minus the 2 s the server
            # was down, what remains is the time to reconnect once the server is back
            "outage_s": final.get("last_outage_s"),
            "server_down_s": rtsp.down_s if rtsp is not None else None,
            "last_status_is_final": bool(events) and events[-1]["type"] == "status",
        }
        mem = figures["memory"]
        print(
            f"run: {figures['minutes']} min, engine exit {code}, stop took {figures['stop_s']} s, "
            f"{figures['frames']} frames, last fps_in {figures['fps_in_last']}"
        )
        print(
            f"resident memory: warm {mem.get('rss_warm_mib')} MiB -> end {mem.get('rss_end_mib')} MiB, "
            f"peak {mem.get('rss_peak_mib')} MiB, growth {mem.get('rss_growth_pct')} %, "
            f"slope {mem.get('rss_slope_mib_per_min')} MiB/min ({mem.get('samples')} samples)"
        )
        print(
            f"queue depth: explanation max {figures['max_queue_depth']}, frames max "
            f"{figures['max_frame_queue_depth']}; frames dropped {figures['frames_dropped']}"
        )
        acc = figures["accounting"]
        print(
            f"candidates {acc['candidates']}, explained {acc['explained']}, dropped {acc['dropped']}, "
            f"LOST {acc['lost']}; live events {figures['live_events']} of {len(events)} journaled, "
            f"live seq gaps {figures['live_seq_gaps']}"
        )
        rt = figures["reconnect_s"]
        print(f"reconnects {figures['reconnects']}, error->status time {rt if rt else '-'}")
        if rtsp is not None and figures["outage_s"]:
            back = figures["outage_s"] - rtsp.down_s
            print(
                f"RTSP outage {figures['outage_s']:.2f} s (stream lost -> first frame), server down "
                f"{rtsp.down_s:.1f} s: reconnect time after the server was back <= {back:.2f} s"
            )
        if args.json_out:
            args.json_out.write_text(json.dumps(figures, indent=2))
        if code != 0:
            print(f"engine log: {log_path}\n" + log_path.read_text()[-3000:])
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
