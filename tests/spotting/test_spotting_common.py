"""spotting/common.py: the steps the region spotters share (input checks, baseline, candidate kind)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.types import FaceObservation
from spotting.bump import RegionBumpSpotter
from spotting.common import RegionSpotterBase
from spotting.config import SpottingConfig

SPOTTERS = [RegionBumpSpotter]


def _obs(
    index: int, t: float, crop: np.ndarray | None = None, lm: np.ndarray | None = None
) -> FaceObservation:
    rng = np.random.default_rng(index)
    crop = (rng.random((128, 128)) * 255).astype(np.uint8) if crop is None else crop
    lm = rng.uniform(30, 100, (478, 2)).astype(np.float32) if lm is None else lm
    return FaceObservation(index, t, lm, crop, np.eye(2, 3, dtype=np.float32), lm)


@pytest.mark.parametrize("cls", SPOTTERS)
def test_region_spotters_when_input_is_bad_raise_the_shared_errors(cls: type[RegionSpotterBase]) -> None:
    with pytest.raises(ValueError, match="frame rate > 0"):
        cls(SpottingConfig(), "s", 0.0)
    sp = cls(SpottingConfig(), "s", 30.0)
    assert isinstance(sp, RegionSpotterBase)
    with pytest.raises(ValueError, match=r"S×S uint8 grey face crop, got \(128, 100\) uint8"):
        sp.update(_obs(0, 0.0, crop=np.zeros((128, 100), np.uint8)))
    with pytest.raises(ValueError, match=r"478×2 crop landmarks, got \(68, 2\)"):
        sp.update(_obs(0, 0.0, lm=np.zeros((68, 2), np.float32)))
    assert sp.update(_obs(5, 0.2)) == []
    with pytest.raises(ValueError, match="frame 5 after 5"):
        sp.update(_obs(5, 0.2))
    sp.reset()  # a new face may restart the frame order
    assert sp.update(_obs(5, 0.2)) == [] and sp.flush() == []


@pytest.mark.parametrize(
    ("cls", "fps", "min_base", "stride"),
    [
        (RegionBumpSpotter, 30.0, 15, 1),
        (RegionBumpSpotter, 200.0, 100, 10),
    ],
)
def test_region_spotters_when_built_keep_their_own_baseline_settings(
    cls: type[RegionSpotterBase], fps: float, min_base: int, stride: int
) -> None:
    sp = cls(SpottingConfig(baseline_s=3.0), "s", fps)
    assert sp._min_base == min_base
    assert sp._stats._stride == stride and sp._eye_stats._stride == stride


@pytest.mark.parametrize("cls", SPOTTERS)
def test_region_spotter_candidate_when_duration_is_micro_max_then_micro(cls: type[RegionSpotterBase]) -> None:
    sp = cls(SpottingConfig(micro_max_s=0.5), "cam", 30.0)
    o, a, f = _obs(10, 1.0), _obs(15, 1.25), _obs(25, 1.5)
    cand = sp._candidate(o, a, f, 7.5, ("brow_inner_L",))
    assert (cand.stream, cand.kind, cand.score, cand.regions) == ("cam", "micro", 7.5, ("brow_inner_L",))
    assert (cand.onset.frame, cand.apex.frame, cand.offset.frame) == (10, 15, 25)
    assert cand.onset_face is o and cand.apex_face is a
    assert sp._candidate(o, a, _obs(26, 1.51), 7.5, ("chin_L",)).kind == "macro"
    assert sp._candidate(o, a, f, 1.0, ()).candidate_id != cand.candidate_id
