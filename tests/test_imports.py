"""The import direction of pyproject.toml's [tool.importlinter] contracts, checked by import-linter.

Runtime stages import only earlier stages, the runtime never imports the commands that consume its
events nor the offline tools (evaluation/, training/; bench/ is scripts, not a package), and no
package has import cycles between its sub-packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_when_linted_then_all_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "5 kept, 0 broken" in proc.stdout


def test_import_contracts_when_a_stage_imports_a_later_one_then_broken(tmp_path: Path) -> None:
    """The contracts can fail: a copy of the tree where the face stage imports the explainers."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is missing: install the dev extra (pip install -e '.[dev]')")
    for name in ("engine", "spotting", "exporters", "evaluation", "training"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.npy"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "engine" / "face" / "__init__.py"
    bad.write_text(bad.read_text() + "\nfrom engine.explain import rules  # noqa: E402,F401\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    proc = subprocess.run(
        [exe, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode != 0
    assert "engine.face" in proc.stdout and "engine.explain" in proc.stdout and "BROKEN" in proc.stdout
