"""Answer an ME-VQA question file with one of the engine's explainers (``training.mevqa answer``).

For each clip of the question file (one ``image_id``):

1. onset and offset: the question file's ``onset_frame``/``offset_frame`` (MEGC test files), else
   the annotation sheet's (``--sheet``, matched on subject and clip), else the clip folder's first
   and last frame;
2. apex: the sheet's when it gives one; otherwise the frame between onset and offset whose aligned
   face crop differs most from both the onset's and the offset's (`pick_apex`; grey differences
   after the face stage's similarity alignment, so head motion does not count);
3. evidence through the stream's own stages: the face tracker over onset → offset as one short
   video (`engine.face.create_tracker`), then flow + fusion (`engine.fusion.build_evidence`);
4. the explainer chosen by name (`engine.explain.create`) explains it, and each question of the
   clip is answered from that one explanation (`training.mevqa_format.answer_for`).

A clip whose frames are missing or hold no face is answered ``unknown`` (counted in the report, and
wrong when scored), never skipped: the answers file always holds every question.
"""

from __future__ import annotations

import logging
import pickle
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import UserError
from engine.types import Candidate, Explanation, FaceObservation, Frame, TimePoint
from training.build_dataset import FRAME_PATTERNS
from training.mevqa_format import answer_for

log = logging.getLogger(__name__)

_PAD = {"casme2": 2, "samm": 3}  # subject folder names as the databases write them (sub01, 006)
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True, slots=True)
class RunSettings:
    root: str
    layout: str = ""
    pattern: str = ""
    sheet: str = ""
    flow: str = "opencv-tvl1"
    face_model: str = ""
    limit: int = 0
    cache: str = ""  # folder of evidence pickles: explain again without the face and flow work


@dataclass(frozen=True, slots=True)
class Clip:
    """One clip of a question file: where its frames are and which of them to use."""

    key: str
    dataset: str
    subject: str
    clip: str
    onset: int | None
    apex: int | None
    offset: int | None
    rows: tuple[int, ...]  # indices of its questions in the question file


def layout_of(dataset: str, layout: str) -> str:
    """The frame layout: ``layout`` when given, else the database the dataset name starts with."""
    if layout:
        if layout not in FRAME_PATTERNS:
            raise UserError(f"unknown --layout {layout!r}; choose one of {', '.join(FRAME_PATTERNS)}")
        return layout
    d = dataset.lower().replace("(", "").replace(")", "").replace("^", "")
    for name in ("casme3", "casme2", "samm", "smic", "mmew"):
        if d.startswith(name):
            return name
    raise UserError(
        f"cannot tell the frame layout of dataset {dataset!r}; pass --layout "
        f"({', '.join(FRAME_PATTERNS)}) or --pattern"
    )


def _int(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def clips_of(questions: Sequence[dict[str, Any]], sheet: str = "") -> list[Clip]:
    """The question file's clips in file order, with onset/apex/offset from the file or the sheet."""
    by_clip: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        by_clip[(str(q.get("dataset", "")), str(q.get("image_id", q.get("filename", ""))))].append(i)
    records: dict[tuple[str, str], Any] = {}
    if sheet:
        from training.readers import read_sheet

        for r in read_sheet(sheet).records:
            records.setdefault((r.subject.lstrip("0"), r.clip), r)
    out: list[Clip] = []
    for (dataset, image_id), rows in by_clip.items():
        q = questions[rows[0]]
        subject, clip = str(q.get("subject", "")), str(q.get("filename", image_id))
        onset, offset = _int(q.get("onset_frame")), _int(q.get("offset_frame"))
        apex = _int(q.get("apex_frame"))
        rec = records.get((subject.lstrip("0"), clip))
        if rec is not None and onset is None:
            onset, apex, offset = rec.onset, rec.apex, rec.offset
        out.append(Clip(f"{dataset}/{image_id}", dataset, subject, clip, onset, apex, offset, tuple(rows)))
    return out


def frame_file(clip: Clip, frame: int, settings: RunSettings) -> Path:
    layout = "" if settings.pattern else layout_of(clip.dataset, settings.layout)
    pattern = settings.pattern or FRAME_PATTERNS[layout]
    subject = clip.subject.zfill(_PAD.get(layout, 0)) if clip.subject.isdigit() else clip.subject
    try:
        return Path(
            pattern.format(
                root=str(settings.root).rstrip("/"),
                dataset=clip.dataset,
                subject=subject,
                clip=clip.clip,
                emotion="",
                frame=frame,
            )
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise UserError(
            f"frame pattern {pattern!r} is not valid ({exc}); use fields root, dataset, subject, clip, "
            "frame, e.g. '{root}/sub{subject}/{clip}/img{frame}.jpg'"
        ) from None


def _frame_number(path: Path) -> int:
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else -1


def clip_frames(clip: Clip, settings: RunSettings) -> list[tuple[int, Path]]:
    """(frame number, file) from onset to offset; the whole folder when the clip gives no onset."""
    if clip.onset is not None:
        last = clip.offset if clip.offset is not None and clip.offset >= clip.onset else clip.onset
        if clip.apex is not None:
            last = max(last, clip.apex)
        return [(f, frame_file(clip, f, settings)) for f in range(clip.onset, last + 1)]
    folder = frame_file(clip, 0, settings).parent
    files = sorted((p for p in folder.glob("*") if p.suffix.lower() in _IMAGE_EXT), key=_frame_number)
    return [(_frame_number(p), p) for p in files]


PRIME_FRAMES = 4


def track(frames: list[tuple[int, Path]], face_cfg: Any) -> list[FaceObservation | None]:
    """Each existing frame through one tracker, as a short video at 30 fps (missing files: None).

    The onset frame is first shown `PRIME_FRAMES` more times: the landmarker's first frame is a
    detection and the next ones tracking, and the two place the mesh differently enough that the
    aligned crops of onset and apex differ in scale (a zoom the flow reads as every region moving
    toward the face's centre). In a stream the tracker is long past its first frame."""
    from engine.face import create_tracker

    tracker = create_tracker(face_cfg)
    out: list[FaceObservation | None] = []
    try:
        images = [cv2.imread(str(p), cv2.IMREAD_COLOR) if p.is_file() else None for _, p in frames]
        primed = [images[0]] * PRIME_FRAMES if images and images[0] is not None else []
        for k, image in enumerate([*primed, *images]):
            face = None if image is None else tracker.process(Frame(k, k / 30.0, image))
            if k >= len(primed):
                out.append(face)
    finally:
        tracker.close()
    return out


def pick_apex(faces: Sequence[FaceObservation | None]) -> int:
    """Index of the apex: the face farthest from both the onset's and the offset's (the smaller of its
    two mean absolute grey differences of the aligned crops, largest), since a micro-expression
    leaves neutral at the onset and is back at the offset, while the face's own motion (speech) need
    not return. 0 when no other face was found."""
    first, last = faces[0], faces[-1]
    if first is None:
        return 0

    def diff(a: FaceObservation, b: FaceObservation | None) -> float:
        if b is None or b.crop.shape != a.crop.shape:
            return float("inf")
        return float(np.mean(np.abs(a.crop.astype(np.float32) - b.crop.astype(np.float32))))

    best, where = -1.0, 0
    for k, f in enumerate(faces[1:-1] if len(faces) > 2 else faces[1:], 1):
        if f is not None:
            d = min(diff(f, first), diff(f, last) if len(faces) > 2 else float("inf"))
            if d > best:
                best, where = d, k
    return where


def _cache_file(settings: RunSettings, clip: Clip) -> Path | None:
    if not settings.cache:
        return None
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{clip.key}_{settings.flow}")
    return Path(settings.cache) / f"{name}.pkl"


def _answer(rows: list[dict[str, Any]], clip: Clip, e: Explanation) -> None:
    aus = [a.au for a in e.aus]
    for i in clip.rows:
        rows[i]["answer"] = answer_for(str(rows[i]["question"]), aus, e.emotion_detail, e.emotion)


def answer_file(
    questions: Sequence[dict[str, Any]], explainer: str, params: dict[str, Any], settings: RunSettings
) -> tuple[list[dict[str, Any]], str]:
    """(the question rows with ``answer`` filled in, a short report of what was done)."""
    import engine.explain
    import engine.flow
    from engine.face import FaceConfig
    from engine.fusion import build_evidence
    from engine.fusion.config import FusionConfig

    clips = clips_of(questions, settings.sheet)
    if settings.limit:
        clips = clips[: settings.limit]
    face_cfg = FaceConfig(model=settings.face_model)
    backend = engine.flow.create(settings.flow)
    fusion = FusionConfig()
    expl = engine.explain.create(explainer, **params)
    rows = [dict(q) for q in questions]
    failed: list[str] = []
    t0 = time.perf_counter()
    try:
        expl.warmup()
        for clip in clips:
            cached = _cache_file(settings, clip)
            if cached is not None and cached.is_file():
                with cached.open("rb") as fh:
                    evidence = pickle.load(fh)  # the user's own cache folder, written below
                _answer(rows, clip, expl.explain_batch([evidence])[0])
                continue
            frames = clip_frames(clip, settings)
            faces = track(frames, face_cfg) if frames else []
            apex_at = None
            if clip.apex is not None and clip.onset is not None:
                apex_at = clip.apex - clip.onset
            elif faces:
                apex_at = pick_apex(faces)
            onset_face = faces[0] if faces else None
            apex_face = faces[apex_at] if faces and apex_at is not None and apex_at < len(faces) else None
            if onset_face is None or apex_face is None or apex_at == 0:
                missing = [str(p) for _, p in frames if not p.is_file()][:1]
                why = f"missing {missing[0]}" if missing else "no face or no frame after the onset"
                failed.append(f"{clip.key}: {why}")
                for i in clip.rows:
                    rows[i]["answer"] = "unknown"
                continue
            tps = [TimePoint(frames[k][0], k / 30.0) for k in (0, apex_at, len(frames) - 1)]
            cand = Candidate(
                clip.key, "mevqa", tps[0], tps[1], tps[2], "micro", 1.0, (), onset_face, apex_face
            )
            evidence = build_evidence(cand, backend, fusion)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                with cached.open("wb") as fh:
                    pickle.dump(evidence, fh)
            _answer(rows, clip, expl.explain_batch([evidence])[0])
    finally:
        expl.close()
    lines = [
        f"answered {len(clips) - len(failed)} of {len(clips)} clips with {explainer} "
        f"in {time.perf_counter() - t0:.1f} s"
    ]
    lines += [f"  unknown: {f}" for f in failed[:20]]
    if len(failed) > 20:
        lines.append(f"  ... and {len(failed) - 20} more")
    return rows, "\n".join(lines)
