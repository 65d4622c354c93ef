"""Configuration of the flow and fusion stages."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FlowConfig(BaseModel):
    """The flow backend of the fused map (onset → apex)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field("opencv-tvl1", description="flow backend: opencv-tvl1, dis, farneback, ...")
    params: dict[str, Any] = Field(default_factory=dict, description="backend keyword parameters")


class FusionConfig(BaseModel):
    """The motion-enhanced colour map and region statistics."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    recipe: Literal["mellm", "calibrated"] = Field(
        "mellm",
        description="colour map: 'mellm' (published) or 'calibrated' (px scale, rigid head fit, legend)",
    )
    px_full_scale: float = Field(3.0, gt=0, description="calibrated: magnitude (crop px) at full brightness")
    legend: bool = Field(True, description="calibrated: append the direction/magnitude legend strip")
    nose_window: int = Field(11, ge=1, description="side of the nose-tip window whose mean flow is removed")
    png_level: int = Field(3, ge=0, le=9, description="PNG compression level of the published map")
    region_margin: float = Field(
        0.02, ge=0, le=0.2, description="dilation of each region's hull, as a fraction of the face size"
    )
    max_percentile: float = Field(
        95.0, gt=0, le=100, description="percentile of flow magnitude reported as a region's robust max"
    )
