"""The one worker-thread base of the engine: a named daemon thread with a stop event, a bounded join,
the first error kept for its owner to raise, and an end path that runs however the body ends.

Every hand-written thread of the runtime (reader, capture, face-ahead, status, explain worker,
publisher, clip writer) is a `WorkerThread`, either built with a ``target`` or subclassed
(override `run`, and `on_end` for the end marker or the release of what the thread owns).

>>> seen = []
>>> t = WorkerThread("demo", target=lambda: seen.append("ran"), on_end=lambda: seen.append("end"))
>>> t.start().join(1.0), seen, t.error
(True, ['ran', 'end'], None)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Self


class WorkerThread:
    """A named daemon thread running `run` once, then `on_end`.

    ``stop_event`` is set by `request_stop` (and `stop`); a body that loops checks `stopping` or
    waits on the event. An exception of `run` or `on_end` does not go to ``threading.excepthook``:
    the first one is kept in ``error`` and re-raised by `raise_error` on the owner's thread (the
    thread never logs it: the owner decides what the user sees).
    """

    def __init__(
        self,
        name: str,
        target: Callable[[], None] | None = None,
        *,
        on_end: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._target = target
        self._on_end = on_end
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = False

    # -- the thread's body (override or pass target / on_end) -----------------------------------
    def run(self) -> None:
        """The thread's work; by default calls ``target``."""
        if self._target is None:
            raise NotImplementedError(f"thread {self.name}: pass target= or override run()")
        self._target()

    def on_end(self) -> None:
        """Runs on the thread after `run`, whether it returned or raised (end markers, releases)."""
        if self._on_end is not None:
            self._on_end()

    def _main(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # kept for the owner, see raise_error
            self.keep_error(exc)
        finally:
            try:
                self.on_end()
            except BaseException as exc:
                self.keep_error(exc)

    # -- the owner's side --------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the thread once (idempotent); returns self."""
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()
        return self

    def keep_error(self, exc: BaseException) -> None:
        """Keep ``exc`` unless an earlier error is kept already."""
        with self._lock:
            if self.error is None:
                self.error = exc

    def request_stop(self) -> None:
        """Set the stop event; the body ends at its next check."""
        self.stop_event.set()

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    @property
    def started(self) -> bool:
        return self._started

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def current(self) -> bool:
        """True when called from this thread itself."""
        return threading.current_thread() is self._thread

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True when it has ended (or never
        started). Never waits on itself."""
        if not self._started or self.current:
            return not self.alive
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def stop(self, timeout: float) -> bool:
        """`request_stop`, then `join` with ``timeout``; True when the thread has ended."""
        self.request_stop()
        return self.join(timeout)

    def raise_error(self) -> None:
        """Raise the kept error, if any, on the calling thread."""
        if self.error is not None:
            raise self.error
