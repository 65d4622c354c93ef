"""Plots of a spotting run: per-region score, threshold, detections and ground truth as one PNG.

Researchers tune by looking: one row per region group (brows, eyelids, nose, mouth, chin, cheeks),
each region's score over time, the firing threshold (dashed), detected intervals shaded (micro
orange, macro purple) and ground truth intervals as green bars. matplotlib with the Agg backend
(no display needed).

    python -m spotting.plot --video FILE [--fps F] [--truth truth.csv] [--spotter NAME]
                            [--config engine.toml] [--set spotting.KEY=VALUE ...] --out plot.png

``--truth`` is a CSV in the CAS(ME)^2 long-video layout (as `spotting.inject.write_truth_csv`
writes it; onset and offset are the 3rd and 5th columns, frame indices of the video). ``--config``
and ``--set`` take the engine's config file and overrides (as ``run_stream.py`` does; the face and
spotting sections are used, ``spotting.flow`` included), so a setting is tuned by plotting it.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.cli import cli_main
from engine.errors import UserError
from engine.face.regions import REGION_BASES, REGION_NAMES, base_of
from spotting.evaluate import SpotRun

GROUPS: dict[str, tuple[str, ...]] = {
    "brows": ("brow_inner", "brow_outer"),
    "eyelids": ("eyelid_upper", "eyelid_lower"),
    "nose & cheeks": ("nose_wing", "cheek"),
    "mouth": ("mouth_corner", "lip_upper", "lip_lower"),
    "chin": ("chin",),
}
assert set(b for g in GROUPS.values() for b in g) == set(REGION_BASES)


def plot_run(
    out: str | Path,
    run: SpotRun,
    fps: float,
    truth: Sequence[tuple[int, int]] = (),
    title: str = "",
    suppressed: Sequence[tuple[int, int, str]] = (),
) -> Path:
    """Draw ``run`` (made with ``keep_scores=True``) to ``out`` (PNG); ``truth`` as (onset, offset) frames,
    ``suppressed`` as (onset, offset, suppressor name): the candidates a suppressor dropped (grey, named).

    >>> plot_run("/tmp/p.png", run, 30.0, truth=[(40, 52)])  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(i, t, v) for i, t, v in run.scores if v is not None]
    if not rows:
        raise ValueError(
            "the run holds no scored frame: run the spotter with keep_scores=True on a face video"
        )
    frames = np.array([r[0] for r in rows])
    z = np.stack([np.asarray(r[2][0]) for r in rows])  # type: ignore[index]
    th = [r[2][1] for r in rows]  # type: ignore[index]
    thr = np.stack([np.asarray(x) for x in th]) if all(x is not None for x in th) else None
    fig, axes = plt.subplots(len(GROUPS), 1, figsize=(12, 2.0 * len(GROUPS)), sharex=True)
    tsec = frames / fps
    for ax, (group, bases) in zip(axes, GROUPS.items(), strict=True):
        idx = [i for i, n in enumerate(REGION_NAMES) if base_of(n) in bases]
        for i in idx:
            ax.plot(tsec, z[:, i], lw=0.8, label=REGION_NAMES[i])
        if thr is not None:
            ax.plot(tsec, thr[:, idx].max(axis=1), "k--", lw=0.8, label="threshold")
        for c in run.candidates:
            colour = "tab:orange" if c.kind == "micro" else "tab:purple"
            ax.axvspan(c.onset.frame / fps, c.offset.frame / fps, color=colour, alpha=0.25)
        top = float(np.nanmax(z[:, idx])) if len(idx) else 1.0
        for on, off, why in suppressed:
            ax.axvspan(on / fps, off / fps, color="tab:grey", alpha=0.2, hatch="//")
            ax.text(on / fps, top, why, fontsize=6, color="dimgrey", va="top")
        for on, off in truth:
            ax.plot([on / fps, off / fps], [top * 1.05] * 2, color="tab:green", lw=4, solid_capstyle="butt")
        ax.set_ylabel(group)
        ax.legend(loc="upper right", fontsize=6, ncol=4)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(
        title or "spotting scores (shaded: detections, hatched grey: suppressed, named; green: ground truth)"
    )
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def read_truth_csv(path: Path) -> list[tuple[int, int]]:
    """(onset, offset) frames of a CAS(ME)^2 long-video layout CSV; a missing or non-text file is a
    `UserError`."""
    if not Path(path).is_file():
        raise UserError(f"--truth {path} is not a file; give the ground-truth CSV")
    out = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for k, row in enumerate(csv.reader(fh), 1):
                try:
                    out.append((int(row[2]), int(row[4])))
                except (IndexError, ValueError):
                    raise UserError(
                        f"{path}:{k}: expected the CAS(ME)^2 long-video layout (onset in column 3)"
                    ) from None
    except UnicodeDecodeError:
        raise UserError(f"--truth {path} is not a text CSV; give the ground-truth CSV") from None
    return out


def check_out(out: Path) -> None:
    """Fail before the work on an ``--out`` that cannot be written: a folder, an unknown image
    format, a folder that cannot be created."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give an image file such as {out / 'plot.png'}")
    if out.suffix.lstrip(".").lower() not in formats:
        raise UserError(f"--out {out}: give a file ending in one of .{', .'.join(sorted(formats))}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder of --out {out}: {exc.strerror or exc}") from None


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spotting.plot", description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", required=True, type=Path, help="video file or frame folder")
    ap.add_argument("--fps", type=float, default=0.0, help="frame rate (required for frame folders)")
    ap.add_argument("--truth", type=Path, help="ground truth CSV (CAS(ME)^2 long-video layout)")
    ap.add_argument("--spotter", default="", help="spotter name (default: the config's)")
    ap.add_argument("--config", type=Path, help="engine TOML config (face and spotting sections)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set spotting.bump_threshold_k=8 (repeatable)",
    )
    ap.add_argument("--out", required=True, type=Path, help="PNG to write")
    args = ap.parse_args(argv)
    if not 0 <= args.fps < math.inf:
        raise UserError(f"--fps must be a finite frame rate >= 0 (0: the video's own), got {args.fps}")
    check_out(args.out)
    from engine.config import load_config, parse_override
    from engine.face import create_tracker
    from engine.flow import check_spotting_names, for_spotting
    from engine.sources import open_source
    from engine.sources.config import SourceConfig
    from spotting import create_spotter
    from spotting.evaluate import run_spotting

    overrides = dict(parse_override(item) for item in args.set)
    if args.spotter:
        overrides["spotting.name"] = args.spotter
    engine_cfg = load_config(args.config, overrides)
    cfg = engine_cfg.spotting
    check_spotting_names(cfg)
    flow = for_spotting(cfg.flow, cfg.flow_params)
    truth = read_truth_csv(args.truth) if args.truth else []
    src = open_source(SourceConfig(spec=str(args.video), fps=args.fps))
    fps = float(args.fps or getattr(src, "fps", 0.0) or 30.0)
    tracker = create_tracker(engine_cfg.face)
    try:
        spotter = create_spotter(cfg, "plot", fps, flow=flow)
        run = run_spotting(src.frames(), tracker.process, spotter, keep_scores=True)
    finally:
        tracker.close()
        src.close()
    if not any(v is not None for _, _, v in run.scores):
        raise UserError(
            f"no frame of {args.video} was scored (no face tracked, or shorter than the warm-up); "
            "plot a longer video that shows a face"
        )
    try:
        # Seconds at the rate the face frames came at (a variable-rate .mov states another).
        suppression = getattr(spotter, "suppression", None)
        suppressed = list(suppression.vetoed) if suppression is not None else []
        plot_run(args.out, run, float(getattr(spotter, "fps", fps)), truth, args.video.name, suppressed)
    except OSError as exc:
        raise UserError(f"cannot write --out {args.out}: {exc.strerror or exc}") from None
    stats = spotter.stats() if hasattr(spotter, "stats") else {}
    print(f"{args.out}: {len(run.candidates)} detections, {run.frames} frames; suppression {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
