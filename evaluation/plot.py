"""Plot a spotting run on one video: per-region score, threshold, detections and ground truth as one PNG.

Researchers tune by looking (the figure: `evaluation.figures.plot_run`).

    python -m evaluation.plot --video FILE [--fps F] [--truth truth.csv] [--spotter NAME]
                            [--config engine.toml] [--set spotting.KEY=VALUE ...] --out plot.png

``--truth`` is a CSV in the CAS(ME)^2 long-video layout (as `engine.synth.write_truth_csv`
writes it; onset and offset are the 3rd and 5th columns, frame indices of the video). Only the
rows whose video path (11th column) names the plotted video are drawn (`names_video`). ``--config``
and ``--set`` take the engine's config file and overrides (as ``run_stream.py`` does; the face and
spotting sections are used, ``spotting.flow`` included), so a setting is tuned by plotting it.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from engine.cli import cli_main
from engine.errors import UserError
from evaluation.figures import detection_rules, pair_gain_of, plot_run
from evaluation.megc import VIDEO_SUFFIXES, run_spotting


def read_truth_csv(path: Path) -> list[tuple[int, int, str]]:
    """(onset, offset, video) of a CAS(ME)^2 long-video layout CSV (video: the 11th column, '' when
    the sheet has none); a missing or non-text file is a `UserError`."""
    if not Path(path).is_file():
        raise UserError(f"--truth {path} is not a file; give the ground-truth CSV")
    out = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for k, row in enumerate(csv.reader(fh), 1):
                try:
                    out.append((int(row[2]), int(row[4]), row[10].strip() if len(row) > 10 else ""))
                except (IndexError, ValueError):
                    raise UserError(
                        f"{path}:{k}: expected the CAS(ME)^2 long-video layout (onset in column 3)"
                    ) from None
    except UnicodeDecodeError:
        raise UserError(f"--truth {path} is not a text CSV; give the ground-truth CSV") from None
    return out


def names_video(sheet_video: str, video: Path) -> bool:
    """True when a sheet's video path (``s15/15_0101disgustingteeth``) names ``video``: its last
    parts, without a video suffix, end the video's path (as `evaluation.megc.find_media` finds it).

    >>> names_video("s15/15_0101x", Path("CASME2_long/rawvideo/s15/15_0101x.avi"))
    True
    >>> names_video("s15/15_0101x", Path("rawpic/s16/15_0101x"))
    False
    """
    want = PurePosixPath(sheet_video.replace("\\", "/")).parts
    if want and PurePosixPath(want[-1]).suffix.lower() in VIDEO_SUFFIXES:
        want = (*want[:-1], PurePosixPath(want[-1]).stem)
    have = video.resolve().parts
    if video.suffix.lower() in VIDEO_SUFFIXES:
        have = (*have[:-1], video.stem)
    return bool(want) and tuple(have[-len(want) :]) == tuple(want)


def truth_of(rows: list[tuple[int, int, str]], video: Path, sheet: Path) -> list[tuple[int, int]]:
    """The (onset, offset) rows of ``video`` only. A sheet without a video column, or naming one
    video only, is taken as this video's (with a note when the names differ); a sheet of several
    videos none of which is this one is a `UserError`."""
    named = sorted({v for _, _, v in rows if v})
    if not named:
        return [(on, off) for on, off, _ in rows]
    mine = [(on, off) for on, off, v in rows if v and names_video(v, video)]
    if mine:
        return mine
    if len(named) == 1:
        print(
            f"note: --truth {sheet} names video {named[0]!r}, not {video.name!r}; drawing its "
            f"{len(rows)} intervals as this video's",
            file=sys.stderr,
        )
        return [(on, off) for on, off, _ in rows]
    shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
    raise UserError(
        f"--truth {sheet} has no interval of {video.name} (it names {shown}); plot one of its videos "
        "or give this video's sheet"
    )


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
    truth = truth_of(read_truth_csv(args.truth), args.video, args.truth) if args.truth else []
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
        plot_run(
            args.out,
            run,
            float(getattr(spotter, "fps", fps)),
            truth,
            args.video.name,
            suppressed,
            pair_gain=pair_gain_of(cfg),
        )
    except OSError as exc:
        raise UserError(f"cannot write --out {args.out}: {exc.strerror or exc}") from None
    stats = spotter.stats() if hasattr(spotter, "stats") else {}
    rules = Counter(detection_rules(run, pair_gain_of(cfg)))
    fired = ", ".join(f"{n} by {rule or 'an undrawn rule'}" for rule, n in sorted(rules.items()))
    print(
        f"{args.out}: {len(run.candidates)} detections{f' ({fired})' if fired else ''}, {run.frames} frames, "
        f"{len(truth)} truth intervals; suppression {stats}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
