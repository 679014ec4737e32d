"""Single-node ONNX models run on onnxruntime and onnx.reference (test helper)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

from refquant._dtypes import onnx_enum


def make_model(op, inputs, attrs, opset, *, const=(), domain="", out_dtypes=None, n_out=1):
    """inputs: list of (name, array or None); arrays named in ``const`` become initializers."""
    nodes_in, graph_in, inits, feeds = [], [], [], {}
    for name, arr in inputs:
        if arr is None:
            nodes_in.append("")
            continue
        nodes_in.append(name)
        arr = np.asarray(arr)
        if name in const:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            graph_in.append(helper.make_tensor_value_info(name, onnx_enum(arr.dtype), arr.shape))
            feeds[name] = arr
    while nodes_in and nodes_in[-1] == "":
        nodes_in.pop()
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, nodes_in, outs, domain=domain, **{k: v for k, v in attrs.items()
                                                                   if v is not None})
    if out_dtypes is None:
        out_dtypes = [None] * n_out
    graph_out = [helper.make_tensor_value_info(o, onnx_enum(t) if t is not None else
                                               TensorProto.UNDEFINED, None)
                 for o, t in zip(outs, out_dtypes)]
    graph = helper.make_graph([node], "g", graph_in, graph_out, initializer=inits)
    imports = [helper.make_opsetid("", opset)]
    if domain:
        imports.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 10 if opset <= 21 else 11
    return model, feeds


def run_ort(model, feeds):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_onnx_ref(model, feeds):
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, feeds)


def qdq_conv_model(w, *, C, x_scale, x_zp, y_scale, y_zp, group=1, opset=17):
    """x -> Q/DQ -> Conv(3x3, pad 1, DQ(int8 w, scale 0.01, zp 0)) -> Q/DQ -> y, for an input
    (1, C, 6, 6): x_zp / y_zp numpy scalars of the activation type (shared by the compare and
    lint tests of the int16 pair saturation)."""
    inits = [numpy_helper.from_array(np.array(x_scale, np.float32), "sx"),
             numpy_helper.from_array(np.asarray(x_zp), "zx"),
             numpy_helper.from_array(np.asarray(w, np.int8), "wq"),
             numpy_helper.from_array(np.array(0.01, np.float32), "sw"),
             numpy_helper.from_array(np.array(0, np.int8), "zw"),
             numpy_helper.from_array(np.array(y_scale, np.float32), "sy"),
             numpy_helper.from_array(np.asarray(y_zp), "zy")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1], group=group),
             helper.make_node("QuantizeLinear", ["c", "sy", "zy"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
