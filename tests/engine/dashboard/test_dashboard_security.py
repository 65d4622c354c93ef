"""The dashboard as an attacker meets it: a real ``python -m engine.dashboard`` process, real ZeroMQ
publishers on loopback and real HTTP requests (issue #23).

* events naming files outside the clip folder (``/etc/passwd``, ``..``, links) get 404, never bytes;
* with a credential required every route answers 401 without it and 200 with it;
* a dashboard subscribed with CURVE never shows what a publisher without the engine's key sent.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from engine.events import make_event
from engine.keys import generate
from engine.publish.config import PublishConfig
from engine.publish.zmq_publisher import ZmqPublisher
from tests.helpers import env, free_port

TOKEN = "tok-" + "7" * 28
SECRET = "the content of a private file\n"


class DashboardProcess:
    """``python -m engine.dashboard ARGS`` on a free port of ``host``; stopped by `stop`."""

    def __init__(self, tmp: Path, *args: str, host: str = "127.0.0.1", headers: dict[str, str] | None = None,
                 extra_env: dict[str, str] | None = None, scheme: str = "http", verify: Any = True) -> None:
        self.url = f"{scheme}://{host}:{free_port()}"
        self.log = tmp / f"dashboard-{time.monotonic_ns()}.log"
        e = env()
        e.pop("MELLM_DASHBOARD_TOKEN", None)
        e.update(extra_env or {})
        bind = self.url.split("//")[1]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "engine.dashboard", "--bind", bind, *args],
                                         cwd=tmp, env=e, stdout=out, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=self.url, headers=headers or {}, timeout=20, verify=verify)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                self.client.get("/metrics")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"the dashboard never answered: {self.log.read_text()}"
                time.sleep(0.1)

    def state(self) -> dict[str, Any]:
        r = self.client.get("/api/state")
        assert r.status_code == 200, r.text
        return r.json()

    def until(self, check: Any, what: str, timeout_s: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not check(s := self.state()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {s}"
            time.sleep(0.05)
        return s

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


def publisher(endpoint: str, **curve: str) -> ZmqPublisher:
    return ZmqPublisher(PublishConfig(endpoint=endpoint, startup_wait_s=0, **curve))


def candidate(cid: str) -> dict[str, Any]:
    point = {"frame": 10, "t": 0.4}
    return make_event("candidate", "cam0", candidate_id=cid, onset=point, apex=point, offset=point,
                      kind="micro", score=4.0, regions=["mouth_corner_L"])


def explanation(cid: str, clip: str) -> dict[str, Any]:
    return make_event("explanation", "cam0", candidate_id=cid, aus=[], emotion="others", emotion_detail="",
                      text="", explainer="rules", latency_ms=1.0, clip=clip)


def raw_get(url: str, path: str) -> bytes:
    """The raw HTTP/1.1 answer to ``GET path`` sent byte for byte (no client-side normalising)."""
    host, port = url.split("//")[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def write_clip(path: Path) -> bytes:
    """A real 6-frame mp4v clip at ``path``; returns its bytes."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 32))
    assert w.isOpened()
    for k in range(6):
        w.write(np.full((32, 64, 3), 40 * k, np.uint8))
    w.release()
    return path.read_bytes()


def test_dashboard_when_events_name_files_outside_clips_dir_serves_404_and_no_content(tmp_path: Path) -> None:
    """The attack of issue #23, and its traversal and link variants, against one dashboard."""
    clips, outside = tmp_path / "clips", tmp_path / "outside"
    clips.mkdir()
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text(SECRET)
    for name in ("abs", "dotdot", "rel"):  # right file names, wrong folder
        (outside / f"{name}.mp4").write_text(SECRET)
    (clips / "link.mp4").symlink_to(secret)  # a link inside the folder leading out of it
    (clips / "hard.mp4").write_text(SECRET)  # a clip the dashboard never heard of
    good = write_clip(clips / "good.mp4")
    named = {
        "passwd": "/etc/passwd",
        "abs": str(outside / "abs.mp4"),
        "dotdot": f"{clips}/../outside/dotdot.mp4",
        "rel": "../outside/rel.mp4",
        "link": str(clips / "link.mp4"),
        "other": str(clips / "good.mp4"),  # another candidate's clip
        "good": str(clips / "good.mp4"),
    }
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    dash = DashboardProcess(tmp_path, "--sub", endpoint, "--clips-dir", str(clips))
    pub = publisher(endpoint)
    try:
        assert pub.wait_for_subscribers(1, 20), "the dashboard never subscribed"
        for cid, clip in named.items():
            pub.emit(candidate(cid))
            pub.emit(explanation(cid, clip))
        dash.until(lambda s: s["endpoints"][0]["messages"] == 2 * len(named), "the events")

        assert dash.client.get("/clips/good.mp4").content == good  # the test can tell a served clip
        assert dash.client.get("/clips/good.webm").status_code == 200
        paths = [f"/clips/{cid}.{ext}" for cid in named if cid != "good" for ext in ("mp4", "webm")]
        paths += ["/clips/hard.mp4", "/clips/..%2Foutside%2Fabs.mp4", "/clips/%2Fetc%2Fpasswd.mp4",
                  "/clips/....%2F%2Fsecret.txt.mp4", "/clips/%2E%2E.mp4"]
        with ThreadPoolExecutor(len(paths)) as pool:  # a missing clip is waited for a few seconds
            answers = dict(zip(paths, pool.map(dash.client.get, paths), strict=True))
        raw = raw_get(dash.url, "/clips/../outside/abs.mp4")  # httpx would remove the ../ itself
        views = {c["candidate_id"]: c for c in dash.state()["candidates"]}
    finally:
        pub.close()
        dash.stop()
    for path, r in answers.items():
        assert r.status_code == 404, (path, r.status_code)
        assert "private file" not in r.text and "root:" not in r.text, path
    assert raw.startswith(b"HTTP/1.1 404") and b"private file" not in raw
    assert views["good"]["clip_url"] == "/clips/good.mp4"
    assert views["passwd"]["clip_url"] is None and views["other"]["clip_url"] is None  # not <id>.mp4


@pytest.mark.parametrize("source", ["token file", "token env", "basic file"])
def test_dashboard_when_auth_required_answers_401_without_credential_and_200_with(
    tmp_path: Path, source: str
) -> None:
    """Bound to the loopback alias 127.0.0.2 with --require-auth: what a non-loopback bind enforces."""
    secret = tmp_path / "secret"
    args = ["--sub", f"tcp://127.0.0.1:{free_port()}", "--require-auth"]
    extra: dict[str, str] = {}
    if source == "basic file":
        secret.write_text(f"ops:{TOKEN}\n")
        args += ["--basic-auth-file", str(secret)]
        good = {"Authorization": "Basic " + base64.b64encode(f"ops:{TOKEN}".encode()).decode()}
        wrong = {"Authorization": "Basic " + base64.b64encode(f"eve:{TOKEN}".encode()).decode()}
    else:
        good = {"Authorization": f"Bearer {TOKEN}"}
        wrong = {"Authorization": f"Bearer {TOKEN[:-1]}x"}
        if source == "token file":
            secret.write_text(TOKEN + "\n")
            args += ["--token-file", str(secret)]
        else:
            extra["MELLM_DASHBOARD_TOKEN"] = TOKEN
    if secret.exists():
        secret.chmod(0o600)
    dash = DashboardProcess(tmp_path, *args, host="127.0.0.2", headers=good, extra_env=extra)
    routes = ["/", "/api/state", "/metrics", "/static/app.js", "/maps/c1.png", "/clips/c1.mp4", "/events"]
    try:
        with httpx.Client(base_url=dash.url, timeout=20) as anon:
            for route in routes:
                for headers in ({}, wrong, {"Authorization": "Bearer"}, {"Authorization": "Basic !!"}):
                    r = anon.get(route, headers=headers)
                    assert r.status_code == 401, (route, headers, r.status_code)
                    assert r.headers["www-authenticate"].startswith("Basic realm=")
                    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        for route in routes[:4]:
            assert dash.client.get(route).status_code == 200, route
        assert dash.client.get("/maps/c1.png").status_code == 404  # through the gate, nothing there
        with dash.client.stream("GET", "/events") as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        if source != "basic file":  # a browser logs in with the token as password, any user name
            browser = {"Authorization": "Basic " + base64.b64encode(f"anyone:{TOKEN}".encode()).decode()}
            assert dash.client.get("/", headers=browser).status_code == 200
    finally:
        dash.stop()


@pytest.mark.parametrize(
    ("bind", "args", "message"),
    [
        ("0.0.0.0", [], "--bind 0.0.0.0:"),
        ("127.0.0.2", ["--require-auth"], "--require-auth is set"),
        ("0.0.0.0", ["--token-file", "missing.txt"], "cannot read --token-file missing.txt"),
        ("127.0.0.1", ["--tls-cert", "cert.pem"], "--tls-cert CERT.pem and --tls-key"),
    ],
)
def test_dashboard_cli_when_credential_missing_refuses_to_start_with_one_line(
    tmp_path: Path, bind: str, args: list[str], message: str
) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "engine.dashboard", "--sub", "tcp://127.0.0.1:5556",
         "--bind", f"{bind}:{free_port()}", *args],
        cwd=tmp_path, env={**env(), "MELLM_DASHBOARD_TOKEN": ""}, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    if "0.0.0.0" in message:
        assert "--token-file" in lines[0] and "--basic-auth-file" in lines[0]


def test_dashboard_when_tls_files_given_serves_https_only(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=120,
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    dash = DashboardProcess(tmp_path, "--sub", f"tcp://127.0.0.1:{free_port()}", "--tls-cert", str(cert),
                            "--tls-key", str(key), scheme="https", verify=trusted)
    try:
        assert dash.client.get("/api/state").status_code == 200
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port gets no page
            httpx.get(dash.url.replace("https:", "http:") + "/api/state", timeout=10)
        with pytest.raises(httpx.ConnectError):  # and a client that cannot verify the server stops
            httpx.get(dash.url + "/api/state", timeout=10)
    finally:
        dash.stop()


@pytest.mark.parametrize("intruder", ["no CURVE", "another key pair"])
def test_dashboard_with_curve_when_unauthenticated_publisher_sends_shows_only_the_engines_events(
    tmp_path: Path, intruder: str
) -> None:
    kdir, allow = tmp_path / "keys", tmp_path / "allowed"
    keys = {name: generate(kdir, name) for name in ("server", "dashboard", "mallory")}
    allow.mkdir()
    (allow / "dashboard.key").write_bytes(keys["dashboard"][0].read_bytes())
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    dash = DashboardProcess(tmp_path, "--sub", endpoint, "--curve-server-key", str(keys["server"][0]),
                            "--curve-client-key", str(keys["dashboard"][1]))
    bad_curve = {} if intruder == "no CURVE" else {
        "curve_secret_key": str(keys["mallory"][1]), "curve_allow_dir": str(allow)}
    try:
        bad = publisher(endpoint, **bad_curve)
        try:
            # The dashboard reached the intruder and refused it: only then does the intruder publish.
            dash.until(lambda s: s["endpoints"][0]["handshake_failures"] >= 1, "a refused handshake")
            for cid in ("forged1", "forged2"):
                bad.emit(candidate(cid))
                bad.emit(explanation(cid, "/etc/passwd"))
        finally:
            bad.close()
        good = publisher(endpoint, curve_secret_key=str(keys["server"][1]), curve_allow_dir=str(allow))
        try:
            assert good.wait_for_subscribers(1, 20), "the dashboard never completed the CURVE handshake"
            good.emit(candidate("real1"))
        finally:
            good.close()
        state = dash.until(lambda s: s["candidates"], "the engine's candidate")
        metrics = dash.client.get("/metrics").text
    finally:
        dash.stop()
    assert [c["candidate_id"] for c in state["candidates"]] == ["real1"]
    assert state["endpoints"][0]["messages"] == 1
    assert f'mellm_handshake_failures_total{{endpoint="{endpoint}"}}' in metrics


def test_dashboard_cli_when_run_from_elsewhere_serves_clips_only_from_its_clips_dir(tmp_path: Path) -> None:
    """The default --clips-dir is the engine's default clips.dir, relative to where it runs."""
    (tmp_path / "clips").mkdir()
    data = write_clip(tmp_path / "clips" / "c7.mp4")
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    dash = DashboardProcess(tmp_path, "--sub", endpoint)
    pub = publisher(endpoint)
    try:
        assert pub.wait_for_subscribers(1, 20)
        pub.emit(candidate("c7"))
        pub.emit(explanation("c7", os.path.join("/elsewhere/on/the/engine", "c7.mp4")))
        dash.until(lambda s: s["endpoints"][0]["messages"] == 2, "the events")
        assert dash.client.get("/clips/c7.mp4").content == data
    finally:
        pub.close()
        dash.stop()
