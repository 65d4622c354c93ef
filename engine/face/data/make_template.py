"""Build ``canonical_face.npy``, the alignment template, from MediaPipe's canonical face geometry.

The face landmarker ``.task`` bundle carries ``geometry_pipeline_metadata_landmarks.binarypb``, a
``GeometryPipelineMetadata`` protobuf whose ``canonical_mesh`` (field 1) is MediaPipe's canonical
face model: a ``Mesh3d`` whose ``vertex_buffer`` (field 3, floats) holds 468 vertices as
``x, y, z, u, v`` in centimetres, x to the subject's left, y up, z towards the viewer. We read it
with a ~20-line wire-format reader (no protobuf schema is installed), project it orthographically
(the frontal view), flip y to image convention and normalise it so the mesh's bounding box fills a
unit crop with a margin, centred. The result is 468×2 float32 in [0, 1] crop units (x right,
y down); `engine.face.align` scales it by the crop size.

Run: ``python -m engine.face.data.make_template [MODEL.task]`` (rewrites the shipped file).
"""

from __future__ import annotations

import struct
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "canonical_face.npy"
METADATA_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
N_VERTICES = 468
# Fraction of the crop left free above/below the mesh's bounding box (its larger side is vertical).
MARGIN = 0.04


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of a protobuf message: ints for varints, bytes otherwise."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i : i + length], i + length
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} in field {num}")
        yield num, wire, value


def canonical_mesh(model: Path) -> np.ndarray:
    """The canonical face mesh in a ``.task`` bundle: 468×3 float32 (x subject-left, y up, z out)."""
    with zipfile.ZipFile(model) as zf:
        meta = zf.read(METADATA_MEMBER)
    mesh = next(v for n, w, v in _fields(meta) if n == 1 and w == 2)
    floats: list[float] = []
    for num, wire, value in _fields(mesh):  # type: ignore[arg-type]
        if num != 3:
            continue
        assert isinstance(value, bytes)
        if wire == 5:  # unpacked float
            floats.append(struct.unpack("<f", value)[0])
        elif wire == 2:  # packed floats
            floats.extend(np.frombuffer(value, "<f4").tolist())
    verts = np.asarray(floats, dtype=np.float32).reshape(-1, 5)
    if verts.shape[0] != N_VERTICES:
        raise ValueError(f"expected {N_VERTICES} canonical vertices, found {verts.shape[0]}")
    return verts[:, :3]


def normalised_template(mesh: np.ndarray) -> np.ndarray:
    """Frontal projection of ``mesh`` (468×3) in unit-crop coordinates: 468×2 float32, y down."""
    xy = mesh[:, :2].astype(np.float64) * (1.0, -1.0)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    scale = (1.0 - 2 * MARGIN) / float((hi - lo).max())
    centre = (lo + hi) / 2
    return ((xy - centre) * scale + 0.5).astype(np.float32)


def main(argv: list[str]) -> int:
    from engine.face.model import resolve_face_model

    model = resolve_face_model(argv[0] if argv else None)
    template = normalised_template(canonical_mesh(model))
    np.save(OUT, template)
    print(f"wrote {OUT} ({template.shape[0]} points) from {model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
