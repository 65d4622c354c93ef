"""From a spotted candidate to its evidence: flow, MELLM colour map, region statistics, PNG.

This is what the pipeline's flow worker calls once per candidate.
"""

from __future__ import annotations

from engine.face.regions import NOSE_TIP
from engine.flow.base import FlowBackend
from engine.flow.config import FusionConfig
from engine.fusion.calibrated import calibrated_map
from engine.fusion.mellm_map import encode_png, mellm_map
from engine.fusion.region_stats import region_stats
from engine.types import Candidate, Evidence


def build_evidence(candidate: Candidate, backend: FlowBackend, fusion_cfg: FusionConfig) -> Evidence:
    """Flow onset crop → apex crop with ``backend``, then the MELLM map and region statistics.

    The nose tip and the region masks come from the onset face's crop landmarks, because the flow
    is defined on the onset frame's pixels. ``Evidence.flow`` is the flow with head motion removed.
    """
    onset, apex = candidate.onset_face, candidate.apex_face
    if onset.crop.shape != apex.crop.shape:
        raise ValueError(
            f"candidate {candidate.candidate_id}: expected onset and apex crops of one shape, "
            f"got {onset.crop.shape} and {apex.crop.shape}"
        )
    flow = backend.compute(onset.crop, apex.crop)
    if fusion_cfg.recipe == "calibrated":
        fused, flow_nh = calibrated_map(
            onset.crop, flow, onset.crop_landmarks, fusion_cfg.px_full_scale, fusion_cfg.legend
        )
    else:
        fused, flow_nh = mellm_map(onset.crop, flow, onset.crop_landmarks[NOSE_TIP], fusion_cfg.nose_window)
    regions = region_stats(
        flow_nh,
        onset.crop_landmarks,
        onset.crop.shape,
        margin=fusion_cfg.region_margin,
        max_percentile=fusion_cfg.max_percentile,
    )
    return Evidence(
        candidate=candidate,
        flow=flow_nh,
        fused_map=fused,
        png=encode_png(fused, fusion_cfg.png_level),
        regions=regions,
    )
