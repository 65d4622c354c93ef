"""The face stage: MediaPipe landmarks, blendshapes and the aligned grey face crop.

``create_tracker(cfg)`` resolves the model file and builds the tracker; importing this package
stays cheap (mediapipe is loaded only when a tracker is created).

>>> tracker = create_tracker(FaceConfig())  # doctest: +SKIP
"""

from __future__ import annotations

from engine.face.base import FaceTracker
from engine.face.config import FaceConfig


def create_tracker(cfg: FaceConfig) -> FaceTracker:
    """The face tracker for ``cfg``: model resolved by `engine.face.model.resolve_face_model`."""
    from engine.face.mediapipe_tracker import MediaPipeTracker

    return MediaPipeTracker.from_config(cfg)


__all__ = ["FaceConfig", "FaceTracker", "create_tracker"]
