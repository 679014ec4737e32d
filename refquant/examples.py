"""Small example models and inputs, for the docs and for trying the debugging tools.

``python -m refquant.examples [DIR]`` writes ``model.onnx`` (a QDQ conv net: Q/DQ -> Conv with
per-channel int8 weights and a float bias -> Relu -> Q/DQ -> MaxPool -> Q/DQ -> MatMul -> Q ->
DQ, opset 21) and ``inputs.npz`` (its input ``x``, 1x8x16x16 float32) into DIR (default: the
current folder): the files docs/debugging.md's examples use.  The builders (onnx needed) are
shared with refquant's tests.
"""
from __future__ import annotations

import os
import sys

import numpy as np

__all__ = ["qdq_conv_chain", "trt_conv_model", "random_input", "write_debugging_example"]


def _onnx():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:  # pragma: no cover - the onnx extra
        raise ImportError("refquant.examples needs onnx: pip install 'refquant[onnx]'") from exc
    return onnx, TensorProto, helper, numpy_helper


def _init(name, arr):
    numpy_helper = _onnx()[3]
    return numpy_helper.from_array(np.asarray(arr), name)


def _model(nodes, inputs, outputs, inits, opset=21, ms=False):
    helper = _onnx()[2]
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    ops = [helper.make_opsetid("", opset)]
    if ms:
        ops.append(helper.make_opsetid("com.microsoft", 1))
    m = helper.make_model(g, opset_imports=ops)
    m.ir_version = 10
    return m


def qdq_conv_chain(seed=0, C=4, M=8, H=8, act=np.uint8, zx=128, zy=0, relu=True, per_channel=True,
                   bias=True, scales=None):
    """x -> Q/DQ -> Conv(DQ(w int8 per-channel), float bias) [-> Relu] -> Q/DQ -> MaxPool -> Q/DQ
    -> Reshape -> MatMul(DQ(w2)) -> Q -> DQ -> out.  Returns (model, input shape)."""
    _, TensorProto, helper, _ = _onnx()
    rng = np.random.default_rng(seed)
    sx, sy, sz = scales or (0.0213, 0.0517, 0.0931)
    sw = (rng.random(M) * 0.01 + 0.002).astype(np.float32) if per_channel else np.float32(0.006)
    zw = np.zeros(M, np.int8) if per_channel else np.int8(0)
    inits = [_init("sx", np.float32(sx)), _init("zx", act(zx)),
             _init("w_q", rng.integers(-127, 128, (M, C, 3, 3)).astype(np.int8)),
             _init("sw", sw), _init("zw", zw),
             _init("b", rng.standard_normal(M).astype(np.float32)),
             _init("sy", np.float32(sy)), _init("zy", act(zy)),
             _init("w2_q", rng.integers(-127, 128, (M * (H // 2) ** 2, 10)).astype(np.int8)),
             _init("sw2", np.float32(0.0031)), _init("zw2", np.int8(0)),
             _init("shape", np.array([1, -1], np.int64)),
             _init("sz", np.float32(sz)), _init("zz", act(zx))]
    conv_in = ["xdq", "w", "b"] if bias else ["xdq", "w"]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w"], name="dq_w",
                              **({"axis": 0} if per_channel else {})),
             helper.make_node("Conv", conv_in, ["conv"], name="conv", pads=[1, 1, 1, 1])]
    last = "conv"
    if relu:
        nodes.append(helper.make_node("Relu", ["conv"], ["relu"], name="relu"))
        last = "relu"
    nodes += [helper.make_node("QuantizeLinear", [last, "sy", "zy"], ["yq"], name="q_y"),
              helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["ydq"], name="dq_y"),
              helper.make_node("MaxPool", ["ydq"], ["pool"], name="pool", kernel_shape=[2, 2],
                               strides=[2, 2]),
              helper.make_node("QuantizeLinear", ["pool", "sy", "zy"], ["pq"], name="q_pool"),
              helper.make_node("DequantizeLinear", ["pq", "sy", "zy"], ["pdq"], name="dq_pool"),
              helper.make_node("Reshape", ["pdq", "shape"], ["flat"], name="flat"),
              helper.make_node("DequantizeLinear", ["w2_q", "sw2", "zw2"], ["w2"], name="dq_w2"),
              helper.make_node("MatMul", ["flat", "w2"], ["mm"], name="mm"),
              helper.make_node("QuantizeLinear", ["mm", "sz", "zz"], ["zq"], name="q_z"),
              helper.make_node("DequantizeLinear", ["zq", "sz", "zz"], ["out"], name="dq_z")]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, H])
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 10])
    return _model(nodes, [xi], [yo], inits), (1, C, H, H)


def trt_conv_model(seed=0, C=4, M=8, H=6, clip=(0.0, 6.0)):
    """Symmetric int8 DQ(x), DQ(w) -> Conv(+bias) -> Clip -> Q -> DQ (TensorRT-importable)."""
    _, TensorProto, helper, _ = _onnx()
    rng = np.random.default_rng(seed)
    inits = [_init("sx", np.float32(0.031)), _init("zx", np.int8(0)),
             _init("w_q", rng.integers(-127, 128, (M, C, 3, 3)).astype(np.int8)),
             _init("sw", (rng.random(M) * 0.01 + 0.002).astype(np.float32)),
             _init("zw", np.zeros(M, np.int8)),
             _init("b", rng.standard_normal(M).astype(np.float32)),
             _init("lo", np.float32(clip[0])), _init("hi", np.float32(clip[1])),
             _init("sy", np.float32(0.043)), _init("zy", np.int8(0))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xdq"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["w_q", "sw", "zw"], ["w"], name="dq_w", axis=0),
             helper.make_node("Conv", ["xdq", "w", "b"], ["conv"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["conv", "lo", "hi"], ["clip"], name="clip"),
             helper.make_node("QuantizeLinear", ["clip", "sy", "zy"], ["yq"], name="q_y"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["out"], name="dq_out")]
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, H])
    yo = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, M, H, H])
    return _model(nodes, [xi], [yo], inits), (1, C, H, H)


def random_input(shape, seed=1, scale=2.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def write_debugging_example(directory="."):
    """Write docs/debugging.md's ``model.onnx`` (qdq_conv_chain(seed=3, C=8, M=16, H=16)) and
    ``inputs.npz`` (x: random_input((1, 8, 16, 16), seed=103, scale=3.0)) into ``directory``;
    returns the two paths."""
    onnx = _onnx()[0]
    os.makedirs(directory, exist_ok=True)
    m, shape = qdq_conv_chain(seed=3, C=8, M=16, H=16)
    mp, ip = os.path.join(directory, "model.onnx"), os.path.join(directory, "inputs.npz")
    onnx.save(m, mp)
    np.savez(ip, x=random_input(shape, seed=103, scale=3.0))
    return mp, ip


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print("usage: python -m refquant.examples [DIR]\n\nWrites model.onnx and inputs.npz (the "
              "examples of docs/debugging.md) into DIR (default: the current folder).")
        return 0
    try:
        paths = write_debugging_example(argv[0] if argv else ".")
    except (ImportError, OSError) as exc:
        print(f"refquant.examples: {exc}", file=sys.stderr)
        return 2
    print("wrote " + " and ".join(paths))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
