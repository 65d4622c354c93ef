"""ME-VQA: the challenge's question kinds and answers, the scorer on hand-computed figures, and the
``answer`` command on tiny clips in the CASME II and SAMM folder layouts.

The clips are the astronaut photograph shipped with the demo source, warped by `spotting.inject`
with one FACS movement (3 px on a 200 px face) rising from the onset to the apex and back, every
frame written; the question file is in the MEGC 2025 format (``me_vqa_*_test_to_answer.jsonl``:
onset and offset given, no apex; the training file gives neither).
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from training.mevqa import (
    answer_for,
    class_scores,
    parse_aus,
    parse_class,
    question_kind,
    score,
    text_scores,
)

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
