"""'tensorrt': TensorRT cannot run here, so these are hand-derived cases of the documented
arithmetic (IQuantizeLayer: RNE, saturate to [-128, 127], symmetric only; fused
DQ -> Conv/Gemm -> Q epilogue in fp32) and of each named option."""
from __future__ import annotations

import numpy as np
import pytest

import refquant as rq
from refquant import reference as R
from refquant._builtin_profiles import tensorrt_profile, TENSORRT_SYMMETRIC_ERROR

TRT = "tensorrt"


def test_symmetric_only_with_tensorrt_message():
    for call in (lambda: R.quantize_linear(np.float32([1.0]), np.float32(0.1), np.int8(3), profile=TRT),
                 lambda: R.dequantize_linear(np.int8([1]), np.float32(0.1), np.int8(-2), profile=TRT),
                 lambda: R.qlinear_matmul(np.int8([[1]]), np.float32(1), np.int8(1), np.int8([[1]]), np.float32(1),
                                          np.int8(0), np.float32(1), np.int8(0), profile=TRT)):
        with pytest.raises(rq.ProfileError) as ei:
            call()
        assert str(ei.value) == TENSORRT_SYMMETRIC_ERROR
        assert "TensorRT only supports symmetric quantization" in str(ei.value)
    # zero zero points are accepted
    assert R.quantize_linear(np.float32([1.0]), np.float32(0.5), np.int8(0), profile=TRT).tolist() == [2]


def test_ops_not_modelled_are_refused():
    with pytest.raises(rq.ProfileError, match="tensorrt"):
        R.dynamic_quantize_linear(np.float32([1.0, 2.0]), profile=TRT)
    with pytest.raises(rq.ProfileError, match="MatMulInteger"):
        R.matmul_integer(np.int8([[1]]), np.int8([[1]]), profile=TRT)


def test_quantize_reciprocal_default_and_divide_option():
    """x = -12.466922, s = 0.10260841: x*fl32(1/s) -> -121 (default), x/s -> -122 (scale_op=divide)."""
    x, s = np.float32([-12.466922]), np.float32(0.10260841)
    assert R.quantize_linear(x, s, np.int8(0), profile=TRT).tolist() == [-121]
    assert R.quantize_linear(x, s, np.int8(0), profile=tensorrt_profile(scale_op="divide")).tolist() == [-122]


def test_quantize_ties_nan_inf_saturation():
    x = np.float32([0.5, 1.5, 2.5, -2.5, 200.0, -200.0, np.nan, np.inf, -np.inf])
    y = R.quantize_linear(x, np.float32(1.0), np.int8(0), profile=TRT)
    assert y.tolist() == [0, 2, 2, -2, 127, -128, 0, 127, -128]   # RNE, saturate, NaN -> 0 (PTX cvt)


def test_fused_epilogue_bias_after_scaling():
    """acc = 6, M = fl32(fl32(0.5*0.5) * fl32(1/1)) = 0.25: v = 1.5 + b/sy; b = 1.0 -> 2.5 -> RNE 2."""
    a = np.int8([[6]])
    one = np.int8([[1]])
    args = (a, np.float32(0.5), np.int8(0), one, np.float32(0.5), np.int8(0))
    y = R.qgemm(*args, np.float32([1.0]), np.float32(1.0), np.int8(0), profile=TRT)
    assert y.tolist() == [[2]]
    y = R.qgemm(*args, np.float32([1.25]), np.float32(1.0), np.int8(0), profile=TRT)   # 1.5 + 1.25 = 2.75
    assert y.tolist() == [[3]]
    before = tensorrt_profile(bias="before_scaling")
    assert before.rq_bias == "int32"
    y = R.qgemm(*args, np.int32([4]), np.float32(1.0), np.int8(0), profile=before)      # (6 + 4) * 0.25 = 2.5
    assert y.tolist() == [[2]]


def test_fused_conv_per_channel():
    x = np.arange(-4, 5, dtype=np.int8).reshape(1, 1, 3, 3)
    w = np.ones((2, 1, 3, 3), np.int8)
    w[1] = -1
    y = R.qlinear_conv(x, np.float32(0.5), np.int8(0), w, np.float32([0.25, 0.5]), np.int8([0, 0]), np.float32(0.125),
                       np.int8(0), np.float32([0.25, -0.5]), profile=TRT)
    # acc = 0 for both channels (sum of -4..4); v = b / sy = 2, -4
    assert y.ravel().tolist() == [2, -4]


def test_float16_epilogue_option():
    """epilogue=float16: v is rounded to float16 before RNE; 100.53125 -> fp16 100.5 -> 100 (fp32: 101)."""
    acc = 6434                                   # * 2^-6 = 100.53125
    a = np.int16  # noqa: F841 (documentation)
    A = np.full((1, 2), 0, np.int8)
    # build acc = 6434 with int8 operands: 6434 = 127*50 + 84
    A = np.concatenate([np.full((1, 50), 127, np.int8), np.int8([[84]])], axis=1)
    B = np.ones((51, 1), np.int8)
    args = (A, np.float32(0.125), np.int8(0), B, np.float32(0.125), np.int8(0), None, np.float32(1.0), np.int8(0))
    v32 = np.float32(acc) * np.float32(2.0 ** -6)
    assert v32 == np.float32(100.53125) and np.float16(v32) == np.float16(100.5)
    assert R.qgemm(*args, profile=TRT).tolist() == [[101]]
    assert R.qgemm(*args, profile=tensorrt_profile(epilogue="float16")).tolist() == [[100]]


def test_options_and_names():
    assert rq.get_profile("tensorrt") == tensorrt_profile()
    assert tensorrt_profile(scale_op="divide", epilogue="float16").name == "tensorrt[scale_op=divide,epilogue=float16]"
    assert tensorrt_profile(multiplier="divide").rq_multiplier == "fp32"
    assert rq.get_profile("tensorrt").rq_multiplier == "fp32_reciprocal"
    with pytest.raises(ValueError, match="scale_op"):
        tensorrt_profile(scale_op="truncate")
    doc = rq.get_profile("tensorrt").doc
    assert "NOT verified live" in doc and TENSORRT_SYMMETRIC_ERROR in doc


def test_types_and_float8_always_saturates():
    import ml_dtypes
    with pytest.raises(rq.ProfileError, match="uint8"):
        R.quantize_linear(np.float32([1.0]), np.float32(1.0), np.uint8(0), profile=TRT)
    with pytest.raises(rq.ProfileError, match="int16"):
        R.dequantize_linear(np.int16([1]), np.float32(1.0), np.int16(0), profile=TRT)
    e4 = np.zeros((), ml_dtypes.float8_e4m3fn)
    x = np.float32([500.0, -1e9, np.inf, np.nan, 1.0])
    for sat in (0, 1):        # the parser ignores `saturate`: +-448, Inf -> 448, NaN stays NaN
        y = R.quantize_linear(x, np.float32(1.0), e4, saturate=sat, profile=TRT).astype(np.float32)
        assert y[:3].tolist() == [448.0, -448.0, 448.0] and np.isnan(y[3]) and y[4] == 1.0
    with pytest.raises(rq.ProfileError, match="float8e5m2"):
        R.quantize_linear(x, np.float32(1.0), np.zeros((), ml_dtypes.float8_e5m2), profile=TRT)
