"""Bad arguments get the same error from the fast path and the reference, never a result from
one of them: masked arrays in any position, attributes of the wrong type, out-of-range axes,
sizes beyond the kernels' ints."""
from __future__ import annotations

import numpy as np
import pytest

import refquant

R = refquant.reference
f32 = np.float32
_rng = np.random.default_rng(7)
A = _rng.integers(0, 256, (4, 6), dtype=np.uint8)
B = _rng.integers(-128, 128, (6, 5), dtype=np.int8)
X = _rng.integers(0, 256, (1, 2, 6, 6), dtype=np.uint8)
W = _rng.integers(-128, 128, (3, 2, 3, 3), dtype=np.int8)
XF = np.linspace(-3, 3, 24, dtype=np.float32)

# op name -> (positional args, keyword args) of a valid call
CALLS = {
    "quantize_linear": ((XF, f32(0.05), np.uint8(3)), {}),
    "dequantize_linear": ((A, f32(0.05), np.uint8(3)), {}),
    "matmul_integer": ((A, B, np.uint8(3), np.int8(1)), {}),
    "qlinear_matmul": ((A, f32(0.02), np.uint8(3), B, f32(0.01), np.int8(0), f32(0.1), np.uint8(128)), {}),
    "qgemm": ((A, f32(0.02), np.uint8(3), B, f32(0.01), np.int8(0),
               np.arange(5, dtype=np.int32), f32(0.1), np.uint8(128)), {}),
    "conv_integer": ((X, W, np.uint8(3), np.int8(0)), {}),
    "qlinear_conv": ((X, f32(0.02), np.uint8(3), W, np.full(3, 0.01, f32), np.zeros(3, np.int8),
                      f32(0.5), np.uint8(128), np.arange(3, dtype=np.int32)), {}),
    "requantize": ((np.arange(12, dtype=np.int32).reshape(4, 3) * 100, np.full(3, 0.01, f32), np.int8(2)),
                   {"output_dtype": "int8", "bias": np.arange(3, dtype=np.int32)}),
}


def _outcome(fn, args, kwargs):
    try:
        return ("ok", fn(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the class is what both paths must agree on
        return ("raise", type(exc))


def _same(name, args, kwargs):
    fast = _outcome(getattr(refquant, name), args, kwargs)
    ref = _outcome(getattr(R, name), args, kwargs)
    assert fast[0] == ref[0], (name, fast, ref)
    if fast[0] == "raise":
        assert fast[1] is ref[1], (name, fast[1], ref[1])
    else:
        a, b = fast[1], ref[1]
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    return fast


@pytest.mark.parametrize("name", sorted(CALLS))
def test_valid_calls_agree(name):
    args, kwargs = CALLS[name]
    assert _same(name, args, kwargs)[0] == "ok"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_masked_array_in_any_position_is_refused_by_both(name):
    args, kwargs = CALLS[name]
    for i, v in enumerate(args):
        if v is None:
            continue
        bad = args[:i] + (np.ma.array(v, mask=False),) + args[i + 1:]
        got = _same(name, bad, kwargs)
        assert got == ("raise", TypeError), (name, i)
    for k, v in kwargs.items():
        if isinstance(v, np.ndarray):
            got = _same(name, args, dict(kwargs, **{k: np.ma.array(v, mask=False)}))
            assert got == ("raise", TypeError), (name, k)
    with pytest.raises(TypeError, match="masked arrays are not supported"):
        refquant.pack_weights(np.ma.array(B, mask=True))
    with pytest.raises(TypeError, match="masked arrays are not supported"):
        refquant.calibrate(np.ma.array([1.0, 1000.0], mask=[0, 1], dtype=np.float32))


@pytest.mark.parametrize("attrs", [{"strides": [1.9, 1.9]}, {"pads": [0.9] * 4}, {"strides": ["2", "2"]},
                                   {"dilations": [True, 1]}, {"kernel_shape": [3.0, 3.0]}])
@pytest.mark.parametrize("name", ["conv_integer", "qlinear_conv"])
def test_conv_int_attributes_are_ints(name, attrs):
    args, _ = CALLS[name]
    assert _same(name, args, attrs) == ("raise", TypeError)


@pytest.mark.parametrize("kw", [{"transA": "0"}, {"transB": 2}, {"transA": 0.5}, {"alpha": "1"},
                                {"alpha": np.ones(2, f32)}])
def test_qgemm_attribute_types(kw):
    args, _ = CALLS["qgemm"]
    assert _same("qgemm", args, kw) == ("raise", TypeError)
    ok = _same("qgemm", args, {"transA": False, "transB": np.int64(0), "alpha": f32(2)})
    assert ok[0] == "ok"


@pytest.mark.parametrize("axis, exc", [(2, ValueError), (-3, ValueError), (5, ValueError),
                                       (1.0, TypeError), (True, TypeError)])
def test_requantize_axis_checked(axis, exc):
    args, kwargs = CALLS["requantize"]
    args = (args[0], np.full(4, 0.01, f32), args[2])
    assert _same("requantize", args, dict(output_dtype="int8", axis=axis)) == ("raise", exc)
    assert _same("requantize", args, dict(output_dtype="int8", axis=-2))[0] == "ok"


@pytest.mark.parametrize("attr", ["strides", "dilations"])
@pytest.mark.parametrize("name", ["conv_integer", "qlinear_conv"])
def test_conv_steps_beyond_int32_run_the_reference(name, attr):
    """A stride or dilation >= 2**31 is past the kernels' ints: the reference runs (a 1x1
    kernel keeps the dilated window inside x)."""
    args = list(CALLS[name][0])
    args[0] = _rng.integers(0, 256, (1, 2, 5, 5), dtype=np.uint8)
    w_pos = 1 if name == "conv_integer" else 3
    args[w_pos] = _rng.integers(-128, 128, (3, 2, 1, 1), dtype=np.int8)
    fast = _same(name, tuple(args), {attr: [2 ** 31, 1]})
    assert fast[0] == "ok" and fast[1].shape[2:] == ((1, 5) if attr == "strides" else (5, 5))
    assert refquant.last_path()["path"] == "reference"


def test_packed_weights_original_stays_read_only():
    Wp = refquant.pack_weights(np.ones((8, 16), np.int8))
    with pytest.raises(ValueError):
        Wp.original.setflags(write=True)
    with pytest.raises(ValueError):
        Wp.original[0, 0] = 5


@pytest.mark.parametrize("name", sorted(set(CALLS) - {"requantize"}))
def test_opset_newer_than_known(name):
    args, kwargs = CALLS[name]
    assert _same(name, args, dict(kwargs, opset=99)) == ("raise", ValueError)
    with pytest.raises(ValueError, match="newer than the newest opset refquant knows|opset"):
        getattr(R, name)(*args, **dict(kwargs, opset=99))


@pytest.mark.parametrize("call, ok", [
    (lambda m: m.quantize_linear(XF, np.int32(2), np.int8(0), opset=10), False),   # tensor(float) scale
    (lambda m: m.quantize_linear(XF, np.int32(2), np.int8(0), opset=21), False),   # T1: x's type
    (lambda m: m.quantize_linear(np.int32([5, 7]), f32(2), np.int8(0), opset=19), False),
    (lambda m: m.quantize_linear(np.int32([5, 7]), np.int32(2), np.int8(0), opset=19), True),
    (lambda m: m.quantize_linear(np.int32([5, 7]), f32(2), np.int8(0), opset=13), True),
    (lambda m: m.quantize_linear(XF, np.int32(2), np.int8(0)), True),              # T2 includes int32
    (lambda m: m.quantize_linear(XF, 2, np.int8(0), opset=10), True),              # a Python int: converted
    (lambda m: m.dequantize_linear(A, np.int32(2), np.uint8(0)), False),
    (lambda m: m.qlinear_matmul(A, np.float16(0.02), np.uint8(3), B, f32(0.01), np.int8(0), np.float16(0.1),
                                np.uint8(128), opset=21), False),                  # TS: one scale type
    (lambda m: m.qlinear_matmul(A, np.float16(0.02), np.uint8(3), B, np.float16(0.01), np.int8(0),
                                np.float16(0.1), np.uint8(128), opset=21), True),
])
def test_schema_scale_types(call, ok):
    """The ONNX schemas' type constraints on scales, the same on both paths."""
    fast, ref = _outcome(call, (refquant,), {}), _outcome(call, (R,), {})
    assert fast[0] == ref[0] == ("ok" if ok else "raise"), (fast, ref)
    if ok:
        assert np.array_equal(fast[1], ref[1])
    else:
        assert fast[1] is ref[1] is TypeError


@pytest.mark.parametrize("name", ["qlinear_matmul", "qlinear_conv"])
def test_missing_y_scale_is_refused_by_both(name):
    """y_scale=None: the reference requires a scale (the fast path took it as QGemm's float
    output until session 30)."""
    args, kwargs = CALLS[name]
    args = args[:6] + (None,) + args[7:]
    assert _same(name, args, kwargs) == ("raise", ValueError)


@pytest.mark.parametrize("bias", [np.array([5, -3, 1], np.int64), np.array([1, 0, 1], np.uint8),
                                  np.array([True, False, True]), np.array(["1.5", "2", "3"]),
                                  np.array([1, 2, 3], np.complex64)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_float_bias_profile_refuses_other_bias_types(bias, per_channel):
    """Under fbgemm's float bias (per tensor: rq_bias "float_rcp_fma") only int32 and float
    biases are taken; anything else is the reference's TypeError on both paths."""
    ws = np.full(3, 0.01, f32) if per_channel else f32(0.01)
    wz = np.zeros(3, np.int8) if per_channel else np.int8(0)
    args = (X, f32(0.02), np.uint8(3), W, ws, wz, f32(0.5), np.uint8(128), bias)
    assert _same("qlinear_conv", args, {"profile": "pytorch-fbgemm"}) == ("raise", TypeError)


@pytest.mark.parametrize("rq_nan", ["zero", "qmax"])
def test_non_finite_float_bias_takes_the_reference(rq_nan):
    """A NaN / Inf float bias gives the reference's rq_nan / saturation results (the kernels'
    own clamping of NaN differs by level), also in custom profiles that saturate."""
    p = refquant.profile.get_profile("pytorch-fbgemm").replace(rq_float_to_int="saturate", rq_nan=rq_nan)
    for ws in (np.array([0.01, 0.02, 0.03], f32), f32(0.01)):
        wz = np.zeros(3, np.int8) if np.ndim(ws) else np.int8(0)
        for b in (np.array([np.nan, 1.0, np.inf], f32), np.array([-np.inf, 2.0, 0.0], f32)):
            args = (X, f32(0.02), np.uint8(3), W, ws, wz, f32(0.5), np.uint8(128), b)
            assert _same("qlinear_conv", args, {"profile": p})[0] == "ok"


def test_symmetric_only_override_is_honoured_by_the_fast_path():
    """symmetric_only set by a per-op override: a non-zero weight zero point gets the
    reference's ProfileError on both paths; zero ones run the kernels."""
    p = refquant.profile.get_profile("onnx").replace(name="sym-override",
                                                      overrides=(("QGemm", {"symmetric_only": True}),
                                                                 ("QLinearMatMul", {"symmetric_only": True})))
    for name in ("qgemm", "qlinear_matmul"):
        args, _ = CALLS[name]
        bad = args[:5] + (np.int8(3),) + args[6:]
        assert _same(name, bad, {"profile": p}) == ("raise", refquant.profile.ProfileError)
        good = list(args)
        good[2] = np.uint8(0)
        good[-1] = np.uint8(0)           # every zero point zero (y's too)
        assert _same(name, tuple(good), {"profile": p})[0] == "ok"
