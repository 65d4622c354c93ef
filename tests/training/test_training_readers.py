"""Annotation readers on every real sheet in ../shared/data/annotations, and the AU-string grammar."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.errors import UserError
from tests.conftest import shared_path
from training.readers import LAYOUTS, read_annotation_dir, read_sheet
from training.records import AUCode, MERecord, megc3_of, parse_au_string

B = "B"

# (sheet, layout, records, issues, [(subject, clip, onset, apex, offset, fps, aus, emotion, megc3, line)])
SHEETS = [
    (
        "casme2/CASME2-coding-20140508.xlsx",
        "casme2",
        255,
        5,
        [
            ("01", "EP02_01f", 46, 59, 86, 200.0, ((12, B, None),), "happiness", "positive", 2),
            ("26", "EP18_51", 21, 64, 81, 200.0, ((4, B, None),), "disgust", "negative", 256),
        ],
    ),
    (
        "casme2/CASME2-coding-20190701.csv",
        "casme2",
        255,
        1,
        [
            ("01", "EP02_01f", 46, 59, 86, 200.0, ((12, B, None),), "happiness", "positive", 2),
            (
                "04",
                "EP12_01f",
                261,
                None,
                321,
                200.0,
                ((4, B, None), (7, B, None), (10, "L", None)),
                "disgust",
                "negative",
                31,
            ),
        ],
    ),
    (
        "samm/SAMM_Micro_FACS_Codes_v2.csv",
        "samm",
        159,
        9,
        [
            (
                "006",
                "006_1_2",
                5562,
                5588,
                5632,
                200.0,
                ((4, B, None), (7, B, None)),
                "anger",
                "negative",
                15,
            ),
            ("010", "010_4_1", 3528, 3548, 3557, 200.0, ((7, B, "B"), (43, B, "C")), "anger", "negative", 42),
            (
                "017",
                "017_3_2",
                83,
                116,
                165,
                200.0,
                ((1, B, "A"), (2, B, "B"), (14, "L", "C")),
                "surprise",
                "surprise",
                93,
            ),
            (
                "020",
                "020_4_2",
                1482,
                1516,
                1528,
                200.0,
                ((12, "L", "A"), (25, B, None)),
                "happiness",
                "positive",
                110,
            ),
        ],
    ),
    (
        "samm/SAMM_Micro_FACS_Codes_v2.xlsx",
        "samm",
        159,
        11,
        [("006", "006_1_2", 5562, 5588, 5632, 200.0, ((4, B, None), (7, B, None)), "anger", "negative", 15)],
    ),
    (
        "casme3/cas(me)3_part_A_edited.csv",
        "casme3",
        687,
        1,
        [("spNO.1", "b", 166, 175, 179, 30.0, ((4, B, None),), "disgust", "negative", 2)],
    ),
    (
        "casme3/casme3_table.xlsx",
        "casme3",
        860,
        2,
        [("spNO.1", "a", 355, 359, 360, 30.0, ((5, B, None),), "others", None, 2)],
    ),
    (
        "dfme/training_full_with_AU.xlsx",
        "dfme",
        1856,
        0,
        [("sub0003", "sub0003_01", 109, 199, 228, 500.0, ((23, B, None),), "anger", "negative", 2)],
    ),
    (
        "dfme/testA_full_with_AU.xlsx",
        "dfme",
        474,
        0,
        [("sub0008", "sub0008_02", 0, 113, 199, 500.0, ((12, "L", None),), "happiness", "positive", 3)],
    ),
    (
        "dfme/testB_full_with_AU.xlsx",
        "dfme",
        299,
        0,
        [
            ("sub0001", "sub0001_01", 20, 151, 240, 500.0, ((12, "L", None),), "contempt", "negative", 2),
            (
                "sub0253",
                "sub0253_06",
                29,
                73,
                98,
                200.0,
                ((6, B, None), (12, "L", None)),
                "contempt",
                "negative",
                300,
            ),
        ],
    ),
    (
        "mmew/MMEW_Micro_Exp_delete_others.csv",
        "mmew",
        234,
        0,
        [
            ("1", "S01-01-001", 1, 15, 31, 90.0, ((6, B, None), (12, B, None)), "happiness", "positive", 2),
            ("10", "S10-03-005", 1, 21, 46, 90.0, ((4, "R", None), (7, B, None)), "disgust", "negative", 81),
        ],
    ),
    (
        "smic/smic_apex.xlsx",
        "smic",
        164,
        7,
        [
            ("20", "s20_ne_01", 17581039, 17581046, 17581055, 100.0, (), "negative", "negative", 2),
            ("9", "s9_sur_02", 61250, 61268, None, 100.0, (), "surprise", "surprise", 165),
        ],
    ),
]


@pytest.mark.data
@pytest.mark.parametrize(
    ("sheet", "layout", "count", "n_issues", "known"), SHEETS, ids=[s[0] for s in SHEETS]
)
def test_read_sheet_when_real_sheet(sheet: str, layout: str, count: int, n_issues: int, known: list) -> None:
    path = shared_path("annotations", sheet)
    res = read_sheet(path)
    assert res.layout == layout
    assert len(res.records) == count
    assert len(res.issues) == n_issues
    assert not res.errors  # every real row gives a record
    assert all(i.source == str(path) and i.line > 1 for i in res.issues)
    by_line = {r.line: r for r in res.records}
    for subject, clip, onset, apex, offset, fps, aus, emotion, megc3, line in known:
        r = by_line[line]
        got = (
            r.subject,
            r.clip,
            r.onset,
            r.apex,
            r.offset,
            r.fps,
            tuple(tuple(a) for a in r.aus),
            r.emotion,
            r.megc3,
        )
        assert got == (subject, clip, onset, apex, offset, fps, aus, emotion, megc3)
    assert len({r.key for r in res.records}) >= count - 2  # CAS(ME)^3 repeats a couple of clips


@pytest.mark.data
def test_megc_composite_counts_when_samm_and_smic() -> None:
    """FACS.md: composite negative/positive/surprise counts SAMM 92/26/15, SMIC 70/51/43 (16 subjects)."""
    for sheet, want in (
        ("samm/SAMM_Micro_FACS_Codes_v2.csv", (92, 26, 15)),
        ("smic/smic_apex.xlsx", (70, 51, 43)),
    ):
        recs = read_sheet(shared_path("annotations", sheet)).records
        got = tuple(sum(r.megc3 == c for r in recs) for c in ("negative", "positive", "surprise"))
        assert got == want, sheet
    assert (
        len({r.subject for r in read_sheet(shared_path("annotations", "smic/smic_apex.xlsx")).records}) == 16
    )


@pytest.mark.data
def test_read_annotation_dir_when_long_video_sheets_present() -> None:
    """The long-video sheets (CAS(ME)^2, SAMM long) have other layouts and are left to spotting."""
    results = read_annotation_dir(shared_path("annotations"))
    assert {Path(r.source).name for r in results} >= {"smic_apex.xlsx", "CASME2-coding-20190701.csv"}
    assert not any("long" in Path(r.source).parent.name for r in results)
    assert {r.layout for r in results} == set(LAYOUTS)


AU_TABLE = [
    ("1+2+R4", [(1, B, None), (2, B, None), (4, "R", None)], 0),
    ("L12A", [(12, "L", "A")], 0),
    ("4+7+43", [(4, B, None), (7, B, None), (43, B, None)], 0),
    ("AU4", [(4, B, None)], 0),
    ("R14", [(14, "R", None)], 0),
    ("12(?)", [(12, B, None)], 1),
    ("Unclear", [], 1),
    ("?", [], 1),
    ("", [], 0),
    ("4R+7", [(4, "R", None), (7, B, None)], 0),
    ("12L", [(12, "L", None)], 0),
    ("(R6 or R12)+R15", [(6, "R", None), (15, "R", None)], 1),
    ("ref(7B)+43C", [(7, B, "B"), (43, B, "C")], 0),
    ("A/L12", [(12, "L", None)], 1),
    ("10A/B", [(10, B, "A")], 1),
    ("AD38+M58", [(38, B, None), (58, B, None)], 0),
    ("R14+17+soft focus", [(14, "R", None), (17, B, None)], 1),
    ("T18+39", [(18, B, None), (39, B, None)], 0),
    ("4+7+4", [(4, B, None), (7, B, None)], 0),
    ("L12 + 61", [(12, "L", None), (61, B, None)], 0),
]


@pytest.mark.parametrize(("text", "want", "n_notes"), AU_TABLE, ids=[t[0] or "empty" for t in AU_TABLE])
def test_parse_au_string_when_sheet_spellings(text: str, want: list, n_notes: int) -> None:
    codes, notes = parse_au_string(text)
    assert [tuple(c) for c in codes] == want
    assert len(notes) == n_notes, notes


def test_megc3_when_database_specific() -> None:
    assert megc3_of("casme2", "sadness") is None  # left out of the composite set (FACS.md)
    assert megc3_of("samm", "sadness") == "negative"
    assert megc3_of("casme3", "happy") == "positive"
    assert megc3_of("casme3", "sad") == "negative"
    assert megc3_of("casme2", "repression") == "negative"
    assert megc3_of("samm", "other") is None
    assert megc3_of("smic", "surprise") == "surprise"


def test_read_sheet_when_rows_malformed_reports_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sheet = tmp_path / "casme2.csv"
    sheet.write_text(
        "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"
        "01,EP02_01f,46,59,86,12,happiness\n"
        "01,EP03_02,abc,59,86,12,happiness\n"  # line 3: onset not a number → error
        ",EP04_02,21,54,76,4,others\n"  # line 4: no subject → error
        "02,EP05_01,21,/,0,4+soft,disgust\n"  # line 5: apex '/', offset 0 unknown, 'soft' dropped
        "\n"
        "Subject,Filename,OnsetFrame,ApexFrame,OffsetFrame,Action Units,Estimated Emotion\n"  # line 7
        "03,EP06_01,30,20,40,Unclear,Surprise\n"  # line 8: out of order, no AU
    )
    with caplog.at_level(logging.WARNING, logger="training.readers"):
        res = read_sheet(sheet)
    assert [r.clip for r in res.records] == ["EP02_01f", "EP05_01", "EP06_01"]
    got = [(i.line, i.severity) for i in res.issues]
    assert got == [
        (3, "error"),
        (4, "error"),
        (5, "warning"),
        (5, "warning"),
        (5, "warning"),
        (7, "warning"),
        (8, "warning"),
        (8, "warning"),
    ]
    r5 = res.records[1]
    assert (r5.apex, r5.offset, [tuple(a) for a in r5.aus]) == (None, None, [(4, B, None)])
    assert res.records[2].emotion == "surprise" and res.records[2].aus == ()
    assert sum(str(sheet) in m and ":3:" in m for m in caplog.messages) == 1
    assert len([m for m in caplog.messages if str(sheet) in m and "error" in m]) == 2


def test_read_sheet_when_no_header_raises_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(UserError, match="no header row"):
        read_sheet(bad)
    with pytest.raises(UserError, match="unknown sheet layout"):
        read_sheet(bad, "nope")
    with pytest.raises(UserError, match="does not exist"):
        read_sheet(tmp_path / "missing.csv")


def test_record_json_round_trip() -> None:
    r = MERecord(
        "samm",
        "006",
        "006_1_2",
        5562,
        5588,
        None,
        200.0,
        (AUCode(4, "L", "A"),),
        "anger",
        "negative",
        "s.csv",
        15,
        "L4A",
    )
    assert MERecord.from_json(r.to_json()) == r
    assert r.key == "samm/006/006_1_2/5562" and r.detail == "anger"
