"""Edge cases of the integer GEMM / conv ops found by differential runs against the live engines
(onnxruntime 1.32, torch 2.13 quantized engines): shapes, QGemm attributes and outputs, and
requantization at the ends of the float range.  Each test failed before its fix."""
from __future__ import annotations

import numpy as np
import pytest

import refquant
from refquant import engines as E
from refquant.profile import get_profile
from refquant.reference import qgemm, qlinear_matmul, requantize, qlinear_conv

from _profiles_live import assert_exact, need

pytestmark = [pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions:UserWarning")]
F32 = np.float32


# --------------------------------------------------------------------------- shapes

def _mm_1d(rng, K=16):
    return {"a": rng.integers(0, 256, K).astype(np.uint8), "a_scale": F32(0.07358256),
            "a_zero_point": np.uint8(1), "b": rng.integers(-128, 128, K).astype(np.int8),
            "b_scale": F32(0.125), "b_zero_point": np.int8(-3), "y_scale": F32(13.838339),
            "y_zero_point": np.uint8(3)}


def test_qlinear_matmul_1d_by_1d_is_a_scalar():
    # numpy.matmul of two vectors is 0-d; the requantization used to return shape (1,)
    # (np.ascontiguousarray makes 0-d arrays 1-d)
    d = _mm_1d(np.random.default_rng(0))
    y = qlinear_matmul(*d.values())
    assert y.shape == () and y.dtype == np.uint8
    acc = int((d["a"].astype(np.int64) - 1) @ (d["b"].astype(np.int64) + 3))
    assert refquant.qlinear_matmul(*d.values()).shape == ()
    assert requantize(np.int32(acc), F32(0.5), np.uint8(3), output_dtype="uint8").shape == ()
    assert requantize(np.int32(acc), F32(0.5), np.int8(3), output_dtype="int8",
                      profile="tflite-reference").shape == ()


def test_qlinear_matmul_1d_by_1d_onnxruntime():
    need("onnxruntime")
    rng = np.random.default_rng(1)
    for K in (1, 3, 16, 65):
        assert_exact("onnxruntime", "onnxruntime", "QLinearMatMul", _mm_1d(rng, K))


# --------------------------------------------------------------------------- QGemm

def _qgemm_case(rng, M=5, K=33, N=7, per_column=True):
    A = rng.integers(0, 256, (M, K)).astype(np.uint8)
    B = rng.integers(-128, 128, (K, N)).astype(np.int8)
    bs = (2.0 ** -rng.integers(4, 9, N)).astype(F32) if per_column else F32(2.0 ** -6)
    bz = np.zeros(N, np.int8) if per_column else np.int8(0)
    return {"A": A, "a_scale": F32(2.0 ** -5), "a_zero_point": np.uint8(131), "B": B, "b_scale": bs,
            "b_zero_point": bz, "C": rng.integers(-5000, 5000, N).astype(np.int32)}


@pytest.mark.parametrize("alpha", [-1.0, -0.37, 0.0, -3.5])
def test_qgemm_negative_or_zero_alpha_quantized_output(alpha):
    # ORT multiplies by alpha*a_s*b_s/y_s with its sign (MLAS requantization); the reference
    # refused any multiplier < 0 ("multiplier: must be finite and >= 0")
    rng = np.random.default_rng(2)
    d = _qgemm_case(rng)
    d["y_scale"], d["y_zero_point"] = F32(0.75), np.uint8(128)
    y = qgemm(*d.values(), alpha=alpha)
    pos = qgemm(*d.values(), alpha=abs(alpha))
    assert y.dtype == np.uint8
    if alpha == 0.0:
        assert np.all(y == 128)
    else:
        assert np.array_equal(y.astype(int) - 128 == 0, pos.astype(int) - 128 == 0)
    assert np.array_equal(refquant.qgemm(*d.values(), alpha=alpha), y)
    need("onnxruntime")
    assert_exact("onnxruntime", "onnxruntime", "QGemm", d, {"alpha": alpha})


def test_qgemm_negative_alpha_fixed_point_profile_refuses():
    rng = np.random.default_rng(3)
    d = _qgemm_case(rng, per_column=False)
    A = d["A"].astype(np.int16) - 128
    with pytest.raises(ValueError, match="multiplier.*fixed-point"):
        qgemm(A.astype(np.int8), d["a_scale"], np.int8(0), d["B"], d["b_scale"], d["b_zero_point"], d["C"],
              F32(0.75), np.int8(0), alpha=-1.0, profile=get_profile("onnx").replace(rq_method="fixed_point"))


@pytest.mark.parametrize("alpha", [1.0, 0.5, -2.0])
def test_qgemm_float_output_with_y_scale_onnxruntime(alpha):
    # y_scale without y_zero_point: ORT's QGemm output is float32, alpha*a_s*b_s/y_s times the
    # accumulator; the engine adapter declared the output uint8 and ORT refused the model
    need("onnxruntime")
    rng = np.random.default_rng(4)
    d = _qgemm_case(rng)
    d["y_scale"] = F32(0.3)
    out = E.run("onnxruntime", "QGemm", d, {"alpha": alpha})
    assert out.dtype == np.float32
    assert_exact("onnxruntime", "onnxruntime", "QGemm", d, {"alpha": alpha, "transB": 0})


# --------------------------------------------------------------------------- scales far apart

def test_infinite_multiplier_error_names_the_scales():
    rng = np.random.default_rng(5)
    d = _mm_1d(rng)
    d["a_scale"], d["y_scale"] = F32(2.0), F32(1.6e-41)
    d["b_scale"] = F32(1.0)
    with pytest.raises(ValueError, match=r"multiplier: must be finite.*a_scale \* b_scale / y_scale"):
        qlinear_matmul(*d.values())
