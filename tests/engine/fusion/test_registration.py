"""One registration per candidate: the apex crop is re-warped into the onset's alignment, so the
tracker's landmark jitter between two frames does not become flow (issue #19, issue #24 point 1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.face.align import reregister_crop
from engine.fusion import region_masks
from engine.regions import REGIONS
from tests.conftest import shared_path
from tests.helpers import ROOT

STILL = ("brow_inner", "brow_outer", "eyelid_upper", "lip_upper", "lip_lower", "chin", "mouth_corner")


def test_reregister_crop_when_transforms_differ_equals_the_crop_made_with_the_target():
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 255, (300, 320), dtype=np.uint8), (0, 0), 3)
    a = np.float32([[1.0, 0.0, -20.0], [0.0, 1.0, -30.0]])
    t = np.deg2rad(1.5)
    b = np.float32([[np.cos(t), -np.sin(t), -18.7], [np.sin(t), np.cos(t), -31.2]]) * 1.01
    crop_b = cv2.warpAffine(image, b, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    crop_a = cv2.warpAffine(image, a, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    moved = reregister_crop(crop_b, b, a)
    inner = (slice(16, 240), slice(16, 240))
    assert np.abs(moved[inner].astype(int) - crop_a[inner]).mean() < 1.0
    assert np.abs(crop_b[inner].astype(int) - crop_a[inner]).mean() > 3.0  # the jitter was visible
    assert reregister_crop(crop_a, a, a) is crop_a


@pytest.fixture(scope="module")
def cheek_pair(face_model: Path) -> tuple[np.ndarray, np.ndarray]:
    """single_face.jpg and a copy in which only the two cheeks rise, 3 px of a 256-px aligned face."""
    from engine.config import EngineConfig
    from engine.explain_pair import track_pair

    image = cv2.imread(str(shared_path("images", "single_face.jpg")))
    face_cfg = EngineConfig().face.model_copy(update={"model": str(face_model)})
    face, _ = track_pair(image, image, face_cfg)
    px_per_crop_px = 1.0 / float(np.hypot(*face.transform[0, :2]))
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    up = np.zeros((h, w), np.float32)
    sigma = 12 * px_per_crop_px
    for side in ("L", "R"):
        cx, cy = face.landmarks[list(REGIONS[f"cheek_{side}"])].mean(axis=0)
        up += 3 * px_per_crop_px * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    apex = cv2.remap(image, xx, yy + up, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return image, apex


@pytest.mark.slow
def test_explain_pair_when_only_the_cheeks_move_keeps_still_regions_still_and_dark(cheek_pair, face_model):
    from engine.explain_pair import analyze_pair

    onset, apex = cheek_pair
    result = analyze_pair(onset, apex, face_model=face_model)
    ev = result.evidence
    mags = {r.name: r.mean_mag for r in ev.regions}
    for base in STILL:
        for side in ("L", "R"):
            assert mags[f"{base}_{side}"] < 0.2, (base, side, mags)
    assert min(mags["cheek_L"], mags["cheek_R"]) > 0.6
    # Dark in the map: the colour the map adds onto the grey onset is faint in the still regions
    # and strong on the cheeks.
    grey = ev.candidate.onset_face.crop
    added = (ev.fused_map.astype(int) - grey[..., None]).max(axis=2)
    masks = region_masks(ev.candidate.onset_face.crop_landmarks, grey.shape)
    for base in STILL:
        for side in ("L", "R"):
            assert np.percentile(added[masks[f"{base}_{side}"]], 90) < 40, (base, side)
    assert np.percentile(added[masks["cheek_L"] | masks["cheek_R"]], 90) > 60
    assert 6 in {a.au for a in result.explanation.aus}


def _explain_pair_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "engine.explain_pair", *args, "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env, check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.0, 2.0], ids=["same-file-twice", "sensor-noise"])
def test_explain_pair_cli_when_nothing_moved_reports_no_significant_movement(tmp_path, noise):
    import json

    image = shared_path("images", "single_face.jpg")
    if noise:
        rng = np.random.default_rng(24)
        img = cv2.imread(str(image)).astype(np.float32)
        paths = []
        for i in range(2):
            p = tmp_path / f"noisy{i}.png"
            cv2.imwrite(str(p), np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8))
            paths.append(str(p))
    else:
        paths = [str(image), str(image)]
    proc = _explain_pair_cli(*paths)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["aus"] == [] and out["emotion"] == "others"
    assert "no clear movement" in out["text"]
    assert max(r["mean_mag"] for r in out["regions"]) < 0.25  # the rules explainer's floor_px


@pytest.mark.slow
def test_explain_pair_cli_when_preprocess_is_mellm_v1_gives_the_released_map(
    tmp_path, cheek_pair, face_model
):
    """The released v1 preprocessing from the facts: full grey frames, OpenCV TV-L1 defaults, 11×11
    nose-tip mean removed (MediaPipe point 1 for the 68-point tip), nearest-bin map on the grey onset."""
    from engine.config import EngineConfig
    from engine.explain_pair import track_pair
    from tests.engine.fusion.test_fusion import _reference_v1_map

    onset, apex = cheek_pair
    paths = [tmp_path / "onset.png", tmp_path / "apex.png"]
    for p, img in zip(paths, (onset, apex), strict=True):
        cv2.imwrite(str(p), img)
    proc = _explain_pair_cli(*map(str, paths), "--preprocess", "mellm-v1", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    ours = cv2.imread(str(tmp_path / "out" / "fused_map.png"))
    assert ours.shape == onset.shape  # the full frame, not a crop
    face, _ = track_pair(onset, onset, EngineConfig().face.model_copy(update={"model": str(face_model)}))
    grey_o, grey_a = (cv2.cvtColor(i, cv2.COLOR_BGR2GRAY) for i in (onset, apex))
    flow = cv2.optflow.DualTVL1OpticalFlow_create().calc(grey_o, grey_a, None)
    ref = _reference_v1_map(grey_o, flow, tuple(face.landmarks[1]))
    np.testing.assert_array_equal(ours, ref)
    hue = cv2.cvtColor(ref - cv2.cvtColor(grey_o, cv2.COLOR_GRAY2BGR), cv2.COLOR_BGR2HSV)[..., 0]
    assert np.count_nonzero(hue) > 0  # the cheeks are coloured

