"""The project folder: what the README's commands write there is never committed by accident."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Outputs of README commands run from the project folder (clips, maps, explain_pair --out, reports,
# CURVE key pairs); a secret key must be ignored wherever it lands.
OUTPUTS = [
    "clips/demo_0001.mp4",
    "maps/demo_0001.png",
    "out/map.png",
    "report/index.html",
    "keys/server.key",
    "keys/server.key_secret",
    "clients/alice.key_secret",
    "elsewhere/server.key_secret",
    "j.jsonl",
]


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a git checkout"
)
@pytest.mark.parametrize("path", OUTPUTS)
def test_gitignore_when_readme_commands_write_outputs_ignores_them(path: str) -> None:
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, f"{path} would be committed: add it to .gitignore"
