"""Readers of the real micro-expression annotation sheets, one per layout, into `MERecord`.

Supported layouts (name → what the sheet looks like; fps where the sheet has none):

- ``casme2``: CASME2-coding-20140508.xlsx and -20190701.csv. Subject, Filename, OnsetFrame,
  ApexFrame, OffsetFrame, Action Units, Estimated Emotion (2019 adds empty columns). 200 fps.
- ``samm``: SAMM_Micro_FACS_Codes_v2.csv / .xlsx. Notes and a symbol key first, then Subject,
  Filename, Inducement Code, Onset Frame, Apex Frame, Offset Frame, ..., Action Units, Estimated
  Emotion. 200 fps.
- ``casme3``: cas(me)3_part_A_edited.csv, casme3_table.xlsx (sheet ``label``). Subject, Filename,
  Onset, Apex, Offset, AU, Objective class, emotion. 30 fps.
- ``dfme``: training / testA / testB ``*_full_with_AU.xlsx``. Subject, Filename, OnsetFrame,
  ApexFrame, OffsetFrame, Emotion, EmotionId, Fps, AU. fps per row (200, 300, 500).
- ``mmew``: MMEW_Micro_Exp_delete_others.csv. The CASME II columns plus remarks, label,
  one_hot_label, imagename. 90 fps.
- ``smic``: smic_apex.xlsx. data, subject, clip, label (0 negative, 1 positive, 2 surprise),
  onset_frame, apex_frame, offset_frame; no AUs. 100 fps (SMIC-HS).

The header row is found by its column names wherever it is (SAMM puts notes above it); in an
xlsx workbook the first sheet holding such a header is read. Columns are matched by name (case,
spaces and underscores ignored), never by position.

Malformed rows are never skipped in silence: each becomes a `SheetIssue` (file, 1-based line,
``error`` when no record came out, ``warning`` when the record was kept with a stated decision)
and a log warning. Decisions: an unknown apex or offset (``/``, empty, or ``0`` after a non-zero
onset, as in CASME II and CAS(ME)^3) is ``None``; frames out of order are kept as written;
AU-string decisions are those of `training.records.parse_au_string`. A row repeating the header
is reported and skipped.

>>> result = read_sheet("../shared/data/annotations/casme2/CASME2-coding-20140508.xlsx")  # doctest: +SKIP
>>> result.records[0].clip, result.records[0].aus
('EP02_01f', (AUCode(au=12, side='B', intensity=None),))
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from training.records import MERecord, SheetIssue, megc3_of, parse_au_string

log = logging.getLogger(__name__)

Cell = str | int | float | None
_SMIC_LABELS = {0: "negative", 1: "positive", 2: "surprise"}


@dataclass(frozen=True, slots=True)
class Layout:
    """Column names (normalised: lower case, no spaces/underscores) of one sheet layout."""

    name: str
    subject: str
    clip: str
    onset: str
    apex: str
    offset: str
    emotion: str
    aus: str | None
    fps: float | None
    fps_column: str | None = None
    zero_is_unknown: bool = False
    subject_format: Callable[[str], str] = str

    def required(self) -> tuple[str, ...]:
        cols = (self.subject, self.clip, self.onset, self.apex, self.offset, self.emotion)
        return cols + tuple(c for c in (self.aus, self.fps_column) if c)


def _pad(width: int) -> Callable[[str], str]:
    def fmt(s: str) -> str:
        return s.zfill(width) if s.isdigit() else s

    return fmt


def _framed(name: str, emotion: str, aus: str, fps: float | None, **options: Any) -> Layout:
    """A layout with the CASME II frame columns: Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame."""
    return Layout(
        name, "subject", "filename", "onsetframe", "apexframe", "offsetframe", emotion, aus, fps, **options
    )


LAYOUTS: dict[str, Layout] = {
    "casme2": _framed(
        "casme2", "estimatedemotion", "actionunits", 200.0, zero_is_unknown=True, subject_format=_pad(2)
    ),
    "samm": _framed("samm", "estimatedemotion", "actionunits", 200.0, subject_format=_pad(3)),
    "casme3": Layout("casme3", "subject", "filename", "onset", "apex", "offset", "emotion", "au", 30.0),
    "dfme": _framed("dfme", "emotion", "au", None, fps_column="fps"),
    "mmew": _framed("mmew", "estimatedemotion", "actionunits", 90.0),
    "smic": Layout("smic", "subject", "clip", "onsetframe", "apexframe", "offsetframe", "label", None, 100.0),
}


@dataclass(frozen=True, slots=True)
class SheetResult:
    """What one sheet gave: its records in sheet order and every issue met on the way."""

    source: str
    layout: str
    records: tuple[MERecord, ...]
    issues: tuple[SheetIssue, ...]

    @property
    def errors(self) -> tuple[SheetIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")


def _norm(name: Cell) -> str:
    return re.sub(r"[\s_]+", "", str(name or "")).lower()


def _text(value: Cell) -> str:
    """A cell as text: integral floats lose their ``.0``, None is empty."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _rows(path: Path) -> Iterator[Iterator[tuple[int, list[Cell]]]]:
    """Tables of a file, each as (1-based line, cells): one for a csv, one per sheet for an xlsx."""
    if path.suffix.lower() == ".csv":

        def csv_rows() -> Iterator[tuple[int, list[Cell]]]:
            with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
                reader = csv.reader(fh)
                for row in reader:
                    yield reader.line_num, list(row)

        yield csv_rows()
    elif path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            for ws in wb.worksheets:
                yield ((i, list(r)) for i, r in enumerate(ws.iter_rows(values_only=True), 1))
        finally:
            wb.close()
    else:
        raise UserError(f"annotation sheet {path}: expected a .csv or .xlsx file")


def _find_header(
    path: Path, layout: Layout | None
) -> tuple[Layout, dict[str, int], int, list[tuple[int, list[Cell]]]]:
    """The layout, column index by normalised name, header line and the rows after the header."""
    for table in _rows(path):
        rows = list(table)
        for k, (line, cells) in enumerate(rows[:60]):
            names = [_norm(c) for c in cells]
            found = layout or detect_layout(names, path)
            if found is None:
                continue
            cols = {n: i for i, n in reversed(list(enumerate(names))) if n}
            if all(c in cols for c in found.required()):
                return found, cols, line, rows[k + 1 :]
    wanted = f"the {layout.name} columns {', '.join(layout.required())}" if layout else "a known header"
    raise UserError(f"annotation sheet {path}: no header row with {wanted}; pass --layout or check the file")


def detect_layout(names: Iterable[str], path: Path | None = None) -> Layout | None:
    """The layout whose header ``names`` (normalised) match, or None."""
    n = set(names)
    if {"clip", "label", "onsetframe"} <= n:
        return LAYOUTS["smic"]
    if "fps" in n and "au" in n:
        return LAYOUTS["dfme"]
    if {"onset", "apex", "au"} <= n:
        return LAYOUTS["casme3"]
    if "actionunits" not in n or "onsetframe" not in n:
        return None
    if "inducementcode" in n:
        return LAYOUTS["samm"]
    if "onehotlabel" in n or "imagename" in n or (path is not None and "mmew" in path.name.lower()):
        return LAYOUTS["mmew"]
    return LAYOUTS["casme2"]


def _cell_at(cells: list[Cell], i: int) -> Cell:
    return cells[i] if i < len(cells) else None


def _frame(value: Cell, zero_is_unknown: bool) -> tuple[int | None, bool]:
    """(frame, ok): a frame number, ``(None, True)`` for an 'unknown' mark, ``(None, False)`` if bad."""
    text = _text(value)
    if text in ("", "/", "-", "?", "n/a", "NA"):
        return None, True
    if re.fullmatch(r"\d+", text):
        frame = int(text)
        return (None, True) if frame == 0 and zero_is_unknown else (frame, True)
    return None, False


def _record(
    path: Path, layout: Layout, cols: dict[str, int], line: int, cells: list[Cell], issues: list[SheetIssue]
) -> MERecord | None:
    src = str(path)

    def cell(col: str | None) -> Cell:
        if col is None:
            return None
        i = cols[col]
        return cells[i] if i < len(cells) else None

    def issue(severity: str, message: str) -> None:
        issues.append(SheetIssue(src, line, severity, message))  # type: ignore[arg-type]

    subject, clip = _text(cell(layout.subject)), _text(cell(layout.clip))
    if not subject or not clip:
        issue("error", f"no subject or clip (subject={subject!r}, clip={clip!r}): row skipped")
        return None
    frames: dict[str, int | None] = {}
    for what, col in (("onset", layout.onset), ("apex", layout.apex), ("offset", layout.offset)):
        value, ok = _frame(cell(col), layout.zero_is_unknown)
        if not ok:
            issue("error", f"{what} frame {_text(cell(col))!r} is not a frame number: row skipped")
            return None
        frames[what] = value
    onset = frames["onset"]
    if onset:  # a 0 after a non-zero onset is the sheets' mark for 'not coded' (CASME II, CAS(ME)^3)
        for what in ("apex", "offset"):
            if frames[what] == 0:
                frames[what] = None
    apex, offset = frames["apex"], frames["offset"]
    if onset is None:
        issue("error", f"onset frame {_text(cell(layout.onset))!r} unknown: row skipped")
        return None
    for what in ("apex", "offset"):
        if frames[what] is None:
            issue(
                "warning", f"{what} frame {_text(cell(getattr(layout, what)))!r} means unknown: kept as None"
            )
    known = [f for f in (onset, apex, offset) if f is not None]
    if known != sorted(known):
        issue(
            "warning", f"frames out of order (onset {onset}, apex {apex}, offset {offset}): kept as written"
        )

    fps = layout.fps
    if layout.fps_column:
        fps_text = _text(cell(layout.fps_column))
        try:
            fps = float(fps_text)
        except ValueError:
            fps = None
        if fps is None or fps <= 0:
            issue("error", f"fps {fps_text!r} is not a positive number: row skipped")
            return None

    label = _text(cell(layout.emotion))
    if layout.name == "smic":
        if not re.fullmatch(r"\d+", label) or int(label) not in _SMIC_LABELS:
            issue("error", f"SMIC label {label!r} is not 0, 1 or 2: row skipped")
            return None
        emotion = _SMIC_LABELS[int(label)]
    else:
        emotion = label.lower()
        if not emotion:
            issue("warning", "no emotion label: kept as ''")

    au_text = _text(cell(layout.aus)) if layout.aus else ""
    aus, notes = parse_au_string(au_text) if layout.aus else ((), [])
    for note in notes:
        issue("warning", note)
    return MERecord(
        dataset=layout.name,
        subject=layout.subject_format(subject),
        clip=clip,
        onset=onset,
        apex=apex,
        offset=offset,
        fps=float(fps or 0.0),
        aus=aus,
        emotion=emotion,
        megc3=megc3_of(layout.name, emotion),
        source=src,
        line=line,
        au_text=au_text,
    )


def read_sheet(path: str | Path, layout: str | None = None, *, log_issues: bool = True) -> SheetResult:
    """Every record of one annotation sheet, with its issues (also logged as warnings unless
    ``log_issues`` is False: a caller that only wants the timings need not hear every guess).

    ``layout``: one of `LAYOUTS`, or None to recognise it from the header.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"annotation sheet {p} does not exist; pass the path of a .csv or .xlsx sheet")
    if layout is not None and layout not in LAYOUTS:
        raise UserError(f"unknown sheet layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    lay, cols, header_line, rows = _find_header(p, LAYOUTS[layout] if layout else None)
    records: list[MERecord] = []
    issues: list[SheetIssue] = []
    for line, cells in rows:
        if all(_text(c) == "" for c in cells):
            continue
        if (
            _norm(_cell_at(cells, cols[lay.subject])) == lay.subject
            and _norm(_cell_at(cells, cols[lay.clip])) == lay.clip
        ):
            issues.append(SheetIssue(str(p), line, "warning", "repeated header row: skipped"))
            continue
        rec = _record(p, lay, cols, line, cells, issues)
        if rec is not None:
            records.append(rec)
    for i in issues if log_issues else ():
        log.warning("%s", i)
    log.info(
        "%s: %d records (%s layout, header on line %d), %d issues",
        p,
        len(records),
        lay.name,
        header_line,
        len(issues),
    )
    return SheetResult(str(p), lay.name, tuple(records), tuple(issues))


# One reader per layout, for callers who know what they hold.
def read_casme2(path: str | Path) -> SheetResult:
    """CASME II coding sheet (2014 xlsx or 2019 csv)."""
    return read_sheet(path, "casme2")


def read_samm(path: str | Path) -> SheetResult:
    """SAMM micro-movement FACS codes (csv or xlsx, notes above the header)."""
    return read_sheet(path, "samm")


def read_casme3(path: str | Path) -> SheetResult:
    """CAS(ME)^3 part A label sheet (csv or xlsx)."""
    return read_sheet(path, "casme3")


def read_dfme(path: str | Path) -> SheetResult:
    """DFME train / testA / testB sheet (fps per row)."""
    return read_sheet(path, "dfme")


def read_mmew(path: str | Path) -> SheetResult:
    """MMEW micro-expression sheet."""
    return read_sheet(path, "mmew")


def read_smic(path: str | Path) -> SheetResult:
    """SMIC-HS apex sheet (3-class labels, no AUs)."""
    return read_sheet(path, "smic")


def read_annotation_dir(root: str | Path) -> list[SheetResult]:
    """Every sheet under ``root`` whose header matches a layout; other tables are skipped (logged)."""
    results = []
    for p in sorted(Path(root).rglob("*")):
        if p.suffix.lower() not in (".csv", ".xlsx") or not p.is_file():
            continue
        try:
            results.append(read_sheet(p))
        except UserError as exc:
            log.info("skipping %s: %s", p, exc)
    return results
