"""MEGC ME-VQA: question files, answers in the challenge's words, and the challenge's scores.

    python -m training.mevqa answer --questions Q.jsonl --root DATA --explainer NAME --out A.jsonl
    python -m training.mevqa score --questions Q.jsonl --answers A.jsonl --truth T.jsonl [--json OUT]

A question file is JSON lines, one question per line, as the MEGC 2025 organisers publish them
(``me_vqa_samm_casme2_smic.jsonl`` for training, ``me_vqa_*_test_to_answer.jsonl`` for testing):
``id``, ``dataset``, ``image_id`` (one clip), ``subject``, ``filename`` (the clip's folder), in the
test files ``onset_frame`` and ``offset_frame``, ``question`` and ``answer`` (empty when it is to be
answered). A submission is the same file with ``answer`` filled in; a truth file is the same file
with the reference answers. Five kinds of question are asked of each clip (`question_kind`):
the coarse class (positive / negative / surprise), the fine class (anger, happiness, ...), the
action units by FACS name, yes/no about one AU, and a combined one (AUs, then fine, then coarse).

Scores, as the MEGC 2025 reference scripts compute them:

- UF1 and UAR of the coarse and of the fine class: macro F1 and macro recall (scikit-learn) over
  the classes seen in the truth or in the answers, on the coarse and fine questions; the class is
  read from the free-text answer (`parse_class`);
- BLEU (NLTK ``sentence_bleu`` on whitespace tokens, smoothing method 1) and ROUGE-1 recall
  (``rouge-score``, Porter stemmer) of each lower-cased answer against its reference, averaged over
  every question with a non-empty reference and answer;
- besides the challenge's figures: AU F1 (per AU on presence, mean over the AUs of the truth;
  `training.metrics.au_scores`) from the AU-list questions, and yes/no accuracy.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from training.metrics import au_scores
from training.mevqa_format import (
    COARSE,
    FINE,
    au_phrase,
    parse_aus,
    parse_class,
    question_kind,
    read_jsonl,
    row_key,
    write_jsonl,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True, slots=True)
class ClassScore:
    uf1: float
    uar: float
    n: int
    labels: tuple[str, ...]


def class_scores(truth: Sequence[str], pred: Sequence[str]) -> ClassScore:
    """Macro F1 (UF1) and macro recall (UAR) over the labels of truth and answers together, as the
    MEGC 2025 script does (a class only ever answered counts with F1 0 and recall 0)."""
    from sklearn.metrics import f1_score, recall_score

    if not truth:
        return ClassScore(0.0, 0.0, 0, ())
    labels = sorted(set(truth) | set(pred))
    uf1 = f1_score(truth, pred, labels=labels, average="macro", zero_division=0)
    uar = recall_score(truth, pred, labels=labels, average="macro", zero_division=0)
    return ClassScore(float(uf1), float(uar), len(truth), tuple(labels))


def text_scores(refs: Sequence[str], answers: Sequence[str]) -> tuple[float, float, int]:
    """Mean BLEU (NLTK, smoothing method 1) and mean ROUGE-1 recall over pairs with both texts."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)
    smooth = SmoothingFunction().method1
    bleu: list[float] = []
    rouge: list[float] = []
    for ref, ans in zip(refs, answers, strict=True):
        r, a = ref.strip().lower(), ans.strip().lower()
        if not r or not a:
            continue
        bleu.append(float(sentence_bleu([r.split()], a.split(), smoothing_function=smooth)))
        rouge.append(float(scorer.score(r, a)["rouge1"].recall))
    n = len(bleu)
    return (sum(bleu) / n if n else 0.0), (sum(rouge) / n if n else 0.0), n


def score(
    questions: Sequence[dict[str, Any]], answers: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The challenge's figures (and AU F1, yes/no accuracy) of ``answers`` against ``truth``, over the
    questions of ``questions``. A question with no answer counts as answered with an empty text."""
    given = {row_key(r): str(r.get("answer", "")) for r in answers}
    ref = {row_key(r): str(r.get("answer", "")) for r in truth}
    missing = [k for k in (row_key(q) for q in questions) if k not in ref]
    if missing:
        raise UserError(
            f"the truth file has no answer for {len(missing)} question(s), e.g. {missing[0]!r}; "
            "give the truth file of this question file"
        )
    unanswered = 0
    cls: dict[str, tuple[list[str], list[str]]] = {"coarse": ([], []), "fine": ([], [])}
    au_t: list[set[int]] = []
    au_p: list[set[int]] = []
    yes_ok = yes_n = 0
    refs: list[str] = []
    outs: list[str] = []
    per_kind: dict[str, int] = {}
    for q in questions:
        k = row_key(q)
        r, a = ref[k], given.get(k)
        if a is None:
            unanswered += 1
            a = ""
        kind, _ = question_kind(str(q["question"]))
        per_kind[kind] = per_kind.get(kind, 0) + 1
        refs.append(r)
        outs.append(a)
        if kind in cls:
            names = COARSE if kind == "coarse" else FINE
            cls[kind][0].append(parse_class(r, names))
            cls[kind][1].append(parse_class(a, names))
        elif kind == "aus":
            au_t.append(parse_aus(r))
            au_p.append(parse_aus(a))
        elif kind == "au_yesno":
            yes_n += 1
            yes_ok += parse_class(r, ("yes", "no")) == parse_class(a, ("yes", "no"))
    bleu, rouge, n_text = text_scores(refs, outs)
    coarse, fine = class_scores(*cls["coarse"]), class_scores(*cls["fine"])
    aus = au_scores(au_t, au_p)
    per_au = {au_phrase(int(a)): s for a, s in aus.to_json()["per_au"].items() if s["support"] or s["fp"]}
    return {
        "n_questions": len(questions),
        "unanswered": unanswered,
        "questions_per_kind": per_kind,
        "coarse": {"uf1": coarse.uf1, "uar": coarse.uar, "n": coarse.n, "labels": list(coarse.labels)},
        "fine": {"uf1": fine.uf1, "uar": fine.uar, "n": fine.n, "labels": list(fine.labels)},
        "bleu": bleu,
        "rouge1": rouge,
        "n_text": n_text,
        "au_f1": aus.mean_f1,
        "n_au_questions": len(au_t),
        "au": per_au,
        "yesno_accuracy": yes_ok / yes_n if yes_n else 0.0,
        "n_yesno": yes_n,
    }


def format_scores(s: dict[str, Any]) -> str:
    c, f = s["coarse"], s["fine"]
    lines = [
        f"questions {s['n_questions']} (unanswered {s['unanswered']})",
        f"coarse  UF1 {c['uf1']:.4f}  UAR {c['uar']:.4f}  (n={c['n']})",
        f"fine    UF1 {f['uf1']:.4f}  UAR {f['uar']:.4f}  (n={f['n']})",
        f"BLEU    {s['bleu']:.4f}  ROUGE-1 {s['rouge1']:.4f}  (n={s['n_text']})",
        f"AU F1   {s['au_f1']:.4f}  (n={s['n_au_questions']})  yes/no accuracy {s['yesno_accuracy']:.4f}"
        f" (n={s['n_yesno']})",
    ]
    for name, a in sorted(s["au"].items(), key=lambda kv: -kv[1]["support"]):
        lines.append(f"  {name:22s} F1 {a['f1']:.3f}  tp {a['tp']} fp {a['fp']} fn {a['fn']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.mevqa", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("answer", help="answer a question file with one of the engine's explainers")
    a.add_argument("--questions", required=True, help="ME-VQA question file (JSON lines)")
    a.add_argument("--root", required=True, help="folder of the database's frame folders")
    a.add_argument("--explainer", default="rules", help="rules (default), vlm, llm or openai")
    a.add_argument("--out", required=True, help="answers file to write (the question file, answered)")
    a.add_argument(
        "--layout",
        default="",
        help="frame layout: casme2, samm, casme3, smic, mmew (default: from each line's dataset)",
    )
    a.add_argument(
        "--pattern",
        default="",
        help="frame path template, e.g. "
        "'{root}/{subject}/{clip}/{frame}.jpg' (fields root, dataset, subject, clip, frame)",
    )
    a.add_argument(
        "--sheet",
        default="",
        help="annotation sheet giving onset/apex/offset of clips the question file gives none for",
    )
    a.add_argument("--flow", default="opencv-tvl1", help="flow backend of the evidence")
    a.add_argument("--model", default="", help="model folder (vlm, llm) or served model (openai)")
    a.add_argument("--adapter", default="", help="LoRA adapter folder (vlm, llm)")
    a.add_argument("--endpoint", default="", help="OpenAI-compatible server (openai)")
    a.add_argument("--face-model", default="", help="MediaPipe face_landmarker.task file")
    a.add_argument("--limit", type=int, default=0, help="answer only the first N clips")
    a.add_argument(
        "--cache",
        default="",
        help="folder to keep each clip's evidence in (pickles): a "
        "second run with another explainer skips the face and flow work",
    )
    s = sub.add_parser("score", help="score an answers file against a truth file")
    s.add_argument("--questions", required=True, help="ME-VQA question file (JSON lines)")
    s.add_argument("--answers", required=True, help="answers (the question file with answers filled)")
    s.add_argument("--truth", required=True, help="reference answers (same layout)")
    s.add_argument("--json", default="", help="also write the figures to this JSON file")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        questions = read_jsonl(args.questions, "question")
        if args.cmd == "score":
            figures = score(questions, read_jsonl(args.answers, "answers"), read_jsonl(args.truth, "truth"))
            print(format_scores(figures))
            if args.json:
                try:
                    Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
                except OSError as exc:
                    raise UserError(f"cannot write --json {args.json}: {exc.strerror or exc}") from None
            return 0
        from training.mevqa_run import RunSettings, answer_file

        params = {
            k: v
            for k, v in (("model", args.model), ("adapter", args.adapter), ("endpoint", args.endpoint))
            if v
        }
        settings = RunSettings(
            root=args.root,
            layout=args.layout,
            pattern=args.pattern,
            sheet=args.sheet,
            flow=args.flow,
            face_model=args.face_model,
            limit=args.limit,
            cache=args.cache,
        )
        rows, report = answer_file(questions, args.explainer, params, settings)
        write_jsonl(args.out, rows)
        print(report)
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
