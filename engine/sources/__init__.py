"""The source stage: camera, rtsp/http stream, video file, frame folder or the synthetic `demo`.

``open_source`` turns a ``--source`` spec into a `Source`; `FrameReader` runs it on a thread
behind a bounded queue.

>>> from engine.sources.config import DemoConfig, SourceConfig
>>> src = open_source(SourceConfig(spec="demo"), DemoConfig(duration_s=6, events=1))
>>> src.name, src.live, src.fps
('demo', False, 30.0)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from engine.errors import SourceError
from engine.sources.base import Source
from engine.sources.config import DemoConfig, SourceConfig
from engine.sources.reader import FrameReader

log = logging.getLogger(__name__)

EventHook = Callable[[str, str], None]  # on_event(where, message), see engine.sources.video

NETWORK_SCHEMES: tuple[str, ...] = ("rtsp://", "rtsps://", "http://", "https://")


def open_source(
    cfg: SourceConfig, demo: DemoConfig | None = None, on_event: EventHook | None = None
) -> Source:
    """The source named by ``cfg.spec``: an integer is a camera index, an rtsp(s)/http(s) URL a network
    stream, a directory a frame folder (needs ``cfg.fps``), an existing file a video file, ``demo``
    the synthetic stream. ``cfg.fps`` > 0 overrides the container's rate. Raises `SourceError`
    (a `UserError`) with one line naming the problem and the fix.

    ``on_event(where, message)`` receives a network stream's outages (one call each; the pipeline
    publishes them as ``error`` events); it can also be set later as ``source.on_event``.
    """
    spec = cfg.spec.strip()
    if spec == "demo":
        from engine.sources.demo import DemoSource
        from engine.synth import format_truth, write_truth_csv

        demo = demo or DemoConfig()
        src = DemoSource.from_config(demo, fps=cfg.fps)
        if demo.print_truth:
            head = f"demo ground truth ({len(src.truth)} events, seed {demo.seed}):"
            print(f"{head}\n{format_truth(src.truth)}", flush=True)
        if demo.truth_csv:
            write_truth_csv(demo.truth_csv, src.truth)
        return src
    if re.fullmatch(r"\d+", spec):
        from engine.sources.video import CameraSource

        return CameraSource(int(spec), fps=cfg.fps, open_timeout_s=cfg.open_timeout_s)
    if spec.lower().startswith(NETWORK_SCHEMES):
        from engine.sources.video import NetworkSource

        return NetworkSource(
            spec,
            fps=cfg.fps,
            open_timeout_s=cfg.open_timeout_s,
            read_timeout_s=cfg.read_timeout_s,
            reconnect_interval_s=cfg.reconnect_interval_s,
            reconnect_max_interval_s=cfg.reconnect_max_interval_s,
            reconnect_attempts=cfg.reconnect_attempts,
            on_event=on_event,
        )
    if not spec:
        raise SourceError(
            "no source given; pass --source with a camera index, URL, video file, folder or 'demo'"
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        from engine.sources.folder import FolderSource

        return FolderSource(path, cfg.fps)
    if path.is_file():
        from engine.sources.video import VideoFileSource

        return VideoFileSource(path, fps=cfg.fps)
    if "://" in spec:
        scheme = spec.split("://", 1)[0]
        raise SourceError(f"unsupported URL scheme {scheme}:// in {spec}; use rtsp, rtsps, http or https")
    raise SourceError(
        f"source {spec} does not exist; give a camera index, an rtsp/http URL, a video file, "
        "a frame folder or 'demo'"
    )


__all__ = ["DemoConfig", "FrameReader", "Source", "SourceConfig", "open_source"]
