"""One onset/apex pair in, one explanation out: the MELLM seed's own use, on the stream's stages.

    python -m engine.explain_pair ONSET APEX [--explainer NAME] [--model PATH] [--adapter DIR]
        [--endpoint URL] [--out DIR] [--json] [--face-model FILE] [--preprocess aligned|mellm-v1]

By default (``--preprocess aligned``) the two images go through exactly what the stream does with a
spotted candidate: the face stage (MediaPipe landmarks, similarity alignment to the grey face crop;
`engine.face.create_tracker`), the flow + fusion stage (`engine.fusion.build_evidence`: one
registration for both crops, flow, head motion removed at the nose tip, colour map, region
statistics) and the explainer chosen by name (`engine.explain.create`).

``--preprocess mellm-v1`` is the preprocessing the authors released with MELLM v1, so the map is
the one their demo gives: the full frames (no crop, no alignment), OpenCV's TV-L1 with its default
parameters on the full grey images, the mean flow of the 11×11 window at the nose tip subtracted,
no magnitude masking, the nearest-bin colour map added onto the grey onset (`mellm_v1_evidence`).
Their nose tip is point 30 of a 68-point detector; ours is MediaPipe's point 1 (the pronasale; on
the hand-annotated 68-point face ``takeo.ppm`` of ../shared/data/landmarks it lies 0.040
interocular distances from point 30, the nearest mesh point; point 4 is 0.046 away).
``--out DIR`` writes ``fused_map.png`` and ``explanation.json``.
Exit 0 on success, 2 on a user error (one line on stderr), 1 on an internal error.

From Python:

>>> from engine.explain_pair import analyze_pair
>>> r = analyze_pair("onset.png", "apex.png", explainer="rules")          # doctest: +SKIP
>>> r.explanation.emotion, [a.au for a in r.explanation.aus]               # doctest: +SKIP
('negative', [4])
>>> r = analyze_pair(onset_bgr, apex_bgr, explainer="vlm", model="models/MELLM-7B")  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import UserError
from engine.types import Candidate, Evidence, Explanation, FaceObservation, Frame, TimePoint

log = logging.getLogger(__name__)

ImageInput = str | Path | np.ndarray


@dataclass(frozen=True)
class PairResult:
    """What `analyze_pair` found: the evidence (fused map, flow, region statistics), the explanation
    and the time each stage took (ms)."""

    evidence: Evidence
    explanation: Explanation
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The explanation fields of the event contract plus the region statistics and timings."""
        e = self.explanation
        return {
            "aus": [a.to_json() for a in e.aus],
            "emotion": e.emotion,
            "emotion_detail": e.emotion_detail,
            "text": e.text,
            "explainer": e.explainer,
            "regions": [
                {
                    "name": r.name,
                    "mean_mag": round(r.mean_mag, 4),
                    "max_mag": round(r.max_mag, 4),
                    "direction_deg": round(r.direction_deg, 2),
                    "concentration": round(r.concentration, 4),
                }
                for r in self.evidence.regions
            ],
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }

    def summary(self) -> str:
        """Readable lines: emotion, AUs with names and sides, strongest regions, the explanation text."""
        e = self.explanation
        aus = ", ".join(f"AU{a.au} {a.name} ({a.side}, {a.confidence:.2f})" for a in e.aus) or "none"
        top = sorted(self.evidence.regions, key=lambda r: -r.mean_mag)[:4]
        regions = ", ".join(f"{r.name} {r.mean_mag:.2f}px@{r.direction_deg:.0f}°" for r in top) or "none"
        detail = f" ({e.emotion_detail})" if e.emotion_detail else ""
        return (
            f"explainer: {e.explainer}\nemotion:   {e.emotion}{detail}\naction units: {aus}\n"
            f"strongest regions: {regions}\n\n{e.text}"
        )


def read_image(image: ImageInput, what: str) -> np.ndarray:
    """An H×W×3 uint8 BGR image from a path or an array (grey arrays are turned BGR)."""
    import cv2

    if isinstance(image, np.ndarray):
        arr = image
    else:
        path = Path(image)
        if not path.is_file():
            problem = "is a folder" if path.is_dir() else "does not exist"
            raise UserError(f"{what} image {str(path)!r} {problem}; pass an image file (png, jpg, ...)")
        arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if arr is None:
            raise UserError(f"{what} image {str(path)!r} cannot be decoded; pass a png, jpg or bmp file")
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise UserError(
            f"{what} image must be uint8 H×W×3 BGR (or grey), got shape {arr.shape} dtype {arr.dtype}"
        )
    if arr.ndim == 2:
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    elif arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(arr)


def pair_candidate(onset: FaceObservation, apex: FaceObservation, stream: str = "pair") -> Candidate:
    """The candidate the spotter would have made of the pair (offset = apex; no spotting score)."""
    return Candidate(
        candidate_id=f"{stream}-0",
        stream=stream,
        onset=TimePoint(onset.index, onset.t),
        apex=TimePoint(apex.index, apex.t),
        offset=TimePoint(apex.index, apex.t),
        kind="micro",
        score=0.0,
        regions=(),
        onset_face=onset,
        apex_face=apex,
    )


def track_pair(onset: np.ndarray, apex: np.ndarray, face_cfg: Any) -> tuple[FaceObservation, FaceObservation]:
    """Both faces through one face tracker, as consecutive video frames (the stream's face stage)."""
    from engine.face import create_tracker

    tracker = create_tracker(face_cfg)
    try:
        faces = []
        for index, (image, what) in enumerate(((onset, "onset"), (apex, "apex"))):
            face = tracker.process(Frame(index=index, t=index / 30.0, image=image))
            if face is None:
                raise UserError(f"no face found in the {what} image; pass a frame with one frontal face")
            faces.append(face)
    finally:
        tracker.close()
    return faces[0], faces[1]


PREPROCESSING = ("aligned", "mellm-v1")


def mellm_v1_evidence(
    onset_img: np.ndarray, apex_img: np.ndarray, onset_face: FaceObservation, apex_face: FaceObservation,
    fusion_cfg: Any,
) -> Evidence:
    """The MELLM v1 released preprocessing on two full H×W×3 uint8 BGR frames (see the module doc).

    ``Evidence.flow`` is the full-frame flow with the nose-window mean removed, and the region
    statistics are measured on it with the onset's landmarks in frame pixels.
    """
    import cv2

    from engine import flow as flow_stage
    from engine.fusion.mellm_map import encode_png, mellm_map
    from engine.fusion.region_stats import region_stats
    from engine.regions import NOSE_TIP

    if onset_img.shape != apex_img.shape:
        raise UserError(
            f"--preprocess mellm-v1 compares full frames, which must be one size: got {onset_img.shape[:2]} "
            f"and {apex_img.shape[:2]}; resize one or use --preprocess aligned"
        )
    onset_grey = cv2.cvtColor(onset_img, cv2.COLOR_BGR2GRAY)
    apex_grey = cv2.cvtColor(apex_img, cv2.COLOR_BGR2GRAY)
    tvl1 = flow_stage.create("opencv-tvl1")  # OpenCV's defaults, as released
    flow = tvl1.compute(onset_grey, apex_grey)
    fused, flow_nh = mellm_map(onset_grey, flow, onset_face.landmarks[NOSE_TIP], 11)
    regions = region_stats(
        flow_nh,
        onset_face.landmarks,
        onset_grey.shape,
        margin=fusion_cfg.region_margin,
        max_percentile=fusion_cfg.max_percentile,
    )
    return Evidence(
        candidate=pair_candidate(onset_face, apex_face),
        flow=flow_nh,
        fused_map=fused,
        png=encode_png(fused, fusion_cfg.png_level),
        regions=regions,
    )


def analyze_pair(
    onset: ImageInput,
    apex: ImageInput,
    explainer: str = "rules",
    *,
    config: Any = None,
    face_model: str | Path | None = None,
    preprocess: str = "aligned",
    **explainer_params: Any,
) -> PairResult:
    """Explain the expression between ``onset`` and ``apex`` (paths or H×W×3 uint8 BGR arrays).

    ``explainer``: a registered name (rules, vlm, llm, openai); ``explainer_params`` go to it
    (``model``, ``adapter``, ``endpoint``, ``max_new_tokens``, ``language``, ...). ``config``: an
    `engine.config.EngineConfig` for the face, flow and fusion settings (defaults when None).
    ``face_model``: MediaPipe face_landmarker.task path (else resolved as the stream resolves it).
    ``preprocess``: ``aligned`` (the stream's) or ``mellm-v1`` (the authors' released v1 map).
    Raises `UserError` for unreadable images, no face, or a bad explainer choice.
    """
    from engine import flow as flow_stage
    from engine.config import EngineConfig
    from engine.explain import create
    from engine.fusion import build_evidence

    if preprocess not in PREPROCESSING:
        raise UserError(f"unknown preprocessing {preprocess!r}; choose one of {', '.join(PREPROCESSING)}")
    cfg = config if config is not None else EngineConfig()
    face_cfg = cfg.face.model_copy(update={"model": str(face_model)}) if face_model else cfg.face
    onset_img, apex_img = read_image(onset, "onset"), read_image(apex, "apex")
    # Build the explainer first: a wrong name or model folder fails before any image work.
    expl = create(explainer, **explainer_params)
    timings: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        onset_face, apex_face = track_pair(onset_img, apex_img, face_cfg)
        t1 = time.perf_counter()
        if preprocess == "mellm-v1":
            evidence = mellm_v1_evidence(onset_img, apex_img, onset_face, apex_face, cfg.fusion)
        else:
            backend = flow_stage.create(cfg.flow.name, **cfg.flow.params)
            evidence = build_evidence(pair_candidate(onset_face, apex_face), backend, cfg.fusion)
        t2 = time.perf_counter()
        expl.warmup()
        t3 = time.perf_counter()
        explanation = expl.explain_batch([evidence])[0]
        t4 = time.perf_counter()
    finally:
        expl.close()
    timings.update(
        face=1000 * (t1 - t0), flow_fusion=1000 * (t2 - t1), warmup=1000 * (t3 - t2), explain=1000 * (t4 - t3)
    )
    return PairResult(evidence, explanation, timings)


def write_outputs(result: PairResult, out: Path) -> list[Path]:
    """``fused_map.png`` and ``explanation.json`` in ``out`` (created); returns the paths.

    A folder that cannot be created or written is a `UserError`.
    """
    png, js = out / "fused_map.png", out / "explanation.json"
    try:
        out.mkdir(parents=True, exist_ok=True)
        png.write_bytes(result.evidence.png)
        js.write_text(json.dumps(result.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write --out folder {out}: {exc.strerror or exc}; choose another") from None
    return [png, js]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m engine.explain_pair",
        description="Explain the micro-expression between an onset and an apex frame.",
    )
    ap.add_argument("onset", help="onset frame (image file)")
    ap.add_argument("apex", help="apex frame (image file)")
    ap.add_argument("--explainer", default="", help="rules (default), vlm, llm or openai")
    ap.add_argument("--model", default="", help="local model folder (vlm, llm) or served model name (openai)")
    ap.add_argument("--adapter", default="", help="LoRA adapter folder (vlm, llm)")
    ap.add_argument("--endpoint", default="", help="base URL of an OpenAI-compatible server (openai)")
    ap.add_argument("--out", default="", help="folder for fused_map.png and explanation.json")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--face-model", default="", help="MediaPipe face_landmarker.task file")
    ap.add_argument("--language", default="", help="prompt language of model explainers: en or zh")
    ap.add_argument(
        "--preprocess",
        default="aligned",
        choices=PREPROCESSING,
        help="aligned: the stream's aligned face crops (default); mellm-v1: the authors' released v1 "
        "preprocessing (full frames, OpenCV TV-L1, nose-tip head motion, nearest-bin map)",
    )
    ap.add_argument("--config", default=None, help="TOML config file (face, flow, fusion, [explain.<name>])")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set explain.llm.region_format=mellm-v3 (repeatable)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    flags = {
        k: v
        for k, v in (
            ("model", args.model),
            ("adapter", args.adapter),
            ("endpoint", args.endpoint),
            ("language", args.language),
        )
        if v
    }
    from engine.config import load_config, parse_override
    from engine.explain.openai_client import OpenAIProtocolError, OpenAIRequestError

    try:
        # The explainer's own config section (prompt_file, system_prompt, sampling, ...), then the flags.
        cfg = load_config(args.config, dict(parse_override(item) for item in args.set))
        explainer = args.explainer or cfg.explain.name
        section = cfg.explain.section(explainer)
        params = {**(section.model_dump() if section is not None else {}), **flags}
        if args.out:  # fail before the work, not after it
            try:
                Path(args.out).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"cannot create --out folder {args.out}: {exc.strerror or exc}") from None
        result = analyze_pair(
            args.onset,
            args.apex,
            explainer,
            config=cfg,
            face_model=args.face_model or None,
            preprocess=args.preprocess,
            **params,
        )
        written = write_outputs(result, Path(args.out)) if args.out else []
    except (UserError, OpenAIRequestError) as exc:  # a server that cannot be reached: check --endpoint
        unreachable = isinstance(exc, OpenAIRequestError)
        hint = "; check --endpoint, --model and that the server runs" if unreachable else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2
    except OpenAIProtocolError as exc:  # the server answered nonsense: not the user's mistake
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        print(result.summary())
        for p in written:
            print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
