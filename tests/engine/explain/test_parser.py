"""The free-text parser on realistic model answers (English and Chinese) and on real FACS codings."""

from __future__ import annotations

import csv

import pytest

from engine.explain.parser import parse_answer, parse_aus, parse_emotion
from engine.facs import AU_NAMES
from tests.conftest import shared_path

MELLM_EN_DISGUST = """Step 1: Motion analysis. The inner ends of both brows are bright blue-green, \
moving down and towards each other, and the upper part of the left nose wing moves up (magenta). \
The mouth region is dark.
Step 2: Action units. The brow motion corresponds to AU4 (brow lowerer); the eyelids tighten slightly, \
possibly AU7 (lid tightener); the nose wing motion suggests L9 is not present, but AU 10 (upper lip raiser) \
on the left. There is no AU12, so the lip corners are not pulled.
Step 3: Emotion. AU4 with AU10 is typical of disgust rather than happiness.
AUs: AU4+AU7+AU10; Emotion: negative (disgust)"""

MELLM_ZH_REPRESSION = """第一步：运动分析。下巴区域亮度较高，颜色为蓝色，说明下巴向上运动；\
两侧嘴角颜色为绿色，轻微向下。眉毛区域较暗，没有明显运动。
第二步：动作单元。下巴向上对应AU17（下巴上扬），嘴角向下对应AU15（嘴角下压）。没有AU12（嘴角上扬）。
第三步：情绪判断。AU15+AU17的组合通常表示压抑，属于负性情绪，而不是高兴。
AU：AU15+AU17；情绪：负性（压抑）"""

MELLM_ZH_SURPRISE = "眉毛内侧上扬和眉毛外侧上扬同时出现，即AU1+AU2，上眼睑上提（AU5）。情绪类别为惊讶。"

MELLM_EN_HAPPY = (
    "The cheeks move up (AU6, cheek raiser) and the right lip corner is pulled up and outward: AU R12. "
    "The expression is therefore positive, most likely happiness."
)

# (answer, expected [(au, side)], expected emotion, expected detail)
CASES: list[tuple[str, list[tuple[int, str]], str, str]] = [
    ("AU4", [(4, "B")], "others", ""),
    ("AU 4", [(4, "B")], "others", ""),
    ("AU04 is visible", [(4, "B")], "others", ""),
    ("AU4+AU7", [(4, "B"), (7, "B")], "others", ""),
    ("AU 1+2", [(1, "B"), (2, "B")], "others", ""),
    ("AU12 (lip corner puller)", [(12, "B")], "others", ""),
    ("the brow lowerer is active", [(4, "B")], "others", ""),
    ("Action units: AU 4+L10, AU R14", [(4, "B"), (10, "L"), (14, "R")], "others", ""),
    ("AUs 4 and 7 fire together", [(4, "B"), (7, "B")], "others", ""),
    ("AU: 6, 12", [(6, "B"), (12, "B")], "others", ""),
    ("Action units: 4+7", [(4, "B"), (7, "B")], "others", ""),
    ("AU 6 and 12 frames later", [(6, "B")], "others", ""),
    ("AU1+2+4 together", [(1, "B"), (2, "B"), (4, "B")], "others", ""),
    ("AU4、AU7和AU9", [(4, "B"), (7, "B"), (9, "B")], "others", ""),
    ("眉毛运动对应AU1，嘴部对应AU25", [(1, "B"), (25, "B")], "others", ""),
    ("AU4, 3 frames before the apex", [(4, "B")], "others", ""),
    ("L12 and 14 moved by 3 px", [], "others", ""),
    ("not AU4", [], "others", ""),
    ("There is no AU12 or AU6 here.", [], "others", ""),
    ("AU9 (nose wrinkler) is absent; AU4 present", [(4, "B")], "others", ""),
    ("without brow lowerer", [], "others", ""),
    ("AU99 and AU 0", [], "others", ""),
    ("left AU2 only", [(2, "L")], "others", ""),
    ("AU12A on the right, AU12 left", [(12, "B")], "others", ""),
    ("the eyes squint and blink", [], "others", ""),
    ("Emotion: surprise", [], "surprise", "surprise"),
    ("Emotion: others", [], "others", "others"),
    ("The emotion is negative.", [], "negative", ""),
    ("This is not happiness but anger.", [], "negative", "anger"),
    ("a positive y direction", [], "others", ""),
    ("情绪：积极", [], "positive", ""),
    ("情绪为正性（高兴）", [], "positive", "happiness"),
    ("情绪：消极", [], "negative", ""),
    ("AU4（皱眉）说明厌恶", [(4, "B")], "negative", "disgust"),
    ("左侧嘴角上扬，可能是蔑视", [(12, "L")], "negative", "contempt"),
    ("没有AU12，情绪：恐惧", [], "negative", "fear"),
    ("悲伤", [], "negative", "sadness"),
    ("愤怒", [], "negative", "anger"),
    ("情绪类别：其他", [], "others", "others"),
    (MELLM_EN_DISGUST, [(4, "B"), (7, "B"), (10, "L")], "negative", "disgust"),
    (MELLM_ZH_REPRESSION, [(17, "B"), (15, "B")], "negative", "repression"),
    (MELLM_ZH_SURPRISE, [(1, "B"), (2, "B"), (5, "B")], "surprise", "surprise"),
    (MELLM_EN_HAPPY, [(6, "B"), (12, "R")], "positive", "happiness"),
]


@pytest.mark.parametrize(("text", "aus", "emotion", "detail"), CASES)
def test_parse_answer_when_given_a_realistic_answer(
    text: str, aus: list[tuple[int, str]], emotion: str, detail: str
) -> None:
    parsed = parse_answer(text)
    assert [(a.au, a.side) for a in parsed.aus] == aus
    assert (parsed.emotion, parsed.emotion_detail) == (emotion, detail)
    for a in parsed.aus:
        assert a.name == AU_NAMES[a.au]


def test_parse_aus_when_hedged_keeps_lower_confidence() -> None:
    conf = {a.au: a.confidence for a in parse_aus(MELLM_EN_DISGUST)}
    assert conf[4] == 1.0
    assert conf[7] == 1.0  # hedged, then restated plainly in the summary: the surer wins
    assert parse_aus("possibly AU7")[0].confidence < 1.0


def test_parse_emotion_when_label_and_prose_disagree_trusts_label() -> None:
    text = "AU4 can also appear in anger. Final emotion: disgust."
    assert parse_emotion(text) == ("negative", "disgust")


@pytest.mark.data
def test_parse_aus_when_given_every_casme2_coding() -> None:
    """Each real CASME II coding ("4+L10", "R12", "1+R2+25") read as an AU list gives its codes and sides."""
    sheet = shared_path("annotations", "casme2", "CASME2-coding-20190701.csv")
    with sheet.open(encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) > 200
    checked = 0
    for row in rows:
        code = row["Action Units"].strip()
        expected = []
        for part in code.split("+"):
            side = part[0] if part[0] in "LR" else "B"
            num = int(part.lstrip("LR"))
            if num in AU_NAMES:
                expected.append((num, side))
        got = [(a.au, a.side) for a in parse_aus(f"Action units: AU{code}")]
        assert got == expected, code
        checked += 1
    assert checked == len(rows)
