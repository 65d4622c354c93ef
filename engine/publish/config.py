"""Configuration of the publish stage: the ZeroMQ publisher, the journal and the event clips."""

from __future__ import annotations

from pydantic import BaseModel, ByteSize, ConfigDict, Field


class PublishConfig(BaseModel):
    """The PUB socket, the journal and the status cadence."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    endpoint: str = Field("tcp://127.0.0.1:5556", description="ZeroMQ PUB bind address (loopback by default)")
    connect: bool = Field(
        False,
        description="connect to endpoint instead of binding it: the XSUB side of `python -m engine.proxy`",
    )
    curve_secret_key: str = Field(
        "", description="CURVE: the server's NAME.key_secret (python -m engine.keys generate); empty = off"
    )
    curve_allow_dir: str = Field(
        "", description="CURVE: folder of allowed clients' public NAME.key files (read at start)"
    )
    journal: str = Field("", description="append every event as a JSON line to this file")
    journal_max_bytes: int = Field(
        0, ge=0, description="rotate the journal to <file>.1, .2, ... before it exceeds this size (0 = never)"
    )
    journal_fsync_s: float = Field(
        2.0,
        ge=0,
        description="fsync the journal this many seconds after a write (0 = only at rotation and close)",
    )
    maps: bool = Field(True, description="send the fused map as a PNG third frame of candidate events")
    journal_maps: bool = Field(
        True, description="with a journal, also write each fused map as <stem>.maps/<candidate_id>.png"
    )
    status_interval_s: float = Field(2.0, gt=0, description="seconds between status events")
    sndhwm: int = Field(10000, ge=1, description="ZeroMQ send high-water mark (messages)")
    linger_ms: int = Field(2000, ge=0, description="ZeroMQ linger at close so queued events still leave")
    startup_wait_s: float = Field(0.3, ge=0, description="pause after bind so subscribers can connect")
    queue_size: int = Field(
        1000, ge=1, description="events waiting for the publisher thread before emit() blocks"
    )
    emit_timeout_s: float = Field(
        5.0,
        gt=0,
        description="seconds emit() blocks on a full queue before a candidate/status is counted lost"
    )
    send_timeout_ms: int = Field(
        100,
        ge=0,
        description="milliseconds a send waits for a subscriber at its high-water mark before it is refused",
    )


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
