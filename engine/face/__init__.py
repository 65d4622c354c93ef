"""The face stage: MediaPipe landmarks, blendshapes and the aligned grey face crop.

``create_tracker(cfg)`` resolves the model file and builds the tracker; importing this package
stays cheap (mediapipe is loaded only when a tracker is created).

>>> tracker = create_tracker(FaceConfig())  # doctest: +SKIP
"""

from __future__ import annotations

from engine.face.base import FaceTracker
from engine.face.config import FaceConfig


def create_tracker(cfg: FaceConfig) -> FaceTracker:
    """The face tracker for ``cfg``: model resolved by `engine.face.model.resolve_face_model`.

    With ``cfg.reuse_max > 0`` the landmarker runs at least every ``reuse_max + 1`` frames and the
    frames between reuse its landmarks, moved by a similarity tracked on rigid points
    (`engine.face.reuse.ReusingTracker`), so high-speed cameras keep up on a CPU.
    """
    from engine.face.mediapipe_tracker import MediaPipeTracker

    tracker = MediaPipeTracker.from_config(cfg)
    if cfg.reuse_max > 0:
        from engine.face.reuse import ReuseConfig, ReusingTracker

        return ReusingTracker(tracker, ReuseConfig(max_reuse=cfg.reuse_max), cfg.crop_size)
    return tracker


__all__ = ["FaceConfig", "FaceTracker", "create_tracker"]
