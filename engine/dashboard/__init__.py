"""The operator's live dashboard: ``python -m engine.dashboard --sub tcp://127.0.0.1:5556``.

A small Starlette web app that is itself a ZeroMQ subscriber of one or several engines: per stream
the health of ``status`` with a short history chart, the timeline of candidates with their fused
maps, action units, emotion, explanation (or the reason they were dropped) and event clips, live by
server-sent events; ``/metrics`` in the Prometheus text format. See `engine.dashboard.app`.

The page shows faces: clips come only from its own clip folder, any non-loopback bind needs a
credential (`engine.dashboard.auth`), and CURVE keys make it hear only the real engine.
"""

from __future__ import annotations

__all__ = ["Dashboard", "DashboardState", "create_app"]


def __getattr__(name: str) -> object:
    # Lazy: importing the package (e.g. for its docstring) must not pull in Starlette.
    if name in ("Dashboard", "create_app"):
        from engine.dashboard import app

        return getattr(app, name)
    if name == "DashboardState":
        from engine.dashboard.state import DashboardState

        return DashboardState
    raise AttributeError(name)
