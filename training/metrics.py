"""Micro-expression understanding (MEU) metrics: AU F1, and 3-class UF1 / UAR / accuracy (MEGC 2019).

AU detection is scored per action unit on presence (side ignored: sheets and models disagree on
it far more than on the AU): F1 = 2TP / (2TP + FP + FN) over the samples; the mean is over the AUs
that occur in the ground truth (an AU never labelled has no F1 to average; its false alarms are
reported in its own row).

Emotion is scored on the MEGC composite classes, over samples whose label has one (``None`` = left
out, e.g. CASME II ``others``). A prediction outside the three classes (``others``) is wrong.
UF1 = mean over classes present in the truth of per-class F1; UAR = mean of per-class recall.

>>> truth = ["positive", "negative", "negative", None]
>>> s = emotion_scores(truth, ["positive", "negative", "others", "surprise"])
>>> round(s.uf1, 4), round(s.uar, 4), round(s.accuracy, 4), s.n
(0.8333, 0.75, 0.6667, 3)
>>> a = au_scores([{4}, {4, 7}, {12}], [{4}, {4}, {12, 4}])
>>> round(a.per_au[4].f1, 4), a.per_au[7].f1, round(a.mean_f1, 4)
(0.8, 0.0, 0.6)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

CLASSES: tuple[str, ...] = ("negative", "positive", "surprise")


def f1(tp: int, fp: int, fn: int) -> float:
    """2TP / (2TP + FP + FN); 0 when there is nothing to count."""
    den = 2 * tp + fp + fn
    return 2 * tp / den if den else 0.0


@dataclass(frozen=True, slots=True)
class AUScore:
    """Counts and F1 of one action unit; ``support`` = samples labelled with it."""

    tp: int
    fp: int
    fn: int

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def f1(self) -> float:
        return f1(self.tp, self.fp, self.fn)


@dataclass(frozen=True, slots=True)
class AUScores:
    per_au: dict[int, AUScore]
    n: int

    @property
    def mean_f1(self) -> float:
        """Mean F1 over the AUs present in the ground truth (0 when none is)."""
        scored = [s.f1 for s in self.per_au.values() if s.support]
        return sum(scored) / len(scored) if scored else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean_f1": self.mean_f1,
            "per_au": {
                str(a): {**asdict(s), "support": s.support, "f1": s.f1}
                for a, s in sorted(self.per_au.items())
            },
        }


def au_scores(
    truth: Sequence[Iterable[int]], pred: Sequence[Iterable[int]], aus: Iterable[int] | None = None
) -> AUScores:
    """Per-AU counts over paired samples. ``aus``: the AUs to score (default: every AU seen in
    either); AUs outside it are ignored on both sides."""
    if len(truth) != len(pred):
        raise ValueError(f"expected as many predictions as labels, got {len(pred)} and {len(truth)}")
    t_sets = [frozenset(t) for t in truth]
    p_sets = [frozenset(p) for p in pred]
    universe = set(aus) if aus is not None else set().union(*t_sets, *p_sets)
    per: dict[int, AUScore] = {}
    for au in sorted(universe):
        tp = sum(1 for t, p in zip(t_sets, p_sets, strict=True) if au in t and au in p)
        fp = sum(1 for t, p in zip(t_sets, p_sets, strict=True) if au not in t and au in p)
        fn = sum(1 for t, p in zip(t_sets, p_sets, strict=True) if au in t and au not in p)
        per[au] = AUScore(tp, fp, fn)
    return AUScores(per, len(t_sets))


@dataclass(frozen=True, slots=True)
class EmotionScores:
    """3-class results: ``confusion[truth][pred]`` counts (pred may be ``others``)."""

    uf1: float
    uar: float
    accuracy: float
    n: int
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def emotion_scores(truth: Sequence[str | None], pred: Sequence[str]) -> EmotionScores:
    """UF1, UAR and accuracy over the samples whose truth is one of `CLASSES`."""
    if len(truth) != len(pred):
        raise ValueError(f"expected as many predictions as labels, got {len(pred)} and {len(truth)}")
    pairs = [(t, p) for t, p in zip(truth, pred, strict=True) if t in CLASSES]
    confusion: dict[str, dict[str, int]] = {c: {} for c in CLASSES}
    for t, p in pairs:
        confusion[t][p] = confusion[t].get(p, 0) + 1
    per_class: dict[str, dict[str, float]] = {}
    for c in CLASSES:
        tp = sum(1 for t, p in pairs if t == c and p == c)
        fn = sum(1 for t, p in pairs if t == c and p != c)
        fp = sum(1 for t, p in pairs if t != c and p == c)
        if tp + fn:
            per_class[c] = {"support": tp + fn, "f1": f1(tp, fp, fn), "recall": tp / (tp + fn)}
    n = len(pairs)
    uf1 = sum(v["f1"] for v in per_class.values()) / len(per_class) if per_class else 0.0
    uar = sum(v["recall"] for v in per_class.values()) / len(per_class) if per_class else 0.0
    acc = sum(1 for t, p in pairs if t == p) / n if n else 0.0
    return EmotionScores(uf1, uar, acc, n, per_class, confusion)
