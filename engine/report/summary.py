"""The figures of a section: counts, rates, emotions, action units, latency, drops, suppressions, health."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.report.journal import Section, status_time

LATENCY_PERCENTILES = (50, 90, 95, 99)
TOP_AUS = 8
TOP_COMBOS = 6
#: Status figures shown as the run's health (contract fields first; absent ones are left out).
HEALTH_FIGURES = ("frames", "frames_dropped", "faces_lost", "reconnects", "resolution_changes",
                  "frames_invalid", "candidates")


def number(x: Any) -> float | None:
    """A finite float from an event field, else None (absent, text, bool, NaN)."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def suppressed_counters(status: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """Every numeric ``suppressed*`` figure of a status event, at any depth, as (dotted key, value)."""
    out: list[tuple[str, float]] = []
    for key, value in status.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "run":
            out.extend(suppressed_counters(value, name + "."))
        elif str(key).startswith("suppressed") and (v := number(value)) is not None:
            out.append((name, v))
    return out


@dataclass
class Summary:
    duration_s: float | None
    kinds: Counter[str]
    explained: int
    dropped: int
    open: int
    emotions: Counter[str]
    details: Counter[str]
    aus: list[tuple[str, int, float]]  # ("AU4 Brow Lowerer", count, mean confidence)
    combos: list[tuple[str, int]]
    latency: dict[str, float] = field(default_factory=dict)  # "p50" -> ms, "max", "n"
    drops: Counter[str] = field(default_factory=Counter)
    suppressed: list[tuple[str, float]] = field(default_factory=list)
    health: list[tuple[str, float]] = field(default_factory=list)
    errors: int = 0

    def per_minute(self, count: int) -> float | None:
        if not self.duration_s:
            return None
        return 60.0 * count / self.duration_s


def duration(sec: Section) -> float | None:
    """Stream seconds the section covers: from ``since`` (or 0) to ``until`` or the last frame seen."""
    ends = [t for s in sec.all_statuses if (t := status_time(s)) is not None]
    ends += [t for r in sec.candidates if not math.isnan(t := r.t("offset"))]
    if not ends:
        return None
    end = max(ends)
    if sec.until is not None:
        end = min(end, sec.until)
    start = sec.since or 0.0
    return end - start if end > start else None


def summarise(sec: Section) -> Summary:
    explanations = [r.outcome for r in sec.candidates if r.outcome and r.outcome.get("type") == "explanation"]
    drops = [r.outcome for r in sec.candidates if r.outcome and r.outcome.get("type") == "dropped"]
    au_conf: dict[tuple[int, str], list[float]] = {}
    combos: Counter[str] = Counter()
    for e in explanations:
        ids = []
        for a in e.get("aus") or []:
            if not isinstance(a, dict) or number(a.get("au")) is None:
                continue
            key = (int(a["au"]), f"AU{int(a['au'])} {a.get('name', '')}".strip())
            au_conf.setdefault(key, []).append(number(a.get("confidence")) or 0.0)
            ids.append(int(a["au"]))
        if ids:
            combos["+".join(f"AU{i}" for i in sorted(set(ids)))] += 1
    ranked = sorted(au_conf.items(), key=lambda kv: (-len(kv[1]), kv[0]))  # most frequent, then AU number
    aus = [(label, len(v), float(np.mean(v))) for (_, label), v in ranked]
    lat = [v for e in explanations if (v := number(e.get("latency_ms"))) is not None]
    latency: dict[str, float] = {}
    if lat:
        for q, v in zip(LATENCY_PERCENTILES, np.percentile(lat, LATENCY_PERCENTILES), strict=True):
            latency[f"p{q}"] = float(v)
        latency["max"] = float(max(lat))
        latency["n"] = float(len(lat))
    last = sec.all_statuses[-1] if sec.all_statuses else {}
    health = [(k, v) for k in HEALTH_FIGURES if (v := number(last.get(k))) is not None]
    return Summary(
        duration_s=duration(sec),
        kinds=Counter(str(r.event.get("kind", "?")) for r in sec.candidates),
        explained=len(explanations),
        dropped=len(drops),
        open=sum(1 for r in sec.candidates if r.outcome is None),
        emotions=Counter(str(e.get("emotion") or "?") for e in explanations),
        details=Counter(str(e.get("emotion_detail") or "?") for e in explanations),
        aus=aus[:TOP_AUS],
        combos=combos.most_common(TOP_COMBOS),
        latency=latency,
        drops=Counter(str(d.get("reason") or "?") for d in drops),
        suppressed=suppressed_counters(last),
        health=health,
        errors=len(sec.errors),
    )
