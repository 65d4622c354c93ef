"""From a spotted candidate to its evidence: flow, MELLM colour map, region statistics, PNG.

This is what the pipeline's flow worker calls once per candidate.
"""

from __future__ import annotations

from engine.face.align import registered_apex_crop
from engine.flow.base import FlowBackend
from engine.fusion.config import FusionConfig
from engine.fusion.mellm_map import encode_png
from engine.fusion.recipes import RECIPES
from engine.fusion.region_stats import region_stats
from engine.types import Candidate, Evidence


def build_evidence(candidate: Candidate, backend: FlowBackend, fusion_cfg: FusionConfig) -> Evidence:
    """Flow onset crop → apex crop with ``backend``, then the MELLM map and region statistics.

    One registration per candidate (`engine.face.align.registered_apex_crop`): the apex crop is
    re-warped into the onset's alignment, because aligning each frame with its own landmarks turns
    the tracker's jitter into coherent flow over the whole face. The head's own motion between the
    two frames is left to the recipe's head-motion step (nose window for ``mellm``). The nose tip
    and the region masks come from the onset face's crop landmarks, because the flow is defined on
    the onset frame's pixels. ``Evidence.flow`` is the flow with head motion removed.
    """
    onset, apex = candidate.onset_face, candidate.apex_face
    if onset.crop.shape != apex.crop.shape:
        raise ValueError(
            f"candidate {candidate.candidate_id}: expected onset and apex crops of one shape, "
            f"got {onset.crop.shape} and {apex.crop.shape}"
        )
    fuse = RECIPES.create(fusion_cfg.recipe, **fusion_cfg.recipe_params())
    apex_crop = registered_apex_crop(onset, apex)
    flow = backend.compute(onset.crop, apex_crop)
    fused, flow_nh = fuse(onset.crop, flow, onset.crop_landmarks)
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
