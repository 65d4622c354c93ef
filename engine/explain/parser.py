"""Free text of a model (English or Chinese) → action units and emotion, without inventing any.

What counts as an action unit:

- a code tagged as one: ``AU4``, ``AU 4``, ``AU04``, ``AU4+AU7``, ``AU 1+2``, ``AUs 4 and 7``,
  ``AU: 4, 7``, ``AU L12`` / ``AU 4+R10`` (side prefixes of the CASME II / SAMM sheets),
  ``AU12A`` (FACS intensity letter), ``Action units: 4+7``, ``对应AU17``, ``动作单元4``; a bare
  number or ``L12`` outside such a list is not an AU;
- a FACS name, alone or beside the code: ``brow lowerer``, ``AU12 (lip corner puller)``,
  ``皱眉``, ``嘴角上扬`` (the recognised Chinese names are listed in `ZH_AU_NAMES`);
- only codes with a FACS name (`engine.facs.AU_NAMES`): ``AU99`` stays text.

A mention under negation in its clause ("no AU12", "not AU4", "without brow lowerer", "AU9 is
absent", "没有AU12") is not an AU, and "not happiness" is not an emotion. Hedged mentions
("possibly AU7", "可能AU7") keep a lower confidence. The side is the code's prefix, or the word
left/right (左/右) right before the mention; otherwise both ("B").

The emotion is taken from the answer's label ("Emotion: negative (disgust)", "情绪：负性（厌恶）",
"the emotion is ...") when there is one, else from the last emotion word in the text. The MEGC
class follows from the detail (`engine.facs.megc_class`) unless the text states the class
itself. Nothing said → ``others`` with an empty detail.

>>> a = parse_answer("Step 2: AU4 (brow lowerer) and L12, no AU9. Emotion: negative (disgust)")
>>> [(u.au, u.side) for u in a.aus], a.emotion, a.emotion_detail
([(4, 'B')], 'negative', 'disgust')
>>> [u.au for u in parse_answer("AU 1+2 raised; 情绪：惊讶").aus], parse_answer("情绪：惊讶").emotion
([1, 2], 'surprise')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.facs import AU_NAMES, au_name, megc_class
from engine.types import ActionUnit

HEDGED_CONFIDENCE = 0.5

# Chinese names of the action units as Chinese MLLM answers and the MEU literature write them.
ZH_AU_NAMES: dict[str, int] = {
    "眉毛内侧上扬": 1,
    "内侧眉毛上扬": 1,
    "眉头上扬": 1,
    "眉内角上扬": 1,
    "内眉上扬": 1,
    "抬眉头": 1,
    "眉毛外侧上扬": 2,
    "外侧眉毛上扬": 2,
    "眉尾上扬": 2,
    "外眉上扬": 2,
    "皱眉": 4,
    "眉毛下压": 4,
    "眉头下压": 4,
    "眉毛降低": 4,
    "降眉": 4,
    "眉头紧锁": 4,
    "上眼睑上扬": 5,
    "上眼睑提升": 5,
    "上睑提升": 5,
    "睁大眼睛": 5,
    "脸颊上扬": 6,
    "脸颊上提": 6,
    "面颊上提": 6,
    "颧部上提": 6,
    "眼睑收紧": 7,
    "眼睑紧缩": 7,
    "眼睑绷紧": 7,
    "皱鼻": 9,
    "鼻子皱起": 9,
    "鼻皱": 9,
    "上唇上扬": 10,
    "上唇提升": 10,
    "上唇上提": 10,
    "提上唇": 10,
    "嘴角上扬": 12,
    "嘴角上提": 12,
    "唇角上扬": 12,
    "嘴角拉伸": 12,
    "酒窝": 14,
    "嘴角收紧": 14,
    "酒窝加深": 14,
    "嘴角下压": 15,
    "嘴角下拉": 15,
    "嘴角下垂": 15,
    "唇角下压": 15,
    "下唇下压": 16,
    "下唇下拉": 16,
    "下巴上扬": 17,
    "下巴上抬": 17,
    "下巴抬起": 17,
    "下颌上提": 17,
    "下巴皱起": 17,
    "嘴唇撅起": 18,
    "噘嘴": 18,
    "嘴唇水平拉伸": 20,
    "嘴角水平拉伸": 20,
    "唇部拉伸": 20,
    "嘴唇收紧": 23,
    "嘴唇紧绷": 23,
    "嘴唇紧压": 24,
    "双唇紧压": 24,
    "抿嘴": 24,
    "嘴唇分开": 25,
    "双唇分开": 25,
    "下颌下降": 26,
    "下巴下降": 26,
    "张嘴": 26,
    "闭眼": 43,
}

# Emotion words → (kind, label): kind "class" is a MEGC 3-class word, "detail" a finer emotion.
_EMOTION_EN: tuple[tuple[str, str, str], ...] = (
    (r"happ(?:iness|y)|joy(?:ful)?", "detail", "happiness"),
    (r"disgust(?:ed)?", "detail", "disgust"),
    (r"repress(?:ion|ed)", "detail", "repression"),
    (r"sad(?:ness)?", "detail", "sadness"),
    (r"fear(?:ful)?|afraid|scared", "detail", "fear"),
    (r"ang(?:er|ry)", "detail", "anger"),
    (r"contempt(?:uous)?", "detail", "contempt"),
    (r"surprised?", "detail", "surprise"),
    (r"positive", "class", "positive"),
    (r"negative", "class", "negative"),
)
_EMOTION_ZH: tuple[tuple[str, str, str], ...] = (
    (r"高兴|快乐|开心|喜悦|愉悦|幸福", "detail", "happiness"),
    (r"厌恶|恶心|嫌恶", "detail", "disgust"),
    (r"压抑", "detail", "repression"),
    (r"悲伤|伤心|难过", "detail", "sadness"),
    (r"恐惧|害怕", "detail", "fear"),
    (r"愤怒|生气", "detail", "anger"),
    (r"蔑视|轻蔑|鄙视", "detail", "contempt"),
    (r"惊讶|惊奇|吃惊", "detail", "surprise"),
    (r"积极|正性|正面", "class", "positive"),
    (r"消极|负性|负面", "class", "negative"),
)
# "others" is an emotion only inside an emotion label ("Emotion: others"), not as a common word.
_OTHERS = re.compile(r"\bothers?\b|其他|其它", re.IGNORECASE)

_CODE = r"(?P<side{n}>[LRAB])?0?(?P<num{n}>\d{{1,2}})(?P<int{n}>[A-E])?(?!\d|\.\d)"
# No \b before AU: Chinese characters are word characters too ("对应AU17").
_AU_TAG = r"(?:(?<![A-Za-z0-9])AUs?|(?<![A-Za-z])action\s+units?|动作单元|运动单元)"
_SEP_ANY = r"\s*(?:\+|/|、)\s*"
_SEP_LIST = r"\s*(?:,|，|\band\b|\bor\b|和|与|及|或)\s*"
_ITEM = re.compile(r"(?P<side>[LRAB])?0?(?P<num>\d{1,2})(?P<int>[A-E])?(?!\d|\.\d)")
# An AU list: tag, then codes joined by +, /, 、 (and by comma/and/or when the next code is tagged
# again, or when the tag is plural / followed by a colon).
_LIST = re.compile(
    rf"(?P<tag>{_AU_TAG})(?P<colon>\s*[:：#]?)\s*(?P<first>[LRAB]?0?\d{{1,2}}[A-E]?(?!\d|\.\d))"
    rf"(?P<rest>(?:(?:{_SEP_ANY}|{_SEP_LIST}(?:{_AU_TAG}\s*)?)(?:{_AU_TAG}\s*)?[LRAB]?0?\d{{1,2}}[A-E]?(?!\d|\.\d))*)",
    re.IGNORECASE,
)
_REST_ITEM = re.compile(
    rf"(?P<sep>{_SEP_ANY}|{_SEP_LIST})(?P<tagged>{_AU_TAG}\s*)?(?P<code>[LRAB]?0?\d{{1,2}}[A-E]?(?!\d|\.\d))",
    re.IGNORECASE,
)

_CLAUSE_END = re.compile(
    r"[.;!?。；！？\n,，:：]|\b(?:but|however|whereas|while|although|though)\b|但|而是|然而"
)
_NEG_BEFORE = re.compile(
    r"\b(?:no|not|without|absent|absence\s+of|lack(?:s|ing)?(?:\s+of)?|neither|nor|rather\s+than|"
    r"instead\s+of|rul(?:e|es|ed)\s+out|exclud(?:e|es|ed|ing)|isn't|aren't|doesn't|don't|never)\b"
    r"|没有|并无|无|不是|并非|未见|未出现|未发现|未检测到|排除|不存在|而非|不属于",
    re.IGNORECASE,
)
# What may sit between a mention and what is said about it: a closing bracket (a name inside
# "AU9 (nose wrinkler)") and/or an aside in brackets ("AU9 (nose wrinkler) is absent").
_ASIDE = r"^\s*[)）]?\s*(?:\([^)]*\)|（[^）]*）)?\s*"
_NEG_AFTER = re.compile(
    rf"{_ASIDE}(?:is|are|was|were|seems?|appears?)?\s*"
    r"(?:absent|not\s+(?:present|active|visible|observed|seen|detected|involved|activated)|missing)\b"
    rf"|{_ASIDE}(?:未出现|不存在|没有出现|未见|未被激活)",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    r"\b(?:possibl[ey]|maybe|might|may|perhaps|likely|probabl[ey]|slight(?:ly)?|weak(?:ly)?|could)\b"
    r"|可能|或许|也许|似乎|轻微|微弱",
    re.IGNORECASE,
)
_SIDE_WORD = re.compile(r"(?:\b(?P<en>left|right)\s*(?:side\s*)?|(?P<zh>[左右])侧?)$", re.IGNORECASE)
_SIDE_AFTER = re.compile(
    rf"{_ASIDE}(?:\(|（)?\s*(?:on\s+the\s+)?(?P<en>left|right)\b(?:\s+side)?|{_ASIDE}(?:\(|（)?(?P<zh>[左右])侧",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"(?:\b(?:emotions?|emotional\s+(?:state|category|class)|emotion\s+(?:category|class|label)|"
    r"final\s+(?:answer|emotion)|classification)\b\s*(?:is|would\s+be|:|：|=|-)?"
    r"|情绪(?:类别|类型|分类)?\s*(?:为|是|:|：)|情感(?:类别|类型)?\s*(?:为|是|:|：)|(?:类别|分类)\s*(?:为|是|:|：)"
    # MELLM answers: "Micro-expression: Negative", "**Micro-expression**: Surprise", "微表情为厌恶".
    r"|\bmicro-?\s?expressions?(?:\s+(?:category|class|label))?\s*(?:\*\*)?\s*(?:is\b|:|：|=)"
    r"|微表情(?:类别|类型|分类)?\s*(?:\*\*)?\s*(?:为|是|:|：))",
    re.IGNORECASE,
)
# Where an answer states its conclusion (MELLM v1 "最终结论", v3 "Summarize the AUs ..."): the AUs
# listed after the last such heading are the answer; the analysis before it may weigh and drop some.
_CONCLUSION = re.compile(
    r"最终结论|结论|总结|\bsummar(?:y|i[sz]e[sd]?|i[sz]ing)\b|\bconclusions?\b|\bfinal\s+answer\b",
    re.IGNORECASE,
)
# Reasoning models (Qwen3, the LLM of MELLM v3) think first; the answer follows the last </think>.
_THINK_END = "</think>"
_NOT_EMOTION_AFTER = re.compile(
    r"^\s*(?:x|y|direction|value|number|sign|angle|axis|方向|值)\b", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """What `parse_answer` found: AUs in order of first mention, the MEGC class and the detail."""

    aus: tuple[ActionUnit, ...]
    emotion: str
    emotion_detail: str


@dataclass(slots=True)
class _Mention:
    au: int
    side: str
    confidence: float
    pos: int


def _clause_before(text: str, start: int) -> str:
    """Text of the clause that ends at ``start`` (from the last clause boundary)."""
    head = text[:start]
    last = 0
    for m in _CLAUSE_END.finditer(head):
        last = m.end()
    return head[last:]


def _clause_after(text: str, end: int) -> str:
    tail = text[end:]
    m = _CLAUSE_END.search(tail)
    return tail[: m.start()] if m else tail


def _negated(text: str, start: int, end: int) -> bool:
    return bool(_NEG_BEFORE.search(_clause_before(text, start))) or bool(
        _NEG_AFTER.search(_clause_after(text, end))
    )


def _hedged(text: str, start: int) -> bool:
    return bool(_HEDGE.search(_clause_before(text, start)))


def _side_near(text: str, start: int, end: int) -> str:
    """L/R from 'left'/'right'/左/右 right before the mention or in a short aside right after."""
    before = _SIDE_WORD.search(text[max(0, start - 12) : start])
    after = _SIDE_AFTER.search(text[end : end + 24])
    for m in (before, after):
        if m:
            word = (m.group("en") or m.group("zh") or "").lower()
            return "L" if word in ("left", "左") else "R"
    return "B"


def _code_side(prefix: str | None) -> str | None:
    """Side of a FACS code prefix: L, R; A (asymmetric) and B (bilateral) mean both."""
    if not prefix:
        return None
    return {"L": "L", "R": "R"}.get(prefix.upper(), "B")


def _tagged_mentions(text: str) -> list[_Mention]:
    """AUs written as codes after an AU tag (``AU4+L10``, ``AUs 4 and 7``)."""
    out: list[_Mention] = []
    for m in _LIST.finditer(text):
        tag = m.group("tag").lower()
        loose = bool(m.group("colon").strip()) or tag.endswith("s") or tag.startswith("action")
        codes = [(m.group("first"), m.start("first"), m.end("first"))]
        chained = True  # False once an untagged number was skipped: what follows must be tagged again
        for r in _REST_ITEM.finditer(m.group("rest")):
            sep_is_list = r.group("sep").strip() not in ("+", "/", "、")
            if not r.group("tagged") and ((sep_is_list and not loose) or not chained):
                chained = False  # "AU4, 3 frames later": a bare number after a comma is not an AU
                continue
            chained = True
            base = m.start("rest")
            codes.append((r.group("code"), base + r.start("code"), base + r.end("code")))
        if _negated(text, m.start(), codes[-1][2]):
            continue
        hedged = _hedged(text, m.start())
        for code, start, end in codes:
            c = _ITEM.fullmatch(code)
            if c is None:
                continue
            au = int(c.group("num"))
            if au not in AU_NAMES:
                continue
            side = _code_side(c.group("side")) or _side_near(
                text, m.start() if start == codes[0][1] else start, end
            )
            out.append(_Mention(au, side, HEDGED_CONFIDENCE if hedged else 1.0, start))
    return out


# One-word FACS names that are also plain description words ("the eyes squint"): only as codes.
_COMMON_WORD_AUS = frozenset({42, 44, 45, 46})


def _name_patterns() -> list[tuple[re.Pattern[str], int]]:
    pats: list[tuple[re.Pattern[str], int]] = []
    for au, name in AU_NAMES.items():
        if au in _COMMON_WORD_AUS:
            continue
        words = r"\s+".join(re.escape(w) for w in name.lower().split())
        pats.append((re.compile(rf"\b{words}s?\b", re.IGNORECASE), au))
    for name, au in ZH_AU_NAMES.items():
        pats.append((re.compile(re.escape(name)), au))
    return pats


_NAMES = _name_patterns()


def _name_mentions(text: str) -> list[_Mention]:
    out: list[_Mention] = []
    for pat, au in _NAMES:
        for m in pat.finditer(text):
            if _negated(text, m.start(), m.end()):
                continue
            conf = HEDGED_CONFIDENCE if _hedged(text, m.start()) else 1.0
            out.append(_Mention(au, _side_near(text, m.start(), m.end()), conf, m.start()))
    return out


def parse_aus(text: str) -> tuple[ActionUnit, ...]:
    """The action units ``text`` asserts, in order of first mention, one per AU number.

    A code mentioned on both sides (L and R) becomes B; the confidence is the highest of its mentions.
    """
    merged: dict[int, _Mention] = {}
    for m in sorted(_tagged_mentions(text) + _name_mentions(text), key=lambda m: m.pos):
        prev = merged.get(m.au)
        if prev is None:
            merged[m.au] = m
            continue
        if prev.side != m.side:
            # An explicit side beats an unmarked mention (the name beside "L12"); two sides make B.
            prev.side = m.side if prev.side == "B" else ("B" if m.side != "B" else prev.side)
        prev.confidence = max(prev.confidence, m.confidence)
    return tuple(ActionUnit(m.au, au_name(m.au), m.side, m.confidence) for m in merged.values())  # type: ignore[arg-type]


def _emotion_mentions(text: str, *, with_others: bool) -> list[tuple[int, str, str]]:
    """(position, kind, label) of each non-negated emotion word in ``text``."""
    found: list[tuple[int, str, str]] = []
    for table, boundary in ((_EMOTION_EN, True), (_EMOTION_ZH, False)):
        for pattern, kind, label in table:
            rx = re.compile(rf"\b(?:{pattern})\b" if boundary else pattern, re.IGNORECASE)
            for m in rx.finditer(text):
                if kind == "class" and _NOT_EMOTION_AFTER.search(text[m.end() :]):
                    continue
                if not _negated(text, m.start(), m.end()):
                    found.append((m.start(), kind, label))
    if with_others:
        found.extend(
            (m.start(), "detail", "others")
            for m in _OTHERS.finditer(text)
            if not _negated(text, m.start(), m.end())
        )
    return sorted(found)


def parse_emotion(text: str) -> tuple[str, str]:
    """(MEGC class, detail) that ``text`` concludes; ("others", "") when it names none.

    The last emotion label ("Emotion: ...", "情绪：...") decides; without a label, the last
    emotion word. A stated class wins over the class implied by the detail.
    """
    segment_mentions: list[tuple[int, str, str]] = []
    for m in _LABEL.finditer(text):
        seg_end = re.search(r"[.;!?。；！？\n]", text[m.end() :])
        segment = text[m.end() : m.end() + (seg_end.start() if seg_end else len(text))]
        mentions = _emotion_mentions(segment, with_others=True)
        if mentions:
            segment_mentions = mentions
    mentions = segment_mentions or _emotion_mentions(text, with_others=False)
    details = [label for _, kind, label in mentions if kind == "detail"]
    classes = [label for _, kind, label in mentions if kind == "class"]
    # Inside a label the first word is the answer ("negative (disgust)"); in free text the last.
    pick = 0 if segment_mentions else -1
    detail = details[pick] if details else ""
    if classes:
        return classes[pick], detail
    if detail:
        return megc_class(detail), detail
    return "others", ""


def answer_part(text: str) -> str:
    """``text`` after its last ``</think>`` (a reasoning model's thoughts are not its answer)."""
    _, sep, tail = text.rpartition(_THINK_END)
    return tail if sep and tail.strip() else text


def parse_answer(text: str) -> ParsedAnswer:
    """AUs and emotion of a model's free-text answer (English or Chinese).

    The AUs are those of the last conclusion section ("最终结论", "Summary", ...) when it lists any,
    else those of the whole answer.
    """
    text = answer_part(text)
    emotion, detail = parse_emotion(text)
    aus: tuple[ActionUnit, ...] = ()
    heads = list(_CONCLUSION.finditer(text))
    if heads:
        aus = parse_aus(text[heads[-1].start() :])
    return ParsedAnswer(aus or parse_aus(text), emotion, detail)
