"""The source stage's contract."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from engine.types import Frame


class Source(Protocol):
    """Something that yields frames in order.

    ``live`` sources (camera, rtsp/http) cannot be paused, so the reader drops the oldest frame when
    the pipeline falls behind; file and folder sources are never dropped. ``fps`` is the nominal
    frame rate (None when unknown). ``frames()`` yields `Frame` objects with ``t`` from the source's
    own timestamps, and ends at end of stream. ``close()`` may be called from another thread.
    """

    name: str
    live: bool
    fps: float | None

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...
