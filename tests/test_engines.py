"""refquant.engines: the registry, the adapters' contracts, and their error behaviour."""
from __future__ import annotations

import numpy as np
import pytest

from refquant import engines as E
from refquant import reference as R
from refquant.engines import cases as CS
from _profiles_live import need

pytestmark = [pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions:UserWarning"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]
Q = {"x": np.float32([0.5, 1.5, -2.5, 7.0]), "y_scale": np.float32(0.5), "y_zero_point": np.int8(1)}


def test_registry():
    names = set(E.engines())
    assert {"onnxruntime", "onnx-reference", "pytorch", "pytorch-fakequant", "pytorch-fbgemm", "pytorch-x86",
            "pytorch-qnnpack", "pytorch-onednn", "tflite-reference", "tflite-optimized", "tflite-xnnpack",
            "openvino"} <= names
    av = E.available()
    assert set(av) <= names and all(isinstance(v, str) and v for v in av.values())
    for n, e in E.ENGINES.items():
        assert set(e.ops) <= set(E.OP_INPUTS), n


def test_errors():
    with pytest.raises(ValueError, match="unknown engine"):
        E.run("tensorrt", "QuantizeLinear", Q)
    with pytest.raises(ValueError, match="unknown op"):
        E.run("onnxruntime", "Conv", {})
    with pytest.raises(E.EngineUnsupported, match="does not run"):
        E.run("pytorch-fakequant", "QLinearMatMul", {"a": np.zeros((1, 1), np.uint8)})
    fake = E.Engine("ghost", "no_such_package_xyz", "._ort", ("QuantizeLinear",), "onnx", "missing")
    assert not fake.importable()
    with pytest.raises(E.EngineUnavailable, match="no_such_package_xyz"):
        fake.version()


@pytest.mark.parametrize("engine", ["onnxruntime", "onnx-reference", "pytorch", "pytorch-fakequant",
                                    "tflite-reference", "tflite-optimized", "tflite-xnnpack", "openvino"])
def test_quantize_smoke(engine):
    need(engine)
    y = E.run(engine, "QuantizeLinear", Q)
    assert y.dtype == np.int8 and y.shape == (4,)
    assert y[-1] == 15


def test_run_reference_same_as_reference():
    y = E.run_reference("QuantizeLinear", Q, {}, profile="pytorch")
    assert np.array_equal(y, R.quantize_linear(Q["x"], Q["y_scale"], Q["y_zero_point"], profile="pytorch"))
    with pytest.raises(ValueError, match="attribute"):
        E.run_reference("QuantizeLinear", Q, {"pads": [0]})
    out = E.run_reference("DynamicQuantizeLinear", {"x": np.float32([0, 1, 2])})
    assert isinstance(out, tuple) and len(out) == 3


def test_tflite_model_is_a_flatbuffer():
    need("tflite-reference")
    from refquant.engines import _tflite as T
    b = T._Builder()
    ti = b.tensor("x", (3,), np.float32)
    to = b.tensor("y", (3,), np.int8, np.float32(0.5), np.int8(0))
    S = T._schema()
    b.op(S.BuiltinOperator.QUANTIZE, 2, [ti], [to], S.BuiltinOptions.QuantizeOptions, S.QuantizeOptionsT())
    model = b.finish([ti], [to])
    assert model[4:8] == b"TFL3"
    m = S.Model.GetRootAsModel(model, 0)
    assert m.SubgraphsLength() == 1 and m.OperatorCodesLength() == 1


def test_xnnpack_denormal_scale_refused_not_crashing():
    need("tflite-xnnpack")
    with pytest.raises(E.EngineUnsupported, match="denormal"):
        E.run("tflite-xnnpack", "QuantizeLinear", {"x": np.float32([1e-39]), "y_scale": np.float32(1e-40),
                                                   "y_zero_point": np.int8(0)})


def test_fakequant_codes_recovered_exactly_or_refused():
    need("pytorch-fakequant")
    y = E.run("pytorch-fakequant", "QuantizeLinear", {"x": np.float32([0.5, 1.5, 2.5, 1e9]),
                                                      "y_scale": np.float32(1), "y_zero_point": np.uint8(3)})
    assert y.tolist() == [3, 5, 5, 255]
    with pytest.raises(E.EngineUnsupported, match="codes"):
        E.run("pytorch-fakequant", "QuantizeLinear", {"x": np.float32([1e38]), "y_scale": np.float32(1e38),
                                                      "y_zero_point": np.int8(0)})   # (q - zp)*s overflows


def test_torch_int32_bias_policy():
    need("pytorch-qnnpack")
    d = CS.to_qgemm(CS.matmul_case(np.random.default_rng(0), 2, 5, 3, bias=True))
    E.run("pytorch-qnnpack", "QGemm", d)          # int32 bias: exact on qnnpack
    with pytest.raises(E.EngineUnsupported, match="float32 bias"):
        E.run("pytorch-fbgemm", "QGemm", d)


def test_tflite_refuses_what_it_cannot_express():
    need("tflite-reference")
    with pytest.raises(E.EngineUnsupported):
        E.run("tflite-reference", "QuantizeLinear", {"x": np.float32([[1.0]]), "y_scale": np.float32([1.0]),
                                                     "y_zero_point": np.int8([0])}, {"axis": 1})
    d, attrs = CS.conv_case(np.random.default_rng(0), 1, 2, 5, 5, 2, 3, 3, x_dtype="int8", pads=(1, 0, 1, 0))
    with pytest.raises(E.EngineUnsupported, match="VALID nor SAME"):
        E.run("tflite-reference", "QLinearConv", d, attrs)


@pytest.mark.parametrize("engine", ["tflite-reference", "tflite-optimized"])
def test_tflite_quantize_honours_output_dtype(engine):
    """QuantizeLinear's output_dtype (no y_zero_point) sets the type LiteRT computes; a type
    LiteRT has no QUANTIZE for is refused, never silently computed as uint8."""
    need(engine)
    x = np.float32([0.25, 1.5, 7.0, -3.3, -100.0])
    for dt in ("int8", "int16", 3):
        y = E.run(engine, "QuantizeLinear", {"x": x, "y_scale": np.float32(1.0)}, {"output_dtype": dt})
        ref = R.quantize_linear(x, np.float32(1.0), output_dtype=dt)
        assert y.dtype == ref.dtype and y.tolist() == ref.tolist() == [0, 2, 7, -3, -100]
    for dt in ("int4", "uint4", "float8e5m2", "float8e4m3fn"):
        with pytest.raises(E.EngineUnsupported, match="not computable"):
            E.run(engine, "QuantizeLinear", {"x": x, "y_scale": np.float32(1.0)}, {"output_dtype": dt})
    with pytest.raises(E.EngineUnsupported, match="differs"):
        E.run(engine, "QuantizeLinear", {"x": x, "y_scale": np.float32(1.0), "y_zero_point": np.uint8(0)},
              {"output_dtype": "int8"})
    with pytest.raises(E.EngineUnsupported, match="float32"):
        E.run(engine, "DequantizeLinear", {"x": np.int8([1, 2]), "x_scale": np.float32(1.0)},
              {"output_dtype": "float16"})


def test_cases_generators_hit_ties_and_specials():
    rng = np.random.default_rng(0)
    x = CS.tie_values(rng, 4000, np.float32(0.1), specials=True)
    v = x.astype(np.float64) / np.float64(np.float32(0.1))
    assert np.isnan(x).any() and np.isinf(x).any()
    fin = np.isfinite(v) & (np.abs(v) < 1e6)
    assert (np.abs(v[fin] - np.floor(v[fin]) - 0.5) < 1e-5).mean() > 0.3
    assert CS.sizes()[:3] == [1, 2, 3] and 67 in CS.sizes() and 4099 in CS.sizes(large=True)
    assert CS.compare(np.int8([1, 2]), np.int8([1, 4])) == (1, 2)


def test_onnxruntime_types_it_rejects_are_engine_unsupported():
    """ORT 1.32's type checker rejects int2/uint2/float4e2m1 Q/DQ (InvalidGraph): the adapter
    says EngineUnsupported, like every other call the engine cannot run."""
    need("onnxruntime")
    import ml_dtypes
    x = np.float32([1.0, 0.5, -1.0])
    for dt in ("int2", "uint2", "float4e2m1"):
        try:
            E.run("onnxruntime", "QuantizeLinear", {"x": x, "y_scale": np.float32(1)}, {"output_dtype": dt})
        except E.EngineUnsupported as e:
            assert dt in str(e)
    for dt in (ml_dtypes.int2, ml_dtypes.float4_e2m1fn):
        try:
            E.run("onnxruntime", "DequantizeLinear", {"x": np.zeros(3, dt), "x_scale": np.float32(1)})
        except E.EngineUnsupported:
            pass


def test_onnxruntime_float8_output_comes_back_typed():
    """ORT's Python binding returns float8 outputs as raw uint8; the adapter views them as float8."""
    need("onnxruntime")
    import ml_dtypes
    inp = {"x": np.float32([1.0, 500.0, -3.25]), "y_scale": np.float32(1.0),
           "y_zero_point": np.zeros((), ml_dtypes.float8_e4m3fn)}
    y = E.run("onnxruntime", "QuantizeLinear", inp)
    assert y.dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    assert y.astype(np.float32).tolist() == [1.0, 448.0, -3.25]
    assert np.array_equal(y.view(np.uint8), E.run_reference("QuantizeLinear", inp, profile="onnxruntime").view(np.uint8))


# ------------------------------------------------------------------ 0-d and empty inputs
Q0 = {"x": np.float32(1.5), "y_scale": np.float32(0.5), "y_zero_point": np.int8(1)}
DQ0 = {"x": np.array(200, np.uint8), "x_scale": np.float32(0.5), "x_zero_point": np.uint8(0)}


@pytest.mark.parametrize("engine", ["pytorch", "pytorch-fakequant", "pytorch-qnnpack"])
def test_torch_0d_input_gives_0d_result(engine):
    """np.ascontiguousarray turned a 0-d x into shape (1,); the result keeps x's shape (0-d), as
    onnxruntime's and the reference's do.  A one-element 1-D scale on a 0-d x broadcasts."""
    need(engine)
    y = E.run(engine, "QuantizeLinear", Q0)
    assert y.shape == () and y.dtype == np.int8 and int(y) == 4
    y = E.run(engine, "QuantizeLinear", {"x": np.float32(1.5), "y_scale": np.float32([0.5]),
                                         "y_zero_point": np.int8([1])}, {"axis": 0})
    assert y.shape == () and int(y) == 4
    if engine != "pytorch-fakequant":
        y = E.run(engine, "DequantizeLinear", DQ0)
        assert y.shape == () and y.dtype == np.float32 and float(y) == 100.0


def test_torch_fakequant_zero_channels_is_unsupported():
    """fake_quantize_per_channel_affine raises its own RuntimeError on an empty (zero-channel)
    scale; the adapter says EngineUnsupported.  Empty x with channels still runs."""
    need("pytorch-fakequant")
    for shape, axis in (((2, 0), 1), ((0,), 0)):
        with pytest.raises(E.EngineUnsupported, match="zero channels"):
            E.run("pytorch-fakequant", "QuantizeLinear", {"x": np.zeros(shape, np.float32),
                                                          "y_scale": np.zeros(0, np.float32),
                                                          "y_zero_point": np.zeros(0, np.int8)}, {"axis": axis})
    y = E.run("pytorch-fakequant", "QuantizeLinear", {"x": np.zeros((0, 3), np.float32),
                                                      "y_scale": np.float32([0.5, 1, 2]),
                                                      "y_zero_point": np.int8([1, 0, 2])}, {"axis": 1})
    assert y.shape == (0, 3) and y.dtype == np.int8


@pytest.mark.parametrize("engine", ["tflite-reference", "tflite-optimized", "tflite-xnnpack"])
def test_tflite_0d_input_runs(engine):
    """A 0-d x was fed as shape (1,) to a 0-d model ("Dimension mismatch"); LiteRT runs 0-d
    QUANTIZE/DEQUANTIZE as they are and gives the (1,) run's value."""
    need(engine)
    for op, d in (("QuantizeLinear", Q0), ("QuantizeLinear", {"x": np.float32(-3.25), "y_scale": np.float32(0.5)}),
                  ("DequantizeLinear", DQ0)):
        y = E.run(engine, op, d)
        ref = E.run_reference(op, d, profile=engine)
        one = E.run(engine, op, dict(d, x=np.reshape(d["x"], 1)))
        assert y.shape == () and y.dtype == ref.dtype and y.tobytes() == ref.tobytes() == one.tobytes()


def test_onnx_reference_gaps_are_unsupported():
    """onnx.reference implements DequantizeLinear from opset 19 on only: below it (opset 10..18)
    its RuntimeError ("No implementation") becomes EngineUnsupported naming the opset; other ops
    run at their first opset.  DynamicQuantizeLinear of an empty x (numpy's zero-size reduction
    ValueError) is EngineUnsupported too."""
    need("onnx-reference")
    d = {"x": np.int8([5, -3]), "x_scale": np.float32(0.5), "x_zero_point": np.int8(1)}
    for opset in (10, 13, 18):
        with pytest.raises(E.EngineUnsupported, match=f"no implementation of DequantizeLinear at opset {opset}"):
            E.run("onnx-reference", "DequantizeLinear", d, opset=opset)
    assert E.run("onnx-reference", "DequantizeLinear", d, opset=19).tolist() == [2.0, -2.0]
    assert E.run("onnx-reference", "QuantizeLinear", Q, opset=10).tolist() == [2, 4, -4, 15]
    with pytest.raises(E.EngineUnsupported, match="empty"):
        E.run("onnx-reference", "DynamicQuantizeLinear", {"x": np.zeros(0, np.float32)})


def test_openvino_1d_empty_input_runs():
    """OpenVINO's ONNX frontend dropped a static (0,)-shaped graph input and the inference request
    failed (vector::_M_range_check); zero-size inputs now get dynamic dimensions and run."""
    need("openvino")
    y = E.run("openvino", "QuantizeLinear", {"x": np.zeros(0, np.float32), "y_scale": np.float32(0.5),
                                             "y_zero_point": np.int8(1)})
    assert y.shape == (0,) and y.dtype == np.int8
    y = E.run("openvino", "QuantizeLinear", {"x": np.zeros(0, np.float32), "y_scale": np.float32(0.5)},
              {"output_dtype": "int4"})
    assert y.shape == (0,) and str(y.dtype) == "int4"
    y = E.run("openvino", "DequantizeLinear", {"x": np.zeros(0, np.uint8), "x_scale": np.zeros(0, np.float32),
                                               "x_zero_point": np.zeros(0, np.uint8)}, {"axis": 0})
    assert y.shape == (0,) and y.dtype == np.float32


@pytest.mark.parametrize("engine", ["onnxruntime", "onnx-reference", "openvino"])
def test_opset_before_the_op_exists_is_a_value_error(engine):
    """An opset older than the op: the reference's ValueError("opset: ...") on every ONNX-model
    engine (was onnxruntime's raw InvalidGraph, onnx.reference's RuntimeError, and OpenVINO ran it)."""
    need(engine)
    with pytest.raises(ValueError, match="opset: QuantizeLinear exists from opset 10"):
        E.run(engine, "QuantizeLinear", Q, opset=9)
    if engine != "openvino":
        with pytest.raises(ValueError, match="opset: DynamicQuantizeLinear exists from opset 11"):
            E.run(engine, "DynamicQuantizeLinear", {"x": np.float32([1.0, -2.0])}, opset=10)


def test_openvino_low_precision_x_and_unloadable_models():
    """A low-precision x (int4/uint4/float8/float4) could not be fed (raw ParameterMismatch): it is
    an initializer now and DequantizeLinear runs, 0-d included; an empty one comes back from
    OpenVINO as shape () -> EngineUnsupported, never a wrong-shaped result; models OpenVINO cannot
    load (int2, float4 QuantizeLinear) -> EngineUnsupported."""
    need("openvino")
    import ml_dtypes
    for dt in (ml_dtypes.int4, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2):
        for shape in ((5,), ()):
            d = {"x": np.full(shape, 3, dt), "x_scale": np.float32(0.37)}
            y = E.run("openvino", "DequantizeLinear", d)
            assert y.shape == shape and y.tobytes() == E.run_reference("DequantizeLinear", d).tobytes()
        with pytest.raises(E.EngineUnsupported, match="shape"):
            E.run("openvino", "DequantizeLinear", {"x": np.zeros(0, dt), "x_scale": np.float32(0.37)})
    bf = {"x": np.array(1.5, ml_dtypes.bfloat16), "y_scale": np.array(0.5, ml_dtypes.bfloat16),
          "y_zero_point": np.int8(0)}
    assert E.run("openvino", "QuantizeLinear", bf).tolist() == 3     # a 0-d bfloat16 x was fed as f16
    for od in ("int2", "float4e2m1"):
        with pytest.raises(E.EngineUnsupported, match="cannot load"):
            E.run("openvino", "QuantizeLinear", {"x": np.float32([1, 2]), "y_scale": np.float32(1)},
                  {"output_dtype": od})


def test_int32_quantize_output_is_unsupported_not_a_crash():
    """int32 is no ONNX QuantizeLinear output type: pytorch-fakequant tried a 2**32-entry code
    table (MemoryError) and onnx.reference raised its own ValueError; both say EngineUnsupported."""
    d = {"x": np.float32([1.0, 2.5]), "y_scale": np.float32(0.5), "y_zero_point": np.int32(0)}
    for engine in ("pytorch-fakequant", "onnx-reference"):
        need(engine)
        with pytest.raises(E.EngineUnsupported):
            E.run(engine, "QuantizeLinear", d)


def test_torch_quantized_zero_size_reductions_and_channels_refused():
    """torch 2.13 gets zero-size linear/conv shapes wrong: K = 0 gives uninitialised memory on
    fbgemm/x86 (SIGFPE on onednn), 0 input channels make x86 conv raise, no output channels
    crash qnnpack (SIGFPE); the adapter refuses those and runs an empty batch."""
    need("pytorch-fbgemm")
    import torch
    d = CS.matmul_case(np.random.default_rng(0), 2, 1, 2)
    k0 = dict(d, a=d["a"][:, :0], b=d["b"][:0])
    n0 = dict(d, b=d["b"][:, :0])
    for eng, case in (("fbgemm", k0), ("x86", k0), ("onednn", k0), ("qnnpack", n0)):
        if eng in torch.backends.quantized.supported_engines:
            with pytest.raises(E.EngineUnsupported, match="zero-length|no output channels"):
                E.run(f"pytorch-{eng}", "QLinearMatMul", case)
    if "qnnpack" in torch.backends.quantized.supported_engines:
        y = E.run("pytorch-qnnpack", "QLinearMatMul", k0)        # qnnpack: y_zero_point, correctly
        assert y.tolist() == [[int(d["y_zero_point"])] * 2] * 2
    c, at = CS.conv_case(np.random.default_rng(0), 1, 2, 3, 3, 2, 1, 1, per_channel=False, bias=False)
    with pytest.raises(E.EngineUnsupported, match="zero-length"):
        E.run("pytorch-x86", "QLinearConv", dict(c, x=c["x"][:, :0], w=c["w"][:, :0]), at)
    y = E.run("pytorch-fbgemm", "QLinearConv", dict(c, x=c["x"][:0]), at)
    assert y.shape == (0, 2, 3, 3)


def test_empty_reduction_refused_where_engines_get_it_wrong():
    """K = 0 (a sum of zero terms): onnxruntime 1.32 returns uninitialised memory (MatMulInteger,
    QGemm, ConvInteger) or 0 instead of y_zero_point (QLinearMatMul), LiteRT's FULLY_CONNECTED
    leaves its output unwritten: EngineUnsupported.  onnx.reference gets it right."""
    d = CS.matmul_case(np.random.default_rng(0), 2, 1, 2, a_dtype="int8", y_dtype="int8")
    d = dict(d, a=d["a"][:, :0], b=d["b"][:0])
    need("onnxruntime")
    for op, inp in (("QLinearMatMul", d), ("QGemm", CS.to_qgemm(d)),
                    ("MatMulInteger", {"A": d["a"], "B": d["b"]})):
        with pytest.raises(E.EngineUnsupported, match="empty reduction"):
            E.run("onnxruntime", op, inp)
    c, at = CS.conv_case(np.random.default_rng(0), 1, 2, 3, 3, 2, 1, 1, per_channel=False, bias=False)
    with pytest.raises(E.EngineUnsupported, match="empty reduction"):
        E.run("onnxruntime", "ConvInteger", {"x": c["x"][:, :0], "w": c["w"][:, :0]}, at)
    with pytest.raises(E.EngineUnsupported, match="refused the inputs"):     # was InvalidArgument
        E.run("onnxruntime", "ConvInteger", {"x": c["x"][:, :, :0], "w": c["w"]}, at)
    need("onnx-reference")
    assert E.run("onnx-reference", "QLinearMatMul", d).tolist() == [[int(d["y_zero_point"])] * 2] * 2
    need("tflite-reference")
    with pytest.raises(E.EngineUnsupported, match="K = 0"):
        E.run("tflite-reference", "QLinearMatMul", dict(d, b=d["b"].astype(np.int8)))


@pytest.mark.parametrize("engine", ["pytorch", "onnxruntime", "onnx-reference"])
def test_per_axis_axis_out_of_range_is_the_reference_value_error(engine):
    """torch's adapter wrapped axis % rank silently (axis 3 on a rank-2 x ran as axis 1);
    onnxruntime / onnx.reference raised their own Fail / IndexError."""
    need(engine)
    d = {"x": np.zeros((2, 3), np.float32), "y_scale": np.float32([1, 2, 4]), "y_zero_point": np.int8([0, 0, 0])}
    for ax in (3, -3):
        with pytest.raises(ValueError, match=f"axis: {ax} is outside"):
            E.run(engine, "QuantizeLinear", d, {"axis": ax})
        with pytest.raises(ValueError, match=f"axis: {ax} is outside"):
            E.run_reference("QuantizeLinear", d, {"axis": ax})
