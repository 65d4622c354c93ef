"""Long-video sheets (CAS(ME)^2, SAMM) and event priors drawn from the real short-clip sheets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.errors import UserError
from engine.facs import AU_MOVES
from engine.synth import draw_event
from evaluation.annotations import SheetEvents, SheetSample, read_long_sheet
from tests.conftest import shared_path

CASME2_LONG = ("annotations", "casme2_long", "CAS(ME)^2code_final(Updated).csv")
SAMM_LONG = ("annotations", "samm_long", "SAMM_LongVideos_V2_Release.csv")


def test_read_long_sheet_when_casme2_rows_then_unknown_offset_ends_at_apex(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text(
        "1,anger2_1,2155,2163,0,NULL,negative,macro-expression,anger,-2155,s15/15_0402beating\n"
        '1,x_1,10,12,15,"4+7",negative,micro-expression,disgust,5,s15/15_0101x\n'
    )
    a, b = read_long_sheet(p, "casme2_long")
    assert (a.onset, a.apex, a.offset, a.kind, a.video) == (2155, 2163, 2163, "macro", "s15/15_0402beating")
    assert (b.kind, b.au_text, b.emotion) == ("micro", "4+7", "disgust")


def test_read_long_sheet_when_samm_notes_above_header_then_video_from_filename(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text(
        "SAMM Long Videos,,\nSymbol Key:,,\nSubject,Filename,Inducement Code,Onset,Apex,Offset,"
        "Duration,Type,Action Units,Notes\n006,006_1_3,1,1912,-1,1988,77,Micro - 1/2,4,blink\n"
    )
    (ev,) = read_long_sheet(p, "samm_long")
    assert (ev.video, ev.apex, ev.kind, ev.onset, ev.offset) == ("006_1", None, "micro", 1912, 1988)


def test_read_long_sheet_when_wrong_sheet_then_user_error(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b,c\n")
    with pytest.raises(UserError, match="SAMM long-video header"):
        read_long_sheet(p, "samm_long")
    with pytest.raises(UserError, match="unknown long-video dataset"):
        read_long_sheet(p, "smic_long")


@pytest.mark.data
def test_read_long_sheet_when_real_sheets_then_all_rows_and_both_types() -> None:
    c, s = shared_path(*CASME2_LONG), shared_path(*SAMM_LONG)
    if not (c.is_file() and s.is_file()):
        pytest.skip("../shared/data/annotations is absent")
    casme = read_long_sheet(c, "casme2_long")
    samm = read_long_sheet(s, "samm_long")
    assert len(casme) == 357 and {e.kind for e in casme} == {"micro", "macro"}
    assert len(samm) > 300 and sum(e.kind == "micro" for e in samm) == 159
    assert all(e.onset <= e.offset for e in casme + samm)


def test_sheet_events_when_drawn_then_timing_and_aus_come_from_one_record() -> None:
    s = SheetEvents(
        [SheetSample(0.1, 0.2, (4, 7), "B", "anger"), SheetSample(0.05, 0.05, (12,), "L", "happiness")]
    )
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(40):
        ev = draw_event(rng, 0, 200.0, s)
        seen.add((ev.aus, ev.apex - ev.onset, ev.offset - ev.apex, ev.side, ev.emotion))
    assert seen == {((4, 7), 20, 40, "B", "negative"), ((12,), 10, 10, "L", "positive")}


@pytest.mark.data
def test_sheet_events_when_real_sheets_then_micro_durations_like_casme2() -> None:
    root = shared_path("annotations")
    if not root.is_dir():
        pytest.skip("../shared/data/annotations is absent")
    s = SheetEvents.from_sheets(root, sorted(AU_MOVES))
    d = s.durations_s()
    assert len(d) > 300 and d.min() >= 0.1 and d.max() <= 0.5
    assert 0.25 <= float(np.median(d)) <= 0.4  # CASME II's median is 0.3 s
    assert all(set(x.aus) <= set(AU_MOVES) for x in s.samples)
    ev = draw_event(np.random.default_rng(0), 10, 24.0, s)  # rescaled to 24 fps
    assert 2 <= ev.offset - ev.onset <= 12
