"""refquant compare: first divergence between an engine's tensors and the reference, with causes."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("onnx", reason="compare needs onnx")
sys.path.insert(0, os.path.dirname(__file__))
from test_model import (qdq_conv_chain, qdq_gemm_chain, qlinear_chain, tie_model,  # noqa: E402
                        random_input, _init, _model)
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from refquant.compare import compare_model, CAUSES  # noqa: E402
from refquant.model import run_model  # noqa: E402


def _planted(seed=0, independent=False):
    """Reference tensors of qdq_conv_chain with yq perturbed by one code at an element far from
    a tie and every later tensor recomputed from it (run_model overrides); with
    ``independent`` also a second, unrelated error of two codes planted in zq."""
    m, shp = qdq_conv_chain(seed=seed)
    x = random_input(shp)
    ref = run_model(m, {"x": x})
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    v = ref["relu"].astype(np.float64) / float(inits["sy"])
    dist = np.abs(v - np.floor(v) - 0.5)
    dist[ref["yq"] >= 250] = -1
    idx = np.unravel_index(int(np.argmax(dist)), v.shape)
    yq = ref["yq"].copy()
    yq[idx] += 1
    obs = run_model(m, {"x": x}, overrides={"yq": yq})
    obs["yq"] = yq
    if independent:
        zq = obs["zq"].copy()
        zq[0, 3] = zq[0, 3] + 2 if zq[0, 3] < 250 else zq[0, 3] - 2
        obs = run_model(m, {"x": x}, overrides={"yq": yq, "zq": zq})
        obs["yq"], obs["zq"] = yq, zq
    return m, x, obs, idx


def test_planted_first_divergence():
    m, x, obs, idx = _planted()
    r = compare_model(m, {"x": x}, observed=obs)
    assert r.first_divergence == "yq"
    by = {t.name: t for t in r.tensors}
    assert by["yq"].n_diff == 1 and by["yq"].max_steps == 1 and by["yq"].unit == "code"
    assert by["yq"].first_index == tuple(int(i) for i in idx)
    assert by["yq"].cause == "unknown"      # a planted error is no tie, no saturation
    assert by["ydq"].max_steps == pytest.approx(1.0) and by["ydq"].unit == "scale step"
    for t in r.tensors:
        if t.diverged and t.name != "yq":
            assert t.cause == "propagated from an earlier divergence", t
            assert t.local_n_diff == 0
    assert r.independent == ["yq"]
    assert not by["xq"].diverged and not by["conv"].diverged
    names = [t.name for t in r.tensors]
    assert names.index("xq") < names.index("yq") < names.index("ydq")
    d = r.to_dict()
    assert d["first_divergence"] == "yq" and d["independent"] == ["yq"]
    assert all(set(t) >= {"name", "n_diff", "max_steps", "cause"} for t in d["tensors"])
    json.dumps(d)
    assert "yq" in str(r) and "<table>" in r.to_html()


def test_planted_independent_second_divergence():
    """Two planted errors: the second (in zq) is not a consequence of the first; replaying each
    layer on the engine's own inputs separates them."""
    m, x, obs, _ = _planted(independent=True)
    r = compare_model(m, {"x": x}, observed=obs)
    assert r.first_divergence == "yq"
    assert r.independent == ["yq", "zq"]
    zq = next(t for t in r.tensors if t.name == "zq")
    assert zq.local_n_diff == 1 and zq.local_max_steps == 2
    assert "independent of the upstream divergence" in zq.detail
    out = next(t for t in r.tensors if t.name == "out")
    assert out.cause == "propagated from an earlier divergence"
    # without the replay, everything after the first divergence is called propagated
    r0 = compare_model(m, {"x": x}, observed=obs, replay=False)
    assert next(t for t in r0.tensors if t.name == "zq").cause == "propagated from an earlier divergence"


def test_identical_run_has_no_divergence():
    m, shp = qdq_conv_chain()
    x = random_input(shp)
    ref = run_model(m, {"x": x})
    r = compare_model(m, {"x": x}, observed=ref)
    assert r.first_divergence is None and all(t.n_diff == 0 for t in r.tensors)
    assert all(t.cause is None for t in r.tensors)


def test_tie_cause():
    m, shp = tie_model()
    x = np.arange(-8, 8).astype(np.float32)
    obs = run_model(m, {"x": x}, profile="tflite-reference")     # ties away from zero
    r = compare_model(m, {"x": x}, observed=obs, profile="onnx")
    assert r.first_divergence == "hq"
    hq = next(t for t in r.tensors if t.name == "hq")
    assert hq.cause == "tie" and hq.n_diff == 4 and hq.max_steps == 1
    assert "exact ties" in hq.detail
    out = next(t for t in r.tensors if t.name == "out")
    assert out.cause == "propagated from an earlier divergence"


def test_saturation_cause():
    m, shp = tie_model()
    x = np.array([np.inf, 1e9, -1e9] + [0.0] * 13, np.float32)
    obs = run_model(m, {"x": x}, profile="onnx-reference")      # +inf -> INT32_MIN wrap -> -128
    r = compare_model(m, {"x": x}, observed=obs, profile="onnx")
    assert r.first_divergence == "xq"
    xq = next(t for t in r.tensors if t.name == "xq")
    # +inf wrapping to the OPPOSITE end is the profiles' Inf / overflow rule, not saturation
    assert xq.cause == "NaN/Inf policy" and "q_overflow" in xq.detail


def _pair_model():
    """Q(u8, s=1) -> QLinearMatMul with s8 weights: ORT #16105's saturating pair."""
    inits = [_init("s1", np.float32(1.0)), _init("zx", np.uint8(0)),
             _init("w", np.array([[-81], [-80], [127]], np.int8)), _init("sw", np.float32(1.0)),
             _init("zw", np.int8(0)), _init("sy", np.float32(32.0)), _init("zy", np.uint8(128))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s1", "zx"], ["xq"], name="q_in"),
             helper.make_node("QLinearMatMul", ["xq", "s1", "zx", "w", "sw", "zw", "sy", "zy"], ["y"],
                              name="qmm"),
             helper.make_node("DequantizeLinear", ["y", "sy", "zy"], ["out"], name="dq")]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1])
    return _model(nodes, [xi], [yo], inits)


def test_int16_pair_saturation_cause():
    m = _pair_model()
    x = np.array([[210, 198, 234]], np.float32)
    obs = run_model(m, {"x": x}, profile="onnxruntime-avx2")
    ref = run_model(m, {"x": x}, profile="onnxruntime")
    assert int(obs["y"][0, 0]) != int(ref["y"][0, 0])    # -2050/32 vs -2082/32 around -64.5
    r = compare_model(m, {"x": x}, observed=obs, profile="onnxruntime")
    assert r.first_divergence == "y"
    y = next(t for t in r.tensors if t.name == "y")
    assert y.cause == "int16 pair saturation"


def test_observed_validation():
    m, shp = qdq_conv_chain()
    x = random_input(shp)
    with pytest.raises(ValueError, match="exactly one"):
        compare_model(m, {"x": x})
    with pytest.raises(ValueError, match="engine"):
        compare_model(m, {"x": x}, engine="tensorrt")
    with pytest.raises(TypeError, match="observed"):
        compare_model(m, {"x": x}, observed=[1, 2])
    r = compare_model(m, {"x": x}, observed={"xq": run_model(m, {"x": x})["xq"][..., :2]})
    assert r.first_divergence == "xq" and "shape" in r.tensors[0].detail


def test_causes_vocabulary():
    m, x, obs, _ = _planted()
    r = compare_model(m, {"x": x}, observed=obs)
    assert all(t.cause in CAUSES for t in r.tensors if t.diverged)


# ----------------------------------------------------------------------- live onnxruntime

ort = pytest.importorskip("onnxruntime", reason="live compare runs onnxruntime")


@pytest.mark.parametrize("level", ["disabled", "basic", "extended", "all"])
@pytest.mark.parametrize("builder", [qdq_conv_chain, qdq_gemm_chain, qlinear_chain])
def test_engine_onnxruntime_matches_reference(builder, level):
    m, shp = builder()
    x = random_input(shp, scale=3.0)
    r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization=level)
    assert r.first_divergence is None, str(r)
    assert any(t.unit == "code" for t in r.tensors)


def test_engine_sees_fused_graph_without_refusing():
    """With ORT_ENABLE_EXTENDED the Conv output is not observable (fused), the QLinearConv output is."""
    m, shp = qdq_conv_chain()
    r = compare_model(m, {"x": random_input(shp)}, engine="onnxruntime", ort_optimization="extended")
    names = {t.name for t in r.tensors}
    assert "yq" in names and "conv" not in names and "relu" not in names
    assert next(t for t in r.tensors if t.name == "yq").op == "QLinearConv"


def test_ort_fusion_tie_found_against_unfused_reference():
    """ORT's own QDQ fusion changes yq by one code (onnxruntime#32132); comparing ORT_ENABLE_EXTENDED
    with the unfused reference finds it and calls it a tie; with the matching fuse it vanishes."""
    m, _ = qdq_conv_chain(seed=3, H=16, C=8, M=16)
    x = random_input((1, 8, 16, 16), seed=103, scale=3.0)
    r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization="extended", fuse=None)
    assert r.first_divergence == "yq"
    yq = next(t for t in r.tensors if t.name == "yq")
    assert yq.cause == "tie" and yq.n_diff == 1 and yq.max_steps == 1
    r2 = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization="extended")
    assert r2.first_divergence is None


# ----------------------------------------------------------------------- CLI

def test_cli_help(capsys):
    from refquant.cli import main
    with pytest.raises(SystemExit) as e:
        main(["compare", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--observed" in out and "--ort-optimization" in out


def test_cli_observed_json(tmp_path, capsys):
    import onnx
    from refquant.cli import main
    m, x, obs, _ = _planted()
    mp = tmp_path / "m.onnx"
    onnx.save(m, str(mp))
    np.savez(tmp_path / "in.npz", x=x)
    np.savez(tmp_path / "obs.npz", **obs)
    js = tmp_path / "r.json"
    html = tmp_path / "r.html"
    rc = main(["compare", str(mp), "--inputs", str(tmp_path / "in.npz"), "--observed",
               str(tmp_path / "obs.npz"), "--json", str(js), "--html", str(html)])
    assert rc == 1
    d = json.loads(js.read_text())
    assert d["first_divergence"] == "yq"
    assert "first divergence: yq" in capsys.readouterr().out
    assert html.read_text().startswith("<!doctype html>")
    np.savez(tmp_path / "same.npz", **run_model(m, {"x": x}))
    rc = main(["compare", str(mp), "--inputs", str(tmp_path / "in.npz"), "--observed",
               str(tmp_path / "same.npz"), "--quiet", "--save-reference", str(tmp_path / "ref.npz")])
    assert rc == 0
    with np.load(tmp_path / "ref.npz") as z:
        assert "yq" in z.files and np.array_equal(z["yq"], run_model(m, {"x": x})["yq"])
    rc = main(["compare", str(tmp_path / "nope.onnx"), "--inputs", str(tmp_path / "in.npz"),
               "--observed", str(tmp_path / "same.npz")])
    assert rc == 2
    capsys.readouterr()
    for opt in ("--json", "--html", "--save-reference"):     # checked before the run
        rc = main(["compare", str(mp), "--inputs", str(tmp_path / "in.npz"), "--observed",
                   str(tmp_path / "same.npz"), opt, str(tmp_path / "no_dir" / "r.out")])
        assert rc == 2 and f"{opt}: cannot write" in capsys.readouterr().err


def test_cli_engine(tmp_path, capsys):
    import onnx
    from refquant.cli import main
    m, shp = qdq_gemm_chain()
    mp = tmp_path / "m.onnx"
    onnx.save(m, str(mp))
    np.savez(tmp_path / "in.npz", x=random_input(shp))
    rc = main(["compare", str(mp), "--inputs", str(tmp_path / "in.npz"), "--engine", "onnxruntime",
               "--ort-optimization", "all", "--json", "-"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["first_divergence"] is None and d["n_compared"] >= 2


def test_tensorrt_observed_workflow():
    """TensorRT tensors recorded at fused-layer boundaries: compare with --fuse tensorrt.
    A one-code error planted in the fused layer's output is the first divergence; the float
    tensors inside the fusion are not expected from the engine."""
    from test_model import trt_conv_model
    m, shp = trt_conv_model()
    x = random_input(shp)
    eng = run_model(m, {"x": x}, profile="tensorrt", fuse="tensorrt")
    assert set(eng) == {"xq", "yq", "out"}
    obs = {k: v.copy() for k, v in eng.items()}
    r = compare_model(m, {"x": x}, observed=obs, profile="tensorrt", fuse="tensorrt")
    assert r.first_divergence is None and r.only_reference == []
    obs["yq"].reshape(-1)[5] = np.int8(min(int(obs["yq"].reshape(-1)[5]) + 1, 127))
    if np.array_equal(obs["yq"], eng["yq"]):
        obs["yq"].reshape(-1)[5] -= 2
    r = compare_model(m, {"x": x}, observed=obs, profile="tensorrt", fuse="tensorrt")
    assert r.first_divergence == "yq"
    assert next(t for t in r.tensors if t.name == "yq").op == "TensorRTFused"
    # the same observation against the float simulation: more differences, at the fused layer
    r2 = compare_model(m, {"x": x}, observed=eng, profile="tensorrt", fuse=None)
    assert {t.name for t in r2.tensors} == {"xq", "yq", "out"}


def test_ort_all_layout_alignment():
    """ORT_ENABLE_ALL stores the fused QLinearConv output channels-last under a new name; compare
    aligns it with the reference tensor through ORT's node name and transposes it back."""
    m, shp = qdq_conv_chain()
    r = compare_model(m, {"x": random_input(shp)}, engine="onnxruntime", ort_optimization="all")
    yq = next(t for t in r.tensors if t.name == "yq")
    assert yq.observed_as and "[0, 2, 3, 1]" in yq.observed_as and yq.n_diff == 0
    assert r.first_divergence is None


def _qdq_add_model():
    inits = [_init("sa", np.float32(0.05)), _init("za", np.uint8(100)),
             _init("sb", np.float32(0.1 * 0.75)), _init("zb", np.uint8(7)),
             _init("sc", np.float32(0.1)), _init("zc", np.uint8(128))]
    nodes = [helper.make_node("QuantizeLinear", ["a", "sa", "za"], ["aq"], name="qa"),
             helper.make_node("DequantizeLinear", ["aq", "sa", "za"], ["ad"], name="dqa"),
             helper.make_node("QuantizeLinear", ["b", "sb", "zb"], ["bq"], name="qb"),
             helper.make_node("DequantizeLinear", ["bq", "sb", "zb"], ["bd"], name="dqb"),
             helper.make_node("Add", ["ad", "bd"], ["s"], name="add"),
             helper.make_node("QuantizeLinear", ["s", "sc", "zc"], ["sq"], name="qs"),
             helper.make_node("DequantizeLinear", ["sq", "sc", "zc"], ["out"], name="dqs")]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [256]) for n in ("a", "b")]
    return _model(nodes, vi, [helper.make_tensor_value_info("out", TensorProto.FLOAT, [256])], inits)


def test_ort_qlinear_add_fusion_ties():
    """ORT fuses DQ -> Add -> Q into QLinearAdd (FMA arithmetic): 13 of 256 codes move against the
    float simulation, all at ties; the reference with the matching fuse reproduces ORT exactly."""
    m = _qdq_add_model()
    rng = np.random.default_rng(0)
    a = (rng.standard_normal(256) * 3).astype(np.float32)
    b = (rng.standard_normal(256) * 3).astype(np.float32)
    r = compare_model(m, {"a": a, "b": b}, engine="onnxruntime", ort_optimization="extended", fuse=None)
    sq = next(t for t in r.tensors if t.name == "sq")
    assert r.first_divergence == "sq" and sq.cause == "tie" and sq.n_diff == 13 and sq.max_steps == 1
    r2 = compare_model(m, {"a": a, "b": b}, engine="onnxruntime", ort_optimization="extended")
    assert r2.first_divergence is None
    assert next(t for t in r2.tensors if t.name == "sq").op == "QLinearAdd"


def test_reference_engine_avx2_portability():
    """--engine reference:onnxruntime-avx2: what an AVX2 CPU without VNNI computes, layer by layer;
    both integer kernels saturate on their own, the rest is propagated."""
    m, shp = qdq_conv_chain()
    x = random_input(shp, scale=3.0)
    r = compare_model(m, {"x": x}, engine="reference:onnxruntime-avx2", ort_optimization="all")
    by = {t.name: t for t in r.tensors}
    assert r.first_divergence == "yq" and by["yq"].cause == "int16 pair saturation"
    assert by["zq"].cause == "int16 pair saturation"
    assert r.independent == ["yq", "zq"]
    assert all(t.cause == "propagated from an earlier divergence" for t in r.diverged
               if t.name not in ("yq", "zq"))
    # int8 activations with 7-bit weights would not differ; the unfused float simulation neither
    r0 = compare_model(m, {"x": x}, engine="reference:onnxruntime-avx2")
    assert r0.first_divergence is None
    with pytest.raises(ValueError, match="engine"):
        compare_model(m, {"x": x}, engine="trt")


def test_float16_accumulation_order():
    """An fp16 MatMul summed differently by ORT (within the fp16 tolerance) flips a later Q: the
    Q is the first divergence and its cause is the float accumulation order, not a bug."""
    rng = np.random.default_rng(0)
    inits = [_init("s", np.float16(0.0123)), _init("z", np.int8(3)),
             _init("w_q", rng.integers(-127, 128, (8, 16)).astype(np.int8)),
             _init("sw", np.float16(0.01)), _init("zw", np.int8(0))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w"], name="dqw"),
             helper.make_node("MatMul", ["xd", "w"], ["y"], name="mm"),
             helper.make_node("QuantizeLinear", ["y", "s", "z"], ["yq"], name="qy")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [4, 8])],
               [helper.make_tensor_value_info("yq", TensorProto.INT8, [4, 16])], inits)
    x = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float16)
    r = compare_model(m, {"x": x}, engine="onnxruntime")
    y = next(t for t in r.tensors if t.name == "y")
    assert y.n_diff > 0 and not y.diverged and y.cause == "float accumulation order"
    if r.first_divergence is not None:        # depends on MLAS's fp16 summation (measured: 2 codes)
        assert r.first_divergence == "yq"
        assert next(t for t in r.tensors if t.name == "yq").cause == "float accumulation order"


def _s8_matmul_softmax(ss=1 / 256):
    """int8 QDQ: x -> Q/DQ -> MatMul(DQ(w)) -> Q/DQ -> Reshape -> Q/DQ -> Softmax -> Q/DQ -> out."""
    rng = np.random.default_rng(0)
    inits = [_init("sx", np.float32(0.0213)), _init("zx", np.int8(3)),
             _init("w_q", rng.integers(-127, 128, (16, 16)).astype(np.int8)),
             _init("sw", np.float32(0.0041)), _init("zw", np.int8(0)),
             _init("sy", np.float32(0.0517)), _init("zy", np.int8(-5)),
             _init("shape", np.array([4, 4, 4], np.int64)),
             _init("ss", np.float32(ss)), _init("zs", np.int8(-128))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w"], name="dq_w"),
             helper.make_node("MatMul", ["xdq", "w"], ["mm"], name="mm"),
             helper.make_node("QuantizeLinear", ["mm", "sy", "zy"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["ydq"], name="dq_y"),
             helper.make_node("Reshape", ["ydq", "shape"], ["r"], name="reshape"),
             helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["rq"], name="q_r"),
             helper.make_node("DequantizeLinear", ["rq", "sy", "zy"], ["rdq"], name="dq_r"),
             helper.make_node("Softmax", ["rdq"], ["sm"], name="softmax", axis=-1),
             helper.make_node("QuantizeLinear", ["sm", "ss", "zs"], ["sq"], name="q_s"),
             helper.make_node("DequantizeLinear", ["sq", "ss", "zs"], ["out"], name="dq_s")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, 4, 4])], inits,
                  opset=17)


@pytest.mark.parametrize("level", ["extended", "all"])
def test_ort_s8_to_u8_renamed_tensors(level):
    """ORT's QDQS8ToU8 renames every converted int8 tensor (qdq_s8_to_u8_quant*, uint8, zero
    point + 128): compare aligns them by node name and compares the codes shifted back -- the
    QLinearMatMul / QLinearSoftmax outputs and the Reshape ORT runs on codes are compared, and
    a divergence is found where it happens, not on the final DequantizeLinear."""
    m = _s8_matmul_softmax()
    x = random_input((4, 16))
    r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization=level)
    by = {t.name: t for t in r.tensors}
    assert {"xq", "yq", "rq", "sq", "out"} <= set(by)
    assert by["yq"].op == "QLinearMatMul" and by["sq"].op == "QLinearSoftmax"
    assert "qdq_s8_to_u8_quant" in by["sq"].observed_as and "- 128" in by["sq"].observed_as
    assert "Reshape" in by["rq"].observed_as
    assert r.first_divergence is None and all(t.n_diff == 0 for t in r.tensors)
    # against the float simulation (1/ss not an integer: ORT's QLinearSoftmax is not Q(softmax))
    m2 = _s8_matmul_softmax(ss=1 / 200.5)
    r2 = compare_model(m2, {"x": x}, engine="onnxruntime", ort_optimization=level, fuse=None)
    by2 = {t.name: t for t in r2.tensors}
    assert r2.first_divergence == "sq" and by2["sq"].n_diff > 0
    assert by2["yq"].n_diff == 0 and "fused by ORT" in by2["yq"].observed_as
    assert by2["out"].cause == "propagated from an earlier divergence"


def _conv_resize_pad_conv(seed=0, C=4, M=8, H=6):
    """QDQ Conv -> Relu -> Q/DQ -> Resize(linear, x2) -> Q/DQ -> Pad(reflect) -> Q/DQ -> Conv -> Q/DQ."""
    rng = np.random.default_rng(seed)
    inits = [_init("sx", np.float32(0.0213)), _init("zx", np.uint8(128)),
             _init("w_q", rng.integers(-127, 128, (M, C, 3, 3)).astype(np.int8)),
             _init("sw", np.float32(0.004)), _init("zw", np.int8(0)),
             _init("sy", np.float32(0.0517)), _init("zy", np.uint8(0)),
             _init("scales", np.array([1, 1, 2, 2], np.float32)),
             _init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
             _init("w2_q", rng.integers(-127, 128, (M, M, 3, 3)).astype(np.int8)),
             _init("sw2", np.float32(0.003)), _init("zw2", np.int8(0)),
             _init("sz", np.float32(0.0931)), _init("zz", np.uint8(128))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w"], name="dq_w"),
             helper.make_node("Conv", ["xdq", "w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("QuantizeLinear", ["relu", "sy", "zy"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["ydq"], name="dq_y"),
             helper.make_node("Resize", ["ydq", "", "scales"], ["rs"], name="resize", mode="linear"),
             helper.make_node("QuantizeLinear", ["rs", "sy", "zy"], ["rq"], name="q_r"),
             helper.make_node("DequantizeLinear", ["rq", "sy", "zy"], ["rdq"], name="dq_r"),
             helper.make_node("Pad", ["rdq", "pads"], ["pad"], name="pad", mode="reflect"),
             helper.make_node("QuantizeLinear", ["pad", "sy", "zy"], ["pq"], name="q_p"),
             helper.make_node("DequantizeLinear", ["pq", "sy", "zy"], ["pdq"], name="dq_p"),
             helper.make_node("DequantizeLinear", ["w2_q", "sw2", "zw2"], ["w2"], name="dq_w2"),
             helper.make_node("Conv", ["pdq", "w2"], ["conv2"], name="conv2"),
             helper.make_node("QuantizeLinear", ["conv2", "sz", "zz"], ["zq"], name="q_z"),
             helper.make_node("DequantizeLinear", ["zq", "sz", "zz"], ["out"], name="dq_z")]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, H])
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, M, 2 * H, 2 * H])
    return _model(nodes, [xi], [yo], inits, opset=17), (1, C, H, H)


def test_ort_all_layout_alignment_through_resize_pad():
    """At ORT_ENABLE_ALL the transpose optimizer pushes the NHWC layout through Resize and Pad
    (permuting their scales / pads) and renames their outputs: they are aligned like the
    QLinearConv outputs, so every tensor compared at 'extended' is compared at 'all' too and the
    first divergence (ORT's float Resize, 1 ulp, flips a Q) is found at the same tensor."""
    m, shp = _conv_resize_pad_conv()
    x = random_input(shp)
    ext = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization="extended")
    r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization="all")
    assert [t.name for t in r.tensors] == [t.name for t in ext.tensors]
    by = {t.name: t for t in r.tensors}
    for k in ("rs", "rq", "pad", "pq"):
        assert by[k].observed_as and "[0, 2, 3, 1]" in by[k].observed_as, k
    assert [(t.name, t.n_diff) for t in r.tensors] == [(t.name, t.n_diff) for t in ext.tensors]
    assert r.first_divergence == ext.first_divergence
    if r.first_divergence is not None:        # ORT's float Resize vs onnx.reference (measured: rq)
        assert by[r.first_divergence].cause != "unknown"


def _u16_matmul_s8_weight(K=40, N=24, M=6):
    """uint16 QDQ activations with an int8 DQ weight: x -> Q/DQ(u16) -> MatMul(DQ(w)) -> Q/DQ(u16)."""
    rng = np.random.default_rng(0)
    inits = [_init("sx", np.float32(6e-5)), _init("zx", np.uint16(32768)),
             _init("w_q", rng.integers(-127, 128, (K, N)).astype(np.int8)),
             _init("sw", np.float32(0.004)), _init("zw", np.int8(0)),
             _init("sy", np.float32(3e-4)), _init("zy", np.uint16(32768))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w"], name="dq_w"),
             helper.make_node("MatMul", ["xdq", "w"], ["mm"], name="mm"),
             helper.make_node("QuantizeLinear", ["mm", "sy", "zy"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["out"], name="dq_y")]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K])],
                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, [M, N])], inits,
                  opset=21), (M, K)


def test_ort_matmulnbits_rewrite_is_named():
    """With 16-bit activations ORT (extended/all) turns DQ(int8 weight) -> MatMul into
    com.microsoft MatMulNBits(bits=8, accuracy_level=4), which quantizes the activations to
    int8 inside: the divergence of the MatMul output is attributed to that rewrite."""
    from refquant.compare import observe_onnxruntime
    m, shp = _u16_matmul_s8_weight()
    x = random_input(shp, scale=1.0)
    _, om = observe_onnxruntime(m, {"x": x}, "extended")
    if not any(n.op_type == "MatMulNBits" for n in om.graph.node):
        pytest.skip("this onnxruntime does not rewrite to MatMulNBits")
    r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization="extended")
    mm = next(t for t in r.tensors if t.name == "mm")
    assert r.first_divergence == "mm" and mm.cause == "engine rewrite"
    assert "MatMulNBits" in mm.detail and "accuracy_level=4" in mm.detail
    assert next(t for t in r.tensors if t.name == "yq").cause == "propagated from an earlier divergence"
    assert all(t.cause in CAUSES for t in r.tensors if t.diverged)
    assert compare_model(m, {"x": x}, engine="onnxruntime").first_divergence is None


def _conv_hardswish_conv(seed=0, C=4, M=8, H=6):
    """QDQ Conv -> Q/DQ -> x * HardSigmoid(x) (unnamed nodes, as an inlined HardSwish leaves
    them) -> Q/DQ -> 1x1 Conv -> Q/DQ."""
    rng = np.random.default_rng(seed)
    inits = [_init("sx", np.float32(0.0213)), _init("zx", np.uint8(128)),
             _init("w_q", rng.integers(-127, 128, (M, C, 3, 3)).astype(np.int8)),
             _init("sw", np.float32(0.004)), _init("zw", np.int8(0)),
             _init("sy", np.float32(0.0517)), _init("zy", np.uint8(128)),
             _init("sh", np.float32(1 / 255)), _init("zh", np.uint8(0)),
             _init("sm", np.float32(0.03)), _init("zm", np.uint8(128)),
             _init("w2_q", rng.integers(-127, 128, (M, M, 1, 1)).astype(np.int8)),
             _init("sw2", np.float32(0.003)), _init("zw2", np.int8(0)),
             _init("sz", np.float32(0.0931)), _init("zz", np.uint8(128))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w"], name="dq_w"),
             helper.make_node("Conv", ["xdq", "w"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["conv", "sy", "zy"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["ydq"], name="dq_y"),
             helper.make_node("HardSigmoid", ["ydq"], ["hs"]),
             helper.make_node("QuantizeLinear", ["hs", "sh", "zh"], ["hq"], name="q_h"),
             helper.make_node("DequantizeLinear", ["hq", "sh", "zh"], ["hdq"], name="dq_h"),
             helper.make_node("Mul", ["ydq", "hdq"], ["mul"]),
             helper.make_node("QuantizeLinear", ["mul", "sm", "zm"], ["mq"], name="q_m"),
             helper.make_node("DequantizeLinear", ["mq", "sm", "zm"], ["mdq"], name="dq_m"),
             helper.make_node("DequantizeLinear", ["w2_q", "sw2", "zw2"], ["w2"], name="dq_w2"),
             helper.make_node("Conv", ["mdq", "w2"], ["conv2"], name="conv2"),
             helper.make_node("QuantizeLinear", ["conv2", "sz", "zz"], ["zq"], name="q_z"),
             helper.make_node("DequantizeLinear", ["zq", "sz", "zz"], ["out"], name="dq_z")]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, H])
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, M, H, H])
    return _model(nodes, [xi], [yo], inits, opset=17), (1, C, H, H)


def test_ort_all_layout_alignment_unnamed_nodes():
    """ORT_ENABLE_ALL: nodes without a name inside the NHWC region (the QLinearMul ORT fused from
    an inlined HardSwish) are aligned with the EXTENDED graph's node of the same op on the
    corresponding inputs, so nothing compared at 'extended' is lost at 'all'."""
    m, shp = _conv_hardswish_conv()
    x = random_input(shp)
    ext = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization="extended")
    r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization="all")
    assert [t.name for t in r.tensors] == [t.name for t in ext.tensors]
    by = {t.name: t for t in r.tensors}
    assert "[0, 2, 3, 1]" in by["mq"].observed_as and "[0, 2, 3, 1]" in by["hs"].observed_as
    assert r.first_divergence is None and all(t.n_diff == 0 for t in r.tensors)


def _pair_conv_model(act_t, zp, group=1, C=8, M=4):
    """QDQ conv whose u8 x s8 pairs leave int16 (repro sweep3/2): int8 activations are shifted
    to uint8 by ORT's QDQS8ToU8 under fuse="onnxruntime"."""
    np_t = np.int8 if act_t == TensorProto.INT8 else np.uint8
    rng = np.random.RandomState(0)
    w = rng.choice([-127, 127, 100, -100], size=(M, C // group, 3, 3)).astype(np.int8)
    from _onnx_util import qdq_conv_model
    return qdq_conv_model(w, C=C, x_scale=0.02, x_zp=np_t(zp), y_scale=2.0, y_zp=np_t(zp), group=group)


@pytest.mark.parametrize("act_t,zp", [(TensorProto.UINT8, 128), (TensorProto.INT8, 0)])
@pytest.mark.parametrize("eng,prof,side", [("onnxruntime-avx2", "onnxruntime", "engine"),
                                           ("onnxruntime", "onnxruntime-avx2", "reference")])
def test_int16_pair_saturation_cause_shifted_and_reverse(act_t, zp, eng, prof, side):
    m = _pair_conv_model(act_t, zp)
    x = {"x": np.random.RandomState(1).uniform(-2.5, 2.5, (1, 8, 6, 6)).astype(np.float32)}
    r = compare_model(m, x, engine="reference:" + eng, profile=prof, fuse="onnxruntime")
    by = {t.name: t for t in r.tensors}
    assert r.first_divergence == "yq"
    assert by["yq"].cause == "int16 pair saturation", by["yq"].detail
    assert f"the {side} saturates" in by["yq"].detail
    assert ("QDQS8ToU8" in by["yq"].detail) == (act_t == TensorProto.INT8)


def test_int16_pair_saturation_fbgemm_depthwise_wording():
    m = _pair_conv_model(TensorProto.UINT8, 0, group=8, M=8)
    x = {"x": np.random.RandomState(0).uniform(4.0, 5.1, (1, 8, 6, 6)).astype(np.float32)}
    for eng, prof, side in [("pytorch-fbgemm", "onnx", "engine"), ("onnx", "pytorch-fbgemm", "reference")]:
        r = compare_model(m, x, engine="reference:" + eng, profile=prof, fuse="onnxruntime")
        y = {t.name: t for t in r.tensors}["yq"]
        assert y.cause == "int16 pair saturation", y.detail
        assert f"the {side} saturates" in y.detail and "every x86 CPU" in y.detail
        assert "no VNNI" not in y.detail and "without VNNI" not in y.detail


def test_observed_names_matching_nothing_is_an_error(tmp_path, capsys):
    from refquant.cli import main
    m, shp = qdq_conv_chain()
    x = {"x": random_input(shp)}
    with pytest.raises(ValueError, match="none of the .* observed name"):
        compare_model(m, x, observed={"layer_out": np.zeros(3, np.uint8)})
    import onnx
    onnx.save(m, str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "x.npz", **x)
    np.savez(tmp_path / "o.npz", layer_out=np.zeros(3, np.uint8))
    rc = main(["compare", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npz"),
               "--observed", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and "layer_out" in err and "the model's tensors" in err


def test_observed_extra_names_wrong_input_and_shape():
    m, shp = qdq_conv_chain()
    x = {"x": random_input(shp)}
    ref = run_model(m, x, profile="onnx")
    name = next(n for n in ref if np.asarray(ref[n]).dtype.kind in "iu")
    gi = m.graph.input[0].name
    obs = {name: ref[name], "layer_out": ref[name], gi: np.asarray(x[gi]) + 1}
    r = compare_model(m, x, observed=obs)
    assert "layer_out" in r.only_observed and gi in r.only_observed
    txt = str(r)
    assert "layer_out" in txt and any(gi in n for n in r.notes)
    r = compare_model(m, x, observed={name: np.asarray(ref[name]).reshape(-1)})
    t = {t.name: t for t in r.tensors}[name]
    assert t.diverged and t.detail.startswith("shape differs") and "analysis failed" not in t.detail


# ----------------------------------------------------------------------- cause attribution (sweep3)

def _fc_tie_model(op):
    """x(u8) @ ones: acc = +-5 -> +-2.5 output steps, an exact tie at every output."""
    inits = [numpy_helper.from_array(np.array(0.5, np.float32), "sx"),
             numpy_helper.from_array(np.array(128, np.uint8), "zx"),
             numpy_helper.from_array(np.ones((4, 3), np.int8), "wq"),
             numpy_helper.from_array(np.array(1.0, np.float32), "sw"),
             numpy_helper.from_array(np.array(0, np.int8), "zw"),
             numpy_helper.from_array(np.array(1.0, np.float32), "sy"),
             numpy_helper.from_array(np.array(128, np.uint8), "zy")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"]),
             helper.make_node(op, ["xd", "wd"], ["c"]),
             helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["yq"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                          [helper.make_tensor_value_info("yq", TensorProto.UINT8, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
def test_qgemm_exact_tie_cause(op):
    x = {"x": np.array([[1.0, 1.0, 0.5, 0.0], [-1.0, -1.0, -0.5, 0.0]], np.float32)}
    r = compare_model(_fc_tie_model(op), x, engine="reference:tflite-reference", profile="onnx",
                      fuse="onnxruntime")
    y = {t.name: t for t in r.tensors}["yq"]
    assert y.diverged and y.cause == "tie", y.detail


def _q_model(with_identity, s=0.04):
    nodes = [helper.make_node("QuantizeLinear", ["r" if with_identity else "x", "s", "z"], ["q"])]
    if with_identity:
        nodes.insert(0, helper.make_node("Identity", ["x"], ["r"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                          [helper.make_tensor_value_info("q", TensorProto.INT8, None)],
                          [numpy_helper.from_array(np.array(s, np.float32), "s"),
                           numpy_helper.from_array(np.array(0, np.int8), "z")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("with_identity", [False, True])
def test_quantize_fl32_ties_name_the_rounding_rule(with_identity):
    s = np.float32(0.04)
    x = (np.array([0.5, 1.5, 2.5, 3.5, -0.5, -2.5, 10.5, 12.5], np.float32) * s).astype(np.float32)
    r = compare_model(_q_model(with_identity), {"x": x}, engine="reference:tflite-reference", profile="onnx")
    q = {t.name: t for t in r.tensors}["q"]
    assert q.cause == "tie" and "rounding rule" in q.detail and "half_away" in q.detail, q.detail
    assert "fused kernel" not in q.detail and "reciprocal" not in q.detail


@pytest.mark.parametrize("eng", ["pytorch", "tflite-reference", "tensorrt"])
def test_quantize_nan_inf_policy_cause(eng):
    x = np.array([np.nan, np.inf, -np.inf, 1e30, 1.0], np.float32)
    r = compare_model(_q_model(True, 0.1), {"x": x}, engine=f"reference:{eng}", profile="onnx")
    q = {t.name: t for t in r.tensors}["q"]
    assert q.diverged and q.cause == "NaN/Inf policy" and "q_nan" in q.detail, q.detail


def test_tflite_fixed_point_double_rounding_is_a_tie():
    rng = np.random.RandomState(0)
    inits = [numpy_helper.from_array(np.array(0.030584032, np.float32), "sx"),
             numpy_helper.from_array(np.array(0, np.int8), "zx"),
             numpy_helper.from_array(rng.randint(-127, 128, (16, 8, 3, 3)).astype(np.int8), "wq"),
             numpy_helper.from_array(np.array(0.001511609, np.float32), "sw"),
             numpy_helper.from_array(np.array(0, np.int8), "zw"),
             numpy_helper.from_array(np.array(0.009332454, np.float32), "sy"),
             numpy_helper.from_array(np.array(0, np.int8), "zy")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    x = {"x": rng.uniform(-0.3, 0.3, (1, 8, 16, 16)).astype(np.float32)}
    r = compare_model(m, x, engine="reference:tflite-reference", profile="onnx", fuse="onnxruntime")
    y = {t.name: t for t in r.tensors}["yq"]
    assert y.diverged and y.cause == "tie" and "fixed-point" in y.detail, y.detail


def test_tensorrt_fused_tie_is_analysed():
    from test_model import _sym_conv_float_bias
    from refquant.reference import conv_integer
    m = _sym_conv_float_bias(32)
    x = {"x": np.random.RandomState(3).randn(1, 3, 32, 32).astype(np.float32)}
    ref = run_model(m, x, profile="tensorrt", fuse="tensorrt")
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    acc = conv_integer(ref["xq"], init["wq"], pads=[1, 1, 1, 1]).astype(np.float64)
    v = (acc * 0.02 * 0.01 + init["b"].astype(np.float64).reshape(1, -1, 1, 1)) / 0.05
    dist = np.abs(np.abs(v - np.floor(v)) - 0.5)
    i = np.unravel_index(np.argmin(dist), v.shape)
    assert dist[i] < 1e-3
    yq = ref["yq"].copy()
    yq[i] = yq[i] + (1 if v[i] > ref["yq"][i] else -1)
    r = compare_model(m, x, observed={"xq": ref["xq"], "yq": yq}, profile="tensorrt", fuse="tensorrt")
    y = {t.name: t for t in r.tensors}["yq"]
    assert y.cause == "tie" and "TensorRT" in y.detail, y.detail


def test_cse_twins_block_qdq_propagation():
    """Two Reshapes of one input with equal shape constants (as torch exports q / k Linears on
    the same 3-D input): ORT's common-subexpression elimination merges them before its QDQ
    propagation, so the merged Reshape has two consumers and no Q/DQ goes in front of it; the
    reference's propagation must not insert one either (sweep repro_1: the float Reshape output
    diverged with cause 'unknown')."""
    from refquant.compare import compare_model
    rng = np.random.default_rng(4)
    inits = [_init("shape_a", np.array([8, 16], np.int64)), _init("shape_b", np.array([8, 16], np.int64)),
             _init("s1", np.float32(0.031)), _init("z1", np.uint8(120)),
             _init("s2", np.float32(0.027)), _init("z2", np.uint8(131))]
    nodes = [helper.make_node("Reshape", ["x", "shape_a"], ["ra"], name="ra"),
             helper.make_node("Reshape", ["x", "shape_b"], ["rb"], name="rb"),
             helper.make_node("QuantizeLinear", ["ra", "s1", "z1"], ["qa"], name="qa"),
             helper.make_node("DequantizeLinear", ["qa", "s1", "z1"], ["ya"], name="dqa"),
             helper.make_node("QuantizeLinear", ["rb", "s2", "z2"], ["qb"], name="qb"),
             helper.make_node("DequantizeLinear", ["qb", "s2", "z2"], ["yb"], name="dqb"),
             helper.make_node("Add", ["ya", "yb"], ["y"], name="add")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 16])], inits, opset=17)
    x = rng.standard_normal((1, 8, 16)).astype(np.float32)
    for level in ("basic", "extended", "all"):
        r = compare_model(m, {"x": x}, engine="onnxruntime", ort_optimization=level)
        assert r.first_divergence is None, (level, str(r))
