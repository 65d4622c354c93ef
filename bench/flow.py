"""Flow benchmark: OpenCV TV-L1 vs torch-tvl1 on real 256×256 face pairs, side by side in one run.

Pairs come from ../shared/data: nearby frames of the two face videos (real motion, for timing and
agreement) and real face crops warped by known smooth fields (for end-point error). Prints, per
backend: ms per pair, EPE on the warped pairs, the OpenCV/torch time ratio, batch-8 pairs per
second, and CUDA figures only when torch sees a GPU.

    python -m bench.flow [--threads 1] [--pairs 8] [--no-compile]
"""

from __future__ import annotations

import argparse
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


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flow", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", type=int, default=8, help="video pairs (also the batch size)")
    parser.add_argument("--threads", type=int, default=1, help="threads for both OpenCV and torch")
    parser.add_argument("--repeat", type=int, default=3, help="timing rounds (median reported)")
    parser.add_argument("--no-compile", action="store_true", help="run torch-tvl1 eagerly")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(
            f"error: real data folder {DATA} is absent (the benchmark needs ../shared/data)", file=sys.stderr
        )
        return 2
    import torch

    from engine.flow import create

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    pairs = video_pairs(args.pairs, args.size)
    warped = warped_pairs(args.size, [p[0] for p in pairs[:5]])
    ocv = create("opencv-tvl1")
    tt = create("torch-tvl1", compile=not args.no_compile)
    print(
        f"torch {torch.__version__}, OpenCV {cv2.__version__}, {args.threads} thread(s), "
        f"{len(pairs)} video pairs + {len(warped)} warped pairs of {args.size}x{args.size}"
    )

    t_first, _ = timed(tt.compute, *pairs[0])
    t_first_b, _ = timed(tt.compute_batch, [p[0] for p in pairs], [p[1] for p in pairs])
    print(f"torch-tvl1 first call (compile={tt.compiled}): single {t_first:.1f} s, batch {t_first_b:.1f} s")

    all_pairs = [(p, n) for p, n in pairs] + [(p, n) for p, n, _ in warped]
    t_cv, t_torch = [], []
    for _ in range(args.repeat):  # interleaved so that machine load hits both alike
        a = b = 0.0
        for p, n in all_pairs:
            a += timed(ocv.compute, p, n)[0]
            b += timed(tt.compute, p, n)[0]
        t_cv.append(a / len(all_pairs))
        t_torch.append(b / len(all_pairs))
    ms_cv, ms_torch = statistics.median(t_cv) * 1e3, statistics.median(t_torch) * 1e3

    e_cv = [epe(ocv.compute(p, n), t) for p, n, t in warped]
    e_torch = [epe(tt.compute(p, n), t) for p, n, t in warped]
    agree = [float(np.linalg.norm(ocv.compute(p, n) - tt.compute(p, n), axis=2).mean()) for p, n in pairs]

    prevs, nexts = [p[0] for p in pairs], [p[1] for p in pairs]
    t_batch = statistics.median(timed(tt.compute_batch, prevs, nexts)[0] for _ in range(args.repeat))
    t_cv_batch = statistics.median(timed(ocv.compute_batch, prevs, nexts)[0] for _ in range(args.repeat))

    print(f"{'backend':<22}{'ms/pair':>10}{'EPE px':>10}{'batch pairs/s':>16}")
    print(f"{'opencv-tvl1':<22}{ms_cv:>10.1f}{np.mean(e_cv):>10.4f}{len(pairs) / t_cv_batch:>16.2f}")
    print(f"{'torch-tvl1 (cpu)':<22}{ms_torch:>10.1f}{np.mean(e_torch):>10.4f}{len(pairs) / t_batch:>16.2f}")
    print(
        f"time ratio opencv/torch: {ms_cv / ms_torch:.2f}x   EPE ratio torch/opencv: "
        f"{np.mean(e_torch) / np.mean(e_cv):.3f}   mean |torch - opencv| on video pairs: "
        f"{np.mean(agree):.4f} px"
    )
    print(
        "per warped pair EPE opencv / torch: "
        + ", ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(e_cv, e_torch, strict=True))
    )

    if torch.cuda.is_available():
        gpu = create("torch-tvl1", device="cuda", compile=not args.no_compile)
        gpu.compute_batch(prevs, nexts)
        gpu.compute(*pairs[0])
        t1 = statistics.median(timed(gpu.compute, *pairs[0])[0] for _ in range(args.repeat))
        tb = statistics.median(timed(gpu.compute_batch, prevs, nexts)[0] for _ in range(args.repeat))
        e_gpu = np.mean([epe(gpu.compute(p, n), t) for p, n, t in warped])
        print(
            f"{'torch-tvl1 (cuda)':<22}{t1 * 1e3:>10.1f}{e_gpu:>10.4f}{len(pairs) / tb:>16.2f}"
            f"   ({torch.cuda.get_device_name()})"
        )
    else:
        print("CUDA: no GPU visible to torch; CUDA figures skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
