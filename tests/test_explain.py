"""refquant.explain and the `refquant explain` CLI."""
from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

import refquant as rq
from refquant import reference as R
from refquant import engines as E
from refquant.engines import cases as CS
from refquant.explain import explain, Explanation
from _profiles_live import need

pytestmark = [pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions:UserWarning"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]
TIES = np.float32([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])


def _q(x=TIES, s=1.0, zp=np.int8(1)):
    return {"x": np.asarray(x, np.float32), "y_scale": np.float32(s), "y_zero_point": zp}


def test_matches_and_report():
    inp = _q()
    obs = R.quantize_linear(inp["x"], inp["y_scale"], inp["y_zero_point"], profile="tflite-reference")
    r = explain("QuantizeLinear", inp, obs)
    assert isinstance(r, Explanation)
    assert "tflite-reference" in r.matches and "onnx" not in r.matches
    c = r.comparison("onnx")
    assert c.status == "differs" and c.n_diff == 4 and c.max_steps == 1
    assert c.classes == {"rounding_tie": 4}
    assert r.comparison("tensorrt").status == "cannot_express"
    assert "TensorRT only supports symmetric quantization" in r.comparison("tensorrt").error
    text = str(r)
    assert "Reproduced exactly by" in text and "tflite-reference" in text and "rounding tie" in text
    d = json.loads(json.dumps(r.to_dict()))
    assert d["matches"] == r.matches and d["n"] == 6


def test_single_field_suggestion_quantize():
    inp = _q()
    mine = rq.get_profile("onnx").replace(name="engine-x", q_rounding="half_away", q_zero_point="before_rounding")
    obs = R.quantize_linear(inp["x"], inp["y_scale"], inp["y_zero_point"], profile=mine)
    r = explain("QuantizeLinear", inp, obs, candidates=["onnx", "pytorch"])
    assert r.matches == []
    assert r.nearest in ("onnx", "pytorch")
    sugg = {(s["profile"], s["field"], s["to"]) for s in r.suggestions}
    assert ("pytorch", "q_rounding", "half_away") in sugg or ("onnx", "q_zero_point", "before_rounding") in sugg \
        or sugg, sugg
    assert "A single arithmetic change" in str(r) or "No single-field change" in str(r)


def test_single_field_suggestion_requant():
    a = np.array([[1], [3], [5], [7]], np.uint8)
    inp = {"a": a, "a_scale": np.float32(0.5), "a_zero_point": np.uint8(0), "b": np.ones((1, 1), np.uint8),
           "b_scale": np.float32(1.0), "b_zero_point": np.uint8(0), "y_scale": np.float32(1.0),
           "y_zero_point": np.uint8(1)}
    obs = np.array([[2], [2], [4], [4]], np.uint8)        # round(acc*M + zp): zero point before rounding
    r = explain("QLinearMatMul", inp, obs, candidates=["onnxruntime"])
    assert r.matches == []
    assert {"profile": "onnxruntime", "field": "rq_zero_point", "from": "after_rounding", "to": "before_rounding",
            "topic": "zero-point order"} in r.suggestions
    assert set(explain("QLinearMatMul", inp, obs).matches) == {"onnx-reference", "pytorch-onednn"}


def test_int16_pair_saturation_explained():
    A = np.array([[210, 198, 234]], np.uint8)
    B = np.array([[-81], [-80], [127]], np.int8)
    inp = {"A": A, "B": B, "a_zero_point": np.uint8(0), "b_zero_point": np.int8(0)}
    obs = np.array([[-32768 + 234 * 127]], np.int32)
    r = explain("MatMulInteger", inp, obs)
    assert "onnxruntime-avx2" in r.matches and "onnxruntime" not in r.matches
    assert r.comparison("onnxruntime").classes == {"int16_pair": 1}
    r = explain("MatMulInteger", inp, obs, candidates=["onnxruntime"])
    # True (every GEMM) and "mlas" (ORT's kernels) both saturate a GEMM: both reproduce it
    assert r.suggestions == [{"profile": "onnxruntime", "field": "int16_pair_saturation", "from": False,
                              "to": to, "topic": "saturation"} for to in (True, "mlas")]


def test_large_accumulator_and_nan_classes():
    a = np.full((1, 2048), 255, np.uint8)
    b = np.full((2048, 1), 127, np.int8)
    b[0, 0] = 126
    inp = {"a": a, "a_scale": np.float32(1.0), "a_zero_point": np.uint8(0), "b": b, "b_scale": np.float32(1.0),
           "b_zero_point": np.int8(0), "y_scale": np.float32(1 / 3.0230283e-06), "y_zero_point": np.uint8(0)}
    obs = np.array([[200]], np.uint8)
    r = explain("QLinearMatMul", inp, obs, candidates=["onnxruntime", "onnx-reference"])
    assert r.matches == ["onnxruntime"]
    assert r.comparison("onnx-reference").classes == {"large_accumulator": 1}
    inp = _q([np.nan, np.inf, 1.0], zp=np.int8(0))
    obs = np.array([127, 127, 1], np.int8)
    r = explain("QuantizeLinear", inp, obs)
    assert "pytorch" in r.matches
    assert r.comparison("onnxruntime").classes == {"nan_inf_input": 1}


def test_dequantize_steps_and_dynamic_tuple():
    inp = {"x": np.int8([1, 2, 3]), "x_scale": np.float32(0.1), "x_zero_point": np.int8(0)}
    obs = R.dequantize_linear(inp["x"], inp["x_scale"], inp["x_zero_point"]).copy()
    obs[1] = np.nextafter(obs[1], np.float32(1))
    r = explain("DequantizeLinear", inp, obs)
    assert r.matches == []
    c = r.comparison("onnx")
    assert c.n_diff == 1 and c.classes == {"float_rounding": 1} and 0 < c.max_steps < 1e-5
    x = np.zeros(4, np.float32)
    y, s, zp = R.dynamic_quantize_linear(x, profile="onnx-reference")
    r = explain("DynamicQuantizeLinear", {"x": x}, (y, s, zp))
    assert r.matches == ["onnx-reference"]
    r = explain("DynamicQuantizeLinear", {"x": x}, (y, s, zp), candidates=["onnxruntime"])
    assert r.suggestions and r.suggestions[0]["field"] == "dql_zero_range_scale"


def test_nan_inf_outputs_count_as_infinite_steps():
    """A float output holding NaN or Inf against a finite reference value: inf steps (no
    OverflowError, no float64-max integer), classified with NaN/Inf wording."""
    inp = {"x": np.uint8([1, 2, 3]), "x_scale": np.float32(0.1), "x_zero_point": np.uint8(0)}
    for bad, cls, label in ((np.inf, "inf_vs_finite", "Inf vs finite"), (np.nan, "nan_vs_finite", "NaN vs finite")):
        obs = R.dequantize_linear(inp["x"], inp["x_scale"], inp["x_zero_point"]).copy()
        obs[0] = bad
        r = explain("DequantizeLinear", inp, obs, candidates=["onnx"])
        c = r.comparison("onnx")
        assert c.n_diff == 1 and c.max_steps == np.inf and c.classes == {cls: 1}
        assert label in str(r) and "max inf output steps" in str(r)
        assert json.loads(r.to_json())["profiles"][0]["max_steps"] == "inf"
    # float8 output: the reference keeps Inf (saturate=0), the engine saturated it
    x = np.float32([np.inf, 1.0])
    obs = np.float32([57344.0, 1.0]).astype(ml_dtypes.float8_e5m2)
    r = explain("QuantizeLinear", {"x": x, "y_scale": np.float32(1)}, obs,
                attributes={"output_dtype": "float8e5m2", "saturate": 0}, candidates=["onnx"])
    assert r.comparison("onnx").max_steps == np.inf and r.comparison("onnx").classes == {"inf_vs_finite": 1}
    # float4 (an ml_dtypes type numpy calls kind 'V') compares as float, not truncated to int
    x = np.float32([0.5, 1.0, 2.9])
    obs = R.quantize_linear(x, np.float32(1), output_dtype="float4e2m1").copy()
    obs[0] = 0
    r = explain("QuantizeLinear", {"x": x, "y_scale": np.float32(1)}, obs,
                attributes={"output_dtype": "float4e2m1"}, candidates=["onnx"])
    assert r.comparison("onnx").n_diff == 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown op"):
        explain("Conv", {}, np.zeros(1))
    with pytest.raises(ValueError, match="has no input"):
        explain("QuantizeLinear", {"x": TIES, "scale": np.float32(1)}, np.zeros(6, np.int8))
    with pytest.raises(TypeError, match="inputs"):
        explain("QuantizeLinear", [TIES], np.zeros(6, np.int8))
    with pytest.raises(ValueError, match="shape"):
        explain("QuantizeLinear", _q(), np.zeros(5, np.int8))
    with pytest.raises(ValueError, match="unknown profile"):
        explain("QuantizeLinear", _q(), np.zeros(6, np.int8), candidates=["nope"])


@pytest.mark.parametrize("engine", ["onnxruntime", "onnx-reference", "pytorch", "pytorch-fakequant",
                                    "tflite-reference", "tflite-optimized", "tflite-xnnpack"])
def test_live_engine_output_is_matched_by_its_profile(engine):
    need(engine)
    rng = np.random.default_rng(11)
    inp = CS.quantize_case(rng, 37, "int8", scale=np.float32(0.05269162), zp=np.int8(3))
    obs = E.run(engine, "QuantizeLinear", inp)
    assert E.ENGINES[engine].profile in explain("QuantizeLinear", inp, obs).matches


@pytest.mark.parametrize("engine", ["onnxruntime", "pytorch-qnnpack", "tflite-reference", "tflite-optimized",
                                    "tflite-xnnpack"])
def test_live_qlinear_matched(engine):
    need(engine)
    rng = np.random.default_rng(12)
    dt = "int8" if engine.startswith("tflite") else "uint8"
    d = CS.matmul_case(rng, 4, 37, 5, a_dtype=dt, tie=True)
    obs = E.run(engine, "QLinearMatMul", d)
    assert E.ENGINES[engine].profile in explain("QLinearMatMul", d, obs).matches


# ------------------------------------------------------------------------------------- CLI
def _cli(argv):
    from refquant.cli import main
    return main(argv)


def test_cli_report_json_and_exit_codes(tmp_path, capsys):
    inp = _q()
    np.savez(tmp_path / "in.npz", **inp)
    obs = R.quantize_linear(inp["x"], inp["y_scale"], inp["y_zero_point"], profile="pytorch")
    np.save(tmp_path / "obs.npy", obs)
    assert _cli(["explain", "QuantizeLinear", "--inputs", str(tmp_path / "in.npz"),
                 "--observed", str(tmp_path / "obs.npy")]) == 0
    out = capsys.readouterr().out
    assert "Reproduced exactly by" in out and "pytorch" in out
    assert _cli(["explain", "QuantizeLinear", "--inputs", str(tmp_path / "in.npz"), "--observed",
                 str(tmp_path / "obs.npy"), "--json", "--profiles", "onnx,onnxruntime"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["matches"] == [] and d["profiles"][0]["profile"] == "onnx"
    np.savez(tmp_path / "both.npz", observed=obs, **inp)
    assert _cli(["explain", "QuantizeLinear", "--inputs", str(tmp_path / "both.npz")]) == 0
    capsys.readouterr()
    assert _cli(["explain", "QuantizeLinear", "--inputs", str(tmp_path / "in.npz")]) == 2
    assert "no observed output" in capsys.readouterr().err


def test_cli_bad_input_exit_2(tmp_path, capsys):
    x = np.float32([0.5, 1.5, 2.5])
    np.save(tmp_path / "obs.npy", np.int8([0, 2, 2]))
    np.savez(tmp_path / "noscale.npz", x=x)
    np.savez(tmp_path / "zero.npz", x=x, y_scale=np.float32(0))
    np.savez(tmp_path / "ok.npz", x=x, y_scale=np.float32(1))
    obs = ["--observed", str(tmp_path / "obs.npy")]
    for f, extra, msg in (("noscale", [], "needs y_scale"), ("zero", [], "every scale must be finite"),
                          ("ok", ["--opset", "99"], "opset"),
                          ("ok", ["--engine", "onnxruntime"], "mutually exclusive")):
        assert _cli(["explain", "QuantizeLinear", "--inputs", str(tmp_path / f"{f}.npz"), *obs, *extra]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err


def test_cli_low_bit_arrays(tmp_path, capsys):
    """ml_dtypes arrays come back from .npy/.npz as raw bytes (|V1): typed by --dtype, by the op
    (output_dtype, zero point types), else a clear error naming --dtype."""
    x = np.float32([np.nan, 1.0, 1000.0, -3.0])
    y = R.quantize_linear(x, np.float32(1), output_dtype="float8e4m3fn")
    np.savez(tmp_path / "q.npz", x=x, y_scale=np.float32(1))
    np.save(tmp_path / "q_obs.npy", y)
    assert np.load(tmp_path / "q_obs.npy").dtype.str == "|V1"
    q = ["explain", "QuantizeLinear", "--inputs", str(tmp_path / "q.npz"), "--observed", str(tmp_path / "q_obs.npy")]
    assert _cli(q + ["--attr", "output_dtype=float8e4m3fn", "--profiles", "onnx"]) == 0    # from output_dtype
    capsys.readouterr()
    assert _cli(q + ["--profiles", "onnx"]) == 2
    assert "--dtype observed=TYPE" in capsys.readouterr().err
    xq = np.array([1, -8, 7, 0], ml_dtypes.int4)
    np.savez(tmp_path / "dq.npz", x=xq, x_scale=np.float32(0.5))
    np.save(tmp_path / "dq_obs.npy", R.dequantize_linear(xq, np.float32(0.5)))
    dq = ["explain", "DequantizeLinear", "--inputs", str(tmp_path / "dq.npz"), "--observed",
          str(tmp_path / "dq_obs.npy"), "--profiles", "onnx"]
    assert _cli(dq) == 2
    err = capsys.readouterr().err
    assert "--dtype x=TYPE" in err and "Traceback" not in err
    assert _cli(dq + ["--dtype", "x=int4"]) == 0
    capsys.readouterr()
    np.savez(tmp_path / "dq8.npz", x=np.int8([1, -8, 7, 0]), x_scale=np.float32(0.5))   # int4 values as int8
    dq8 = ["explain", "DequantizeLinear", "--inputs", str(tmp_path / "dq8.npz"), "--observed",
           str(tmp_path / "dq_obs.npy"), "--profiles", "onnx"]
    assert _cli(dq8 + ["--dtype", "x=int4"]) == 0
    np.savez(tmp_path / "dq9.npz", x=np.int8([1, -9, 7, 0]), x_scale=np.float32(0.5))
    capsys.readouterr()
    assert _cli(dq8[:3] + [str(tmp_path / "dq9.npz")] + dq8[4:] + ["--dtype", "x=int4"]) == 2
    assert "not all exactly representable" in capsys.readouterr().err
    assert _cli(dq + ["--dtype", "nope=int4"]) == 2
    assert "no array named nope" in capsys.readouterr().err
    assert _cli(dq + ["--dtype", "x=int44"]) == 2
    assert "unknown type name" in capsys.readouterr().err


def test_cli_attributes(tmp_path, capsys):
    rng = np.random.default_rng(3)
    d, attrs = CS.conv_case(rng, 1, 2, 5, 5, 3, 3, 3, pads=(1, 1, 1, 1))
    obs = E.run_reference("QLinearConv", d, attrs, profile="onnxruntime")
    np.savez(tmp_path / "c.npz", **d)
    np.savez(tmp_path / "o.npz", y=obs)
    rc = _cli(["explain", "QLinearConv", "--inputs", str(tmp_path / "c.npz"), "--observed", str(tmp_path / "o.npz"),
               "--attr", "pads=1,1,1,1", "--attr", "kernel_shape=3,3", "--attributes", '{"strides": [1, 1]}'])
    assert rc == 0 and "onnxruntime" in capsys.readouterr().out
    from refquant.explain_cli import parse_attr
    assert parse_attr("alpha=0.5") == ("alpha", 0.5) and parse_attr("auto_pad=SAME_UPPER") == ("auto_pad", "SAME_UPPER")
    with pytest.raises(ValueError):
        parse_attr("novalue")


def test_zero_scale_is_invalid_for_every_profile():
    """A zero scale is outside ONNX's domain: every profile refuses it (ValueError naming the
    argument), and explain lists them all as unable to express the call."""
    need("onnxruntime")
    inp = _q([1.0, 0.0, -1.0], s=0.0, zp=np.int8(0))
    with pytest.raises(ValueError, match="y_scale"):
        R.quantize_linear(inp["x"], inp["y_scale"], inp["y_zero_point"], profile="onnxruntime")
    obs = E.run("onnxruntime", "QuantizeLinear", inp)          # ORT: x/0 -> +-inf -> saturate, 0/0 -> qmin
    assert obs.tolist() == [127, -128, -128]
    with pytest.raises(ValueError, match="y_scale: every scale must be finite"):
        explain("QuantizeLinear", inp, obs)     # the reference itself rejects the inputs
    r = explain("QuantizeLinear", _q([1.0, 2.0], zp=np.int8(3)), np.int8([4, 5]), candidates=["tensorrt"])
    assert r.matches == [] and all(c.status == "cannot_express" for c in r.comparisons)   # a profile's limit
    assert r.nearest is None and "Cannot express" in str(r)


def test_inputs_no_profile_can_run_raise():
    """Inputs the reference rejects for every profile (same error everywhere) raise that error;
    observed that is not an array gets a clear TypeError."""
    x = np.float32([0.5, 1.5, 2.5])
    obs = np.int8([0, 2, 2])
    with pytest.raises(ValueError, match="needs y_scale"):
        explain("QuantizeLinear", {"x": x}, obs)
    with pytest.raises(ValueError, match="inner dimensions"):
        explain("MatMulInteger", {"A": np.ones((2, 3), np.uint8), "B": np.ones((4, 2), np.int8)},
                np.zeros((2, 2), np.int32))
    with pytest.raises(TypeError, match="float64"):
        explain("QuantizeLinear", {"x": x.astype(np.float64), "y_scale": np.float32(1)}, obs)
    with pytest.raises(ValueError, match="opset"):
        explain("QuantizeLinear", {"x": x, "y_scale": np.float32(1)}, obs, opset=99)
    for bad in (None, {"y": obs}, "y.npy"):
        with pytest.raises(TypeError, match="observed"):
            explain("QuantizeLinear", {"x": x, "y_scale": np.float32(1)}, bad)


def test_int16_pair_saturation_in_convolution():
    rng = np.random.default_rng(0)
    d, a = CS.conv_case(rng, 1, 8, 8, 8, 8, 3, 3, pads=(1, 1, 1, 1), tie=True)
    d["x"][:] = rng.choice([0, 255], d["x"].shape).astype(np.uint8)
    d["w"][:] = rng.choice([-128, 127], d["w"].shape).astype(np.int8)
    obs = E.run_reference("QLinearConv", d, a, profile="onnxruntime-avx2")
    r = explain("QLinearConv", d, obs, attributes=a)
    assert r.matches == ["onnxruntime-avx2"]
    cl = r.comparison("onnxruntime").classes
    assert max(cl, key=cl.get) == "int16_pair"
    r = explain("QLinearConv", d, obs, attributes=a, candidates=["onnxruntime"])
    assert r.suggestions[0]["field"] == "int16_pair_saturation" and r.suggestions[0]["to"] is True


def test_kernels_and_reference_explain_alike(monkeypatch):
    """explain re-runs the op under each candidate on refquant.<op> (kernels where they cover the
    call and profile); with REFQUANT_DISABLE_FAST=1 (the reference alone) the report is the same."""
    rng = np.random.default_rng(3)
    d, a = CS.conv_case(rng, 1, 16, 9, 9, 24, 3, 3, pads=(1, 1, 1, 1), tie=True)
    obs = np.asarray(E.run_reference("QLinearConv", d, a, profile="onnxruntime-avx2")).copy()
    obs.flat[::37] ^= 1
    fast = explain("QLinearConv", d, obs, attributes=a)
    monkeypatch.setenv("REFQUANT_DISABLE_FAST", "1")
    ref = explain("QLinearConv", d, obs, attributes=a)
    assert str(fast) == str(ref) and fast.matches == ref.matches


def test_cli_live_engine(tmp_path, capsys):
    need("tflite-reference")
    inp = _q()
    np.savez(tmp_path / "in.npz", **inp)
    assert _cli(["explain", "QuantizeLinear", "--inputs", str(tmp_path / "in.npz"), "--engine", "tflite-reference",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert "tflite-reference" in d["matches"]


def test_explain_finds_the_conversion_beyond_int32():
    """A tiny y_scale scales accumulators beyond int32: fbgemm converts them to INT32_MIN (qmin
    whatever the sign) where the spec saturates; explain names rq_float_to_int as the single
    arithmetic change (it was outside the searched fields until session 10)."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (8, 32)).astype(np.uint8)
    b = rng.integers(-127, 128, (32, 16)).astype(np.int8)
    ins = dict(a=a, a_scale=np.float32(0.5), a_zero_point=np.uint8(3), b=b, b_scale=np.float32(0.5),
               b_zero_point=np.int8(0), y_scale=np.float32(1e-9), y_zero_point=np.uint8(5))
    obs = R.qlinear_matmul(*ins.values(), profile="pytorch-fbgemm")
    r = explain("QLinearMatMul", ins, obs, candidates=["onnx"])
    assert "rq_float_to_int = 'int32_min'" in str(r)
    assert "pytorch-fbgemm" in explain("QLinearMatMul", ins, obs).matches


def test_a_tie_explains_one_step_only():
    """An input on a rounding tie whose output is several steps off is not classed a tie."""
    x = np.array([2.5, 3.5, 0.25], np.float32)
    inputs = {"x": x, "y_scale": np.float32(1.0), "y_zero_point": np.int8(0)}
    r = explain("QuantizeLinear", inputs, np.array([3, 11, 0], np.int8), candidates=["onnx"])
    classes = r.comparisons[0].classes
    assert classes == {"rounding_tie": 1, "other": 1}, classes


def test_spec_cause_named_when_a_vendor_profile_matches():
    """An output that vendor profiles reproduce and the spec does not: the one arithmetic change
    that takes the spec there is named (x * fl32(1/s) instead of x / s here)."""
    import refquant
    s = np.float32(0.1)
    x = ((np.arange(-120, 120) + 0.5) * s).astype(np.float32)     # ties and their neighbours
    x = np.concatenate([x, np.nextafter(x, np.float32(1e9)), np.nextafter(x, np.float32(-1e9))])
    div = refquant.reference.quantize_linear(x, s, np.int8(0), profile="onnx")
    rcp = refquant.reference.quantize_linear(x, s, np.int8(0), profile="tflite-xnnpack")
    assert (div != rcp).any()
    e = explain("QuantizeLinear", {"x": x, "y_scale": s, "y_zero_point": np.int8(0)}, rcp)
    assert "tflite-xnnpack" in e.matches and "onnx" not in e.matches
    assert any(c["field"] == "q_scale_op" for c in e.spec_causes), e.spec_causes
    assert "The spec (onnx) gives it with one change: q_scale_op" in str(e)
    assert e.to_dict()["spec_causes"]


def test_observed_of_the_wrong_kind_is_refused():
    """Observed arrays that cannot be the op's output get a clear error instead of a false
    "no profile matches": codes outside the output type's range (int8 codes stored as uint8, an
    int32 accumulator), integers for a float output, a narrower float type; a list of numbers
    and int64 codes in range are taken."""
    x = np.array([-1.3, 0.2, 2.6, -12.0], np.float32)
    inp = {"x": x, "y_scale": np.float32(0.1), "y_zero_point": np.int8(0)}
    codes = np.array([-13, 2, 26, -120], np.int8)
    assert "onnx" in explain("QuantizeLinear", inp, codes.astype(np.int64)).matches
    assert "onnx" in explain("QuantizeLinear", inp, codes.tolist()).matches
    with pytest.raises(ValueError, match="outside int8's range"):
        explain("QuantizeLinear", inp, codes.view(np.uint8))
    dq = {"x": codes, "x_scale": np.float32(0.1), "x_zero_point": np.int8(0)}
    with pytest.raises(TypeError, match="output here is float32"):
        explain("DequantizeLinear", dq, codes)
    with pytest.raises(TypeError, match="narrower type"):
        explain("DequantizeLinear", dq, (codes * np.float32(0.1)).astype(np.float16))
    a = np.ones((2, 3), np.uint8)
    b = np.ones((3, 2), np.int8)
    qm = {"a": a, "a_scale": np.float32(0.1), "a_zero_point": np.uint8(0), "b": b,
          "b_scale": np.float32(0.1), "b_zero_point": np.int8(0), "y_scale": np.float32(0.01)}
    with pytest.raises(ValueError, match="QLinearMatMul needs y_zero_point"):
        explain("QLinearMatMul", qm, np.zeros((2, 2), np.uint8))
    qm["y_zero_point"] = np.uint8(0)
    with pytest.raises(ValueError, match="outside uint8's range"):
        explain("QLinearMatMul", qm, np.full((2, 2), 3000, np.int32))
