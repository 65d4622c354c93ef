"""Fusion: the MELLM motion-enhanced colour map and per-region motion statistics.

``build_evidence(candidate, backend, fusion_cfg)`` is the stage's entry point; ``mellm_map`` and
``region_stats`` are its two halves.
"""

from __future__ import annotations

from engine.fusion.evidence import build_evidence
from engine.fusion.mellm_map import direction_colour, encode_png, mellm_map, remove_head_motion
from engine.fusion.region_stats import region_masks, region_stats

__all__ = [
    "build_evidence",
    "direction_colour",
    "encode_png",
    "mellm_map",
    "region_masks",
    "region_stats",
    "remove_head_motion",
]
