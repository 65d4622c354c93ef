"""The named suppressors (spotting/suppress.py): unit behaviour on synthetic cues, and on real calm and
posed faces through MediaPipe and the region-bump spotter (skipped without ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.types import Candidate, TimePoint
from spotting.config import SpottingConfig, SuppressConfig
from spotting.suppress import FaceCues, Suppression

FPS = 25.0


def cues(closed: float = 0.0, mouth: float = 0.1, pose: float = 0.0, gaze: float = 0.0) -> FaceCues:
    return FaceCues(
        closed,
        np.array([0.3, 0.3], np.float32),
        mouth,
        np.full(6, pose, np.float32),
        np.array([gaze, 0.0], np.float32),
    )


def candidate(onset: int, offset: int, *regions: str) -> Candidate:
    return Candidate(
        "c",
        "s",
        TimePoint(onset, 0),
        TimePoint(onset, 0),
        TimePoint(offset, 0),
        "micro",
        7.0,
        regions,
        None,
        None,  # type: ignore[arg-type]
    )


def run(frames: list[FaceCues], cfg: SuppressConfig | None = None) -> Suppression:
    s = Suppression(cfg or SuppressConfig(), FPS)
    for i, c in enumerate(frames):
        s.observe(i, c)
    return s


def test_suppression_when_both_eyes_close_then_a_lid_candidate_is_dropped_as_blink_and_the_chin_kept() -> (
    None
):
    frames = [cues(closed=0.9 if 60 <= i <= 65 else 0.05) for i in range(100)]
    s = run(frames)
    assert s.veto(candidate(58, 68, "eyelid_upper_L", "eyelid_upper_R")) == "blink"
    assert s.veto(candidate(58, 68, "chin_L")) is None
    assert s.veto(candidate(85, 95, "eyelid_upper_L")) is None  # far from the blink
    assert s.stats() == {
        "suppressed_blink": 1,
        "suppressed_speech": 0,
        "suppressed_head": 0,
        "suppressed_gaze": 0,
        "kept": 2,
    }
    assert list(s.vetoed) == [(58, 68, "blink")]


def test_suppression_when_talking_then_the_mouth_is_dropped_and_the_brows_kept() -> None:
    frames = [
        cues(mouth=0.1 + 0.2 * ((i // 3) % 2)) for i in range(100)
    ]  # opens and closes ~4 times a second
    s = run(frames)
    assert s.veto(candidate(80, 88, "lip_lower_L", "chin_L")) == "speech"
    assert s.veto(candidate(80, 88, "brow_inner_L", "brow_inner_R")) is None
    still = run([cues() for _ in range(100)])
    assert still.veto(candidate(80, 88, "lip_lower_L")) is None


def test_suppression_when_the_head_turns_then_any_region_is_dropped_nearby_only() -> None:
    frames = [cues(pose=0.2 if i >= 50 else 0.0) for i in range(100)]
    s = run(frames)
    assert s.veto(candidate(46, 54, "nose_wing_L")) == "head"
    assert s.veto(candidate(80, 88, "nose_wing_L")) is None


def test_suppression_when_disabled_or_not_in_use_then_nothing_is_dropped() -> None:
    frames = [cues(closed=0.9 if 60 <= i <= 65 else 0.05, pose=0.2 if i >= 62 else 0.0) for i in range(100)]
    assert run(frames, SuppressConfig(enabled=False)).veto(candidate(58, 68, "eyelid_upper_L")) is None
    assert (
        run(frames, SuppressConfig(use=["speech", "gaze"])).veto(candidate(58, 68, "eyelid_upper_L")) is None
    )


def test_spotting_config_when_suppress_section_given_then_nested_and_checked() -> None:
    cfg = SpottingConfig.model_validate({"suppress": {"blink_rise": 0.3, "use": ["blink"]}})
    assert cfg.suppress.blink_rise == 0.3 and cfg.suppress.use == ["blink"]
    with pytest.raises(ValueError, match="use"):
        SpottingConfig.model_validate({"suppress": {"use": ["sneeze"]}})
