"""Annotation sheets for spotting: the long-video sheets (MEGC truth) and event priors from real sheets.

Long-video layouts (the databases' own files; examples in ``../shared/data/annotations``):

- ``casme2_long``: ``CAS(ME)^2code_final(Updated).csv``, no header, one expression per row:
  subject, clip, onset, apex, offset, AUs, emotion class, ``micro-expression`` | ``macro-expression``,
  emotion, duration, video path (``s15/15_0401girlcrashing``). 30 fps. An offset of 0 means
  unknown: the interval ends at the apex (as the MEGC scripts do). A few rows shift their columns
  by one; the type is found as the cell naming ``…-expression``, the video path is the last cell.
- ``samm_long``: ``SAMM_LongVideos_V2_Release.csv`` (or .xlsx): notes, then the header Subject,
  Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes. 200 fps.
  The video is the file name without its last ``_k`` (``006_1_3`` → ``006_1``); Type ``Macro`` or
  ``Micro - 1/2``; an apex of -1 is unknown.

Short-clip sheets (CASME II, SAMM, CAS(ME)^3, …) are read by `training.readers`; `SheetEvents`
turns their records into the injector's duration and AU/emotion draws, rescaled to any fps.

>>> events = read_long_sheet("../shared/data/annotations/samm_long/SAMM_LongVideos_V2_Release.csv",
...                          "samm_long")  # doctest: +SKIP
>>> events[0].video, events[0].kind
('006_1', 'macro')
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import UserError
from engine.types import Side

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """Frame rate of a long-video database and the folders its media may sit in under the root."""

    fps: float
    prefixes: tuple[str, ...]


DATASETS: dict[str, DatasetSpec] = {
    "casme2_long": DatasetSpec(30.0, ("rawvideo", "rawpic", "")),
    "samm_long": DatasetSpec(200.0, ("SAMM_longvideos", "SAMM_LongVideos", "")),
}


@dataclass(frozen=True, slots=True)
class LongEvent:
    """One annotated expression of a long video; frames in the sheet's numbering (inclusive)."""

    video: str
    clip: str
    onset: int
    apex: int | None
    offset: int
    kind: str  # micro | macro
    au_text: str
    emotion: str
    line: int


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    if path.suffix.lower() == ".xlsx":
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            for k, row in enumerate(wb.worksheets[0].iter_rows(values_only=True), 1):
                yield k, ["" if c is None else str(c).strip() for c in row]
        finally:
            wb.close()
        return
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        for k, row in enumerate(csv.reader(fh), 1):
            yield k, [c.strip() for c in row]


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


def _casme2_long(path: Path) -> list[LongEvent]:
    out: list[LongEvent] = []
    for line, row in _csv_rows(path):
        if len([c for c in row if c]) < 5:
            continue
        on, apex, off = (_int(c) for c in row[2:5])
        kind_i = next((i for i, c in enumerate(row) if c.lower().endswith("-expression")), None)
        if on is None or kind_i is None:
            log.warning("%s:%s: not an expression row (no onset or type): skipped", path.name, line)
            continue
        video = next((c for c in reversed(row) if c), "")
        if apex is not None and apex <= 0:
            apex = None
        if off is None or off <= 0:
            off = apex if apex is not None else on  # unknown offset: end at the apex (MEGC scripts)
        kind = "micro" if row[kind_i].lower().startswith("micro") else "macro"
        emotion = row[kind_i + 1].lower() if kind_i + 1 < len(row) else ""
        out.append(LongEvent(video, row[1], on, apex, max(off, on), kind, row[5], emotion, line))
    return out


def _samm_long(path: Path) -> list[LongEvent]:
    out: list[LongEvent] = []
    cols: dict[str, int] | None = None
    for line, row in _csv_rows(path):
        norm = [re.sub(r"[\s_]", "", c.lower()) for c in row]
        if cols is None:
            if "filename" in norm and "onset" in norm and "offset" in norm:
                cols = {n: i for i, n in enumerate(norm) if n}
            continue
        if not any(row):
            continue
        def get(name: str, row: list[str] = row, cols: dict[str, int] = cols) -> str:
            return row[cols[name]] if name in cols and cols[name] < len(row) else ""

        on, apex, off = _int(get("onset")), _int(get("apex")), _int(get("offset"))
        clip = get("filename")
        if on is None or off is None or not clip:
            log.warning("%s:%s: row without onset/offset/filename: skipped", path.name, line)
            continue
        video = clip.rsplit("_", 1)[0] if clip.count("_") >= 2 else clip
        kind = "micro" if get("type").lower().startswith("micro") else "macro"
        out.append(
            LongEvent(
                video,
                clip,
                on,
                apex if apex and apex > 0 else None,
                max(off, on),
                kind,
                get("actionunits"),
                "",
                line,
            )
        )
    if cols is None:
        raise UserError(
            f"{path} has no SAMM long-video header (Filename, Onset, Offset); is it the right sheet?"
        )
    return out


def read_long_sheet(path: str | Path, dataset: str) -> list[LongEvent]:
    """Every expression of a long-video sheet (``dataset``: ``casme2_long`` | ``samm_long``)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"annotation sheet {p} does not exist; pass the path of the .csv/.xlsx sheet")
    readers = {"casme2_long": _casme2_long, "samm_long": _samm_long}
    if dataset not in readers:
        raise UserError(f"unknown long-video dataset {dataset!r}; choose one of: {', '.join(readers)}")
    events = readers[dataset](p)
    if not events:
        raise UserError(f"{p} holds no expression rows in the {dataset} layout")
    return events


# ---------------------------------------------------------------------------------------------
# Event priors for the injector


@dataclass(frozen=True, slots=True)
class SheetSample:
    """One real annotated micro-expression: onset→apex and apex→offset in seconds, AUs, emotion."""

    rise_s: float
    fall_s: float
    aus: tuple[int, ...]
    side: Side
    emotion_detail: str


DEFAULT_SHEETS: tuple[tuple[str, str], ...] = (
    ("casme2", "casme2/CASME2-coding-20190701.csv"),
    ("samm", "samm/SAMM_Micro_FACS_Codes_v2.csv"),
    ("casme3", "casme3/cas(me)3_part_A_edited.csv"),
)


class SheetEvents:
    """Durations, onset-apex-offset profiles, AU combinations and emotions drawn from real sheets.

    Implements the injector's `engine.synth.DurationSampler` (``sample`` → (rise_s, fall_s),
    ``max_s``) and its emotion prior (``sample_aus`` → (emotion_detail, aus, side)); each draw picks
    one real annotated event, so its timing and AUs come from the same expression. Only events whose
    onset→offset is in [``min_s``, ``max_s``] and that hold at least one AU the injector can make
    (``supported``) are kept; times are frames / the sheet's own fps (200 for CASME II and SAMM,
    30 for CAS(ME)^3), so any video fps gets the same durations in seconds.
    """

    def __init__(self, samples: Sequence[SheetSample], max_s: float = 0.5) -> None:
        if not samples:
            raise ValueError("no usable annotated event: check the sheets and the duration bounds")
        self.samples = tuple(samples)
        self.max_s = max_s
        self._last: SheetSample | None = None

    @classmethod
    def from_sheets(
        cls,
        root: str | Path,
        supported: Sequence[int],
        sheets: Sequence[tuple[str, str]] = DEFAULT_SHEETS,
        min_s: float = 0.1,
        max_s: float = 0.5,
    ) -> SheetEvents:
        """Read ``sheets`` ((layout, path under ``root``)) with `training.readers.read_sheet`."""
        from training.readers import read_sheet

        ok = set(int(a) for a in supported)
        samples: list[SheetSample] = []
        for layout, rel in sheets:
            p = Path(root) / rel
            if not p.is_file():
                raise UserError(f"annotation sheet {p} is missing; pass the annotations folder")
            # Only the timings and AUs matter here: the readers' guesses about other cells are not logged.
            for r in read_sheet(p, layout, log_issues=False).records:
                if r.apex is None or r.offset is None or not r.onset <= r.apex <= r.offset:
                    continue
                total = (r.offset - r.onset) / r.fps
                if not min_s <= total <= max_s:
                    continue
                codes = [c for c in r.aus if c.au in ok]
                if not codes:
                    continue
                sides = {c.side for c in codes}
                side: Side = codes[0].side if len(sides) == 1 else "B"
                aus = tuple(dict.fromkeys(c.au for c in codes))
                samples.append(
                    SheetSample((r.apex - r.onset) / r.fps, (r.offset - r.apex) / r.fps, aus, side, r.detail)
                )
        return cls(samples, max_s)

    def _draw(self, rng: np.random.Generator) -> SheetSample:
        return self.samples[int(rng.integers(len(self.samples)))]

    def sample(self, rng: np.random.Generator) -> tuple[float, float]:
        """(onset→apex, apex→offset) in seconds of the event drawn last by `sample_aus` (or a new one)."""
        s = self._last if self._last is not None else self._draw(rng)
        self._last = None
        return s.rise_s, s.fall_s

    def sample_aus(self, rng: np.random.Generator) -> tuple[str, tuple[int, ...], Side]:
        """(emotion_detail, aus, side) of a freshly drawn real event; its timing follows in `sample`."""
        self._last = self._draw(rng)
        return self._last.emotion_detail, self._last.aus, self._last.side

    def durations_s(self) -> np.ndarray:
        """Onset→offset of every kept event in seconds: (N,) float64 (for summaries and tests)."""
        return np.array([s.rise_s + s.fall_s for s in self.samples])
