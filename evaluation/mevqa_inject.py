"""The injection benchmark written out as an ME-VQA task: clip folders, question file, truth file.

    python -m evaluation.mevqa_inject --out DIR [--videos V1.mp4 ...] [--seeds 3] [--first-seed 3]

Real annotated events (`evaluation.annotations.SheetEvents`: duration, apex position, AU combination
and emotion of one real CASME II / SAMM / CAS(ME)^3 expression, AUs the injector cannot make left
out) are warped into real face videos (`evaluation.inject.render_frame`, anchored on the landmarks
tracked on the untouched frame), one clip per event, frames onset → offset written in the CASME II
layout (``DIR/frames/sub01/s3_00/img123.jpg``). Each clip gets the challenge's six questions
(coarse, fine, AU list, two yes/no about one AU present and one absent, combined), with
``onset_frame`` and ``offset_frame`` from the truth and no apex, as in the MEGC test files:

    DIR/questions.jsonl   answers empty (what a system is given)
    DIR/truth.jsonl       the reference answers (with each clip's apex frame and amplitude, to
                          study the answers; a system must not read them)

Seeds are draws; the spotting benchmark tunes on seeds 0-2 and 12-41, so report on 3-11.
Only events whose emotion has a coarse class (positive / negative / surprise) are kept.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engine.errors import UserError
from engine.types import Frame
from training.mevqa_format import au_phrase, combined_answer, write_jsonl

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
# Calm real faces (talking, blinking, steady head): an injected 1-3 px movement is what stands out
# there. WolfgangLanger_Pexels.mp4 is left out: she cries with a hand on her face, 5-20 px of her own
# motion inside a 0.3-s clip, so no explainer could tell an injected movement from hers.
DEFAULT_VIDEOS: tuple[str, ...] = (
    "videos/single_face.mp4", "videos/calm/anchor_1.mp4", "videos/calm/anchor_2.mp4",
    "videos/calm/anchor_4.mp4", "videos/calm/anchor_5.mp4", "videos/calm/address_a.mp4",
    "videos/calm/address_b.mp4", "videos/calm/radio_a.mp4", "videos/calm/webcam_woman.mp4",
    "videos/calm/webcam_man.mp4",
)
DATASET = "casme2_inject"  # the CASME II frame layout; the name says the clips are injected
AMPLITUDE_PX = (1.0, 3.0)  # peak displacement on a 200 px wide face (the demo's range)
START_S, END_S, GAP_S = 1.0, 0.5, 0.5
Q_COMBINED_ONE = (
    "What is the action unit present, and based on it, what is the fine-grained expression and the coarse "
    "expression class?"
)
Q_COMBINED_MANY = (
    "What are the action units present, and based on them, what is the fine-grained expression and the "
    "coarse expression class?"
)


def questions_of(
    clip: dict[str, Any],
    aus: Sequence[int],
    fine: str,
    coarse: str,
    rng: np.random.Generator,
    pool: Sequence[int],
) -> list[dict[str, Any]]:
    """The six questions of one clip with their reference answers (the challenge's wording)."""
    absent = [a for a in pool if a not in aus]
    present = int(aus[int(rng.integers(len(aus)))])
    other = int(absent[int(rng.integers(len(absent)))])
    yesno = [(present, "yes"), (other, "no")]
    if rng.random() < 0.5:
        yesno.reverse()
    one = len(aus) == 1
    qa = [
        ("What is the coarse expression class?", coarse),
        ("What is the fine-grained expression class?", fine),
        (
            "What is the action unit?" if one else "What are the action units?",
            ", ".join(au_phrase(a) for a in aus),
        ),
        *((f"Is the action unit {au_phrase(a)} shown on the face?", yn) for a, yn in yesno),
        (Q_COMBINED_ONE if one else Q_COMBINED_MANY, combined_answer(aus, fine, coarse)),
    ]
    return [
        {**clip, "id": f"{clip['dataset']}_{clip['image_id']}_{k}", "question": q, "answer": a}
        for k, (q, a) in enumerate(qa, 1)
    ]


def write_frames(folder: Path, frames: Sequence[tuple[int, np.ndarray]]) -> None:
    """``img{n}.jpg`` per frame (quality 95, as the databases ship JPEG)."""
    folder.mkdir(parents=True, exist_ok=True)
    for n, image in frames:
        if not cv2.imwrite(str(folder / f"img{n}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise UserError(f"cannot write {folder / f'img{n}.jpg'}; choose another --out")


def decode(path: Path) -> tuple[list[np.ndarray], float]:
    """Every frame of a video through the engine's own file source, and its frame rate."""
    from engine.sources import open_source
    from engine.sources.config import SourceConfig

    src = open_source(SourceConfig(spec=str(path)))
    try:
        images = [f.image for f in src.frames()]
        fps = float(getattr(src, "fps", 0.0) or 30.0)
    finally:
        src.close()
    return images, fps


def landmarks_of(images: Sequence[np.ndarray], fps: float, face_model: str = "") -> list[np.ndarray | None]:
    """478×2 landmarks of each untouched frame (the face tracker in video mode; None = no face)."""
    from engine.face import FaceConfig, create_tracker

    tracker = create_tracker(FaceConfig(model=face_model))
    try:
        out = []
        for k, image in enumerate(images):
            face = tracker.process(Frame(k, k / fps, image))
            out.append(None if face is None else face.landmarks)
        return out
    finally:
        tracker.close()


def build(
    out: Path, videos: Sequence[Path], seeds: Sequence[int], annotations: Path, face_model: str = ""
) -> tuple[list[dict[str, Any]], int]:
    """Write the clips; return the truth rows and the number of clips."""
    from engine.facs import BLINK_AU, SUPPORTED_AUS
    from engine.synth import identity_grid, plan_events
    from evaluation.annotations import SheetEvents
    from evaluation.inject import render_frame

    pool = [a for a in SUPPORTED_AUS if a != BLINK_AU]
    sampler = SheetEvents.from_sheets(annotations, pool)
    truth: list[dict[str, Any]] = []
    clips = 0
    for s, video in enumerate(videos, 1):
        images, fps = decode(video)
        lms = landmarks_of(images, fps, face_model)
        grid = identity_grid(images[0].shape) if images else None
        span = len(images) / fps - START_S - END_S
        count = int(span // (sampler.max_s + GAP_S)) or int(span >= sampler.max_s + 0.1)
        gap = GAP_S if count > 1 else 0.1
        if count <= 0:
            log.warning("%s is too short for an event: skipped", video)
            continue
        for seed in seeds:
            rng = np.random.default_rng(1000 * seed + sum(map(ord, video.name)))
            events = plan_events(
                rng, count, len(images), fps, START_S, END_S, gap, sampler, amplitude_range=AMPLITUDE_PX
            )
            for k, ev in enumerate(events):
                span_frames = range(ev.onset, ev.offset + 1)
                if ev.emotion not in ("positive", "negative", "surprise"):
                    continue
                if any(lms[f] is None for f in span_frames):
                    continue
                clip = f"s{seed}_{k:02d}"
                subject = f"{s:02d}"
                write_frames(
                    out / "frames" / f"sub{subject}" / clip,
                    [(f, render_frame(images[f], lms[f], [ev], f, grid)) for f in span_frames],
                )
                row = {
                    "dataset": DATASET,
                    "image_id": f"{subject}_{clip}",
                    "subject": subject,
                    "filename": clip,
                    "video": video.name,
                    "onset_frame": ev.onset,
                    "offset_frame": ev.offset,
                }
                aus = list(dict.fromkeys(int(a) for a in ev.aus if a != BLINK_AU))
                rows = questions_of(row, aus, ev.emotion_detail, ev.emotion, rng, pool)
                extra = {"apex_frame": ev.apex, "amplitude_px": round(ev.amplitude_px, 3)}
                truth += [{**r, **extra} for r in rows]
                clips += 1
    return truth, clips


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m evaluation.mevqa_inject", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="folder for frames/, questions.jsonl, truth.jsonl")
    ap.add_argument("--videos", nargs="*", default=[], help="face videos (default: the shared real ones)")
    ap.add_argument("--annotations", default=str(DATA / "annotations"), help="folder of the real sheets")
    ap.add_argument("--seeds", type=int, default=3, help="injection rounds per video")
    ap.add_argument("--first-seed", type=int, default=3, help="first seed (3-11 are held out)")
    ap.add_argument("--face-model", default="", help="MediaPipe face_landmarker.task file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        videos = [Path(v) for v in args.videos] or [DATA / v for v in DEFAULT_VIDEOS]
        absent = [str(v) for v in videos if not v.is_file()]
        if absent:
            raise UserError(f"video {absent[0]} not found; pass --videos with face videos")
        out = Path(args.out)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        truth, clips = build(out, videos, seeds, Path(args.annotations), args.face_model)
        write_jsonl(out / "truth.jsonl", truth)
        hidden = ("apex_frame", "amplitude_px")  # truth only: the challenge gives no apex
        write_jsonl(
            out / "questions.jsonl",
            ({**{k: v for k, v in r.items() if k not in hidden}, "answer": ""} for r in truth),
        )
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {clips} clips, {len(truth)} questions to {out} (seeds {seeds.start}-{seeds.stop - 1})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
