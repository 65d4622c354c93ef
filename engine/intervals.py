"""Interval matching of the MEGC spotting protocol, in the runtime so the demo can score itself.

A detected interval matches a ground-truth interval when their intersection over union is at least
0.5 (``|D ∩ G| / |D ∪ G|`` in frames, both ends inclusive), each truth matched at most once.
`evaluation.megc` builds the MEGC table on these; the demo (`run_stream.py --source demo`) prints
what it found against its own injected truth with them.
"""

from __future__ import annotations

from collections.abc import Sequence

IOU_THRESHOLD = 0.5

# (onset, offset, kind): frame indices, both inclusive; kind "micro" | "macro".
Span = tuple[int, int, str]


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Intersection over union of two inclusive frame intervals ``(onset, offset)``.

    >>> iou((0, 9), (5, 14))
    0.3333333333333333
    """
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    union = max(a[1], b[1]) - min(a[0], b[0]) + 1
    return inter / union


def match_intervals(
    detections: Sequence[Span], truth: Sequence[Span], threshold: float = IOU_THRESHOLD
) -> list[tuple[int, int]]:
    """Pairs ``(detection index, truth index)`` of true positives in one video.

    Detections are taken in onset order; each is matched to the unmatched truth of highest IoU,
    when that IoU is at least ``threshold`` (MEGC: one truth is matched at most once).
    """
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for di in sorted(range(len(detections)), key=lambda i: detections[i][0]):
        d = detections[di]
        best, best_iou = -1, threshold
        for gi, g in enumerate(truth):
            if gi in used:
                continue
            v = iou((d[0], d[1]), (g[0], g[1]))
            if v >= best_iou:
                best, best_iou = gi, v
        if best >= 0:
            used.add(best)
            pairs.append((di, best))
    return pairs
