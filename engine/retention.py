"""Retention of personal data on disk: delete event clips and saved maps past an age or a total size.

Clips and fused maps show the faces of the people recorded; in a clinic or a study they are
biometric data that should not pile up forever. `prune` deletes, oldest first (by modification
time), the files of one folder that match a pattern and are older than ``max_age_s`` or beyond a
total of ``max_bytes``. `Sweeper` runs it on a thread of its own: once at start (what earlier runs
left), whenever `poke` says a new file was written, and every ``interval_s`` so files also age out
while nothing new arrives. Only regular files directly in the folder are counted and deleted, never
symbolic links, sub-folders or hidden files (the clip writer's ``.NAME.part.mp4`` in progress).

>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     for i in range(3):
...         _ = (Path(d) / f"c{i}.mp4").write_bytes(b"x" * 10)
...         os.utime(Path(d) / f"c{i}.mp4", (1000 + i, 1000 + i))
...     pruned = prune(Path(d), "*.mp4", max_bytes=15)
...     pruned.deleted, sorted(p.name for p in Path(d).iterdir())
(2, ['c2.mp4'])
"""

from __future__ import annotations

import logging
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one `prune` deleted: how many files and their bytes."""

    deleted: int = 0
    deleted_bytes: int = 0


def prune(
    folder: Path, pattern: str, *, max_age_s: float = 0.0, max_bytes: int = 0, now: float | None = None
) -> Pruned:
    """Delete ``folder``'s files matching ``pattern`` older than ``max_age_s`` or past ``max_bytes`` in total.

    0 turns a limit off. The oldest files go first; a file that vanished meanwhile is skipped.
    """
    if max_age_s <= 0 and max_bytes <= 0:
        return Pruned()
    now = time.time() if now is None else now
    files: list[tuple[float, int, Path]] = []
    for path in folder.glob(pattern):
        if path.name.startswith("."):
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files.append((st.st_mtime, st.st_size, path))
    files.sort()
    total = sum(size for _, size, _ in files)
    deleted = deleted_bytes = 0
    for mtime, size, path in files:
        too_old = max_age_s > 0 and now - mtime > max_age_s
        too_much = max_bytes > 0 and total > max_bytes
        if not (too_old or too_much):
            break  # sorted oldest first: every later file is younger and the total already fits
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("retention: cannot delete %s: %s", path, exc.strerror or exc)
            continue
        else:
            deleted += 1
            deleted_bytes += size
        total -= size
    if deleted:
        log.info("retention: deleted %d file(s), %d bytes, from %s", deleted, deleted_bytes, folder)
    return Pruned(deleted, deleted_bytes)


class Sweeper:
    """`prune` on a daemon thread: at start, after each `poke`, and every ``interval_s``.

    ``deleted`` and ``deleted_bytes`` count everything deleted since construction (for ``status``).
    Does nothing, and starts no thread, when both limits are 0.
    """

    def __init__(
        self,
        folder: Path,
        pattern: str,
        *,
        max_age_days: float = 0.0,
        max_bytes: int = 0,
        interval_s: float = 60.0,
    ) -> None:
        if max_age_days < 0 or max_bytes < 0:
            raise ValueError(f"expected limits >= 0 (0 = off), got {max_age_days} days and {max_bytes} bytes")
        self.folder = folder
        self.pattern = pattern
        self.max_age_s = float(max_age_days) * DAY_S
        self.max_bytes = int(max_bytes)
        self.interval_s = interval_s
        self.deleted = 0
        self.deleted_bytes = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.max_age_s > 0 or self.max_bytes > 0:
            self._thread = threading.Thread(target=self._run, name=f"retention {folder.name}", daemon=True)
            self._thread.start()

    def sweep(self) -> Pruned:
        """Prune now, on the caller's thread (one sweep at a time)."""
        with self._lock:
            done = prune(self.folder, self.pattern, max_age_s=self.max_age_s, max_bytes=self.max_bytes)
            self.deleted += done.deleted
            self.deleted_bytes += done.deleted_bytes
            return done

    def poke(self) -> None:
        """A file was written: sweep soon (from any thread, never blocks)."""
        self._wake.set()

    def close(self) -> None:
        """Stop the thread, then a last sweep (what was written just before). Idempotent."""
        if self._thread is None:
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(10.0)
        self._thread = None
        self._safe_sweep()

    def _safe_sweep(self) -> None:
        try:
            self.sweep()
        except Exception:  # retention must never stop the recording
            log.exception("retention sweep of %s failed", self.folder)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._safe_sweep()
            self._wake.wait(self.interval_s)
            self._wake.clear()


__all__ = ["DAY_S", "Pruned", "Sweeper", "prune"]
