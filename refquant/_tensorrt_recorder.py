"""Record TensorRT outputs for golden cases (``refquant golden record --engine tensorrt``).

TensorRT needs an NVIDIA GPU and cannot be installed where refquant is developed, so this module
is **untested in refquant's CI**: it is written from the TensorRT Python API documentation
(``tensorrt.Builder``, ``OnnxParser``, strongly typed networks, ``execute_async_v3``) and is
meant to run on a user's GPU host; the case files it writes come back into ``golden/`` and are
then checked everywhere by ``refquant conformance``.

How each case becomes a TensorRT network (explicit quantization; TensorRT only accepts
symmetric int8 / fp8 / int4 Q/DQ, so any non-zero zero point or uint8 tensor makes the case
"not applicable" with TensorRT's own message):

- QuantizeLinear: ``x -> Q(s) -> DQ(s) -> y`` (float output); the codes are recovered exactly as
  ``round(y / s)`` (int8/int4) or ``fp8(y / s)`` (float8), since ``y = fl32(q * s)``.
- DequantizeLinear: ``x`` as an int8 initializer ``-> DQ(s) -> y``.
- QLinearMatMul / QGemm / QLinearConv: ``x_f = fl32(x * s_x)`` as input, ``Q -> DQ`` on it,
  ``DQ(w)`` on the int8 weights, MatMul/Gemm/Conv (+ float bias ``B * s_x * s_w``), then
  ``Q(s_y) -> DQ(s_y)``; codes recovered as above.  TensorRT fuses this into one int8 kernel.
"""
from __future__ import annotations

import numpy as np

from .engines._errors import EngineUnsupported

_SYM_MSG = "TRT only supports symmetric quantization - zeroPt must be all zeros"


def _require_symmetric(case, names):
    for n in names:
        z = case.inputs.get(n)
        if z is not None and np.any(np.asarray(z).astype(np.float64) != 0):
            raise EngineUnsupported(f"{_SYM_MSG} ({n} = {np.asarray(z).ravel()[:4]})")
    for n, v in case.inputs.items():
        if np.asarray(v).dtype in (np.uint8, np.uint16, np.int16):
            raise EngineUnsupported(f"TensorRT has no {np.asarray(v).dtype} Q/DQ ({n})")


def _onnx_graph(case):
    """(onnx ModelProto, feeds, postprocess) for a case."""
    import onnx
    from onnx import helper, numpy_helper, TensorProto

    from ._dtypes import onnx_enum
    ins = case.inputs
    op = case.op
    out_type = TensorProto.FLOAT
    nodes, inits, graph_in, feeds = [], [], [], {}

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def qdq(src, scale_name, zp_name, out, axis=None):
        attrs = {} if axis is None else {"axis": axis}
        nodes.append(helper.make_node("QuantizeLinear", [src, scale_name, zp_name], [out + "_q"],
                                      **attrs))
        nodes.append(helper.make_node("DequantizeLinear", [out + "_q", scale_name, zp_name], [out],
                                      **attrs))
        return out

    if op == "QuantizeLinear":
        _require_symmetric(case, ["y_zero_point"])
        x = np.asarray(ins["x"])
        if x.dtype not in (np.float32, np.float16):
            raise EngineUnsupported(f"TensorRT Q input {x.dtype}: this recorder feeds float32/16")
        out_type = onnx_enum(x.dtype)
        graph_in.append(helper.make_tensor_value_info("x", out_type, x.shape))
        feeds["x"] = x
        s = const("s", ins["y_scale"])
        zp = ins.get("y_zero_point", np.int8(0))
        z = const("z", zp)
        axis = case.attributes.get("axis", 1)
        qdq("x", s, z, "y", axis=axis if np.ndim(ins["y_scale"]) else None)
        out_dt = np.asarray(zp).dtype
        scale = np.asarray(ins["y_scale"], np.float32)

        def post(y):
            from .reference.quantize import expand_qparam
            sb = expand_qparam(scale, x.shape, axis % max(x.ndim, 1), case.attributes.get(
                "block_size", 0), argname="s").astype(np.float64)
            v = y.astype(np.float64) / sb
            return np.rint(v).astype(out_dt) if out_dt.kind in "iu" else v.astype(out_dt)
    elif op == "DequantizeLinear":
        _require_symmetric(case, ["x_zero_point"])
        x = const("xq", ins["x"])
        s = const("s", ins["x_scale"])
        nodes.append(helper.make_node("DequantizeLinear", [x, s], ["y"],
                                      axis=case.attributes.get("axis", 1)))

        def post(y):
            return y
    elif op in ("QLinearMatMul", "QLinearConv", "QGemm"):
        names = {"QLinearMatMul": ("a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point"),
                 "QLinearConv": ("x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point"),
                 "QGemm": ("A", "a_scale", "a_zero_point", "B", "b_scale", "b_zero_point")}[op]
        xn, sxn, zxn, wn, swn, zwn = names
        if ins.get("y_scale") is None:
            raise EngineUnsupported("QGemm with float output: no trailing Q for TensorRT to fuse")
        _require_symmetric(case, [zxn, zwn, "y_zero_point"])
        sx = np.asarray(ins[sxn], np.float32)
        sw = np.asarray(ins[swn], np.float32)
        xf = (np.asarray(ins[xn]).astype(np.float32) * sx).astype(np.float32)
        graph_in.append(helper.make_tensor_value_info("xf", TensorProto.FLOAT, xf.shape))
        feeds["xf"] = xf
        qdq("xf", const("sx", sx), const("zx", np.int8(0)), "xd")
        w = np.asarray(ins[wn])
        w_axis = 0 if op == "QLinearConv" else 1
        nodes.append(helper.make_node("DequantizeLinear", [const("wq", w), const("sw", sw),
                                                           const("zw", np.zeros(sw.shape, np.int8))],
                                      ["wd"], **({"axis": w_axis} if sw.ndim else {})))
        bias = ins.get("B" if op == "QLinearConv" else "C")
        if op == "QLinearConv":
            attrs = {k: v for k, v in case.attributes.items() if k in (
                "auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")}
            inputs = ["xd", "wd"]
            if bias is not None:
                inputs.append(const("bf", (np.asarray(bias).astype(np.float64) * sx * sw)
                                    .astype(np.float32)))
            nodes.append(helper.make_node("Conv", inputs, ["acc"], **attrs))
        elif op == "QGemm":
            attrs = {k: v for k, v in case.attributes.items() if k in ("alpha", "transA", "transB")}
            inputs = ["xd", "wd"]
            if bias is not None:
                inputs.append(const("bf", (np.asarray(bias).astype(np.float64) * sx * sw)
                                    .astype(np.float32)))
            nodes.append(helper.make_node("Gemm", inputs, ["acc"], **attrs))
        else:
            nodes.append(helper.make_node("MatMul", ["xd", "wd"], ["acc"]))
        sy = np.asarray(ins["y_scale"], np.float32)
        qdq("acc", const("sy", sy), const("zy", np.int8(0)), "y")

        def post(y):
            return np.rint(y.astype(np.float64) / float(sy)).astype(np.int8)
    else:
        raise EngineUnsupported(f"TensorRT has no {op}")
    out = helper.make_tensor_value_info("y", out_type, None)
    graph = helper.make_graph(nodes, "case", graph_in, [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", max(case.opset, 13))])
    model.ir_version = 10
    return model, feeds, post


def run_case(case):  # pragma: no cover - needs an NVIDIA GPU and TensorRT
    """Build and run ``case`` on TensorRT; returns the output codes/values like other engines."""
    import tensorrt as trt
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("TensorRT recording needs a CUDA device")
    model, feeds, post = _onnx_graph(case)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        msgs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineUnsupported(f"TensorRT ONNX parser: {msgs}")
    config = builder.create_builder_config()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT failed to build the network")
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    ctx = engine.create_execution_context()
    bufs = {}
    for name, arr in feeds.items():
        t = torch.from_numpy(np.ascontiguousarray(arr)).cuda()
        bufs[name] = t
        ctx.set_input_shape(name, tuple(arr.shape))
        ctx.set_tensor_address(name, t.data_ptr())
    out_shape = tuple(ctx.get_tensor_shape("y"))
    y_dt = torch.float16 if engine.get_tensor_dtype("y") == trt.DataType.HALF else torch.float32
    y = torch.empty(out_shape, dtype=y_dt, device="cuda")
    ctx.set_tensor_address("y", y.data_ptr())
    stream = torch.cuda.Stream()
    ctx.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    return post(y.cpu().numpy())
