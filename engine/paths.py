"""Checks on output locations, done before long work so a user mistake costs seconds, not minutes."""

from __future__ import annotations

import os
from pathlib import Path


def ensure_writable_dir(folder: Path) -> str | None:
    """Create ``folder`` if needed and prove a file can be written in it.

    Returns None when it can, else the reason (the OS's words) for the caller's one-line error.
    ``os.access`` is not enough: it says yes to root on read-only mounts and under ``/proc``.

    >>> ensure_writable_dir(Path("/proc/no-such-folder")) is not None
    True
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        return str(exc.strerror or exc)
    return None


def confined_path(root: Path, name: str) -> Path | None:
    """``root/name`` resolved, or None when ``name`` could lead anywhere but a file inside ``root``.

    For names that come from outside (an event's field, a URL): ``name`` must be one plain path
    component (no separator, not ``.``/``..``, not absolute), and the path, with every symbolic link
    followed, must still lie inside ``root`` (itself resolved). The file need not exist yet.

    >>> root = Path("/srv/clips")
    >>> [confined_path(root, n) for n in ("../etc/passwd", "/etc/passwd", "..", "a/b.mp4")]
    [None, None, None, None]
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    base = root.resolve()
    path = (base / name).resolve()
    return path if path.is_relative_to(base) and path != base else None
