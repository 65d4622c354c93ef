"""The spotting plot command on a real face clip: truth bars, detection shading, and config overrides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import ROOT

GREEN = (44, 160, 44)  # BGR of matplotlib's tab:green: the ground-truth bars
SHADE = (195, 223, 255)  # BGR of tab:orange at alpha 0.25 over white: a micro detection's span


def _count(img: np.ndarray, bgr: tuple[int, int, int], tol: int = 4) -> int:
    return int((np.abs(img.astype(np.int16) - np.array(bgr, np.int16)).max(axis=2) <= tol).sum())


@pytest.mark.slow
def test_plot_when_demo_clip_then_truth_and_detections_drawn_and_set_overrides_the_config(
    tmp_path: Path, face_model: Path
) -> None:
    from engine.sources.demo import DemoSource
    from engine.synth import write_truth_csv

    src = DemoSource(duration_s=7.0, events=2, seed=3, size=320, blinks_per_min=0, min_gap_s=1.0)
    folder = tmp_path / "frames"
    folder.mkdir()
    for f in src.frames():
        cv2.imwrite(str(folder / f"img{f.index:04d}.jpg"), f.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    truth = tmp_path / "truth.csv"
    write_truth_csv(str(truth), src.truth, clip="demo", video="demo")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def plot(name: str, *extra: str) -> tuple[np.ndarray, str]:
        out = tmp_path / name
        argv = ["-m", "evaluation.plot", "--video", str(folder), "--fps", "30", "--truth", str(truth)]
        proc = subprocess.run(
            [sys.executable, *argv, "--out", str(out), *extra],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        img = cv2.imread(str(out))
        assert img is not None and img.shape == (900, 1080, 3)  # 12 x 10 in at 90 dpi
        return img, proc.stdout

    img, said = plot("default.png")
    assert _count(img, GREEN) > 100  # both truth bars, on every region group's row
    assert _count(img, SHADE) > 1000 and not said.startswith(f"{tmp_path / 'default.png'}: 0 detections")
    silent, said = plot("silent.png", "--set", "spotting.bump.threshold_k=1000")
    assert "0 detections" in said and _count(silent, SHADE) < 50  # a few antialiased line pixels
    assert _count(silent, GREEN) > 100
