"""Explainers by name: ``engine.explain.create("rules")``.

``rules`` (FACS rules, offline default), ``vlm`` (transformers image-text model), ``llm``
(region-statistics prompt to a causal LM), ``openai`` (OpenAI-compatible server). Heavy ones import
torch/transformers only when created.
"""

from __future__ import annotations

from typing import Any

from engine.explain.base import Explainer
from engine.registry import Registry

EXPLAINERS: Registry[Explainer] = Registry("explainer")
EXPLAINERS.register("rules", "engine.explain.rules:RulesExplainer")
EXPLAINERS.register("vlm", "engine.explain.vlm:VLMExplainer")
EXPLAINERS.register("llm", "engine.explain.llm:LLMExplainer")
EXPLAINERS.register("openai", "engine.explain.openai_client:OpenAIExplainer")


def create(name: str, **params: Any) -> Explainer:
    """The explainer registered as ``name``, built with ``params`` (model, adapter, endpoint, ...)."""
    return EXPLAINERS.create(name, **params)


def names() -> list[str]:
    return EXPLAINERS.names()
