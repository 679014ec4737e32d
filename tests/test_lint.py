"""refquant lint: each planted quantization-parameter hazard is flagged, a clean model is not."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("onnx", reason="lint needs onnx")
sys.path.insert(0, os.path.dirname(__file__))
from test_model import qdq_conv_chain, qlinear_chain, trt_conv_model, _init, _model  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from refquant.lint import lint_model  # noqa: E402


def layer(op="Conv", *, x_dt=np.int8, zx=0, sx=0.02, w=None, sw=None, zw=None, axis=0, bias=None,
          attrs=None, sy=0.05, zy=None, w_dt=np.int8, block_size=None, no_zw=False, no_axis=False):
    """x -> Q -> DQ -> op(DQ(w) [, bias]) -> Q -> DQ: one quantized layer with chosen parameters."""
    rng = np.random.default_rng(0)
    if w is None:
        w = rng.integers(-127, 128, (8, 4, 3, 3) if op in ("Conv", "ConvTranspose") else (16, 8)).astype(w_dt)
    M = w.shape[0]
    if sw is None:
        sw = (rng.random(M) * 0.01 + 0.002).astype(np.float32)
    if zw is None and not no_zw:
        zw = np.zeros(np.shape(sw), w.dtype) if np.ndim(sw) else np.zeros((), w.dtype)
    zy = x_dt(zx) if zy is None else zy
    inits = [_init("sx", np.asarray(sx, np.float32)), _init("zx", x_dt(zx)), _init("w_q", w),
             _init("sw", np.asarray(sw)), _init("sy", np.float32(sy)), _init("zy", zy)]
    dq_w_in = ["w_q", "sw"]
    if not no_zw:
        inits.append(_init("zw", np.asarray(zw)))
        dq_w_in.append("zw")
    dqa = {} if (no_axis or np.ndim(sw) == 0) else {"axis": axis}
    if block_size:
        dqa = {"axis": axis, "block_size": block_size}
    op_in = ["xdq", "w"]
    if bias is not None:
        inits.append(_init("b", np.asarray(bias)))
        op_in.append("b")
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_in"),
             helper.make_node("DequantizeLinear", dq_w_in, ["w"], name="dq_w", **dqa),
             helper.make_node(op, op_in, ["y"], name="layer", **(attrs or {})),
             helper.make_node("QuantizeLinear", ["y", "sy", "zy"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["out"], name="dq_out")]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    return _model(nodes, [xi], [yo], inits)


def codes(findings):
    return sorted({(f.code, f.severity) for f in findings})


def test_clean_model_has_no_findings():
    # s8 activations, 7-bit symmetric weights (ORT reduce_range [-64, 64]), per-channel axis 0
    w7 = np.random.default_rng(2).integers(-64, 65, (8, 4, 3, 3)).astype(np.int8)
    m = layer(w=w7, bias=np.full(8, 0.1, np.float32))
    assert lint_model(m) == []
    assert lint_model(m, "onnxruntime-avx2") == []
    m2, _ = trt_conv_model()
    assert lint_model(m2, "tensorrt") == []
    # 7-bit weights with u8 activations: AVX2-safe
    w7 = np.random.default_rng(1).integers(-64, 65, (8, 4, 3, 3)).astype(np.int8)
    assert lint_model(layer(x_dt=np.uint8, zx=128, w=w7)) == []


@pytest.mark.parametrize("bad", [0.0, -0.1, np.nan, np.inf, 1e-40])
def test_bad_scales(bad):
    f = lint_model(layer(sx=bad))
    assert ("RQ101", "error") in codes(f)
    assert all(x.node in ("q_in", "dq_in") for x in f if x.code == "RQ101")


def test_fp16_unrepresentable_scale():
    f = lint_model(layer(sy=1e-5))
    assert ("RQ102", "warning") in codes(f)
    f = lint_model(layer(sy=1e-9))
    assert any(x.code == "RQ102" and "becomes 0" in x.message for x in f)
    f = lint_model(layer(sy=1e6))
    assert any(x.code == "RQ102" and "overflows" in x.message for x in f)


def test_fp16_subnormal_scale_of_16_bit_quantization_is_info():
    """16-bit activations (range / 65535) have float32 scales below fp16's normal range by design:
    info without an fp16 target, a warning for TensorRT; 8-bit ones stay a warning."""
    m = layer(x_dt=np.int16, sx=1e-5, sy=1e-5)
    f = [x for x in lint_model(m) if x.code == "RQ102"]
    assert f and all(x.severity == "info" for x in f), f
    assert {x.node for x in f} >= {"q_in", "dq_in", "q_y", "dq_out"}
    f = [x for x in lint_model(m, "tensorrt") if x.code == "RQ102"]
    assert f and all(x.severity == "warning" for x in f), f
    f = [x for x in lint_model(layer(sx=1e-5)) if x.code == "RQ102"]
    assert f and all(x.severity == "warning" for x in f), f


def test_zero_point_type_mismatch():
    m = layer(zw=np.zeros(8, np.uint8))
    f = lint_model(m)
    assert ("RQ103", "error") in codes(f)


def test_symmetric_only_target_uses_tensorrt_message():
    m, _ = qdq_conv_chain()       # uint8, zp 128
    f = lint_model(m, "tensorrt")
    sym = [x for x in f if x.code == "RQ104"]
    assert sym and all(x.severity == "error" for x in sym)
    assert "TensorRT only supports symmetric quantization" in sym[0].message
    assert any(x.code == "RQ105" and "uint8" in x.message for x in f)
    assert not [x for x in lint_model(m) if x.code == "RQ104"]     # generic: asymmetric is fine


def test_tensorrt_uint8_zero_point_zero_becomes_int8():
    f = lint_model(layer(x_dt=np.uint8, zx=0, w=np.zeros((8, 4, 3, 3), np.int8)), "tensorrt")
    assert any(x.code == "RQ105" and "becomes int8" in x.message and x.node == "q_in" for x in f)
    assert any(x.code == "RQ105" and x.severity == "error" and x.node == "dq_in" for x in f)


def test_qdq_pair_mismatch():
    m = layer()
    for init in m.graph.initializer:
        if init.name == "sy":
            init.CopyFrom(_init("sy", np.float32(0.05)))
    nodes = list(m.graph.node)
    m.graph.initializer.append(_init("sy2", np.float32(0.06)))
    nodes[-1].input[1] = "sy2"
    f = lint_model(m)
    assert ("RQ106", "error") in codes(f) and any(x.node == "dq_out" for x in f if x.code == "RQ106")
    msg = next(x.message for x in f if x.code == "RQ106")
    assert "'yq'" in msg and "0.05" in msg and "0.06" in msg      # names the quantized tensor and values
    assert not [x for x in lint_model(layer()) if x.code == "RQ106"]


@pytest.mark.parametrize("qs,ds,qz,dz", [
    (np.float32([0.1]), np.float32([0.1]), np.int8([3]), np.int8(3)),      # zp [3] vs 3
    (np.float32([0.1]), np.float32(0.1), np.int8(3), np.int8(3)),          # scale [0.1] vs 0.1
    (np.float32(0.1), np.float32([0.1]), None, np.int8([0])),              # no zp vs [0]
])
def test_qdq_pair_per_tensor_spellings_agree(qs, ds, qz, dz):
    """A scalar and a 1-element vector are the same per-tensor parameter: no RQ106."""
    inits = [_init("qs", qs), _init("ds", ds), _init("dz", dz)]
    q_in = ["x", "qs"]
    if qz is not None:
        inits.append(_init("qz", qz))
        q_in.append("qz")
    nodes = [helper.make_node("QuantizeLinear", q_in, ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "ds", "dz"], ["y"], name="dq")]
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits)
    assert not [x for x in lint_model(m) if x.code == "RQ106"]
    dz2 = np.asarray(dz).copy() + np.int8(1)
    inits[2] = _init("dz", dz2)
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], inits)
    assert [x for x in lint_model(m) if x.code == "RQ106"]


def test_tensorrt_rejects_qoperator_ops():
    m, _ = qlinear_chain()
    f = lint_model(m, "tensorrt")
    assert sum(x.code == "RQ105" and "QLinearConv" in x.message for x in f) == 2


def test_tensorrt_axis_attribute_missing():
    f = lint_model(layer(no_axis=True), "tensorrt")
    assert any(x.code == "RQ105" and "axis" in x.message for x in f)


@pytest.mark.parametrize("op,axis,attrs,shape", [
    ("Conv", 1, None, (8, 8, 3, 3)),
    ("ConvTranspose", 0, None, (8, 8, 3, 3)),
    ("Gemm", 1, {"transB": 1}, (16, 16)),
    ("Gemm", 0, {"transB": 0}, (16, 16)),
    ("MatMul", 0, None, (16, 16)),
])
def test_per_channel_axis_vs_op(op, axis, attrs, shape):
    w = np.random.default_rng(0).integers(-127, 128, shape).astype(np.int8)
    sw = np.full(shape[axis], 0.01, np.float32)
    f = lint_model(layer(op, w=w, sw=sw, axis=axis, attrs=attrs))
    ax = [x for x in f if x.code == "RQ201"]
    assert ax and ax[0].severity == "error" and ax[0].node == "dq_w"


def test_per_channel_axis_correct_is_clean():
    w = np.random.default_rng(0).integers(-127, 128, (8, 8, 3, 3)).astype(np.int8)
    assert not [x for x in lint_model(layer("ConvTranspose", w=w, sw=np.full(8, 0.01, np.float32),
                                            axis=1)) if x.code == "RQ201"]
    assert not [x for x in lint_model(layer("Gemm", w=w[:, :, 0, 0].copy(), sw=np.full(8, 0.01, np.float32),
                                            axis=0, attrs={"transB": 1})) if x.code == "RQ201"]


def test_depthwise_per_tensor_is_info():
    w = np.random.default_rng(0).integers(-64, 65, (4, 1, 3, 3)).astype(np.int8)
    f = lint_model(layer(w=w, sw=np.float32(0.01), attrs={"group": 4}))
    assert codes(f) == [("RQ201", "info")]


def test_full_range_weights_for_tflite():
    w = np.random.default_rng(0).integers(-128, 128, (8, 4, 3, 3)).astype(np.int8)
    w[0, 0, 0, 0] = -128
    assert ("RQ202", "warning") in codes(lint_model(layer(w=w), "tflite-reference"))
    assert not [x for x in lint_model(layer(w=w)) if x.code == "RQ202"]


def test_int32_bias_overflow():
    # tiny weight scales: b / (sx*sw) = 1 / (0.02 * 1e-11) = 5e12 -> beyond int32 (ORT PR #22020)
    sw = np.full(8, 1e-11, np.float32)
    f = lint_model(layer(sw=sw, bias=np.ones(8, np.float32)))
    assert ("RQ301", "error") in codes(f)
    near = np.full(8, 0.02 * 0.01 * 1.5e9, np.float32)
    f = lint_model(layer(sw=np.full(8, 0.01, np.float32), bias=near))
    assert ("RQ301", "warning") in codes(f)


def test_int16_pair_saturation_portability():
    m, _ = qdq_conv_chain()      # u8 activations, s8 weights in [-127, 127]
    f = [x for x in lint_model(m) if x.code == "RQ401"]
    assert {x.node for x in f} == {"conv", "mm"}
    assert all(x.severity == "warning" and "AVX2" in x.message for x in f)
    # the count is the number of weight pairs whose worst case leaves int16
    from onnx import numpy_helper
    w = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}["w_q"].astype(np.int64)
    cols = np.moveaxis(w.reshape(8, 4, -1), 1, 2).reshape(8, -1)
    w0, w1 = cols[:, 0::2], cols[:, 1::2]
    n = int(((255 * (np.maximum(w0, 0) + np.maximum(w1, 0)) > 32767) |
             (255 * (np.minimum(w0, 0) + np.minimum(w1, 0)) < -32768)).sum())
    conv = next(x for x in f if x.node == "conv")
    assert f"{n} of {w0.size} weight pairs" in conv.message
    m2, _ = qlinear_chain()
    assert any(x.code == "RQ401" for x in lint_model(m2))
    # s8 activations in a QDQ unit: ORT shifts them to u8 on x86 -> flagged for ORT, not for TensorRT
    s8 = layer()
    f8 = [x for x in lint_model(s8) if x.code == "RQ401"]
    assert f8 and "QDQS8ToU8" in f8[0].message
    assert not [x for x in lint_model(s8, "tensorrt") if x.code == "RQ401"]


def test_int4_block_metadata():
    w = np.random.default_rng(0).integers(-8, 8, (64, 16)).astype(np.int8)
    import ml_dtypes
    w4 = w.astype(ml_dtypes.int4)
    good = np.full((2, 16), 0.01, np.float32)        # K=64 blocked by 32 along axis 0
    ok = layer("MatMul", w=w4, sw=good, zw=np.zeros((2, 16), ml_dtypes.int4), axis=0, block_size=32)
    assert not [x for x in lint_model(ok) if x.code == "RQ501"]
    bad = layer("MatMul", w=w4, sw=np.full((2, 8), 0.01, np.float32), zw=np.zeros((2, 8), ml_dtypes.int4),
                axis=0, block_size=32)
    assert ("RQ501", "error") in codes(lint_model(bad))
    along_n = layer("MatMul", w=w4, sw=np.full((64, 1), 0.01, np.float32),
                    zw=np.zeros((64, 1), ml_dtypes.int4), axis=1, block_size=16)
    assert ("RQ501", "warning") in codes(lint_model(along_n))
    u4 = layer("MatMul", w=np.abs(w).astype(ml_dtypes.uint4), sw=good, axis=0, block_size=32, no_zw=True)
    assert any(x.code == "RQ103" and "uint4" in x.message for x in lint_model(u4))
    odd = layer("MatMul", w=w4[:, :15].copy(), sw=np.full((2, 15), 0.01, np.float32),
                zw=np.zeros((2, 15), ml_dtypes.int4), axis=0, block_size=32)
    assert any(x.code == "RQ501" and "odd" in x.message for x in lint_model(odd, "tensorrt"))


def test_cli(tmp_path, capsys):
    import onnx
    from refquant.cli import main
    with pytest.raises(SystemExit) as e:
        main(["lint", "--help"])
    assert e.value.code == 0
    capsys.readouterr()
    m, _ = qdq_conv_chain()
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    assert main(["lint", str(p), "--target", "tensorrt", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["target"] == "tensorrt" and any(f["code"] == "RQ104" for f in d["findings"])
    assert set(d["findings"][0]) == {"severity", "code", "node", "message", "hint"}
    assert main(["lint", str(p)]) == 0          # warnings only
    assert main(["lint", str(p), "--fail-on", "warning"]) == 1
    clean = layer(w=np.random.default_rng(2).integers(-64, 65, (8, 4, 3, 3)).astype(np.int8))
    onnx.save(clean, str(tmp_path / "c.onnx"))
    capsys.readouterr()
    assert main(["lint", str(tmp_path / "c.onnx"), "--fail-on", "info"]) == 0
    assert "no findings" in capsys.readouterr().out


def test_cli_not_an_onnx_model_exit_2(tmp_path, capsys):
    from refquant.cli import main
    bad = tmp_path / "bad.onnx"
    bad.write_text("garbage\n")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for p in (bad, empty, tmp_path, tmp_path / "missing.onnx"):
        assert main(["lint", str(p)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("refquant lint: model:") and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="not an ONNX model"):
        lint_model(b"garbage")


def _u8_conv(C=3, M=4, group=1, w_value=127):
    """u8 x s8 QDQ conv whose weights (all w_value) overflow int16 pairs (sweep3 repro_7)."""
    from _onnx_util import qdq_conv_model
    return qdq_conv_model(np.full((M, C // group, 3, 3), w_value, np.int8), C=C, x_scale=0.02,
                          x_zp=np.uint8(128), y_scale=0.05, y_zp=np.uint8(128), group=group)


def test_int16_pair_saturation_is_target_aware():
    m = _u8_conv()
    rq = lambda mm, t: [x for x in lint_model(mm, t) if x.code == "RQ401"]  # noqa: E731
    for t in ("tensorrt", "tflite-xnnpack", "tflite-reference", "pytorch-qnnpack"):
        assert not rq(m, t), t
    f = rq(m, "onnxruntime-avx2")
    assert f and "onnxruntime-avx2 saturates" in f[0].message
    assert rq(m, None) and "without VNNI" in rq(m, None)[0].message
    dw = _u8_conv(C=8, M=8, group=8)
    f = rq(dw, "pytorch-fbgemm")
    assert f and "every x86 CPU" in f[0].message and "without VNNI" not in f[0].message
    f = rq(m, "pytorch-fbgemm")
    assert f and "not on fbgemm's depthwise fast path" in f[0].message


def _s8_weight_conv(zw=5, bias_int32=False):
    """int8 QDQ conv (x zp 0); weight zero point zw; optional int32 bias DQ (sweep3 repro_8/11)."""
    rng = np.random.RandomState(0)
    inits = [_init("sx", np.array(0.02, np.float32)), _init("zx", np.array(0, np.int8)),
             _init("wq", rng.randint(-100, 100, (4, 3, 3, 3)).astype(np.int8)),
             _init("sw", np.array(0.01, np.float32)), _init("zw", np.array(zw, np.int8)),
             _init("sy", np.array(0.05, np.float32)), _init("zy", np.array(0, np.int8))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"])]
    conv_in = ["xd", "wd"]
    if bias_int32:
        inits += [_init("bq", np.array([50, -70, 10, 0], np.int32)),
                  _init("sb", np.array(0.02 * 0.01, np.float32))]
        nodes.append(helper.make_node("DequantizeLinear", ["bq", "sb"], ["b"]))
        conv_in.append("b")
    nodes += [helper.make_node("Conv", conv_in, ["c"], pads=[1, 1, 1, 1]),
              helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_engine_limits_agree_between_lint_and_profile():
    from refquant.model import run_model
    from refquant.profile import ProfileError
    x = {"x": np.random.RandomState(1).randn(1, 3, 6, 6).astype(np.float32)}
    m = _s8_weight_conv(zw=5)
    codes = lambda mm, t: {f.code for f in lint_model(mm, t) if f.severity == "error"}  # noqa: E731
    for t in ("pytorch-onednn", "tflite-reference", "tflite-xnnpack"):
        assert "RQ104" in codes(m, t), t
        with pytest.raises(ProfileError, match="zero point"):
            run_model(m, x, profile=t, fuse="onnxruntime")
    for t in ("pytorch-fbgemm", "pytorch-qnnpack", "onnxruntime"):
        assert "RQ104" not in codes(m, t), t
        run_model(m, x, profile=t, fuse="onnxruntime")
    ok = _s8_weight_conv(zw=0)
    assert "RQ104" not in codes(ok, "pytorch-onednn")
    run_model(ok, x, profile="pytorch-onednn", fuse="onnxruntime")
    # TensorRT: an int32 bias DQ is refused by lint (RQ105) and by the profile
    b = _s8_weight_conv(zw=0, bias_int32=True)
    assert "RQ105" in codes(b, "tensorrt")
    with pytest.raises(ProfileError, match="int32"):
        run_model(b, x, profile="tensorrt")
    with pytest.raises(ProfileError, match="DequantizeLinear with int32") as e:
        run_model(b, x, profile="tensorrt", fuse="tensorrt")
    assert "float-bias profile" not in str(e.value)


def test_int16_pairs_ort_depthwise_and_folded_weights():
    """ORT's depthwise QLinearConv widens exactly (no RQ401 for ORT targets, still for fbgemm);
    weights written as Q(float constant) (AddQDQPairToWeight) are folded and checked."""
    rq = lambda mm, t: [x for x in lint_model(mm, t) if x.code == "RQ401"]  # noqa: E731
    dw = _u8_conv(C=8, M=8, group=8)
    assert not rq(dw, None) and not rq(dw, "onnxruntime-avx2")
    assert rq(dw, "pytorch-fbgemm")
    from onnx import numpy_helper
    m = _u8_conv()
    inits = {i.name: i for i in m.graph.initializer}
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
              and numpy_helper.to_array(inits[n.input[0]]).dtype == np.int8)
    codes = numpy_helper.to_array(inits[dq.input[0]])
    scale = numpy_helper.to_array(inits[dq.input[1]])
    wf = (codes.astype(np.float32) * scale.reshape((-1,) + (1,) * (codes.ndim - 1)) if scale.ndim
          else codes.astype(np.float32) * scale).astype(np.float32)
    m.graph.initializer.remove(inits[dq.input[0]])
    m.graph.initializer.append(numpy_helper.from_array(wf, "w_float"))
    q = helper.make_node("QuantizeLinear", ["w_float", dq.input[1]] + list(dq.input[2:3]), [dq.input[0]],
                         name="wq", **({"axis": 0} if scale.ndim else {}))
    m.graph.node.insert(0, q)
    assert rq(m, None), "the folded weight pairs saturate as the initializer's did"


def test_int16_pairs_com_microsoft_activation_type():
    """A QLinearConv whose activation comes from a com.microsoft op (its type unknown to shape
    inference) takes the type of its activation zero point."""
    m, _ = qlinear_chain()
    conv = next(n for n in m.graph.node if n.op_type == "QLinearConv")
    before = [x.node for x in lint_model(m) if x.code == "RQ401"]
    # feed the conv from a com.microsoft QLinearAdd (x + 0): shape inference cannot type it
    x_in = conv.input[0]
    add = helper.make_node("QLinearAdd", [x_in, conv.input[1], conv.input[2], x_in, conv.input[1], conv.input[2],
                                          conv.input[1], conv.input[2]], ["x_added"], domain="com.microsoft")
    conv.input[0] = "x_added"
    m.graph.node.insert(list(m.graph.node).index(conv), add)
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    after = [x.node for x in lint_model(m) if x.code == "RQ401"]
    assert before and sorted(after) == sorted(before)


def _dq_bias_layer(scale_factor, x_dt=np.uint8, zx=128):
    """layer() with per-tensor weights and its bias as DQ(int32 codes, sx*sw*scale_factor)."""
    from onnx import helper
    sw = np.float32(0.01)
    m = layer(x_dt=x_dt, zx=zx, sw=sw, bias=np.zeros(8, np.float32))
    sb = np.float32(np.float32(0.02) * sw * np.float32(scale_factor))
    g = m.graph
    keep = [i for i in g.initializer if i.name != "b"]
    del g.initializer[:]
    g.initializer.extend(keep + [_init("b_q", np.arange(8, dtype=np.int32) * 100), _init("sb", sb),
                                 _init("zb", np.int32(0))])
    g.node.insert(0, helper.make_node("DequantizeLinear", ["b_q", "sb", "zb"], ["b"], name="dq_b"))
    return m


def test_bias_scale_mismatch_tflite_rule():
    """A DQ'd bias whose scale is not x_scale * w_scale: ORT does not fuse (warning); LiteRT
    refuses a uint8 CONV_2D when |sx*sw - sb| / sy > 0.02 (error), int8 convs are not checked
    there (warning only)."""
    assert ("RQ301", "warning") in codes(lint_model(_dq_bias_layer(1.01)))
    # sx*sw = 2e-4, sy = 0.05: a factor 7 puts the difference at 0.024 output steps
    f = lint_model(_dq_bias_layer(7.0), "tflite-reference")
    assert ("RQ301", "error") in codes(f) and any("LiteRT refuses" in x.hint for x in f)
    f = lint_model(_dq_bias_layer(1.01), "tflite-optimized")
    assert ("RQ301", "warning") in codes(f) and ("RQ301", "error") not in codes(f)
    f = lint_model(_dq_bias_layer(7.0, x_dt=np.int8, zx=0), "tflite-reference")
    assert ("RQ301", "error") not in codes(f)
    assert not [x for x in lint_model(_dq_bias_layer(1.0), "tflite-reference") if x.code == "RQ301"]
