"""Build a TensorRT engine from an exported ONNX flow model, with the ``tensorrt`` Python API.

Needs an NVIDIA GPU and the ``[gpu]`` extra (``tensorrt``); without them the command line stops
with one line saying which is missing (exit 2). The engine is tied to the GPU model and TensorRT
version it was built with.

    python -m exporters.tensorrt_build tvl1_256.onnx --out tvl1_256.plan --fp16
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import UserError

DEFAULT_WORKSPACE_MB = 1024


def gpu_count() -> int:
    """Number of CUDA devices the driver reports (0 without a driver), without importing torch."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if lib.cuInit(0) != 0:
            return 0
        count = ctypes.c_int(0)
        return count.value if lib.cuDeviceGetCount(ctypes.byref(count)) == 0 else 0
    return 0


def import_tensorrt() -> Any:
    """The ``tensorrt`` module, or `UserError` when it or a GPU is absent."""
    try:
        import tensorrt as trt
    except ImportError:
        raise UserError(
            "tensorrt is not installed; install the GPU extra from the project folder "
            '(`pip install -e ".[gpu]"`) on a machine with an NVIDIA GPU'
        ) from None
    if gpu_count() == 0:
        raise UserError(
            "no NVIDIA GPU/driver found; a TensorRT engine can only be built on the GPU it will run on"
        )
    return trt


def build_engine(
    onnx_path: str | Path, out: str | Path, fp16: bool = False, workspace_mb: int = DEFAULT_WORKSPACE_MB
) -> Path:
    """Parse ``onnx_path``, build with a ``workspace_mb`` workspace (and FP16 if asked), write ``out``."""
    onnx_path, out = Path(onnx_path), Path(out)
    if not onnx_path.is_file():
        raise UserError(
            f"ONNX model {onnx_path} does not exist; export one with `python -m exporters.onnx_export`"
        )
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if fp16:
        if not builder.platform_has_fast_fp16:
            raise UserError("--fp16: this GPU has no fast FP16; build without --fp16")
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(serialized))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m exporters.tensorrt_build", description=__doc__.split("\n")[0]
    )
    parser.add_argument("onnx", type=Path, help="ONNX model from exporters.onnx_export")
    parser.add_argument("--out", required=True, type=Path, help="engine file to write (.plan / .engine)")
    parser.add_argument("--fp16", action="store_true", help="allow FP16 kernels")
    parser.add_argument(
        "--workspace-mb", type=int, default=DEFAULT_WORKSPACE_MB, help="builder workspace (MiB)"
    )
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        path = build_engine(args.onnx, args.out, args.fp16, args.workspace_mb)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
