"""ME-VQA: the challenge's question kinds and answers, the scorer on hand-computed figures, and the
``answer`` command on tiny clips in the CASME II and SAMM folder layouts.

The clips are the astronaut photograph shipped with the demo source, warped by `engine.synth`
with one FACS movement (3 px on a 200 px face) rising from the onset to the apex and back, every
frame written; the question file is in the MEGC 2025 format (``me_vqa_*_test_to_answer.jsonl``:
onset and offset given, no apex; the training file gives neither).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from tests.conftest import ROOT
from training.build_dataset import FRAME_PATTERNS
from training.mevqa import class_scores, score, text_scores
from training.mevqa_format import answer_for, au_phrase, parse_aus, parse_class, question_kind

Q_COARSE = "What is the coarse expression class?"
Q_FINE = "What is the fine-grained expression class?"
Q_AUS = "What are the action units?"
Q_COMBINED = (
    "What are the action units present, and based on them, what is the fine-grained expression and the "
    "coarse expression class?"
)


def run_module(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_question_kinds_and_answers_when_in_the_challenge_wording() -> None:
    assert question_kind(Q_COARSE) == ("coarse", None)
    assert question_kind(Q_FINE) == ("fine", None)
    assert question_kind(Q_AUS) == ("aus", None)
    assert question_kind("What is the action unit?") == ("aus", None)
    assert question_kind("Is the action unit lip corner puller shown on the face?") == ("au_yesno", 12)
    assert question_kind(Q_COMBINED) == ("combined", None)
    assert question_kind("How old is the subject?") == ("other", None)
    assert answer_for(Q_AUS, [4, 7], "anger", "negative") == "brow lowerer, lid tightener"
    assert (
        answer_for("Is the action unit lid tightener shown on the face?", [4, 7], "anger", "negative")
        == "yes"
    )
    assert answer_for("Is the action unit dimpler shown on the face?", [4, 7], "anger", "negative") == "no"
    # the training file's own reference sentence, word for word
    assert answer_for(Q_COMBINED, [4, 7], "anger", "negative") == (
        "The action units present are: brow lowerer, lid tightener. Therefore, the fine-grained expression "
        "class is anger, and the coarse expression class is negative."
    )
    assert answer_for(Q_COMBINED, [4], "anger", "negative").startswith(
        "The action unit present is: brow lowerer."
    )


def test_answers_are_read_back_when_free_text() -> None:
    assert parse_aus("The action units present are: brow lowerer, lid tightener. Therefore...") == {4, 7}
    assert parse_aus("upper lip raiser and AU12") == {10, 12}  # not "lip raiser" twice
    assert parse_aus("eye closure, nostril compress") == {43, 39}  # SAMM's spellings
    assert parse_class("It looks Negative to me", ("negative", "positive", "surprise")) == "negative"
    assert parse_class("no idea", ("negative", "positive")) == "no idea"
    combined = (
        "... the fine-grained expression class is surprise, and the coarse expression class is positive."
    )
    assert parse_class(
        combined, ("negative", "positive", "surprise"), after="coarse expression class is"
    ) == ("positive")


def test_class_scores_when_hand_computed() -> None:
    truth = ["negative", "positive", "surprise", "negative"]
    pred = ["negative", "negative", "surprise", "i don't know"]
    s = class_scores(truth, pred)
    # labels of truth and answers: negative tp1 fp1 fn1 → F1 1/2, recall 1/2; positive 0, 0;
    # surprise 1, 1; "i don't know" (answered only) F1 0, recall 0 — the MEGC 2025 script's way.
    assert s.labels == ("i don't know", "negative", "positive", "surprise")
    assert s.uf1 == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert s.uar == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    perfect = class_scores(["anger", "happiness"], ["anger", "happiness"])
    assert (perfect.uf1, perfect.uar) == (1.0, 1.0)


def test_text_scores_when_hand_computed() -> None:
    refs = [
        "brow lowerer",
        "brow lowerer, lid tightener",
        "yes",
        "the action unit present is: brow lowerer.",
        "",
    ]
    answers = ["brow lowerer", "brow lowerer", "no", "the action unit present is: lid tightener.", "negative"]
    bleu, rouge, n = text_scores(refs, answers)
    # BLEU-4, smoothing 1 (a zero count becomes 0.1 / max(1, total)), brevity penalty exp(1 - r / c):
    b1 = math.sqrt(0.1)  # 2 words: p1 = p2 = 1, p3 = p4 = 0.1
    b2 = math.exp(1 - 4 / 2) * (0.5 * 0.1 * 0.1 * 0.1) ** 0.25  # "lowerer," ≠ "lowerer": p1 = 1/2
    b3 = 0.0  # no word in common: NLTK gives 0 whatever the smoothing
    b4 = (5 / 7 * 4 / 6 * 3 / 5 * 2 / 4) ** 0.25
    # ROUGE-1 recall, Porter-stemmed words: 2/2, 2/4, 0/1, 5/7; the empty reference is left out.
    assert n == 4
    assert bleu == pytest.approx((b1 + b2 + b3 + b4) / 4)
    assert rouge == pytest.approx((1 + 0.5 + 0 + 5 / 7) / 4)


def _rows(clip: str, answers: dict[str, str]) -> list[dict[str, object]]:
    return [
        {
            "id": f"samm_{clip}_{k}",
            "dataset": "samm",
            "image_id": clip,
            "subject": "6",
            "filename": clip,
            "question": q,
            "answer": a,
        }
        for k, (q, a) in enumerate(answers.items(), 1)
    ]


def test_score_when_hand_computed_on_a_tiny_file() -> None:
    yes_q = "Is the action unit brow lowerer shown on the face?"
    truth = _rows(
        "006_1_2", {Q_COARSE: "negative", Q_FINE: "anger", Q_AUS: "brow lowerer, lid tightener", yes_q: "yes"}
    )
    truth += _rows(
        "011_2_3",
        {
            Q_COARSE: "positive",
            Q_FINE: "happiness",
            "What is the action unit?": "lip corner puller",
            yes_q: "no",
        },
    )
    questions = [{**r, "answer": ""} for r in truth]
    given = [dict(r) for r in truth]
    given[1]["answer"] = "disgust"  # fine wrong on the first clip
    given[2]["answer"] = "brow lowerer"  # AU7 missed
    given[4]["answer"] = "The coarse class is negative."  # coarse wrong on the second clip
    del given[7]  # yes/no of the second clip unanswered
    s = score(questions, given, truth)
    # coarse: negative tp1 fp1 → F1 2/3, recall 1; positive fn1 → 0, 0.
    assert (s["coarse"]["uf1"], s["coarse"]["uar"]) == pytest.approx((1 / 3, 1 / 2))
    # fine: labels anger, disgust, happiness; only happiness right.
    assert (s["fine"]["uf1"], s["fine"]["uar"]) == pytest.approx((1 / 3, 1 / 3))
    # AU: brow lowerer 1, lid tightener 0, lip corner puller 1.
    assert s["au_f1"] == pytest.approx(2 / 3)
    assert (s["yesno_accuracy"], s["unanswered"], s["n_questions"]) == (0.5, 1, 8)
    assert s["n_text"] == 7  # the unanswered one has no text to score


# Tiny clips from a real face: (layout, subject, clip, first frame, AUs, coarse, fine); the SAMM
# clip is asked as the training file asks (no frames given: the whole folder), the CASME II one as
# the test files do (onset and offset given).
TINY = [
    ("samm", "006", "006_1_2", 5562, (6, 12), "positive", "happiness"),
    ("casme2", "01", "EP02_01f", 46, (4,), "negative", "anger"),
]
N_FRAMES = 9  # onset, rise to the apex at frame 4, fall back to the offset


def render_tiny(root: Path) -> None:
    from engine.sources.demo import astronaut_bgr, demo_landmarks
    from engine.synth import InjectedEvent
    from evaluation.inject import render_frame

    image, landmarks = astronaut_bgr(), demo_landmarks()
    for layout, subject, clip, first, aus, _, _ in TINY:
        ev = InjectedEvent(first, first + 4, first + N_FRAMES - 1, aus, amplitude_px=3.0)
        for f in range(first, first + N_FRAMES):
            path = Path(FRAME_PATTERNS[layout].format(root=root, subject=subject, clip=clip, frame=f))
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), render_frame(image, landmarks, [ev], f), [cv2.IMWRITE_JPEG_QUALITY, 95])


def tiny_questions(path: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for layout, subject, clip, first, aus, coarse, fine in TINY:
        clip_id = f"{subject}_{clip}"
        base: dict[str, object] = {
            "dataset": layout,
            "image_id": clip_id,
            "subject": subject.lstrip("0"),
            "filename": clip,
        }
        if layout == "casme2":
            base |= {"onset_frame": first, "offset_frame": first + N_FRAMES - 1}
        q_aus = "What is the action unit?" if len(aus) == 1 else Q_AUS
        asked = [
            (Q_COARSE, coarse),
            (Q_FINE, fine),
            (q_aus, ", ".join(au_phrase(a) for a in aus)),
            (f"Is the action unit {au_phrase(aus[0])} shown on the face?", "yes"),
            ("Is the action unit lip stretcher shown on the face?", "no"),
        ]
        rows += [
            {"id": f"{layout}_{clip_id}_{k}", **base, "question": q, "answer": a}
            for k, (q, a) in enumerate(asked, 1)
        ]
    path.write_text("".join(json.dumps({**r, "answer": ""}) + "\n" for r in rows))
    return rows


@pytest.mark.slow
def test_answer_and_score_commands_when_tiny_clips_in_the_database_layouts(
    tmp_path: Path, face_model: Path
) -> None:
    render_tiny(tmp_path / "frames")
    truth = tiny_questions(tmp_path / "q.jsonl")
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in truth))
    p = run_module(
        "training.mevqa",
        "answer",
        "--questions",
        str(tmp_path / "q.jsonl"),
        "--root",
        str(tmp_path / "frames"),
        "--explainer",
        "rules",
        "--out",
        str(tmp_path / "a.jsonl"),
        "--layout",
        "",
        "--flow",
        "dis",
    )
    assert p.returncode == 0, p.stderr
    assert "answered 2 of 2 clips" in p.stdout
    answers = {r["id"]: r["answer"] for r in map(json.loads, (tmp_path / "a.jsonl").read_text().splitlines())}
    assert len(answers) == len(truth)
    for r in truth:  # the rules explainer on a clean 3-px movement of a still face: all right
        kind, _ = question_kind(str(r["question"]))
        got = answers[str(r["id"])]
        if kind == "aus":
            assert parse_aus(str(r["answer"])) <= parse_aus(got), (r, got)
        else:
            assert got == r["answer"], (r, got)
    p = run_module(
        "training.mevqa",
        "score",
        "--questions",
        str(tmp_path / "q.jsonl"),
        "--answers",
        str(tmp_path / "a.jsonl"),
        "--truth",
        str(tmp_path / "t.jsonl"),
        "--json",
        str(tmp_path / "s.json"),
    )
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["coarse"]["uf1"], s["fine"]["uf1"], s["yesno_accuracy"]) == (1.0, 1.0, 1.0)
    assert "coarse  UF1 1.0000" in p.stdout


def test_commands_fail_with_one_line_when_bad_input(tmp_path: Path) -> None:
    p = run_module(
        "training.mevqa",
        "score",
        "--questions",
        str(tmp_path / "absent.jsonl"),
        "--answers",
        "a",
        "--truth",
        "t",
    )
    assert p.returncode == 2 and "not found" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "q.jsonl").write_text('{"id": "x", "dataset": "nowhere", "image_id": "c", "question": "?"}\n')
    p = run_module(
        "training.mevqa",
        "score",
        "--questions",
        str(tmp_path / "q.jsonl"),
        "--answers",
        str(tmp_path / "q.jsonl"),
        "--truth",
        str(tmp_path / "q.jsonl"),
    )
    assert p.returncode == 0, p.stderr
    p = run_module(
        "training.mevqa",
        "answer",
        "--questions",
        str(tmp_path / "q.jsonl"),
        "--root",
        str(tmp_path),
        "--out",
        str(tmp_path / "a.jsonl"),
        "--flow",
        "dis",
    )
    assert p.returncode == 2 and "cannot tell the frame layout of dataset 'nowhere'" in p.stderr
