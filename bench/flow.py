"""Flow benchmark: OpenCV TV-L1 vs torch-tvl1 on real 256×256 face pairs, side by side in one run.

Pairs come from ../shared/data: nearby frames of the two face videos (real motion, for timing and
agreement) and real face crops warped by known smooth fields (for end-point error). For each thread
count both backends are pinned to it (``cv2.setNumThreads``, ``torch.set_num_threads``) and timed
pair by pair, interleaved, so that machine load hits both alike; the table gives wall and CPU ms
per pair, their ratios, the EPE of each and the EPE ratio, and batch-8 pairs per second. The load
of the machine (load average, per-CPU busy share before and during the run) is printed with it:
on a shared box the wall-clock ratio moves with the neighbours, the CPU-time ratio much less.
CUDA figures are printed only when torch sees a GPU. On a loaded box torch's OpenMP threads spin
at their barriers when more than one is used; ``OMP_WAIT_POLICY=PASSIVE`` in the environment (read
when torch loads) makes them sleep instead, and the header line says whether it was set.

    python -m bench.flow [--threads 1,2] [--pairs 8] [--repeat 3] [--no-compile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.flow.groundtruth import smooth_field, warp_by_flow  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
# Face boxes (x0, y0, side) around MediaPipe's landmark extents in these files (see tests/test_torch_tvl1.py).
SOURCES = [
    ("videos/single_face.mp4", (200, 100, 200)),
    ("videos/WolfgangLanger_Pexels.mp4", (310, 88, 258)),
]
STILL = ("images/single_face.jpg", (172, 178, 222))


def crop(bgr: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    x0, y0, side = box
    grey = cv2.cvtColor(bgr[y0 : y0 + side, x0 : x0 + side], cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)


def video_pairs(n: int, size: int, gap: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` pairs (frame i, frame i + gap) of face crops, spread over both videos."""
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    per = (n + len(SOURCES) - 1) // len(SOURCES)
    for rel, box in SOURCES:
        cap = cv2.VideoCapture(str(DATA / rel))
        frames = []
        while len(frames) < per * (gap + 3):
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(crop(bgr, box, size))
        cap.release()
        for k in range(per):
            i = k * (gap + 3)
            if i + gap < len(frames):
                pairs.append((frames[i], frames[i + gap]))
    return pairs[:n]


def warped_pairs(size: int, frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Real face crops warped by known smooth fields of 1, 2 and 3 px: (prev, next, truth)."""
    still = cv2.imread(str(DATA / STILL[0]))
    faces = [crop(still, STILL[1], size), *frames]
    out = []
    for i, face in enumerate(faces):
        truth = smooth_field(size, size, 1.0 + i % 3, seed=i)
        out.append((face, warp_by_flow(face, truth), truth))
    return out


def epe(flow: np.ndarray, truth: np.ndarray, margin: int = 12) -> float:
    return float(np.linalg.norm(flow - truth, axis=2)[margin:-margin, margin:-margin].mean())


def timed(fn, *args) -> tuple[float, float, object]:
    """(wall s, process CPU s, result) of one call."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - w0, time.process_time() - c0, out


def load_line(label: str, busy: list[float]) -> str:
    """Load average and per-CPU busy percentages as one line."""
    one, five, _ = os.getloadavg()
    cpus = " ".join(f"{b:.0f}%" for b in busy)
    return (
        f"{label}: load average {one:.1f} (1 min) {five:.1f} (5 min), per-CPU busy {cpus}, "
        f"{os.cpu_count()} CPUs"
    )


def measure(ocv, tt, all_pairs, truths, repeat: int) -> dict[str, float]:
    """Interleaved per-pair timing of both backends; median over rounds; EPE from the last round."""
    rounds: dict[str, list[float]] = {k: [] for k in ("cv", "torch", "cv_cpu", "torch_cpu")}
    flows_cv: list[np.ndarray] = []
    flows_torch: list[np.ndarray] = []
    for _ in range(repeat):
        sums = dict.fromkeys(rounds, 0.0)
        flows_cv, flows_torch = [], []
        for p, n in all_pairs:
            w, c, f = timed(ocv.compute, p, n)
            sums["cv"] += w
            sums["cv_cpu"] += c
            flows_cv.append(f)
            w, c, f = timed(tt.compute, p, n)
            sums["torch"] += w
            sums["torch_cpu"] += c
            flows_torch.append(f)
        for k, v in sums.items():
            rounds[k].append(v / len(all_pairs) * 1e3)
    out = {k: statistics.median(v) for k, v in rounds.items()}
    n_video = len(all_pairs) - len(truths)
    out["epe_cv"] = float(np.mean([epe(f, t) for f, t in zip(flows_cv[n_video:], truths, strict=True)]))
    out["epe_torch"] = float(np.mean([epe(f, t) for f, t in zip(flows_torch[n_video:], truths, strict=True)]))
    video = zip(flows_cv[:n_video], flows_torch[:n_video], strict=True)
    diffs = [np.linalg.norm(a - b, axis=2).mean() for a, b in video]
    out["agree"] = float(np.mean(diffs))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flow", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=8, help="video pairs (also the batch size)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts for both backends")
    parser.add_argument("--repeat", type=int, default=3, help="timing rounds (median reported)")
    parser.add_argument("--no-compile", action="store_true", help="run torch-tvl1 eagerly")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(
            f"error: real data folder {DATA} is absent (the benchmark needs ../shared/data)", file=sys.stderr
        )
        return 2
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        print(f"error: --threads {args.threads!r} must be integers joined by commas (1,2)", file=sys.stderr)
        return 2
    import psutil
    import torch

    from engine.flow import create

    before = psutil.cpu_percent(interval=1.0, percpu=True)  # the machine without this benchmark
    print(load_line("before", before))
    pairs = video_pairs(args.pairs, args.size)
    warped = warped_pairs(args.size, [p[0] for p in pairs[:5]])
    ocv = create("opencv-tvl1")
    tt = create("torch-tvl1", compile=not args.no_compile)
    print(
        f"torch {torch.__version__}, OpenCV {cv2.__version__}, {len(pairs)} video pairs + {len(warped)} "
        f"warped pairs of {args.size}x{args.size}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        f"torch-tvl1 {tt.params}"
    )
    prevs, nexts = [p[0] for p in pairs], [p[1] for p in pairs]
    all_pairs = [(p, n) for p, n in pairs] + [(p, n) for p, n, _ in warped]
    truths = [t for _, _, t in warped]
    head = (
        f"{'threads':>7} {'opencv ms':>10} {'torch ms':>9} {'ratio':>6} {'opencv cpu':>11} {'torch cpu':>10} "
        f"{'cpu ratio':>9} {'EPE opencv':>11} {'EPE torch':>10} {'EPE ratio':>9} {'|t-cv| px':>9} "
        f"{'batch8 cv/s':>11} {'batch8 torch/s':>14}"
    )
    rows = []
    psutil.cpu_percent(percpu=True)  # start the during-run interval
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        cv2.setNumThreads(n_threads)
        # torch.compile guards on the thread count: each count compiles (or loads) its own kernels
        t_first = timed(tt.compute, *pairs[0])[0]
        t_first_b = timed(tt.compute_batch, prevs, nexts)[0]
        print(
            f"torch-tvl1 first call at {n_threads} thread(s) (compile={tt.compiled}, warm-up): "
            f"single {t_first:.1f} s, batch {t_first_b:.1f} s"
        )
        r = measure(ocv, tt, all_pairs, truths, args.repeat)
        t_b = statistics.median(timed(tt.compute_batch, prevs, nexts)[0] for _ in range(args.repeat))
        t_cv_b = statistics.median(timed(ocv.compute_batch, prevs, nexts)[0] for _ in range(args.repeat))
        rows.append(
            f"{n_threads:>7} {r['cv']:>10.1f} {r['torch']:>9.1f} {r['cv'] / r['torch']:>5.2f}x "
            f"{r['cv_cpu']:>11.1f} {r['torch_cpu']:>10.1f} {r['cv_cpu'] / r['torch_cpu']:>8.2f}x "
            f"{r['epe_cv']:>11.4f} {r['epe_torch']:>10.4f} {r['epe_torch'] / r['epe_cv']:>9.3f} "
            f"{r['agree']:>9.4f} {len(pairs) / t_cv_b:>11.2f} {len(pairs) / t_b:>14.2f}"
        )
    print(load_line("during", psutil.cpu_percent(percpu=True)))
    print("ms = wall ms per pair (median of rounds), cpu = process CPU ms per pair; ratio = opencv / torch")
    print(head)
    print("\n".join(rows))

    if torch.cuda.is_available():
        gpu = create("torch-tvl1", device="cuda", compile=not args.no_compile)
        gpu.compute_batch(prevs, nexts)
        gpu.compute(*pairs[0])
        t1 = statistics.median(timed(gpu.compute, *pairs[0])[0] for _ in range(args.repeat))
        tb = statistics.median(timed(gpu.compute_batch, prevs, nexts)[0] for _ in range(args.repeat))
        e_gpu = np.mean([epe(gpu.compute(p, n), t) for p, n, t in warped])
        print(
            f"torch-tvl1 (cuda, {torch.cuda.get_device_name()}): {t1 * 1e3:.1f} ms/pair, EPE {e_gpu:.4f}, "
            f"batch-8 {len(pairs) / tb:.2f} pairs/s"
        )
    else:
        print("CUDA: no GPU visible to torch; CUDA figures skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
