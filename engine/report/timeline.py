"""The timeline of a section (matplotlib): candidates by kind and outcome, coloured by emotion, with the
faces lost, frames dropped, reconnects and errors under them, on the stream's own time axis.

Status events carry cumulative counters every few seconds (``stream_t`` says where in the stream);
the increase between two of them is drawn as a band over that interval, darker when a larger share
of its frames was affected. Error events carry only wall-clock time, mapped onto stream time through
the status events.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from engine.report.journal import Section, status_time
from engine.report.summary import number

EMOTION_COLOURS = {"positive": "#2e9d4f", "negative": "#c8423b", "surprise": "#e0a100", "others": "#7d7d7d"}
DROPPED_COLOUR = "#b0b0b0"
FACE_COLOUR = "#6a3d9a"
FRAMES_COLOUR = "#ff7f0e"
RECONNECT_COLOUR = "#1f77b4"
ERROR_COLOUR = "#000000"
MAX_LABELS = 80
LANES = {"micro": 3.0, "macro": 2.0, "face lost": 1.0, "frames dropped": 0.0}


def emotion_colour(emotion: object) -> str:
    return EMOTION_COLOURS.get(str(emotion), EMOTION_COLOURS["others"])


def _increments(sec: Section, key: str) -> list[tuple[float, float, float, float]]:
    """(start t, end t, increase of ``key``, frames processed) between consecutive status events."""
    out = []
    prev_t, prev_v, prev_frames = 0.0, 0.0, 0.0
    for s in sec.all_statuses:
        t, v, frames = status_time(s), number(s.get(key)), number(s.get("frames"))
        if t is None or v is None:
            continue
        frames = frames if frames is not None else prev_frames
        if v > prev_v and t > prev_t:
            out.append((prev_t, t, v - prev_v, max(frames - prev_frames, 1.0)))
        prev_t, prev_v, prev_frames = t, v, frames
    return out


def _stream_time_of(sec: Section, wall: float) -> float | None:
    """Stream seconds at wall-clock ``wall``, interpolated between status events."""
    pts = [(w, t) for s in sec.all_statuses if (w := number(s.get("time"))) is not None
           and (t := status_time(s)) is not None]
    if not pts:
        return None
    walls, ts = zip(*sorted(pts), strict=True)
    return float(np.interp(wall, walls, ts))


def draw_timeline(sec: Section, path: Path, end: float | None) -> None:
    """Write the timeline of ``sec`` as a PNG at ``path``; ``end``: the stream time the axis ends at."""
    start = sec.since or 0.0
    stop = end if end and end > start else max((r.t("offset") for r in sec.candidates
                                                if not math.isnan(r.t("offset"))), default=start + 1.0)
    span = max(stop - start, 1e-3)
    fig = Figure(figsize=(12, 3.4), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    min_w = span / 400  # keep a 100-ms event visible on a 40-minute axis
    for r in sec.candidates:
        on, apex, off = r.t("onset"), r.t("apex"), r.t("offset")
        if math.isnan(on) or math.isnan(off):
            continue
        y = LANES["macro"] if r.event.get("kind") == "macro" else LANES["micro"]
        outcome = r.outcome or {}
        if outcome.get("type") == "explanation":
            colour = emotion_colour(outcome.get("emotion"))
            style = {"facecolor": colour, "edgecolor": "black", "linewidth": 0.4}
        elif outcome.get("type") == "dropped":
            style = {"facecolor": "white", "edgecolor": DROPPED_COLOUR, "hatch": "////", "linewidth": 0.8}
        else:
            style = {"facecolor": "white", "edgecolor": "black", "linestyle": ":", "linewidth": 0.8}
        ax.broken_barh([(on, max(off - on, min_w))], (y - 0.3, 0.6), **style)
        if not math.isnan(apex):
            ax.plot([apex], [y + 0.3], marker="v", color="black", markersize=3)
        if len(sec.candidates) <= MAX_LABELS:
            ax.annotate(str(r.number), (on + max(off - on, min_w) / 2, y + 0.34), ha="center", va="bottom",
                        fontsize=7)
    for key, lane, colour in (("faces_lost", "face lost", FACE_COLOUR),
                              ("frames_dropped", "frames dropped", FRAMES_COLOUR)):
        for t0, t1, inc, frames in _increments(sec, key):
            alpha = 0.25 + 0.75 * min(1.0, inc / frames)
            ax.broken_barh([(t0, t1 - t0)], (LANES[lane] - 0.3, 0.6), facecolor=colour, alpha=alpha)
    for _, t1, _, _ in _increments(sec, "reconnects"):
        ax.axvline(t1, color=RECONNECT_COLOUR, linestyle="--", linewidth=1.0)
    for e in sec.errors:
        wall = number(e.get("time"))
        t = _stream_time_of(sec, wall) if wall is not None else None
        if t is not None:
            ax.plot([t], [LANES["frames dropped"]], marker="x", color=ERROR_COLOUR, markersize=7)
    ax.set_xlim(start, start + span)
    ax.set_ylim(-0.6, 3.9)
    ax.set_yticks(list(LANES.values()), list(LANES))
    ax.set_xlabel("stream time (s)")
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(facecolor=c, edgecolor="black", linewidth=0.4, label=k)
               for k, c in EMOTION_COLOURS.items()]
    handles += [
        Patch(facecolor="white", edgecolor=DROPPED_COLOUR, hatch="////", label="dropped"),
        Patch(facecolor="white", edgecolor="black", linestyle=":", label="no outcome"),
        Patch(facecolor=FACE_COLOUR, alpha=0.6, label="face lost"),
        Patch(facecolor=FRAMES_COLOUR, alpha=0.6, label="frames dropped"),
        Line2D([], [], color=RECONNECT_COLOUR, linestyle="--", label="reconnect"),
        Line2D([], [], color=ERROR_COLOUR, marker="x", linestyle="", label="error"),
    ]
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=8, frameon=False)
    fig.savefig(path)
