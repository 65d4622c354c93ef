"""MEU metrics on hand-computed tables, and the evaluation command with the rules explainer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.test_training_dataset import CLIPS, casme2_dataset, run_module  # noqa: F401  (fixture)
from training.metrics import au_scores, emotion_scores

# truth, pred, (uf1, uar, accuracy, n): worked by hand.
EMOTION_TABLE = [
    # 2 classes present: positive F1 1, recall 1; negative tp1 fn1 → F1 2/3, recall 1/2.
    (
        ["positive", "negative", "negative", None],
        ["positive", "negative", "others", "surprise"],
        (5 / 6, 3 / 4, 2 / 3, 3),
    ),
    # all three classes: neg tp2 fp1 fn0 → 4/5; pos tp0 fp0 fn1 → 0; sur tp1 fp0 fn0 → 1.
    (
        ["negative", "negative", "positive", "surprise"],
        ["negative", "negative", "negative", "surprise"],
        ((4 / 5 + 0 + 1) / 3, (1 + 0 + 1) / 3, 3 / 4, 4),
    ),
    # nothing scorable
    ([None, None], ["positive", "others"], (0.0, 0.0, 0.0, 0)),
    # perfect
    (["surprise", "positive"], ["surprise", "positive"], (1.0, 1.0, 1.0, 2)),
]


@pytest.mark.parametrize(("truth", "pred", "want"), EMOTION_TABLE)
def test_emotion_scores_when_hand_computed(truth: list, pred: list, want: tuple) -> None:
    s = emotion_scores(truth, pred)
    assert (s.uf1, s.uar, s.accuracy, s.n) == pytest.approx(want)


def test_au_scores_when_hand_computed() -> None:
    truth = [{4}, {4, 7}, {12}, {1, 2}, set()]
    pred = [{4}, {4}, {12, 4}, {1}, {17}]
    s = au_scores(truth, pred)
    # AU4: tp2 fp1 fn0 → 4/5; AU7: fn1 → 0; AU12: 1; AU1: 1; AU2: fn1 → 0; AU17: fp only, no support.
    assert {a: round(v.f1, 4) for a, v in s.per_au.items()} == {
        1: 1.0,
        2: 0.0,
        4: 0.8,
        7: 0.0,
        12: 1.0,
        17: 0.0,
    }
    assert s.per_au[17].support == 0 and s.per_au[17].fp == 1
    assert s.mean_f1 == pytest.approx((1 + 0 + 0.8 + 0 + 1) / 5)
    assert au_scores(truth, pred, aus={4, 99}).mean_f1 == pytest.approx(0.8)
    with pytest.raises(ValueError, match="as many"):
        au_scores([{1}], [])


@pytest.mark.slow
def test_evaluate_cli_when_rules_explainer_over_loso(casme2_dataset: Path, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "res.json"
    proc = run_module(
        "training.evaluate",
        "--data",
        str(casme2_dataset),
        "--loso",
        "--explainer",
        "rules",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("explainer rules on ") and "(3 folds)" in lines[0]
    assert any(x.startswith("casme2 ") for x in lines) and any(x.startswith("LOSO mean") for x in lines)
    assert any(x.startswith("AU12  Lip Corner Puller") for x in lines)
    res = json.loads(out.read_text())
    assert sorted(res["folds"]) == ["casme2_01", "casme2_02", "casme2_03"]
    preds = res["predictions"]
    assert len(preds) == len(CLIPS) and res["pooled"]["n_3class"] == len(CLIPS)
    # The pooled numbers are the metric functions applied to the stored predictions.
    emo = emotion_scores([p["truth_megc3"] for p in preds], [p["pred_emotion"] for p in preds])
    assert res["pooled"]["uf1"] == pytest.approx(emo.uf1) and res["pooled"]["uar"] == pytest.approx(emo.uar)
    assert res["fold_mean"]["uf1"] == pytest.approx(sum(f["uf1"] for f in res["folds"].values()) / 3)
    # The rules explainer reads the stored region statistics: the AU15+17 clip (chin up, corners
    # down) must come out with AU17, and the L12 clip with AU12.
    by_id = {p["id"].split("_", 2)[2]: p for p in preds}
    assert 17 in by_id["EP06_02_10"]["pred_aus"] and 12 in by_id["EP05_03_40"]["pred_aus"]


def test_evaluate_cli_when_no_dataset_exits_2(tmp_path: Path) -> None:
    proc = run_module("training.evaluate", "--data", str(tmp_path), "--explainer", "rules")
    assert proc.returncode == 2 and "build the dataset first" in proc.stderr
