"""Dataset builder on frame folders rendered in the CASME II layout from a real face with injected AUs.

The face is the astronaut photograph shipped with the demo source; `engine.synth` warps it with
FACS-driven micro-movements (2.5 px on a 200 px face) at the apex frame, so each clip's fused map
and region statistics carry the labelled motion. The builder runs as a real subprocess.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from engine.explain.parser import parse_answer
from tests.conftest import ROOT
from training.build_dataset import describe, frame_path, load_evidence, read_dataset
from training.records import AUCode, MERecord

# subject, clip, onset, apex, offset, AU field, emotion, injected AUs, side
CLIPS = [
    ("01", "EP02_01f", 46, 59, 86, "6+12", "happiness", (6, 12), "B"),
    ("01", "EP03_02", 131, 139, 161, "4+7", "disgust", (4, 7), "B"),
    ("02", "EP01_11f", 21, 35, 60, "1+2", "surprise", (1, 2), "B"),
    ("02", "EP05_03", 40, 52, 70, "L12", "happiness", (12,), "L"),
    ("03", "EP06_02", 10, 24, 41, "15+17", "repression", (15, 17), "B"),
    ("03", "EP07_01", 5, 17, 33, "4", "disgust", (4,), "B"),
]
MISSING = ("04", "EP09_01", 3, 9, 20, "14", "others")  # listed in the sheet, no frames on disk
HEADER = [
    "Subject",
    "Filename",
    "",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "",
    "Action Units",
    "Estimated Emotion",
]


def render_casme2(root: Path, sheet: Path) -> None:
    """Frames ROOT/subXX/CLIP/img<frame>.jpg (onset, apex, offset) and a 2019-style coding sheet."""
    from engine.sources.demo import astronaut_bgr, demo_landmarks
    from engine.synth import apply, displacement_field

    image, landmarks = astronaut_bgr(), demo_landmarks()
    with sheet.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for subject, clip, onset, apex, offset, au, emotion, inject, side in CLIPS:
            w.writerow([subject, clip, "", onset, apex, offset, "", au, emotion])
            folder = root / f"sub{subject}" / clip
            folder.mkdir(parents=True, exist_ok=True)
            field = displacement_field(landmarks, image.shape, inject, amplitude_px=2.5, side=side)
            for frame, weight in ((onset, 0.0), (apex, 1.0), (offset, 0.0)):
                out = apply(image, field, weight)
                cv2.imwrite(str(folder / f"img{frame}.jpg"), out, [cv2.IMWRITE_JPEG_QUALITY, 95])
        s, c, on, ap, off, au, em = MISSING
        w.writerow([s, c, "", on, ap, off, "", au, em])


def run_module(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def casme2_dataset(tmp_path_factory: pytest.TempPathFactory, face_model: Path) -> Path:
    """A dataset built by ``python -m training.build_dataset`` from rendered CASME II folders."""
    base = tmp_path_factory.mktemp("casme2")
    render_casme2(base / "frames", base / "sheet.csv")
    proc = run_module(
        "training.build_dataset",
        "--sheet",
        str(base / "sheet.csv"),
        "--frames",
        str(base / "frames"),
        "--out",
        str(base / "data"),
        "--flow",
        "farneback",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 of 7 clips written" in proc.stdout
    return base / "data"


@pytest.mark.slow
def test_build_dataset_when_casme2_layout_writes_chat_jsonl(casme2_dataset: Path) -> None:
    items = read_dataset(casme2_dataset)
    assert [it["record"]["clip"] for it in items] == [c[1] for c in CLIPS]
    for it, clip in zip(items, CLIPS, strict=True):
        user, assistant = it["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert user["content"][0] == {"type": "image", "image": it["image"]}
        assert "30 degree" in user["content"][1]["text"]  # the MELLM v1 prompt with its colour legend
        fused = cv2.imread(str(casme2_dataset / it["image"]))
        assert fused.shape == (256, 256, 3)  # the engine's aligned crop size
        # The answer reads back (engine parser) as the labels it was written from.
        parsed = parse_answer(assistant["content"][0]["text"])
        want = {(a, "L" if clip[8] == "L" else "B") for a in clip[7]}
        assert {(a.au, a.side) for a in parsed.aus} == want
        assert parsed.emotion == it["record"]["megc3"]
        assert parsed.emotion_detail == clip[6]


@pytest.mark.slow
def test_build_dataset_when_injected_motion_region_stats_follow_it(casme2_dataset: Path) -> None:
    """The fused map's region statistics see the injected AU where it was put, and its direction."""
    items = {it["record"]["clip"]: it for it in read_dataset(casme2_dataset)}

    def stat(clip: str, region: str) -> dict:
        return next(r for r in items[clip]["regions"] if r["name"] == region)

    for side in ("L", "R"):  # AU15+17: chin up (dy < 0), mouth corners down (dy > 0)
        assert stat("EP06_02", f"chin_{side}")["dy"] < -1.0
        assert stat("EP06_02", f"mouth_corner_{side}")["dy"] > 0.5
    # L12 (subject's left only): the left mouth corner moves up much more than the right one.
    assert -stat("EP05_03", "mouth_corner_L")["dy"] > 2 * abs(stat("EP05_03", "mouth_corner_R")["dy"])
    answer = items["EP06_02"]["messages"][1]["content"][0]["text"]
    assert "chin moves up" in answer


@pytest.mark.slow
def test_build_dataset_when_frames_missing_reports_sheet_line(casme2_dataset: Path) -> None:
    issues = [json.loads(x) for x in (casme2_dataset / "issues.jsonl").read_text().splitlines()]
    missing = [i for i in issues if i["id"] and "EP09_01" in i["id"]]
    assert len(missing) == 1 and missing[0]["line"] == len(CLIPS) + 2
    assert "frame not found" in missing[0]["message"] and missing[0]["source"].endswith("sheet.csv")
    summary = json.loads((casme2_dataset / "build.json").read_text())
    assert (summary["clips"], summary["written"], summary["left_out"]) == (7, 6, 1)


@pytest.mark.slow
def test_build_dataset_when_loso_splits(casme2_dataset: Path) -> None:
    folds = [json.loads(p.read_text()) for p in sorted((casme2_dataset / "splits").glob("*.json"))]
    assert [f["test_subject"] for f in folds] == ["casme2/01", "casme2/02", "casme2/03"]
    all_ids = {it["id"] for it in read_dataset(casme2_dataset)}
    for f in folds:
        assert set(f["train"]).isdisjoint(f["test"]) and set(f["train"]) | set(f["test"]) == all_ids
        assert {i.split("_")[1] for i in f["test"]} == {f["test_subject"].split("/")[1]}
    assert len(read_dataset(casme2_dataset, casme2_dataset / "splits" / "casme2_02.json", "train")) == 4


@pytest.mark.slow
def test_load_evidence_when_saved_rebuilds_what_the_explainer_sees(casme2_dataset: Path) -> None:
    it = read_dataset(casme2_dataset)[0]
    ev = load_evidence(it, casme2_dataset)
    assert ev.fused_map.shape == (256, 256, 3) and ev.flow.shape == (256, 256, 2)
    assert (
        ev.candidate.onset.frame == 46 and ev.candidate.apex.frame == 59 and ev.candidate.offset.frame == 86
    )
    assert [r.name for r in ev.regions] == [r["name"] for r in it["regions"]]
    assert ev.candidate.onset_face.crop.shape == (256, 256)
    # The stored flow (float16) still gives the stored region statistics.
    from engine.fusion import region_stats

    again = region_stats(ev.flow, ev.candidate.onset_face.crop_landmarks, ev.flow.shape)
    for a, b in zip(again, ev.regions, strict=True):
        assert abs(a.mean_mag - b.mean_mag) < 1e-2


def test_frame_path_when_layouts() -> None:
    r = MERecord("samm", "006", "006_1_2", 5562, 5588, 5632, 200.0, (), "anger", "negative", "s", 15)
    from training.build_dataset import FRAME_PATTERNS

    assert frame_path(r, 5562, "/d", FRAME_PATTERNS["samm"]) == Path("/d/006/006_1_2/006_05562.jpg")
    c = MERecord("casme2", "01", "EP02_01f", 46, 59, 86, 200.0, (), "happiness", "positive", "s", 2)
    assert frame_path(c, 46, "/d/", FRAME_PATTERNS["casme2"]) == Path("/d/sub01/EP02_01f/img46.jpg")
    assert frame_path(c, 7, "/x", "{root}/{clip}/{frame:04d}.png") == Path("/x/EP02_01f/0007.png")
    from engine.errors import UserError

    with pytest.raises(UserError, match="frame pattern"):
        frame_path(c, 7, "/x", "{root}/{nope}.png")


def test_describe_when_no_aus_or_smic_or_excluded_class() -> None:
    from engine.types import RegionStat

    still = [RegionStat("chin_L", 0.02, 0.05, 0.0, 0.1, 0.0, 0.0)]
    smic = MERecord("smic", "20", "s20_po_01", 1, 5, 9, 100.0, (), "positive", "positive", "s", 2)
    text = describe(smic, still)
    assert "no facial region moves clearly" in text and "no action unit was coded" in text
    assert text.endswith("AUs: none; Emotion: positive")
    sad = MERecord(
        "casme2", "01", "x", 1, 5, 9, 200.0, (AUCode(1), AUCode(4), AUCode(15)), "sadness", None, "s", 2
    )
    p = parse_answer(describe(sad, still))
    assert (p.emotion, p.emotion_detail, [a.au for a in p.aus]) == ("negative", "sadness", [1, 4, 15])
    other = MERecord("casme2", "01", "y", 1, 5, 9, 200.0, (AUCode(18),), "others", None, "s", 2)
    assert parse_answer(describe(other, still)).emotion == "others"
    moving = [RegionStat("mouth_corner_L", 1.2, 1.8, 270.0, 0.9, 0.0, -1.2), *still]
    assert "left mouth corner moves up (mean 1.20 px, max 1.80 px)" in describe(smic, moving)
