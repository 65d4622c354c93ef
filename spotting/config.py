"""Configuration of the spotting stage; every duration is in seconds so any frame rate works."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SpottingConfig(BaseModel):
    """The online sliding-window spotter."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("region-motion", description="spotter implementation")
    flow: str = Field("dis", description="flow backend used for the per-frame motion signal")
    signal_size: int = Field(128, ge=32, description="crop side used for the spotting signal")
    window_s: float = Field(0.5, gt=0, description="feature-difference window (onset to apex at most)")
    baseline_s: float = Field(3.0, gt=0, description="rolling statistics window for the adaptive threshold")
    threshold_k: float = Field(4.0, gt=0, description="threshold = median + k * MAD of the rolling signal")
    min_duration_s: float = Field(0.04, ge=0, description="shortest interval reported")
    micro_max_s: float = Field(0.5, gt=0, description="onset-to-offset at most this is micro, else macro")
    max_duration_s: float = Field(4.0, gt=0, description="longer intervals are cut")
    merge_gap_s: float = Field(0.1, ge=0, description="detections closer than this are merged")
    warmup_s: float = Field(1.0, ge=0, description="no detection until this much face is seen after a restart")
