"""Build a one-node ONNX model from ONNX-style inputs and attributes (shared by the
onnxruntime, onnx-reference and OpenVINO adapters)."""
from __future__ import annotations

import numpy as np

from .._dtypes import onnx_enum, resolve_dtype

# ONNX input names, in node order, of every op the adapters know.
OP_INPUTS = {
    "QuantizeLinear": ("x", "y_scale", "y_zero_point"),
    "DequantizeLinear": ("x", "x_scale", "x_zero_point"),
    "DynamicQuantizeLinear": ("x",),
    "MatMulInteger": ("A", "B", "a_zero_point", "b_zero_point"),
    "QLinearMatMul": ("a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point",
                      "y_scale", "y_zero_point"),
    "ConvInteger": ("x", "w", "x_zero_point", "w_zero_point"),
    "QLinearConv": ("x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point",
                    "y_scale", "y_zero_point", "B"),
    "QGemm": ("A", "a_scale", "a_zero_point", "B", "b_scale", "b_zero_point", "C",
              "y_scale", "y_zero_point"),
}
OP_OUTPUTS = {"DynamicQuantizeLinear": ("y", "y_scale", "y_zero_point")}
OP_DOMAIN = {"QGemm": "com.microsoft"}
DEFAULT_OPSET = 21  # opset of the built model when the caller gives none


def check_inputs(op: str, inputs: dict) -> dict:
    """Validate the input dict of ``op`` and convert every value to an ndarray."""
    if op not in OP_INPUTS:
        raise ValueError(f"op: unknown op {op!r}; known: {', '.join(OP_INPUTS)}")
    names = OP_INPUTS[op]
    extra = set(inputs) - set(names)
    if extra:
        raise ValueError(f"inputs: {op} has no input(s) {sorted(extra)}; its inputs are {names}")
    out = {}
    for n in names:
        v = inputs.get(n)
        if v is not None:
            out[n] = np.asarray(v)
    if names[0] not in out:
        raise ValueError(f"inputs: {op} needs input {names[0]!r}")
    return out


def output_dtypes(op: str, inputs: dict, attributes: dict) -> list:
    """numpy dtypes of the op's outputs."""
    if op == "QuantizeLinear":
        od = attributes.get("output_dtype")
        if od:
            return [resolve_dtype(od)]
        zp = inputs.get("y_zero_point")
        return [zp.dtype if zp is not None else np.dtype(np.uint8)]
    if op == "DequantizeLinear":
        od = attributes.get("output_dtype")
        return [resolve_dtype(od) if od else inputs["x_scale"].dtype]
    if op == "DynamicQuantizeLinear":
        return [np.dtype(np.uint8), np.dtype(np.float32), np.dtype(np.uint8)]
    if op in ("MatMulInteger", "ConvInteger"):
        return [np.dtype(np.int32)]
    if op in ("QLinearMatMul", "QLinearConv"):
        return [inputs["y_zero_point"].dtype]
    if op == "QGemm":
        # onnxruntime's QGemm: a quantized output needs y_zero_point (its type); without it the
        # output is float32, scaled by alpha*a_scale*b_scale (/ y_scale when y_scale is given)
        zp = inputs.get("y_zero_point")
        return [zp.dtype if zp is not None else np.dtype(np.float32)]
    raise ValueError(op)


def _check_opset(op, opset):
    """ValueError when the ONNX op does not exist at ``opset`` (as the reference says): an
    engine would otherwise fail its own way (onnxruntime: INVALID_GRAPH, onnx.reference: "No
    implementation") or, like OpenVINO, run an op the model's opset does not have."""
    from onnx import defs
    try:
        defs.get_schema(op, opset, "")
        return
    except defs.SchemaError:
        pass
    for v in range(opset + 1, defs.onnx_opset_version() + 1):
        try:
            first = defs.get_schema(op, v, "").since_version
        except defs.SchemaError:
            continue
        raise ValueError(f"opset: {op} exists from opset {first} (opset={opset})")
    raise ValueError(f"opset: ONNX has no {op} at opset {opset}")


def _tensor(name, arr):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(arr), name)


def build_model(op: str, inputs: dict, attributes: dict | None = None, opset: int | None = None,
                *, dynamic=("x", "A", "a"), ir_version=None):
    """A ModelProto with one ``op`` node.  Inputs named in ``dynamic`` become graph inputs
    (fed at run time); the others are initializers (constants).  Returns (model, feeds)."""
    import onnx
    from onnx import helper

    attributes = dict(attributes or {})
    inputs = check_inputs(op, inputs)
    names = OP_INPUTS[op]
    # node input list, with "" for absent optional inputs (trailing ones dropped)
    node_in = [n if n in inputs else "" for n in names]
    while node_in and node_in[-1] == "":
        node_in.pop()
    graph_inputs, inits, feeds = [], [], {}
    for n in node_in:
        if not n:
            continue
        arr = inputs[n]
        if n in dynamic:
            graph_inputs.append(helper.make_tensor_value_info(n, onnx_enum(arr.dtype), arr.shape))
            feeds[n] = arr
        else:
            inits.append(_tensor(n, arr))
    outs = OP_OUTPUTS.get(op, ("y",))
    odt = output_dtypes(op, inputs, attributes)
    graph_outputs = [helper.make_tensor_value_info(o, onnx_enum(d), None) for o, d in zip(outs, odt)]
    attrs = {}
    for k, v in attributes.items():
        if v is None:
            continue
        if k == "output_dtype":
            v = onnx_enum(resolve_dtype(v))
        if k == "precision":
            v = onnx_enum(resolve_dtype(v))
        attrs[k] = v
    domain = OP_DOMAIN.get(op, "")
    node = helper.make_node(op, node_in, list(outs), domain=domain, **attrs)
    graph = helper.make_graph([node], f"refquant_{op}", graph_inputs, graph_outputs, initializer=inits)
    if opset is None:
        opset = DEFAULT_OPSET
    if not domain:
        _check_opset(op, int(opset))
    imports = [helper.make_opsetid("", opset)]
    if domain:
        imports.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = ir_version or min(onnx.IR_VERSION, 11)
    return model, feeds
