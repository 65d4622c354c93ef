"""The flow + fusion stage: one candidate in, its `Evidence` out (flow, fused map, PNG, regions).

The explain worker calls it on its own thread for every candidate it takes (it may take ~0.5 s);
`build_stage` makes it from the configuration: the flow backend by name, the fusion recipe, and an
optional hook that receives each fused map (the clip recorder's side panel).

>>> stage = build_stage(FlowConfig(name="dis"), FusionConfig())  # doctest: +SKIP
>>> evidence = stage(candidate)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from engine.flow.base import FlowBackend
from engine.flow.config import FlowConfig
from engine.fusion.config import FusionConfig
from engine.fusion.evidence import build_evidence
from engine.types import Candidate, Evidence

MapHook = Callable[[str, np.ndarray], None]  # (candidate_id, fused map S×S×3 uint8 BGR)


class EvidenceStage(Protocol):
    """Candidate → `Evidence`; raising means no evidence for this candidate (the worker drops it)."""

    def __call__(self, candidate: Candidate) -> Evidence: ...


class FlowFusionStage:
    """Flow from the onset crop to the apex crop with ``backend``, then the fusion recipe of
    ``fusion`` (`engine.fusion.build_evidence`); ``on_map`` gets every fused map made."""

    name = "flow-fusion"

    def __init__(self, backend: FlowBackend, fusion: FusionConfig, on_map: MapHook | None = None) -> None:
        self.backend = backend
        self.fusion = fusion
        self.on_map = on_map

    def __call__(self, candidate: Candidate) -> Evidence:
        timed = _TimedFlow(self.backend)
        evidence = build_evidence(candidate, timed, self.fusion)
        if self.on_map is not None:
            self.on_map(candidate.candidate_id, evidence.fused_map)
        return dataclasses.replace(evidence, flow_ms=1000 * timed.seconds)


class _TimedFlow:
    """``backend`` with the seconds its calls took added up (``Evidence.flow_ms``: flow vs fusion)."""

    def __init__(self, backend: FlowBackend) -> None:
        self.backend = backend
        self.name = backend.name
        self.seconds = 0.0

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.backend.compute(prev, next)
        finally:
            self.seconds += time.perf_counter() - t0

    def compute_batch(self, prevs: Sequence[np.ndarray], nexts: Sequence[np.ndarray]) -> np.ndarray:
        t0 = time.perf_counter()
        try:
            return self.backend.compute_batch(prevs, nexts)
        finally:
            self.seconds += time.perf_counter() - t0


def build_stage(
    flow_cfg: FlowConfig, fusion_cfg: FusionConfig, on_map: MapHook | None = None
) -> FlowFusionStage:
    """The configured stage; an unknown flow name raises `engine.errors.UnknownNameError`."""
    from engine import flow

    return FlowFusionStage(flow.create(flow_cfg.name, **flow_cfg.params), fusion_cfg, on_map)
