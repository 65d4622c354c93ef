"""Configuration of the spotting stage; every duration is in seconds so any frame rate works.

``[spotting]`` holds what every spotter and the spotting signal share; each spotter's own settings
live in its own section (``[spotting.bump]`` for ``region-bump``), so a misspelt key of any spotter
is a one-line error. How the defaults were chosen, with the measured figures: docs/spotting-tuning.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


# -- suppression of a calm face's own motion (spotting/suppress.py) ------------------------------------
class SuppressConfig(BaseModel):
    """``[spotting.suppress]``: the named suppressors that drop a judged candidate when a blink, speech,
    a head movement or a gaze shift explains it (`spotting.suppress`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = Field(
        False,
        description="drop candidates the suppressors explain; off by default: on the calm videos and the "
        "injection benchmark they drop injected events about as often as the face's own movements "
        "(configs/calm-interview.toml turns them on)",
    )
    use: list[Literal["blink", "speech", "head", "gaze"]] = Field(
        default_factory=lambda: ["blink", "speech", "head", "gaze"], description="the suppressors in use"
    )
    pad_s: float = Field(
        0.12, ge=0, description="a suppressor active this long before onset or after offset counts"
    )
    history_s: float = Field(8.0, gt=0, description="per-frame suppressor states kept for judging")
    baseline_s: float = Field(3.0, gt=0, description="rolling baseline of the blink signals")
    blink_rise: float = Field(
        0.25, gt=0, le=1, description="blink: min(eyeBlinkLeft, eyeBlinkRight) this far above its median"
    )
    blink_ratio: float = Field(
        0.75, gt=0, lt=1, description="blink: both lid apertures under this fraction of their median"
    )
    speech_window_s: float = Field(1.0, gt=0, description="speech: mouth opening watched over this window")
    speech_swing: float = Field(
        0.05,
        gt=0,
        description="speech: a swing of the mouth opening (inner-lip gap / eye distance + jawOpen)",
    )
    speech_swings: int = Field(2, ge=1, description="speech: this many swings in the window = talking")
    head_lag_s: float = Field(0.25, gt=0, description="head and gaze: change measured over this time")
    head_scale: float = Field(0.03, gt=0, description="head: change of log face scale (toward the camera)")
    head_roll_deg: float = Field(1.5, gt=0, description="head: change of in-plane rotation, degrees")
    head_shift: float = Field(0.03, gt=0, description="head: shift of the face centre, in face widths")
    head_turn: float = Field(
        0.04, gt=0, description="head: change of yaw / pitch (nose tip vs eyes), eye distances"
    )
    gaze_change: float = Field(0.3, gt=0, description="gaze: change of the eyeLook* gaze (h or v)")


# -- end of suppression ------------------------------------------------------------------------------


class BumpConfig(BaseModel):
    """``region-bump``: the per-region bump of residual motion against frames ``t ± lag``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    lag_s: float = Field(
        0.12,
        gt=0,
        description="frame t is compared with frames t - lag and t + lag: a movement shorter than about "
        "2 lags gives its whole displacement; detections come one lag late",
    )
    threshold_k: float = Field(
        6.0,
        gt=0,
        description="a region fires when its bump exceeds median + k * MAD of its own baseline; raise it "
        "for fewer false alarms, lower it to find smaller movements",
    )
    pair_gain: float = Field(
        2.0,
        ge=1,
        description="a region moving on both sides of the face at once fires at 1/gain of the threshold "
        "(1 = off)",
    )
    release_k: float = Field(
        3.0,
        gt=0,
        description="hysteresis: an interval lasts while a region stays above median + k * MAD (below "
        "threshold_k)",
    )
    frac: float = Field(
        0.3,
        gt=0,
        lt=0.5,
        description="onset/offset where the bump falls under this share of its peak (then widened by the "
        "raised-cosine share under it); lower gives longer intervals",
    )
    extend_onset: float = Field(
        0.33,
        ge=0,
        description="the reported onset moves this many lags earlier (frames t +- lag inside the movement "
        "hide its rise); 0 = the delineated onset",
    )
    extend_offset: float = Field(
        1.0,
        ge=0,
        description="the reported offset moves this many lags later (falls are longer than rises); "
        "0 = the delineated offset",
    )

    @model_validator(mode="after")
    def _check_hysteresis(self) -> BumpConfig:
        if self.release_k >= self.threshold_k:
            raise ValueError(f"release_k ({self.release_k}) must be below threshold_k ({self.threshold_k})")
        return self


class SpottingConfig(BaseModel):
    """The online spotter: which one, its motion signal, and the interval rules all spotters share."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field("region-bump", description="spotter implementation: region-bump")
    flow: str = Field(
        "",
        description="flow backend of the spotting signal by name (dis, farneback, torch-tvl1, ...); "
        "empty = the built-in DIS with dis_preset, dis_finest_scale and dis_patch_stride",
    )
    flow_params: dict[str, Any] = Field(
        default_factory=dict, description="keyword parameters of that backend (checked when it is built)"
    )
    dis_preset: Literal["ultrafast", "fast", "medium"] = Field(
        "ultrafast",
        description="OpenCV DIS preset of the built-in per-frame motion signal; slower presets cost more "
        "per frame (compare them with bench/spotting.py before changing it)",
    )
    dis_finest_scale: int = Field(
        0,
        ge=0,
        le=4,
        description="finest DIS pyramid level (0 = full signal resolution; 1 = half, cheaper but too "
        "coarse for 1-px motion)",
    )
    dis_patch_stride: int = Field(
        5,
        ge=0,
        le=8,
        description="DIS patch stride in pixels (0 = the preset's, 4 for ultrafast); larger is cheaper",
    )
    register_shift: bool = Field(
        True, description="cancel the global shift between frames (phase correlation) before the flow"
    )
    signal_size: int = Field(
        160,
        ge=32,
        le=512,
        description="side of the crop the spotting signal is computed on, pixels; larger sees smaller "
        "motion and costs more per frame",
    )
    baseline_s: float = Field(3.0, gt=0, description="rolling statistics window for the adaptive threshold")
    global_percentile: float = Field(
        30.0, ge=0, lt=100, description="this percentile of region scores is removed (face-wide motion)"
    )
    mad_floor_px: float = Field(
        0.01, gt=0, description="lower bound of the MAD (signal pixels): a noise-free crop is no hair-trigger"
    )
    min_duration_s: float = Field(
        0.15,
        ge=0,
        description="shortest interval reported; region-bump judges the span its bump delineates, which "
        "is shorter than the movement, so movements under ~0.2 s rarely pass (lower it to find them, at "
        "the cost of more of the face's own short movements)",
    )
    micro_max_s: float = Field(0.5, gt=0, description="onset-to-offset at most this is micro, else macro")
    max_duration_s: float = Field(4.0, gt=0, description="longer intervals are cut")
    merge_gap_s: float = Field(
        0.1, ge=0, description="detections closer than this are merged (also the offset hysteresis hold)"
    )
    warmup_s: float = Field(
        1.0, ge=0, description="no detection until this much face is seen after a restart"
    )
    blink_ratio: float = Field(
        0.6, gt=0, lt=1, description="an eye aperture below this fraction of its rolling median is a blink"
    )
    blink_blendshape_rise: float = Field(
        0.4, gt=0, le=1, description="eyeBlinkLeft/Right rising this much above its rolling median is a blink"
    )
    blink_spill: float = Field(
        0.4,
        ge=0,
        le=1,
        description="during a blink, regions under this fraction of the lids' peak are spill and ignored",
    )
    max_regions: int = Field(3, ge=1, description="at most this many region names reported per candidate")
    speech_window_s: float = Field(
        1.0, gt=0, description="mouth activity is measured over this window (talking is sustained)"
    )
    speech_fraction: float = Field(
        0.3, gt=0, le=1, description="mouth regions active in this share of the window = talking"
    )
    speech_gain: float = Field(
        2.0,
        ge=1,
        description="while talking, mouth regions cannot open an interval and need this times the threshold",
    )
    bump: BumpConfig = Field(default_factory=BumpConfig, description="the region-bump spotter's settings")
    suppress: SuppressConfig = Field(
        default_factory=SuppressConfig,
        description="region-bump: blink / speech / head / gaze suppressors ([spotting.suppress])",
    )

    @model_validator(mode="after")
    def _check_durations(self) -> SpottingConfig:
        if self.min_duration_s > self.max_duration_s:
            raise ValueError(
                f"min_duration_s ({self.min_duration_s}) must not exceed "
                f"max_duration_s ({self.max_duration_s})"
            )
        return self
