"""THE frame loop: frames → face (tracked a few frames ahead) → spotter → candidates.

The engine (`engine.pipeline.Pipeline.run`), the MEGC evaluation and the benchmarks all run this
one function, so their figures come from the code the users run. For every frame, in order:

1. a frame whose size differs from the previous one, or that comes more than ``max_gap_s`` after
   it (an outage), flushes the spotter: what is open is judged, the motion history ends there;
2. ``on_frame(frame, face)`` (the clip recorder's ring buffer);
3. no face: the first frame without one after a face flushes the spotter (an expression the face
   turned away in is still an expression), later ones do nothing; a face: ``spotter.update``, then
   ``on_spotted(frame, face)`` (per-frame scores for plots).

At the end of the frames the spotter is flushed once more. Every list of candidates the spotter
returns goes to ``on_candidates`` on the calling thread, in the order found, each stamped with
``decided`` (now) and ``offset_arrived`` (its offset frame's ``Frame.arrived``, when that frame is
among the last `ARRIVALS_KEPT` and was stamped), so latency can be counted from the offset frame.

>>> class Quiet:
...     def update(self, obs): return []
...     def flush(self): return []
...     def reset(self): pass
>>> run_frames([], lambda frame: None, Quiet(), lambda found: None).frames
0
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.face.ahead import track_ahead
from engine.types import Candidate, FaceObservation, Frame
from spotting.base import Spotter

FrameHook = Callable[[Frame, FaceObservation | None], None]
FaceHook = Callable[[Frame, FaceObservation], None]
ARRIVALS_KEPT = 4096  # frames whose arrival time is remembered (> any spotter window at 200 fps)


@dataclass
class LoopStats:
    """What the loop counted so far (read from other threads by the status event).

    ``face_s``: seconds inside ``track`` (on the helper thread); ``spot_s``: seconds inside the
    spotter's ``update`` and ``flush``; ``wall_s``: the whole pass, set when the loop ends.
    """

    frames: int = 0
    face_frames: int = 0
    faces_lost: int = 0
    candidates: int = 0
    face_s: float = 0.0
    spot_s: float = 0.0
    wall_s: float = 0.0
    last_t: float = 0.0  # stream time of the last frame, seconds


def run_frames(
    frames: Iterable[Frame],
    track: Callable[[Frame], FaceObservation | None],
    spotter: Spotter,
    on_candidates: Callable[[list[Candidate]], None],
    *,
    max_gap_s: float = 1.0,
    on_frame: FrameHook | None = None,
    on_spotted: FaceHook | None = None,
    stats: LoopStats | None = None,
    depth: int = 8,
) -> LoopStats:
    """Run every frame of ``frames`` through ``track`` and ``spotter`` (see the module docstring);
    returns ``stats`` (a new `LoopStats` when None), updated as the frames go.

    ``track`` runs on a helper thread up to ``depth`` frames ahead (`engine.face.ahead.track_ahead`).
    An exception of ``frames``, ``track``, the spotter or a hook ends the loop and propagates (no
    final flush then); the helper thread is stopped on every path.
    """
    s = LoopStats() if stats is None else stats
    start = time.perf_counter()

    arrivals: OrderedDict[int, float] = OrderedDict()  # frame index -> Frame.arrived

    def spot(call: Callable[[], list[Candidate]]) -> None:
        t0 = time.perf_counter()
        found = call()
        s.spot_s += time.perf_counter() - t0
        if found:
            s.candidates += len(found)
            decided = time.monotonic()
            on_candidates([
                dataclasses.replace(c, decided=decided, offset_arrived=arrivals.get(c.offset.frame))
                for c in found
            ])

    had_face = False
    last: Frame | None = None
    with contextlib.closing(track_ahead(frames, track, depth)) as tracked:
        for frame, obs, face_s in tracked:
            s.face_s += face_s
            if frame.arrived:
                arrivals[frame.index] = frame.arrived
                if len(arrivals) > ARRIVALS_KEPT:
                    arrivals.popitem(last=False)
            if last is not None and (
                frame.image.shape != last.image.shape or frame.t - last.t > max_gap_s
            ):  # a new resolution or an outage: judge what is open, the motion history ends here
                spot(spotter.flush)
                had_face = False
            last = frame
            if on_frame is not None:
                on_frame(frame, obs)
            if obs is None:
                s.faces_lost += 1
                if had_face:  # judge an interval the face left in, then start afresh
                    spot(spotter.flush)
                had_face = False
            else:
                s.face_frames += 1
                had_face = True
                spot(lambda: spotter.update(obs))  # noqa: B023 - called at once, inside this iteration
                if on_spotted is not None:
                    on_spotted(frame, obs)
            s.frames += 1
            s.last_t = frame.t
    spot(spotter.flush)
    s.wall_s = time.perf_counter() - start
    return s
