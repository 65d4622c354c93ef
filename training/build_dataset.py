"""Instruction-description dataset from annotation sheets and frame folders (MELLM training data).

For each annotated clip: the onset and apex frames from the database's frame folder → the engine's
own face stage (MediaPipe landmarks + similarity alignment, `engine.face.create_tracker`), flow
backend (`engine.flow.create`) and fusion (`engine.fusion.build_evidence`) — the very code path the
stream runs, so training and inference see the same pictures → the MELLM v1 prompt
(`engine.explain.prompts.vlm_prompt`) and a description answer written from the labels.

Frame-folder layouts (``--frames-layout``; ``--pattern`` for anything else, a `str.format`
template over ``root``, ``dataset``, ``subject``, ``clip``, ``emotion``, ``frame``):

| layout | pattern | example |
|---|---|---|
| casme2 | ``{root}/sub{subject}/{clip}/img{frame}.jpg`` | ROOT/sub01/EP02_01f/img46.jpg |
| samm | ``{root}/{subject}/{clip}/{subject}_{frame:05d}.jpg`` | ROOT/006/006_1_2/006_05562.jpg |
| casme3 | ``{root}/{subject}/{clip}/color/{frame}.jpg`` | ROOT/spNO.1/b/color/166.jpg |
| mmew | ``{root}/{emotion}/{clip}/{frame}.jpg`` | ROOT/happiness/S01-01-001/1.jpg |
| smic | ``{root}/s{subject}/{clip}/image{frame}.jpg`` | ROOT/s20/s20_ne_01/image17581039.jpg |

DFME ships without a documented folder layout here: pass ``--pattern``.

Output folder::

    dataset.jsonl        one line per clip: id, record, image, messages (chat format), regions
    images/<id>.png      the fused map (what the vlm explainer is shown at run time)
    evidence/<id>.npz    onset/apex faces and the flow (float16), to rebuild an Evidence exactly
    splits/<fold>.json   leave-one-subject-out folds: {"name", "test_subject", "train", "test"}
    issues.jsonl         every sheet row or clip that was not taken as is, with file and line
    build.json           what was built with which settings

``messages`` is what a Qwen-VL processor's chat template takes: a user turn with
``{"type": "image", "image": "images/<id>.png"}`` (relative to the JSONL's folder) and the prompt
text, and an assistant turn with the answer.

    python -m training.build_dataset --sheet CASME2-coding-20190701.csv --frames ROOT --out data/casme2
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import UserError
from engine.explain.prompts import direction_word, region_label, vlm_prompt
from engine.facs import au_name, classify, megc_class
from engine.types import Candidate, Evidence, FaceObservation, RegionStat, TimePoint
from training.records import MERecord, SheetIssue

log = logging.getLogger(__name__)

FRAME_PATTERNS: dict[str, str] = {
    "casme2": "{root}/sub{subject}/{clip}/img{frame}.jpg",
    "samm": "{root}/{subject}/{clip}/{subject}_{frame:05d}.jpg",
    "casme3": "{root}/{subject}/{clip}/color/{frame}.jpg",
    "mmew": "{root}/{emotion}/{clip}/{frame}.jpg",
    "smic": "{root}/s{subject}/{clip}/image{frame}.jpg",
}
DATASET_FILE = "dataset.jsonl"
# Step 1 lists regions whose mean motion reaches this share of the strongest one (at most
# MAX_REGIONS of them) and at least NOISE_PX: what stands out, not the flow noise.
REL_TO_PEAK = 0.4
NOISE_PX = 0.1
MAX_REGIONS = 4
_SIDE_WORD = {"L": "left ", "R": "right ", "B": ""}


def sample_id(record: MERecord) -> str:
    """File-safe unique id of a record: ``casme2_01_EP02_01f_46``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{record.dataset}_{record.subject}_{record.clip}_{record.onset}")


def frame_path(record: MERecord, frame: int, root: str | Path, pattern: str) -> Path:
    """Path of ``frame`` of ``record``'s clip under ``root`` following ``pattern``."""
    try:
        return Path(
            pattern.format(
                root=str(root).rstrip("/"),
                dataset=record.dataset,
                subject=record.subject,
                clip=record.clip,
                emotion=record.emotion,
                frame=frame,
            )
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(
            f"frame pattern {pattern!r} is not valid ({exc}); use fields root, dataset, subject, clip, "
            "emotion, frame, e.g. '{root}/sub{subject}/{clip}/img{frame}.jpg'"
        ) from None


# ---------------------------------------------------------------------------------------------
# The answer


def motion_sentence(regions: Sequence[RegionStat]) -> str:
    """Step 1 from the region statistics: the regions that stand out, where they move, how far."""
    ranked = sorted(regions, key=lambda r: -r.mean_mag)
    if not ranked or ranked[0].mean_mag < NOISE_PX:
        peak = ranked[0].mean_mag if ranked else 0.0
        return f"no facial region moves clearly above the flow noise (strongest mean motion {peak:.2f} px)."
    floor = max(REL_TO_PEAK * ranked[0].mean_mag, NOISE_PX)
    parts = [
        f"the {region_label(r.name)} moves {direction_word(r.direction_deg)} "
        f"(mean {r.mean_mag:.2f} px, max {r.max_mag:.2f} px)"
        for r in ranked[:MAX_REGIONS]
        if r.mean_mag >= floor
    ]
    return "; ".join(parts) + "."


def describe(record: MERecord, regions: Sequence[RegionStat]) -> str:
    """The description answer of one clip, in MELLM v1's three steps, from its labels.

    Step 1 says what the flow shows (region statistics), step 2 the coded AUs with their FACS names
    and sides, step 3 why the emotion follows (the FACS pattern the AUs match,
    `engine.facs.classify`), and the last line is the format the parser reads back.
    """
    coded = [c for c in record.aus]
    step2 = (
        "these movements correspond to "
        + ", ".join(
            f"{_SIDE_WORD[c.side]}AU{c.au} ({au_name(c.au).lower()}"
            + (f", intensity {c.intensity}" if c.intensity else "")
            + ")"
            for c in coded
        )
        + "."
        if coded
        else "no action unit was coded for these movements."
    )
    detail = record.detail
    cls = record.megc3 or megc_class(detail)
    if record.dataset == "smic" or (cls != "others" and detail == "others"):
        detail = ""  # SMIC labels only the class
    said = f"{cls} ({detail})" if detail and detail != cls else cls
    match = classify({c.au: c.side for c in coded})
    combo = "+".join(f"AU{c.au}" for c in coded)
    if match.pattern is not None and (match.detail == detail or (not detail and match.emotion == cls)):
        step3 = f"{match.reason()}, so the expression is {said}."
    elif match.pattern is not None:
        step3 = (
            f"{combo} is closest to the {match.detail} pattern {match.pattern.label()} "
            f"({match.pattern.source}), but in the context of this movement the expression reads as {said}."
        )
    elif coded:
        step3 = f"{combo} matches no FACS emotion prototype on its own; the expression reads as {said}."
    else:
        step3 = f"the expression reads as {said}."
    codes = ", ".join(f"{_SIDE_WORD[c.side]}AU{c.au}" for c in coded)
    final = f"AUs: {codes or 'none'}; Emotion: {said}"
    return f"Step 1: {motion_sentence(regions)}\nStep 2: {step2}\nStep 3: {step3}\n{final}"


def chat_messages(image: str, prompt: str, answer: str | None) -> list[dict[str, Any]]:
    """The conversation in the chat format a Qwen-VL processor's template takes."""
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}]}
    ]
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


# ---------------------------------------------------------------------------------------------
# Evidence on disk


def save_evidence(path: Path, ev: Evidence) -> None:
    """Faces (crop, landmarks, transform) and flow (float16) of ``ev``, to rebuild it (`load_evidence`)."""
    c = ev.candidate
    arrays: dict[str, np.ndarray] = {"flow": ev.flow.astype(np.float16)}
    for tag, face in (("onset", c.onset_face), ("apex", c.apex_face)):
        arrays[f"{tag}_crop"] = face.crop
        arrays[f"{tag}_landmarks"] = face.landmarks.astype(np.float32)
        arrays[f"{tag}_crop_landmarks"] = face.crop_landmarks.astype(np.float32)
        arrays[f"{tag}_transform"] = face.transform.astype(np.float32)
    np.savez_compressed(path, **arrays)


def load_evidence(item: dict[str, Any], folder: Path) -> Evidence:
    """The `Evidence` of a dataset line: fused map from its PNG, regions from the line, the rest
    (faces, flow) from ``evidence/<id>.npz`` when present."""
    fused = cv2.imread(str(folder / item["image"]), cv2.IMREAD_COLOR)
    if fused is None:
        raise UserError(f"dataset image {folder / item['image']} is missing; rebuild the dataset")
    regions = tuple(RegionStat(**r) for r in item["regions"])
    rec = item["record"]
    fps = float(rec["fps"]) or 1.0
    npz_path = folder / item.get("evidence", "")
    if item.get("evidence") and npz_path.is_file():
        z = np.load(npz_path)
        flow = z["flow"].astype(np.float32)
        faces = [
            FaceObservation(
                int(rec[tag] if rec[tag] is not None else rec["onset"]),
                float(rec[tag] if rec[tag] is not None else rec["onset"]) / fps,
                z[f"{tag}_landmarks"],
                z[f"{tag}_crop"],
                z[f"{tag}_transform"],
                z[f"{tag}_crop_landmarks"],
            )
            for tag in ("onset", "apex")
        ]
    else:  # a dataset built without evidence files: the regions and map are what explainers read
        h, w = fused.shape[:2]
        grey = cv2.cvtColor(fused, cv2.COLOR_BGR2GRAY)
        flow = np.full((h, w, 2), np.nan, np.float32)
        empty = np.zeros((0, 2), np.float32)
        t0 = float(rec["onset"]) / fps
        faces = [
            FaceObservation(int(rec["onset"]), t0, empty, grey, np.eye(2, 3, dtype=np.float32), empty)
        ] * 2
    cand = candidate_of(MERecord.from_json(rec), faces[0], faces[1])
    ok, png = cv2.imencode(".png", fused)
    return Evidence(cand, flow, fused, png.tobytes() if ok else b"", regions)


def candidate_of(record: MERecord, onset_face: FaceObservation, apex_face: FaceObservation) -> Candidate:
    """A `Candidate` for an annotated clip (offset unknown → the apex stands in for it)."""
    fps = record.fps or 1.0
    apex = record.apex if record.apex is not None else record.onset
    offset = record.offset if record.offset is not None else apex
    tp = [TimePoint(f, f / fps) for f in (record.onset, apex, offset)]
    kind = "micro" if (offset - record.onset) / fps <= 0.5 + 1e-9 else "macro"
    return Candidate(record.key, record.dataset, tp[0], tp[1], tp[2], kind, 1.0, (), onset_face, apex_face)


# ---------------------------------------------------------------------------------------------
# Building


@dataclass(frozen=True, slots=True)
class BuildSettings:
    """How fused maps are made: flow backend and its parameters, face crop size, face model."""

    flow: str = "opencv-tvl1"
    flow_params: tuple[tuple[str, Any], ...] = ()
    crop_size: int = 256
    face_model: str = ""
    save_evidence: bool = True


class EvidenceMaker:
    """Onset + apex frame → `Evidence` through the engine's face, flow and fusion stages."""

    def __init__(self, settings: BuildSettings) -> None:
        import engine.flow
        from engine.fusion.config import FusionConfig

        self.settings = settings
        self.backend = engine.flow.create(settings.flow, **dict(settings.flow_params))
        self.fusion = FusionConfig()

    def faces(
        self, record: MERecord, onset_bgr: np.ndarray, apex_bgr: np.ndarray
    ) -> list[FaceObservation | None]:
        """The two frames through a fresh tracker in VIDEO mode (a clip is its own short stream)."""
        from engine.face import FaceConfig, create_tracker
        from engine.types import Frame

        tracker = create_tracker(
            FaceConfig(model=self.settings.face_model, crop_size=self.settings.crop_size)
        )
        try:
            fps = record.fps or 1.0
            apex = record.apex if record.apex is not None else record.onset
            return [
                tracker.process(Frame(f, (f - record.onset) / fps, img))
                for f, img in ((record.onset, onset_bgr), (apex, apex_bgr))
            ]
        finally:
            tracker.close()

    def make(self, record: MERecord, onset_bgr: np.ndarray, apex_bgr: np.ndarray) -> Evidence | str:
        """The evidence, or the reason there is none (no face found)."""
        from engine.fusion import build_evidence

        onset_face, apex_face = self.faces(record, onset_bgr, apex_bgr)
        if onset_face is None or apex_face is None:
            which = "onset" if onset_face is None else "apex"
            return f"no face found in the {which} frame"
        return build_evidence(candidate_of(record, onset_face, apex_face), self.backend, self.fusion)


def loso_splits(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One leave-one-subject-out fold per subject (``dataset/subject``): its clips test, all others train."""
    by_subject: dict[str, list[str]] = defaultdict(list)
    for it in items:
        rec = it["record"]
        by_subject[f"{rec['dataset']}/{rec['subject']}"].append(it["id"])
    folds = []
    for subject in sorted(by_subject):
        test = set(by_subject[subject])
        folds.append(
            {
                "name": re.sub(r"[^A-Za-z0-9._-]+", "_", subject),
                "test_subject": subject,
                "train": [it["id"] for it in items if it["id"] not in test],
                "test": [it["id"] for it in items if it["id"] in test],
            }
        )
    return folds


def build(
    records: Sequence[MERecord],
    frames_root: str | Path,
    out: str | Path,
    *,
    pattern: str | None = None,
    settings: BuildSettings | None = None,
    sheet_issues: Sequence[SheetIssue] = (),
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Build the dataset of ``records`` into ``out``; returns the summary written to ``build.json``.

    ``pattern``: frame path template (see `FRAME_PATTERNS`); None = the records' dataset layout.
    Clips whose frames are missing or show no face are reported in ``issues.jsonl`` (with the
    sheet's file and line) and left out; the rest are written.
    """
    settings = settings or BuildSettings()
    out = Path(out)
    for sub in ("images", "evidence", "splits"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for old in (out / "splits").glob("*.json"):
        old.unlink()
    maker = EvidenceMaker(settings)
    prompt = vlm_prompt("en")
    issues: list[dict[str, Any]] = [{**asdict(i), "id": None} for i in sheet_issues]
    items: list[dict[str, Any]] = []
    todo = list(records)[: limit if limit else None]
    t0 = time.perf_counter()
    from tqdm import tqdm

    seen: set[str] = set()
    for rec in tqdm(todo, desc="clips", unit="clip", disable=not progress):
        sid = sample_id(rec)

        def report(message: str, rec: MERecord = rec, sid: str = sid) -> None:
            issues.append(
                {"source": rec.source, "line": rec.line, "severity": "error", "message": message, "id": sid}
            )
            log.warning("%s:%s: %s: clip left out", rec.source, rec.line, message)

        if sid in seen:
            report(f"duplicate clip {rec.key}")
            continue
        seen.add(sid)
        if rec.apex is None:
            report("apex frame unknown: no fused map can be made")
            continue
        lay = pattern or FRAME_PATTERNS.get(rec.dataset)
        if lay is None:
            raise UserError(f"no frame-folder layout is known for {rec.dataset}; pass --pattern")
        paths = [frame_path(rec, f, frames_root, lay) for f in (rec.onset, rec.apex)]
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths]
        missing = [str(p) for p, im in zip(paths, images, strict=True) if im is None]
        if missing:
            report(f"frame not found or unreadable: {missing[0]}")
            continue
        ev = maker.make(rec, images[0], images[1])
        if isinstance(ev, str):
            report(ev)
            continue
        image = f"images/{sid}.png"
        cv2.imwrite(str(out / image), ev.fused_map)
        evidence = ""
        if settings.save_evidence:
            evidence = f"evidence/{sid}.npz"
            save_evidence(out / evidence, ev)
        regions = [
            {k: round(v, 5) if isinstance(v, float) else v for k, v in asdict(r).items()} for r in ev.regions
        ]
        items.append(
            {
                "id": sid,
                "record": rec.to_json(),
                "image": image,
                "evidence": evidence,
                "regions": regions,
                "messages": chat_messages(image, prompt, describe(rec, ev.regions)),
            }
        )
    with (out / DATASET_FILE).open("w", encoding="utf-8") as fh:
        for it in items:
            fh.write(json.dumps(it, ensure_ascii=False) + "\n")
    folds = loso_splits(items)
    for fold in folds:
        (out / "splits" / f"{fold['name']}.json").write_text(json.dumps(fold, indent=1))
    with (out / "issues.jsonl").open("w", encoding="utf-8") as fh:
        for i in issues:
            fh.write(json.dumps(i, ensure_ascii=False) + "\n")
    summary = {
        "clips": len(todo),
        "written": len(items),
        "left_out": len(todo) - len(items),
        "issues": len(issues),
        "folds": len(folds),
        "subjects": sorted({f["test_subject"] for f in folds}),
        "frames_root": str(frames_root),
        "pattern": pattern,
        "settings": {**asdict(settings), "flow_params": dict(settings.flow_params)},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (out / "build.json").write_text(json.dumps(summary, indent=1))
    return summary


def read_dataset(
    folder: str | Path, split: str | Path | None = None, part: str = "test"
) -> list[dict[str, Any]]:
    """Lines of ``folder/dataset.jsonl``; with ``split`` (a fold file) only its ``part`` (train | test)."""
    folder = Path(folder)
    path = folder / DATASET_FILE
    if not path.is_file():
        raise UserError(f"{path} not found; build the dataset first with python -m training.build_dataset")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text file; rebuild the dataset") from None
    items = []
    for k, line in enumerate(lines, 1):
        try:
            if line.strip():
                items.append(json.loads(line))
        except json.JSONDecodeError:
            raise UserError(f"{path}:{k} is not a JSON line; rebuild the dataset") from None
    if split is None:
        return items
    sp = Path(split)
    if not sp.is_file():
        raise UserError(f"split file {sp} not found; the folds are in {folder / 'splits'}")
    try:
        fold = json.loads(sp.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"split file {sp} is not JSON; pass a fold file from {folder / 'splits'}") from None
    if not isinstance(fold, dict) or part not in fold:
        raise UserError(f"split file {sp} has no {part!r} list; pass a fold file from {folder / 'splits'}")
    if part not in ("train", "test"):
        raise UserError(f"split part {part!r} is not train or test")
    keep = set(fold[part])
    return [it for it in items if it["id"] in keep]


def _parse_kv(pairs: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    out = []
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep:
            raise UserError(f"--flow-param {p!r}: expected KEY=VALUE")
        try:
            out.append((key, json.loads(value)))
        except json.JSONDecodeError:
            out.append((key, value))
    return tuple(out)


def _check_args(args: argparse.Namespace) -> None:
    """Cheap checks of the command line before any frame is read (each a `UserError`)."""
    from pydantic import ValidationError

    from engine.face.config import FaceConfig

    for sheet in args.sheet:
        if Path(sheet).suffix.lower() == ".xlsx" and Path(sheet).is_file() and not zipfile.is_zipfile(sheet):
            raise UserError(f"sheet {sheet} is not an Excel workbook; pass a real .xlsx or a .csv")
    if not Path(args.frames).is_dir():
        raise UserError(f"--frames {args.frames} is not a folder; pass the root of the frame folders")
    try:
        FaceConfig(crop_size=args.crop_size)
    except ValidationError as exc:
        raise UserError(f"--crop-size {args.crop_size}: {exc.errors()[0]['msg'].lower()}") from None
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be at least 1 clip, got {args.limit}")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out folder {out}: {exc.strerror or exc}; choose another") from None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.build_dataset", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--sheet", action="append", required=True, help="annotation sheet (.csv/.xlsx); repeatable"
    )
    ap.add_argument("--layout", default=None, help="sheet layout (default: recognised from the header)")
    ap.add_argument("--frames", required=True, help="root of the database's frame folders")
    ap.add_argument(
        "--frames-layout",
        choices=sorted(FRAME_PATTERNS),
        default=None,
        help="frame-folder layout (default: the sheet's dataset)",
    )
    ap.add_argument(
        "--pattern", default=None, help="custom frame path template, e.g. '{root}/{clip}/{frame}.jpg'"
    )
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--flow", default="opencv-tvl1", help="flow backend (engine.flow names)")
    ap.add_argument("--flow-param", action="append", default=[], help="flow backend KEY=VALUE; repeatable")
    ap.add_argument(
        "--crop-size", type=int, default=256, help="aligned face crop side (the engine's default)"
    )
    ap.add_argument(
        "--face-model", default="", help="face_landmarker.task (default: as the engine resolves it)"
    )
    ap.add_argument("--no-evidence", action="store_true", help="do not keep faces and flow (smaller dataset)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N clips (a quick look)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        _check_args(args)
        from training.readers import read_sheet

        records: list[MERecord] = []
        issues: list[SheetIssue] = []
        for sheet in args.sheet:
            res = read_sheet(sheet, args.layout)
            records += res.records
            issues += res.issues
        pattern = args.pattern or (FRAME_PATTERNS[args.frames_layout] if args.frames_layout else None)
        settings = BuildSettings(
            flow=args.flow,
            flow_params=_parse_kv(args.flow_param),
            crop_size=args.crop_size,
            face_model=args.face_model,
            save_evidence=not args.no_evidence,
        )
        summary = build(
            records,
            args.frames,
            args.out,
            pattern=pattern,
            settings=settings,
            sheet_issues=issues,
            limit=args.limit,
            progress=not args.quiet,
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; {args.out} is incomplete: run the command again", file=sys.stderr)
        return 130
    print(
        f"{summary['written']} of {summary['clips']} clips written to {args.out} "
        f"({summary['folds']} leave-one-subject-out folds, {summary['issues']} issues in issues.jsonl, "
        f"{summary['seconds']} s)"
    )
    return 0 if summary["written"] or not summary["clips"] else 1


if __name__ == "__main__":
    sys.exit(main())
