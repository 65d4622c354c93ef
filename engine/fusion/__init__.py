"""Fusion: the MELLM motion-enhanced colour map and per-region motion statistics.

``build_stage(flow_cfg, fusion_cfg, on_map)`` makes the stage (`EvidenceStage`: candidate → `Evidence`)
the explain worker calls; ``build_evidence`` is its body, ``mellm_map`` and ``region_stats`` its two halves.
"""

from __future__ import annotations

from engine.fusion.evidence import build_evidence
from engine.fusion.mellm_map import direction_colour, encode_png, mellm_map, remove_head_motion
from engine.fusion.region_stats import region_masks, region_stats
from engine.fusion.stage import EvidenceStage, FlowFusionStage, build_stage

__all__ = [
    "EvidenceStage",
    "FlowFusionStage",
    "build_evidence",
    "build_stage",
    "direction_colour",
    "encode_png",
    "mellm_map",
    "region_masks",
    "region_stats",
    "remove_head_motion",
]
