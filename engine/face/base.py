"""The face stage's contract."""

from __future__ import annotations

from typing import Protocol

from engine.types import FaceObservation, Frame


class FaceTracker(Protocol):
    """Frames in timestamp order → one aligned face per frame, or None when no face is found."""

    def process(self, frame: Frame) -> FaceObservation | None: ...

    def close(self) -> None: ...
