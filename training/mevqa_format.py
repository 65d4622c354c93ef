"""MEGC ME-VQA question files: the classes, the five kinds of question, answers in the challenge's
words, and reading answers back (shared by the answer runner and the scorer, `training.mevqa`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.facs import AU_NAMES

COARSE: tuple[str, ...] = ("negative", "positive", "surprise", "others")
FINE: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
    "repression",
    "others",
)
KINDS: tuple[str, ...] = ("coarse", "fine", "aus", "au_yesno", "combined")

# The challenge spells some AUs its own way (SAMM coding); both spellings read back to the AU.
_AU_ALIASES: dict[str, int] = {
    "eye closure": 43,
    "eyes closure": 43,
    "nostril compress": 39,
    "neck tightener": 21,
    "lid droop": 41,
    "lips toward": 8,
}
AU_BY_NAME: dict[str, int] = {**{n.lower(): a for a, n in AU_NAMES.items()}, **_AU_ALIASES}
_YESNO = re.compile(r"^is the action unit (.+?) shown on the face\??$", re.I)


def au_phrase(au: int) -> str:
    """The challenge's name of an AU: FACS name in lower case (``brow lowerer``); ``AU{n}`` if unnamed."""
    name = AU_NAMES.get(int(au))
    return name.lower() if name else f"AU{int(au)}"


def question_kind(question: str) -> tuple[str, int | None]:
    """(kind, AU asked about for ``au_yesno``); kind ``other`` for a question the challenge never asks.

    >>> question_kind("Is the action unit brow lowerer shown on the face?")
    ('au_yesno', 4)
    >>> question_kind("What is the fine-grained expression class?")[0]
    'fine'
    """
    q = " ".join(question.lower().split())
    if m := _YESNO.match(q):
        return "au_yesno", AU_BY_NAME.get(m.group(1).strip())
    if q.startswith("what is the coarse expression class"):
        return "coarse", None
    if q.startswith("what is the fine-grained expression class"):
        return "fine", None
    if q.startswith(("what are the action units present", "what is the action unit present")):
        return "combined", None
    if q.startswith(("what are the action units", "what is the action unit")):
        return "aus", None
    return "other", None


def parse_aus(text: str) -> set[int]:
    """The AUs an answer names (FACS names, challenge spellings, or ``AU12``), longest names first."""
    t = " " + " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split()) + " "
    found: set[int] = set()
    for name in sorted(AU_BY_NAME, key=len, reverse=True):
        key = f" {name} "
        if key in t:
            found.add(AU_BY_NAME[name])
            t = t.replace(key, " | ")
    found |= {int(n) for n in re.findall(r"\bau ?(\d{1,2})\b", t)}
    return found


def parse_class(text: str, classes: Sequence[str], after: str = "") -> str:
    """The first of ``classes`` the answer names (after the phrase ``after`` when it holds it);
    the lower-cased answer itself when it names none (counts as a wrong class)."""
    t = text.lower()
    if after and after in t:
        t = t[t.index(after) + len(after) :]
    hits = [(m.start(), c) for c in classes if (m := re.search(rf"\b{c}\b", t))]
    return min(hits)[1] if hits else " ".join(text.lower().split()) or "(empty)"


def combined_answer(aus: Sequence[int], fine: str, coarse: str) -> str:
    """The combined question's answer in the challenge's own sentence."""
    names = ", ".join(au_phrase(a) for a in aus) or "none"
    head = "The action units present are" if len(aus) > 1 else "The action unit present is"
    return (
        f"{head}: {names}. Therefore, the fine-grained expression class is {fine}, "
        f"and the coarse expression class is {coarse}."
    )


def answer_for(question: str, aus: Sequence[int], fine: str, coarse: str) -> str:
    """The answer a question asks for, given the explanation's AUs, fine and coarse class."""
    kind, au = question_kind(question)
    if kind == "coarse":
        return coarse
    if kind == "fine":
        return fine
    if kind == "aus":
        return ", ".join(au_phrase(a) for a in aus) or "none"
    if kind == "au_yesno":
        return "yes" if au is not None and au in set(aus) else "no"
    return combined_answer(aus, fine, coarse)


# ---------------------------------------------------------------------------------------------
# Files


def read_jsonl(path: str | Path, what: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a missing file or a bad line is a `UserError`."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} file {p} not found; give a JSON-lines file (one question per line)")
    rows: list[dict[str, Any]] = []
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise UserError(f"{p}:{n} is not JSON; each line must be one JSON object") from None
            if not isinstance(row, dict) or "question" not in row:
                raise UserError(f"{p}:{n} has no 'question' field; is it an ME-VQA question file?")
            rows.append(row)
    return rows


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write {p}: {exc.strerror or exc}; choose another --out") from None


def row_key(row: dict[str, Any]) -> str:
    """How answers are joined to questions: ``id``, else clip and question text."""
    if "id" in row:
        return str(row["id"])
    clip = row.get("image_id", row.get("video_id", row.get("video", "")))
    return f"{clip}|{' '.join(str(row['question']).lower().split())}"
