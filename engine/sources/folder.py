"""A folder of frame images (CASME II style ``img1.jpg`` … ``img46.jpg``), in numeric order.

Folders carry no timing, so the frame rate must be given: ``t = index / fps``. Names are sorted by
their numbers (``img2`` before ``img10``), not as strings. An image that does not decode is
skipped and counted (``frames_invalid``); its index stays unused, so indices keep matching files.

>>> src = FolderSource("CASME2/sub01/EP02_01f", fps=200)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2

from engine.errors import SourceError, UserError
from engine.sources.check import CheckedSource, FrameCheck
from engine.types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
_NUM = re.compile(r"(\d+)")
_PROBE = 5  # at open, one of the first few files must decode, or this is not a frame folder


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that compares digit runs as numbers: ``img2.jpg`` < ``img10.jpg``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _NUM.split(name))


def list_frames(folder: Path) -> list[Path]:
    """The image files of ``folder`` (jpg, png, bmp; any case) in numeric order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: natural_key(p.name))


class FolderSource(CheckedSource):
    """Frames read from image files; never dropped by the reader (``live`` False).

    ``paths`` lists the files in stream order, so frame ``index`` is ``paths[index]`` (annotation
    sheets count frames by the number in the file name: see ``frame_numbers``).
    """

    live = False

    def __init__(self, folder: str | Path, fps: float) -> None:
        p = Path(folder)
        if not p.is_dir():
            raise SourceError(f"frame folder {p} does not exist; give an existing folder of images")
        if not fps or fps <= 0:
            raise UserError(
                f"frame folder {p} needs --fps (frames carry no timing), e.g. --fps 200 for CASME II"
            )
        self.paths = list_frames(p)
        if not self.paths:
            raise SourceError(
                f"frame folder {p} holds no jpg/png/bmp images; point --source at the frames' folder"
            )
        if not any(cv2.imread(str(f), cv2.IMREAD_UNCHANGED) is not None for f in self.paths[:_PROBE]):
            raise SourceError(
                f"{self.paths[0]} is not an image OpenCV can decode; remove it or fix the folder"
            )
        self.name = p.name
        self.fps: float | None = float(fps)
        self.check = FrameCheck(self.name)
        self._closed = threading.Event()

    @property
    def frame_numbers(self) -> list[int | None]:
        """The last number in each file name (``img46.jpg`` → 46), None where a name has none."""
        out: list[int | None] = []
        for path in self.paths:
            nums = _NUM.findall(path.stem)
            out.append(int(nums[-1]) if nums else None)
        return out

    def frame_name(self, index: int) -> str:
        """The file name of stream frame ``index`` (``img143.jpg``), so events point at the image."""
        return self.paths[index].name if 0 <= index < len(self.paths) else ""

    def frames(self) -> Iterator[Frame]:
        fps = float(self.fps or 1.0)
        for index, path in enumerate(self.paths):
            if self._closed.is_set():
                return
            image = self.check(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
            if image is None:
                log.warning("frame folder %s: %s does not decode; skipped", self.name, path.name)
                continue
            yield Frame(index, index / fps, image)

    def close(self) -> None:
        self._closed.set()
