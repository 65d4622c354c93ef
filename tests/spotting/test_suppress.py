"""The named suppressors (spotting/suppress.py): unit behaviour on synthetic cues, and on real calm and
posed faces through MediaPipe and the region-bump spotter (skipped without ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.types import Candidate, TimePoint
from spotting.config import SpottingConfig, SuppressConfig
from spotting.suppress import FaceCues, Suppression
from tests.conftest import shared_path

FPS = 25.0
ON = SuppressConfig(enabled=True)  # the suppressors are off by default (they cost recall)


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
    s = Suppression(cfg or ON, FPS)
    for i, c in enumerate(frames):
        s.observe(i, c)
    return s


def test_suppression_when_both_eyes_close_then_candidates_nearby_are_dropped_as_blink() -> None:
    frames = [cues(closed=0.9 if 60 <= i <= 65 else 0.05) for i in range(100)]
    s = run(frames)
    assert s.veto(candidate(58, 68, "eyelid_upper_L", "eyelid_upper_R")) == "blink"
    assert s.veto(candidate(58, 68, "chin_L")) == "blink"  # the blink's spill through the head-motion fit
    assert s.veto(candidate(85, 95, "eyelid_upper_L")) is None  # far from the blink
    assert s.stats() == {
        "suppressed_blink": 2,
        "suppressed_speech": 0,
        "suppressed_head": 0,
        "suppressed_gaze": 0,
        "kept": 1,
    }
    assert list(s.vetoed) == [(58, 68, "blink"), (58, 68, "blink")]


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
        run(frames, SuppressConfig(enabled=True, use=["speech", "gaze"])).veto(
            candidate(58, 68, "eyelid_upper_L")
        )
        is None
    )


def test_spotting_config_when_suppress_section_given_then_nested_and_checked() -> None:
    cfg = SpottingConfig.model_validate({"suppress": {"blink_rise": 0.3, "use": ["blink"]}})
    assert cfg.suppress.blink_rise == 0.3 and cfg.suppress.use == ["blink"]
    with pytest.raises(ValueError, match="use"):
        SpottingConfig.model_validate({"suppress": {"use": ["sneeze"]}})


# -- real faces: MediaPipe and the region-bump spotter on ../shared/data/videos ---------------------------
def track(path: object, stop_s: float = float("inf")) -> tuple[list[object], float]:
    """The observations (None where no face) of a video up to ``stop_s`` and its nominal rate."""
    from engine.face import create_tracker
    from engine.face.config import FaceConfig
    from engine.sources import open_source
    from engine.sources.config import SourceConfig

    src = open_source(SourceConfig(spec=str(path)))
    tracker = create_tracker(FaceConfig())
    try:
        frames = [f for f in src.frames() if f.t < stop_s]
        fps = float(getattr(src, "fps", 0.0) or 30.0)
        return [tracker.process(f) for f in frames], fps
    finally:
        tracker.close()
        src.close()


def spot(
    observations: list[object], fps: float, cfg: SpottingConfig | None = None
) -> tuple[list[Candidate], object]:
    """Candidates of the default region-bump spotter on tracked observations, and the spotter."""
    from spotting import create_spotter

    spotter = create_spotter(cfg or SpottingConfig(), "test", fps)
    out: list[Candidate] = []
    for obs in observations:
        out += spotter.update(obs) if obs is not None else spotter.flush()
    return out + spotter.flush(), spotter


CALM = ("videos", "calm")


@pytest.mark.slow
def test_calm_face_when_the_eyes_blink_then_the_candidate_is_suppressed_and_counted_as_blink() -> None:
    """The first 32 s of talking_face_franck.webm (a 170-px face, blinking now and then): with the
    suppressors on, candidates are dropped as ``blink`` where MediaPipe sees both eyes close, and the
    spotter without them reports a candidate there."""
    observations, fps = track(shared_path(*CALM, "talking_face_franck.webm"), stop_s=32.0)
    plain, _ = spot(observations, fps)
    kept, spotter = spot(observations, fps, SpottingConfig(suppress=ON))
    blinks = [(on, off) for on, off, why in spotter.suppression.vetoed if why == "blink"]  # type: ignore[attr-defined]
    assert blinks and spotter.stats()["suppressed_blink"] == len(blinks)  # type: ignore[attr-defined]
    assert len(kept) < len(plain)
    by_index = {o.index: o for o in observations if o is not None}  # type: ignore[attr-defined]
    for on, off in blinks:
        assert any(c.onset.frame <= off and c.offset.frame >= on for c in plain)
        assert not any(c.onset.frame <= off and c.offset.frame >= on for c in kept)
        closed = [
            min(by_index[i].blendshapes["eyeBlinkLeft"], by_index[i].blendshapes["eyeBlinkRight"])  # type: ignore[attr-defined]
            for i in range(on - 3, off + 4)
            if i in by_index
        ]
        assert max(closed) >= 0.3  # both eyes really closed around it
