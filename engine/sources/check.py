"""Checks every decoded image before it becomes a `Frame`: odd layouts are converted, broken ones skipped.

Cameras, streams and files deliver more than clean BGR frames: grey or BGRA images, 16-bit
sensors, empty buffers after a decoder error, a resolution switch after a camera reset. The
sources run each image through one `FrameCheck`, which keeps the counts the status reports
(``frames_invalid``, ``frames_converted``, ``resolution_changes``) so nothing is fixed or
dropped in silence.

>>> check = FrameCheck()
>>> check(np.zeros((4, 6), np.uint8)).shape
(4, 6, 3)
>>> check(np.zeros((0, 0, 3), np.uint8)) is None, check.invalid, check.converted
(True, 1, 1)
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from engine.errors import SourceError

log = logging.getLogger(__name__)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 BGR from what a decoder returns (grey H×W or H×W×1, BGRA H×W×4, 16-bit or float).

    Raises `SourceError` for layouts that are no image (2 channels, 4-D arrays)."""
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            image = (image >> 8).astype(np.uint8)
        else:
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise SourceError(f"unsupported frame layout {image.shape}; expected grey, BGR or BGRA images")


class FrameCheck:
    """Turns a decoded image into H×W×3 uint8 BGR, or None when it cannot be used.

    Counters (read by the status through the source): ``invalid`` (skipped: missing, empty, or no
    image layout; sources also add their undecodable frames here), ``converted`` (grey, BGRA or
    non-8-bit images made BGR), ``resolution_changes`` (a usable frame whose size differs from the
    previous one: the pipeline restarts its spotter there). ``shape`` is the last good frame's H×W.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.invalid = 0
        self.converted = 0
        self.resolution_changes = 0
        self.shape: tuple[int, int] | None = None

    def __call__(self, image: np.ndarray | None) -> np.ndarray | None:
        if image is None or not isinstance(image, np.ndarray) or image.size == 0 or image.ndim not in (2, 3):
            self.invalid += 1
            log.debug("source %s: skipped an empty or missing frame", self.name)
            return None
        plain = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        if not plain:
            try:
                image = as_bgr(image)
            except SourceError:
                self.invalid += 1
                log.debug("source %s: skipped a frame of layout %s", self.name, image.shape)
                return None
            self.converted += 1
        shape = (int(image.shape[0]), int(image.shape[1]))
        if self.shape is not None and shape != self.shape:
            self.resolution_changes += 1
            log.info("source %s: resolution changed from %s to %s", self.name, self.shape, shape)
        self.shape = shape
        return image


class CheckedSource:
    """The status counters of a source that runs its images through ``self.check`` (a `FrameCheck`)."""

    check: FrameCheck

    @property
    def frames_invalid(self) -> int:
        """Frames skipped: undecodable, empty, or no image layout."""
        return self.check.invalid

    @property
    def frames_converted(self) -> int:
        """Frames made H×W×3 uint8 BGR from another layout (grey, BGRA, 16-bit, float)."""
        return self.check.converted

    @property
    def resolution_changes(self) -> int:
        """Usable frames whose size differs from the previous one's."""
        return self.check.resolution_changes
