"""Configuration of the spotting stage; every duration is in seconds so any frame rate works."""

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


class SpottingConfig(BaseModel):
    """The online sliding-window spotter (``region-motion``: per-region DIS flow on the aligned crop)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(
        "region-bump",
        description="spotter implementation: region-bump (default; micro-expressions) or region-motion "
        "(finds few injected micro-expressions: see spotting/region_motion.py)",
    )
    flow: str = Field(
        "",
        description="flow backend of the spotting signal by name (dis, farneback, torch-tvl1, ...); "
        "empty = the built-in DIS with dis_preset and dis_finest_scale",
    )
    flow_params: dict[str, Any] = Field(default_factory=dict, description="parameters of that backend")
    dis_preset: Literal["ultrafast", "fast", "medium"] = Field(
        "ultrafast",
        description="OpenCV DIS optical-flow preset of the per-frame motion signal; the slower presets "
        "are not better here: injected-benchmark F1 on seeds 12-41 (WolfgangLanger and single_face, "
        "OpenCV 5.0) 0.48 ultrafast, 0.42 fast, 0.42 medium",
    )
    dis_finest_scale: int = Field(
        0,
        ge=0,
        le=4,
        description="finest DIS pyramid level (0 = full signal resolution, ~1.3 ms at 160 px; 1 = half, "
        "~0.4 ms, too coarse for 1-px motion: injected-benchmark F1 0.17 instead of 0.25)",
    )
    dis_patch_stride: int = Field(
        5,
        ge=0,
        le=8,
        description="DIS patch stride in pixels (0 = the preset's, 4 for ultrafast): 5 costs ~0.95 ms "
        "instead of ~1.45 ms on a 128 px signal (~1.3 ms at 160 px) and scores best on the 160 px "
        "signal: injected-benchmark F1 on seeds 12-41 (WolfgangLanger and single_face, OpenCV 5.0) "
        "0.41 / 0.43 / 0.48 / 0.44 at strides 3 / 4 / 5 / 6, held-out seeds 3-11 0.38 / 0.39 / 0.42 / 0.39",
    )
    register_shift: bool = Field(
        True, description="cancel the global shift between frames (phase correlation) before the flow"
    )
    signal_size: int = Field(
        160,
        ge=32,
        le=512,
        description="crop side used for the spotting signal; 160 chosen on injected seeds 0-2 and 12-41 "
        "among 120-200 (F1 0.39 at 128, 0.44 at 160 with bump_threshold_k 6; ~210-225 instead of ~265 "
        "frames/s with landmark reuse)",
    )
    window_s: float = Field(
        0.5, gt=0, description="feature-difference window: motion is measured against window_s/2 earlier"
    )
    long_window_s: float = Field(
        1.0, gt=0, description="an open interval is judged by the statistics of motion over this distance"
    )
    baseline_s: float = Field(3.0, gt=0, description="rolling statistics window for the adaptive threshold")
    threshold_k: float = Field(
        8.0, gt=0, description="a region fires when its motion exceeds median + k * MAD of its own baseline"
    )
    release_k: float = Field(
        3.0, gt=0, description="hysteresis: an interval lasts while its regions stay above median + k * MAD"
    )
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
        "the cost of more of the face's own short movements: spotting/bump.py)",
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
        description="during a blink, regions under this fraction of the lids' peak are spill (region-bump: "
        "every region; region-motion: brows and cheeks)",
    )
    max_regions: int = Field(3, ge=1, description="at most this many region names reported per candidate")
    bump_lag_s: float = Field(
        0.12, gt=0, description="region-bump: frame t is compared with frames t - lag and t + lag (latency)"
    )
    bump_threshold_k: float = Field(
        6.0,
        gt=0,
        description="region-bump: a region fires when its bump exceeds median + k * MAD; 6 chosen on "
        "injected seeds 0-2 and 12-41 among 5-9",
    )
    bump_pair_gain: float = Field(
        2.0,
        ge=1,
        description="region-bump: a region moving on both sides fires at 1/gain of the threshold (1 = off)",
    )
    bump_release_k: float = Field(
        3.0, gt=0, description="region-bump: an interval lasts while a region stays above median + k * MAD"
    )
    bump_frac: float = Field(
        0.3,
        gt=0,
        lt=0.5,
        description="region-bump: onset/offset where the bump falls under this share of its peak "
        "(then widened by the raised-cosine share under it); chosen on injected seeds 0-2 among 0.15-0.4",
    )
    bump_extend_onset: float = Field(
        0.33,
        ge=0,
        description="region-bump: the onset moves this many lags earlier (the bump kernel cuts the rise: "
        "frames t +- lag inside the movement hide its edges); 0.33 and 0.67 tied on injected seeds 12-41 "
        "(0 and 1 worse), the smaller one does not overshoot rises shorter than the lag",
    )
    bump_extend_offset: float = Field(
        1.0,
        ge=0,
        description="region-bump: the offset moves this many lags later (falls are longer than rises, so "
        "the kernel cuts more of them); chosen on injected seeds 12-41 among 0.33-1.33",
    )
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
    suppress: SuppressConfig = Field(
        default_factory=SuppressConfig,
        description="region-bump: blink / speech / head / gaze suppressors ([spotting.suppress])",
    )

    @model_validator(mode="after")
    def _check_hysteresis(self) -> SpottingConfig:
        if self.release_k >= self.threshold_k:
            raise ValueError(f"release_k ({self.release_k}) must be below threshold_k ({self.threshold_k})")
        if self.bump_release_k >= self.bump_threshold_k:
            raise ValueError(
                f"bump_release_k ({self.bump_release_k}) must be below "
                f"bump_threshold_k ({self.bump_threshold_k})"
            )
        if self.min_duration_s > self.max_duration_s:
            raise ValueError(
                f"min_duration_s ({self.min_duration_s}) must not exceed "
                f"max_duration_s ({self.max_duration_s})"
            )
        return self
