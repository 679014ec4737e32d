"""Single-node ONNX models run by onnxruntime (graph optimizations off) and onnx.reference.

Helper for the GEMM / conv / requant tests.  ``run_ort(op, inputs, attrs)`` and
``run_onnx_ref(...)`` take the inputs as an ordered list (None = omitted optional input).
"""
from __future__ import annotations

import numpy as np


def _tp(dtype):
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def make_model(op, inputs, attrs=None, *, domain="", opset=None, output_dtype=None, input_names=None):
    """A model with one node ``op`` whose inputs are graph inputs (omitted ones as '')."""
    import onnx
    from onnx import helper
    names = []
    graph_inputs = []
    for i, x in enumerate(inputs):
        if x is None:
            names.append("")
            continue
        n = (input_names[i] if input_names else f"in{i}")
        names.append(n)
        arr = np.asarray(x)
        graph_inputs.append(helper.make_tensor_value_info(n, _tp(arr.dtype), list(arr.shape)))
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, ["y"], domain=domain, **(attrs or {}))
    if output_dtype is not None:
        out = helper.make_tensor_value_info("y", _tp(output_dtype), None)
    else:
        out = onnx.ValueInfoProto(name="y")
    graph = helper.make_graph([node], "g", graph_inputs, [out])
    opsets = [helper.make_opsetid("", opset or 21)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    return model


def feeds(inputs):
    return {f"in{i}": np.asarray(x) for i, x in enumerate(inputs) if x is not None}


def run_ort(op, inputs, attrs=None, *, domain="", opset=None, output_dtype=None):
    import onnxruntime as ort
    model = make_model(op, inputs, attrs, domain=domain, opset=opset, output_dtype=output_dtype)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds(inputs))[0]


def run_onnx_ref(op, inputs, attrs=None, *, domain="", opset=None, output_dtype=None):
    from onnx.reference import ReferenceEvaluator
    model = make_model(op, inputs, attrs, domain=domain, opset=opset, output_dtype=output_dtype)
    return ReferenceEvaluator(model).run(None, feeds(inputs))[0]
