"""`engine.threads.WorkerThread`: the end path, the kept error, the bounded join and the stop event."""

from __future__ import annotations

import threading

import pytest

from engine.threads import WorkerThread


def test_worker_thread_when_the_body_raises_then_the_first_error_is_kept_and_raised_on_the_owner() -> None:
    ended = threading.Event()

    def body() -> None:
        raise ValueError("first")

    def end() -> None:
        ended.set()
        raise RuntimeError("second")  # an end path failing after the body: the body's error stays

    t = WorkerThread("failing", body, on_end=end).start()
    assert t.join(5.0) and ended.is_set()
    assert isinstance(t.error, ValueError)
    with pytest.raises(ValueError, match="first"):
        t.raise_error()


def test_worker_thread_when_the_body_returns_then_no_error_and_the_end_path_ran_on_the_thread() -> None:
    where: list[str] = []
    t = WorkerThread("named", lambda: where.append(threading.current_thread().name))
    t.on_end = lambda: where.append("end")  # type: ignore[method-assign]
    t.start().start()  # idempotent
    assert t.join(5.0)
    assert where == ["named", "end"] and t.error is None
    t.raise_error()


def test_worker_thread_join_is_bounded_and_stop_ends_a_body_waiting_on_the_stop_event() -> None:
    release = threading.Event()
    waiting = threading.Event()

    def blocked() -> None:
        waiting.set()
        release.wait()

    stuck = WorkerThread("stuck", blocked).start()
    assert waiting.wait(5.0)
    assert stuck.join(0.05) is False and stuck.alive  # returns although the body goes on
    release.set()
    assert stuck.join(5.0)

    loops: list[int] = []

    def loop() -> None:
        t = polite
        while not t.stop_event.wait(0.01):
            loops.append(1)

    polite = WorkerThread("polite", loop)
    polite.start()
    assert polite.stop(5.0) and polite.stopping and not polite.alive and polite.error is None


def test_worker_thread_never_started_joins_at_once_and_a_subclass_overrides_run() -> None:
    class Counter(WorkerThread):
        def __init__(self) -> None:
            super().__init__("counter")
            self.n = 0

        def run(self) -> None:
            self.n += 1

    c = Counter()
    assert c.join(0.0) and not c.started
    assert c.start().join(5.0) and c.n == 1
    with pytest.raises(NotImplementedError, match="pass target"):
        WorkerThread("empty").run()
