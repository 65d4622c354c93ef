"""MEGC spotting evaluation: interval matching, the F1 table, and the engine's spotting path over a dataset.

The protocol of the MEGC spotting challenges (2019-2023): a detected interval is a true positive
when its intersection over union with a ground-truth interval not yet matched is at least 0.5
(``|D ∩ G| / |D ∪ G|`` in frames, both ends inclusive); every other detection is a false positive,
every unmatched truth a false negative. Precision, recall and F1 are computed over the whole set
(counts summed over all videos), not averaged per video. Micro and macro are reported apart: a
truth counts by its own type, a detection by its ``kind`` (its duration), and a matched pair is a
true positive of the micro (macro) row only when both are micro (macro): a micro detection of a
macro truth is a true positive overall, a false positive among the micro and a miss among the macro.

Datasets (``--dataset``; sheet from ``../shared/data/annotations``-style files, see
`evaluation.annotations`):

- ``casme2_long``: CAS(ME)^2 long videos. ``--root`` holds either videos ``<root>/rawvideo/s15/
  15_0101disgustingteeth.avi`` (also ``<root>/s15/15_0101disgustingteeth.avi``, any of .avi .mp4
  .mov .mkv) or frame folders ``<root>/rawpic/s15/15_0101disgustingteeth/img1.jpg`` (also without
  ``rawpic/``). The sheet's frame numbers are 1-based (``img1.jpg`` is frame 1). 30 fps.
- ``samm_long``: SAMM long videos. ``--root`` holds frame folders ``<root>/SAMM_longvideos/006_1/
  006_1_0001.jpg`` (also ``<root>/006_1/...``) or videos ``<root>/006_1.mp4``. Frame numbers are
  those of the file names. 200 fps.

In a frame folder the annotation frame ``n`` is the image whose file name carries the number
``n``; in a video file it is the ``n - first_frame``-th decoded frame (``first_frame`` 1 for both
databases).

Command line::

    python -m evaluation.megc --dataset casme2_long --sheet "CAS(ME)^2code_final(Updated).csv" \
        --root /data/CASME2_long [--plot-dir DIR] [--detections-out det.csv]
    python -m evaluation.megc --dataset samm_long --sheet SAMM_LongVideos_V2_Release.csv \
        --detections det.csv        # score a detection file (video,onset,offset[,kind]) only

>>> score = megc_score({"v": ([(10, 20, "micro")], [(12, 21, "micro")])})
>>> score.overall.tp, round(score.overall.f1, 3)
(1, 1.0)
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli import cli_main
from engine.errors import UserError
from engine.intervals import IOU_THRESHOLD, Span, iou, match_intervals  # noqa: F401 (re-exported)
from engine.types import Candidate, FaceObservation, Frame

if TYPE_CHECKING:
    from spotting.common import FlowFn

log = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mov", ".mkv")


@dataclass(slots=True)
class Counts:
    """True positives, detections and truths of one table row; the metrics follow from them."""

    tp: int = 0
    n_det: int = 0
    n_gt: int = 0

    @property
    def fp(self) -> int:
        return self.n_det - self.tp

    @property
    def fn(self) -> int:
        return self.n_gt - self.tp

    @property
    def precision(self) -> float:
        return self.tp / self.n_det if self.n_det else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_gt if self.n_gt else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.n_det += other.n_det
        self.n_gt += other.n_gt


@dataclass(slots=True)
class MegcScore:
    """The MEGC table: ``overall``, ``micro`` and ``macro`` counts summed over ``per_video``."""

    overall: Counts = field(default_factory=Counts)
    micro: Counts = field(default_factory=Counts)
    macro: Counts = field(default_factory=Counts)
    per_video: dict[str, Counts] = field(default_factory=dict)
    kind_mismatch: int = 0  # matched pairs whose detection kind differs from the truth's type

    def add_video(
        self, name: str, detections: Sequence[Span], truth: Sequence[Span]
    ) -> list[tuple[int, int]]:
        """Match one video's detections to its truth and add the counts; returns the matches
        (`match_intervals`) for callers that look at which detection met which truth."""
        pairs = match_intervals(detections, truth)
        row = Counts(len(pairs), len(detections), len(truth))
        self.per_video[name] = row
        self.overall.add(row)
        self.kind_mismatch += sum(1 for di, gi in pairs if truth[gi][2] != detections[di][2])
        for kind, counts in (("micro", self.micro), ("macro", self.macro)):
            counts.tp += sum(1 for di, gi in pairs if truth[gi][2] == kind and detections[di][2] == kind)
            counts.n_gt += sum(1 for g in truth if g[2] == kind)
            counts.n_det += sum(1 for d in detections if d[2] == kind)
        return pairs

    def table(self) -> str:
        """The table as printed by the command line and the benchmark."""
        lines = [f"{'':8} {'TP':>5} {'FP':>5} {'FN':>5} {'precision':>9} {'recall':>7} {'F1':>6}"]
        for name, c in (("micro", self.micro), ("macro", self.macro), ("overall", self.overall)):
            lines.append(
                f"{name:8} {c.tp:5d} {c.fp:5d} {c.fn:5d} {c.precision:9.4f} {c.recall:7.4f} {c.f1:6.4f}"
            )
        if self.kind_mismatch:  # why micro TP + macro TP falls short of overall TP
            n = self.kind_mismatch
            lines.append(
                f"note: {n} kind mismatch{'es' if n > 1 else ''} (e.g. a micro detection of a macro truth): "
                "a true positive in the overall row only; a false positive in the detection's row, "
                "a miss in the truth's"
            )
        return "\n".join(lines)


def megc_score(videos: dict[str, tuple[Sequence[Span], Sequence[Span]]]) -> MegcScore:
    """Score ``{video: (detections, truth)}`` by the MEGC protocol (see the module docstring)."""
    score = MegcScore()
    for name, (det, gt) in videos.items():
        score.add_video(name, det, gt)
    return score


def candidate_spans(
    candidates: Iterable[Candidate], frame_map: Callable[[int], int] | None = None
) -> list[Span]:
    """(onset, offset, kind) of candidates; ``frame_map`` maps stream indices to annotation frames."""
    f = frame_map or (lambda i: i)
    return [(f(c.onset.frame), f(c.offset.frame), c.kind) for c in candidates]


# ---------------------------------------------------------------------------------------------
# The engine's spotting path (face tracker → spotter): the frame loop engine/pipeline.py runs


@dataclass(slots=True)
class SpotRun:
    """What one pass of the spotting path produced: candidates, face frames, time spent in seconds.

    ``face_s`` and ``spot_s`` are the time inside the tracker and the spotter; ``wall_s`` the time
    of the whole pass, in which the tracker runs a few frames ahead on its own thread as in the
    engine (so ``wall_s`` < ``face_s + spot_s`` on a multi-core CPU).
    """

    candidates: list[Candidate]
    frames: int = 0
    face_frames: int = 0
    face_s: float = 0.0
    spot_s: float = 0.0
    wall_s: float = 0.0
    scores: list[tuple[int, float, object]] = field(default_factory=list)

    @property
    def fps(self) -> float:
        """Frames per second of the spotting path (tracker + spotter, overlapped as in the engine),
        producing the frames excluded when they come from a list."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


def run_spotting(
    frames: Iterable[Frame],
    track: Callable[[Frame], FaceObservation | None],
    spotter: object,
    keep_scores: bool = False,
) -> SpotRun:
    """Feed ``frames`` through ``track`` and ``spotter`` with the engine's own frame loop
    (`engine.loop.run_frames`: face tracked a few frames ahead, flush on face loss, time gap,
    resolution change and at the end). With ``keep_scores`` the spotter's per-frame
    ``region_scores`` (and ``thresholds`` when it has them) are kept for plots."""
    from engine.loop import run_frames

    run = SpotRun([])

    def keep(frame: Frame, obs: FaceObservation) -> None:
        z = getattr(spotter, "region_scores", None)
        run.scores.append((frame.index, frame.t, None if z is None else (z.copy(), _thresholds(spotter))))

    hook = keep if keep_scores else None
    s = run_frames(frames, track, spotter, run.candidates.extend, on_spotted=hook)  # type: ignore[arg-type]
    run.frames, run.face_frames, run.wall_s = s.frames, s.face_frames, s.wall_s
    run.face_s, run.spot_s = s.face_s, s.spot_s
    return run


def _thresholds(spotter: object) -> object:
    th = getattr(spotter, "region_thresholds", None)
    return None if th is None else th.copy()


# ---------------------------------------------------------------------------------------------
# Datasets on disk


@dataclass(frozen=True, slots=True)
class VideoItem:
    """One long video of a dataset: its sheet name, where its frames are, and its truth spans."""

    name: str
    path: Path
    truth: tuple[Span, ...]
    fps: float
    first_frame: int = 1


def find_media(root: Path, rel: str, prefixes: Sequence[str]) -> Path | None:
    """The video file or frame folder of ``rel`` (e.g. ``s15/15_0101disgustingteeth``) under ``root``,
    trying each prefix folder (``rawvideo``, ``rawpic``, ``""``) and each video suffix."""
    for prefix in prefixes:
        base = root / prefix / rel if prefix else root / rel
        if base.is_dir():
            return base
        for suffix in VIDEO_SUFFIXES:
            cand = base.with_name(base.name + suffix)
            if cand.is_file():
                return cand
    return None


def dataset_items(dataset: str, sheet: Path, root: Path | None) -> list[VideoItem]:
    """The videos of ``sheet`` (a `evaluation.annotations` layout) with their truth; ``root`` None keeps
    only the names (for ``--detections``). A video of the sheet missing under ``root`` is skipped
    with a warning; none found at all is a `UserError`."""
    from evaluation.annotations import DATASETS, read_long_sheet

    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; choose one of: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[dataset]
    by_video: dict[str, list[Span]] = {}
    for ev in read_long_sheet(sheet, dataset):
        by_video.setdefault(ev.video, []).append((ev.onset, ev.offset, ev.kind))
    items: list[VideoItem] = []
    missing: list[str] = []
    for video, spans in sorted(by_video.items()):
        path = Path(video)
        if root is not None:
            found = find_media(root, video, spec.prefixes)
            if found is None:
                missing.append(video)
                continue
            path = found
        items.append(VideoItem(video, path, tuple(spans), spec.fps))
    if missing:
        log.warning(
            "%s of %s videos of %s not found under %s (e.g. %s)",
            len(missing),
            len(by_video),
            sheet.name,
            root,
            missing[0],
        )
    if root is not None and not items:
        raise UserError(
            f"none of the {len(by_video)} videos of {sheet.name} is under {root}; expected e.g. "
            f"{root / spec.prefixes[0] / next(iter(by_video), '?')} (a video file or a frame folder)"
        )
    return items


def _frame_mapper(path: Path, source: object, first_frame: int) -> Callable[[int], int]:
    """Stream index → annotation frame number (file-name numbers for folders, +first_frame for videos)."""
    numbers = getattr(source, "frame_numbers", None)
    if path.is_dir() and numbers is not None:
        nums = list(numbers() if callable(numbers) else numbers)
        if all(n is not None for n in nums):
            return lambda i: int(nums[min(i, len(nums) - 1)])
    return lambda i: i + first_frame


def spot_item(
    item: VideoItem,
    face_cfg: object,
    spot_cfg: object,
    keep_scores: bool = False,
    tracker_factory: Callable[[], object] | None = None,
    flow: FlowFn | None = None,
) -> tuple[list[Span], SpotRun]:
    """Run the spotting path over one dataset video; spans in the sheet's frame numbering. ``flow``:
    the spotting signal's flow function (`engine.flow.for_spotting`), None = built-in DIS."""
    from engine.face import create_tracker
    from engine.sources import open_source
    from engine.sources.config import SourceConfig
    from spotting import create_spotter

    src = open_source(SourceConfig(spec=str(item.path), fps=item.fps if item.path.is_dir() else 0.0))
    tracker = tracker_factory() if tracker_factory else create_tracker(face_cfg)  # type: ignore[arg-type]
    try:
        fps = float(getattr(src, "fps", 0.0) or item.fps)
        spotter = create_spotter(spot_cfg, stream=item.name, fps=fps, flow=flow)  # type: ignore[arg-type]
        run = run_spotting(src.frames(), tracker.process, spotter, keep_scores)  # type: ignore[attr-defined]
        mapper = _frame_mapper(item.path, src, item.first_frame)
    finally:
        tracker.close()  # type: ignore[attr-defined]
        src.close()
    return candidate_spans(run.candidates, mapper), run


def read_detections(path: Path) -> dict[str, list[Span]]:
    """A detection CSV: ``video,onset,offset[,kind]`` per line (a header line is allowed); kind
    defaults to micro. Frame numbers in the sheet's numbering."""
    out: dict[str, list[Span]] = {}
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read detection file {path}: {exc.strerror or exc}") from None
    with fh:
        rows = _text_rows(fh, path)
        for k, row in enumerate(rows, 1):
            if not row or not "".join(row).strip():
                continue
            try:
                on, off = int(float(row[1])), int(float(row[2]))
            except (IndexError, ValueError, OverflowError):
                if k == 1:
                    continue  # header
                raise UserError(f"{path}:{k}: expected video,onset,offset[,kind], got {row!r}") from None
            kind = row[3].strip().lower() if len(row) > 3 and row[3].strip() else "micro"
            if kind not in ("micro", "macro"):
                raise UserError(f"{path}:{k}: kind must be micro or macro, got {row[3]!r}")
            out.setdefault(row[0].strip(), []).append((on, off, kind))
    return out


def _text_rows(fh: Any, path: Path) -> Iterator[list[str]]:
    """CSV rows of an open text file; a binary file is a `UserError`."""
    try:
        yield from csv.reader(fh)
    except UnicodeDecodeError:
        raise UserError(f"detection file {path} is not a text CSV (video,onset,offset[,kind])") from None


def write_detections(path: Path, detections: dict[str, list[Span]]) -> None:
    """Write detections as `read_detections` reads them (with a header)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "onset", "offset", "kind"])
        for video, spans in detections.items():
            for on, off, kind in spans:
                w.writerow([video, on, off, kind])


def evaluate_dataset(
    items: Sequence[VideoItem],
    face_cfg: object,
    spot_cfg: object,
    plot_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    flow: FlowFn | None = None,
) -> tuple[MegcScore, dict[str, list[Span]], float]:
    """Spot every item, score by MEGC; returns (score, detections per video, spotting-path fps).
    ``flow`` as in `spot_item`."""
    score = MegcScore()
    dets: dict[str, list[Span]] = {}
    frames = 0
    secs = 0.0
    for item in items:
        spans, run = spot_item(item, face_cfg, spot_cfg, keep_scores=plot_dir is not None, flow=flow)
        dets[item.name] = spans
        score.add_video(item.name, spans, list(item.truth))
        frames += run.frames
        secs += run.face_s + run.spot_s
        if plot_dir is not None:
            from evaluation.figures import pair_gain_of, plot_run

            plot_dir.mkdir(parents=True, exist_ok=True)
            plot_run(
                plot_dir / (item.name.replace("/", "_") + ".png"),
                run,
                item.fps,
                truth=[(on - item.first_frame, off - item.first_frame) for on, off, _ in item.truth],
                title=item.name,
                pair_gain=pair_gain_of(spot_cfg),  # type: ignore[arg-type]
            )
        if progress:
            c = score.per_video[item.name]
            progress(f"{item.name}: {c.n_det} detections, {c.tp} TP of {c.n_gt} truths, {run.fps:.0f} fps")
    return score, dets, frames / secs if secs > 0 else 0.0


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evaluation.megc``: the MEGC table of the engine's spotter on a long-video dataset."""
    from evaluation.annotations import DATASETS

    ap = argparse.ArgumentParser(prog="python -m evaluation.megc", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    ap.add_argument("--sheet", required=True, type=Path, help="the dataset's annotation sheet (csv or xlsx)")
    ap.add_argument("--root", type=Path, help="dataset root with the videos or frame folders")
    ap.add_argument("--detections", type=Path, help="score this detection CSV instead of running the spotter")
    ap.add_argument("--detections-out", type=Path, help="write the spotter's detections here")
    ap.add_argument("--config", type=Path, help="engine TOML config (face and spotting sections)")
    ap.add_argument("--plot-dir", type=Path, help="write one signal plot per video here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.sheet.is_file():
        raise UserError(f"annotation sheet {args.sheet} is not a file; pass --sheet FILE")
    if args.sheet.suffix.lower() == ".xlsx" and not zipfile.is_zipfile(args.sheet):
        raise UserError(f"sheet {args.sheet} is not an Excel workbook; pass a real .xlsx or a .csv")
    if args.detections is not None:
        if not args.detections.is_file():
            raise UserError(f"detection file {args.detections} is not a file; pass --detections CSV")
        items = dataset_items(args.dataset, args.sheet, None)
        dets = read_detections(args.detections)
        unknown = sorted(set(dets) - {i.name for i in items})
        if unknown:
            log.warning(
                "%s videos of the detections are not in the sheet (e.g. %s)", len(unknown), unknown[0]
            )
        score = megc_score({i.name: (dets.get(i.name, []), list(i.truth)) for i in items})
        print(score.table())
        return 0
    if args.root is None:
        raise UserError("pass --root DIR (the dataset's videos or frame folders) or --detections CSV")
    if not args.root.is_dir():
        raise UserError(f"dataset root {args.root} is not a folder")
    face_cfg, spot_cfg = _configs(args.config)
    _check_outputs(args.detections_out, args.plot_dir)  # before hours of spotting, not after
    # The command runs the whole path like the pipeline, so it makes the spotting signal's named flow
    # backend as the pipeline does (the spotter itself never imports the later flow stage).
    from engine.flow import check_spotting_names, for_spotting

    check_spotting_names(spot_cfg)
    flow = for_spotting(spot_cfg.flow, spot_cfg.flow_params)  # type: ignore[attr-defined]
    items = dataset_items(args.dataset, args.sheet, args.root)
    score, dets, fps = evaluate_dataset(items, face_cfg, spot_cfg, args.plot_dir, progress=print, flow=flow)
    if args.detections_out is not None:
        try:
            write_detections(args.detections_out, dets)
        except OSError as exc:
            where = args.detections_out
            raise UserError(f"cannot write --detections-out {where}: {exc.strerror or exc}") from None
    print(score.table())
    print(f"spotting path: {fps:.1f} frames/s over {len(items)} videos")
    return 0


def _check_outputs(detections_out: Path | None, plot_dir: Path | None) -> None:
    """Create ``plot_dir`` and the folder of ``detections_out`` now; a path that cannot be written
    is a `UserError`."""
    if detections_out is not None and detections_out.is_dir():
        raise UserError(f"--detections-out {detections_out} is a folder; give a CSV file name")
    folders = [(plot_dir, "--plot-dir")] if plot_dir is not None else []
    if detections_out is not None:
        folders.append((detections_out.parent, "--detections-out"))
    for folder, flag in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the folder {folder} of {flag}: {exc.strerror or exc}") from None


def _configs(path: Path | None) -> tuple[object, object]:
    """(FaceConfig, SpottingConfig) from an engine TOML file, or the defaults."""
    from engine.face.config import FaceConfig
    from spotting.config import SpottingConfig

    if path is None:
        return FaceConfig(), SpottingConfig()
    from engine.config import load_config

    cfg = load_config(path)
    return cfg.face, cfg.spotting


if __name__ == "__main__":
    sys.exit(main())
