"""Configuration of the flow stage."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FlowConfig(BaseModel):
    """The flow backend of the fused map (onset → apex)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field("opencv-tvl1", description="flow backend: opencv-tvl1, dis, farneback, ...")
    params: dict[str, Any] = Field(default_factory=dict, description="backend keyword parameters")
