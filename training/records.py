"""One record type for every micro-expression annotation sheet, and the AU-string grammar they share.

A `MERecord` is one labelled micro-expression clip: where it is (dataset, subject, clip), when
(onset / apex / offset frame numbers exactly as the sheet writes them, and the database's fps),
what moved (`AUCode` tuples parsed from strings such as ``"1+2+R4"``, ``"L12A"``, ``"4R+7"``,
``"12(?)"``) and the labelled emotion with its MEGC 2019 composite 3-class label.

Conventions chosen here (documented because the sheets disagree):

- ``onset`` is required; ``apex`` and ``offset`` may be ``None`` = unknown (CASME II writes ``/``
  or ``0``, SMIC leaves some offsets empty). Such rows are kept and reported as warnings.
- Side: ``L`` / ``R`` prefixes or suffixes (``L12``, ``12L``) give the subject's side; the
  other FACS prefixes (``A`` asymmetric, ``T`` top lip, ``B`` bottom lip, ``U`` unilateral without
  side) act on both sides as far as our L/R/B vocabulary goes, so they give ``B``.
- Intensity: the FACS letter A..E after the number (``12B``, ``43E``); ``A/B`` keeps the lower.
- Alternatives (``L12 or L14``) keep the first; SAMM's ``/`` (= or) between sides or intensities
  (``A/L12``, ``10A/B``) keeps the unilateral side and the lower intensity; ``ref(7B)`` (SAMM: a reference
  movement) keeps the code; ``12(?)`` keeps the uncertain code; words that are not codes (``soft
  focus``) and ``?`` / ``Unclear`` are dropped. Every such decision is returned as a note so the
  reader can report it with file and line.
- Codes keep their FACS number even without a name in `engine.facs.AU_NAMES` (``AD38`` →
  38, ``M58`` → 58 head movement, ``61`` eye movement).

>>> codes, notes = parse_au_string("1+2+R4")
>>> [tuple(c) for c in codes], notes
([(1, 'B', None), (2, 'B', None), (4, 'R', None)], [])
>>> [tuple(c) for c in parse_au_string("L12A+ref(7B)")[0]]
[(12, 'L', 'A'), (7, 'B', 'B')]
>>> parse_au_string("Unclear")
((), ["AU field 'Unclear' names no action unit"])
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

from engine.facs import MEGC_CLASS, megc_class

Side = Literal["L", "R", "B"]
Severity = Literal["error", "warning"]

DATASETS: tuple[str, ...] = ("casme2", "samm", "casme3", "dfme", "mmew", "smic")

# Sheet labels that are spelled differently from `engine.facs.DETAILS`.
_DETAIL_ALIASES: dict[str, str] = {"happy": "happiness", "sad": "sadness", "other": "others"}

# MEGC 2019 composite: which emotion details each database leaves out of the 3-class set
# (FACS.md: CASME II others/sadness/fear, SAMM other). CAS(ME)^3, DFME and MMEW map every
# negative emotion to negative (CAS(ME)^3 per FACS.md; DFME and MMEW by the same rule, our choice).
_MEGC_EXCLUDED: dict[str, frozenset[str]] = {
    "casme2": frozenset({"sadness", "fear"}),
}


class AUCode(NamedTuple):
    """One coded action unit: FACS number, side (subject's own L / R, or B both) and intensity A..E."""

    au: int
    side: Side = "B"
    intensity: str | None = None

    def label(self) -> str:
        """``L12A``-style code as the sheets write it."""
        return f"{'' if self.side == 'B' else self.side}{self.au}{self.intensity or ''}"


@dataclass(frozen=True, slots=True)
class SheetIssue:
    """A row the reader could not take as is. ``error``: the row produced no record; ``warning``:
    the record was kept with the decision stated in ``message``."""

    source: str
    line: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.severity}: {self.message}"


@dataclass(frozen=True, slots=True)
class MERecord:
    """One annotated micro-expression clip.

    ``onset``/``apex``/``offset``: frame numbers as written in the sheet (``None`` = unknown);
    ``fps``: the recording's frame rate; ``emotion``: the sheet's label in lower case;
    ``megc3``: positive | negative | surprise, or ``None`` when the composite set leaves it out;
    ``au_text``: the sheet's AU field verbatim; ``source``/``line``: file and 1-based row.
    """

    dataset: str
    subject: str
    clip: str
    onset: int
    apex: int | None
    offset: int | None
    fps: float
    aus: tuple[AUCode, ...]
    emotion: str
    megc3: str | None
    source: str
    line: int
    au_text: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        """Unique id within a dataset build: ``dataset/subject/clip/onset``."""
        return f"{self.dataset}/{self.subject}/{self.clip}/{self.onset}"

    @property
    def subject_key(self) -> str:
        """The subject across databases (``casme2/01``): the unit of leave-one-subject-out."""
        return f"{self.dataset}/{self.subject}"

    @property
    def detail(self) -> str:
        """The label in `engine.facs.DETAILS` words (``happy`` → ``happiness``), else ``others``."""
        word = _DETAIL_ALIASES.get(self.emotion, self.emotion)
        return word if word in MEGC_CLASS else "others"

    def au_numbers(self) -> frozenset[int]:
        return frozenset(c.au for c in self.aus)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["aus"] = [list(c) for c in self.aus]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MERecord:
        d = dict(d)
        d["aus"] = tuple(AUCode(int(a), s, i) for a, s, i in d.get("aus", ()))
        d["extra"] = dict(d.get("extra") or {})
        return cls(**d)


def megc3_of(dataset: str, emotion: str) -> str | None:
    """MEGC 2019 composite class of a (lower-case) sheet label, ``None`` when left out.

    SMIC's labels are the classes themselves. ``others`` and labels without a class are ``None``.
    """
    if emotion in ("positive", "negative", "surprise"):
        return emotion
    detail = _DETAIL_ALIASES.get(emotion, emotion)
    if detail in _MEGC_EXCLUDED.get(dataset, frozenset()):
        return None
    cls = megc_class(detail)
    return None if cls == "others" else cls


_TERM = re.compile(
    r"""^(?P<pre>(?:[LRATBU]/)?[LRATBU])?\s*   # side / FACS prefix (A/L12: asymmetric or left)
        (?:AU|AD|M)?\s*                        # AU4, AD38 (action descriptor), M58 (movement)
        (?P<num>\d{1,2})
        (?P<suf>[LR](?![A-Z]))?                # 12L, 4R (MMEW)
        (?P<int>[A-E](?:/[A-E])?)?             # intensity, 10A/B
        \s*(?P<q>\(\?\)|\?)?$""",
    re.VERBOSE | re.IGNORECASE,
)
_REF = re.compile(r"ref\(([^)]*)\)", re.IGNORECASE)
_NO_AU = {"", "?", "unclear", "none", "n/a", "na", "-", "/"}


def _unwrap(text: str) -> str:
    """``(R6 or R12)`` → ``R6 or R12``; ``12(?)`` stays."""
    t = text.strip()
    while t.startswith("(") and t.endswith(")"):
        t = t[1:-1].strip()
    return t


def _parse_term(term: str, notes: list[str]) -> AUCode | None:
    t = _unwrap(term)
    alts = re.split(r"\s+or\s+", t, flags=re.IGNORECASE)
    if len(alts) > 1:
        notes.append(f"AU alternatives {term.strip()!r}: kept the first, {alts[0].strip()!r}")
        t = _unwrap(alts[0])
    m = _TERM.match(t)
    if m is None:
        notes.append(f"AU term {term.strip()!r} is not an action unit code: left out")
        return None
    pre = (m["pre"] or "").upper()
    side: Side = "B"
    if "L" in pre or (m["suf"] or "").upper() == "L":
        side = "L"
    elif "R" in pre or (m["suf"] or "").upper() == "R":
        side = "R"
    if "/" in pre:
        notes.append(f"AU side {pre!r} of {term.strip()!r}: read as {side}")
    intensity = (m["int"] or "").upper() or None
    if intensity and "/" in intensity:
        notes.append(f"AU intensity {intensity!r} of {term.strip()!r}: kept {intensity[0]!r}")
        intensity = intensity[0]
    if m["q"]:
        notes.append(f"AU {term.strip()!r} is marked uncertain: kept")
    return AUCode(int(m["num"]), side, intensity)


def parse_au_string(text: str) -> tuple[tuple[AUCode, ...], list[str]]:
    """AU codes of a sheet's AU field, plus notes on every guess or drop (empty when clean).

    A code repeated in one field (``4+7+4``) is kept once.
    """
    raw = str(text).strip()
    notes: list[str] = []
    if raw.lower() in _NO_AU:
        if raw:
            notes.append(f"AU field {raw!r} names no action unit")
        return (), notes
    body = _REF.sub(r"\1", raw)
    codes: list[AUCode] = []
    seen: set[tuple[int, str]] = set()
    for term in body.split("+"):
        if not term.strip():
            notes.append(f"empty AU term in {raw!r}: left out")
            continue
        code = _parse_term(term, notes)
        if code is not None and (code.au, code.side) not in seen:
            seen.add((code.au, code.side))
            codes.append(code)
    return tuple(codes), notes
