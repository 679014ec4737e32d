"""refquant.run_model: whole ONNX models on the reference, as written and with engine fusions.

The model builders here are shared with tests/test_compare.py and tests/test_lint.py.
Checks against onnxruntime 1.32 (CPU EP, 1 thread):
- ORT_DISABLE_ALL vs run_model(fuse=None): bit-exact on every quantized tensor (codes and DQ
  outputs); float Conv/MatMul outputs may differ by ulps (numpy vs MLAS summation order) and are
  not asserted bit-exact.
- ORT_ENABLE_BASIC vs fuse="onnxruntime-basic", ORT_ENABLE_EXTENDED / ALL vs fuse="onnxruntime":
  bit-exact on every quantized tensor both graphs have.
"""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="run_model needs onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import refquant  # noqa: E402
from refquant.model import run_model, plan_fusions, topological_tensors  # noqa: E402
from refquant.examples import (_init, _model, qdq_conv_chain, trt_conv_model,  # noqa: E402,F401
                               random_input)


# --------------------------------------------------------------------------- model builders

def qdq_gemm_chain(seed=0, K=64, N=32, N2=16, batch=8):
    """x -> Q/DQ -> Gemm(DQ(w) transB, float bias) -> Q/DQ -> MatMul(DQ(w2)) (float out)."""
    rng = np.random.default_rng(seed)
    inits = [_init("sx", np.float32(0.0173)), _init("zx", np.uint8(120)),
             _init("w_q", rng.integers(-127, 128, (N, K)).astype(np.int8)),
             _init("sw", (rng.random(N) * 0.004 + 0.001).astype(np.float32)),
             _init("zw", np.zeros(N, np.int8)),
             _init("b", rng.standard_normal(N).astype(np.float32)),
             _init("sy", np.float32(0.0441)), _init("zy", np.uint8(128)),
             _init("w2_q", rng.integers(-127, 128, (N, N2)).astype(np.int8)),
             _init("sw2", np.float32(0.0077)), _init("zw2", np.int8(0))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w"], name="dq_w", axis=0),
             helper.make_node("Gemm", ["xdq", "w", "b"], ["gemm"], name="gemm", transB=1),
             helper.make_node("QuantizeLinear", ["gemm", "sy", "zy"], ["gq"], name="q_g"),
             helper.make_node("DequantizeLinear", ["gq", "sy", "zy"], ["gdq"], name="dq_g"),
             helper.make_node("DequantizeLinear", ["w2_q", "sw2", "zw2"], ["w2"], name="dq_w2"),
             helper.make_node("MatMul", ["gdq", "w2"], ["out"], name="mm")]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, K])
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, N2])
    return _model(nodes, [xi], [yo], inits), (batch, K)


def qlinear_chain(seed=0, C=3, M=6, H=6):
    """A QOperator model: QuantizeLinear -> QLinearConv -> QLinearConv -> DequantizeLinear."""
    rng = np.random.default_rng(seed)
    inits = [_init("sx", np.float32(0.02)), _init("zx", np.uint8(128)),
             _init("w1", rng.integers(-127, 128, (M, C, 3, 3)).astype(np.int8)),
             _init("sw1", (rng.random(M) * 0.01 + 0.001).astype(np.float32)),
             _init("zw1", np.zeros(M, np.int8)),
             _init("b1", rng.integers(-2000, 2000, M).astype(np.int32)),
             _init("sy1", np.float32(0.037)), _init("zy1", np.uint8(100)),
             _init("w2", rng.integers(-127, 128, (M, M, 1, 1)).astype(np.int8)),
             _init("sw2", np.float32(0.011)), _init("zw2", np.int8(0)),
             _init("sy2", np.float32(0.05)), _init("zy2", np.uint8(128))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("QLinearConv", ["xq", "sx", "zx", "w1", "sw1", "zw1", "sy1", "zy1", "b1"],
                              ["c1"], name="qconv1", pads=[1, 1, 1, 1]),
             helper.make_node("QLinearConv", ["c1", "sy1", "zy1", "w2", "sw2", "zw2", "sy2", "zy2"],
                              ["c2"], name="qconv2"),
             helper.make_node("DequantizeLinear", ["c2", "sy2", "zy2"], ["out"], name="dq_out")]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, H])
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, M, H, H])
    return _model(nodes, [xi], [yo], inits), (1, C, H, H)


def tie_model():
    """DQ(x) -> Mul(by 0.5) -> Q with scale 1: exact ties x.5 in the float simulation.

    x codes are small integers with scale 1, so Mul gives exact k + 0.5 values; Q rounds half to
    even (onnx/ORT) or half away (tflite-reference)."""
    inits = [_init("s1", np.float32(1.0)), _init("z0", np.int8(0)), _init("half", np.float32(0.5))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s1", "z0"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "s1", "z0"], ["xdq"], name="dq_in"),
             helper.make_node("Mul", ["xdq", "half"], ["h"], name="mul"),
             helper.make_node("QuantizeLinear", ["h", "s1", "z0"], ["hq"], name="q_h"),
             helper.make_node("DequantizeLinear", ["hq", "s1", "z0"], ["out"], name="dq_out")]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, [16])
    return _model(nodes, [xi], [yo], inits), (16,)


# --------------------------------------------------------------------------- ORT helpers

def ort_tensors(model, feeds, level="disabled"):
    from refquant.compare import observe_onnxruntime
    return observe_onnxruntime(model, feeds, level)[0]


def _quantized_names(model_values, ort_values, exclude_float=True):
    out = []
    for k, v in model_values.items():
        if k in ort_values and (not exclude_float or np.asarray(v).dtype.kind in "iu"):
            out.append(k)
    return out


def _assert_quantized_equal(ref, obs, names=None, dq_names=()):
    names = names if names is not None else [k for k in ref if k in obs]
    checked = 0
    for k in names:
        r, o = np.asarray(ref[k]), np.asarray(obs[k])
        if r.dtype.kind in "iu" or k in dq_names:
            assert r.shape == o.shape, k
            assert np.array_equal(r, o), f"{k}: {int(np.count_nonzero(r != o))} of {r.size} differ"
            checked += 1
    assert checked > 0
    return checked


# --------------------------------------------------------------------------- tests

def test_run_model_returns_every_tensor_in_order():
    m, shp = qdq_conv_chain()
    vals = run_model(m, {"x": random_input(shp)})
    assert list(vals) == topological_tensors(m)
    assert vals["xq"].dtype == np.uint8 and vals["yq"].dtype == np.uint8
    assert vals["out"].shape == (1, 10) and vals["out"].dtype == np.float32


def test_lazy_export_and_path_input(tmp_path):
    m, shp = qdq_conv_chain()
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    a = refquant.run_model(str(p), {"x": random_input(shp)})
    b = run_model(m, {"x": random_input(shp)})
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_input_validation():
    m, shp = qdq_conv_chain()
    with pytest.raises(ValueError, match="missing graph input"):
        run_model(m, {})
    with pytest.raises(ValueError, match="not inputs of the model"):
        run_model(m, {"x": random_input(shp), "y": np.zeros(1)})
    with pytest.raises(TypeError, match="declares float32"):
        run_model(m, {"x": random_input(shp).astype(np.float64)})
    with pytest.raises(ValueError, match="dimension 2"):
        run_model(m, {"x": np.zeros((1, 4, 9, 8), np.float32)})
    with pytest.raises(ValueError, match="fuse"):
        run_model(m, {"x": random_input(shp)}, fuse="tvm")
    with pytest.raises(TypeError, match="model"):
        run_model(42, {})
    with pytest.raises(ValueError, match="does not exist"):
        run_model("/nonexistent/model.onnx", {})


def test_quantized_ops_follow_the_profile():
    m, shp = tie_model()
    x = np.arange(-8, 8).astype(np.float32)
    a = run_model(m, {"x": x}, profile="onnx")
    b = run_model(m, {"x": x}, profile="tflite-reference")
    # h = x/2 = k + 0.5 for odd x: half-to-even vs half-away
    odd = (np.arange(-8, 8) % 2) != 0
    assert np.array_equal(a["hq"], np.round(x / 2).astype(np.int8))          # numpy: half to even
    assert np.array_equal(b["hq"][odd], (np.sign(x) * np.floor(np.abs(x / 2) + 0.5)).astype(np.int8)[odd])
    assert np.count_nonzero(a["hq"] != b["hq"]) == 4   # -7/2, -3/2, 1/2, 5/2 ... ties away vs even


def test_plan_fusions_onnxruntime_removes_inner_tensors():
    m, shp = qdq_conv_chain()
    f = plan_fusions(m, "onnxruntime")
    kinds = [x.kind for x in f]
    assert kinds.count("bias_quantization") == 1
    assert "QLinearConv" in kinds and "QLinearMatMul" in kinds
    conv = next(x for x in f if x.kind == "QLinearConv")
    assert conv.output == "yq"
    assert {"conv", "relu", "xdq", "w"} <= set(conv.removed)
    vals = run_model(m, {"x": random_input(shp)}, fuse="onnxruntime")
    assert "conv" not in vals and "relu" not in vals and "yq" in vals
    assert plan_fusions(m, None) == []


def test_relu_not_redundant_blocks_fusion():
    # int8 activations with zero point 0: Relu is not made redundant by Q -> no QLinearConv
    m, shp = qdq_conv_chain(act=np.int8, zx=0, zy=0)
    kinds = [x.kind for x in plan_fusions(m, "onnxruntime")]
    assert "QLinearConv" not in kinds


def test_bias_quantization_formula():
    m, shp = qdq_conv_chain()
    vals = run_model(m, {"x": random_input(shp)}, fuse="onnxruntime-basic")
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    s = (inits["sx"] * inits["sw"]).astype(np.float32)
    q = np.rint((inits["b"] / s).astype(np.float32)).astype(np.int32)
    assert np.array_equal(vals["conv_bias_dq"], (q.astype(np.float32) * s).astype(np.float32))


def test_tensorrt_fusion_symmetric_only():
    m, shp = qdq_conv_chain()      # uint8, zp 128: TensorRT rejects it with its parser message
    with pytest.raises(refquant.ProfileError, match="symmetric"):
        run_model(m, {"x": random_input(shp)}, profile="tensorrt", fuse="tensorrt")


def test_tensorrt_fused_conv_clip():
    m, shp = trt_conv_model()
    x = random_input(shp)
    f = plan_fusions(m, "tensorrt")
    assert [k.kind for k in f] == ["tensorrt_conv"]
    assert set(f[0].removed) >= {"conv", "clip", "xdq", "w"}
    fused = run_model(m, {"x": x}, profile="tensorrt", fuse="tensorrt")
    # hand computation of the documented epilogue
    from refquant.reference import conv_integer, quantize_linear
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    xq = quantize_linear(x, inits["sx"], inits["zx"], profile="tensorrt")
    assert np.array_equal(fused["xq"], xq)
    acc = conv_integer(xq, inits["w_q"], pads=[1, 1, 1, 1]).astype(np.float32)
    sy = inits["sy"]
    M = ((inits["sx"] * inits["sw"]).astype(np.float32) * np.float32(1 / sy)).astype(np.float32)
    v = (acc * M.reshape(1, -1, 1, 1)).astype(np.float32)
    v = (v + (inits["b"] / sy).astype(np.float32).reshape(1, -1, 1, 1)).astype(np.float32)
    q = np.clip(np.rint(v), -128, 127)
    hi = np.rint(np.float32(6.0) / sy)
    q = np.clip(q, 0, hi).astype(np.int8)
    assert np.array_equal(fused["yq"], q)
    # the float simulation differs from the fused kernel somewhere (different rounding points)
    unfused = run_model(m, {"x": x}, profile="tensorrt", fuse=None)
    assert "conv" in unfused and "conv" not in fused


def test_qlinear_model_runs_integer_ops():
    m, shp = qlinear_chain()
    x = random_input(shp)
    vals = run_model(m, {"x": x}, profile="onnxruntime")
    from refquant.reference import qlinear_conv
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    c1 = qlinear_conv(vals["xq"], inits["sx"], inits["zx"], inits["w1"], inits["sw1"], inits["zw1"],
                      inits["sy1"], inits["zy1"], inits["b1"], pads=[1, 1, 1, 1], profile="onnxruntime")
    assert np.array_equal(vals["c1"], c1)


@pytest.mark.parametrize("builder", [qdq_conv_chain, qdq_gemm_chain, qlinear_chain, tie_model])
def test_kernels_give_the_reference_tensors(builder):
    """run_model's integer ops on refquant.<op> (kernels=True, the default) and on the reference
    alone (kernels=False): the same tensors, bit for bit, under every fuse mode and several
    profiles (or the same error class); the kernels did run."""
    import refquant
    m, shp = builder()
    x = random_input(shp, scale=3.0) if builder is not tie_model else np.arange(-8, 8).astype(np.float32)
    ran_kernel = False
    for prof in ("onnx", "onnxruntime", "onnxruntime-avx2", "pytorch-fbgemm", "tensorrt"):
        for fuse in (None, "onnxruntime-basic", "onnxruntime", "tensorrt"):
            try:
                ref = run_model(m, {"x": x}, profile=prof, fuse=fuse, kernels=False)
            except Exception as exc:  # noqa: BLE001
                with pytest.raises(type(exc)):
                    run_model(m, {"x": x}, profile=prof, fuse=fuse)
                continue
            got = run_model(m, {"x": x}, profile=prof, fuse=fuse)
            ran_kernel |= refquant.last_path()["path"] != "reference"
            assert list(got) == list(ref), (prof, fuse)
            for k in ref:
                a, b = np.asarray(ref[k]), np.asarray(got[k])
                assert a.dtype == b.dtype and a.shape == b.shape, (prof, fuse, k)
                assert a.tobytes() == b.tobytes(), (prof, fuse, k)
    assert ran_kernel


# ----------------------------------------------------------------------- against onnxruntime

ort = pytest.importorskip("onnxruntime", reason="checks against onnxruntime")


@pytest.mark.parametrize("builder", [qdq_conv_chain, qdq_gemm_chain, qlinear_chain, tie_model])
def test_ort_disabled_matches_unfused(builder):
    m, shp = builder()
    x = random_input(shp, scale=3.0) if builder is not tie_model else np.arange(-8, 8).astype(np.float32)
    ref = run_model(m, {"x": x}, profile="onnxruntime")
    obs = ort_tensors(m, {"x": x}, "disabled")
    _assert_quantized_equal(ref, obs)


@pytest.mark.parametrize("level,fuse", [("basic", "onnxruntime-basic"), ("extended", "onnxruntime"),
                                        ("all", "onnxruntime")])
@pytest.mark.parametrize("builder", [qdq_conv_chain, qdq_gemm_chain])
def test_ort_optimized_matches_fused(builder, level, fuse):
    m, shp = builder()
    x = random_input(shp, scale=3.0)
    ref = run_model(m, {"x": x}, profile="onnxruntime", fuse=fuse)
    obs = ort_tensors(m, {"x": x}, level)
    n = _assert_quantized_equal(ref, obs)
    assert n >= 2


def test_ort_fusion_emulated_ops_appear_in_ort_graph():
    """The fused ops the emulation predicts are the ones ORT's saved optimized graph has."""
    from refquant.compare import observe_onnxruntime
    for builder, expect in ((qdq_conv_chain, {"QLinearConv", "QLinearMatMul"}),
                            (qdq_gemm_chain, {"QGemm", "MatMulIntegerToFloat"})):
        m, shp = builder()
        _, om = observe_onnxruntime(m, {"x": random_input(shp)}, "extended")
        ort_ops = {n.op_type for n in om.graph.node}
        planned = {f.kind for f in plan_fusions(m, "onnxruntime")}
        assert expect <= ort_ops
        assert expect <= planned


def test_ort_gemm_chain_float_output_exact():
    """MatMulIntegerToFloat (DQ -> MatMul without Q) is fl32(fl32(acc) * fl32(sa*sb)): bit-exact."""
    m, shp = qdq_gemm_chain()
    x = random_input(shp, scale=3.0)
    ref = run_model(m, {"x": x}, profile="onnxruntime", fuse="onnxruntime")
    obs = ort_tensors(m, {"x": x}, "extended")
    assert np.array_equal(ref["out"], obs["out"])


@pytest.mark.slow
def test_ort_fused_vs_unfused_tie_counts():
    """How often ORT's own graph rewrites change quantized results (onnxruntime#32132), and the
    reference reproducing every level exactly on the quantized tensors.

    Measured with onnxruntime 1.32.0 (20 seeds): conv chain yq 81,920 codes -- 24 differ between
    ORT_DISABLE_ALL and ORT_ENABLE_EXTENDED, the same 24 already at ORT_ENABLE_BASIC (the
    level-1 BiasQuantization rewrite, not the QLinear requantization, causes them); zq 2 of 200;
    gemm chain gq 5 of 40,960.  Reference vs ORT: 0 differences at every level."""
    tot = {}

    def add(k, v):
        tot[k] = tot.get(k, 0) + v

    for seed in range(20):
        for name, (m, shp), names in (
                ("conv", qdq_conv_chain(seed=seed, H=16, C=8, M=16), ("yq", "zq")),
                ("gemm", qdq_gemm_chain(seed=seed, K=256, N=64, batch=32), ("gq",))):
            x = random_input(shp, seed=seed + 100, scale=3.0)
            obs = {lvl: ort_tensors(m, {"x": x}, lvl) for lvl in ("disabled", "basic", "extended")}
            ref = {"disabled": run_model(m, {"x": x}, profile="onnxruntime"),
                   "basic": run_model(m, {"x": x}, profile="onnxruntime", fuse="onnxruntime-basic"),
                   "extended": run_model(m, {"x": x}, profile="onnxruntime", fuse="onnxruntime")}
            for t in names:
                add(f"{name}.{t}.n", obs["disabled"][t].size)
                add(f"{name}.{t}.ort_disabled_vs_extended",
                    int(np.count_nonzero(obs["disabled"][t] != obs["extended"][t])))
                add(f"{name}.{t}.ort_disabled_vs_basic",
                    int(np.count_nonzero(obs["disabled"][t] != obs["basic"][t])))
                for lvl in obs:
                    add(f"{name}.{t}.ref_vs_ort_{lvl}", int(np.count_nonzero(ref[lvl][t] != obs[lvl][t])))
    print(tot)
    assert all(v == 0 for k, v in tot.items() if ".ref_vs_ort_" in k)
    assert tot["conv.yq.ort_disabled_vs_extended"] > 0


def test_ort_int8_activations_run_as_u8_in_fused_kernels():
    """QDQS8ToU8 emulation: the same codes on a VNNI profile, u8 x s8 pair saturation on AVX2."""
    m, shp = trt_conv_model(clip=(-100.0, 100.0))      # Clip made redundant by Q -> QLinearConv
    x = random_input(shp, scale=3.0)
    assert [f.kind for f in plan_fusions(m, "onnxruntime")] == ["bias_quantization", "QLinearConv"]
    fused = run_model(m, {"x": x}, profile="onnxruntime", fuse="onnxruntime")
    avx2 = run_model(m, {"x": x}, profile="onnxruntime-avx2", fuse="onnxruntime")
    from refquant.reference import qlinear_conv
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    b = fused  # int32 bias as ORT computes it
    s = (inits["sx"] * inits["sw"]).astype(np.float32)
    bq = np.rint((inits["b"] / s).astype(np.float32)).astype(np.int32)
    u8 = (fused["xq"].astype(np.int16) + 128).astype(np.uint8)
    want = qlinear_conv(u8, inits["sx"], np.uint8(128), inits["w_q"], inits["sw"], inits["zw"],
                        inits["sy"], np.uint8(128), bq, pads=[1, 1, 1, 1], profile="onnxruntime-avx2")
    assert np.array_equal(avx2["yq"], (want.astype(np.int16) - 128).astype(np.int8))
    assert np.count_nonzero(avx2["yq"] != b["yq"]) > 0
    obs = ort_tensors(m, {"x": x}, "extended")
    assert np.array_equal(fused["out"], obs["out"])


def test_dynamic_quantization_model_vs_ort():
    """ORT quantize_dynamic's pattern: DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul -> Add."""
    rng = np.random.default_rng(0)
    K, N = 32, 16
    inits = [_init("w_q", rng.integers(-127, 128, (K, N)).astype(np.int8)),
             _init("w_s", np.float32(0.01)), _init("w_z", np.int8(0)),
             _init("b", rng.standard_normal(N).astype(np.float32))]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"], name="dql"),
             helper.make_node("MatMulInteger", ["xq", "w_q", "xz", "w_z"], ["acc"], name="mmi"),
             helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("Mul", ["xs", "w_s"], ["s"], name="mul_s"),
             helper.make_node("Mul", ["accf", "s"], ["y0"], name="mul"),
             helper.make_node("Add", ["y0", "b"], ["out"], name="add")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, K])],
               [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, N])], inits)
    x = random_input((4, K))
    ref = run_model(m, {"x": x}, profile="onnxruntime")
    for level in ("disabled", "all"):
        obs = ort_tensors(m, {"x": x}, level)
        for k in obs:
            if k in ref:
                assert np.array_equal(ref[k], obs[k]), (level, k)


# ----------------------------------------------------------------------- ORT quantizer models

def _ort_quantized(tmp_path, fmt, act, per_channel=True):
    """A small float net (Conv-Relu-Conv-Add-MaxPool-GlobalAveragePool-Flatten-Gemm) quantized by
    onnxruntime.quantization.quantize_static (per-channel weights unless ``per_channel=False``:
    then ORT writes each bias DequantizeLinear with a (1,) scale and a scalar zero point)."""
    q = pytest.importorskip("onnxruntime.quantization", reason="needs ORT's quantization tool")
    rng = np.random.default_rng(0)
    C = 8
    inits = [_init("w1", (rng.standard_normal((C, 3, 3, 3)) * 0.3).astype(np.float32)),
             _init("b1", (rng.standard_normal(C) * 0.1).astype(np.float32)),
             _init("w2", (rng.standard_normal((C, C, 3, 3)) * 0.1).astype(np.float32)),
             _init("b2", (rng.standard_normal(C) * 0.1).astype(np.float32)),
             _init("wg", (rng.standard_normal((10, C)) * 0.3).astype(np.float32)),
             _init("bg", (rng.standard_normal(10) * 0.1).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["c2", "r1"], ["a"], name="add"),
             helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], transB=1, name="fc")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits, opset=17)
    src = tmp_path / "float.onnx"
    dst = tmp_path / f"q_{fmt}_{act}_{int(per_channel)}.onnx"
    onnx.save(m, str(src))

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.d = iter([{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.d, None)

    at = q.QuantType.QUInt8 if act == "u8" else q.QuantType.QInt8
    q.quantize_static(str(src), str(dst), Reader(), quant_format=getattr(q.QuantFormat, fmt),
                      activation_type=at, weight_type=q.QuantType.QInt8, per_channel=per_channel)
    return onnx.load(str(dst))


@pytest.mark.parametrize("fmt,act,per_channel", [("QDQ", "u8", True), ("QDQ", "s8", True),
                                                 ("QOperator", "u8", True), ("QDQ", "u8", False)])
def test_ort_quantize_static_models(tmp_path, fmt, act, per_channel):
    from refquant.compare import compare_model, observe_onnxruntime
    m = _ort_quantized(tmp_path, fmt, act, per_channel)
    x = random_input((1, 3, 16, 16), seed=5, scale=1.0)
    for level in ("disabled", "extended", "all"):
        r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization=level)
        assert r.first_divergence is None, str(r)
        assert len(r.tensors) >= 2
    if fmt == "QDQ":
        _, om = observe_onnxruntime(m, {"x": x}, "extended")
        ort_ops = sorted(n.op_type for n in om.graph.node
                         if n.op_type.startswith(("QLinear", "QGemm", "MatMulInteger")))
        planned = sorted(f.kind for f in plan_fusions(m, "onnxruntime")
                         if f.kind not in ("bias_quantization", "qdq_propagation"))
        assert planned == ort_ops


def test_qlinear_add_matches_ort_on_ties():
    """com.microsoft QLinearAdd: MLAS's AVX2 FMA formula, bit-exact on tie-heavy scale ratios."""
    from refquant.model import _ort_qlinear_add
    rng = np.random.default_rng(0)
    n_diff = n = 0
    for t in range(60):
        dt = np.uint8 if t % 2 else np.int8
        lo, hi = (0, 256) if dt == np.uint8 else (-128, 128)
        k = int(rng.integers(1, 100))
        a = rng.integers(lo, hi, k).astype(dt)
        b = rng.integers(lo, hi, k if t % 5 else 1).astype(dt)
        sc = np.float32(rng.choice([0.1, 0.3, 0.05, 0.07]))
        sa = np.float32(sc * np.float32(rng.choice([0.5, 0.25, 1.5, 0.75, 0.3])))
        sb = np.float32(sc * np.float32(rng.choice([0.5, 0.25, 1.5, 0.7])))
        za, zb, zc = (dt(rng.integers(lo, hi)) for _ in range(3))
        nodes = [helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["c"],
                                  domain="com.microsoft", name="qadd")]
        inits = [_init(nm, v) for nm, v in (("sa", sa), ("za", za), ("sb", sb), ("zb", zb), ("sc", sc),
                                            ("zc", zc))]
        tp = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
        m = _model(nodes, [helper.make_tensor_value_info("a", tp, a.shape),
                           helper.make_tensor_value_info("b", tp, b.shape)],
                   [helper.make_tensor_value_info("c", tp, None)], inits, opset=17, ms=True)
        obs = ort_tensors(m, {"a": a, "b": b})["c"]
        ref = run_model(m, {"a": a, "b": b})["c"]
        n += k
        n_diff += int(np.count_nonzero(obs != ref))
        assert np.array_equal(ref, _ort_qlinear_add([a, sa, za, b, sb, zb, sc, zc], {}, None))
    assert n_diff == 0, f"{n_diff} of {n}"


def _qlinear_avgpool_model(x_shape, dt, sx, zx, sy, zy, **at):
    tp = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
    node = helper.make_node("QLinearAveragePool", ["x", "sx", "zx", "sy", "zy"], ["y"],
                            domain="com.microsoft", name="qap", **at)
    inits = [_init(n, v) for n, v in (("sx", np.float32(sx)), ("zx", dt(zx)), ("sy", np.float32(sy)),
                                      ("zy", dt(zy)))]
    return _model([node], [helper.make_tensor_value_info("x", tp, list(x_shape))],
                  [helper.make_tensor_value_info("y", tp, None)], inits, opset=17, ms=True)


def test_qlinear_average_pool_matches_ort():
    """com.microsoft QLinearAveragePool: ORT's float window sum, then nearbyintf(sum/cnt/sy + zy)
    (the zero point added before rounding: ties go to the even code) -- pads, auto_pad,
    ceil_mode, count_include_pad, channels_last, 1-3 spatial dims, the global fallback."""
    rng = np.random.default_rng(3)
    cases = [dict(kernel_shape=[2, 2], strides=[2, 2]),
             dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
             dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
             dict(kernel_shape=[3, 2], strides=[2, 1], ceil_mode=1),
             dict(kernel_shape=[1, 1], strides=[2, 2], ceil_mode=1),
             dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
             dict(kernel_shape=[2, 3], strides=[1, 2], auto_pad="SAME_LOWER", count_include_pad=1),
             dict(kernel_shape=[3], strides=[2], pads=[1, 2]),
             dict(kernel_shape=[2, 2, 2], strides=[1, 2, 2]),
             dict(kernel_shape=[2, 2], strides=[2, 2], channels_last=1),
             dict(kernel_shape=[6, 5])]
    n = n_diff = 0
    for t, at in enumerate(cases):
        for dt in (np.uint8, np.int8):
            lo, hi = (0, 256) if dt == np.uint8 else (-128, 128)
            spatial = {1: [9], 2: [6, 5], 3: [4, 6, 5]}[len(at["kernel_shape"])]
            shape = [2] + spatial + [3] if at.get("channels_last") else [2, 3] + spatial
            x = rng.integers(lo, hi, shape).astype(dt)
            sx = np.float32(0.05)
            sy = np.float32(sx * np.float32([1.0, 0.5, 2.0, 0.7][t % 4]))
            m = _qlinear_avgpool_model(shape, dt, sx, int(rng.integers(lo, hi)), sy, lo + 2 * t + 1, **at)
            obs = ort_tensors(m, {"x": x})["y"]
            ref = run_model(m, {"x": x}, profile="onnxruntime")["y"]
            assert ref.shape == obs.shape, at
            n += obs.size
            n_diff += int(np.count_nonzero(ref != obs))
    assert n_diff == 0, f"{n_diff} of {n}"


def test_ort_fused_average_pool_matches_ort():
    """DQ -> AveragePool -> Q fused into QLinearAveragePool (ORT extended): equal scales make
    every 2x2 average a quarter step, many of them ties (the sweep's 203 of 1,024 one-code
    differences came from rounding before adding the zero point)."""
    rng = np.random.default_rng(5)
    s, z = np.float32(0.02), np.uint8(131)
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_x"),
             helper.make_node("AveragePool", ["xd"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("QuantizeLinear", ["p", "s", "z"], ["pq"], name="q_p"),
             helper.make_node("DequantizeLinear", ["pq", "s", "z"], ["out"], name="dq_out")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
               [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
               [_init("s", s), _init("z", z)], opset=17)
    x = (rng.standard_normal((1, 8, 16, 16)) * 1.5).astype(np.float32)
    ref, fus = run_model(m, {"x": x}, profile="onnxruntime", fuse="onnxruntime", return_fusions=True)
    assert [f.kind for f in fus] == ["QLinearAveragePool"]
    obs = ort_tensors(m, {"x": x}, "extended")
    assert np.array_equal(ref["pq"], obs["pq"]), int(np.count_nonzero(ref["pq"] != obs["pq"]))


def _qlinear_softmax_model(x_shape, dt, sx, zx, sy, zy, **at):
    tp = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
    node = helper.make_node("QLinearSoftmax", ["x", "sx", "zx", "sy", "zy"], ["y"],
                            domain="com.microsoft", name="qsm", **at)
    inits = [_init(n, v) for n, v in (("sx", np.float32(sx)), ("zx", dt(zx)), ("sy", np.float32(sy)),
                                      ("zy", dt(zy)))]
    return _model([node], [helper.make_tensor_value_info("x", tp, list(x_shape))],
                  [helper.make_tensor_value_info("y", tp, None)], inits, opset=17, ms=True)


# rows where near-ties single out ORT 1.32's arithmetic: float logf in the table's shift, the
# double-precision T * N / sum, and no float overflow at D = 1 (x, x_scale, y_scale, ORT's codes)
_SOFTMAX_TIE_ROWS = [
    ([137, 118, 246, 153, 137, 47, 125, 246], 0.20565377175807953, 0.010717429220676422,
     [0, 0, 46, 0, 0, 0, 0, 46]),
    ([198, 146, 82, 237, 237, 153, 13, 38, 49], 0.42818036675453186, 0.01486815046519041,
     [0, 0, 0, 34, 34, 0, 0, 0, 0]),
    ([165, 92, 203, 163, 55, 160, 133, 71, 203], 0.4388798177242279, 0.019383525475859642,
     [0, 0, 26, 0, 0, 0, 0, 0, 26]),
    ([113], 0.33841773867607117, 0.0066403476521372795, [150]),
    ([194, 195], 0.45680710673332214, 0.0018077337881550193, [214, 255]),
]


def test_qlinear_softmax_matches_ort():
    """com.microsoft QLinearSoftmax: ORT's float table, float row sum, double T*N/sum with
    N = floorf(1/sy), saturation; opset < 13 (flattened rows) and >= 13 (one axis), uint8/int8."""
    from refquant.model import _ort_qlinear_softmax
    from _ort_versions import ort_before
    for x, sx, sy, want in _SOFTMAX_TIE_ROWS:
        got = _ort_qlinear_softmax([np.array([x], np.uint8), np.float32(sx), np.uint8(0), np.float32(sy),
                                    np.uint8(0)], {"opset": 13}, None)
        assert got.ravel().tolist() == want, (x, got.ravel().tolist())
    rng = np.random.default_rng(7)
    n = n_diff = 0
    cases = [([2, 3, 7], {"opset": 13}), ([2, 3, 7], {"opset": 13, "axis": 1}),
             ([2, 3, 7], {"opset": 11}), ([4, 3, 5], {"opset": 12, "axis": 1}),
             ([3, 40], {"opset": 1, "axis": 0}), ([6, 1], {"opset": 13}), ([5, 2, 9], {"opset": 13, "axis": 0}),
             ([2, 300], {"opset": 13})]
    for t, (shape, at) in enumerate(cases):
        for dt in (np.uint8, np.int8):
            lo, hi = (0, 256) if dt == np.uint8 else (-128, 128)
            x = rng.integers(lo, hi, shape).astype(dt)
            sx = [0.05, 0.3, 0.02, 0.8][t % 4]
            sy, zy = (1 / 256, lo) if t % 3 else (0.0037, lo + 5)
            m = _qlinear_softmax_model(shape, dt, sx, int(rng.integers(lo, hi)), sy, zy, **at)
            if shape[-1] == 1 and ort_before(1, 32):
                continue      # (ORT <= 1.31 wraps a saturated 256 to 0 in rows of one element)
            obs = ort_tensors(m, {"x": x})["y"]
            ref = run_model(m, {"x": x}, profile="onnxruntime")["y"]
            n += obs.size
            n_diff += int(np.count_nonzero(ref != obs))
    assert n_diff == 0, f"{n_diff} of {n}"


@pytest.mark.parametrize("opset", [12, 13])
@pytest.mark.parametrize("dt", [np.uint8, np.int8])
def test_ort_fused_softmax_matches_ort(opset, dt):
    """DQ -> Softmax -> Q => QLinearSoftmax at extended/all (opset attribute = Softmax's
    SinceVersion, the schema's default axis written out); the float Softmax at level disabled
    with the opset's own semantics (before 13: rows flattened from axis 1)."""
    lo = 0 if dt == np.uint8 else -128
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_x"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_x"),
             helper.make_node("Softmax", ["xd"], ["p"], name="sm"),
             helper.make_node("QuantizeLinear", ["p", "so", "zo"], ["pq"], name="q_p"),
             helper.make_node("DequantizeLinear", ["pq", "so", "zo"], ["out"], name="dq_out")]
    inits = [_init("s", np.float32(0.07)), _init("z", dt(3)), _init("so", np.float32(1 / 256)),
             _init("zo", dt(lo))]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5])],
               [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits, opset=opset)
    x = random_input((2, 3, 5), seed=opset, scale=3.0)
    for level, fuse in (("disabled", None), ("extended", "onnxruntime"), ("all", "onnxruntime")):
        ref, fus = run_model(m, {"x": x}, profile="onnxruntime", fuse=fuse, return_fusions=True)
        obs = ort_tensors(m, {"x": x}, level)
        assert ("QLinearSoftmax" in [f.kind for f in fus]) == (fuse is not None)
        assert np.array_equal(ref["out"], obs["out"]), level


def test_ort_integer_bilinear_resize_matches_ort():
    """Resize(linear) on uint8/int8 under an onnxruntime profile: ORT's float weights
    fl32(dx*dy), the four-term float sum, truncation to the integer type (not rounding)."""
    rng = np.random.default_rng(2)
    n = n_diff = 0
    for t, ctm in enumerate(("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel") * 2):
        dt = np.uint8 if t % 2 else np.int8
        lo, hi = (0, 256) if dt == np.uint8 else (-128, 128)
        shape = (1, 3, 5 + t % 3, 7)
        scales = np.array([1, 1, [2.0, 1.5, 0.5, 3.0][t % 4], [2.0, 3.0, 0.75, 1.5][t % 4]], np.float32)
        tp = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
        node = helper.make_node("Resize", ["x", "", "sc"], ["y"], mode="linear",
                                coordinate_transformation_mode=ctm)
        m = _model([node], [helper.make_tensor_value_info("x", tp, list(shape))],
                   [helper.make_tensor_value_info("y", tp, None)], [_init("sc", scales)], opset=17)
        x = rng.integers(lo, hi, shape).astype(dt)
        obs = ort_tensors(m, {"x": x})["y"]
        ref = run_model(m, {"x": x}, profile="onnxruntime")["y"]
        assert ref.shape == obs.shape
        n += obs.size
        n_diff += int(np.count_nonzero(ref != obs))
    assert n_diff == 0, f"{n_diff} of {n}"


# --------------------------------------------------------------------------- ORT level 1

def _float_then_reshape_q(opset=21, producer="Sigmoid"):
    """x -> [Sigmoid] -> Reshape -> Transpose -> Q -> DQ -> MatMul(DQ(w)) -> Q -> DQ -> out:
    a float producer before a Reshape/Transpose chain that ends in a Q."""
    rng = np.random.default_rng(0)
    inits = [_init("shape", np.array([4, 6], np.int64)),
             _init("s", np.float32(0.0117)), _init("z", np.uint8(3)),
             _init("w_q", rng.integers(-127, 128, (4, 5)).astype(np.int8)),
             _init("sw", np.float32(0.01)), _init("zw", np.int8(0)),
             _init("so", np.float32(0.031)), _init("zo", np.uint8(128))]
    nodes = []
    t = "x"
    if producer:
        nodes.append(helper.make_node(producer, ["x"], ["p"], name="prod"))
        t = "p"
    nodes += [helper.make_node("Reshape", [t, "shape"], ["r"], name="reshape"),
              helper.make_node("Transpose", ["r"], ["tr"], name="transpose", perm=[1, 0]),
              helper.make_node("QuantizeLinear", ["tr", "s", "z"], ["trq"], name="q_tr"),
              helper.make_node("DequantizeLinear", ["trq", "s", "z"], ["trd"], name="dq_tr"),
              helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w"], name="dq_w"),
              helper.make_node("MatMul", ["trd", "w"], ["mm"], name="mm"),
              helper.make_node("QuantizeLinear", ["mm", "so", "zo"], ["mq"], name="q_mm"),
              helper.make_node("DequantizeLinear", ["mq", "so", "zo"], ["out"], name="dq_mm")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])],
                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, [6, 5])], inits,
                  opset=opset)


@pytest.mark.parametrize("producer", ["Sigmoid", None])
def test_ort_basic_q_backward_propagation(producer):
    """ORT's level-1 QDQPropagation moves the Q after a Reshape/Transpose chain in front of it
    (a Q/DQ pair with the Q's parameters before each op): the Reshape then sees quantized values.
    onnxruntime-basic emulates it, with ORT's tensor names, and matches ORT at basic/extended."""
    from refquant.compare import compare_model
    m = _float_then_reshape_q(producer=producer)
    x = random_input((2, 3, 4), scale=1.5)
    src = "p" if producer else "x"
    kinds = [f.kind for f in plan_fusions(m, "onnxruntime-basic")]
    assert kinds.count("qdq_propagation") == 2
    vals = run_model(m, {"x": x}, fuse="onnxruntime-basic")
    assert {f"{src}_q_to_dq", f"{src}_post_dq", "r_q_to_dq", "r_post_dq", "r_pre_q"} <= set(vals)
    assert (f"{src}_pre_q" in vals) == bool(producer)   # a graph input is read directly
    plain = run_model(m, {"x": x})
    assert not np.array_equal(vals["r_pre_q"], plain["r"])      # the Reshape sees DQ(Q(p))
    for level in ("basic", "extended"):
        r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization=level)
        assert r.first_divergence is None, str(r)
        names = {t.name for t in r.tensors}
        if level == "basic":
            assert {f"{src}_q_to_dq", "r_pre_q", "r_q_to_dq"} <= names
    # a second consumer of the Reshape output stops it (ORT's GetPreviousEdge: one edge only)
    m2 = _float_then_reshape_q(opset=21)
    m2.graph.node.append(helper.make_node("Relu", ["r"], ["r2"], name="relu2"))
    m2.graph.output.append(helper.make_tensor_value_info("r2", TensorProto.FLOAT, None))
    assert plan_fusions(m2, "onnxruntime-basic") == []
    r = compare_model(m2, {"x": x}, engine="onnxruntime", ort_optimization="basic")
    assert r.first_divergence is None, str(r)


def _dq_convtranspose_q(dist="normal", bias=True, to_q=True, op="ConvTranspose"):
    """Q/DQ(x) -> ConvTranspose/Conv/Gemm(float weight, float bias) [-> Q -> DQ]: what a QOperator
    quantizer leaves for an op it does not quantize."""
    rng = np.random.default_rng(3)
    wshape = {"ConvTranspose": (4, 6, 2, 2), "Conv": (6, 4, 3, 3), "Gemm": (6, 16)}[op]
    w = {"normal": rng.standard_normal(wshape) * 0.2, "positive": rng.random(wshape),
         "zero": np.zeros(wshape)}[dist].astype(np.float32)
    inits = [_init("sx", np.float32(0.0213)), _init("zx", np.uint8(120)), _init("w", w),
             _init("b", rng.standard_normal(6).astype(np.float32)),
             _init("sy", np.float32(0.0437)), _init("zy", np.uint8(128))]
    at = {"ConvTranspose": {"strides": [2, 2]}, "Conv": {"pads": [1, 1, 1, 1]}, "Gemm": {"transB": 1}}[op]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_in"),
             helper.make_node(op, ["xdq", "w"] + (["b"] if bias else []), ["y"], name="up", **at)]
    if to_q:
        nodes += [helper.make_node("QuantizeLinear", ["y", "sy", "zy"], ["yq"], name="q_y"),
                  helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["out"], name="dq_y")]
    else:
        nodes.append(helper.make_node("Relu", ["y"], ["out"], name="relu"))
    xs = [2, 16] if op == "Gemm" else [1, 4, 5, 5]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, xs)],
                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits,
                  opset=17), xs


@pytest.mark.parametrize("op,dist,bias", [("ConvTranspose", "normal", True),
                                          ("ConvTranspose", "positive", False),
                                          ("Conv", "zero", True), ("Gemm", "normal", True)])
def test_ort_basic_weight_bias_quantization(op, dist, bias):
    """ORT's level-1 WeightBiasQuantization quantizes a float weight (int8 per tensor, ORT's own
    min/max parameters) and the float bias (int32) of a DQ-fed Conv/ConvTranspose/Gemm whose
    output goes to a Q; the float op then computes with DQ(Q(w)).  Bit-exact against ORT."""
    from refquant.compare import compare_model
    m, xs = _dq_convtranspose_q(dist, bias, op=op)
    x = random_input(xs)
    kinds = [f.kind for f in plan_fusions(m, "onnxruntime-basic")]
    assert kinds == ["weight_quantization"] + (["bias_quantization"] if bias else [])
    ref = run_model(m, {"x": x}, fuse="onnxruntime-basic")
    assert "up_weight_dq" in ref and ("up_bias_dq" in ref) == bias
    for level in ("basic", "extended"):
        r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization=level)
        assert r.first_divergence is None, str(r)
        by = {t.name: t for t in r.tensors}
        if level == "basic" or op == "ConvTranspose":
            assert by["up_weight_dq"].n_diff == 0 and by["y"].n_diff == 0
    # without a Q after the op ORT leaves it alone (IsNoBranchPathToQuantizeLinear)
    m2, _ = _dq_convtranspose_q(dist, bias, to_q=False, op=op)
    assert plan_fusions(m2, "onnxruntime-basic") == []
    assert compare_model(m2, {"x": x}, engine="onnxruntime",
                         ort_optimization="basic").first_divergence is None


def test_fast_max_pool_same_as_onnx_reference():
    """run_model's MaxPool (onnx.reference's 2-D loop, one kernel tap at a time over all
    outputs) gives onnx.reference's bits: NaN only when first in its window, empty windows 0,
    pads, dilations, ceil_mode, auto_pad, integer and float types."""
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.ops.op_max_pool import MaxPool as RefMP
    import refquant.model as M
    fast = type("MaxPool", (RefMP,), {"op_domain": "", "_max_pool_2d": M._max_pool_2d_fast})
    rng = np.random.default_rng(3)
    types = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16, np.uint8: TensorProto.UINT8,
             np.int8: TensorProto.INT8}
    for t in range(80):
        k = [int(rng.integers(1, 5)), int(rng.integers(1, 5))]
        st = [int(rng.integers(1, 4)), int(rng.integers(2, 4))]
        d = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
        H, W = int(rng.integers((k[0] - 1) * d[0] + 1, 12)), int(rng.integers((k[1] - 1) * d[1] + 1, 12))
        attrs = dict(kernel_shape=k, strides=st, dilations=d)
        if t % 5 == 0:
            attrs["auto_pad"] = ("SAME_UPPER", "SAME_LOWER", "VALID")[t % 3]
        else:
            attrs["pads"] = [int(rng.integers(0, kk)) for kk in k + k]
        if t % 3 == 0:
            attrs["ceil_mode"] = 1
        dt = list(types)[t % 4]
        x = (rng.standard_normal((2, 3, H, W)) * 50).astype(dt)
        if dt in (np.float32, np.float16):
            x.flat[rng.integers(0, x.size, 3)] = np.nan
        g = helper.make_graph([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", types[dt], None)],
                              [helper.make_tensor_value_info("y", types[dt], None)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
        m.ir_version = 8
        with np.errstate(invalid="ignore"):
            want = ReferenceEvaluator(m).run(None, {"x": x})[0]
        got = ReferenceEvaluator(m, new_ops=[fast]).run(None, {"x": x})[0]
        assert got.dtype == want.dtype and got.shape == want.shape, attrs
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), str(attrs))


def _sym_conv_float_bias(hw=6):
    """symmetric int8 QDQ Conv with a float bias (what TensorRT wants; sweep3 repro_1)."""
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "sx"),
             numpy_helper.from_array(np.array(0, np.int8), "zx"),
             numpy_helper.from_array(rng.randint(-127, 128, (4, 3, 3, 3)).astype(np.int8), "wq"),
             numpy_helper.from_array(np.array(0.01, np.float32), "sw"),
             numpy_helper.from_array(np.array(0, np.int8), "zw"),
             numpy_helper.from_array(rng.randn(4).astype(np.float32), "b"),
             numpy_helper.from_array(np.array(0.05, np.float32), "sy"),
             numpy_helper.from_array(np.array(0, np.int8), "zy")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_fuse_profile_combinations_name_the_real_cause(tmp_path, capsys):
    from refquant.profile import ProfileError
    m = _sym_conv_float_bias()
    x = {"x": np.random.RandomState(1).randn(1, 3, 6, 6).astype(np.float32)}
    run_model(m, x, profile="tensorrt", fuse="tensorrt")
    with pytest.raises(ProfileError, match="fuse='tensorrt' needs a float-bias profile.*profile onnx: B:"):
        run_model(m, x, profile="onnx", fuse="tensorrt")
    with pytest.raises(ProfileError, match="not a meaningful combination"):
        run_model(m, x, profile="tensorrt", fuse="onnxruntime")
    import onnx
    from refquant.cli import main
    onnx.save(m, str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "x.npz", **x)
    rc = main(["compare", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npz"),
               "--engine", "reference:tensorrt", "--profile", "onnx", "--fuse", "tensorrt"])
    err = capsys.readouterr().err
    assert rc == 2 and "float-bias profile" in err and "Issues with types" not in err


def _add_unit(domain="", dedicated=False):
    """DQ -> Add -> Q -> DQ, the Q/DQ in ``domain`` (com.microsoft: UseQDQContribOps); with
    ``dedicated``, two identical Q -> DQ pairs after the Add (DedicatedQDQPair)."""
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("sa", 0.05), ("sb", 0.075), ("sc", 0.1))]
    inits.append(numpy_helper.from_array(np.array(128, np.uint8), "z"))
    Q = lambda i, o, **k: helper.make_node("QuantizeLinear", i, o, domain=domain, **k)     # noqa: E731
    D = lambda i, o, **k: helper.make_node("DequantizeLinear", i, o, domain=domain, **k)   # noqa: E731
    nodes = [Q(["a", "sa", "z"], ["aq"]), Q(["b", "sb", "z"], ["bq"]), D(["aq", "sa", "z"], ["ad"]),
             D(["bq", "sb", "z"], ["bd"]), helper.make_node("Add", ["ad", "bd"], ["s"]),
             Q(["s", "sc", "z"], ["sq_1"]), D(["sq_1", "sc", "z"], ["y1"])]
    outs = [helper.make_tensor_value_info("y1", TensorProto.FLOAT, [256])]
    if dedicated:
        nodes += [Q(["s", "sc", "z"], ["sq_2"]), D(["sq_2", "sc", "z"], ["y2"])]
        outs.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, [256]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [256]) for n in "ab"],
                          outs, inits)
    ops = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if domain else [])
    return helper.make_model(g, opset_imports=ops)


@pytest.mark.parametrize("domain, dedicated", [("", False), ("com.microsoft", False), ("", True),
                                               ("com.microsoft", True)])
def test_contrib_qdq_and_dedicated_pairs_fuse_as_ort(domain, dedicated):
    """com.microsoft QuantizeLinear / DequantizeLinear fuse like ONNX's (ORT's QDQ selectors match
    both), and two identical Q nodes of one tensor merge first (ORT's common-subexpression
    elimination), so the Add still becomes a QLinearAdd; the reference then equals ORT."""
    ort = pytest.importorskip("onnxruntime")
    m = _add_unit(domain, dedicated)
    assert [f.kind for f in plan_fusions(m, "onnxruntime")] == ["QLinearAdd"]
    r = np.random.default_rng(0)
    x = {"a": (r.integers(0, 256, 256) - 128).astype(np.float32) * np.float32(0.05),
         "b": (r.integers(0, 256, 256) - 128).astype(np.float32) * np.float32(0.075)}
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    got = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, x)
    v = run_model(m, x, profile="onnxruntime", fuse="onnxruntime")
    assert np.array_equal(got[0], v["y1"])
    unfused = run_model(m, x, profile="onnxruntime", fuse=None)
    assert not np.array_equal(unfused["y1"], v["y1"])       # the fusion matters on this input
    res = refquant.compare_model(m, x, engine="onnxruntime", ort_optimization="extended")
    assert res.first_divergence is None


def test_model_without_its_external_data_is_refused(tmp_path):
    import onnx
    m = _add_unit()
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True, size_threshold=0)
    bare = onnx.load(str(path), load_external_data=False)
    with pytest.raises(ValueError, match="external data is not loaded"):
        run_model(bare, {"a": np.zeros(256, np.float32), "b": np.zeros(256, np.float32)})
    assert run_model(str(path), {"a": np.zeros(256, np.float32), "b": np.zeros(256, np.float32)})["y1"].shape == (256,)
