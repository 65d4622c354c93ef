"""The XSUB/XPUB proxy with real processes: several engines, one subscriber address, seq per stream."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from engine.events import make_event
from engine.keys import generate
from engine.proxy import Proxy
from engine.publish import PublishConfig, ZmqPublisher, read_lines
from engine.subscribe import SeqTracker, Subscriber
from tests.helpers import ROOT, env, free_port

PUBLISHER = """
import sys, time
from engine.events import make_event
from engine.publish import PublishConfig, ZmqPublisher
endpoint, stream, n, journal = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
pub = ZmqPublisher(PublishConfig(endpoint=endpoint, connect=True, journal=journal, startup_wait_s=0))
assert pub.wait_for_subscribers(1, 30), "no subscription came through the proxy"
for i in range(n):
    pub.emit(make_event("error", stream, where="proxy-test", message=str(i)))
    if i % 20 == 0:
        time.sleep(0.01)
pub.close()
print(pub.stats().sent)
"""


def start_proxy(xsub: str, xpub: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine.proxy", "--xsub", xsub, "--xpub", xpub, *extra],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_proxy_when_two_engine_processes_then_one_subscriber_gets_both_gap_free(tmp_path: Path) -> None:
    xsub, xpub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proxy = start_proxy(xsub, xpub)
    n = 300
    pubs: list[subprocess.Popen[str]] = []
    got: list[dict[str, Any]] = []
    try:
        with Subscriber(xpub) as sub:
            for k in range(2):
                pubs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-c",
                            PUBLISHER,
                            xsub,
                            f"cam{k}",
                            str(n),
                            str(tmp_path / f"cam{k}.jsonl"),
                        ],
                        cwd=ROOT,
                        env=env(),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
            while len(got) < 2 * n and (msg := sub.recv(20.0)) is not None:
                got.append(msg.event)
        outs = [p.communicate(timeout=60) for p in pubs]
    finally:
        for p in [*pubs, proxy]:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        _, proxy_err = proxy.communicate(timeout=30)
    for p, (out, err) in zip(pubs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == str(n)
    assert proxy.returncode == 0, proxy_err
    assert "proxy stopped" in proxy_err and f"'forwarded': {2 * n}" in proxy_err
    tracker = SeqTracker()
    warnings = [w for e in got if (w := tracker.update(e["seq"], e["stream"]))]
    assert warnings == [] and tracker.missed == 0
    for k in range(2):
        mine = [e for e in got if e["stream"] == f"cam{k}"]
        assert [e["seq"] for e in mine] == list(range(n))
        assert [e["message"] for e in mine] == [str(i) for i in range(n)]
        assert len(list(read_lines(tmp_path / f"cam{k}.jsonl"))) == n  # each engine journals its own


def test_seq_tracker_when_streams_interleave_then_gaps_per_stream() -> None:
    t = SeqTracker()
    seen = [t.update(s, st) for s, st in [(0, "a"), (0, "b"), (1, "a"), (1, "b"), (2, "b"), (4, "a")]]
    assert seen[:5] == [None] * 5
    assert seen[5] == "gap: missed 2 events (seq 2..3) on stream a"
    assert t.missed_by_stream == {"a": 2}


def test_proxy_when_curve_on_xpub_then_only_allowed_subscriber_receives(tmp_path: Path) -> None:
    kdir, allow = tmp_path / "keys", tmp_path / "allow"
    server, alice, mallory = (generate(kdir, name) for name in ("server", "alice", "mallory"))
    allow.mkdir()
    (allow / "alice.key").write_bytes(alice[0].read_bytes())
    xsub, xpub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proxy = Proxy(xsub, xpub, curve_secret_key=str(server[1]), curve_allow_dir=str(allow))
    t = threading.Thread(target=proxy.run)
    t.start()
    pub = ZmqPublisher(PublishConfig(endpoint=xsub, connect=True, startup_wait_s=0))
    try:
        with (
            Subscriber(xpub, curve_server_key=server[0], curve_client_key=alice[1]) as good,
            Subscriber(xpub, curve_server_key=server[0], curve_client_key=mallory[1]) as bad,
        ):
            assert pub.wait_for_subscribers(1, 20)
            for i in range(20):
                pub.emit(make_event("error", "cam0", where="t", message=str(i)))
            got = []
            while (msg := good.recv(3.0)) is not None:
                got.append(msg.event["seq"])
            assert got == list(range(20))
            assert bad.recv(0.5) is None and bad.handshake_failures >= 1
    finally:
        pub.close()
        proxy.stop()
        t.join(10)
        proxy.close()
    assert proxy.stats().forwarded == 20
