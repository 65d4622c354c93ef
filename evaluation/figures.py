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
from spotting.bump import PAIR_L, PAIR_R
from spotting.config import SpottingConfig


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
    pair_gain: float = 1.0,
) -> Path:
    """Draw ``run`` (made with ``keep_scores=True``) to ``out`` (PNG); ``truth`` as (onset, offset) frames,
    ``suppressed`` as (onset, offset, suppressor name): the candidates a suppressor dropped (grey, named).

    With per-region thresholds (the region-bump spotter) each region is drawn as score / its own
    threshold, so the line that decides is the same for all: 1 for one side, ``1 / pair_gain``
    (dotted) for a region moving on both sides at once; each detection is labelled with the rule
    that fired it. The x axis spans the clip.

    >>> plot_run("/tmp/p.png", run, 30.0, truth=[(40, 52)])  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames, z, ratio = _scored(run)
    if ratio is not None:
        z = ratio
    fig, axes = plt.subplots(len(GROUPS), 1, figsize=(12, 2.0 * len(GROUPS)), sharex=True)
    tsec = frames / fps
    end_s = max(i for i, _, _ in run.scores) / fps
    rules = {id(c): _rule(c, frames, ratio, pair_gain) for c in run.candidates}
    for ax, (group, bases) in zip(axes, GROUPS.items(), strict=True):
        idx = [i for i, n in enumerate(REGION_NAMES) if base_of(n) in bases]
        for i in idx:
            ax.plot(tsec, z[:, i], lw=0.8, label=REGION_NAMES[i])
        if ratio is not None:
            ax.axhline(1.0, color="k", ls="--", lw=0.8, label="threshold")
            if pair_gain > 1.0:
                ax.axhline(1.0 / pair_gain, color="k", ls=":", lw=0.8, label="both sides: 1/pair_gain")
        top = float(np.nanmax(z[:, idx])) if len(idx) else 1.0
        for c in run.candidates:
            colour = "tab:orange" if c.kind == "micro" else "tab:purple"
            ax.axvspan(c.onset.frame / fps, c.offset.frame / fps, color=colour, alpha=0.25)
            if rules[id(c)]:
                ax.text(c.onset.frame / fps, top * 0.9, rules[id(c)], fontsize=6, color=colour, va="top")
        for on, off, why in suppressed:
            ax.axvspan(on / fps, off / fps, color="tab:grey", alpha=0.2, hatch="//")
            ax.text(on / fps, top, why, fontsize=6, color="dimgrey", va="top")
        for on, off in truth:
            ax.plot([on / fps, off / fps], [top * 1.05] * 2, color="tab:green", lw=4, solid_capstyle="butt")
        ax.set_ylabel(group + (" (score/thr)" if ratio is not None else ""))
        ax.legend(loc="upper right", fontsize=6, ncol=4)
    axes[-1].set_xlim(0.0, end_s)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(
        title or "spotting scores (shaded: detections, hatched grey: suppressed, named; green: ground truth)"
    )
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def pair_gain_of(spotting: SpottingConfig) -> float:
    """The pair gain the configured spotter fires with (1: none), for `plot_run`."""
    return spotting.bump.pair_gain if spotting.name == "region-bump" else 1.0


def _scored(run: ScoredRun) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(frame indices (N,), region scores (N, R), score / threshold (N, R) or None) of the scored frames."""
    rows = [(i, t, v) for i, t, v in run.scores if v is not None]
    if not rows:
        raise ValueError(
            "the run holds no scored frame: run the spotter with keep_scores=True on a face video"
        )
    frames = np.array([r[0] for r in rows])
    z = np.stack([np.asarray(r[2][0]) for r in rows])  # type: ignore[index]
    th = [r[2][1] for r in rows]  # type: ignore[index]
    if not all(x is not None for x in th):
        return frames, z, None
    return frames, z, z / np.maximum(np.stack([np.asarray(x) for x in th]), 1e-12)


def detection_rules(run: ScoredRun, pair_gain: float = 1.0) -> list[str]:
    """For each candidate of ``run``, the rule that fired it as drawn by `plot_run` (see `_rule`)."""
    frames, _, ratio = _scored(run)
    return [_rule(c, frames, ratio, pair_gain) for c in run.candidates]


def _rule(c: Candidate, frames: np.ndarray, ratio: np.ndarray | None, pair_gain: float) -> str:
    """Which rule fired ``c``: "one side" when some region crossed its own threshold in the interval,
    "both sides" when only a left/right pair did at ``1 / pair_gain`` of it; '' when unknown."""
    if ratio is None:
        return ""
    inside = (frames >= c.onset.frame) & (frames <= c.offset.frame)
    if not inside.any():
        return ""
    if float(ratio[inside].max()) >= 1.0:
        return "one side"
    if (
        pair_gain > 1.0
        and float((pair_gain * np.minimum(ratio[inside][:, PAIR_L], ratio[inside][:, PAIR_R])).max()) >= 1.0
    ):
        return "both sides"
    return ""
