"""The one FACS table: AU names, what each AU moves, emotion patterns, MEGC classes.

Used by the explainers (`classify`, `au_name`), the synthetic-event warper (`engine.synth`: `AU_MOVES`,
`DISPLAYS`) and the dataset builder, so all of them read the same facts. Sources (see ../shared/FACS.md):
the AU names are the FACS manual's (Ekman, Friesen & Hager 2002); the motions are FACS.md's "What each
action unit moves"; the emotion patterns are the EMFACS prototypes and the objective classes of
Davison et al. (as reproduced in Merghani, Davison & Yap, arXiv 1805.02397, Table 9), plus the AU
codings that the CASME II sheet gives its ``repression`` samples (17, 15, 15+17, 12+15: the one
emotion neither table names). The 3-class mapping is the MEGC 2019 composite one.

`classify` picks the emotion whose pattern the detected AUs explain best and says why:

>>> m = classify({6: "B", 12: "B"})
>>> (m.detail, m.emotion, sorted(m.pattern.aus))
('happiness', 'positive', [6, 12])
>>> classify({}).emotion
'others'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from engine.types import Side

# FACS 2002 names of the main codes; the parsers, the rules explainer and the dataset builder use them.
AU_NAMES: dict[int, str] = {
    1: "Inner Brow Raiser",
    2: "Outer Brow Raiser",
    4: "Brow Lowerer",
    5: "Upper Lid Raiser",
    6: "Cheek Raiser",
    7: "Lid Tightener",
    8: "Lips Toward Each Other",
    9: "Nose Wrinkler",
    10: "Upper Lip Raiser",
    11: "Nasolabial Deepener",
    12: "Lip Corner Puller",
    13: "Sharp Lip Puller",
    14: "Dimpler",
    15: "Lip Corner Depressor",
    16: "Lower Lip Depressor",
    17: "Chin Raiser",
    18: "Lip Pucker",
    20: "Lip Stretcher",
    22: "Lip Funneler",
    23: "Lip Tightener",
    24: "Lip Pressor",
    25: "Lips Part",
    26: "Jaw Drop",
    27: "Mouth Stretch",
    28: "Lip Suck",
    29: "Jaw Thrust",
    30: "Jaw Sideways",
    31: "Jaw Clencher",
    32: "Lip Bite",
    33: "Cheek Blow",
    34: "Cheek Puff",
    35: "Cheek Suck",
    36: "Tongue Bulge",
    37: "Lip Wipe",
    38: "Nostril Dilator",
    39: "Nostril Compressor",
    41: "Lid Droop",
    42: "Slit",
    43: "Eyes Closed",
    44: "Squint",
    45: "Blink",
    46: "Wink",
}


@dataclass(frozen=True, slots=True)
class RegionMove:
    """One region's motion under an AU, in face axes: ``outward`` (away from the face's midline,
    negative = toward it) and ``up`` (toward the forehead); ``gain`` scales the AU's amplitude."""

    region: str  # region base name of `engine.regions`, e.g. "mouth_corner"
    outward: float
    up: float
    gain: float = 1.0


# AU → regions it moves and how (FACS.md, "What each action unit moves"): what `engine.synth` warps a
# face by. Directions are unit vectors in (outward, up); gains < 1 for the secondary regions an AU drags.
AU_MOVES: dict[int, tuple[RegionMove, ...]] = {
    1: (RegionMove("brow_inner", 0.0, 1.0),),  # inner brows up
    2: (RegionMove("brow_outer", 0.0, 1.0),),  # outer brows up
    4: (  # brows down and together
        RegionMove("brow_inner", -0.6, -0.8),
        RegionMove("brow_outer", -0.3, -0.95, 0.6),
    ),
    5: (RegionMove("eyelid_upper", 0.0, 1.0, 0.7),),  # upper lid up
    6: (  # cheeks and the skin below the eye up
        RegionMove("cheek", 0.0, 1.0),
        RegionMove("eyelid_lower", 0.0, 1.0, 0.5),
    ),
    7: (RegionMove("eyelid_lower", -0.3, 0.95, 0.8),),  # lower lid up and in
    9: (  # nose wings up (inner brows may be pulled down a little)
        RegionMove("nose_wing", 0.0, 1.0),
        RegionMove("brow_inner", 0.0, -1.0, 0.3),
    ),
    10: (RegionMove("lip_upper", 0.0, 1.0),),  # upper lip up
    12: (  # lip corners up and outward (cheeks follow)
        RegionMove("mouth_corner", 0.7071, 0.7071),
        RegionMove("cheek", 0.3, 0.95, 0.35),
    ),
    14: (RegionMove("mouth_corner", -1.0, 0.0),),  # corners pulled inward (dimple)
    15: (RegionMove("mouth_corner", 0.2, -0.98),),  # corners down
    17: (  # chin boss and lower lip pushed up
        RegionMove("chin", 0.0, 1.0),
        RegionMove("lip_lower", 0.0, 1.0, 0.6),
    ),
    20: (RegionMove("mouth_corner", 1.0, -0.1),),  # corners stretched sideways
    23: (  # lips narrowed and tightened
        RegionMove("mouth_corner", -1.0, 0.0, 0.6),
        RegionMove("lip_upper", 0.0, -1.0, 0.4),
        RegionMove("lip_lower", 0.0, 1.0, 0.4),
    ),
    24: (  # lips pressed together, lower lip up
        RegionMove("lip_lower", 0.0, 1.0),
        RegionMove("lip_upper", 0.0, -1.0, 0.5),
    ),
    25: (  # lips part
        RegionMove("lip_lower", 0.0, -1.0),
        RegionMove("lip_upper", 0.0, 1.0, 0.4),
    ),
    26: (  # jaw drops
        RegionMove("chin", 0.0, -1.0),
        RegionMove("lip_lower", 0.0, -1.0, 0.8),
    ),
}
BLINK_AU = 45  # eyelids close and open (a distractor for spotting; `engine.synth.blink_field` warps it)
SUPPORTED_AUS: tuple[int, ...] = (*sorted(AU_MOVES), BLINK_AU)  # the AUs `engine.synth` can warp

DETAILS: tuple[str, ...] = (
    "happiness",
    "disgust",
    "repression",
    "sadness",
    "fear",
    "anger",
    "contempt",
    "surprise",
    "others",
)

# MEGC 2019 composite classes (CASME II + SAMM rows of FACS.md; CAS(ME)^3 adds fear and sadness
# to negative). Anything not listed is ``others``.
MEGC_CLASS: dict[str, str] = {
    "happiness": "positive",
    "surprise": "surprise",
    "disgust": "negative",
    "repression": "negative",
    "anger": "negative",
    "contempt": "negative",
    "fear": "negative",
    "sadness": "negative",
    "others": "others",
}

# Mouth opening says little about the emotion (it comes with speech, breathing, surprise, fear,
# laughter), so it counts less than the AUs that define a prototype.
_WEIGHT: dict[int, float] = {25: 0.4, 26: 0.4}


def au_name(au: int) -> str:
    """The FACS name of ``au`` (``"AU<n>"`` for a code without one here)."""
    return AU_NAMES.get(au, f"AU{au}")


def megc_class(detail: str) -> str:
    """The MEGC 3-class label (positive | negative | surprise | others) of an emotion detail."""
    return MEGC_CLASS.get(detail, "others")


@dataclass(frozen=True, slots=True)
class Pattern:
    """An AU combination that reads as ``detail``.

    ``unilateral``: AUs that must act on one side only (contempt's R12A+R14A). ``partial``: a
    prototype that still counts when most of it is present (EMFACS lists full displays; a
    micro-expression rarely shows all of one).
    """

    detail: str
    aus: frozenset[int]
    source: str
    unilateral: frozenset[int] = frozenset()
    partial: bool = False

    def label(self) -> str:
        return "+".join(str(a) for a in sorted(self.aus))


def _p(detail: str, aus: str, source: str, *, unilateral: str = "", partial: bool = False) -> Pattern:
    return Pattern(
        detail,
        frozenset(int(a) for a in aus.split("+")),
        source,
        frozenset(int(a) for a in unilateral.split("+")) if unilateral else frozenset(),
        partial,
    )


_EMFACS = "EMFACS prototype"
_DAVISON = "Davison objective class"
_CASME = "CASME II coding of repression"

PATTERNS: tuple[Pattern, ...] = (
    # EMFACS prototypes (matched in part, see Pattern.partial).
    _p("happiness", "6+12", _EMFACS),
    _p("sadness", "1+4+15", _EMFACS, partial=True),
    _p("surprise", "1+2+5+26", _EMFACS, partial=True),
    _p("fear", "1+2+4+5+7+20+26", _EMFACS, partial=True),
    _p("fear", "1+2+4+5+20+26", _EMFACS + " (without 7)", partial=True),
    _p("anger", "4+5+7+23", _EMFACS, partial=True),
    _p("disgust", "9+15+16", _EMFACS, partial=True),
    _p("disgust", "10+17+4", _EMFACS + " (variant)", partial=True),
    _p("disgust", "9+15+17", _EMFACS + " (variant)", partial=True),
    _p("contempt", "12+14", _EMFACS + " (unilateral)", unilateral="12+14"),
    _p("contempt", "14", _EMFACS + " (unilateral 14)", unilateral="14"),
    # Davison et al. objective classes I-VI (I happiness-like ... VI fear-like).
    *(_p("happiness", a, _DAVISON + " I") for a in ("6", "12", "6+7+12", "7+12")),
    *(_p("surprise", a, _DAVISON + " II") for a in ("1+2", "5", "25", "1+2+25", "25+26", "5+24")),
    *(_p("anger", a, _DAVISON + " III") for a in ("23", "4", "4+7", "4+5", "4+5+7", "17+24", "4+6+7")),
    *(_p("disgust", a, _DAVISON + " IV") for a in ("10", "9", "4+9", "4+7+9", "4+9+17", "4+7+10", "7+10")),
    *(_p("sadness", a, _DAVISON + " V") for a in ("1", "15", "1+4", "6+15")),
    *(_p("fear", a, _DAVISON + " VI") for a in ("1+2+4", "20")),
    # The four commonest codings of CASME II's repression samples (17: 12, 15: 6, 15+17: 4, 12+15: 2).
    *(_p("repression", a, _CASME) for a in ("17", "15", "15+17", "12+15")),
    # Davison V also lists 15+17. AU15 alone and 15+17 thus read two ways; `classify` takes the earlier
    # row (15 sadness, 15+17 repression: CASME II codes it so 4 times of 4, SAMM sadness once), while
    # the injector draws both readings (`DISPLAYS`).
    _p("sadness", "15+17", _DAVISON + " V"),
)


@dataclass(frozen=True, slots=True)
class Match:
    """The emotion `classify` chose, the pattern behind it and the AUs it left unexplained."""

    detail: str
    emotion: str
    pattern: Pattern | None
    matched: frozenset[int]
    missing: frozenset[int]
    score: float

    def reason(self) -> str:
        """One sentence: which AUs match which pattern, and the 3-class label."""
        if self.pattern is None:
            return "no FACS emotion pattern matches these action units, so the emotion is others"
        got = "+".join(f"AU{a}" for a in sorted(self.matched))
        how = "match" if not self.missing else "cover most of"
        text = f"{got} {how} the {self.detail} pattern {self.pattern.label()} ({self.pattern.source})"
        if self.missing:
            text += "; " + ", ".join(f"AU{a}" for a in sorted(self.missing)) + " not seen"
        cls = self.emotion
        return f"{text}; {self.detail} belongs to the MEGC {cls} class" if cls != "others" else text


def _score(p: Pattern, sides: Mapping[int, str]) -> tuple[float, frozenset[int], frozenset[int]] | None:
    """(score, matched, missing) of pattern ``p`` on detected AUs, or None when it does not apply."""
    present = frozenset(sides)
    if any(sides.get(a, "B") == "B" for a in p.unilateral if a in present):
        return None
    if p.unilateral and len({sides[a] for a in p.unilateral & present}) > 1:
        return None  # unilateral AUs must act on the same side
    matched = p.aus & present
    missing = p.aus - present
    if missing:
        if not p.partial or len(matched) < 3 or len(matched) / len(p.aus) < 0.6:
            return None
    weight = sum(_WEIGHT.get(a, 1.0) for a in matched) - 0.5 * sum(_WEIGHT.get(a, 1.0) for a in missing)
    return weight, matched, missing


def classify(sides: Mapping[int, str], confidence: Mapping[int, float] | None = None) -> Match:
    """The emotion the AUs in ``sides`` (AU → "L" | "R" | "B") read as.

    Every pattern wholly present (or, for EMFACS prototypes, mostly present) competes; the one that
    explains the most AU weight wins (missing prototype AUs count half against it), ties going to the
    more complete pattern, then the surer AUs, then table order. No pattern → ``others``.
    """
    conf = confidence or {}
    best: tuple[tuple[float, float, float, int], Pattern, frozenset[int], frozenset[int]] | None = None
    for order, p in enumerate(PATTERNS):
        s = _score(p, sides)
        if s is None:
            continue
        weight, matched, missing = s
        key = (weight, len(matched) / len(p.aus), sum(conf.get(a, 1.0) for a in matched), -order)
        if best is None or key > best[0]:
            best = (key, p, matched, missing)
    if best is None:
        return Match("others", "others", None, frozenset(), frozenset(), 0.0)
    key, p, matched, missing = best
    return Match(p.detail, megc_class(p.detail), p, matched, missing, key[0])


def parse_aus(text: str) -> tuple[tuple[int, ...], Side]:
    """``"4+7"`` → ((4, 7), "B"); ``"R12+R14"`` → ((12, 14), "R"): AUs and the side they act on, as
    the annotation sheets write them (one side for all, or none for both)."""
    terms = text.split("+")
    sides = {t[0] if t[:1] in ("L", "R") else "B" for t in terms}
    if len(sides) != 1:
        raise ValueError(f"AU combination {text!r} mixes sides; write every AU with one side or none")
    return tuple(int(t.lstrip("LR")) for t in terms), cast(Side, sides.pop())


def _displays(table: dict[str, tuple[str, ...]]) -> dict[str, tuple[tuple[tuple[int, ...], Side], ...]]:
    """``table`` parsed, each combination checked to be a reading of its emotion in `PATTERNS`: a
    pattern of that emotion it matches whole, or most of a partial prototype (ValueError otherwise)."""
    out: dict[str, tuple[tuple[tuple[int, ...], Side], ...]] = {}
    for detail, texts in table.items():
        combos = tuple(parse_aus(t) for t in texts)
        for (aus, side), text in zip(combos, texts, strict=True):
            sides = dict.fromkeys(aus, side)
            if not any(
                p.detail == detail and (s := _score(p, sides)) is not None and s[1] == set(aus)
                for p in PATTERNS
            ):
                raise ValueError(f"display {text} of {detail} is no {detail} pattern of PATTERNS")
        out[detail] = combos
    return out


# What the injector draws for each emotion (uniformly, in this order, which fixes what a seed draws):
# AU combinations a micro-expression of it shows, each a reading of it in `PATTERNS` (checked here);
# 1+2+5 and 1+2+4+5+20 are most of the EMFACS surprise and fear prototypes. Contempt is unilateral.
DISPLAYS: dict[str, tuple[tuple[tuple[int, ...], Side], ...]] = _displays({
    "happiness": ("6+12", "12", "6+7+12", "7+12"),
    "surprise": ("1+2", "1+2+5", "1+2+25", "5"),
    "disgust": ("9", "4+9", "10", "4+7+10", "9+15+17"),
    "repression": ("17", "15", "15+17", "12+15"),
    "sadness": ("1+4", "1+4+15", "15", "15+17"),
    "fear": ("1+2+4", "20", "1+2+4+5+20"),
    "anger": ("4", "4+7", "4+5+7", "23", "17+24"),
    "contempt": ("R12+R14", "L12+L14"),
})
