"""CURVE on real loopback sockets: allowed keys receive everything, everyone else nothing (fail closed)."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.errors import UserError
from engine.events import make_event
from engine.keys import generate
from engine.keys import main as keys_main
from engine.publish import PublishConfig, ZmqPublisher
from engine.subscribe import Subscriber
from tests.helpers import ROOT, env, free_port

N_EVENTS = 25


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Any]:
    """A server pair, an allowed client 'alice', a stranger 'mallory' and the allowlist folder."""
    kdir, allow = tmp_path / "keys", tmp_path / "allowed"
    out: dict[str, Any] = {"dir": kdir, "allow": allow}
    for name in ("server", "alice", "mallory"):
        out[name] = generate(kdir, name)
    allow.mkdir()
    (allow / "alice.key").write_bytes(out["alice"][0].read_bytes())
    return out


def curve_cfg(tmp_path: Path, keys: dict[str, Any], **kw: Any) -> PublishConfig:
    return PublishConfig(
        endpoint=f"tcp://127.0.0.1:{free_port()}",
        journal=str(tmp_path / "events.jsonl"),
        curve_secret_key=str(keys["server"][1]),
        curve_allow_dir=str(keys["allow"]),
        startup_wait_s=0,
        linger_ms=500,
        **kw,
    )


def events(n: int = N_EVENTS) -> list[dict[str, Any]]:
    return [make_event("error", "cam0", where="test", message=f"secret {i}") for i in range(n)]


def collect(sub: Subscriber, timeout_s: float) -> list[dict[str, Any]]:
    got = []
    while (msg := sub.recv(timeout_s)) is not None:
        got.append(msg.event)
    return got


def test_curve_when_client_key_allowed_then_receives_everything(tmp_path: Path, keys: dict[str, Any]) -> None:
    pub = ZmqPublisher(curve_cfg(tmp_path, keys))
    try:
        with Subscriber(
            pub.endpoint, curve_server_key=keys["server"][0], curve_client_key=keys["alice"][1]
        ) as sub:
            assert pub.wait_for_subscribers(1, 10), "the allowed client never completed the handshake"
            for ev in events():
                pub.emit(ev)
            got = collect(sub, 3.0)
            assert sub.handshakes >= 1 and sub.handshake_failures == 0
    finally:
        pub.close()
    assert [e["seq"] for e in got] == list(range(N_EVENTS))
    assert [e["message"] for e in got] == [f"secret {i}" for i in range(N_EVENTS)]


@pytest.mark.parametrize(
    ("client", "server_key", "hint"),
    [
        ("none", "server", "security mismatch"),  # a plain subscriber, no CURVE at all
        ("mallory", "server", "refused this client's key"),  # a valid pair that is not allowed
        ("alice", "mallory", "wrong --curve-server-key"),  # allowed client, wrong server public key
    ],
)
def test_curve_when_client_not_admitted_then_receives_nothing_and_no_crash(
    tmp_path: Path,
    keys: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    client: str,
    server_key: str,
    hint: str,
) -> None:
    pub = ZmqPublisher(curve_cfg(tmp_path, keys))
    curve = (
        {}
        if client == "none"
        else {"curve_server_key": keys[server_key][0], "curve_client_key": keys[client][1]}
    )
    try:
        # An allowed subscriber alongside proves the events really went out while the intruder listened.
        with (
            Subscriber(pub.endpoint, **curve) as intruder,
            Subscriber(
                pub.endpoint, curve_server_key=keys["server"][0], curve_client_key=keys["alice"][1]
            ) as friend,
            caplog.at_level(logging.WARNING, logger="engine.subscribe"),
        ):
            assert pub.wait_for_subscribers(1, 10)
            assert not pub.wait_for_subscribers(2, 1.5), "the intruder's subscription reached the publisher"
            for ev in events():
                pub.emit(ev)
            assert len(collect(friend, 3.0)) == N_EVENTS
            assert collect(intruder, 1.0) == []
            assert intruder.handshake_failures >= 1 and intruder.handshakes == 0
    finally:
        pub.close()
    assert pub.stats().sent == N_EVENTS
    assert sum(hint in r.getMessage() for r in caplog.records) == 1  # one line per cause, not a flood


def test_curve_when_server_configured_wrongly_then_one_line_usererror(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    ep = f"tcp://127.0.0.1:{free_port()}"
    bad = tmp_path / "bad.key_secret"
    bad.write_text("not a certificate\n")
    cases = [
        (
            {"curve_secret_key": str(tmp_path / "missing.key_secret"), "curve_allow_dir": str(keys["allow"])},
            "not found",
        ),
        ({"curve_secret_key": str(bad), "curve_allow_dir": str(keys["allow"])}, "not a ZeroMQ certificate"),
        (
            {"curve_secret_key": str(keys["server"][0]), "curve_allow_dir": str(keys["allow"])},
            "no secret key",
        ),
        ({"curve_secret_key": str(keys["server"][1])}, "curve_allow_dir is not"),
        ({"curve_allow_dir": str(keys["allow"])}, "curve_secret_key is not"),
        (
            {"curve_secret_key": str(keys["server"][1]), "curve_allow_dir": str(tmp_path / "nope")},
            "allowlist folder",
        ),
        (
            {
                "curve_secret_key": str(keys["server"][1]),
                "curve_allow_dir": str(keys["allow"]),
                "connect": True,
            },
            "bound endpoint",
        ),
    ]
    for kw, match in cases:
        with pytest.raises(UserError, match=match) as info:
            ZmqPublisher(PublishConfig(endpoint=ep, startup_wait_s=0, **kw)).close()
        assert "\n" not in str(info.value)
    # nothing was left bound: the endpoint is still free
    ZmqPublisher(PublishConfig(endpoint=ep, startup_wait_s=0)).close()


def test_subscriber_when_key_files_bad_then_usererror(tmp_path: Path, keys: dict[str, Any]) -> None:
    ep = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(UserError, match="needs both"):
        Subscriber(ep, curve_server_key=keys["server"][0])
    with pytest.raises(UserError, match="no secret key"):
        Subscriber(ep, curve_server_key=keys["server"][0], curve_client_key=keys["alice"][0])
    with pytest.raises(UserError, match="not found"):
        Subscriber(ep, curve_server_key=tmp_path / "x.key", curve_client_key=keys["alice"][1])


def test_cli_when_curve_keys_then_subscriber_process_receives(tmp_path: Path, keys: dict[str, Any]) -> None:
    pub = ZmqPublisher(curve_cfg(tmp_path, keys))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.subscribe",
            pub.endpoint,
            "--json",
            "--count",
            "3",
            "--timeout",
            "10",
            "--curve-server-key",
            str(keys["server"][0]),
            "--curve-client-key",
            str(keys["alice"][1]),
        ],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert pub.wait_for_subscribers(1, 20)
        for ev in events(3):
            pub.emit(ev)
        out, err = proc.communicate(timeout=20)
    finally:
        pub.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.splitlines() == Path(tmp_path / "events.jsonl").read_text().splitlines()


def test_bind_when_not_loopback_without_curve_then_one_warning_line_on_stderr() -> None:
    port = free_port()
    code = (
        "from engine.publish import PublishConfig, ZmqPublisher\n"
        f"ZmqPublisher(PublishConfig(endpoint='tcp://0.0.0.0:{port}', startup_wait_s=0)).close()\n"
        f"ZmqPublisher(PublishConfig(endpoint='tcp://127.0.0.1:{port}', startup_wait_s=0)).close()\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "UNENCRYPTED" in lines[0] and f"0.0.0.0:{port}" in lines[0]
    assert "curve_secret_key" in lines[0]


def test_keys_cli_when_generate_then_pair_written_private_and_never_overwritten(tmp_path: Path) -> None:
    assert keys_main(["generate", str(tmp_path / "k"), "--name", "edge"]) == 0
    secret = tmp_path / "k" / "edge.key_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    before = secret.read_bytes()
    assert keys_main(["generate", str(tmp_path / "k"), "--name", "edge"]) == 2
    assert secret.read_bytes() == before
    assert keys_main(["generate", str(tmp_path / "k"), "--name", "../evil"]) == 2


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("tcp://127.0.0.1:5556", True),
        ("tcp://localhost:5556", True),
        ("tcp://lo:5556", True),
        ("tcp://[::1]:5556", True),
        ("ipc:///tmp/mellm.sock", True),
        ("inproc://events", True),
        ("tcp://0.0.0.0:5556", False),
        ("tcp://*:5556", False),
        ("tcp://eth0:5556", False),
        ("tcp://lobby.example.com:5556", False),
        ("tcp://localhost.example.com:5556", False),
        ("tcp://127.0.0.1.example.com:5556", False),
    ],
)
def test_is_loopback_when_endpoint_then_only_true_loopback_counts(endpoint: str, local: bool) -> None:
    from engine.publish import is_loopback

    assert is_loopback(endpoint) is local
