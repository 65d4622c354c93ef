"""The spotting stage's contract."""

from __future__ import annotations

from typing import Protocol

from engine.types import Candidate, FaceObservation


class Spotter(Protocol):
    """An online, stateful detector run on one thread: one observation in, finished intervals out.

    ``update`` takes the next face observation and returns the candidates whose offset was reached;
    ``reset`` is called when the face is lost (the next observation starts a fresh window);
    ``flush`` returns what is still open at end of stream.
    """

    def update(self, obs: FaceObservation) -> list[Candidate]: ...

    def reset(self) -> None: ...

    def flush(self) -> list[Candidate]: ...
