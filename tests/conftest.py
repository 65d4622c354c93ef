"""Shared fixtures: where the real data lives, and skips with a reason when it does not."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """A shell starts background jobs (``pytest &``, a CI script run with ``&``) with Ctrl-C ignored,
    and every process they spawn inherits that: the tests that send SIGINT to the CLIs would then
    wait for exits that never come. The tests run with Ctrl-C delivered, as in a terminal."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a pytest skip naming what is missing."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real test data {p} is absent (it lives in ../shared/data beside the checkout)")
    return p


@pytest.fixture
def shared_data() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def face_model() -> Path:
    """The MediaPipe face landmarker model, resolved the way the engine resolves it."""
    from engine.errors import UserError
    from engine.face.model import resolve_face_model

    try:
        return resolve_face_model(None)
    except UserError as exc:
        pytest.skip(f"no face model: {exc}")


@pytest.fixture
def farneback_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls of the Farneback flow backend's ``compute`` (it still computes): which
    backend a command really used."""
    from engine.flow.opencv_backends import FarnebackFlow

    calls: list[int] = []
    compute = FarnebackFlow.compute

    def counting(self: FarnebackFlow, prev: object, nxt: object) -> object:
        calls.append(1)
        return compute(self, prev, nxt)

    monkeypatch.setattr(FarnebackFlow, "compute", counting)
    return calls
