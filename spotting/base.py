"""The spotting stage's contract."""

from __future__ import annotations

from typing import Protocol

from engine.types import Candidate, FaceObservation


class Spotter(Protocol):
    """An online, stateful detector run on one thread: one observation in, finished intervals out.

    ``update`` takes the next face observation and returns the candidates whose offset was reached;
    ``flush`` judges what is still open, returns it and forgets everything: the engine calls it at
    end of stream, when the face is lost and after an outage or a resolution change (an expression
    the face turned away in is still an expression); ``reset`` forgets without judging.
    """

    def update(self, obs: FaceObservation) -> list[Candidate]: ...

    def reset(self) -> None: ...

    def flush(self) -> list[Candidate]: ...
