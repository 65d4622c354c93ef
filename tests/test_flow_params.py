"""engine/flow/params.py: one TV-L1 parameter check, the same errors from both TV-L1 backends."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.flow.opencv_backends import OpenCVTVL1
from engine.flow.params import check_tvl1_params

DEFAULTS = dict(
    tau=0.25,
    lambda_=0.15,
    theta=0.3,
    epsilon=0.01,
    nscales=5,
    warps=5,
    inner_iterations=30,
    outer_iterations=10,
    scale_step=0.8,
    median_filtering=5,
)
BAD = [
    ({"tau": 0}, "flow parameter tau=0 must be > 0"),
    ({"epsilon": -0.1}, "flow parameter epsilon=-0.1 must be > 0"),
    ({"nscales": 0}, "flow parameter nscales=0 must be an integer >= 1"),
    ({"outer_iterations": 2.5}, "flow parameter outer_iterations=2.5 must be an integer >= 1"),
    ({"scale_step": 1.0}, r"flow parameter scale_step=1.0 must be in \(0, 1\)"),
    ({"median_filtering": 4}, r"flow parameter median_filtering=4 must be odd, >= 1 \(1 = off\)"),
]


def test_check_tvl1_params_when_defaults_then_accepts() -> None:
    check_tvl1_params(DEFAULTS)
    check_tvl1_params({**DEFAULTS, "median_filtering": 1, "nscales": 1, "gamma": 0.5})


@pytest.mark.parametrize(("bad", "message"), BAD)
def test_tvl1_params_when_invalid_then_opencv_backend_raises_the_shared_error(
    bad: dict, message: str
) -> None:
    with pytest.raises(UserError, match=f"^{message}$"):
        check_tvl1_params({**DEFAULTS, **bad})
    with pytest.raises(UserError, match=f"^{message}$"):
        OpenCVTVL1(**bad)


@pytest.mark.parametrize(("bad", "message"), BAD)
def test_tvl1_params_when_invalid_then_torch_backend_raises_the_shared_error(bad: dict, message: str) -> None:
    pytest.importorskip("torch", reason="torch-tvl1 needs torch")
    from engine.flow.torch_tvl1 import TorchTVL1

    with pytest.raises(UserError, match=f"^{message}$"):
        TorchTVL1(compile=False, **bad)
