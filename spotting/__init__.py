"""Spotting: online detectors that turn face observations into candidate intervals, chosen by name.

>>> from spotting.config import SpottingConfig
>>> create_spotter(SpottingConfig(), stream="cam0", fps=30.0).flush()
[]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.errors import UserError
from engine.registry import Registry
from spotting.base import Spotter
from spotting.config import SpottingConfig

SPOTTERS: Registry[Spotter] = Registry("spotter")
SPOTTERS.register("region-bump", "spotting.bump:create")


def create_spotter(
    cfg: SpottingConfig, stream: str, fps: float, flow: Callable[[Any, Any], Any] | None = None
) -> Spotter:
    """The spotter named ``cfg.name`` for ``stream`` at ``fps`` frames per second.

    ``flow``: the flow function of the spotting signal (``prev, next -> H×W×2``), i.e. the
    ``compute`` of the backend named in ``cfg.flow``, made by the pipeline; None = built-in DIS.
    An unknown name or a missing frame rate is a `UserError` (the command line exits 2).
    """
    if not fps or fps <= 0:
        raise UserError(f"spotting needs the stream's frame rate, got {fps!r}; pass --fps F")
    return SPOTTERS.create(cfg.name, cfg=cfg, stream=stream, fps=fps, flow=flow)
