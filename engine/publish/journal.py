"""The journal: every published event as one JSON line, append-only, with optional size rotation.

The publisher thread writes the exact JSON text it sends on the socket, so a journal line and the
second message frame are byte-identical (UTF-8). Lines are written whole and line-buffered, so a
crash loses at most the line being written; `Journal.flush` with ``fsync=True`` makes them durable.

Fused maps: a journal line is text, so the PNG a candidate event carries as its third message frame
is written beside the journal instead, as ``<journal stem>.maps/<candidate_id>.png`` (`maps_dir`,
`Journal.write_map`); `python -m engine.report` finds it there.

Rotation (``max_bytes > 0``): before a line would push the file past ``max_bytes``, the file is
flushed, fsynced and renamed to the next free ``<path>.<k>`` (k = 1, 2, ...), and a new ``<path>`` is
opened. Rotated segments are never renamed again, so a reader that lists `segments` sees every line
exactly once, oldest first, with no window in which a line lives in no file.

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "events.jsonl")
>>> j = Journal(p)
>>> j.write('{"seq":0}')
>>> j.close()
>>> open(p).read()
'{"seq":0}\\n'
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from engine.errors import UserError

#: A candidate id usable as a file name: what `Journal.write_map` accepts and the report looks up.
SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def maps_dir(path: str | Path) -> Path:
    """The folder of a journal's fused maps: ``events.jsonl`` → ``events.maps``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.maps")


def check_appendable(path: Path) -> None:
    """Refuse to append to an existing file that is not a mellm-stream journal.

    ``--journal interview.mp4`` (or any other file typed by mistake) must not corrupt it: a file
    that exists and is not empty must start with a JSON object line, as every journal does.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with open(path, "rb") as f:
            first = f.readline(65536)
        event = json.loads(first.decode("utf-8"))
        ok = isinstance(event, dict)
    except (OSError, UnicodeDecodeError, ValueError):
        ok = False
    if not ok:
        raise UserError(
            f"journal {path} exists and is not a JSON-lines journal (its first line is not a JSON object); "
            "choose a new file for --journal"
        )


class Journal:
    """Append-only JSON-lines file owned by one thread (the publisher's); not thread-safe by design."""

    def __init__(self, path: str | Path, max_bytes: int = 0) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0 (0 = never rotate), got {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.lines = 0
        self.rotations = 0
        check_appendable(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", buffering=1, newline="\n")
        except OSError as exc:
            raise UserError(
                f"cannot open journal {self.path}: {exc.strerror or exc}; choose another --journal"
            ) from None
        self._size = self._file.tell()

    def write(self, line: str) -> None:
        """Append ``line`` (one JSON object, no newline inside) plus a newline."""
        if "\n" in line:
            raise ValueError("a journal line must not contain a newline")
        data = line + "\n"
        nbytes = len(data.encode("utf-8"))
        if self.max_bytes and self._size > 0 and self._size + nbytes > self.max_bytes:
            self._rotate()
        self._file.write(data)
        self._size += nbytes
        self.lines += 1

    def write_map(self, candidate_id: str, png: bytes) -> Path | None:
        """Write a candidate's fused map as ``maps_dir(path)/<candidate_id>.png``, complete or not at all.

        Returns the path, or None when ``candidate_id`` is not a plain file name (never written).
        """
        if not SAFE_ID.fullmatch(candidate_id):
            return None
        folder = maps_dir(self.path)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{candidate_id}.png"
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(png)
        os.replace(tmp, target)  # a reader never sees half a PNG
        return target

    def flush(self, fsync: bool = True) -> None:
        """Push buffered text to the OS and, with ``fsync``, to the disk."""
        if self._file.closed:
            return
        self._file.flush()
        if fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush, fsync and close; calling it twice is harmless."""
        if self._file.closed:
            return
        self.flush(fsync=True)
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def _rotate(self) -> None:
        self.flush(fsync=True)
        self._file.close()
        target = self.path.with_name(f"{self.path.name}.{_next_index(self.path)}")
        os.replace(self.path, target)
        self._file = open(self.path, "a", encoding="utf-8", buffering=1, newline="\n")
        self._size = 0
        self.rotations += 1


def _rotated(path: Path) -> list[tuple[int, Path]]:
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)$")
    found = []
    if path.parent.is_dir():
        for p in path.parent.iterdir():
            m = pattern.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
    return sorted(found)


def _next_index(path: Path) -> int:
    rotated = _rotated(path)
    return rotated[-1][0] + 1 if rotated else 1


def segments(path: str | Path) -> list[Path]:
    """The journal's files oldest first: rotated ``<path>.1``, ``<path>.2``, ..., then ``<path>``."""
    p = Path(path)
    files = [f for _, f in _rotated(p)]
    if p.exists():
        files.append(p)
    return files


def read_lines(path: str | Path) -> Iterator[str]:
    """Every complete journal line (without its newline) across all segments, oldest first.

    Safe while the publisher writes and rotates: the live file is opened before the rotated ones
    are read, and the listing is retried if a rotation happened in between, so the result is always
    a gap-free prefix of the journal. A last line still being written (no newline yet) is left out.
    """
    p = Path(path)
    for _ in range(100):
        before = _rotated(p)
        try:
            live = open(p, encoding="utf-8", newline="\n")
        except FileNotFoundError:
            live = None
        if _rotated(p) == before:
            break
        if live is not None:
            live.close()
    else:  # pragma: no cover - a writer rotating faster than we can list
        raise RuntimeError(f"journal {p} rotates too fast to read consistently")
    try:
        for _, f in before:
            with open(f, encoding="utf-8", newline="\n") as fh:
                yield from _complete(fh)
        if live is not None:
            yield from _complete(live)
    finally:
        if live is not None:
            live.close()


def _complete(fh: TextIO) -> Iterator[str]:
    for line in fh:
        if line.endswith("\n"):
            yield line[:-1]
