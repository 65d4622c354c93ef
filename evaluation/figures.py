"""The figure of a spotting run: per-region score, threshold, detections and ground truth as one PNG.

One row per region group (brows, eyelids, nose, mouth, chin, cheeks), each region's score over
time, the firing threshold (dashed), detected intervals shaded (micro orange, macro purple) and
ground truth intervals as green bars. matplotlib with the Agg backend (no display needed). Drawn by
``python -m evaluation.plot`` and by ``python -m evaluation.megc --plot-dir``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.regions import REGION_BASES, REGION_NAMES, base_of
from engine.types import Candidate


class ScoredRun(Protocol):
    """What a figure needs of a spotting run (`evaluation.megc.SpotRun` made with ``keep_scores``):
    the candidates, and per frame (index, t, None or (region scores, thresholds or None))."""

    candidates: list[Candidate]
    scores: list[tuple[int, float, object]]


GROUPS: dict[str, tuple[str, ...]] = {
    "brows": ("brow_inner", "brow_outer"),
    "eyelids": ("eyelid_upper", "eyelid_lower"),
    "nose & cheeks": ("nose_wing", "cheek"),
    "mouth": ("mouth_corner", "lip_upper", "lip_lower"),
    "chin": ("chin",),
}
assert set(b for g in GROUPS.values() for b in g) == set(REGION_BASES)


def plot_run(
    out: str | Path,
    run: ScoredRun,
    fps: float,
    truth: Sequence[tuple[int, int]] = (),
    title: str = "",
    suppressed: Sequence[tuple[int, int, str]] = (),
) -> Path:
    """Draw ``run`` (made with ``keep_scores=True``) to ``out`` (PNG); ``truth`` as (onset, offset) frames,
    ``suppressed`` as (onset, offset, suppressor name): the candidates a suppressor dropped (grey, named).

    >>> plot_run("/tmp/p.png", run, 30.0, truth=[(40, 52)])  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(i, t, v) for i, t, v in run.scores if v is not None]
    if not rows:
        raise ValueError(
            "the run holds no scored frame: run the spotter with keep_scores=True on a face video"
        )
    frames = np.array([r[0] for r in rows])
    z = np.stack([np.asarray(r[2][0]) for r in rows])  # type: ignore[index]
    th = [r[2][1] for r in rows]  # type: ignore[index]
    thr = np.stack([np.asarray(x) for x in th]) if all(x is not None for x in th) else None
    fig, axes = plt.subplots(len(GROUPS), 1, figsize=(12, 2.0 * len(GROUPS)), sharex=True)
    tsec = frames / fps
    for ax, (group, bases) in zip(axes, GROUPS.items(), strict=True):
        idx = [i for i, n in enumerate(REGION_NAMES) if base_of(n) in bases]
        for i in idx:
            ax.plot(tsec, z[:, i], lw=0.8, label=REGION_NAMES[i])
        if thr is not None:
            ax.plot(tsec, thr[:, idx].max(axis=1), "k--", lw=0.8, label="threshold")
        for c in run.candidates:
            colour = "tab:orange" if c.kind == "micro" else "tab:purple"
            ax.axvspan(c.onset.frame / fps, c.offset.frame / fps, color=colour, alpha=0.25)
        top = float(np.nanmax(z[:, idx])) if len(idx) else 1.0
        for on, off, why in suppressed:
            ax.axvspan(on / fps, off / fps, color="tab:grey", alpha=0.2, hatch="//")
            ax.text(on / fps, top, why, fontsize=6, color="dimgrey", va="top")
        for on, off in truth:
            ax.plot([on / fps, off / fps], [top * 1.05] * 2, color="tab:green", lw=4, solid_capstyle="butt")
        ax.set_ylabel(group)
        ax.legend(loc="upper right", fontsize=6, ncol=4)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(
        title or "spotting scores (shaded: detections, hatched grey: suppressed, named; green: ground truth)"
    )
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
