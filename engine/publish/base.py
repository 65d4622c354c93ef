"""The publish stage's contract."""

from __future__ import annotations

from typing import Any, Protocol


class EventSink(Protocol):
    """Where events go. ``emit`` is thread-safe, never drops silently, and stamps ``seq``.

    ``png`` is the fused map sent as the third message frame of a candidate event.
    """

    def emit(self, event: dict[str, Any], png: bytes | None = None) -> None: ...

    def close(self) -> None: ...
