"""Reading journals for the report: events grouped into sections (one per journal, run and stream).

A journal is the engine's JSON-lines file (`engine.publish.journal`), possibly rotated into
``<file>.1``, ``<file>.2``...; the same file can hold several runs, since the engine appends: a run
starts where ``seq`` does not grow (the publisher restarts it at 0). One section is one stream of one
run. A journal cut short (engine killed) still reads: a last line cut off mid-write is left out and
said, and the section says that no final status was written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.publish.journal import segments

_SCHEMA_PREFIX = "mellm.event/"
_FIRST_LINE_MAX = 1 << 20
_TIME = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)")


@dataclass
class CandidateRecord:
    """A candidate event and the event that ended it (explanation or dropped; None if none in the journal)."""

    number: int  # 1-based within its section, as on the timeline
    event: dict[str, Any]
    outcome: dict[str, Any] | None = None

    @property
    def candidate_id(self) -> str:
        return str(self.event.get("candidate_id", ""))

    def t(self, point: str) -> float:
        """Stream seconds of ``onset``, ``apex`` or ``offset`` (NaN when the event lacks it)."""
        value = self.event.get(point)
        t = value.get("t") if isinstance(value, dict) else None
        return float(t) if isinstance(t, int | float) and not isinstance(t, bool) else float("nan")


@dataclass
class Section:
    """One stream of one run of one journal, after the ``--since/--until`` selection."""

    journal: Path
    stream: str
    run: int  # 1-based run index within the journal
    runs: int  # how many runs the journal holds
    candidates: list[CandidateRecord] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)  # selected by stream time
    all_statuses: list[dict[str, Any]] = field(default_factory=list)  # the whole run, oldest first
    errors: list[dict[str, Any]] = field(default_factory=list)
    run_info: dict[str, Any] | None = None
    final: bool = False  # the engine's last status (final: true) is in the journal
    notes: list[str] = field(default_factory=list)
    since: float | None = None
    until: float | None = None


def parse_time(text: str) -> float:
    """Stream seconds from ``90``, ``1:30`` or ``1:02:03.5``; a `UserError` otherwise."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        m = _TIME.fullmatch(text)
        if not m:
            raise UserError(f"bad time {text!r}: give stream seconds (90) or M:SS (1:30)") from None
        value = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    if not value >= 0 or value == float("inf"):
        raise UserError(f"bad time {text!r}: expected a finite number of seconds >= 0")
    return value


def _event(line: str) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not str(event.get("schema", "")).startswith(_SCHEMA_PREFIX):
        return None
    return event if isinstance(event.get("type"), str) else None


def _check_first_line(path: Path, first: Path) -> None:
    """Fail with one line unless ``first`` starts with a journal event (read before the whole file)."""
    try:
        with open(first, "rb") as f:
            head = f.readline(_FIRST_LINE_MAX)
    except OSError as exc:
        raise UserError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    if not head.strip():
        raise UserError(f"journal {path} is empty: the engine wrote no event to it; give a journal of a run")
    complete = head.endswith(b"\n")
    if complete and _event(head.decode("utf-8", "replace")) is not None:
        return
    if not complete and head.lstrip().startswith(b'{"schema":"' + _SCHEMA_PREFIX.encode()):
        return  # a journal whose only line was cut off mid-write: read_journal says so
    raise UserError(
        f"{path} is not a mellm-stream journal (its first line is not a {_SCHEMA_PREFIX}1 event); "
        "give the file written by run_stream.py --journal"
    )


def read_journal(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every event of the journal at ``path`` (all its segments, oldest first) and notes on what was skipped.

    A missing, empty or non-journal file is a `UserError` of one line.
    """
    p = Path(path)
    files = segments(p)
    if not files:
        raise UserError(f"journal {p} not found; give the file written by run_stream.py --journal FILE")
    if p.is_dir():
        raise UserError(f"{p} is a folder; give the journal file written by run_stream.py --journal FILE")
    _check_first_line(p, files[0])
    events: list[dict[str, Any]] = []
    malformed = 0
    truncated = False
    for i, f in enumerate(files):
        try:
            text = f.read_bytes().decode("utf-8", "replace")
        except OSError as exc:
            raise UserError(f"cannot read journal {f}: {exc.strerror or exc}") from None
        lines = text.split("\n")
        tail = lines.pop()  # "" when the file ends with a newline
        for line in lines:
            if line.strip():
                if (event := _event(line)) is None:
                    malformed += 1
                else:
                    events.append(event)
        if tail.strip():
            event = _event(tail)
            if event is not None:
                events.append(event)
            elif i == len(files) - 1:
                truncated = True
            else:
                malformed += 1
    if not events:
        raise UserError(f"journal {p} holds no complete event; give a journal of a run")
    notes = []
    if truncated:
        notes.append("The journal's last line was cut off mid-write (the engine was stopped while "
                     "writing it); it is left out.")
    if malformed:
        notes.append(f"{malformed} line(s) of the journal are not events and were skipped.")
    return events, notes


def _runs(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split at every ``seq`` that does not grow: the engine started again and appended."""
    runs: list[list[dict[str, Any]]] = []
    last: int | None = None
    for e in events:
        seq = e.get("seq")
        restart = isinstance(seq, int) and last is not None and seq <= last
        if not runs or restart:
            runs.append([])
        runs[-1].append(e)
        if isinstance(seq, int):
            last = seq
    return runs


def status_time(status: dict[str, Any]) -> float | None:
    """The stream time of a status event (``stream_t``), None for engines that did not send it."""
    t = status.get("stream_t")
    return float(t) if isinstance(t, int | float) and not isinstance(t, bool) else None


def _inside(t: float, since: float | None, until: float | None) -> bool:
    return (since is None or t >= since) and (until is None or t <= until)


def _section(journal: Path, stream: str, run: int, runs: int, events: Iterable[dict[str, Any]],
             since: float | None, until: float | None) -> Section:
    sec = Section(journal=journal, stream=stream, run=run, runs=runs, since=since, until=until)
    by_id: dict[str, CandidateRecord] = {}
    pending: dict[str, dict[str, Any]] = {}  # outcomes seen before their candidate (should not happen)
    for e in events:
        kind = e["type"]
        if kind == "candidate":
            rec = CandidateRecord(number=len(by_id) + 1, event=e)
            cid = rec.candidate_id
            if cid in by_id:
                continue
            by_id[cid] = rec
            rec.outcome = pending.pop(cid, None)
        elif kind in ("explanation", "dropped"):
            cid = str(e.get("candidate_id", ""))
            if cid in by_id and by_id[cid].outcome is None:
                by_id[cid].outcome = e
            else:
                pending.setdefault(cid, e)
        elif kind == "status":
            sec.all_statuses.append(e)
            if isinstance(e.get("run"), dict) and sec.run_info is None:
                sec.run_info = e["run"]
            if e.get("final") is True:
                sec.final = True
        elif kind == "error":
            sec.errors.append(e)
    for rec in by_id.values():
        if _inside(rec.t("apex"), since, until) or (since is None and until is None):
            sec.candidates.append(rec)
    for i, rec in enumerate(sec.candidates, 1):
        rec.number = i
    for s in sec.all_statuses:
        t = status_time(s)
        if t is None or _inside(t, since, until):
            sec.statuses.append(s)
    if not sec.final:
        sec.notes.append(
            "This run was cut short: the journal ends without the engine's final status (the engine was "
            "killed, crashed or is still running). Everything written before that is shown."
        )
    open_ = sum(1 for r in sec.candidates if r.outcome is None)
    if open_:
        sec.notes.append(f"{open_} candidate(s) have no explanation or drop in the journal (still in the "
                         "engine's queue when it stopped).")
    return sec


def load_sections(
    paths: Iterable[str | Path],
    *,
    since: float | None = None,
    until: float | None = None,
    stream: str | None = None,
    last_run_only: bool = False,
) -> list[Section]:
    """The sections of every journal in ``paths``: one per run and stream, oldest first.

    ``since``/``until``: stream seconds; a candidate is kept when its apex lies inside. ``stream``:
    keep that stream only (a `UserError` naming the streams found when none matches).
    ``last_run_only``: only the journal's last run (the live engine's ``--report``).
    """
    if since is not None and until is not None and until <= since:
        raise UserError(f"--until {until:g} must be after --since {since:g}")
    sections: list[Section] = []
    seen_streams: set[str] = set()
    for path in paths:
        p = Path(path)
        events, notes = read_journal(p)
        runs = _runs(events)
        chosen = list(enumerate(runs, 1))[-1:] if last_run_only else list(enumerate(runs, 1))
        for k, run in chosen:
            streams: dict[str, list[dict[str, Any]]] = {}
            for e in run:
                streams.setdefault(str(e.get("stream") or "?"), []).append(e)
            seen_streams.update(streams)
            for name, evs in streams.items():
                if stream is not None and name != stream:
                    continue
                sec = _section(p, name, k, len(runs), evs, since, until)
                if k == len(runs):
                    sec.notes[:0] = notes  # a cut-off last line belongs to the last run
                else:
                    sec.notes = [n for n in sec.notes if not n.startswith("This run was cut short")]
                    if not sec.final:
                        sec.notes.insert(0, "This run has no final status: the engine was stopped before "
                                            "it finished, and a later run appended to the same journal.")
                sections.append(sec)
    if not sections:
        found = ", ".join(sorted(seen_streams)) or "none"
        raise UserError(f"no stream named {stream!r} in the journal(s); streams found: {found}")
    return sections
