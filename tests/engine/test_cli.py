"""The command line on bad input: exit 2 and one clear line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli


def _one_line_error(proc, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n in errors[0], errors[0]


def test_missing_file(tmp_path: Path) -> None:
    _one_line_error(run_cli("--source", str(tmp_path / "nope.mp4")), "nope.mp4")


def test_unknown_config_key() -> None:
    _one_line_error(
        run_cli("--source", "demo", "--set", "spotting.bump.treshold_k=3"),
        "spotting.bump.treshold_k",
        "allowed keys here: lag_s, threshold_k",
    )


def test_old_flat_config_key_names_its_new_place() -> None:
    _one_line_error(
        run_cli("--source", "demo", "--set", "spotting.bump_threshold_k=3"),
        "'spotting.bump_threshold_k' is now spotting.bump.threshold_k",
    )


def test_bad_config_value(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[explain]\npolicy = "whenever"\n')
    _one_line_error(run_cli("--config", str(cfg)), "explain.policy", "drop_oldest")


def test_non_video_file(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("this is not a video\n" * 50)
    _one_line_error(run_cli("--source", str(f)), "notes.txt")


def test_missing_face_model(tmp_path: Path) -> None:
    _one_line_error(run_cli("--source", "demo", "--face-model", str(tmp_path / "face.task")), "face.task")


def test_unknown_explainer() -> None:
    _one_line_error(run_cli("--source", "demo", "--explainer", "oracle"), "oracle", "rules")


def test_folder_without_fps(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    for i in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f"img{i}.jpg"), np.full((64, 64, 3), 128, np.uint8))
    _one_line_error(run_cli("--source", str(tmp_path)), "--fps")


@pytest.mark.parametrize("args", [["--fps", "fast"], ["--no-such-flag"]])
def test_bad_flags(args: list[str]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
