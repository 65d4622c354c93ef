"""The report page (`python -m engine.report`): journals written with the contract's own event builders,
read back into HTML that is parsed here, plus real engine runs (demo, a calm video) and a real browser.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from engine.events import error_event, make_event, status_event
from engine.publish.journal import Journal, maps_dir
from engine.report.__main__ import main as report_main
from engine.runinfo import run_info
from tests.helpers import ROOT, env, free_port, read_journal, run_cli

pytest.importorskip("matplotlib", reason="the report needs the report extra (matplotlib)")
pytest.importorskip("jinja2", reason="the report needs the report extra (jinja2)")

EVIL = '<script>alert(1)</script><img src=x onerror="alert(2)">'


class Page(HTMLParser):
    """Every start tag of a page with its attributes, and the text, for assertions on the real HTML."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags
                if t == tag and (cls is None or cls in (a.get("class") or "").split())]

    @property
    def joined(self) -> str:
        return " ".join(" ".join(self.text).split())


def _figures(html: str) -> dict[str, str]:
    """``data-fig`` cell of the summary → its text."""
    out: dict[str, str] = {}

    class P(HTMLParser):
        key: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.key = dict(attrs).get("data-fig")

        def handle_data(self, data: str) -> None:
            if self.key and data.strip():
                out[self.key] = data.strip()
                self.key = None

    P().feed(html)
    return out


def _point(frame: int, fps: float = 30.0) -> dict[str, Any]:
    return {"frame": frame, "t": round(frame / fps, 6)}


def candidate(cid: str, onset: int, apex: int, offset: int, *, stream: str = "cam0", kind: str = "micro",
              **extra: Any) -> dict[str, Any]:
    fields = {"score": 12.5, "regions": ["brow_inner_L"], **extra}
    return make_event("candidate", stream, candidate_id=cid, onset=_point(onset), apex=_point(apex),
                      offset=_point(offset), kind=kind, **fields)


def explanation(cid: str, *, stream: str = "cam0", emotion: str = "negative", detail: str = "sadness",
                aus: tuple[tuple[int, float], ...] = ((1, 0.8), (4, 0.6)), text: str = "brows drawn together",
                latency_ms: float = 100.0) -> dict[str, Any]:
    return make_event("explanation", stream, candidate_id=cid, emotion=emotion, emotion_detail=detail,
                      text=text,
                      aus=[{"au": a, "name": f"name{a}", "side": "B", "confidence": c} for a, c in aus],
                      explainer="rules", latency_ms=latency_ms)


def dropped(cid: str, reason: str, stream: str = "cam0") -> dict[str, Any]:
    return make_event("dropped", stream, candidate_id=cid, reason=reason, detail="detail")


def status(t: float, *, stream: str = "cam0", final: bool = False, run: dict | None = None,
           **figures: Any) -> dict[str, Any]:
    base = {"fps_in": 30.0, "fps_processed": 30.0, "frames_dropped": 0, "faces_lost": 0, "queue_depth": 0,
            "reconnects": 0, "uptime_s": t, "stream_t": t, "frames": int(t * 30)}
    base.update(figures)
    extra: dict[str, Any] = {"final": True} if final else {}
    if run is not None:
        extra["run"] = run
    return status_event(stream, **base, **extra)


def write_journal(path: Path, events: list[dict[str, Any]], seq0: int = 0) -> Path:
    with path.open("a", encoding="utf-8") as f:
        for i, e in enumerate(events):
            f.write(json.dumps({**e, "seq": seq0 + i}, separators=(",", ":")) + "\n")
    return path


def png(colour: tuple[int, int, int], size: int = 32) -> bytes:
    ok, data = cv2.imencode(".png", np.full((size, size, 3), colour, np.uint8))
    assert ok
    return data.tobytes()


def build(tmp_path: Path, *args: str) -> tuple[int, str]:
    out = tmp_path / "report"
    code = report_main([*args, "--out", str(out)])
    html = (out / "index.html").read_text(encoding="utf-8") if code == 0 else ""
    return code, html


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


# -- safety -----------------------------------------------------------------------------------------
def test_report_when_events_hold_html_and_traversal_then_shown_as_text_and_nothing_written_outside(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    cid = "../../escape"
    journal = write_journal(run / "events.jsonl", [
        status(0.0, stream="<b>cam</b>", run=run_info({"explain": {"name": EVIL},
                                                       "clips": {"enabled": True, "dir": str(tmp_path)}})),
        candidate(cid, 30, 33, 36, stream="<b>cam</b>", regions=[EVIL]),
        explanation(cid, stream="<b>cam</b>", text=EVIL, emotion=EVIL, detail=EVIL),
        error_event("<b>cam</b>", EVIL, EVIL),
        status(2.0, stream="<b>cam</b>", final=True),
    ])
    (tmp_path / "escape.png").write_bytes(png((0, 0, 255)))  # what the id would reach if it were joined
    (tmp_path / "escape.mp4").write_bytes(b"not a clip")
    before = files_under(tmp_path)
    code, html = build(run, str(journal))
    assert code == 0
    page = Page(html)
    assert not page.all("script")
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")], "an event attribute leaked"
    assert EVIL in page.joined  # shown, as text
    assert len(page.all("article", "card")) == 1
    srcs = [a["src"] for a in page.all("img")]
    assert srcs == ["img/timeline-s1.png"]  # the traversal id reached no map
    new = files_under(tmp_path) - before
    assert new and all((run / "report") in p.parents for p in new), new


def test_journal_write_map_when_id_is_not_a_plain_name_then_nothing_written(tmp_path: Path) -> None:
    j = Journal(tmp_path / "events.jsonl")
    try:
        assert j.write_map("abc123", b"\x89PNG data") == maps_dir(tmp_path / "events.jsonl") / "abc123.png"
        assert j.write_map("../abc", b"x") is None
        assert j.write_map("a/b", b"x") is None
    finally:
        j.close()
    assert sorted(p.name for p in (tmp_path / "events.maps").iterdir()) == ["abc123.png"]


def test_run_info_when_urls_hold_credentials_then_masked_and_versions_listed() -> None:
    info = run_info({"source": {"spec": "rtsp://ana:secret@10.0.0.5:554/live"},
                     "explain": {"endpoint": "http://key@llm.local/v1", "name": "openai"}})
    text = json.dumps(info)
    assert "secret" not in text and "key@" not in text
    assert info["config"]["source"]["spec"] == "rtsp://***@10.0.0.5:554/live"
    assert info["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert info["versions"]["numpy"] == np.__version__


# -- figures ------------------------------------------------------------------------------------------
def test_report_when_full_run_then_summary_figures_are_the_journals(tmp_path: Path) -> None:
    latencies = [100.0, 200.0, 300.0, 400.0]
    events: list[dict[str, Any]] = [status(0.0, run=run_info({"spotting": {"name": "region-bump"}}))]
    for i, lat in enumerate(latencies):
        events += [candidate(f"c{i}", 60 * i + 30, 60 * i + 33, 60 * i + 36),
                   explanation(f"c{i}", latency_ms=lat, emotion="positive" if i == 0 else "negative")]
    events += [candidate("m0", 300, 310, 330, kind="macro"), dropped("m0", "timeout"),
               candidate("m1", 400, 410, 430, kind="macro"), dropped("m1", "queue_full")]
    events.append(status(60.0, final=True, faces_lost=7,
                         spotter={"suppressed_blink": 3, "suppressed_speech": 5, "other": 1}))
    code, html = build(tmp_path, str(write_journal(tmp_path / "j.jsonl", events)))
    assert code == 0
    figs = _figures(html)
    assert figs["micro"] == "4" and figs["macro"] == "2"
    assert figs["explained"] == "4" and figs["dropped"] == "2"
    assert figs["latency_p50"] == f"{np.percentile(latencies, 50):,.0f}"
    assert figs["latency_p95"] == f"{np.percentile(latencies, 95):,.0f}"
    assert figs["latency_max"] == "400"
    assert figs["drop_timeout"] == "1" and figs["drop_queue_full"] == "1"
    assert figs["spotter.suppressed_blink"] == "3" and figs["spotter.suppressed_speech"] == "5"
    assert "spotter.other" not in figs
    page = Page(html)
    assert "AU1+AU4" in page.joined and "region-bump" in page.joined
    assert "cut short" not in page.joined
    assert [a["data-outcome"] for a in page.all("article", "card")] == ["explanation"] * 4 + ["dropped"] * 2


def _purple(image: np.ndarray) -> np.ndarray:
    """Pixels of the face-lost colour (#6a3d9a) blended on white at any of the band's opacities."""
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return (b - g > 40) & (r - g > 15) & (b > r)


def test_timeline_when_face_lost_between_two_statuses_then_a_band_over_that_interval_only(
    tmp_path: Path,
) -> None:
    def timeline(lost_at_6: int) -> np.ndarray:
        folder = tmp_path / f"lost{lost_at_6}"
        folder.mkdir()
        journal = write_journal(folder / "j.jsonl", [
            status(0.0), candidate("a1", 30, 33, 36), explanation("a1"),
            status(2.0), status(4.0), status(6.0, faces_lost=lost_at_6), status(8.0, faces_lost=lost_at_6),
            status(10.0, faces_lost=lost_at_6, final=True),
        ])
        assert report_main([str(journal), "--out", str(folder / "r")]) == 0
        image = cv2.imread(str(folder / "r" / "img" / "timeline-s1.png"))
        assert image is not None
        return image

    without, with_loss = timeline(0), timeline(30)
    extra = _purple(with_loss) & ~_purple(without)
    assert extra.sum() > 500
    columns = np.flatnonzero(extra.any(axis=0))
    span = (columns.max() - columns.min()) / with_loss.shape[1]
    assert 0.1 < span < 0.22, span  # 4 s to 6 s of a 10-s axis that spans most of the image
    centre = (columns.max() + columns.min()) / 2 / with_loss.shape[1]
    assert 0.4 < centre < 0.65, centre


def test_report_when_maps_in_folder_or_base64_then_each_card_shows_its_own(tmp_path: Path) -> None:
    red, green = png((0, 0, 255)), png((0, 255, 0))
    journal = write_journal(tmp_path / "j.jsonl", [
        candidate("a1", 30, 33, 36, map_png=base64.b64encode(red).decode()),
        explanation("a1"),
        candidate("b2", 90, 93, 96), explanation("b2"),
        candidate("c3", 150, 153, 156), explanation("c3"),
        status(6.0, final=True),
    ])
    maps = maps_dir(journal)
    maps.mkdir()
    (maps / "b2.png").write_bytes(green)
    (maps / "c3.png").write_bytes(b"GIF89a not a png")
    code, html = build(tmp_path, str(journal))
    assert code == 0
    srcs = [a["src"] for a in Page(html).all("img", "map")]
    assert srcs == ["img/s1-c1.png", "img/s1-c2.png"]
    assert (tmp_path / "report/img/s1-c1.png").read_bytes() == red
    assert (tmp_path / "report/img/s1-c2.png").read_bytes() == green
    elsewhere = tmp_path / "saved"
    shutil.copytree(maps, elsewhere)
    shutil.rmtree(maps)
    code, html = build(tmp_path, str(journal), "--maps", str(elsewhere))  # engine.subscribe --save-maps
    assert [a["src"] for a in Page(html).all("img", "map")] == ["img/s1-c1.png", "img/s1-c2.png"]


# -- cut short, selections, several journals ---------------------------------------------------------
def test_report_when_journal_cut_short_then_rendered_and_says_so(tmp_path: Path) -> None:
    journal = write_journal(tmp_path / "j.jsonl", [
        status(0.0, run=run_info({})), candidate("a1", 30, 33, 36), explanation("a1"),
        candidate("b2", 90, 93, 96), status(4.0),
    ])
    with journal.open("a") as f:
        f.write(json.dumps(explanation("b2"))[:40])  # killed mid-line
    code, html = build(tmp_path, str(journal))
    assert code == 0
    page = Page(html)
    text = page.joined
    assert "cut short" in text and "cut off mid-write" in text
    assert "1 candidate(s) have no explanation" in text
    assert [a["data-outcome"] for a in page.all("article", "card")] == ["explanation", "open"]
    assert page.all("section", "run")[0]["data-final"] == "no"


def test_report_when_several_journals_and_selections_then_one_section_each_and_only_what_was_asked(
    tmp_path: Path,
) -> None:
    journals = []
    for name in ("cam0", "cam1"):
        events: list[dict[str, Any]] = []
        for k in range(4):  # apexes at 1.1, 11.1, 21.1, 31.1 s
            cid = f"{name}x{k}"
            events += [candidate(cid, 300 * k + 30, 300 * k + 33, 300 * k + 36, stream=name),
                       explanation(cid, stream=name)]
        events.append(status(40.0, stream=name, final=True))
        journals.append(str(write_journal(tmp_path / f"{name}.jsonl", events)))
    code, html = build(tmp_path, *journals)
    sections = Page(html).all("section", "run")
    assert [s["data-stream"] for s in sections] == ["cam0", "cam1"]
    assert len(Page(html).all("article", "card")) == 8
    assert code == 0
    code, html = build(tmp_path, *journals, "--stream", "cam1", "--since", "0:10", "--until", "25")
    assert code == 0
    page = Page(html)
    assert [s["data-stream"] for s in page.all("section", "run")] == ["cam1"]
    assert [a["data-candidate"] for a in page.all("article", "card")] == ["cam1x1", "cam1x2"]
    assert float(_figures(html)["micro_per_min"]) == pytest.approx(2 / 15 * 60, abs=0.05)


def test_report_when_engine_appended_a_second_run_then_two_sections(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    write_journal(journal, [status(0.0), candidate("a1", 30, 33, 36), explanation("a1"),
                            status(2.0, final=True)])
    write_journal(journal, [status(0.0), candidate("b2", 30, 33, 36), explanation("b2")])  # seq from 0 again
    code, html = build(tmp_path, str(journal))
    assert code == 0
    page = Page(html)
    sections = page.all("section", "run")
    assert [s["data-final"] for s in sections] == ["yes", "no"]
    assert "run 2 of 2" in page.joined


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not found"),
        (b"", "is empty"),
        (b"\n\n", "is empty"),
        (png((1, 2, 3)), "is not a mellm-stream journal"),
        (b'{"hello": 1}\n', "is not a mellm-stream journal"),
        (b'{"schema":"mellm.event/1","type":"sta', "holds no complete event"),
    ],
)
def test_report_cli_when_input_is_not_a_journal_then_one_line_and_exit_2(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "events.jsonl"
    if content is not None:
        path.write_bytes(content)
    r = subprocess.run([sys.executable, "-m", "engine.report", str(path), "--out", str(tmp_path / "out")],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0], r.stderr
    assert not (tmp_path / "out" / "index.html").exists()


def test_report_cli_when_extra_not_installed_then_one_line_naming_it(tmp_path: Path) -> None:
    journal = write_journal(tmp_path / "j.jsonl", [candidate("a1", 30, 33, 36), status(2.0, final=True)])
    hide = tmp_path / "hide" / "jinja2"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text('raise ImportError("not installed", name="jinja2")\n')
    e = env()
    e["PYTHONPATH"] = f"{hide.parent}:{e['PYTHONPATH']}"
    r = subprocess.run([sys.executable, "-m", "engine.report", str(journal), "--out", str(tmp_path / "o")],
                       cwd=ROOT, env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: the report needs jinja2: pip install 'mellm-stream[report]'"


def test_report_cli_when_bad_time_or_unknown_stream_then_one_line(tmp_path: Path, capsys) -> None:
    journal = write_journal(tmp_path / "j.jsonl", [candidate("a1", 30, 33, 36), status(2.0, final=True)])
    assert report_main([str(journal), "--out", str(tmp_path / "o"), "--since", "soon"]) == 2
    assert "bad time 'soon'" in capsys.readouterr().err
    assert report_main([str(journal), "--out", str(tmp_path / "o"), "--stream", "cam9"]) == 2
    assert "streams found: cam0" in capsys.readouterr().err


def test_run_stream_when_report_folder_unwritable_then_one_line_before_running(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the report folder should go")
    r = run_cli("--source", "demo", "--report", str(blocker / "report"), timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"run_stream.py: error: cannot write the report into {blocker}")
    assert "choose another --report" in lines[0]


# -- real runs ----------------------------------------------------------------------------------------
def _browser(profile: Path) -> Any:
    from tests.engine.dashboard.test_dashboard_browser import _browser as dashboard_browser

    return dashboard_browser(profile)


@pytest.mark.slow
def test_report_of_a_demo_run_in_chromium_has_one_card_per_candidate_and_every_image_loads(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "report"
    journal = out / "events.jsonl"  # --report without --journal journals beside the page
    r = run_cli("--source", "demo", "--set", "demo.duration_s=10", "--set", "demo.events=3",
                "--pub", f"tcp://127.0.0.1:{free_port()}", "--report", str(out), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    events = read_journal(journal)
    statuses = [e for e in events if e["type"] == "status"]
    assert statuses[0]["run"]["config"]["explain"]["name"] == "rules"
    assert statuses[0]["run"]["versions"]["mediapipe"]
    assert statuses[-1]["final"] is True and not any(s.get("final") for s in statuses[:-1])
    stream_t = [s["stream_t"] for s in statuses]
    assert stream_t == sorted(stream_t) and stream_t[-1] == pytest.approx(299 / 30, abs=1e-3)  # 300 frames
    ids = [e["candidate_id"] for e in events if e["type"] == "candidate"]
    assert ids, "the demo produced no candidate"
    assert sorted(p.stem for p in maps_dir(journal).iterdir()) == sorted(ids)

    driver = _browser(tmp_path / "chrome-profile")
    from selenium.webdriver.common.by import By

    try:
        driver.get((out / "index.html").as_uri())
        cards = driver.find_elements(By.CSS_SELECTOR, "article.card")
        assert len(cards) == len(ids)
        assert [c.get_attribute("data-candidate") for c in cards] == ids
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(driver.find_elements(By.CSS_SELECTOR, "img.map")) == len(ids)
        widths = [driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)
                  for i in images]
        assert widths and all(w > 0 for w in widths), widths
        assert driver.find_element(By.CSS_SELECTOR, "section.run").get_attribute("data-final") == "yes"
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        driver.set_window_size(1280, driver.execute_script("return document.body.scrollHeight"))
        assert driver.save_screenshot(str(tmp_path / "report.png"))
        with capsys.disabled():
            print(f"\nreport screenshot: {tmp_path / 'report.png'}")
    finally:
        driver.quit()
    # the offline command reads the same journal into the same cards
    assert report_main([str(journal), "--out", str(tmp_path / "again")]) == 0
    again = Page((tmp_path / "again" / "index.html").read_text(encoding="utf-8"))
    assert [a["data-candidate"] for a in again.all("article", "card")] == ids


@pytest.mark.data
@pytest.mark.slow
def test_report_of_a_calm_video_with_clips_renders_a_card_and_a_clip_still_per_candidate(
    tmp_path: Path,
) -> None:
    from tests.conftest import shared_path

    video = shared_path("videos", "calm", "webcam_woman.mp4")
    journal, out, clips = tmp_path / "calm.jsonl", tmp_path / "report", tmp_path / "clips"
    r = run_cli("--source", str(video), "--max-frames", "180", "--pub", f"tcp://127.0.0.1:{free_port()}",
                "--journal", str(journal), "--report", str(out),
                "--set", "clips.enabled=true", "--set", f"clips.dir={clips}", timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    ids = [e["candidate_id"] for e in read_journal(journal) if e["type"] == "candidate"]
    page = Page((out / "index.html").read_text(encoding="utf-8"))
    assert [a["data-candidate"] for a in page.all("article", "card")] == ids
    stills = [a["src"] for a in page.all("img", "still")]
    assert len(stills) == len(ids) == len(list(clips.glob("*.mp4")))
    for src in stills:
        image = cv2.imread(str(out / src))
        assert image is not None and image.shape[1] > image.shape[0]  # the face beside its map
