"""The explainer stage's contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from engine.types import Evidence, Explanation


class Explainer(Protocol):
    """Evidence (fused map + region statistics) → structured explanation.

    ``explain_batch`` receives the jobs waiting in the queue (1..batch_size) and returns one
    `Explanation` per item, in order; it may raise, and the worker turns that into ``error`` and
    ``dropped`` events. ``warmup`` runs once before the first job. ``name`` is what events report
    (e.g. ``rules``, ``vlm:<model dir name>``).
    """

    name: str

    def warmup(self) -> None: ...

    def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]: ...

    def close(self) -> None: ...
