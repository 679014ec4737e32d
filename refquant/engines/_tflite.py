"""LiteRT (TFLite) int8 kernels through ai-edge-litert, no TensorFlow needed.

One-op ``.tflite`` models are built in memory with the flatbuffer schema that ai-edge-litert
ships (``ai_edge_litert/schema_py_generated.py``, object API) and run with
``ai_edge_litert.interpreter.Interpreter`` (1 thread) under one of three op resolvers:

* ``tflite-reference``  OpResolverType.BUILTIN_REF (tensorflow/lite/kernels/internal/reference/...)
* ``tflite-optimized``  OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES (optimized builtin kernels,
  ruy GEMM)
* ``tflite-xnnpack``    OpResolverType.AUTO (the default XNNPACK delegate); the adapter checks the
  op was actually delegated and refuses otherwise.

ONNX mapping
------------
* QuantizeLinear (float32 x, per-tensor, int8/uint8/int16 out: y_zero_point's type, else
  ``output_dtype``, else uint8) -> QUANTIZE; other output types raise EngineUnsupported.
* DequantizeLinear (int8/uint8/int16 x, per-tensor, float32 out) -> DEQUANTIZE.
* QLinearMatMul a[M, K] . b[K, N] -> FULLY_CONNECTED(input a, filter b^T [N, K] constant,
  no bias); per-channel when b_scale is 1-D (quantized_dimension 0).  QGemm (alpha 1, y_scale
  given) -> the same with bias C (int32, scale a_s*b_s).  int8 (symmetric weights) or uint8.
* QLinearConv (NCHW, group 1, pads all 0 -> VALID or SAME-equivalent pads -> SAME) -> CONV_2D on
  NHWC with filter [O, kh, kw, I]; bias B int32.
"""
from __future__ import annotations

import numpy as np

from ._errors import EngineUnsupported

PACKAGE = "ai_edge_litert"
RESOLVERS = {"tflite-reference": "BUILTIN_REF",
             "tflite-optimized": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
             "tflite-xnnpack": "AUTO"}


def version():
    from importlib.metadata import version as v
    return v("ai-edge-litert")


def _schema():
    from ai_edge_litert import schema_py_generated as S
    return S


def _ttype(dt):
    S = _schema()
    m = {np.dtype(np.float32): S.TensorType.FLOAT32, np.dtype(np.int8): S.TensorType.INT8,
         np.dtype(np.uint8): S.TensorType.UINT8, np.dtype(np.int16): S.TensorType.INT16,
         np.dtype(np.int32): S.TensorType.INT32}
    dt = np.dtype(dt)
    if dt not in m:
        raise EngineUnsupported(f"TFLite adapter: no tensor type for {dt}")
    return m[dt]


class _Builder:
    def __init__(self):
        S = _schema()
        self.S = S
        self.tensors, self.buffers, self.opcodes, self.ops = [], [S.BufferT()], [], []

    def tensor(self, name, shape, dtype, scale=None, zp=None, qdim=0, data=None):
        S = self.S
        t = S.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = _ttype(dtype)
        if data is not None:
            b = S.BufferT()
            b.data = list(np.ascontiguousarray(data, dtype=dtype).tobytes())
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        if scale is not None:
            q = S.QuantizationParametersT()
            q.scale = [float(v) for v in np.asarray(scale, np.float32).reshape(-1)]
            q.zeroPoint = [int(v) for v in np.asarray(zp, np.int64).reshape(-1)]
            q.quantizedDimension = qdim
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code, version, inputs, outputs, opt_type=0, opts=None):
        S = self.S
        oc = S.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = version
        self.opcodes.append(oc)
        o = S.OperatorT()
        o.opcodeIndex = len(self.opcodes) - 1
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        o.builtinOptionsType = opt_type
        o.builtinOptions = opts
        self.ops.append(o)

    def finish(self, inputs, outputs):
        import flatbuffers
        S = self.S
        sg = S.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators = self.tensors, list(inputs), list(outputs), self.ops
        sg.name = "main"
        m = S.ModelT()
        m.version = 3
        m.operatorCodes = self.opcodes
        m.subgraphs = [sg]
        m.buffers = self.buffers
        m.description = "refquant one-op model"
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


_FLT_MIN = np.float32(2.0 ** -126)


def _guard_scales(engine, builder):
    """XNNPACK (LiteRT 2.3.0) dies with SIGSEGV on a QUANTIZE whose scale is denormal
    (measured: 1e-38, 1e-40, 3e-45) and refuses denormal scales elsewhere; refuse them here."""
    if engine != "tflite-xnnpack":
        return
    for t in builder.tensors:
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale):
            sc = np.asarray(q.scale, np.float32)
            if np.any(np.abs(sc) < _FLT_MIN):
                raise EngineUnsupported("tflite-xnnpack: denormal scales crash (SIGSEGV) or are "
                                        "rejected by the XNNPACK delegate in LiteRT 2.3.0")


def _interpret(engine, model, feed):
    from ai_edge_litert import interpreter as I
    rtype = getattr(I.OpResolverType, RESOLVERS[engine])
    it = I.Interpreter(model_content=model, experimental_op_resolver_type=rtype, num_threads=1)
    try:
        it.allocate_tensors()   # the default (XNNPACK) delegate is applied lazily here
    except RuntimeError as e:
        raise EngineUnsupported(f"{engine}: the interpreter refused the model: {e}") from e
    if engine == "tflite-xnnpack":
        names = {d["op_name"] for d in it._get_ops_details()}
        if "DELEGATE" not in names:
            raise EngineUnsupported(f"XNNPACK did not take the op (ops after delegation: {sorted(names)})")
    it.set_tensor(it.get_input_details()[0]["index"], feed)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"]).copy()


def _contig(x):
    """x C-contiguous with its shape kept (np.ascontiguousarray makes a 0-d array shape (1,),
    which LiteRT refuses for a 0-d input tensor: "Dimension mismatch").  LiteRT runs 0-d
    QUANTIZE/DEQUANTIZE tensors as they are, on every resolver (XNNPACK delegates them)."""
    return np.ascontiguousarray(x).reshape(np.shape(x))


def _scalar(name, v):
    if np.ndim(v) != 0:
        raise EngineUnsupported(f"TFLite adapter: {name} must be a scalar (per-tensor)")
    return v


_Q_TYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))


def _name(dt):
    from .._dtypes import onnx_name
    try:
        return onnx_name(dt)
    except (TypeError, KeyError, ValueError):
        return str(dt)


def _requested_dtype(attributes):
    """The ``output_dtype`` attribute as a numpy dtype, None when absent (or 0 = UNDEFINED)."""
    od = (attributes or {}).get("output_dtype")
    if od is None or (isinstance(od, (int, np.integer)) and not isinstance(od, bool) and int(od) == 0):
        return None
    from .._dtypes import resolve_dtype
    try:
        return resolve_dtype(od, argname="output_dtype")
    except TypeError as e:
        raise EngineUnsupported(f"TFLite adapter: {e}") from None


def quantize(engine, inputs, attributes):
    S = _schema()
    x = inputs["x"]
    s = _scalar("y_scale", inputs["y_scale"])
    zp = inputs.get("y_zero_point")
    odt = _requested_dtype(attributes)
    if zp is None:
        odt = np.dtype(np.uint8) if odt is None else odt
        if odt not in _Q_TYPES:
            raise EngineUnsupported(f"TFLite QUANTIZE: output_dtype {_name(odt)} is not computable "
                                    f"(LiteRT quantizes to int8, uint8 or int16)")
        zp = np.zeros((), odt)
    else:
        zp = np.asarray(zp)
        if odt is not None and odt != zp.dtype:
            raise EngineUnsupported(f"TFLite QUANTIZE: output_dtype {_name(odt)} differs from "
                                    f"y_zero_point's type {_name(zp.dtype)}")
        if zp.dtype not in _Q_TYPES:
            raise EngineUnsupported(f"TFLite QUANTIZE: output type {_name(zp.dtype)} is not computable "
                                    f"(LiteRT quantizes to int8, uint8 or int16)")
    _scalar("y_zero_point", zp)
    if x.dtype != np.float32 or s.dtype != np.float32:
        raise EngineUnsupported("TFLite QUANTIZE: float32 input and scale")
    return _unary(engine, x, (np.float32,), (zp.dtype, s, zp), S.BuiltinOperator.QUANTIZE,
                  2 if zp.dtype != np.int16 else 4, S.BuiltinOptions.QuantizeOptions, S.QuantizeOptionsT())


def _unary(engine, x, x_type, y_type, opcode, version, options_type, options):
    """One elementwise op x -> y (QUANTIZE / DEQUANTIZE): x_type / y_type are the tensors'
    (dtype[, scale, zero point]) arguments of _Builder.tensor."""
    b = _Builder()
    ti = b.tensor("x", x.shape, *x_type)
    to = b.tensor("y", x.shape, *y_type)
    b.op(opcode, version, [ti], [to], options_type, options)
    _guard_scales(engine, b)
    return _interpret(engine, b.finish([ti], [to]), _contig(x))


def dequantize(engine, inputs, attributes):
    S = _schema()
    x = inputs["x"]
    s = _scalar("x_scale", inputs["x_scale"])
    zp = inputs.get("x_zero_point")
    zp = np.zeros((), x.dtype) if zp is None else zp
    _scalar("x_zero_point", zp)
    if s.dtype != np.float32:
        raise EngineUnsupported("TFLite DEQUANTIZE: float32 scale")
    odt = _requested_dtype(attributes)
    if odt is not None and odt != np.float32:
        raise EngineUnsupported(f"TFLite DEQUANTIZE: output_dtype {_name(odt)} is not computable "
                                f"(LiteRT dequantizes to float32)")
    if x.dtype not in _Q_TYPES:
        raise EngineUnsupported(f"TFLite DEQUANTIZE: input type {_name(x.dtype)} is not supported "
                                f"(int8, uint8 or int16)")
    return _unary(engine, x, (x.dtype, s, zp), (np.float32,), S.BuiltinOperator.DEQUANTIZE,
                  2 if x.dtype != np.int16 else 4, S.BuiltinOptions.DequantizeOptions,
                  S.DequantizeOptionsT())


def _fc(engine, a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp, C=None):
    S = _schema()
    for n, v in (("a_scale", a_s), ("a_zero_point", a_zp), ("y_scale", y_s), ("y_zero_point", y_zp)):
        _scalar(n, v)
    if a.ndim != 2 or b.ndim != 2:
        raise EngineUnsupported("TFLite FULLY_CONNECTED adapter: 2-D a and b")
    if not (a.dtype == b.dtype == y_zp.dtype) or a.dtype not in (np.int8, np.uint8):
        raise EngineUnsupported("TFLite FULLY_CONNECTED adapter: a, b, y all int8 or all uint8")
    M, K = a.shape
    N = b.shape[1]
    if K == 0 and M * N:
        # measured (LiteRT 2.3.0, reference and optimized kernels): the output is left unwritten
        # (zeros) instead of y_zero_point; XNNPACK does not take K = 0
        raise EngineUnsupported("TFLite FULLY_CONNECTED with K = 0 (an empty reduction) leaves the output "
                                "unwritten instead of y_zero_point")
    if b_zp is None:
        b_zp = np.zeros((), b.dtype)
    per_ch = np.ndim(b_s) == 1
    bs = np.asarray(b_s, np.float32)
    bzp = np.broadcast_to(np.asarray(b_zp), bs.shape)
    bld = _Builder()
    ti = bld.tensor("a", (M, K), a.dtype, a_s, a_zp)
    tw = bld.tensor("w", (N, K), b.dtype, bs, bzp, 0, data=np.ascontiguousarray(b.T))
    ins = [ti, tw]
    if C is not None:
        Cb = np.broadcast_to(np.asarray(C, np.int32).reshape(-1), (N,))
        bias_s = (np.float32(a_s) * bs).astype(np.float32)
        ins.append(bld.tensor("bias", (N,), np.int32, bias_s, np.zeros(np.shape(bias_s), np.int64), 0,
                              data=np.ascontiguousarray(Cb)))
    else:
        ins.append(-1)
    to = bld.tensor("y", (M, N), y_zp.dtype, y_s, y_zp)
    opts = S.FullyConnectedOptionsT()
    opts.fusedActivationFunction = S.ActivationFunctionType.NONE
    bld.op(S.BuiltinOperator.FULLY_CONNECTED, 12 if per_ch else 4, ins, [to],
           S.BuiltinOptions.FullyConnectedOptions, opts)
    _guard_scales(engine, bld)
    return _interpret(engine, bld.finish([ti], [to]), np.ascontiguousarray(a))


def qlinear_matmul(engine, inputs, attributes):
    i = inputs
    return _fc(engine, i["a"], i["a_scale"], i["a_zero_point"], i["b"], i["b_scale"], i.get("b_zero_point"),
               i["y_scale"], i["y_zero_point"])


def qgemm(engine, inputs, attributes):
    i = inputs
    if float(attributes.get("alpha", 1.0)) != 1.0:
        raise EngineUnsupported("TFLite FULLY_CONNECTED has no alpha")
    if i.get("y_scale") is None or i.get("y_zero_point") is None:
        raise EngineUnsupported("TFLite FULLY_CONNECTED adapter: QGemm needs y_scale and y_zero_point")
    A, B = i["A"], i["B"]
    if attributes.get("transA", 0):
        A = A.T
    if attributes.get("transB", 0):
        B = B.T
    return _fc(engine, A, i["a_scale"], i["a_zero_point"], B, i["b_scale"], i.get("b_zero_point"),
               i["y_scale"], i["y_zero_point"], i.get("C"))


def qlinear_conv(engine, inputs, attributes):
    S = _schema()
    i = inputs
    x, w = i["x"], i["w"]
    for n in ("x_scale", "x_zero_point", "y_scale", "y_zero_point"):
        _scalar(n, i[n])
    if x.ndim != 4:
        raise EngineUnsupported("TFLite CONV_2D adapter: 2-D convolution (4-D x)")
    if int(attributes.get("group", 1)) != 1:
        raise EngineUnsupported("TFLite CONV_2D adapter: group 1 only")
    if not (x.dtype == w.dtype == i["y_zero_point"].dtype) or x.dtype not in (np.int8, np.uint8):
        raise EngineUnsupported("TFLite CONV_2D adapter: x, w, y all int8 or all uint8")
    N, Cin, H, W = x.shape
    O, _, kh, kw = w.shape
    strides = list(attributes.get("strides") or [1, 1])
    dil = list(attributes.get("dilations") or [1, 1])
    pads = list(attributes.get("pads") or [0, 0, 0, 0])
    if attributes.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise EngineUnsupported("TFLite CONV_2D adapter: explicit pads only")
    if not any(pads):
        padding = S.Padding.VALID
        Ho = (H - (kh - 1) * dil[0] - 1) // strides[0] + 1
        Wo = (W - (kw - 1) * dil[1] - 1) // strides[1] + 1
    else:
        Ho, Wo = -(-H // strides[0]), -(-W // strides[1])
        def same(n, k, s, d, o):
            tot = max((o - 1) * s + (k - 1) * d + 1 - n, 0)
            return tot // 2, tot - tot // 2
        (pt, pb), (pl, pr) = same(H, kh, strides[0], dil[0], Ho), same(W, kw, strides[1], dil[1], Wo)
        if [pt, pl, pb, pr] != pads:
            raise EngineUnsupported(f"TFLite CONV_2D: pads {pads} are neither VALID nor SAME")
        padding = S.Padding.SAME
    w_zp = i.get("w_zero_point")
    ws = np.asarray(i["w_scale"], np.float32)
    wzp = np.broadcast_to(np.asarray(0 if w_zp is None else w_zp), ws.shape)
    bld = _Builder()
    ti = bld.tensor("x", (N, H, W, Cin), x.dtype, i["x_scale"], i["x_zero_point"])
    tw = bld.tensor("w", (O, kh, kw, Cin), w.dtype, ws, wzp, 0,
                    data=np.ascontiguousarray(w.transpose(0, 2, 3, 1)))
    Bv = i.get("B")
    if Bv is None:
        Bv = np.zeros(O, np.int32)
    bias_s = (np.float32(i["x_scale"]) * ws).astype(np.float32)
    tb = bld.tensor("bias", (O,), np.int32, bias_s, np.zeros(np.shape(bias_s), np.int64), 0,
                    data=np.ascontiguousarray(np.broadcast_to(np.asarray(Bv, np.int32), (O,))))
    to = bld.tensor("y", (N, Ho, Wo, O), i["y_zero_point"].dtype, i["y_scale"], i["y_zero_point"])
    opts = S.Conv2DOptionsT()
    opts.padding = padding
    opts.strideH, opts.strideW = int(strides[0]), int(strides[1])
    opts.dilationHFactor, opts.dilationWFactor = int(dil[0]), int(dil[1])
    opts.fusedActivationFunction = S.ActivationFunctionType.NONE
    bld.op(S.BuiltinOperator.CONV_2D, 3, [ti, tw, tb], [to], S.BuiltinOptions.Conv2DOptions, opts)
    _guard_scales(engine, bld)
    y = _interpret(engine, bld.finish([ti], [to]), np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    return y.transpose(0, 3, 1, 2).copy()
