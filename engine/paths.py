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
