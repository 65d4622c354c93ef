"""The asynchronous explanation worker: a thread behind a bounded queue, so no model ever blocks video.

The video thread calls `ExplainWorker.submit`, which publishes the ``candidate`` event at once (the
subscriber learns *when* as soon as the spotter decides) and queues the job. The worker thread takes
up to ``batch_size`` waiting jobs, runs the ``stage`` on each (`engine.fusion.EvidenceStage`: flow +
fusion → `Evidence`), publishes a ``map`` event with the fused map, hands the batch to the explainer
and publishes one ``explanation`` per candidate. Every candidate ends in exactly one
``explanation`` or one ``dropped`` event, always after its ``candidate`` event and its ``map`` event,
if any (event contract v2, DESIGN.md); both carry ``timing_ms`` (`engine.events.Timing`):

- queue full, ``block_when_full`` (files, folders, the demo: analysed offline): `submit` waits for
  room (back-pressure on the video thread) until `release` or `stop`; otherwise ``drop_newest`` drops
  the submitted job, ``drop_oldest`` the oldest waiting one → ``dropped(queue_full)``, on the
  caller's thread, at once;
- a job older than ``deadline_s`` (since it was queued) when dequeued → ``dropped(timeout)`` (not
  with ``block_when_full``: offline, a job waits for its turn);
- the stage or the explainer raising → ``error`` (where ``flow`` / ``explain``) + ``dropped(error)``
  for each affected job (``dropped(timeout)`` when the explainer raised `TimeoutError`); the worker
  lives on;
- `stop`: no new jobs (late ones → ``dropped(shutdown)``), waiting jobs are still explained until the
  drain time is over, the rest → ``dropped(shutdown)``. If the explainer is still busy
  ``stop_grace_s`` after that, `stop` gives up on it, ends its jobs as ``dropped(shutdown)`` itself
  and returns: `stop` is bounded by ``drain_s + stop_grace_s`` whatever the model does.

Each job carries a lock and a ``finished`` flag, so a job that `stop` gave up on and that the model
later finishes still ends once. ``mode = "process"`` (`build_explainer`) runs the explainer in a
child process (`ProcessExplainer`) that is killed when a call overruns ``timeout_s``.

>>> from engine.explain.config import ExplainConfig
>>> from engine.explain.rules import RulesExplainer
>>> class Sink:
...     def __init__(self): self.events = []
...     def emit(self, event, png=None): self.events.append(event["type"])
...     def close(self): pass
>>> sink = Sink()
>>> w = ExplainWorker(RulesExplainer(), stage=lambda c: c, sink=sink, cfg=ExplainConfig()).start()
>>> w.stop(drain_s=1.0)
>>> w.stats()["explained"], sink.events
(0, [])
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import multiprocessing as mp
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.events import (
    DROP_REASONS,
    EventSink,
    Timing,
    candidate_event,
    dropped_event,
    error_event,
    explanation_event,
    map_event,
)
from engine.explain.base import Explainer
from engine.explain.config import ExplainConfig
from engine.fusion.stage import EvidenceStage
from engine.threads import WorkerThread
from engine.types import Candidate, Evidence, Explanation

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Job:
    """One submitted candidate; ``lock`` guards ``announced``/``finished`` across threads.

    ``submitted``: when it was queued (the deadline counts from there); ``timing``: the candidate's
    stamps (``decided`` = the submit time when the frame loop did not stamp it), then the worker's.
    """

    candidate: Candidate
    submitted: float
    timing: Timing
    lock: threading.Lock = field(default_factory=threading.Lock)
    announced: bool = False
    finished: bool = False


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(np.asarray(values, dtype=np.float64), q)), 3) if values else None


class ExplainWorker:
    """Explains candidates on its own thread; see the module docstring for the guarantees.

    ``explainer``: any `Explainer` (the worker calls ``warmup`` once at start and ``close`` when its
    thread ends). ``stage``: candidate → evidence (flow + fusion, may take ~0.5 s; runs on the
    worker thread). ``sink``: where events go (thread-safe ``emit``). ``clock``: seconds, for
    deadlines, drain time and latencies (injectable for tests; the candidates' own stamps are
    `time.monotonic`). ``stream``: the stream name of events not tied to a candidate (a failed
    warm-up). ``block_when_full``: `submit` waits for room instead of dropping (offline sources).
    """

    def __init__(
        self,
        explainer: Explainer,
        stage: EvidenceStage,
        sink: EventSink,
        cfg: ExplainConfig,
        clock: Callable[[], float] = time.monotonic,
        *,
        stream: str = "main",
        block_when_full: bool = False,
    ) -> None:
        self._explainer = explainer
        self._stage = stage
        self._sink = sink
        self._cfg = cfg
        self._clock = clock
        self._stream = stream
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._inflight: list[_Job] = []
        self._accepting = True
        self._blocking = block_when_full
        self._offline = block_when_full  # no deadline: a job waits for its turn however long
        self._released = False
        self._stopping = False
        self._drain_until = float("inf")
        self._thread = WorkerThread("explain-worker", self._run, on_end=self._end)
        self._stats_lock = threading.Lock()
        self._counts: dict[str, int] = {
            "submitted": 0, "explained": 0, "errors": 0, "batches": 0, "backpressure_waits": 0
        }
        self._backpressure_s = 0.0  # the video thread's total wait for room (block_when_full)
        self._dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        self._latency_ms: deque[float] = deque(maxlen=cfg.latency_window)
        self._queue_ms: deque[float] = deque(maxlen=cfg.latency_window)
        self._prepare_ms: deque[float] = deque(maxlen=cfg.latency_window)
        self._explain_ms: deque[float] = deque(maxlen=cfg.latency_window)
        self._batch_sizes: deque[int] = deque(maxlen=cfg.latency_window)

    # ---------------------------------------------------------------- lifecycle (caller's thread)
    def start(self) -> ExplainWorker:
        """Start the worker thread (warm-up first); jobs submitted before are kept. Returns self."""
        self._thread.start()
        return self

    def __enter__(self) -> ExplainWorker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def submit(self, candidate: Candidate) -> bool:
        """Publish ``candidate``'s event and queue it for explanation. False when it was dropped at once.

        With a full queue: with ``block_when_full`` wait for room (until `release`, `stop`, or the
        worker thread ending); else ``drop_newest`` drops ``candidate`` and ``drop_oldest`` the oldest
        waiting job (then True); each drop publishes ``dropped(queue_full)`` right here.
        """
        now = self._clock()
        decided = now if candidate.decided is None else candidate.decided
        arrived = decided if candidate.offset_arrived is None else candidate.offset_arrived
        job = _Job(candidate, now, Timing(arrived=arrived, decided=decided))
        self._announce(job)
        victim: _Job | None = None
        reason, detail = "queue_full", ""
        waited_s = 0.0
        with self._cond:
            if self._blocking and len(self._queue) >= self._cfg.queue_size:
                t0 = time.perf_counter()
                while (
                    self._blocking
                    and self._accepting
                    and len(self._queue) >= self._cfg.queue_size
                    and (self._thread.alive or not self._thread.started)
                ):
                    self._cond.wait(0.25)  # bounded: the worker notifies when it takes jobs
                waited_s = time.perf_counter() - t0
            job.submitted = self._clock()
            if not self._accepting:
                victim, reason, detail = job, "shutdown", "submitted after the worker stopped"
            elif len(self._queue) >= self._cfg.queue_size and not self._blocking:
                detail = f"queue of {self._cfg.queue_size} full ({self._cfg.policy})"
                if self._cfg.policy == "drop_newest":
                    victim = job
                else:
                    victim = self._queue.popleft()
                    self._queue.append(job)
            else:  # room, or blocking released (a stop is coming: the drain decides)
                self._queue.append(job)
            self._cond.notify_all()
        with self._stats_lock:
            self._counts["submitted"] += 1
            if waited_s:
                self._counts["backpressure_waits"] += 1
                self._backpressure_s += waited_s
        if victim is not None:
            self._drop(victim, reason, detail)
        return victim is not job

    def release(self) -> None:
        """A stop was requested: `submit` no longer waits for room (it queues beyond the size), and an
        unbounded drain (`stop` with ``drain_s = inf``) becomes ``cfg.drain_s`` from now."""
        with self._cond:
            self._blocking = False
            self._released = True
            if math.isinf(self._drain_until) and self._stopping:
                self._drain_until = self._clock() + self._cfg.drain_s
            self._cond.notify_all()

    def stop(self, drain_s: float | None = None) -> None:
        """Stop accepting, explain waiting jobs for up to ``drain_s`` (default ``cfg.drain_s``; ``inf``:
        all of them, until `release`), end the rest as ``dropped(shutdown)``, join the thread.
        Returns within ``drain_s + cfg.stop_grace_s`` (plus event emission), even when the explainer
        hangs. Idempotent.
        """
        drain = self._cfg.drain_s if drain_s is None else max(0.0, drain_s)
        with self._cond:
            if self._released and math.isinf(drain):
                drain = self._cfg.drain_s
            first = not self._stopping
            self._accepting = False
            self._blocking = False
            self._stopping = True
            if first:
                self._drain_until = self._clock() + drain
            self._cond.notify_all()
        thread = self._thread
        if not thread.started:  # never started: nothing will explain the waiting jobs
            self._abandon("worker never started")
            return
        while math.isinf(drain):  # offline end of source: every job is explained, unless `release`
            if thread.join(0.5):
                return
            with self._cond:
                if not math.isinf(self._drain_until):
                    drain = max(0.0, self._drain_until - self._clock())
        if not thread.join(drain + self._cfg.stop_grace_s):
            log.warning(
                "explainer %s still busy %.1f s after the drain time; its jobs end as dropped(shutdown)",
                getattr(self._explainer, "name", "?"),
                self._cfg.stop_grace_s,
            )
            self._abandon("explainer still busy at shutdown")

    def stats(self) -> dict[str, Any]:
        """Counters for ``status``: queue depth, drops by reason, explained, end-to-end latency p50/p95
        (ms, offset frame in → explanation out) and queue wait p50 over the last ``latency_window``
        explanations (None before the first), per-item prepare and explainer times (p50, ms), the
        mean batch size, and how often and how long `submit` waited for room (back-pressure).
        """
        with self._cond:
            depth, inflight = len(self._queue), len(self._inflight)
        with self._stats_lock:
            lat = list(self._latency_ms)
            return {
                "queue_depth": depth,
                "in_flight": inflight,
                **self._counts,
                "dropped": dict(self._dropped),
                "dropped_total": sum(self._dropped.values()),
                "backpressure_s": round(self._backpressure_s, 3),
                "latency_p50_ms": _percentile(lat, 50),  # offset frame in -> explanation out
                "latency_p95_ms": _percentile(lat, 95),
                "queue_ms_p50": _percentile(list(self._queue_ms), 50),
                "prepare_ms_p50": _percentile(list(self._prepare_ms), 50),
                "explain_ms_p50": _percentile(list(self._explain_ms), 50),
                "mean_batch": round(float(np.mean(self._batch_sizes)), 3) if self._batch_sizes else None,
            }

    @property
    def alive(self) -> bool:
        return self._thread.alive

    # ---------------------------------------------------------------- the worker thread
    def _run(self) -> None:
        self._warmup()
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue or (self._stopping and self._clock() >= self._drain_until):
                    break
                n = min(self._cfg.batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(n)]
                self._inflight = batch
                self._cond.notify_all()  # room for a submitter waiting (block_when_full)
            try:
                self._process(batch)
            except Exception as exc:  # a bug here must not kill the worker or lose the jobs
                log.exception("explain worker failed on a batch")
                self._error(batch[0].candidate.stream, "explain", f"worker: {type(exc).__name__}: {exc}")
                for job in batch:
                    self._drop(job, "error", f"worker: {type(exc).__name__}: {exc}")
            finally:
                with self._cond:
                    self._inflight = []

    def _end(self) -> None:
        """The thread's end path: every job left ends as dropped(shutdown), the explainer is closed. A
        failure of the loop itself (a bug: batch failures are events) is logged here, never raised
        into the pipeline's shutdown."""
        if self._thread.error is not None:
            log.error("explain worker thread failed", exc_info=self._thread.error)
        self._abandon("drain time over at shutdown")
        try:
            self._explainer.close()
        except Exception:
            log.exception("explainer %s failed to close", getattr(self._explainer, "name", "?"))

    def _warmup(self) -> None:
        t0 = time.perf_counter()
        try:
            self._explainer.warmup()
        except Exception as exc:
            log.exception("explainer warm-up failed")
            self._error(self._stream, "explain", f"warm-up failed: {type(exc).__name__}: {exc}")
            return
        log.info(
            "explainer %s warm in %.1f ms",
            getattr(self._explainer, "name", "?"),
            1000 * (time.perf_counter() - t0),
        )

    def _process(self, batch: list[_Job]) -> None:
        ready: list[tuple[_Job, Evidence]] = []
        for job in batch:
            now = self._clock()
            if self._stopping and now >= self._drain_until:
                self._drop(job, "shutdown", "drain time over at shutdown")
                continue
            age = now - job.submitted
            limit = self._cfg.offline_deadline_s if self._offline else self._cfg.deadline_s
            if limit and age > limit:
                self._drop(job, "timeout", f"waited {age:.3f} s, deadline {limit} s")
                continue
            job.timing = dataclasses.replace(job.timing, started=now)
            t0 = time.perf_counter()
            try:
                evidence = self._stage(job.candidate)
            except Exception as exc:
                log.warning("prepare failed for candidate %s: %s", job.candidate.candidate_id, exc)
                msg = f"candidate {job.candidate.candidate_id}: {type(exc).__name__}: {exc}"
                self._error(job.candidate.stream, "flow", msg)
                self._drop(job, "error", f"flow: {type(exc).__name__}: {exc}")
                continue
            stage_s = time.perf_counter() - t0
            flow_s = min(stage_s, evidence.flow_ms / 1000)
            job.timing = dataclasses.replace(job.timing, flow_s=flow_s, fusion_s=stage_s - flow_s)
            with self._stats_lock:
                self._prepare_ms.append(1000 * stage_s)
            self._publish_map(job, evidence.png)
            ready.append((job, evidence))
        if not ready:
            return
        t0 = time.perf_counter()
        try:
            results = self._explainer.explain_batch([ev for _, ev in ready])
            if len(results) != len(ready):
                raise RuntimeError(f"returned {len(results)} explanations for {len(ready)} items")
        except Exception as exc:
            log.warning(
                "explainer %s failed on %d item(s): %s",
                getattr(self._explainer, "name", "?"),
                len(ready),
                exc,
            )
            reason = "timeout" if isinstance(exc, TimeoutError) else "error"
            stream = ready[0][0].candidate.stream
            self._error(stream, "explain", f"{type(exc).__name__}: {exc}")
            for job, _ in ready:
                job.timing = dataclasses.replace(job.timing, explain_s=time.perf_counter() - t0)
                self._drop(job, reason, f"explain: {type(exc).__name__}: {exc}")
            return
        explain_s = time.perf_counter() - t0
        per_item_ms = 1000 * explain_s / len(ready)
        for job, _ in ready:
            job.timing = dataclasses.replace(job.timing, explain_s=explain_s)
        with self._stats_lock:
            self._counts["batches"] += 1
            self._batch_sizes.append(len(ready))
            self._explain_ms.append(per_item_ms)
        for (job, _), explanation in zip(ready, results, strict=True):
            self._explained(job, explanation)

    # ---------------------------------------------------------------- event emission (any thread)
    def _emit(self, event: dict[str, Any], png: bytes | None = None) -> None:
        try:
            self._sink.emit(event, png)
        except Exception:
            log.exception("event sink failed on a %s event", event.get("type"))

    def _announce(self, job: _Job) -> None:
        """Publish the job's candidate event (once, first)."""
        with job.lock:
            if not job.announced and not job.finished:
                self._emit(candidate_event(job.candidate))
                job.announced = True

    def _publish_map(self, job: _Job, png: bytes) -> None:
        """Publish the job's fused map (a ``map`` event) unless the job already ended."""
        with job.lock:
            if job.announced and not job.finished and png:
                self._emit(map_event(job.candidate), png)

    def _drop(self, job: _Job, reason: str, detail: str) -> None:
        """End ``job`` with ``dropped(reason)``, after its candidate event; no-op if it already ended."""
        with job.lock:
            if job.finished:
                return
            if not job.announced:
                self._emit(candidate_event(job.candidate))
                job.announced = True
            self._emit(dropped_event(job.candidate, reason, detail, job.timing.to_json(self._clock())))
            job.finished = True
        with self._stats_lock:
            self._dropped[reason] += 1

    def _explained(self, job: _Job, explanation: Explanation) -> None:
        with job.lock:
            if job.finished or not job.announced:
                return
            timing = job.timing.to_json(self._clock())
            self._emit(explanation_event(job.candidate, explanation, timing))
            job.finished = True
        with self._stats_lock:
            self._counts["explained"] += 1
            self._latency_ms.append(float(timing["since_offset"] or 0.0))
            self._queue_ms.append(float(timing["queue"] or 0.0))

    def _error(self, stream: str, where: str, message: str) -> None:
        self._emit(error_event(stream, where, message))
        with self._stats_lock:
            self._counts["errors"] += 1

    def _abandon(self, detail: str) -> None:
        """End every waiting and in-flight job as ``dropped(shutdown)``."""
        with self._cond:
            jobs = [*self._inflight, *self._queue]
            self._queue.clear()
        for job in jobs:
            self._drop(job, "shutdown", detail)


# -------------------------------------------------------------------- process mode
def _make_explainer(name: str, params: dict[str, Any]) -> Explainer:
    """A registered explainer name, or a ``"module:attr"`` factory (a custom explainer class)."""
    if ":" in name:
        module, _, attr = name.partition(":")
        return getattr(importlib.import_module(module), attr)(**params)
    from engine.explain import create

    return create(name, **params)


def _child_main(conn: Any, name: str, params: dict[str, Any]) -> None:
    """Child process: build the explainer, warm it up, answer ``explain`` requests until ``close``."""
    try:
        explainer = _make_explainer(name, params)
        explainer.warmup()
        conn.send(("ready", explainer.name))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        while True:
            try:
                msg, payload = conn.recv()
            except EOFError:
                return
            if msg == "close":
                return
            try:
                conn.send(("ok", explainer.explain_batch(payload)))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        explainer.close()


class ProcessExplainer:
    """An explainer built in a child process, so a hung or crashed model can be killed.

    ``name``: a registered explainer name (``rules``, ``vlm``, ...) or a ``"module:attr"`` factory;
    ``params``: its keyword arguments (picklable).

    A call that takes longer than ``timeout_s`` kills the child and raises `TimeoutError` (the worker
    turns it into ``error`` + ``dropped(timeout)``); the next call starts a fresh child, warm-up
    included. ``start_method``: ``spawn`` by default (safe with threads and CUDA).
    """

    def __init__(
        self,
        name: str,
        params: dict[str, Any] | None = None,
        timeout_s: float = 60.0,
        warmup_timeout_s: float | None = None,
        start_method: str = "spawn",
    ) -> None:
        self._kind = name
        self._params = dict(params or {})
        self._timeout_s = timeout_s
        self._warmup_timeout_s = warmup_timeout_s
        self._ctx = mp.get_context(start_method)
        self._proc: Any = None
        self._conn: Any = None
        self.name = name

    def warmup(self) -> None:
        """Start the child and wait until its explainer is built and warm."""
        if self._proc is not None and self._proc.is_alive():
            return
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_child_main,
            args=(child, self._kind, self._params),
            name=f"explainer-{self._kind}",
            daemon=True,
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        if not parent.poll(self._warmup_timeout_s):
            self._kill()
            raise TimeoutError(f"explainer {self._kind} did not warm up within {self._warmup_timeout_s} s")
        status, payload = self._recv()
        if status != "ready":
            self._kill()
            raise RuntimeError(f"explainer {self._kind} failed in its child process: {payload}")
        self.name = str(payload)

    def explain_batch(self, items: Sequence[Evidence]) -> list[Explanation]:
        self.warmup()
        self._conn.send(("explain", list(items)))
        if not self._conn.poll(self._timeout_s):
            self._kill()
            raise TimeoutError(f"explainer {self.name} took longer than {self._timeout_s} s; child restarted")
        status, payload = self._recv()
        if status != "ok":
            raise RuntimeError(str(payload))
        return list(payload)

    def close(self) -> None:
        if self._proc is None:
            return
        try:
            self._conn.send(("close", None))
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=5.0)
        self._kill()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _recv(self) -> tuple[str, Any]:
        try:
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            code = self._proc.exitcode if self._proc is not None else None
            self._kill()
            raise RuntimeError(f"explainer {self._kind} child process died (exit code {code})") from exc

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None and proc.is_alive():
            proc.kill()
            proc.join(timeout=5.0)


def build_explainer(cfg: ExplainConfig, **params: Any) -> Explainer:
    """The configured explainer: built here (``mode = "thread"``) or in a child process (``"process"``).

    The explainer takes its own section of ``cfg`` (``[explain.rules]``, ``[explain.vlm]``, ...);
    ``params`` add to or override it. An unknown name raises `UnknownNameError`.
    """
    from engine.explain import EXPLAINERS, create

    kwargs = {**cfg.explainer_params(), **params}
    if cfg.mode == "process":
        EXPLAINERS.resolve_name(cfg.name)  # fail here, not in the child; without importing a heavy module
        return ProcessExplainer(cfg.name, kwargs, timeout_s=cfg.timeout_s)
    return create(cfg.name, **kwargs)
