"""requantize(): the accumulator -> output epilogue, every rq_* profile field.

Expected values come from SEMANTICS.md sections 1.3, 2.3, 5.2, 5.3 and 7 (measured on
ORT 1.32, onnx 1.23.2, LiteRT 2.3.0) and from independent integer re-implementations.
"""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refquant import get_profile, ProfileError
from refquant.reference import requantize, qlinear_matmul
from refquant.reference.requant import (form_multiplier, quantize_multiplier,
                                        multiply_by_quantized_multiplier, round_to_int, wrap_int32)

ONNX = get_profile("onnx")


def prof(**kw):
    return ONNX.replace(name="t", **kw)


# --------------------------------------------------------------------------- rounding

def test_round_to_int_ties():
    v = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.49999997, 3.2, -3.7], np.float32)
    assert round_to_int(v, "half_even").tolist() == [-2, -2, -0, 0, 2, 2, 0, -0, 3, -4]
    assert round_to_int(v, "half_away").tolist() == [-3, -2, -1, 1, 2, 3, 0, -0, 3, -4]
    assert round_to_int(v, "half_up").tolist() == [-2, -1, -0, 1, 2, 3, 0, -0, 3, -4]


def _frac_round(x, rule):
    f = Fraction(float(x))
    fl = f.numerator // f.denominator
    rem = f - fl
    if rem > Fraction(1, 2):
        return fl + 1
    if rem < Fraction(1, 2):
        return fl
    return {"half_even": fl + (fl & 1), "half_away": fl + 1 if f > 0 else fl, "half_up": fl + 1}[rule]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6, width=32),
                          st.integers(-2000, 2000).map(lambda k: k + 0.5)), min_size=1, max_size=20),
       st.sampled_from(["half_even", "half_away", "half_up"]), st.sampled_from([np.float32, np.float64]))
def test_round_to_int_matches_exact_rational(xs, rule, dt):
    v = np.array(xs, dt)
    got = round_to_int(v, rule)
    assert [int(g) for g in got] == [_frac_round(x, rule) for x in v]


# --------------------------------------------------------------------------- multiplier

def test_multiplier_orders():
    a, b, y = np.float32(0.1), np.float32(0.3), np.float32(0.7)
    m32 = form_multiplier(a, b, y)
    assert m32.dtype == np.float32
    assert m32 == np.float32(np.float32(a * b) / y)
    rec = form_multiplier(a, b, y, profile=prof(rq_multiplier="fp32_reciprocal"))
    assert rec == np.float32(np.float32(a * b) * np.float32(np.float32(1) / y))
    m64 = form_multiplier(a, b, y, profile=prof(rq_multiplier="fp64"))
    assert m64.dtype == np.float64 and m64 == float(a) * float(b) / float(y)
    # alpha folds in first (ORT QGemm::ComputeOutputScale)
    ma = form_multiplier(a, b, y, alpha=1.7)
    assert ma == np.float32(np.float32(np.float32(np.float32(1.7) * a) * b) / y)


def test_multiplier_representations_differ_somewhere():
    rng = np.random.default_rng(3)
    a, b, y = (rng.uniform(1e-3, 1, 2000).astype(np.float32) for _ in range(3))
    m32 = form_multiplier(a, b, y)
    rec = form_multiplier(a, b, y, profile=prof(rq_multiplier="fp32_reciprocal"))
    m64 = form_multiplier(a, b, y, profile=prof(rq_multiplier="fp64"))
    assert np.count_nonzero(m32 != rec) > 0           # QNNPACK reciprocal vs ORT divide
    assert np.count_nonzero(m32 != m64.astype(np.float32)) > 0


@pytest.mark.parametrize("bad", [0.0, -0.5, np.nan, np.inf, 1e-50])
def test_bad_scales(bad):
    with pytest.raises(ValueError, match="a_scale"):
        form_multiplier(np.float32(bad) if bad != 1e-50 else bad, np.float32(1), np.float32(1))


def test_integer_scale_rejected():
    with pytest.raises(TypeError, match="b_scale"):
        form_multiplier(np.float32(1), np.array(2, np.int32), np.float32(1))


# --------------------------------------------------------------------------- float epilogue

TIE_ACC = np.array([1, 3, 5, 7], np.int32)          # acc * 0.5 = 0.5, 1.5, 2.5, 3.5


def test_zero_point_after_vs_before_rounding():
    # SEMANTICS 1.3: ORT [1, 3, 3, 5]; onnx.reference [2, 2, 4, 4]
    y = requantize(TIE_ACC, np.float32(0.5), np.uint8(1), output_dtype=np.uint8)
    assert y.tolist() == [1, 3, 3, 5]
    yr = requantize(TIE_ACC, np.float32(0.5), np.uint8(1), output_dtype=np.uint8, profile="onnx-reference")
    assert yr.tolist() == [2, 2, 4, 4]
    yi = requantize(TIE_ACC, np.float32(0.5), np.int8(-1), output_dtype="int8", profile="onnx-reference")
    assert yi.tolist() == [0, 0, 2, 2]
    assert requantize(TIE_ACC, np.float32(0.5), np.int8(-1), output_dtype="int8").tolist() == [-1, 1, 1, 3]


def test_acc_to_float_above_2_24():
    # SEMANTICS 2.3: acc = 66,324,225, M = 3.0230283e-06: ORT 200, onnx.reference 201
    acc = np.array([66324225], np.int32)
    M = np.float32(3.0230283e-06)
    assert requantize(acc, M, np.uint8(0), output_dtype=np.uint8).tolist() == [200]
    assert requantize(acc, M, np.uint8(0), output_dtype=np.uint8, profile="onnx-reference").tolist() == [201]
    assert requantize(acc, M, np.uint8(0), output_dtype=np.uint8,
                      profile=prof(rq_precision="float64", rq_acc_to_float="float64")).tolist() == [201]


def test_float32_product_rounding():
    # fl32(acc) * M rounded to float32 before RNE: find a case where float64 product differs
    rng = np.random.default_rng(0)
    acc = rng.integers(-2 ** 20, 2 ** 20, 200000).astype(np.int32)
    M = np.float32(0.0123457)
    y32 = requantize(acc, M, 0, output_dtype=np.int32)
    y64 = requantize(acc, M, 0, output_dtype=np.int32, profile=prof(rq_precision="float64"))
    exp32 = np.rint((acc.astype(np.float32) * M).astype(np.float32))
    assert np.array_equal(y32, exp32.astype(np.int32))
    exp64 = np.rint(acc.astype(np.float64) * np.float64(M))
    assert np.array_equal(y64, exp64.astype(np.int32))


@pytest.mark.parametrize("rule,expected", [("half_even", [-2, -1, 0, 0, 0, 2]),
                                           ("half_away", [-2, -1, -1, 0, 1, 2]),
                                           ("half_up", [-1, -1, 0, 0, 1, 2])])
def test_float_rounding_rules(rule, expected):
    acc = np.array([-6, -3, -2, 1, 2, 6], np.int32)           # * 0.25
    y = requantize(acc, np.float32(0.25), 0, output_dtype="int8", profile=prof(rq_rounding=rule))
    assert y.tolist() == expected


def test_saturation_and_per_channel():
    acc = np.array([[1000, -1000, 3], [-5, 6, 100000]], np.int32)
    M = np.array([1.0, 0.5, 0.25], np.float32)
    y = requantize(acc, M, np.int8(10), output_dtype="int8")
    assert y.tolist() == [[127, -128, 11], [5, 13, 127]]
    # per-channel along axis 0 and per-channel zero point
    y0 = requantize(acc, np.array([1.0, 0.5], np.float32), np.array([0, 1]), output_dtype="int16", axis=0)
    assert y0.tolist() == [[1000, -1000, 3], [-1, 4, 32767]]
    with pytest.raises(ValueError, match="multiplier"):
        requantize(acc, np.ones(4, np.float32), 0, output_dtype="int8")


def test_int32_bias_wraps():
    acc = np.array([2 ** 31 - 1, -2 ** 31], np.int32)
    y = requantize(acc, np.float32(1e-9), 0, output_dtype="int8", bias=np.array([1, -1], np.int32))
    # wraps to -2^31 and 2^31-1: fl32 * 1e-9 = -2.147.. and 2.147..
    assert y.tolist() == [-2, 2]


def test_float_bias_fbgemm():
    p = prof(rq_bias="float")
    rng = np.random.default_rng(1)
    acc = rng.integers(-50000, 50000, (7, 5)).astype(np.int32)
    b = rng.normal(size=5).astype(np.float32)
    act_w = np.float32(np.float32(0.02) * np.float32(0.003))
    M = np.float32(act_w / np.float32(0.05))
    y = requantize(acc, M, np.uint8(128), output_dtype=np.uint8, bias=b, bias_scale=act_w, profile=p)
    raw = (acc.astype(np.float32) + (b / act_w).astype(np.float32)).astype(np.float32)
    exp = np.clip(np.rint((raw * M).astype(np.float32)) + 128, 0, 255)
    assert np.array_equal(y, exp.astype(np.uint8))
    with pytest.raises(TypeError, match="bias"):
        requantize(acc, M, np.uint8(128), output_dtype=np.uint8, bias=b)     # onnx: int32 only


def test_float_bias_after_scaling_and_fp16_epilogue():
    acc = np.array([10, 20, 30], np.int32)
    p = prof(rq_bias="float_after_scaling")
    y = requantize(acc, np.float32(0.1), 0, output_dtype="int8", bias=np.float32(0.35),
                   bias_scale=np.float32(0.1), profile=p)
    assert y.tolist() == [np.rint(np.float32(1.0) + np.float32(3.5)), 6, 6]
    # fp16 epilogue: 2049 * 1.0 is not a float16 (rounds to 2048)
    y16 = requantize(np.array([2049], np.int32), np.float32(1.0), 0, output_dtype="int16",
                     profile=prof(rq_epilogue_dtype="float16"))
    assert y16.tolist() == [2048]
    assert requantize(np.array([2049], np.int32), np.float32(1.0), 0, output_dtype="int16").tolist() == [2049]


# --------------------------------------------------------------------------- fixed point

def test_quantize_multiplier_known_values():
    qm, sh = quantize_multiplier([0.5, 1.0, 0.25, 2.0 ** -40, 0.75, 1 - 2 ** -40])
    assert qm.tolist() == [2 ** 30, 2 ** 30, 2 ** 30, 0, 3 * 2 ** 29, 2 ** 30]
    assert sh.tolist() == [0, 1, -1, 0, 0, 1]                 # last: qm rounded to 2^31 -> halved
    qm, sh = quantize_multiplier([2.0 ** 40], single_rounding=True)
    assert (qm[0], sh[0]) == (2 ** 31 - 1, 30)


def _srdhm_ref(a, b):
    # gemmlowp fixedpoint.h, scalar int64 version
    if a == b == -2 ** 31:
        return 2 ** 31 - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else (1 - (1 << 30))
    num = ab + nudge
    q = abs(num) >> 31
    return q if num >= 0 else -q


def _rdpot_ref(x, e):
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def _wrap(v):
    return ((v + 2 ** 31) % 2 ** 32) - 2 ** 31


@settings(max_examples=300, deadline=None)
@given(st.integers(-2 ** 31, 2 ** 31 - 1), st.floats(1e-9, 4.0))
def test_fixed_point_double_rounding_matches_gemmlowp(x, m):
    qm, sh = quantize_multiplier(m)
    qm, sh = int(qm), int(sh)
    left, right = max(sh, 0), max(-sh, 0)
    exp = _rdpot_ref(_srdhm_ref(_wrap(x << left), qm), right)
    assert int(multiply_by_quantized_multiplier(np.int32(x), qm, sh, "double")) == exp
    # single rounding: (x*qm + 2^(30-shift)) >> (31-shift), one half-up rounding
    qs, ss = (int(v) for v in quantize_multiplier(m, single_rounding=True))
    tot = 31 - ss
    exp1 = _wrap((x * qs + (1 << (tot - 1))) >> tot)
    assert int(multiply_by_quantized_multiplier(np.int32(x), qs, ss, "single")) == exp1
    # ruy double half up: RHU(RHU(x*qm/2^31)/2^right) computed with exact rationals
    h = _wrap(x << left) * qm
    h1 = (h + (1 << 30)) >> 31
    exp2 = (h1 + ((1 << (right - 1)) if right else 0)) >> right
    assert int(multiply_by_quantized_multiplier(np.int32(x), qm, sh, "double_half_up")) == exp2


@pytest.mark.parametrize("fixed,method,expected", [
    # SEMANTICS 5.3 table, M = 0.25, acc = [-6, -3, -2, 1, 2, 6]
    ("double", "fixed_point", [-2, -1, -1, 1, 1, 2]),        # TFLite reference Conv (gemmlowp)
    ("double_half_up", "fixed_point", [-1, 0, 0, 1, 1, 2]),  # ruy x86
    ("single", "fixed_point", [-1, -1, 0, 0, 1, 2]),         # TFLITE_SINGLE_ROUNDING (half up once)
])
def test_fixed_point_tie_table(fixed, method, expected):
    acc = np.array([-6, -3, -2, 1, 2, 6], np.int32)
    p = prof(rq_method=method, rq_fixed_rounding=fixed, rq_multiplier="fp64")
    assert requantize(acc, np.float64(0.25), 0, output_dtype="int8", profile=p).tolist() == expected


def test_tflite_fc_float_variant_and_xnnpack():
    acc = np.array([-6, -3, -2, 1, 2, 6], np.int32)
    fc = prof(rq_multiplier="fp64", rq_precision="float64", rq_acc_to_float="float64", rq_rounding="half_away")
    assert requantize(acc, np.float64(0.25), 0, output_dtype="int8", profile=fc).tolist() == [-2, -1, -1, 0, 1, 2]
    assert requantize(acc, np.float32(0.25), 0, output_dtype="int8").tolist() == [-2, -1, 0, 0, 0, 2]


def test_fixed_point_bias_and_zero_point():
    p = prof(rq_method="fixed_point")
    y = requantize(np.array([100, -100], np.int32), np.float32(0.5), np.int8(3), output_dtype="int8",
                   bias=np.array([1, 1], np.int32), profile=p)
    assert y.tolist() == [51 + 3, -49 + 3]       # (100+1)/2 = 50.5 -> 51, (-100+1)/2 = -49.5 -> -49 (half up)
    with pytest.raises(ProfileError):
        requantize(np.array([1], np.int32), np.float32(0.5), 0, output_dtype="int8",
                   profile=p.replace(rq_bias="float"), bias=np.array([1.0], np.float32))


def test_requantize_bad_input():
    acc = np.zeros(3, np.int32)
    with pytest.raises(TypeError, match="acc"):
        requantize(acc.astype(np.float32), np.float32(1), 0, output_dtype="int8")
    with pytest.raises(TypeError, match="output_dtype"):
        requantize(acc, np.float32(1), 0, output_dtype="float32")
    with pytest.raises(ValueError, match="y_zero_point"):
        requantize(acc, np.float32(1), 300, output_dtype="uint8")
    with pytest.raises(ValueError, match="multiplier"):
        requantize(acc, np.float32(np.nan), 0, output_dtype="int8")
    with pytest.raises(ValueError, match="acc"):
        requantize(np.array([2 ** 33]), np.float32(1), 0, output_dtype="int8")
    with pytest.raises(TypeError, match="multiplier"):
        requantize(acc, 1, 0, output_dtype="int8")


def test_low_bit_outputs():
    import ml_dtypes
    y = requantize(np.array([-100, -3, 3, 100], np.int32), np.float32(0.5), 0, output_dtype="int4")
    assert y.dtype == ml_dtypes.int4 and y.astype(int).tolist() == [-8, -2, 2, 7]
    y = requantize(np.array([-100, 3, 100], np.int32), np.float32(0.5), 1, output_dtype="uint4")
    assert y.astype(int).tolist() == [0, 3, 15]


def test_wrap_int32():
    assert wrap_int32(np.array([2 ** 31, -2 ** 31 - 1, 2 ** 32 + 5])).tolist() == [-2 ** 31, 2 ** 31 - 1, 5]


def test_qlinear_matmul_acc_beyond_2_24_vs_engines():
    # SEMANTICS 2.3 example: K = 2048, A = 255, B = 127 (one 126)
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime peer")
    from _ort_models import run_ort, run_onnx_ref
    A = np.full((1, 2048), 255, np.uint8)
    B = np.full((2048, 1), 127, np.int8)
    B[0, 0] = 126
    args = [A, np.float32(1.0), np.uint8(0), B, np.float32(1.0), np.int8(0), np.float32(1 / 3.0230283e-06),
            np.uint8(0)]
    M = form_multiplier(np.float32(1.0), np.float32(1.0), np.float32(1 / 3.0230283e-06))
    ours = qlinear_matmul(*args)
    assert ours.tolist() == run_ort("QLinearMatMul", args).tolist()
    assert qlinear_matmul(*args, profile="onnx-reference").tolist() == run_onnx_ref("QLinearMatMul", args).tolist()
    exact = 66324225 * float(M)
    assert abs(exact - np.rint(exact)) < 0.5          # sanity
    # documented consequence of rq_acc_to_float: differ by one step exactly when fl32(acc) rounds
    d = int(qlinear_matmul(*args, profile="onnx-reference")[0, 0]) - int(ours[0, 0])
    assert d in (0, 1)
