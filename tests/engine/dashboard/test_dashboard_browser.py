"""The dashboard in a real headless Chromium (Selenium + Debian's chromium and chromium-driver).

Two real engines run on the demo source as subprocesses: ``demo`` explains its candidates with the
rules explainer; ``droppy`` has a 1 µs explanation deadline, so each of its candidates ends in
``dropped`` with reason ``timeout``. The dashboard subscribes to both and the page is opened
*before* the engines start, so everything it shows arrived live. A screenshot is written to the
test's tmp dir (its path is printed in the test output); every port is a free one.

CI installs the browser with: ``apt-get install -y chromium chromium-driver``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.engine.dashboard.test_dashboard import metric_samples
from tests.helpers import ROOT, env, free_port, read_journal

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,2200",
)
DEMO = ("--source", "demo", "--realtime", "--set", "demo.duration_s=14", "--set", "demo.events=4",
        "--set", "publish.startup_wait_s=1.0")


def _browser(profile: Path) -> Any:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    out = log.open("w")
    cmd = [sys.executable, *args]
    # run in the test's tmp dir: whatever a process writes beside it stays in pytest's folders
    return subprocess.Popen(cmd, cwd=log.parent, env=env(), stdout=out, stderr=subprocess.STDOUT)


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except Exception:  # the DOM may change under a query; try again
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.mark.slow
def test_dashboard_in_chromium_shows_live_health_candidates_and_drops(tmp_path: Path, capsys) -> None:
    driver = _browser(tmp_path / "chrome-profile")
    from selenium.webdriver.common.by import By

    ports = {"demo": free_port(), "droppy": free_port(), "web": free_port()}
    url = f"http://127.0.0.1:{ports['web']}/"
    procs: list[subprocess.Popen] = []
    try:
        subs = ["--sub", f"tcp://127.0.0.1:{ports['demo']}", "--sub", f"tcp://127.0.0.1:{ports['droppy']}"]
        procs.append(_spawn(["-m", "engine.dashboard", *subs, "--bind", f"127.0.0.1:{ports['web']}"],
                            tmp_path / "dashboard.log"))
        _until(lambda: httpx.get(url + "api/state", timeout=2).status_code == 200, 30, "the dashboard")
        driver.get(url)
        _until(lambda: driver.find_element(By.ID, "conn").get_attribute("data-state") == "live", 30, "SSE")
        assert driver.find_elements(By.CSS_SELECTOR, "section.stream") == []

        journals = {name: tmp_path / f"{name}.jsonl" for name in ("demo", "droppy")}
        engine = _spawn([str(ROOT / "run_stream.py"), *DEMO, "--pub", f"tcp://127.0.0.1:{ports['demo']}",
                         "--journal", str(journals["demo"])], tmp_path / "engine_demo.log")
        procs.append(engine)
        droppy = ["--stream", "droppy", "--set", "explain.offline_deadline_s=0.000001"]  # the demo is offline
        procs.append(_spawn([str(ROOT / "run_stream.py"), *DEMO, *droppy,
                             "--pub", f"tcp://127.0.0.1:{ports['droppy']}",
                             "--journal", str(journals["droppy"])], tmp_path / "engine_droppy.log"))

        demo_sel = 'section.stream[data-stream="demo"]'
        # Health figures from the engine's status events.
        fps = _until(lambda: float(driver.find_element(
            By.CSS_SELECTOR, f'{demo_sel} .fig[data-fig="fps_in"] .v').text), 60, "the demo stream's fps")
        assert fps > 0
        # An explained candidate appears while the engine is still running: live, no reload.
        explained = f'{demo_sel} article.cand[data-outcome="explanation"]'
        card = _until(lambda: driver.find_element(By.CSS_SELECTOR, explained), 90, "an explained candidate")
        assert engine.poll() is None, "the candidate only showed up after the engine had finished"
        img = card.find_element(By.CSS_SELECTOR, "img.map")
        loaded = "return arguments[0].complete && arguments[0].naturalWidth"
        _until(lambda: driver.execute_script(loaded, img), 10, "the map image to load")
        assert driver.execute_script("return arguments[0].naturalWidth", img) == 256
        aus = [li.text for li in card.find_elements(By.CSS_SELECTOR, ".aus li")]
        assert aus and all(a.startswith("AU") for a in aus), aus
        assert card.find_element(By.CSS_SELECTOR, ".emotion").text
        assert "explainer rules" in card.find_element(By.CSS_SELECTOR, ".meta").text
        # The other engine's candidates are dropped, with their reason shown.
        dropped = _until(lambda: driver.find_element(
            By.CSS_SELECTOR, 'section.stream[data-stream="droppy"] article.cand[data-outcome="dropped"]'),
            90, "a dropped candidate")
        assert dropped.find_element(By.CSS_SELECTOR, ".reason").text == "timeout"

        # droppy explains nothing (every candidate times out): run_stream.py's exit 3 says so
        codes = [p.wait(180) for p in procs[1:]]
        assert codes == [0, 3], (tmp_path / "engine_demo.log").read_text()[-2000:]
        # Once both engines are done, the page and /metrics agree with the journals.
        for name, journal in journals.items():
            events = read_journal(journal)
            kinds = Counter(e["type"] for e in events)
            sel = f'section.stream[data-stream="{name}"]'
            n = str(kinds["candidate"])
            count = f"{sel} .n-candidates"
            _until(lambda count=count, n=n: driver.find_element(By.CSS_SELECTOR, count).text == n, 20, name)
            assert len(driver.find_elements(By.CSS_SELECTOR, f"{sel} article.cand")) == kinds["candidate"]
            samples = metric_samples(httpx.get(url + "metrics", timeout=5).text)
            lab = (("endpoint", f"tcp://127.0.0.1:{ports[name]}"), ("stream", name))
            assert samples[("mellm_candidates_total", lab)] == kinds["candidate"]
            assert samples[("mellm_explanations_total", lab)] == kinds["explanation"]
            reasons = Counter(e["reason"] for e in events if e["type"] == "dropped")
            for reason in ("queue_full", "timeout", "shutdown", "error"):
                by_reason = (lab[0], ("reason", reason), lab[1])
                assert samples[("mellm_dropped_total", by_reason)] == reasons[reason]
            assert samples[("mellm_seq_gaps_total", lab)] == 0
            status = [e for e in events if e["type"] == "status"][-1]
            assert samples[("mellm_uptime_seconds", lab)] == status["uptime_s"]
        assert kinds["dropped"] == kinds["candidate"] > 0  # droppy: every candidate dropped
        for name, journal in journals.items():
            port = ports[name]
            header = driver.find_element(By.CSS_SELECTOR, f'#endpoints [data-endpoint="tcp://127.0.0.1:{port}"]')
            assert header.text.startswith(f"tcp://127.0.0.1:{port}: {len(read_journal(journal))} msgs")

        shot = tmp_path / "dashboard.png"
        driver.execute_script("window.scrollTo(0, 0)")
        assert driver.save_screenshot(str(shot))
        with capsys.disabled():
            print(f"\ndashboard screenshot: {shot}")
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe
    finally:
        driver.quit()
        for p in reversed(procs):
            _stop(p)
