"""The parser on answers in the forms MELLM's released models are prompted for (v1: Chinese prose
ending in a conclusion that lists the AUs and the micro-expression; v3: a Qwen3 reply, thoughts
first, then a summary with the AUs and one of Negative / Positive / Surprise, English or Chinese).

The replies are written for these tests in those forms; they are not model outputs.
"""

from __future__ import annotations

import pytest

from engine.explain.parser import answer_part, parse_answer

V1_DISGUST = """视觉检查：眉头区域呈现明显的青色和蓝色，说明双侧眉头向左上和向左运动并向中间聚拢；\
鼻翼附近出现品红色，运动较弱；嘴角区域颜色很暗，几乎没有运动。排除整体头部运动后，主要的局部运动集中在眉部。
根据眉头下压并聚拢，推断出现AU4（皱眉）；鼻翼的轻微上提可能对应AU9（皱鼻），但亮度较低，证据不足。
表情推理：AU4单独出现或与AU7组合，常见于厌恶或压抑的微表情，结合眉部运动的强度，更接近厌恶。
最终结论：推断出的面部动作单元为AU4（皱眉）、AU7（眼睑收紧），最终推断的微表情为厌恶。"""

V1_HAPPY = """视觉检查：双侧嘴角呈现品红色和紫色，亮度较高，说明嘴角向右上和向上运动；脸颊区域呈淡紫色。
推断动作单元：嘴角上扬对应AU12，脸颊上提对应AU6。
表情推理：AU6与AU12的组合是典型的快乐表情。
最终结论：面部动作单元：AU6、AU12；微表情：高兴。"""

V3_EN_NEGATIVE = """<think>
The largest motions are at the inner eyebrows (down-left / down-right) and the lower eyelids. \
Inner brows moving down and together suggest AU4. The mouth corners barely move, so AU12 is unlikely. \
Could this be happiness? No.
</think>

### 1. ROI analysis
* **Left/Right Inner Eyebrow**: mean magnitude about 0.9 px, moving down and inward -> AU4 (Brow Lowerer).
* **Lower eyelids**: moving up slightly -> AU7 (Lid Tightener).
* **Left Nostril Wing**: small upward motion, likely noise; AU9 is not supported.

### 2. Reasoning
Brow lowering with lid tightening and no lip-corner movement points to a negative affect.

### 3. Summary
* **AUs:** AU4, AU7
* **Micro-expression:** Negative"""

V3_EN_SURPRISE = """</think>

### 1. ROI analysis
Both outer and inner eyebrows move up (up, 88 degrees) -> AU1 + AU2; the upper eyelids rise -> AU5.
### 2. Reasoning
Raised brows with widened eyes form the classic surprise pattern.
### 3. Summary
**AUs**: AU1+AU2+AU5
**Micro-expression**: Surprise"""

V3_ZH_POSITIVE = """<think>
嘴角向上运动幅度最大，脸颊也向上运动。
</think>

### 1. 区域分析
* 左右嘴角：平均幅度约1.8像素，方向为up-left和up-right，对应AU12（嘴角上扬）。
* 左右脸颊：向上运动，对应AU6（脸颊上提）。
* 眉部：没有明显运动，不需要分析。
### 2. 推理
嘴角上扬与脸颊上提同时出现，是积极情绪的典型模式，而不是厌恶。
### 3. 总结
**AU：** AU6、AU12
**微表情：** Positive（积极）"""


@pytest.mark.parametrize(
    ("reply", "aus", "emotion", "detail"),
    [
        (V1_DISGUST, [4, 7], "negative", "disgust"),
        (V1_HAPPY, [6, 12], "positive", "happiness"),
        (V3_EN_NEGATIVE, [4, 7], "negative", ""),
        (V3_EN_SURPRISE, [1, 2, 5], "surprise", "surprise"),
        (V3_ZH_POSITIVE, [6, 12], "positive", ""),
    ],
    ids=["v1-disgust", "v1-happiness", "v3-en-negative", "v3-en-surprise", "v3-zh-positive"],
)
def test_parse_answer_when_given_a_mellm_reply_reads_its_conclusion(
    reply: str, aus: list[int], emotion: str, detail: str
) -> None:
    parsed = parse_answer(reply)
    assert [a.au for a in parsed.aus] == aus
    assert (parsed.emotion, parsed.emotion_detail) == (emotion, detail)


def test_parse_answer_when_v1_analysis_weighs_an_au_it_drops_keeps_the_conclusions() -> None:
    # AU9 is discussed as weak evidence before the conclusion, which lists only AU4 and AU7.
    assert 9 not in [a.au for a in parse_answer(V1_DISGUST).aus]


def test_answer_part_when_reply_thinks_first_drops_the_thoughts() -> None:
    answer = answer_part(V3_EN_NEGATIVE)
    assert answer.lstrip().startswith("### 1. ROI analysis") and "<think>" not in answer
    assert answer_part("no thoughts here") == "no thoughts here"
    assert answer_part("<think>AU12</think>   ") == "<think>AU12</think>   "  # nothing after: keep all


def test_parse_answer_when_thoughts_name_another_emotion_trusts_the_answer() -> None:
    reply = "<think>Maybe happiness? AU12 could be there.</think>\nAUs: AU4\nMicro-expression: Negative"
    parsed = parse_answer(reply)
    assert [a.au for a in parsed.aus] == [4]
    assert (parsed.emotion, parsed.emotion_detail) == ("negative", "")
