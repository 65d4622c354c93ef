"""Configuration of the explainer and its asynchronous worker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExplainConfig(BaseModel):
    """Which explainer, and how the worker queue behaves."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("rules", description="explainer: rules, vlm, llm, openai")
    model: str = Field("", description="local model folder (vlm, llm) or model name (openai)")
    adapter: str = Field("", description="LoRA adapter folder")
    endpoint: str = Field("", description="base URL of an OpenAI-compatible server")
    queue_size: int = Field(16, ge=1, description="candidates waiting for explanation")
    policy: Literal["drop_newest", "drop_oldest"] = Field("drop_oldest", description="full queue policy")
    deadline_s: float = Field(30.0, gt=0, description="a job older than this is dropped (reason timeout)")
    batch_size: int = Field(1, ge=1, description="explain up to this many waiting jobs at once")
    drain_s: float = Field(30.0, ge=0, description="at shutdown, finish waiting jobs for at most this long")
