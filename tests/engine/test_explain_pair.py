"""``analyze_pair`` / ``python -m engine.explain_pair`` on a real face with a synthetic brow lowering."""

from __future__ import annotations

# Fixtures are imported from tests.tiny_models, and pytest injects them by parameter name.
# ruff: noqa: F811
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import UserError
from engine.explain_pair import analyze_pair
from engine.regions import REGIONS
from tests.conftest import shared_path
from tests.helpers import ROOT
from tests.tiny_models import scripted_vlm  # noqa: F401

BROWS = ("brow_inner_L", "brow_inner_R", "brow_outer_L", "brow_outer_R")


@pytest.fixture(scope="module")
def brow_pair(tmp_path_factory: pytest.TempPathFactory, face_model: Path) -> tuple[Path, Path]:
    """The real face of single_face.jpg (onset) and the same face with both brows pushed down 3 px (apex)."""
    from engine.face import FaceConfig, create_tracker
    from engine.types import Frame

    onset = cv2.imread(str(shared_path("images", "single_face.jpg")))
    tracker = create_tracker(FaceConfig(model=str(face_model)))
    face = tracker.process(Frame(0, 0.0, onset))
    tracker.close()
    assert face is not None
    brow_idx = [i for name in BROWS for i in REGIONS[name]]
    brows = face.landmarks[brow_idx]
    centre = brows.mean(axis=0)
    span = float(np.ptp(brows[:, 0]))
    h, w = onset.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # A smooth bump around the brows: content moves down by up to 3 px (AU4's brow lowering).
    bump = 3.0 * np.exp(-(((xx - centre[0]) / (0.6 * span)) ** 2 + ((yy - centre[1]) / (0.15 * span)) ** 2))
    apex = cv2.remap(
        onset, xx, yy - bump.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    folder = tmp_path_factory.mktemp("pair")
    cv2.imwrite(str(folder / "onset.png"), onset)
    cv2.imwrite(str(folder / "apex.png"), apex)
    return folder / "onset.png", folder / "apex.png"


@pytest.mark.data
@pytest.mark.slow
def test_analyze_pair_when_brows_move_down_reports_brow_motion(
    brow_pair: tuple[Path, Path], face_model: Path
) -> None:
    result = analyze_pair(*brow_pair, explainer="rules", face_model=face_model)
    ev = result.evidence
    assert ev.fused_map.ndim == 3 and ev.fused_map.shape[2] == 3 and ev.fused_map.dtype == np.uint8
    assert cv2.imdecode(np.frombuffer(ev.png, np.uint8), cv2.IMREAD_COLOR).shape == ev.fused_map.shape
    strongest = max(ev.regions, key=lambda r: r.mean_mag)
    assert strongest.name.startswith("brow_"), [(r.name, round(r.mean_mag, 2)) for r in ev.regions]
    assert 45 <= strongest.direction_deg <= 135  # image y down: the brows moved down
    assert result.explanation.explainer == "rules"
    assert 4 in [a.au for a in result.explanation.aus]
    # Arrays in, same answer as paths in.
    arrays = analyze_pair(cv2.imread(str(brow_pair[0])), cv2.imread(str(brow_pair[1])), face_model=face_model)
    assert arrays.to_json()["aus"] == result.to_json()["aus"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "engine.explain_pair", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.data
@pytest.mark.slow
def test_explain_pair_cli_when_vlm_given_writes_map_and_prints_json(
    brow_pair: tuple[Path, Path], face_model: Path, scripted_vlm: Path, tmp_path: Path
) -> None:
    res = _run(
        *map(str, brow_pair),
        "--explainer",
        "vlm",
        "--model",
        str(scripted_vlm),
        "--out",
        str(tmp_path),
        "--json",
        "--face-model",
        str(face_model),
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["explainer"] == "vlm:scripted-qwen2vl"
    assert [a["au"] for a in out["aus"]] == [4] and out["emotion"] == "negative"
    assert {r["name"] for r in out["regions"]} >= set(BROWS)
    png = cv2.imread(str(tmp_path / "fused_map.png"))
    assert png is not None and png.shape[2] == 3
    assert json.loads((tmp_path / "explanation.json").read_text())["emotion_detail"] == "disgust"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing_onset.png", "missing_apex.png"), "does not exist"),
        (("{img}", "{img}", "--explainer", "nosuch"), "unknown explainer"),
        (("{img}", "{img}", "--explainer", "vlm", "--model", "/no/such/model"), "does not exist"),
    ],
)
def test_explain_pair_cli_when_input_is_wrong_exits_2_with_one_line(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    res = _run(*(str(img) if a == "{img}" else a for a in args))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_analyze_pair_when_image_has_no_face_raises_user_error(face_model: Path) -> None:
    blank = np.full((240, 320, 3), 127, np.uint8)
    with pytest.raises(UserError, match="no face found in the onset image"):
        analyze_pair(blank, blank, face_model=face_model)
