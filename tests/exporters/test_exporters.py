"""ONNX export of torch-tvl1 (parity under onnxruntime CPU), the ``onnx`` backend, TensorRT build.

Graphs are small (48×64, 2 levels, 2 warps, 2×3 iterations) because the exporter unrolls every
iteration; a slow test checks 256×256 with all five pyramid levels. TensorRT tests need tensorrt
and an NVIDIA GPU and skip with the reason otherwise.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import UserError
from engine.flow import create
from engine.flow.onnx_backend import choose_providers
from engine.flow.torch_tvl1 import TVL1Module, TVL1Params
from exporters import onnx_export, tensorrt_build

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SMALL = dict(nscales=2, warps=2, outer_iterations=2, inner_iterations=3)
B, H, W = 2, 48, 64
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_GPU = torch.cuda.is_available()


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tvl1_small.onnx"
    rc = onnx_export.main(
        [
            "--out",
            str(path),
            "--size",
            str(H),
            str(W),
            "--batch",
            str(B),
            "--scales",
            "2",
            "--warps",
            "2",
            "--outer",
            "2",
            "--iterations",
            "3",
            "--exporter",
            "torchscript",
        ]
    )
    assert rc == 0 and path.is_file()
    return path


def test_onnx_export_when_run_by_onnxruntime_cpu_matches_torch_within_1e_3(small_model: Path) -> None:
    assert onnx_export.check_parity(small_model, seed=7) <= 1e-3


@pytest.mark.slow
def test_onnx_export_when_256_with_all_pyramid_levels_matches_torch_within_1e_3(tmp_path: Path) -> None:
    """Full size, all 5 levels (256 … 105 px), every warp: where the border once drifted by 1.8 px."""
    path = tmp_path / "tvl1_256.onnx"
    params = dict(nscales=5, warps=5, outer_iterations=1, inner_iterations=3)
    onnx_export.export_onnx(path, 256, 256, 1, exporter="torchscript", **params)
    onnx_export.add_metadata(path, **params)
    assert onnx_export.check_parity(path, seed=1) <= 1e-3


def test_onnx_export_when_written_uses_opset_17_and_records_parameters(small_model: Path) -> None:
    import onnx

    model = onnx.load(str(small_model))
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    ops = {n.op_type for n in model.graph.node}
    assert ops >= {"GatherElements", "TopK"} and not ops & {"GridSample", "Resize", "MatMul"}
    params = onnx_export.params_from_metadata({p.key: p.value for p in model.metadata_props})
    assert params == TVL1Params(**SMALL, median_filtering=5)


def test_onnx_backend_when_created_by_name_computes_the_known_shift(small_model: Path) -> None:
    backend = create("onnx", model=str(small_model))
    assert backend.providers[-1] == "CPUExecutionProvider"
    prevs, nexts = onnx_export.parity_inputs(3, H, W)  # pair i shifted by (0.6, -0.4)·(i+1) px
    flows = backend.compute_batch(list(prevs), list(nexts))  # 3 pairs through a batch-2 model
    assert flows.shape == (3, H, W, 2)
    for i in range(3):
        mean = flows[i, 8:-8, 8:-8].reshape(-1, 2).mean(0)
        assert np.allclose(mean, (0.6 * (i + 1), -0.4 * (i + 1)), atol=0.15), mean
    with torch.no_grad():
        want = TVL1Module(TVL1Params(**SMALL))(
            torch.from_numpy(prevs[:2]), torch.from_numpy(nexts[:2])
        ).numpy()
    assert float(np.abs(flows[:2] - want).max()) <= 1e-3
    assert float(np.abs(backend.compute(prevs[2], nexts[2]) - flows[2]).max()) <= 1e-5


def test_onnx_backend_when_size_differs_raises_user_error(small_model: Path) -> None:
    backend = create("onnx", model=str(small_model))
    with pytest.raises(UserError, match="--size 32 32"):
        backend.compute(np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8))


def test_onnx_backend_when_model_is_missing_raises_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        create("onnx", model=str(tmp_path / "none.onnx"))


@pytest.mark.parametrize(
    ("available", "want"),
    [
        (["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
        (
            ["CPUExecutionProvider", "TensorrtExecutionProvider", "CUDAExecutionProvider"],
            ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
        ),
    ],
)
def test_choose_providers_when_filtered_keeps_tensorrt_cuda_cpu_order(
    available: list[str], want: list[str]
) -> None:
    assert choose_providers(available) == want


def test_onnx_export_cli_when_opset_is_too_low_fails_with_one_line(tmp_path: Path, capsys) -> None:
    rc = onnx_export.main(
        ["--out", str(tmp_path / "x.onnx"), "--size", "32", "32", "--opset", "13", "--no-check"]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "opset" in err


@pytest.mark.skipif(HAS_TRT and HAS_GPU, reason="checks the error path of a machine without tensorrt or GPU")
def test_tensorrt_build_cli_when_tensorrt_or_gpu_is_absent_fails_with_one_line(
    small_model: Path, tmp_path: Path, capsys
) -> None:
    rc = tensorrt_build.main([str(small_model), "--out", str(tmp_path / "x.plan")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    if HAS_TRT:
        assert "no NVIDIA GPU" in err
    else:  # the install hint is the README's own command, not a package name PyPI does not know
        assert "tensorrt is not installed" in err and 'pip install -e ".[gpu]"' in err
    assert not (tmp_path / "x.plan").exists()


@pytest.mark.skipif(not (HAS_TRT and HAS_GPU), reason="needs tensorrt and a CUDA GPU")
def test_tensorrt_engine_when_built_matches_torch(small_model: Path, tmp_path: Path) -> None:
    import tensorrt as trt

    plan = tensorrt_build.build_engine(small_model, tmp_path / "tvl1.plan")
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(plan.read_bytes())
    context = engine.create_execution_context()
    prevs, nexts = onnx_export.parity_inputs(B, H, W, seed=3)
    tensors = {
        "prev": torch.from_numpy(prevs).cuda(),
        "next": torch.from_numpy(nexts).cuda(),
        "flow": torch.empty((B, H, W, 2), dtype=torch.float32, device="cuda"),
    }
    for name, tensor in tensors.items():
        context.set_tensor_address(name, tensor.data_ptr())
    stream = torch.cuda.Stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    with torch.no_grad():
        want = TVL1Module(TVL1Params(**SMALL))(torch.from_numpy(prevs), torch.from_numpy(nexts)).numpy()
    assert float(np.abs(tensors["flow"].cpu().numpy() - want).max()) <= 1e-2


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU for onnxruntime's CUDA/TensorRT providers")
def test_onnx_backend_when_gpu_present_uses_a_gpu_provider(small_model: Path) -> None:
    backend = create("onnx", model=str(small_model))
    if backend.providers[0] == "CPUExecutionProvider":
        pytest.skip("this onnxruntime build has no GPU provider (install onnxruntime-gpu)")
    prevs, nexts = onnx_export.parity_inputs(B, H, W)
    cpu = create("onnx", model=str(small_model), providers=["CPUExecutionProvider"])
    assert (
        float(
            np.abs(
                backend.compute_batch(list(prevs), list(nexts)) - cpu.compute_batch(list(prevs), list(nexts))
            ).max()
        )
        <= 1e-2
    )


def test_onnx_export_cli_when_run_shows_a_progress_bar_per_stage(tmp_path: Path) -> None:
    """A real subprocess: the export takes minutes at full size, so the user sees which stage runs."""
    import subprocess
    import sys

    out = tmp_path / "tiny.onnx"
    args = ["--size", "16", "16", "--scales", "1", "--warps", "1", "--outer", "1", "--iterations", "1"]
    proc = subprocess.run(
        [sys.executable, "-m", "exporters.onnx_export", "--out", str(out), *args, "--exporter=torchscript"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for stage in ("export", "metadata", "parity check"):
        assert stage in proc.stderr
    assert "3/3" in proc.stderr and out.is_file()
