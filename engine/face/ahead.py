"""Face tracking a few frames ahead of the spotter, on a helper thread.

The face stage and the spotter used to run one after the other on the video thread. MediaPipe's
landmarker waits on its own thread and OpenCV's calls (Lucas-Kanade, the crop warp, DIS) release
the GIL, so on a 2-core CPU the face of frame t+1 can be found while the spotter works on frame t:
the spotting path on WolfgangLanger_Pexels.mp4 (640x360, landmarks reused, 128 px signal) went
from ~195 to ~255-265 frames/s in one side-by-side run on this CPU (the 160 px signal now:
~210-225). Frames come out in their order, each with its face and the time tracking it took.

>>> faces = track_ahead(iter([]), lambda frame: None)
>>> list(faces)
[]
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterable, Iterator

from engine.threads import WorkerThread
from engine.types import FaceObservation, Frame

_END = object()


def track_ahead(
    frames: Iterable[Frame],
    track: Callable[[Frame], FaceObservation | None],
    depth: int = 8,
) -> Iterator[tuple[Frame, FaceObservation | None, float]]:
    """Yield ``(frame, face or None, seconds track took)`` for every frame of ``frames`` in order,
    ``track`` running on a helper thread up to ``depth`` frames ahead.

    An exception of ``frames`` or ``track`` is raised in the consumer at the point its frame would
    have come. Closing the generator (the consumer stopped or raised) stops the helper: it tracks no
    frame after that, and the generator waits up to 5 s for a ``track`` call in progress to end.
    """
    if depth < 1:
        raise ValueError(f"expected depth >= 1, got {depth}")
    handoff: queue.Queue[object] = queue.Queue(maxsize=depth)

    def put(item: object) -> bool:
        while not helper.stopping:
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        for frame in frames:
            if helper.stopping:
                return
            t0 = time.perf_counter()
            face = track(frame)
            if not put((frame, face, time.perf_counter() - t0)):
                return

    helper = WorkerThread("face-ahead", work, on_end=lambda: put(_END))  # after an error too
    helper.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                helper.raise_error()  # kept before the end marker was put
                return
            yield item  # type: ignore[misc]
    finally:
        helper.stop(5.0)
