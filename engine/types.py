"""The plain data that crosses stage boundaries (frozen dataclasses, documented array layouts).

Conventions (see DESIGN.md): images are uint8 BGR as OpenCV reads them, grey crops H×W uint8;
flow is H×W×2 float32 in pixels (x right, y down) from the earlier frame to the later one;
``t`` is seconds since stream start from the source's own timestamps; ``index`` is the 0-based
frame index in the source; landmarks are MediaPipe's 478-point mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Side = Literal["L", "R", "B"]
Kind = Literal["micro", "macro"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. ``image``: H×W×3 uint8 BGR. ``arrived``: `time.monotonic` seconds when the
    frame entered the engine (stamped by the reader as it queues the frame; 0.0 = not stamped)."""

    index: int
    t: float
    image: np.ndarray
    arrived: float = 0.0


@dataclass(frozen=True, slots=True)
class FaceObservation:
    """The tracked face of one frame.

    ``landmarks``: 478×2 float32, pixels of the original frame. ``crop``: S×S uint8 grey, the face
    aligned by a similarity transform on rigid points. ``transform``: 2×3 float32 affine mapping
    original-frame pixels to crop pixels. ``crop_landmarks``: 478×2 float32 in crop pixels.
    ``blendshapes``: MediaPipe's 52 ARKit-style scores in [0, 1] by name (may be empty).
    """

    index: int
    t: float
    landmarks: np.ndarray
    crop: np.ndarray
    transform: np.ndarray
    crop_landmarks: np.ndarray
    blendshapes: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TimePoint:
    """A frame in the source: 0-based index and its stream time in seconds; ``image``: the file
    name of that frame when the source is a frame folder (``img143.jpg``), else empty."""

    frame: int
    t: float
    image: str = ""

    def to_json(self) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {"frame": self.frame, "t": round(self.t, 6)}
        if self.image:
            out["image"] = self.image
        return out


@dataclass(frozen=True, slots=True)
class Candidate:
    """A spotted expression interval with the observations the flow stage needs.

    ``onset_face`` and ``apex_face`` carry the aligned crops and crop landmarks of the onset and
    apex frames, so later stages never go back to the source. ``clip`` is the path of the event
    clip (engine/publish/clips.py) when clips are enabled, else empty. ``offset_arrived``: when the offset
    frame entered the engine, ``decided``: when the spotter closed the interval (both
    `time.monotonic` seconds, stamped by the frame loop; None for a candidate made outside it).
    Latency figures count from them (`engine.events.timing_json`).
    """

    candidate_id: str
    stream: str
    onset: TimePoint
    apex: TimePoint
    offset: TimePoint
    kind: Kind
    score: float
    regions: tuple[str, ...]
    onset_face: FaceObservation
    apex_face: FaceObservation
    clip: str = ""
    offset_arrived: float | None = None
    decided: float | None = None

    @property
    def duration(self) -> float:
        return self.offset.t - self.onset.t


@dataclass(frozen=True, slots=True)
class RegionStat:
    """Motion inside one facial region, head motion already removed.

    Magnitudes in pixels of the aligned crop; ``direction_deg`` is the dominant direction of the
    region's flow in image coordinates (0 = right, 90 = down, counter-clockwise on screen is
    negative y, i.e. 270 = up); ``concentration`` in [0, 1] is the length of the mean unit vector
    (1 = all pixels move the same way). ``dx``/``dy`` are the mean flow components.
    """

    name: str
    mean_mag: float
    max_mag: float
    direction_deg: float
    concentration: float
    dx: float
    dy: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the flow stage makes of a candidate.

    ``flow``: H×W×2 float32 onset→apex on the aligned crop, head motion removed.
    ``fused_map``: H×W×3 uint8 BGR, the motion-enhanced colour map ((H + legend)×W×3 for the
    calibrated recipe with its legend strip). ``png``: the map encoded as
    PNG (what is published as the third message frame of the ``map`` event). ``flow_ms``: the
    time the flow backend took (the rest of the stage is fusion); 0.0 when not measured.
    """

    candidate: Candidate
    flow: np.ndarray
    fused_map: np.ndarray
    png: bytes
    regions: tuple[RegionStat, ...]
    flow_ms: float = 0.0

    def region(self, name: str) -> RegionStat | None:
        for r in self.regions:
            if r.name == name:
                return r
        return None


@dataclass(frozen=True, slots=True)
class ActionUnit:
    """A FACS action unit with its name, the side it acts on and a confidence in [0, 1]."""

    au: int
    name: str
    side: Side = "B"
    confidence: float = 1.0

    def to_json(self) -> dict[str, object]:
        return {"au": self.au, "name": self.name, "side": self.side, "confidence": round(self.confidence, 4)}


@dataclass(frozen=True, slots=True)
class Explanation:
    """What an explainer says about one candidate.

    ``emotion``: MEGC 3-class label (positive | negative | surprise) or ``others``;
    ``emotion_detail``: the finer label (happiness, disgust, repression, sadness, fear, anger,
    contempt, surprise, others). ``explainer``: e.g. ``rules`` or ``vlm:<model dir name>``.
    """

    aus: tuple[ActionUnit, ...]
    emotion: str
    emotion_detail: str
    text: str
    explainer: str
