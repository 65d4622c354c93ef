"""Configuration of the optional exporters that run beside the stream."""

from __future__ import annotations

from pydantic import BaseModel, ByteSize, ConfigDict, Field


class ClipsConfig(BaseModel):
    """Event clips: an MP4 per candidate of the aligned face around the event, beside its fused map."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(False, description="write a clip per candidate (off by default)")
    dir: str = Field("clips", description="folder of the clips; the path is in the explanation event")
    pre_s: float = Field(0.5, ge=0, description="seconds before the onset")
    post_s: float = Field(0.5, ge=0, description="seconds after the offset")
    max_buffer_s: float = Field(6.0, gt=0, description="ring buffer of recent face crops; bounds memory")
    map_wait_s: float = Field(10.0, ge=0, description="how long the writer waits for the published map")
    max_age_days: float = Field(
        0.0, ge=0, description="delete clips older than this many days, oldest first (0 = keep forever)"
    )
    max_bytes: ByteSize = Field(
        ByteSize(0),
        ge=0,
        description='delete the oldest clips while the folder holds more, e.g. "2GiB" (0 = no limit)',
    )
