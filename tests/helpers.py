"""Helpers shared by the subprocess tests: free ports, running the CLI, reading journals."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("PYTHONUNBUFFERED", "1")
    return e


def run_cli(
    *args: str, timeout: float = 300, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python run_stream.py ARGS`` in a subprocess, from the repository root; the demo runs flat out
    (``--fast``) unless ``--realtime`` is given, to keep tests fast."""
    if "demo" in args and "--realtime" not in args and "--fast" not in args:
        args = (*args, "--fast")
    e = env()
    e.update(extra_env or {})
    return subprocess.run(
        [sys.executable, str(ROOT / "run_stream.py"), *args],
        cwd=ROOT,
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_journal(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_accounting(events: list[dict[str, Any]]) -> dict[str, str]:
    """Each candidate: one candidate event, then exactly one explanation or dropped. Returns id → outcome."""
    seen: dict[str, str] = {}
    outcome: dict[str, str] = {}
    for ev in events:
        cid = ev.get("candidate_id")
        if ev["type"] == "candidate":
            assert cid not in seen, f"candidate {cid} published twice"
            seen[cid] = "candidate"
        elif ev["type"] in ("explanation", "dropped"):
            assert cid in seen, f"{ev['type']} for {cid} before its candidate event"
            assert cid not in outcome, f"candidate {cid} ended twice"
            outcome[cid] = ev["type"]
    missing = set(seen) - set(outcome)
    assert not missing, f"candidates that never ended: {missing}"
    return outcome
