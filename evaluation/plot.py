"""Plot a spotting run on one video: per-region score, threshold, detections and ground truth as one PNG.

Researchers tune by looking (the figure: `evaluation.figures.plot_run`).

    python -m evaluation.plot --video FILE [--fps F] [--truth truth.csv] [--spotter NAME]
                            [--config engine.toml] [--set spotting.KEY=VALUE ...] --out plot.png

``--truth`` is a CSV in the CAS(ME)^2 long-video layout (as `engine.synth.write_truth_csv`
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

from engine.cli import cli_main
from engine.errors import UserError
from evaluation.figures import plot_run
from evaluation.megc import run_spotting


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
    ap = argparse.ArgumentParser(prog="python -m evaluation.plot", description=__doc__.split("\n\n")[0])
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
        help="override a config key, e.g. --set spotting.bump.threshold_k=8 (repeatable)",
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
