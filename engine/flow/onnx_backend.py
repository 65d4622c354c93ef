"""Flow backend ``onnx``: an exported flow model (``exporters.onnx_export``) run by onnxruntime.

The model has inputs ``prev``, ``next`` (B×H×W uint8) and output ``flow`` (B×H×W×2 float32), with
B, H, W fixed at export. Execution providers are tried in the order TensorRT → CUDA → CPU, keeping
those this onnxruntime build offers (``onnxruntime-gpu`` from the ``[gpu]`` extra brings the first
two); ``providers`` overrides the chain.

>>> backend = OnnxFlow(model="tvl1_256.onnx")  # doctest: +SKIP
>>> backend.compute(prev, next).shape  # doctest: +SKIP
(256, 256, 2)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import UserError
from engine.flow.opencv_backends import check_batch, check_pair

log = logging.getLogger(__name__)

PROVIDER_CHAIN: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)


def choose_providers(available: Sequence[str], wanted: Sequence[str] = PROVIDER_CHAIN) -> list[str]:
    """``wanted`` in order, filtered by ``available``; CPU is always last resort.

    >>> choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"])
    ['CPUExecutionProvider']
    >>> choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"])
    ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']
    """
    chosen = [p for p in wanted if p in available]
    if "CPUExecutionProvider" not in chosen and "CPUExecutionProvider" in available:
        chosen.append("CPUExecutionProvider")
    return chosen


class OnnxFlow:
    """Run an exported flow model with onnxruntime.

    ``model``: the .onnx file. ``providers``: explicit provider names (default: `PROVIDER_CHAIN`
    filtered by ``onnxruntime.get_available_providers()``). ``fp16``: let the TensorRT provider
    build FP16 kernels. ``trt_cache_dir``: where TensorRT keeps built engines between runs.
    """

    name = "onnx"

    def __init__(
        self,
        *,
        model: str | Path,
        providers: Sequence[str] | None = None,
        fp16: bool = False,
        trt_cache_dir: str | Path | None = None,
    ) -> None:
        path = Path(model).expanduser()
        if not path.is_file():
            raise UserError(
                f"flow model {path} does not exist; export one with `python -m exporters.onnx_export`"
            )
        import onnxruntime as ort

        available = ort.get_available_providers()
        if providers is None:
            chosen = choose_providers(available)
        else:
            missing = [p for p in providers if p not in available]
            if missing:
                raise UserError(
                    f"onnxruntime here lacks provider(s) {', '.join(missing)}; "
                    f"available: {', '.join(available)}"
                )
            chosen = list(providers)
        options: list[dict[str, Any]] = []
        for p in chosen:
            if p == "TensorrtExecutionProvider":
                trt: dict[str, Any] = {"trt_fp16_enable": bool(fp16)}
                if trt_cache_dir is not None:
                    Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
                    trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(trt_cache_dir))
                options.append(trt)
            else:
                options.append({})
        try:
            self._session = ort.InferenceSession(str(path), providers=chosen, provider_options=options)
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise UserError(f"flow model {path} cannot be loaded by onnxruntime: {exc}") from None
        inputs = self._session.get_inputs()
        if [i.name for i in inputs] != ["prev", "next"] or self._session.get_outputs()[0].name != "flow":
            raise UserError(
                f"flow model {path}: expected inputs (prev, next) and output flow, as the exporter writes"
            )
        shape = inputs[0].shape
        if len(shape) != 3 or not all(isinstance(d, int) for d in shape):
            raise UserError(f"flow model {path}: expected a fixed B×H×W input shape, got {shape}")
        self.batch, self.height, self.width = (int(d) for d in shape)
        self.providers = self._session.get_providers()
        log.info(
            "onnx flow %s: %dx%d batch %d on %s",
            path.name,
            self.height,
            self.width,
            self.batch,
            ", ".join(self.providers),
        )

    def _check_size(self, shape: tuple[int, ...]) -> None:
        if tuple(shape) != (self.height, self.width):
            raise UserError(
                f"flow model expects {self.height}×{self.width} crops, got {shape[0]}×{shape[1]}; "
                f"export one for this size (`python -m exporters.onnx_export --size {shape[0]} {shape[1]}`)"
            )

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        """Flow H×W×2 float32 (pixels, x right, y down) such that ``next(x + flow(x)) ≈ prev(x)``."""
        return self.compute_batch([prev], [next])[0]

    def compute_batch(self, prevs: Sequence[np.ndarray], nexts: Sequence[np.ndarray]) -> np.ndarray:
        """B pairs → B×H×W×2 float32 in chunks of the model's batch (the last one padded by repetition)."""
        check_batch(prevs, nexts)
        for p, n in zip(prevs, nexts, strict=True):
            check_pair(p, n)
        self._check_size(prevs[0].shape)
        a, b = np.stack(prevs), np.stack(nexts)
        out = np.empty((len(a), self.height, self.width, 2), dtype=np.float32)
        for start in range(0, len(a), self.batch):
            idx = np.minimum(np.arange(start, start + self.batch), len(a) - 1)
            flow = self._session.run(["flow"], {"prev": a[idx], "next": b[idx]})[0]
            stop = min(start + self.batch, len(a))
            out[start:stop] = flow[: stop - start]
        return out
