"""What a run was made with: the validated configuration and the versions of the code under it.

The pipeline puts this in the ``run`` field of its first ``status`` event (an extra field, which the
contract allows), so a journal says how to reproduce its own results (`python -m engine.report`
shows it). Versions come from the installed distributions' metadata: nothing heavy is imported.
Credentials written into URLs (``rtsp://user:password@camera``) are masked.

>>> info = run_info({"source": {"spec": "rtsp://ana:secret@10.0.0.5/live"}})
>>> info["config"]["source"]["spec"]
'rtsp://***@10.0.0.5/live'
"""

from __future__ import annotations

import platform
import re
from importlib import metadata
from typing import Any

#: Distributions whose versions decide the results (the first installed name of each group).
DISTRIBUTIONS = (
    ("mellm-stream",),
    ("numpy",),
    ("opencv-contrib-python-headless", "opencv-contrib-python", "opencv-python-headless", "opencv-python"),
    ("mediapipe",),
    ("scikit-image",),
    ("pyzmq",),
    ("pydantic",),
    ("torch",),
    ("transformers",),
    ("peft",),
    ("onnxruntime", "onnxruntime-gpu"),
)

_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def versions() -> dict[str, str]:
    """Python and the installed version of each distribution in `DISTRIBUTIONS` (absent ones left out)."""
    out = {"python": platform.python_version()}
    for names in DISTRIBUTIONS:
        for name in names:
            try:
                out[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
            break
    return out


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return _USERINFO.sub("***@", value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def run_info(config: dict[str, Any]) -> dict[str, Any]:
    """``{"config": <config with URL credentials masked>, "versions": versions()}``.

    ``config``: the engine's configuration as JSON-ready data (``cfg.model_dump(mode="json")``).
    """
    return {"config": _mask(config), "versions": versions()}
