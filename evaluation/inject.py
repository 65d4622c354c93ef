"""Injected events in real videos: the ground truth of the spotting benchmark (`bench/spotting.py`).

The warping itself is `engine.synth` (what the `demo` source uses on its still photograph); here,
events are rendered into the frames of a real video at each frame's tracked landmarks
(`render_frame`, so the field follows the moving face), and an event's expected visibility is
measured (`region_displacement`, `moved_bases`). Events are drawn with `engine.synth.plan_events`
(durations and AUs of real annotated events: `evaluation.annotations.SheetEvents`).

>>> sorted(moved_bases([1, 2]))
['brow_inner', 'brow_outer']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from engine.facs import AU_MOVES, BLINK_AU
from engine.regions import REGION_NAMES, REGIONS
from engine.synth import InjectedEvent, apply, displacement_field, profile
from spotting.signals import EYELID_BASES


def moved_bases(aus: Iterable[int]) -> frozenset[str]:
    """The region base names (`engine.regions.REGION_BASES`) that the injected action units
    ``aus`` move: `engine.facs.AU_MOVES`, and both eyelids for a blink."""
    out = {m.region for au in aus for m in AU_MOVES.get(int(au), ())}
    if any(int(au) == BLINK_AU for au in aus):
        out |= EYELID_BASES
    return frozenset(out)


def region_displacement(landmarks: np.ndarray, shape: tuple[int, ...], event: InjectedEvent) -> np.ndarray:
    """What ``event`` moves each region by at its apex: (len(REGION_NAMES), 2) float32, frame pixels.

    The mean of its field (`engine.synth.displacement_field`, blinks included) at the region's landmarks
    of ``landmarks`` (478×2 on the untouched frame): the ground truth a spotter's region signal
    should see, used to tell how visible an injected event is against a face's own motion.
    """
    pts = np.asarray(landmarks, dtype=np.float32)[:, :2]
    field = displacement_field(pts, shape, event.aus, event.amplitude_px, event.side)
    h, w = int(shape[0]), int(shape[1])
    out = np.empty((len(REGION_NAMES), 2), np.float32)
    for i, name in enumerate(REGION_NAMES):
        ij = np.rint(pts[list(REGIONS[name])]).astype(np.int64)
        ij[:, 0] = np.clip(ij[:, 0], 0, w - 1)
        ij[:, 1] = np.clip(ij[:, 1], 0, h - 1)
        out[i] = field[ij[:, 1], ij[:, 0]].mean(axis=0)
    return out


def render_frame(
    image: np.ndarray,
    landmarks: np.ndarray | None,
    events: Sequence[InjectedEvent],
    index: int,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """``image`` (H×W[×C] uint8) of frame ``index`` with every active event of ``events`` warped in.

    ``landmarks``: the 478×2 mesh tracked on this (untouched) frame, so the field follows the face as
    it moves; None (no face) leaves the frame as it is. Each event's field is scaled by its
    `profile` weight; overlapping events add."""
    active = [ev for ev in events if ev.active(index)]
    if landmarks is None or not active:
        return image
    total: np.ndarray | None = None
    for ev in active:
        w = profile(index, ev)
        if w <= 0.0:
            continue
        f = displacement_field(landmarks, image.shape, ev.aus, ev.amplitude_px, ev.side) * np.float32(w)
        total = f if total is None else total + f
    return image if total is None else apply(image, total, 1.0, grid)
