"""Flow backends by name: ``engine.flow.create("opencv-tvl1")``.

Every backend maps two grey H×W uint8 frames to H×W×2 float32 flow (pixels, x right, y down).
Heavy backends (torch, onnxruntime) are imported only when created.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from engine.flow.base import FlowBackend
from engine.registry import Registry

FLOW_BACKENDS: Registry[FlowBackend] = Registry("flow backend")
FLOW_BACKENDS.register("opencv-tvl1", "engine.flow.opencv_backends:OpenCVTVL1")
FLOW_BACKENDS.register("dis", "engine.flow.opencv_backends:DISFlow")
FLOW_BACKENDS.register("farneback", "engine.flow.opencv_backends:FarnebackFlow")
FLOW_BACKENDS.register("torch-tvl1", "engine.flow.torch_tvl1:TorchTVL1")
FLOW_BACKENDS.register("onnx", "engine.flow.onnx_backend:OnnxFlow")


def auto(**params: Any) -> FlowBackend:
    """``auto``: ``torch-tvl1`` when torch is installed (same TV-L1, faster; bench/flow.py), else
    ``opencv-tvl1``, the reference. The backend's ``name`` says which one was picked."""
    name = "torch-tvl1" if importlib.util.find_spec("torch") is not None else "opencv-tvl1"
    return FLOW_BACKENDS.create(name, **params)


FLOW_BACKENDS.register("auto", auto)


def create(name: str, **params: Any) -> FlowBackend:
    """The flow backend registered as ``name``, built with ``params``."""
    return FLOW_BACKENDS.create(name, **params)


def for_spotting(name: str, params: dict[str, Any]) -> Callable[[Any, Any], Any] | None:
    """The flow function of the spotting signal (``SpottingConfig.flow`` / ``flow_params``): the named
    backend's ``compute``, or None for the spotter's built-in DIS (empty name). Made by whoever runs
    the spotter (pipeline, evaluation, benchmark), so the spotting stage never imports this later one."""
    return create(name, **params).compute if name else None


def check_spotting_names(cfg: Any) -> None:
    """Raise `engine.errors.UnknownNameError` (one line, the valid names) when the spotting config
    ``cfg`` names an unknown spotter or flow backend: commands check before hours of work, not after."""
    from spotting import SPOTTERS

    SPOTTERS.resolve_name(cfg.name)
    if cfg.flow:
        FLOW_BACKENDS.resolve_name(cfg.flow)


def names() -> list[str]:
    return FLOW_BACKENDS.names()
