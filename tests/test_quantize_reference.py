"""QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear reference vs onnx.reference and
onnxruntime, bit for bit, on inputs concentrated on ties, boundaries and special values.

Known deviations are asserted by name (never hidden by tolerances):
- ONNX_REF_INT32_WRAP: onnx.reference casts rint(x/s) to int32 before adding zp and clipping:
  NaN/Inf/|x/s| >= 2^31 become INT32_MIN (+ a negative zp wraps to INT32_MAX).
- ONNX_REF_FLOAT8_ZP_IGNORED: onnx.reference never adds the zero point for float8 outputs.
- ONNX_REF_NUMPY_PROMOTION: onnx.reference divides in numpy's promoted type (int32 x -> float64).
- ORT_FP16_DIVISION_FP32: ORT QuantizeLinear-21 divides float16 inputs in float32.
- DQL_ZERO_RANGE_SCALE: all-zero DynamicQuantizeLinear: ORT scale 1.0, onnx.reference 1/255.
"""
from __future__ import annotations

import numpy as np
import ml_dtypes
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import refquant
from refquant import reference as R
from refquant._dtypes import qrange, is_integer, INTEGER_QTYPES, FLOAT_QTYPES
from refquant.profile import get_profile

onnx = pytest.importorskip("onnx", reason="onnx not installed")
from _onnx_util import make_model, run_ort, run_onnx_ref  # noqa: E402
from _ort_versions import ort_before, skip_before  # noqa: E402

F32 = np.float32
INT_TYPES = [np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, ml_dtypes.int4,
                                   ml_dtypes.uint4, ml_dtypes.int2, ml_dtypes.uint2)]
MIN_OPSET = {np.dtype(np.int8): 10, np.dtype(np.uint8): 10, np.dtype(np.int16): 21,
             np.dtype(np.uint16): 21, np.dtype(ml_dtypes.int4): 21, np.dtype(ml_dtypes.uint4): 21,
             np.dtype(ml_dtypes.int2): 25, np.dtype(ml_dtypes.uint2): 25}
SUBBYTE = {np.dtype(t) for t in (ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.int2, ml_dtypes.uint2)}


def tie_inputs(rng, scale, zp, dt, n):
    """Exact ties (k+0.5)*s, their float32 neighbours, range boundaries, random values."""
    qmin, qmax = qrange(dt)
    s = np.float32(scale)
    k = rng.integers(qmin - int(zp) - 3, qmax - int(zp) + 3, n).astype(np.float32)
    ties = ((k + np.float32(0.5)) * s).astype(np.float32)
    choice = rng.integers(0, 5, n)
    x = ties.copy()
    x[choice == 1] = np.nextafter(ties[choice == 1], np.float32(np.inf))
    x[choice == 2] = np.nextafter(ties[choice == 2], np.float32(-np.inf))
    x[choice == 3] = (k[choice == 3] * s).astype(np.float32)
    x[choice == 4] = (rng.standard_normal((choice == 4).sum()) * s * (qmax - qmin) / 2).astype(F32)
    return x


scales = st.one_of(
    st.sampled_from([1.0, 0.5, 0.25, 0.1, 0.00214854861, 0.10260841, 3.0, 1e-3]),
    st.floats(2.0**-17, 1024.0, width=32),
)


def _zp_for(dt, rng):
    qmin, qmax = qrange(dt)
    return int(rng.choice([qmin, qmax, 0 if qmin <= 0 else qmin, rng.integers(qmin, qmax + 1)]))


def _ort_quantize(x, s, zp, opset, attrs=None):
    """Run ORT QuantizeLinear; sub-byte outputs go through a DequantizeLinear(scale 1) to float."""
    import onnx.helper as oh
    attrs = attrs or {}
    m, f = make_model("QuantizeLinear", [("x", x), ("s", s), ("z", zp)], attrs, opset,
                      const=("s", "z"), out_dtypes=[zp.dtype])
    if zp.dtype in SUBBYTE or zp.dtype in (np.dtype(np.int16), np.dtype(np.uint16)):
        one = onnx.numpy_helper.from_array(np.array(1, F32), "one")
        g = m.graph
        g.initializer.append(one)
        g.node.append(oh.make_node("DequantizeLinear", ["y0", "one"], ["codes"]))
        del g.output[:]
        g.output.append(oh.make_tensor_value_info("codes", onnx.TensorProto.FLOAT, None))
        return run_ort(m, f)[0].astype(np.int64)
    if zp.dtype in FLOAT_QTYPES:
        g = m.graph
        g.node.append(oh.make_node("Cast", ["y0"], ["f"], to=onnx.TensorProto.FLOAT))
        del g.output[:]
        g.output.append(oh.make_tensor_value_info("f", onnx.TensorProto.FLOAT, None))
        return run_ort(m, f)[0].astype(zp.dtype)      # exact: float8 -> float32 -> float8
    out = run_ort(m, f)[0]
    return out.astype(np.int64)


def _ref_quantize(x, s, zp, opset, attrs=None):
    m, f = make_model("QuantizeLinear", [("x", x), ("s", s), ("z", zp)], attrs or {}, opset,
                      const=("s", "z"), out_dtypes=[zp.dtype])
    return run_onnx_ref(m, f)[0]


# ---------------------------------------------------------------------------------------------
# cross-checks on ties
# ---------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dt=st.sampled_from(INT_TYPES), scale=scales, seed=st.integers(0, 2**32 - 1),
       n=st.sampled_from([1, 7, 16, 33, 257]))
def test_per_tensor_ties_vs_ort_and_onnx_reference(dt, scale, seed, n):
    rng = np.random.default_rng(seed)
    zp = np.array(_zp_for(dt, rng)).astype(dt)
    s = np.float32(scale)
    x = tie_inputs(rng, s, zp, dt, n)
    opset = max(MIN_OPSET[dt], 21)
    ours = R.quantize_linear(x, s, zp, opset=opset)
    assert ours.dtype == dt
    # onnx.reference: identical on finite, in-int32-range inputs (these are)
    np.testing.assert_array_equal(_ref_quantize(x, s, zp, opset).astype(np.int64),
                                  ours.astype(np.int64))
    # onnxruntime
    np.testing.assert_array_equal(_ort_quantize(x, s, zp, opset), ours.astype(np.int64))
    # the onnxruntime profile is the same arithmetic for float32 inputs
    np.testing.assert_array_equal(R.quantize_linear(x, s, zp, opset=opset, profile="onnxruntime"),
                                  ours)


@settings(max_examples=40, deadline=None)
@given(dt=st.sampled_from(INT_TYPES), seed=st.integers(0, 2**32 - 1),
       axis=st.sampled_from([0, 1, -1]), blocked=st.booleans())
def test_per_axis_and_blocked_vs_ort_and_onnx_reference(dt, seed, axis, blocked):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 6)), int(rng.integers(1, 9)), int(rng.integers(1, 5)))
    ax = axis % 3
    d = shape[ax]
    if blocked:
        bs = int(rng.integers(1, d + 1))
        sshape = list(shape)
        sshape[ax] = -(-d // bs)
        attrs = {"axis": axis, "block_size": bs}
    else:
        bs = 0
        sshape = [d]
        attrs = {"axis": axis}
    s = (2.0 ** rng.integers(-6, 3, sshape) * rng.choice([1.0, 0.1, 0.3], sshape)).astype(F32)
    qmin, qmax = qrange(dt)
    zp = rng.integers(qmin, qmax + 1, sshape).astype(np.int64).astype(dt)
    sb = refquant.reference.quantize.expand_qparam(s, shape, ax, bs, argname="s")
    zb = refquant.reference.quantize.expand_qparam(zp.astype(np.int64), shape, ax, bs, argname="z")
    k = rng.integers(qmin - 2, qmax + 3, shape) - zb
    x = ((k + 0.5 * rng.integers(0, 2, shape)) * sb).astype(F32)
    opset = max(MIN_OPSET[dt], 21)
    ours = R.quantize_linear(x, s, zp, axis=axis, block_size=bs, opset=opset)
    np.testing.assert_array_equal(_ref_quantize(x, s, zp, opset, attrs).astype(np.int64),
                                  ours.astype(np.int64))
    if np.dtype(dt).itemsize == 1 and qmax - qmin == 3:
        skip_before(1, 31, "per-axis and blocked 2-bit QuantizeLinear give wrong codes")
    np.testing.assert_array_equal(_ort_quantize(x, s, zp, opset, attrs), ours.astype(np.int64))


@pytest.mark.parametrize("opset", [10, 13, 19, 21, 23, 25, 28])
def test_opsets_int8_uint8(opset):
    rng = np.random.default_rng(opset)
    for dt in (np.int8, np.uint8):
        s = np.float32(0.37)
        zp = np.array(3, dt)
        x = tie_inputs(rng, s, zp, np.dtype(dt), 500)
        ours = R.quantize_linear(x, s, zp, opset=opset)
        if opset <= 25:   # onnxruntime 1.32 implements QuantizeLinear up to opset 25
            np.testing.assert_array_equal(_ort_quantize(x, s, zp, opset), ours.astype(np.int64))
        np.testing.assert_array_equal(_ref_quantize(x, s, zp, opset), ours)


# ---------------------------------------------------------------------------------------------
# special values: the named deviations
# ---------------------------------------------------------------------------------------------
SPECIAL = np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, 1e38, 0.0, -0.0], F32)


@pytest.mark.parametrize("dt,zp", [(np.int8, 0), (np.int8, -1), (np.uint8, 0), (np.uint8, 7),
                                   (np.int16, -5), (np.uint16, 0)])
def test_special_values_onnx_profile_matches_ort(dt, zp):
    zpa = np.array(zp, dt)
    ours = R.quantize_linear(SPECIAL, np.float32(1), zpa)
    qmin, qmax = qrange(np.dtype(dt))
    assert ours[0] == qmin and ours[1] == qmax and ours[2] == qmin     # documented NaN/+-Inf
    assert ours[3] == qmax and ours[4] == qmin and ours[5] == qmax     # saturation, no wrap
    np.testing.assert_array_equal(_ort_quantize(SPECIAL, np.float32(1), zpa, 21),
                                  ours.astype(np.int64))


@pytest.mark.parametrize("dt,zp", [(np.int8, 0), (np.int8, -1), (np.uint8, 0), (np.int16, -5)])
def test_special_values_ONNX_REF_INT32_WRAP(dt, zp):
    zpa = np.array(zp, dt)
    with np.errstate(invalid="ignore"):
        theirs = _ref_quantize(SPECIAL, np.float32(1), zpa, 21)
    ours = R.quantize_linear(SPECIAL, np.float32(1), zpa, profile="onnx-reference")
    np.testing.assert_array_equal(theirs, ours)
    spec = R.quantize_linear(SPECIAL, np.float32(1), zpa)
    # the deviation is real: NaN/Inf/huge values do not saturate like the spec profile
    assert (ours != spec).any()


def test_float8_ONNX_REF_FLOAT8_ZP_IGNORED():
    x = np.array([0.5, 1.5, 3.0], F32)
    zp = np.array(1.0, ml_dtypes.float8_e4m3fn)
    ref = _ref_quantize(x, np.float32(1), zp, 21)
    np.testing.assert_array_equal(ref.astype(F32), x)          # zp not added
    np.testing.assert_array_equal(R.quantize_linear(x, np.float32(1), zp, profile="onnx-reference"),
                                  ref)
    np.testing.assert_array_equal(R.quantize_linear(x, np.float32(1), zp).astype(F32), x + 1)


FLOAT8 = [ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
          ml_dtypes.float8_e5m2fnuz]


@pytest.mark.parametrize("dt", FLOAT8)
@pytest.mark.parametrize("saturate", [0, 1])
def test_float8_vs_onnx_reference_and_ort(dt, saturate):
    rng = np.random.default_rng(1)
    fmax = float(ml_dtypes.finfo(dt).max)
    x = np.concatenate([rng.standard_normal(300).astype(F32) * np.float32(fmax / 4),
                        np.array([np.nan, np.inf, -np.inf, fmax * 0.99, fmax * 1.01, -fmax * 3,
                                  0.0, -0.0, 1e-30], F32)]).astype(F32)
    zp = np.array(0, dt)
    s = np.float32(0.5)
    ours = R.quantize_linear(x, s, zp, saturate=saturate)
    ref = _ref_quantize(x, s, zp, 21, {"saturate": saturate})
    np.testing.assert_array_equal(ours.view(np.uint8), ref.view(np.uint8))
    ort_out = _ort_quantize(x, s, zp, 21, {"saturate": saturate})
    same = ours.view(np.uint8) == ort_out.view(np.uint8)
    if not saturate:
        # ORT_FP8_NONSATURATE_EDGE (SEMANTICS 7.16): ORT differs only on out-of-range inputs
        edge = np.abs(x / s) > fmax
        assert same[~edge].all()
    else:
        assert same.all(), x[~same]


@pytest.mark.parametrize("dt", [ml_dtypes.float4_e2m1fn, ml_dtypes.float6_e2m3fn,
                                ml_dtypes.float6_e3m2fn])
def test_float4_float6_vs_onnx_reference(dt):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.standard_normal(200).astype(F32) * 4,
                        np.array([np.nan, np.inf, -np.inf, 100, 0.25, 0.75, -0.0], F32)])
    zp = np.array(0, dt)
    opset = 28 if dt != ml_dtypes.float4_e2m1fn else 23
    ours = R.quantize_linear(x, np.float32(1), zp, opset=opset, profile="onnx-reference")
    ref = _ref_quantize(x, np.float32(1), zp, opset)
    np.testing.assert_array_equal(ours.view(np.uint8), ref.view(np.uint8))
    # onnx.reference adds a zero zp in IEEE arithmetic, turning -0.0 into +0.0, and so does the
    # onnx profile for float4/float6 (q_float_zero_point="add_nonzero_float8"; ONNX's own
    # test_quantizelinear_float4e2m1 expects +0); a profile that keeps -0.0 ("add_nonzero", as
    # ORT does for float8) differs exactly there
    spec = R.quantize_linear(x, np.float32(1), zp, opset=opset)
    np.testing.assert_array_equal(spec.view(np.uint8), ref.view(np.uint8))
    keep = R.quantize_linear(x, np.float32(1), zp, opset=opset,
                             profile=get_profile("onnx").replace(name="keep-minus-zero",
                                                                 q_float_zero_point="add_nonzero"))
    differ = keep.view(np.uint8) != ref.view(np.uint8)
    assert differ.any()
    assert (np.signbit(x[differ]) & (x[differ] == 0)).all()


def test_onnx_float4_test_case_minus_zero():
    """ONNX's test_quantizelinear_float4e2m1 (onnx/backend/test/case/node/quantizelinear.py):
    x = -0.0 with a zero zero point gives +0 (code 0x0); a float8 output keeps -0.0 (0x80)."""
    x = np.array([-0.0, 0.0, -1e-9], F32)
    y4 = R.quantize_linear(x, np.float32(1), np.array(0, ml_dtypes.float4_e2m1fn))
    assert y4.view(np.uint8).tolist() == [0, 0, 8]
    y8 = R.quantize_linear(x, np.float32(1), np.array(0, ml_dtypes.float8_e4m3fn))
    assert y8.view(np.uint8).tolist() == [128, 0, 128]


def test_fp16_ORT_FP16_DIVISION_FP32_at_opset21():
    rng = np.random.default_rng(3)
    s = np.float16(0.0999)
    k = rng.integers(-120, 120, 4000).astype(np.float16)
    x = ((k + np.float16(0.5)) * s).astype(np.float16)
    x = np.concatenate([x, np.nextafter(x, np.float16(np.inf)), np.nextafter(x, np.float16(-np.inf))])
    zp = np.array(0, np.int8)
    spec = R.quantize_linear(x, s, zp, opset=21)                  # fp16 division
    ortp = R.quantize_linear(x, s, zp, opset=21, profile="onnxruntime")   # fp32 division
    ort_out = _ort_quantize(x, s, zp, 21)
    np.testing.assert_array_equal(ort_out, ortp.astype(np.int64))
    np.testing.assert_array_equal(_ref_quantize(x, s, zp, 21), spec)
    assert (spec != ortp).any()      # the deviation exists on these inputs
    # at opset 23 ORT divides in float16, like the spec (1.31 and earlier: in float32 still)
    if ort_before(1, 32):
        np.testing.assert_array_equal(_ort_quantize(x, s, zp, 23), ortp.astype(np.int64))
        return
    np.testing.assert_array_equal(_ort_quantize(x, s, zp, 23), spec.astype(np.int64))
    np.testing.assert_array_equal(R.quantize_linear(x, s, zp, opset=23, profile="onnxruntime"),
                                  spec)


def test_precision_attribute_and_mixed_types():
    x = np.array([0.15, 0.25, 0.35, 1000.5], F32)
    s16 = np.array(0.1, np.float16)
    zp = np.array(0, np.int16)
    a = R.quantize_linear(x, s16, zp, opset=23)                     # fp16 division
    b = R.quantize_linear(x, s16, zp, opset=23, precision="float32")
    assert a.dtype == np.int16
    np.testing.assert_array_equal(b, np.rint(x / np.float32(s16)).astype(np.int16))
    np.testing.assert_array_equal(a, np.rint(x.astype(np.float16) / s16).astype(np.int16))
    # onnx.reference: numpy promotion (float32 division) unless precision is set
    ref = _ref_quantize(x, s16, zp, 23)
    np.testing.assert_array_equal(ref, R.quantize_linear(x, s16, zp, opset=23,
                                                         profile="onnx-reference"))


def test_int32_input_ONNX_REF_NUMPY_PROMOTION():
    x = np.array([16777217, 33554435, -7, 2**31 - 1], np.int32)
    s = np.float32(2.0)
    zp = np.array(0, np.int16)
    # opset 23: x (T1) and y_scale (T2) may differ (at 19 / 21 an int32 x needs an int32 scale)
    spec = R.quantize_linear(x, s, zp, opset=23)            # int32 -> float32 first
    ref = _ref_quantize(x, s, zp, 23)
    np.testing.assert_array_equal(ref, R.quantize_linear(x, s, zp, opset=23,
                                                         profile="onnx-reference"))
    assert spec.dtype == np.int16


# ---------------------------------------------------------------------------------------------
# DequantizeLinear
# ---------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(dt=st.sampled_from(INT_TYPES), seed=st.integers(0, 2**32 - 1), per_axis=st.booleans())
def test_dequantize_vs_ort_and_onnx_reference(dt, seed, per_axis):
    rng = np.random.default_rng(seed)
    qmin, qmax = qrange(dt)
    x = rng.integers(qmin, qmax + 1, (3, 5)).astype(np.int64).astype(dt)
    shape = (5,) if per_axis else ()
    s = (rng.random(shape) * 2 + 1e-3).astype(F32)
    zp = rng.integers(qmin, qmax + 1, shape).astype(np.int64).astype(dt)
    opset = max(MIN_OPSET[dt], 21)
    ours = R.dequantize_linear(x, s, zp, opset=opset)
    m, f = make_model("DequantizeLinear", [("x", x), ("s", s), ("z", zp)], {"axis": 1}, opset,
                      const=("x", "s", "z"), out_dtypes=[np.float32])
    np.testing.assert_array_equal(run_onnx_ref(m, f)[0], ours)
    if dt not in SUBBYTE or dt in (np.dtype(ml_dtypes.int4), np.dtype(ml_dtypes.uint4)):
        np.testing.assert_array_equal(run_ort(m, f)[0], ours)


def test_dequantize_int32_and_fp16_output():
    x = np.array([16777217, -3, 2**31 - 1], np.int32)
    ours = R.dequantize_linear(x, np.float32(1))
    # exact subtraction, then float32 conversion
    np.testing.assert_array_equal(ours, x.astype(np.float32))
    ref = R.dequantize_linear(x, np.float32(1), profile="onnx-reference")
    assert ref.dtype == np.float32
    xq = np.array([-128, 5, 127], np.int8)
    y = R.dequantize_linear(xq, np.float32(0.1), np.int8(1), output_dtype="float16")
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, (np.array([-129, 4, 126], np.float16) * np.float16(0.1)))


def test_e8m0_scale():
    s = np.array([0.25, 4.0], ml_dtypes.float8_e8m0fnu)
    x = np.array([[1.0, 3.0], [2.0, 6.0]], F32)
    q = R.quantize_linear(x, s, np.array([0, 0], np.int8), axis=1, opset=24)
    np.testing.assert_array_equal(q, np.array([[4, 1], [8, 2]], np.int8))   # 0.75 -> 1 (RNE)
    d = R.dequantize_linear(q, s, np.array([0, 0], np.int8), axis=1, opset=24)
    assert d.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# DynamicQuantizeLinear
# ---------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([1, 5, 64, 1001]),
       shift=st.sampled_from([0.0, 1.0, -1.0, 10.0]))
def test_dynamic_quantize_vs_ort_and_onnx_reference(seed, n, shift):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) + shift).astype(F32)
    y, s, z = R.dynamic_quantize_linear(x)
    m, f = make_model("DynamicQuantizeLinear", [("x", x)], {}, 21, n_out=3,
                      out_dtypes=[np.uint8, np.float32, np.uint8])
    for got in (run_ort(m, f), run_onnx_ref(m, f)):
        np.testing.assert_array_equal(got[0], y)
        np.testing.assert_array_equal(np.asarray(got[1]).view(np.uint32), s.view(np.uint32))
        np.testing.assert_array_equal(got[2], z)


def test_dynamic_quantize_DQL_ZERO_RANGE_SCALE():
    x = np.zeros(4, F32)
    m, f = make_model("DynamicQuantizeLinear", [("x", x)], {}, 21, n_out=3,
                      out_dtypes=[np.uint8, np.float32, np.uint8])
    assert R.dynamic_quantize_linear(x)[1] == run_ort(m, f)[1] == np.float32(1.0)
    assert R.dynamic_quantize_linear(x, profile="onnx-reference")[1] == run_onnx_ref(m, f)[1]
    assert run_onnx_ref(m, f)[1] == np.float32(1 / 255)


def test_dynamic_quantize_rejects_nonfinite():
    with pytest.raises(ValueError, match="NaN or Inf"):
        R.dynamic_quantize_linear(np.array([1.0, np.nan], F32))


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(dt=st.sampled_from(INT_TYPES), scale=scales, seed=st.integers(0, 2**32 - 1))
def test_roundtrip_properties(dt, scale, seed):
    rng = np.random.default_rng(seed)
    qmin, qmax = qrange(dt)
    zp = np.array(_zp_for(dt, rng)).astype(dt)
    s = np.float32(scale)
    # every code survives quantize(dequantize(q))
    codes = np.arange(qmin, min(qmax, qmin + 4096) + 1).astype(np.int64).astype(dt)
    back = R.quantize_linear(R.dequantize_linear(codes, s, zp), s, zp)
    np.testing.assert_array_equal(back, codes)
    # dequantize(quantize(x)) within s/2 inside the range
    lo = (float(qmin) - float(zp)) * float(s)
    hi = (float(qmax) - float(zp)) * float(s)
    x = rng.uniform(lo, hi, 500).astype(F32)
    err = np.abs(R.dequantize_linear(R.quantize_linear(x, s, zp), s, zp).astype(np.float64)
                 - x.astype(np.float64))
    ulp = np.spacing(np.abs(x)).astype(np.float64)
    assert (err <= float(s) / 2 * (1 + 1e-6) + 2 * ulp).all()


@pytest.mark.parametrize("dt", list(INTEGER_QTYPES) + list(FLOAT_QTYPES))
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 13])
def test_pack_unpack_roundtrip(dt, n):
    rng = np.random.default_rng(n)
    c = rng.integers(0, 256, n).astype(np.uint8)
    from refquant.packing import from_codes, codes as to_codes
    if refquant._dtypes.bits(dt) < 8:
        arr = from_codes(c, dt)
    else:
        arr = c.view(dt) if np.dtype(dt).itemsize == 1 else rng.integers(
            *qrange(dt), n).astype(dt)
    buf = refquant.pack(arr)
    back = refquant.unpack(buf, dt, arr.shape)
    assert back.dtype == np.dtype(dt)
    np.testing.assert_array_equal(back.view(np.uint8), arr.view(np.uint8))
    if refquant._dtypes.bits(dt) < 8:
        np.testing.assert_array_equal(to_codes(back), to_codes(arr))


def test_pack_layout_matches_onnx():
    from onnx import numpy_helper
    for dt in (ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.float4_e2m1fn, ml_dtypes.int2,
               ml_dtypes.uint2, ml_dtypes.float6_e2m3fn, ml_dtypes.float6_e3m2fn):
        arr = refquant.packing.from_codes(np.arange(11, dtype=np.uint8) * 5 + 1, dt)
        try:
            t = numpy_helper.from_array(arr)
        except Exception:  # pragma: no cover - onnx without this type
            continue
        assert bytes(refquant.pack(arr)) == t.raw_data, dt
    # 4-bit: element 0 in the low nibble
    assert refquant.pack(np.array([1, 2], ml_dtypes.uint4))[0] == 0x21


# ---------------------------------------------------------------------------------------------
# bad input and odd layouts
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0.0, -1.0, np.nan, np.inf])
def test_bad_scales(bad):
    with pytest.raises(ValueError, match="y_scale"):
        R.quantize_linear(np.ones(3, F32), np.float32(bad), np.int8(0))
    with pytest.raises(ValueError, match="x_scale"):
        R.dequantize_linear(np.ones(3, np.int8), np.float32(bad), np.int8(0))
    with pytest.raises(ValueError, match="y_scale"):
        R.quantize_linear(np.ones((2, 3), F32), np.array([1, bad, 1], F32), np.zeros(3, np.int8))


def test_bad_arguments():
    x = np.ones((2, 4), F32)
    with pytest.raises(ValueError, match="axis"):
        R.quantize_linear(x, np.ones(4, F32), np.zeros(4, np.int8), axis=2)
    with pytest.raises(ValueError, match="per-axis scale has length"):
        R.quantize_linear(x, np.ones(3, F32), np.zeros(3, np.int8), axis=1)
    with pytest.raises(ValueError, match="y_zero_point: shape"):
        R.quantize_linear(x, np.ones(4, F32), np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="y_zero_point: shape"):
        R.quantize_linear(x, np.ones(1, F32), np.zeros(2, np.int8))
    with pytest.raises(ValueError, match="y_zero_point: shape"):
        R.quantize_linear(x, np.ones((1, 1), F32), np.zeros((1,), np.int8), block_size=2)
    with pytest.raises(ValueError, match="block_size"):
        R.quantize_linear(x, np.ones((2, 1), F32), np.zeros((2, 1), np.int8), axis=1, block_size=2)
    with pytest.raises(ValueError, match="block_size"):
        R.quantize_linear(x, np.ones((2, 2), F32), np.zeros((2, 2), np.int8), axis=1, block_size=5)
    with pytest.raises(TypeError, match="unknown type name"):
        R.quantize_linear(x, np.float32(1), output_dtype="int7")
    with pytest.raises(TypeError, match="output_dtype"):
        R.quantize_linear(x, np.float32(1), np.int8(0), output_dtype="uint8")
    with pytest.raises(TypeError, match="x: type float64"):
        R.quantize_linear(x.astype(np.float64), np.float32(1), np.int8(0))
    with pytest.raises(ValueError, match=r"y_zero_point: values must lie in \[-8, 7\]"):
        R.quantize_linear(x, np.float32(1), 9, output_dtype="int4")
    with pytest.raises(TypeError, match="y_zero_point"):
        R.quantize_linear(x, np.float32(1), 3)
    with pytest.raises(TypeError, match="not allowed"):
        R.quantize_linear(x, np.float32(1), np.int16(0), opset=19)
    with pytest.raises(TypeError, match="x_zero_point"):
        R.dequantize_linear(np.ones(3, np.int8), np.float32(1), np.uint8(0))
    with pytest.raises(ValueError, match="opset"):
        R.quantize_linear(x, np.float32(1), opset=9)


def test_scalar_and_one_element_qparams_mix():
    """A scalar and a 1-element vector are both per-tensor: ORT and onnx's reference accept the
    mix, and ORT's quantize_static writes bias DequantizeLinear with a (1,) scale, scalar zp."""
    import refquant as rq
    x = np.linspace(-4, 4, 37).astype(F32)
    want = R.quantize_linear(x, np.float32(0.1), np.int8(3))
    for fn in (R.quantize_linear, rq.quantize_linear):
        for s, z in [(np.array([0.1], F32), np.int8(3)), (np.float32(0.1), np.array([3], np.int8))]:
            assert np.array_equal(fn(x, s, z), want)
    b = np.arange(-40, 40, 7, dtype=np.int32) * 1000
    want = R.dequantize_linear(b, np.float32(0.02), np.int32(0))
    for fn in (R.dequantize_linear, rq.dequantize_linear):
        assert np.array_equal(fn(b, np.array([0.02], F32), np.int32(0)), want)
        assert np.array_equal(fn(b.astype(np.int8)[:1], np.float32(0.02), np.array([0], np.int8)),
                              R.dequantize_linear(b.astype(np.int8)[:1], np.float32(0.02), np.int8(0)))


def test_dtype_spellings():
    x = np.array([0.5, 1.5, -3.2], F32)
    ref = R.quantize_linear(x, np.float32(1), output_dtype=ml_dtypes.int4)
    for spelling in ("int4", "INT4", 22, np.dtype(ml_dtypes.int4), onnx.TensorProto.INT4):
        np.testing.assert_array_equal(R.quantize_linear(x, np.float32(1), output_dtype=spelling),
                                      ref)
    assert refquant.resolve_dtype("float8e4m3fn") == np.dtype(ml_dtypes.float8_e4m3fn)
    assert refquant.resolve_dtype("float4e2m1") == np.dtype(ml_dtypes.float4_e2m1fn)


def test_empty_zero_d_and_noncontiguous():
    assert R.quantize_linear(np.zeros((0, 3), F32), np.float32(1), np.int8(0)).shape == (0, 3)
    assert R.quantize_linear(np.float32(2.5), np.float32(1), np.int8(0)) == 2
    x = np.arange(40, dtype=F32).reshape(5, 8)[:, ::3] * np.float32(0.3)
    np.testing.assert_array_equal(R.quantize_linear(x, np.float32(0.7), np.int8(1)),
                                  R.quantize_linear(np.ascontiguousarray(x), np.float32(0.7),
                                                    np.int8(1)))
    xf = np.asfortranarray(np.arange(12, dtype=F32).reshape(3, 4))
    np.testing.assert_array_equal(
        R.quantize_linear(xf, np.array([1, 2, 3, 4], F32), np.zeros(4, np.uint8)),
        R.quantize_linear(np.ascontiguousarray(xf), np.array([1, 2, 3, 4], F32),
                          np.zeros(4, np.uint8)))


def test_top_level_equals_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 9)).astype(F32)
    np.testing.assert_array_equal(refquant.quantize_linear(x, np.float32(0.05), np.int8(3)),
                                  R.quantize_linear(x, np.float32(0.05), np.int8(3)))
