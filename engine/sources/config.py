"""Configuration of the source stage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


class DemoConfig(BaseModel):
    """The synthetic `demo` stream: a real public-domain face with injected FACS micro-movements."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    duration_s: float = Field(20.0, gt=0, description="length of the demo stream in seconds")
    fps: float = Field(30.0, gt=0, description="frame rate of the demo stream")
    events: int = Field(6, ge=0, description="number of micro-movements injected")
    seed: int = Field(0, description="random seed: the same seed gives the same stream")
    noise: float = Field(2.0, ge=0, description="sensor noise, standard deviation in grey levels")
    head_motion_px: float = Field(1.5, ge=0, description="amplitude of the slow head sway in pixels")
    blinks_per_min: float = Field(12.0, ge=0, description="blink rate")
    size: int = Field(512, ge=128, description="width and height of the demo frames in pixels")
    print_truth: bool = Field(False, description="print the injected ground truth at start")
    realtime: bool = Field(
        True, description="play the demo at its frame rate, like a camera; false (--fast) runs it flat out"
    )
    truth_csv: str = Field("", description="write the ground truth here (CAS(ME)^2 long-video CSV layout)")
    amplitude_min_px: float = Field(1.0, gt=0, description="smallest event amplitude (px on a 200 px face)")
    amplitude_max_px: float = Field(3.0, gt=0, description="largest event amplitude (px on a 200 px face)")
    min_gap_s: float = Field(1.5, ge=0, description="least time between two injected events")


class SourceConfig(BaseModel):
    """Where frames come from and how the reader queue behaves."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    spec: str = Field("demo", description="camera index, rtsp/http URL, video file, frame folder, or 'demo'")
    stream: str = Field(
        "", description="stream name in topics and events; derived from the source when empty"
    )
    fps: float = Field(
        0.0, ge=0, description="frame rate; required for frame folders, overrides the container's"
    )
    queue_size: int = Field(64, ge=1, description="bounded queue between the reader thread and the pipeline")
    policy: Literal["auto", "drop_oldest", "block"] = Field(
        "auto", description="full queue: live sources drop the oldest frame, files block (never drop)"
    )
    max_frames: int = Field(0, ge=0, description="stop after this many frames (0 = no limit)")
    realtime: bool = Field(False, description="pace files and folders at their frame rate, like a camera")
    open_timeout_s: float = Field(10.0, gt=0, description="how long to wait for a camera or stream to open")
    read_timeout_s: float = Field(
        5.0, gt=0, description="an rtsp/http stream with no frame for this long is treated as dropped"
    )
    reconnect_interval_s: float = Field(
        0.5, gt=0, description="wait before the first reconnect attempt; doubles with every failed attempt"
    )
    reconnect_max_interval_s: float = Field(
        10.0, gt=0, description="cap of the wait between reconnect attempts (at least reconnect_interval_s)"
    )
    reconnect_attempts: int = Field(
        0, ge=0, description="failed reconnect attempts in a row before the stream is given up (0 = forever)"
    )

    @field_validator("reconnect_max_interval_s")
    @classmethod
    def _cap_not_below_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("reconnect_interval_s")
        if interval is not None and value < interval:
            raise ValueError(f"a number >= reconnect_interval_s ({interval:g})")
        return value
