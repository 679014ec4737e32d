"""Whole ONNX models on the reference: every intermediate tensor, as written or as an engine fuses it.

    run_model(model, inputs, *, profile="onnx", fuse=None) -> {tensor name: value}
    plan_fusions(model, fuse) -> [Fusion, ...]            what a fusion mode rewrites (and which
                                                          tensors disappear inside the fused kernels)

Semantics block
===============

Execution.  The graph runs node by node in topological order on ``onnx.reference``'s
``ReferenceEvaluator`` with the quantized ops replaced by refquant's numpy reference under
``profile``:

- QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, QLinearMatMul,
  ConvInteger, QLinearConv, com.microsoft QGemm, com.microsoft MatMulIntegerToFloat and the
  fused kernels below: ``refquant.<op>`` (``refquant._oprun.run_reference(kernels=True)``: a
  fast kernel where one covers the call, which returns ``refquant.reference.<op>``'s bits, else
  the reference itself; ``run_model(kernels=False)`` or REFQUANT_DISABLE_FAST=1 runs the
  reference alone) with the node's explicit attributes and the model's opset (the profile's
  arithmetic: rounding, division, requantization, int16 pair saturation, symmetric-only
  rejection with the engine's message).
- every other op (Conv, MatMul, Gemm, Add, Relu, Clip, pools, Reshape, Softmax, ...):
  ``onnx.reference``'s numpy implementation, in the tensor's dtype (float32 stays float32).  A
  float Conv/MatMul sums in numpy's order, not an engine's: float tensors can differ from an
  engine by a few ulps ("float accumulation order"), and a QuantizeLinear fed by such a tensor
  can flip by one step where its input sits within those ulps of a rounding boundary.

``fuse`` chooses the graph an engine actually executes:

``None``
    the graph as written: every Q and DQ is materialized and the ops between them run in float
    (float simulation; ORT with ``ORT_DISABLE_ALL``).
``"onnxruntime-basic"``  (ORT ``ORT_ENABLE_BASIC``, onnxruntime 1.32)
    ORT's level-1 QDQ rewrites, in its order:

    - ``QDQPropagationTransformer`` across MaxPool / Reshape / Transpose / Squeeze / Unsqueeze /
      Slice (the opset versions ORT accepts; Q/DQ with constant scalar scale and zero point).
      Q backward: a Q whose input comes through such ops (each the only consumer of its input;
      a Shape/Size of a statically shaped tensor does not count, ORT folds it first) from a
      producer that is not a DQ gets a Q/DQ pair with its parameters before each of them -- the
      float value is quantized *before* the Reshape, which changes what the Reshape sees.  DQ
      forward: a DQ with one consumer gets a pair (its parameters) after each such op that
      follows it, one DQ per consumer, unless a consumer is a Q (exact).  New tensors as ORT
      names them: ``<t>_pre_q`` (the producer's renamed output), ``<t>_q_to_dq``,
      ``<t>_post_dq[k]``.
    - ``WeightBiasQuantization``: a Conv / ConvTranspose / Gemm whose input 0 comes from a
      per-tensor DQ and whose output reaches a Q through single consumers (Relu/Clip allowed)
      gets a float32 weight initializer quantized to int8 per tensor (ORT's
      ``GetQuantizationParameter``: range [min(w, 0), max(w, 0)], ``s = fl32(range / 255)``,
      ``zp = RNE(clamp(fl32(-128 - min/s)))``; then Q -> DQ: ``<node>_weight_dq``) and a 1-D
      constant float bias replaced by ``DQ(b_q, s_b)`` with ``s_b = fl32(s_x * s_w)``,
      ``b_q = int32(RNE(fl32(b / s_b)))`` (out-of-range casts give INT32_MIN, x86 cvttss2si):
      ``<node>_bias_dq``.  A quantized weight needs a per-tensor scale or a 1-D one on axis 0
      (Conv/ConvTranspose) / ``1 - transB`` (Gemm), and a constant bias.
``"onnxruntime"``  (``ORT_ENABLE_EXTENDED`` / ``ORT_ENABLE_ALL``)
    the level-1 rewrites above, then ORT's QDQ node-unit fusions (``QDQSelectorActionTransformer``):

    - DQ(x), DQ(w)[, DQ(b int32)] -> Conv [-> Relu/Clip made redundant by Q] -> Q
      => ``QLinearConv`` (8-bit only; x and y of the same type; int8 x needs int8 w;
      w per tensor or per channel on axis 0);
    - DQ(a), DQ(b) -> MatMul [-> redundant Relu/Clip] -> Q => ``QLinearMatMul``;
    - DQ(a), DQ(b) -> MatMul (no Q) => com.microsoft ``MatMulIntegerToFloat``:
      ``fl32(fl32(acc) * fl32(s_a * s_b))``;
    - DQ(A), DQ(B)[, DQ(C int32)] -> Gemm [-> redundant Relu/Clip] [-> Q] => com.microsoft
      ``QGemm`` (quantized or float output; beta must be 1).

    - DQ inputs -> Add / Mul / GlobalAveragePool / AveragePool / Sigmoid / LeakyRelu / Concat /
      Softmax -> Q => com.microsoft ``QLinear<op>`` (every input and the output of one 8-bit type,
      per-tensor constant scales; QLinearSoftmax gets ``opset`` = the Softmax's SinceVersion and
      the schema's default axis written out), computed with ORT's own kernels' arithmetic (see the
      contrib ops below);
    - x86 ``QDQS8ToU8Transformer``: an int8 Q -> DQ pair (the Q feeding one DQ that feeds at most
      one node) runs as uint8 with zero point + 128; int8 Conv/MatMul/Gemm units fuse only once
      converted, and the fused kernels compute in uint8 (same accumulator; it matters for int16
      pair saturation and QLinearAdd's rounding).  Tensor names and types stay those of the model.

    A Relu is redundant when Q's zero point is the type's minimum; a Clip when
    ``rint(fl32(lo / s)) + zp <= qmin`` and ``rint(fl32(hi / s)) + zp >= qmax`` (ORT
    ``IsClipMadeRedundantByQ``).  A non-redundant Relu/Clip blocks the fusion (ORT then runs a
    float FusedConv, numerically Conv then the activation).  Inside a fused unit the float
    tensors (the DQ outputs used only by it, the Conv/MatMul/Gemm output, the Relu/Clip output)
    disappear; the unit's output keeps the Q's output name.  The requantization is then the
    profile's QLinear arithmetic (acc + int32 bias, one fp32 multiplier): it differs from the
    float simulation by one step on near-ties (onnxruntime#32132).  ORT_ENABLE_ALL additionally
    changes layouts (NHWC QLinearConv, NhwcMaxPool, Transposes): the same arithmetic, but the
    tensors between the layout changes get new names.
``"tensorrt"``
    TensorRT explicit-quantization fusion (TENSORRT.md 2.2): DQ(x), DQ(w) -> Conv / MatMul /
    Gemm (+ float bias: the Conv/Gemm bias input, or an Add of a constant after a MatMul)
    [-> Relu | Clip] -> Q becomes one int8 kernel: int32 accumulation, then the profile's
    epilogue (``tensorrt`` profile: ``v = fl32(fl32(acc) * M[c]) + fl32(b[c] / s_y)`` with
    ``M[c] = fl32(fl32(s_x*s_w[c]) * fl32(1/s_y))``, RNE, saturation to int8), the activation
    applied in that epilogue (Relu: ``max(q, zp)``; Clip: clamp to ``RNE(fl32(lo/s_y))+zp``,
    ``RNE(fl32(hi/s_y))+zp``, the same integers as clamping v before rounding because RNE is
    monotone).  Without a trailing Q the kernel writes float:
    ``act(fl32(fl32(fl32(acc) * fl32(s_x*s_w[c])) + b[c]))`` (multiply then add; TensorRT's FMA
    is not modelled).  Use it with ``profile="tensorrt"`` (or a ``tensorrt_profile(...)``): the
    standalone Q/DQ then follow TensorRT's rules too (reciprocal multiply, zero points must be
    zero -- rejected with the parser's own message).  Unfused layers run as written in float32
    (TF32 not modelled).

ONNX Runtime contrib ops (com.microsoft; in QOperator models and produced by the fusions):
QGemm and MatMulIntegerToFloat on the reference (profile); QLinearAdd with MLAS's AVX2 FMA formula,
QLinearGlobalAveragePool with its integer-sum requantization and QLinearAveragePool with ORT's
float window sum and ``nearbyintf(sum / cnt / sy + zy)`` (all bit-exact against onnxruntime 1.32
on this CPU); QLinearSigmoid / QLinearLeakyRelu as ORT's lookup tables Q(f(DQ(code))) (exact);
QLinearSoftmax with ORT's float exp table, float row sum and double ``T * floorf(1/sy) / sum``
(bit-exact); QLinearConcat as Q(concat(DQ(x))) in float32 and QLinearMul with MLAS's SSE2 formula
(approximate: see docs/debugging.md for the measured counts).  Softmax / LogSoftmax in float
follow their opset's semantics (before opset 13 the rows are flattened from ``axis``, default 1;
onnx.reference applies the opset-13 semantics everywhere).  Under an onnxruntime profile, Resize
(linear, 4-D NCHW, opset >= 11) on uint8/int8 runs ORT's integer-typed kernel: float weights
``fl32(dx*dy)``, the four-term float sum, truncation toward zero (other Resize cases: onnx.reference).

Returned values: numpy arrays (integer codes for quantized tensors, unpacked ml_dtypes for
4-bit and float8 types), one per node output of the executed graph, keyed by tensor name.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["run_model", "plan_fusions", "Fusion", "FUSE_MODES", "load_model", "topological_tensors"]

FUSE_MODES = (None, "onnxruntime-basic", "onnxruntime", "tensorrt")
_FUSE_ALIASES = {"onnxruntime-extended": "onnxruntime", "onnxruntime-all": "onnxruntime",
                 "ort": "onnxruntime", "onnxruntime-disabled": None, "none": None}

def _onnx_domain(n):
    """An ONNX-domain node, or com.microsoft's QuantizeLinear / DequantizeLinear (what
    onnxruntime.quantization writes with UseQDQContribOps, and for 16-bit / 4-bit types before
    opset 21): ORT's QDQ selectors match both alike (QDQ::MatchQNode / MatchDQNode)."""
    return n.domain in ("", "ai.onnx") or (
        n.domain == "com.microsoft" and n.op_type in ("QuantizeLinear", "DequantizeLinear"))


# ops refquant runs (domain, op_type) -> refquant op name
_QOPS = {
    ("", "QuantizeLinear"): "QuantizeLinear",
    ("", "DequantizeLinear"): "DequantizeLinear",
    ("", "DynamicQuantizeLinear"): "DynamicQuantizeLinear",
    ("", "MatMulInteger"): "MatMulInteger",
    ("", "QLinearMatMul"): "QLinearMatMul",
    ("", "ConvInteger"): "ConvInteger",
    ("", "QLinearConv"): "QLinearConv",
    ("com.microsoft", "QGemm"): "QGemm",
    ("com.microsoft", "QuantizeLinear"): "QuantizeLinear",
    ("com.microsoft", "DequantizeLinear"): "DequantizeLinear",
}
_DOMAIN = "refquant.fused"
_EIGHT_BIT = (np.dtype(np.int8), np.dtype(np.uint8))


@dataclass(frozen=True)
class Fusion:
    """One rewrite a fusion mode applies.

    kind     "bias_quantization", "QLinearConv", "QLinearMatMul", "QGemm",
             "MatMulIntegerToFloat", "qdq_propagation" (ORT's QDQ propagation: a Q/DQ pair
             repeated across MaxPool, Reshape and the other ops of _CAN_PROPAGATE),
             "weight_quantization" (ORT's WeightBiasQuantization: a float Conv / Gemm weight
             after a quantized input gets a Q/DQ pair of its own),
             "tensorrt_conv", "tensorrt_gemm", "tensorrt_matmul"
    nodes    labels of the original nodes the rewrite replaces or changes (name, or
             ``<op_type>_<index>`` for unnamed nodes)
    output   the tensor the fused kernel writes (for bias_quantization: the new bias tensor)
    removed  tensors of the original graph that no longer exist
    detail   a one-line human description
    """
    kind: str
    nodes: tuple
    output: str
    removed: tuple = ()
    detail: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- loading

def load_model(model):
    """A ModelProto from a ModelProto, a path, or serialized bytes."""
    import onnx
    if isinstance(model, onnx.ModelProto):
        from onnx.external_data_helper import uses_external_data
        if any(uses_external_data(t) and not t.raw_data for t in model.graph.initializer):
            raise ValueError("model: its external data is not loaded (onnx.load(..., load_external_data="
                             "False)); pass the model's path, or load it with load_external_data=True")
        return model
    if isinstance(model, (bytes, bytearray)):
        return _parsed(lambda: onnx.load_from_string(bytes(model)), "model: the bytes")
    if isinstance(model, (str, os.PathLike)):
        if not os.path.exists(model):
            raise ValueError(f"model: file {os.fspath(model)!r} does not exist")
        if os.path.isdir(model):
            raise ValueError(f"model: {os.fspath(model)!r} is a directory, not an ONNX model file")
        return _parsed(lambda: onnx.load(os.fspath(model)), f"model: {os.fspath(model)!r}")
    raise TypeError(f"model: expected an onnx.ModelProto, a path or bytes, got {type(model).__name__}")


def _parsed(load, what):
    """``load()`` with a parse failure (or an empty message: protobuf parses some junk, and an
    empty file, as a ModelProto with nothing set) turned into one ValueError line."""
    try:
        m = load()
    except Exception as exc:  # DecodeError, RuntimeError, ... from protobuf / onnx
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{what} is not an ONNX model ({type(exc).__name__}: {msg[:160]})") from None
    if not m.HasField("graph") and not len(m.opset_import) and not m.ir_version:
        raise ValueError(f"{what} is not an ONNX model (no graph, opset or IR version)")
    return m


def _normalize_fuse(fuse):
    if isinstance(fuse, str) and fuse.lower() in _FUSE_ALIASES:
        return _FUSE_ALIASES[fuse.lower()]
    if fuse not in FUSE_MODES:
        raise ValueError(f"fuse: expected one of {FUSE_MODES} (aliases {sorted(_FUSE_ALIASES)}), "
                         f"got {fuse!r}")
    return fuse


def _opsets(model):
    return {o.domain if o.domain != "ai.onnx" else "": o.version for o in model.opset_import}


def _label(node, i):
    return node.name or f"{node.op_type}_{i}"


def _attrs(node):
    from onnx import helper
    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        out[a.name] = v
    return out


def _const_value(node):
    """Value of a Constant node (None for the forms not handled)."""
    from onnx import numpy_helper
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name == "value_float":
            return np.array(a.f, np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), np.float32)
        if a.name == "value_int":
            return np.array(a.i, np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), np.int64)
    return None


class _Graph:
    """Producer/consumer maps and constants of a graph (a working copy of its nodes)."""

    def __init__(self, model):
        from onnx import numpy_helper
        self.model = model
        g = model.graph
        self.nodes = list(g.node)
        self.labels = [_label(n, i) for i, n in enumerate(self.nodes)]
        self.consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        for n in self.nodes:
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx") and len(n.output) == 1:
                v = _const_value(n)
                if v is not None:
                    self.consts[n.output[0]] = v
        self.graph_outputs = {o.name for o in g.output}
        self.producer = {}
        self.consumers = {}
        for i, n in enumerate(self.nodes):
            for o in n.output:
                if o:
                    self.producer[o] = i
            for t in n.input:
                if t:
                    self.consumers.setdefault(t, []).append(i)

    def prod(self, tensor, op_type=None):
        """The producer of ``tensor`` (its node index), or None; with ``op_type``, only an ONNX-domain
        node of that type (com.microsoft's QuantizeLinear / DequantizeLinear count as ONNX's)."""
        i = self.producer.get(tensor)
        if i is None:
            return None
        n = self.nodes[i]
        if op_type is not None and (n.op_type != op_type or not _onnx_domain(n)):
            return None
        return i

    def const(self, tensor):
        return self.consts.get(tensor) if tensor else None

    def single_consumer(self, tensor):
        c = self.consumers.get(tensor, [])
        if len(c) != 1 or tensor in self.graph_outputs:
            return None
        return c[0]


def topological_tensors(model):
    """Names of every node output, in the model's (topological) node order."""
    model = load_model(model)
    out = []
    for n in model.graph.node:
        out.extend(o for o in n.output if o)
    return out


# --------------------------------------------------------------------------- fusion planning

def _dq_info(G, tensor):
    """(node index, q tensor, scale, zp, axis, has_block_size) of a DQ producing ``tensor``
    with constant scale (and zp), else None."""
    i = G.prod(tensor, "DequantizeLinear")
    if i is None:
        return None
    n = G.nodes[i]
    s = G.const(n.input[1]) if len(n.input) > 1 else None
    if s is None:
        return None
    zp_name = n.input[2] if len(n.input) > 2 else ""
    z = G.const(zp_name) if zp_name else None
    if zp_name and z is None:
        return None
    a = _attrs(n)
    return dict(index=i, q=n.input[0], scale=s, zp=z, scale_name=n.input[1], zp_name=zp_name,
                axis=a.get("axis", 1), block=("block_size" in a and a["block_size"] != 0),
                has_block_attr="block_size" in a, qdtype=_tensor_dtype(G, n.input[0]))


def _q_info(G, i):
    n = G.nodes[i]
    if n.op_type != "QuantizeLinear" or not _onnx_domain(n):
        return None
    s = G.const(n.input[1]) if len(n.input) > 1 else None
    if s is None or np.size(s) != 1:
        return None
    zp_name = n.input[2] if len(n.input) > 2 else ""
    z = G.const(zp_name) if zp_name else None
    if zp_name and z is None:
        return None
    a = _attrs(n)
    if a.get("output_dtype"):
        from ._dtypes import resolve_dtype
        odt = resolve_dtype(int(a["output_dtype"]))
    else:
        odt = np.asarray(z).dtype if z is not None else np.dtype(np.uint8)
    return dict(index=i, scale=s, zp=z, scale_name=n.input[1], zp_name=zp_name, dtype=odt,
                output=n.output[0])


_TYPE_CACHE = {}


def _tensor_dtype(G, tensor):
    """numpy dtype of a tensor when known statically (initializer / graph input / value_info)."""
    if tensor in G.consts:
        return np.asarray(G.consts[tensor]).dtype
    from onnx import helper
    i = G.producer.get(tensor)
    if i is not None:
        n = G.nodes[i]
        if n.op_type == "QuantizeLinear" and _onnx_domain(n):
            q = _q_info(G, i)
            if q is not None:
                return q["dtype"]
        if n.op_type == "DynamicQuantizeLinear" and tensor == n.output[0]:
            return np.dtype(np.uint8)
        if n.op_type in ("QLinearConv", "QLinearMatMul") and len(n.input) > 7:
            z = G.const(n.input[7])
            if z is not None:
                return np.asarray(z).dtype
    for vi in list(G.model.graph.input) + list(G.model.graph.value_info) + list(G.model.graph.output):
        if vi.name == tensor and vi.type.tensor_type.elem_type:
            try:
                return np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
            except Exception:  # noqa: BLE001
                return None
    return None


def _clip_bounds(G, n):
    """Constant (lo, hi) of a Clip node (-inf/inf when absent), None if not constant."""
    a = _attrs(n)
    if "min" in a or "max" in a:   # Clip-1/6
        return float(a.get("min", -np.inf)), float(a.get("max", np.inf))
    lo, hi = -np.inf, np.inf
    if len(n.input) > 1 and n.input[1]:
        v = G.const(n.input[1])
        if v is None:
            return None
        lo = v
    if len(n.input) > 2 and n.input[2]:
        v = G.const(n.input[2])
        if v is None:
            return None
        hi = v
    return lo, hi


def _clip_redundant(G, act_i, q):
    """ORT IsClipMadeRedundantByQ."""
    from ._dtypes import qrange
    n = G.nodes[act_i]
    lo_q, hi_q = qrange(q["dtype"])
    zp = int(np.asarray(q["zp"]).reshape(())) if q["zp"] is not None else 0
    if n.op_type == "Relu":
        return zp == lo_q
    b = _clip_bounds(G, n)
    if b is None:
        return False
    s = np.float32(np.asarray(q["scale"]).reshape(()))
    with np.errstate(all="ignore"):
        cmin = np.rint(np.float32(b[0]) / s)
        cmax = np.rint(np.float32(b[1]) / s)
    qmin = (int(cmin) if np.isfinite(cmin) else (-2 ** 31 if cmin < 0 else 2 ** 31 - 1)) + zp
    qmax = (int(cmax) if np.isfinite(cmax) else (-2 ** 31 if cmax < 0 else 2 ** 31 - 1)) + zp
    return qmin <= lo_q and qmax >= hi_q


def _is_scalar(a):
    return np.ndim(a) == 0 or (np.ndim(a) == 1 and np.size(a) == 1)


def _path_to_q(G, i):
    """ORT IsNoBranchPathToQuantizeLinear: node i's single output reaches a Q through single
    consumers, with only Relu/Clip between."""
    n = G.nodes[i]
    while True:
        if len(n.output) != 1:
            return False
        c = G.consumers.get(n.output[0], [])
        if len(c) != 1:
            return False
        n = G.nodes[c[0]]
        if n.op_type == "QuantizeLinear":
            return True
        if n.op_type not in ("Relu", "Clip"):
            return False


def _ort_weight_quant_params(w):
    """ORT GetQuantizationParameter<int8_t> (asymmetric, float32): (scale, zero point)."""
    w = np.asarray(w, np.float32).reshape(-1)
    f = np.float32
    mn = f(min(f(w.min()) if w.size else f(0), f(0)))
    mx = f(max(f(w.max()) if w.size else f(0), f(0)))
    scale = f(1.0) if mx == mn else f(f(mx - mn) / f(255))
    z0 = f(f(-128) - f(mn / scale))
    z0 = f(min(f(127), max(f(-128), z0)))
    return scale, np.int8(np.rint(z0))


def _ort_weight_bias_quantization(G, i, new_nodes, new_inits, fusions):
    """ORT WeightBiasQuantization (level 1, onnxruntime 1.32) on node i: a Conv / ConvTranspose /
    Gemm whose input 0 comes from a per-tensor DQ and whose output reaches a Q (through single
    consumers, Relu/Clip allowed) gets its float32 weight initializer quantized to int8 (per
    tensor, asymmetric min/max, then a Q -> DQ pair) and its 1-D constant float bias replaced by
    DQ(int32 RNE(b / fl32(s_x * s_w)), s_x * s_w).  Modifies the node's inputs."""
    from onnx import helper
    n = G.nodes[i]
    if n.op_type not in ("Conv", "ConvTranspose", "Gemm") or len(n.input) < 2:
        return
    dx = _dq_info(G, n.input[0])
    if dx is None or not _is_scalar(dx["scale"]) or not _path_to_q(G, i):
        return
    dw = _dq_info(G, n.input[1])
    wf = None
    if dw is None:
        if G.prod(n.input[1], "DequantizeLinear") is not None:
            return                                    # a DQ with non-constant parameters
        wf = G.consts.get(n.input[1])
        if wf is None or np.asarray(wf).dtype != np.float32:
            return
    has_b = len(n.input) > 2 and bool(n.input[2])
    b = None
    if has_b:
        b = G.const(n.input[2])
        if b is None or np.ndim(b) != 1:
            return
    if dw is not None and b is None:
        return
    per_tensor = dw is None or _is_scalar(dw["scale"])
    if not per_tensor:
        if np.ndim(dw["scale"]) != 1 or np.size(dw["scale"]) != np.size(b) or \
                (dw["has_block_attr"] and _attrs(G.nodes[dw["index"]]).get("block_size", 0) != 0):
            return
        expected = 0
        if n.op_type == "Gemm":
            expected = 0 if _attrs(n).get("transB", 0) else 1
        ax = dw["axis"]
        if ax < 0:
            wd = G.const(dw["q"])
            if wd is None:
                return
            ax += np.ndim(wd)
        if ax != expected:
            return
    lab = G.labels[i]
    base = n.name or ""
    if wf is not None:
        sw, zw = _ort_weight_quant_params(wf)
        names = {k: _unique(G, new_inits, f"{base}_weight_{k}") for k in ("scale", "zp", "q", "dq")}
        new_inits[names["scale"]] = np.float32(sw)
        new_inits[names["zp"]] = np.int8(zw)
        qn = helper.make_node("QuantizeLinear", [n.input[1], names["scale"], names["zp"]], [names["q"]],
                              name=names["q"])
        dn = helper.make_node("DequantizeLinear", [names["q"], names["scale"], names["zp"]],
                              [names["dq"]], name=names["dq"])
        new_nodes += [(i, qn), (i, dn)]
        fusions.append(Fusion("weight_quantization", (lab,), names["dq"], (),
                              f"{lab}: float weight {n.input[1]!r} -> DQ(Q(w, {float(sw):.6g}, "
                              f"{int(zw)})) int8 per tensor (ORT WeightBiasQuantization, level 1)"))
        n.input[1] = names["dq"]
        sw_arr = np.float32(sw)
    else:
        sw_arr = dw["scale"]
    if b is None or np.asarray(b).dtype.kind != "f":
        return
    sdt = np.asarray(dx["scale"]).dtype
    sx = np.asarray(dx["scale"]).astype(sdt)
    sw = np.asarray(sw_arr).astype(sdt)
    scale = (sx * sw).astype(sdt)                      # Mul (float32)
    with np.errstate(all="ignore"):
        q = (np.asarray(b).astype(sdt) / scale).astype(sdt)   # Div
        q = np.rint(q)                                        # Round (half to even)
    qi = np.full(q.shape, -2 ** 31, np.int64)          # Cast: cvttss2si, out of range -> INT32_MIN
    ok = np.isfinite(q) & (q >= -2.0 ** 31) & (q < 2.0 ** 31)
    qi[ok] = q[ok].astype(np.int64)
    qi = qi.astype(np.int32)
    names = {k: _unique(G, new_inits, f"{base}_bias_{k}") for k in ("int32", "scale", "dq")}
    new_inits[names["int32"]] = qi
    new_inits[names["scale"]] = scale.reshape(np.shape(sw) if not per_tensor else np.shape(scale))
    dq = helper.make_node("DequantizeLinear", [names["int32"], names["scale"]], [names["dq"]],
                          name=names["dq"], **({} if per_tensor else {"axis": 0}))
    new_nodes.append((i, dq))
    fusions.append(Fusion("bias_quantization", (lab,), names["dq"], (),
                          f"{lab}: float bias {n.input[2]!r} -> DQ(int32 RNE(b / fl32(sx*sw))) "
                          f"(ORT WeightBiasQuantization, level 1)"))
    n.input[2] = names["dq"]


def _unique(G, extra, name):
    used = set(G.producer) | set(G.consts) | set(extra) | {i.name for i in G.model.graph.input}
    if name not in used:
        return name
    k = 1
    while f"{name}_{k}" in used:
        k += 1
    return f"{name}_{k}"


def _rewrite(model, fuse):
    """(rewritten ModelProto, [Fusion]) for a fuse mode (None: the model unchanged)."""
    if fuse is None:
        return model, []
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    fusions = []
    new_inits = {}
    if fuse in ("onnxruntime-basic", "onnxruntime"):
        # ORT level 1, in its order: CommonSubexpressionElimination (modelled for Q / DQ nodes:
        # the dedicated pairs of onnxruntime.quantization's DedicatedQDQPair), QDQPropagation,
        # then WeightBiasQuantization
        for i, n in enumerate(m.graph.node):   # labels stay the original graph's after removals
            if not n.name:
                n.name = _label(n, i)
        _cse_qdq(m)
        m, f1 = _propagate_qdq(m)
        fusions += f1
        G = _Graph(m)
        inserts = []
        for i in range(len(G.nodes)):
            _ort_weight_bias_quantization(G, i, inserts, new_inits, fusions)
        # insert the new Q/DQ nodes before their consumers
        nodes = []
        ins = {}
        for i, dq in inserts:
            ins.setdefault(i, []).append(dq)
        for i, n in enumerate(G.nodes):
            nodes.extend(ins.get(i, []))
            nodes.append(n)
        del m.graph.node[:]
        m.graph.node.extend(nodes)
        for k, v in new_inits.items():
            m.graph.initializer.append(numpy_helper.from_array(np.asarray(v), k))
        new_inits = {}
    if fuse == "onnxruntime":
        m, f2 = _fuse_units(m, "onnxruntime")
        fusions += f2
    elif fuse == "tensorrt":
        m, f2 = _fuse_units(m, "tensorrt")
        fusions += f2
    domains = {o.domain for o in m.opset_import}
    for d in ("com.microsoft", _DOMAIN):
        if d not in domains:
            m.opset_import.append(helper.make_opsetid(d, 1))
    return m, fusions


# ORT QDQPropagationTransformer (level 1), onnxruntime 1.32: the ops a Q/DQ pair is moved across,
# by the SinceVersion ORT accepts (CanNodePropagate), and the Q/DQ versions it matches
_CAN_PROPAGATE = {"MaxPool": (12, 22), "Reshape": (5, 13, 14, 19, 21, 23, 24, 25),
                  "Transpose": (1, 13, 21, 23, 24, 25), "Squeeze": (1, 11, 13, 21, 23, 24, 25),
                  "Unsqueeze": (1, 11, 13, 21, 23, 24, 25), "Slice": (1, 10, 11, 13)}
_QDQ_SINCE = (10, 13, 19, 21)


def _since_version(op, opset):
    from onnx import defs
    try:
        return defs.get_schema(op, opset, "").since_version
    except Exception:  # noqa: BLE001
        return None


class _Prop:
    """Mutable node list with producer / consumer-edge maps, rebuilt after each insertion."""

    def __init__(self, m):
        self.m = m
        self.nodes = list(m.graph.node)
        self.opset = _opsets(m).get("", 1)
        G = _Graph(m)
        self.consts = G.consts
        self.graph_inputs = {i.name for i in m.graph.input}
        self.graph_outputs = G.graph_outputs
        self.names = {t for n in self.nodes for t in list(n.input) + list(n.output) if t} | \
            set(self.consts) | self.graph_inputs
        self.node_names = {n.name for n in self.nodes if n.name}
        self.static = self._static_shapes(m)
        self.refresh()
        self._twin_ids = self._find_twins()

    @staticmethod
    def _static_shapes(m):
        """Tensors whose shape is fully known: ORT's ConstantFolding (which runs before the
        propagation) replaces a Shape / Size of such a tensor by a constant, so its edge is gone."""
        import onnx
        try:
            g = onnx.shape_inference.infer_shapes(m).graph
        except Exception:  # noqa: BLE001
            g = m.graph
        out = {i.name for i in g.initializer}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            tt = vi.type.tensor_type
            if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
                out.add(vi.name)
        return out

    def refresh(self):
        self.producer = {}
        self.edges = {}          # tensor -> [(consumer node, input slot)]
        for n in self.nodes:
            for o in n.output:
                if o:
                    self.producer[o] = n
            folded = n.op_type in ("Shape", "Size") and n.domain in ("", "ai.onnx")
            for k, t in enumerate(n.input):
                if t and not (folded and t in self.static):
                    self.edges.setdefault(t, []).append((n, k))

    def unique(self, name, pool):
        if name not in pool:
            pool.add(name)
            return name
        k = 0
        while f"{name}_token_{k}" in pool:
            k += 1
        pool.add(f"{name}_token_{k}")
        return f"{name}_token_{k}"

    def match(self, n, op):
        """QDQ::MatchQNode / MatchDQNode."""
        if n.op_type != op:
            return False
        if n.domain == "com.microsoft":
            return True
        return n.domain in ("", "ai.onnx") and _since_version(op, self.opset) in _QDQ_SINCE

    def can_propagate(self, n):
        v = _CAN_PROPAGATE.get(n.op_type)
        return v is not None and n.domain in ("", "ai.onnx") and \
            _since_version(n.op_type, self.opset) in v

    def scalar_qparams(self, n):
        """Constant scalar scale (and zero point, if given): (scale name, zp name or "")."""
        s = self.consts.get(n.input[1]) if len(n.input) > 1 else None
        if s is None or not _is_scalar(s):
            return None
        zp = n.input[2] if len(n.input) > 2 and n.input[2] else ""
        if zp and (self.consts.get(zp) is None or not _is_scalar(self.consts[zp])):
            return None
        return n.input[1], zp

    def _input_key(self, t):
        """An input as ORT's common-subexpression elimination compares it: a constant
        initializer by its type, shape and bytes, anything else by name."""
        c = self.consts.get(t)
        if c is None:
            return ("t", t)
        c = np.asarray(c)
        return ("c", c.dtype.str, c.shape, c.tobytes())

    def has_twin(self, n):
        """Whether another node computes the same thing (op, domain, attributes, inputs with
        equal constants): ORT's CommonSubexpressionElimination, which runs before the QDQ
        propagation, merges them, and the merged output then has the twins' consumers together
        (so a single consumer here is not a single consumer there).  An attention block's q / k
        / v Linears each reshape the same input: ORT keeps one Reshape, feeding every Q."""
        return id(n) in self._twin_ids

    def _find_twins(self):
        """ids of the original nodes that have a twin (computed before any insertion renames
        inputs)."""
        groups = {}
        for m in self.nodes:
            if m.op_type == "Constant" or not m.output:
                continue
            key = (m.op_type, m.domain, tuple(a.SerializeToString() for a in m.attribute),
                   tuple(self._input_key(t) for t in m.input))
            groups.setdefault(key, []).append(id(m))
        return {i for ids in groups.values() if len(ids) > 1 for i in ids}

    def prev_edge(self, n):
        """GetPreviousEdge: (source node or None, tensor) into input 0 of n."""
        t = n.input[0] if n.input else ""
        if not t:
            return None
        src = self.producer.get(t)
        if src is None or src.op_type == "Constant":
            return (None, t) if (t in self.graph_inputs or t in self.consts) else None
        if t in self.graph_outputs or len(self.edges.get(t, [])) != 1 or self.has_twin(src):
            return None
        return (src, t)

    def next_edges(self, n):
        """GetNextEdges of output 0: [(consumer, slot)] plus (None, None) for a graph output."""
        t = n.output[0] if n.output else ""
        e = list(self.edges.get(t, []))
        if t in self.graph_outputs:
            e.append((None, None))
        return t, e

    def insert(self, src, t, edges, scale, zp, q_attrs, dq_attrs, domain):
        """InsertQDQPairs: src -> Q -> DQ (one per edge) -> consumers."""
        from onnx import helper
        pool = self.names
        if src is None:
            pre = t
        else:
            pre = self.unique(t + "_pre_q", pool)
            src.output[list(src.output).index(t)] = pre
            # readers outside the edges (a Shape ORT folded to a constant) keep the value
            for n in self.nodes:
                if not any(n is d for d, _ in edges):
                    for k, x in enumerate(n.input):
                        if x == t:
                            n.input[k] = pre
        qo = self.unique(t + "_q_to_dq", pool)
        zin = [zp] if zp else []
        new = [helper.make_node("QuantizeLinear", [pre, scale] + zin, [qo], domain=domain,
                                name=self.unique(t + "_q", self.node_names), **q_attrs)]
        posts = []
        for k, (dst, slot) in enumerate(edges):
            suf = "" if k == 0 else str(k)
            post = t if dst is None else self.unique(t + "_post_dq" + suf, pool)
            new.append(helper.make_node("DequantizeLinear", [qo, scale] + zin, [post], domain=domain,
                                        name=self.unique(t + "_dq" + suf, self.node_names),
                                        **dq_attrs))
            if dst is not None:
                dst.input[slot] = post
            posts.append(post)
        pos = [i for i, n in enumerate(self.nodes) if any(n is d for d, _ in edges)]
        at = min(pos) if pos else next(i for i, n in enumerate(self.nodes) if n is src) + 1
        self.nodes[at:at] = new
        self.refresh()
        return qo, posts

    def write(self):
        del self.m.graph.node[:]
        self.m.graph.node.extend(self.nodes)


def _cse_qdq(m):
    """ORT's CommonSubexpressionElimination for QuantizeLinear / DequantizeLinear nodes, in place:
    a node with the same op, domain, attributes and inputs (constants compared by type, shape and
    bytes) as an earlier one is removed and its consumers read the earlier one's output, repeated
    until nothing changes (two dedicated Q nodes of one tensor merge, then their DQs).  A node
    whose output is a graph output stays (ORT keeps those)."""
    from onnx import AttributeProto, numpy_helper
    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for n in m.graph.node for a in n.attribute):
        return m      # subgraphs may read a merged tensor by name: left as written
    consts = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    outs = {o.name for o in m.graph.output}

    def in_key(t):
        c = consts.get(t)
        return ("t", t) if c is None else ("c", c.dtype.str, c.shape, c.tobytes())

    changed = True
    while changed:
        changed = False
        seen, rename, keep = {}, {}, []
        for n in m.graph.node:
            for k, t in enumerate(n.input):
                if t in rename:
                    n.input[k] = rename[t]
            if (n.op_type in ("QuantizeLinear", "DequantizeLinear") and _onnx_domain(n)
                    and len(n.output) == 1 and n.output[0] not in outs):
                key = (n.op_type, n.domain, tuple(a.SerializeToString() for a in n.attribute),
                       tuple(in_key(t) for t in n.input))
                first = seen.get(key)
                if first is not None:
                    rename[n.output[0]] = first
                    changed = True
                    continue
                seen[key] = n.output[0]
            keep.append(n)
        if changed:
            del m.graph.node[:]
            m.graph.node.extend(keep)
    return m


def _propagate_qdq(m):
    """ORT QDQPropagationTransformer (level 1): Q backward, then DQ forward, across MaxPool,
    Reshape, Transpose, Squeeze, Unsqueeze and Slice (ORT's accepted opset versions).

    Q backward: a Q (constant scalar scale/zp) whose input comes, through a chain of such ops
    (each the only consumer of its input), from a producer that is not a DQ gets a Q/DQ pair with
    its own parameters on each edge of the chain -- this quantizes a float value *before* the
    Reshape, so the ops in the chain see dequantized values.  DQ forward: a DQ with one consumer
    and such an op after it gets a pair after the op (one DQ per consumer), repeated along the
    chain, unless a consumer is already a Q (exact: it re-quantizes on its own grid).  New tensors
    are named as ORT names them: ``<t>_pre_q`` (the producer's renamed output), ``<t>_q_to_dq``
    (codes), ``<t>_post_dq[k]`` (float)."""
    P = _Prop(m)
    fusions = []
    q_outs = [n.output[0] for n in P.nodes if n.output and P.match(n, "QuantizeLinear")]
    dq_outs = [n.output[0] for n in P.nodes if n.output and P.match(n, "DequantizeLinear")]
    for qo in q_outs:
        qn = P.producer.get(qo)
        if qn is None or len(qn.input) < 2:
            continue
        qp = P.scalar_qparams(qn)
        if qp is None:
            continue
        edge = P.prev_edge(qn)
        if edge is None:
            continue
        q_attrs = _attrs(qn)
        dq_attrs = {k: v for k, v in q_attrs.items() if k in ("axis", "block_size")}
        while True:
            src = edge[0]
            if src is None or not P.can_propagate(src):
                break
            cur = P.prev_edge(src)
            if cur is None or (cur[0] is not None and P.match(cur[0], "DequantizeLinear")):
                break
            t = cur[1]
            codes, posts = P.insert(cur[0], t, [(src, 0)], qp[0], qp[1], q_attrs, dq_attrs, qn.domain)
            fusions.append(Fusion("qdq_propagation", (_label(src, 0),), posts[0], (),
                                  f"Q backward across {src.op_type}: {t!r} -> Q/DQ ({codes!r}) "
                                  f"with the parameters of {qn.name or qo!r}"))
            edge = (cur[0], t)
    for do in dq_outs:
        dn = P.producer.get(do)
        if dn is None or len(dn.input) < 2:
            continue
        qp = P.scalar_qparams(dn)
        if qp is None:
            continue
        _, after = P.next_edges(dn)
        if len(after) != 1 or after[0][0] is None or P.has_twin(dn):
            continue
        dq_attrs = _attrs(dn)
        queue = [after[0][0]]
        while queue:
            n = queue.pop(0)
            if n is None or not P.can_propagate(n):
                continue
            t, group = P.next_edges(n)
            if not group or any(d is not None and P.match(d, "QuantizeLinear") for d, _ in group):
                continue
            codes, posts = P.insert(n, t, group, qp[0], qp[1], dq_attrs, dq_attrs, dn.domain)
            fusions.append(Fusion("qdq_propagation", (_label(n, 0),), posts[0], (),
                                  f"DQ forward across {n.op_type}: {t!r} -> Q/DQ ({codes!r}) "
                                  f"with the parameters of {dn.name or do!r}"))
            queue += [d for d, _ in group]
    if fusions:
        P.write()
    return m, fusions


def _fuse_units(m, mode):
    """Replace DQ -> op [-> act] -> Q units by one node (ORT QDQ fusions or TensorRT kernels)."""
    from onnx import helper, numpy_helper
    G = _Graph(m)
    replaced = {}      # node index -> new node (placed at the target's position)
    dropped = set()    # node indices removed
    fusions = []
    extra_inits = {}
    for i, n in enumerate(G.nodes):
        if n.domain not in ("", "ai.onnx"):
            continue
        if n.op_type in ("Conv", "MatMul", "Gemm"):
            matcher = _match_ort if mode == "onnxruntime" else _match_trt
        elif mode == "onnxruntime" and n.op_type in _ORT_UNIT_OPS:
            matcher = _match_ort_qlinear
        else:
            continue
        if i in dropped or i in replaced:
            continue
        unit = matcher(G, i)
        if unit is None:
            continue
        node, consumed, removed_tensors, kind, detail, inits = unit
        if any(j in dropped or j in replaced for j in consumed):
            continue
        extra_inits.update(inits)
        replaced[i] = node
        for j in consumed:
            if j != i:
                dropped.add(j)
        fusions.append(Fusion(kind, tuple(G.labels[j] for j in sorted(consumed)), node.output[0],
                              tuple(removed_tensors), detail))
    if not replaced:
        return m, []
    # DQ nodes whose every consumer was fused away disappear too
    live_inputs = set()
    for j, n in enumerate(G.nodes):
        if j in dropped:
            continue
        nn = replaced.get(j, n)
        live_inputs.update(t for t in nn.input if t)
    live_inputs |= G.graph_outputs
    changed = True
    removed_dq = set()
    while changed:
        changed = False
        for j, n in enumerate(G.nodes):
            if j in dropped or j in replaced:
                continue
            if n.op_type == "DequantizeLinear" and not any(o in live_inputs for o in n.output):
                consumers = G.consumers.get(n.output[0], [])
                if consumers and all((c in dropped) or (c in replaced) for c in consumers):
                    dropped.add(j)
                    removed_dq.add(n.output[0])
                    changed = True
    if removed_dq:
        fusions = [dataclasses.replace(f, removed=tuple(sorted(set(f.removed) | (
            removed_dq & set(_unit_inputs(G, f)))))) for f in fusions]
    nodes = []
    for j, n in enumerate(G.nodes):
        if j in dropped:
            continue
        nodes.append(replaced.get(j, n))
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    for k, v in extra_inits.items():
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(v), k))
    return m, fusions


def _unit_inputs(G, f):
    labs = set(f.nodes)
    out = set()
    for j, lab in enumerate(G.labels):
        if lab in labs:
            out.update(G.nodes[j].input)
    return out


def _act_and_q(G, out_tensor):
    """(activation node index or None, Q node index or None, tensor feeding Q) after a target."""
    c = G.single_consumer(out_tensor)
    act = None
    t = out_tensor
    if c is not None and G.nodes[c].op_type in ("Relu", "Clip") and G.nodes[c].domain in ("", "ai.onnx"):
        c2 = G.single_consumer(G.nodes[c].output[0])
        act = c
        t = G.nodes[c].output[0]
        c = c2
    if c is not None and G.nodes[c].op_type == "QuantizeLinear" and _onnx_domain(G.nodes[c]):
        return act, c, t
    return act, None, t


def _match_ort(G, i):
    n = G.nodes[i]
    op = n.op_type
    a = _attrs(n)
    dx = _dq_info(G, n.input[0])
    dw = _dq_info(G, n.input[1]) if len(n.input) > 1 else None
    if dx is None or dw is None or dx["block"] or dw["block"]:
        return None
    xdt, wdt = dx["qdtype"], dw["qdtype"]
    if xdt not in _EIGHT_BIT or wdt not in _EIGHT_BIT:
        return None
    s8u8 = False
    if xdt == np.int8 and G.const(dx["q"]) is None:
        # x86: int8 activations are fused only once QDQS8ToU8 made them uint8
        if _eff_dtype(G, dx["q"]) != np.dtype(np.uint8):
            return None
        s8u8 = True
    bias_q = None
    db = None
    if op in ("Conv", "Gemm") and len(n.input) > 2 and n.input[2]:
        db = _dq_info(G, n.input[2])
        if db is None or db["qdtype"] != np.dtype(np.int32):
            return None
        bias_q = db["q"]
    act, qi, _ = _act_and_q(G, n.output[0])
    if act is not None and qi is None:
        return None
    q = _q_info(G, qi) if qi is not None else None
    if qi is not None and q is None:
        return None
    if act is not None and not _clip_redundant(G, act, q):
        return None
    if q is not None and q["dtype"] not in _EIGHT_BIT:
        return None
    if q is not None and q["dtype"] == np.int8 and s8u8 != _s8_convertible(G, qi):
        return None
    if not _is_scalar(dx["scale"]):
        return None
    consumed = {i}
    removed = [n.output[0]]
    if act is not None:
        consumed.add(act)
        removed.append(G.nodes[act].output[0])
    if q is not None:
        consumed.add(qi)
    zx = dx["zp_name"]
    zw = dw["zp_name"]
    inits = {}
    if op == "Conv":
        if q is None or xdt != q["dtype"] or (xdt == np.int8 and wdt != np.int8):
            return None
        if not _is_scalar(dw["scale"]) and dw["axis"] != 0:
            return None
        ins = [dx["q"], dx["scale_name"], zx, dw["q"], dw["scale_name"], zw, q["scale_name"],
               q["zp_name"]]
        if bias_q:
            ins.append(bias_q)
        node = _mk("QLinearConv", ins, q["output"], n, a, "", s8u8)
        removed += [n.input[0], n.input[1]] + ([n.input[2]] if bias_q else [])
        return (node, consumed, _dedupe(removed, q["output"]), "QLinearConv",
                f"DQ -> Conv{' -> ' + G.nodes[act].op_type if act is not None else ''} -> Q => "
                "QLinearConv (ORT QDQ fusion)", inits)
    if op == "MatMul":
        if (xdt == np.int8 and wdt != np.int8):
            return None
        if not _is_scalar(dw["scale"]) and dw["axis"] not in (-1, 1):
            return None
        if q is not None:
            if xdt != q["dtype"]:
                return None
            ins = [dx["q"], dx["scale_name"], zx, dw["q"], dw["scale_name"], zw, q["scale_name"],
                   q["zp_name"]]
            node = _mk("QLinearMatMul", ins, q["output"], n, {}, "", s8u8)
            return (node, consumed, _dedupe(removed + [n.input[0], n.input[1]], q["output"]),
                    "QLinearMatMul", "DQ -> MatMul -> Q => QLinearMatMul (ORT QDQ fusion)", inits)
        if act is not None:
            return None
        ins = [dx["q"], dw["q"], dx["scale_name"], dw["scale_name"], zx, zw]
        node = _mk("MatMulIntegerToFloat", ins, n.output[0], n, {}, "com.microsoft", s8u8)
        return (node, consumed, _dedupe([n.input[0], n.input[1]], n.output[0]),
                "MatMulIntegerToFloat", "DQ -> MatMul (float out) => com.microsoft "
                "MatMulIntegerToFloat (ORT QDQ fusion)", inits)
    if op == "Gemm":
        if xdt == np.int8 and wdt != np.int8:
            return None
        if bias_q and float(a.get("beta", 1.0)) != 1.0:
            return None
        if q is not None and xdt != q["dtype"]:
            return None
        ga = {k: a[k] for k in ("alpha", "transA", "transB") if k in a}
        ins = [dx["q"], dx["scale_name"], zx, dw["q"], dw["scale_name"], zw, bias_q or ""]
        if q is not None:
            ins += [q["scale_name"], q["zp_name"]]
            out = q["output"]
        else:
            if act is not None:
                return None
            out = n.output[0]
        while ins and ins[-1] == "":
            ins.pop()
        node = _mk("QGemm", ins, out, n, ga, "com.microsoft", s8u8)
        removed += [n.input[0], n.input[1]] + ([n.input[2]] if bias_q else [])
        return (node, consumed, _dedupe(removed, out), "QGemm",
                "DQ -> Gemm [-> Q] => com.microsoft QGemm (ORT QDQ fusion)", inits)
    return None


def _s8_convertible(G, qi):
    """ORT QDQS8ToU8Transformer (level 2, x86): an int8 Q whose only consumer is a DQ with the
    same constant scalar scale/zero point (and that DQ feeds at most one node, else ORT first
    duplicates it) is turned into a uint8 pair (zero point + 128)."""
    q = _q_info(G, qi)
    if q is None or q["dtype"] != np.int8 or (q["zp"] is not None and not _is_scalar(q["zp"])):
        return False
    c = G.consumers.get(q["output"], [])
    if len(c) != 1 or q["output"] in G.graph_outputs:
        return False
    d = G.nodes[c[0]]
    if d.op_type != "DequantizeLinear" or not _onnx_domain(d):
        return False
    s2 = G.const(d.input[1]) if len(d.input) > 1 else None
    z2 = G.const(d.input[2]) if len(d.input) > 2 and d.input[2] else None
    if s2 is None or not np.array_equal(np.asarray(s2), np.asarray(q["scale"])):
        return False
    if (z2 is None) != (q["zp"] is None) or (z2 is not None and not np.array_equal(z2, q["zp"])):
        return False
    return len(G.consumers.get(d.output[0], [])) <= 1


def _eff_dtype(G, qtensor):
    """Type of a quantized activation as ORT's fusions see it on x86 (int8 pairs become uint8)."""
    dt = _tensor_dtype(G, qtensor)
    if dt == np.dtype(np.int8):
        i = G.producer.get(qtensor)
        if i is not None and G.nodes[i].op_type == "QuantizeLinear" and _s8_convertible(G, i):
            return np.dtype(np.uint8)
    return dt


_ORT_UNIT_OPS = {"Add": "QLinearAdd", "Mul": "QLinearMul", "GlobalAveragePool": "QLinearGlobalAveragePool",
                 "AveragePool": "QLinearAveragePool", "Sigmoid": "QLinearSigmoid",
                 "LeakyRelu": "QLinearLeakyRelu", "Concat": "QLinearConcat", "Softmax": "QLinearSoftmax"}


def _scalar_qparams(d):
    return d is not None and _is_scalar(d["scale"]) and (d["zp"] is None or _is_scalar(d["zp"]))


def _match_ort_qlinear(G, i):
    """ORT's binary / unary / variadic QDQ units: DQ inputs -> op -> Q => com.microsoft QLinear<op>
    (8-bit, every input and the output of one type, per-tensor constant scales)."""
    n = G.nodes[i]
    op = n.op_type
    ins = [t for t in n.input if t]
    dqs = [_dq_info(G, t) for t in ins]
    if not dqs or not all(_scalar_qparams(d) and not d["block"] for d in dqs):
        return None
    qi = G.single_consumer(n.output[0])
    if qi is None:
        return None
    q = _q_info(G, qi)
    if q is None or q["zp"] is not None and not _is_scalar(q["zp"]):
        return None
    dt = np.dtype(np.uint8) if q["dtype"] == np.int8 and _s8_convertible(G, qi) else q["dtype"]
    if dt not in _EIGHT_BIT or any(_eff_dtype(G, d["q"]) != dt for d in dqs):
        return None
    s8u8 = q["dtype"] == np.int8 and dt == np.uint8
    if op in ("Add", "Mul") and len(dqs) != 2:
        return None
    a = _attrs(n)
    if op == "Concat":
        args = [q["scale_name"], q["zp_name"]]
        for d in dqs:
            args += [d["q"], d["scale_name"], d["zp_name"]]
        attrs = {"axis": a.get("axis", 0)}
    else:
        args = []
        for d in dqs:
            args += [d["q"], d["scale_name"], d["zp_name"]]
        args += [q["scale_name"], q["zp_name"]]
        attrs = {k: v for k, v in a.items()}
        if op in ("GlobalAveragePool", "AveragePool"):
            attrs["channels_last"] = 0
        if op == "Softmax":
            # ORT UnaryReplaceWithQLinear: the target's attributes (with the Softmax schema's
            # defaults filled in, as ORT's graph has them) plus opset = its SinceVersion
            since = _softmax_since(_opsets(G.model).get("", 1))
            attrs["opset"] = since
            attrs.setdefault("axis", 1 if since < 13 else -1)
    node = _mk(_ORT_UNIT_OPS[op], args, q["output"], n, attrs, "com.microsoft", s8u8)
    return (node, {i, qi}, _dedupe(list(ins) + [n.output[0]], q["output"]), _ORT_UNIT_OPS[op],
            f"DQ -> {op} -> Q => com.microsoft {_ORT_UNIT_OPS[op]} (ORT QDQ fusion)", {})


def _dedupe(names, keep):
    out = []
    for t in names:
        if t and t != keep and t not in out:
            out.append(t)
    return out


def _mk(op, ins, out, target, attrs, domain, s8u8=False):
    from onnx import helper
    return helper.make_node(op, list(ins), [out], name=(target.name or out) + "_fused" +
                            (_S8U8 if s8u8 else ""), domain=domain, **{k: v for k, v in attrs.items()})


def _match_trt(G, i):
    n = G.nodes[i]
    op = n.op_type
    a = _attrs(n)
    dx = _dq_info(G, n.input[0])
    dw = _dq_info(G, n.input[1]) if len(n.input) > 1 else None
    if dx is None or dw is None or dx["block"] or dw["block"]:
        return None
    if G.const(dw["q"]) is None or not _is_scalar(dx["scale"]):
        return None
    consumed = {i}
    removed = [n.input[0], n.input[1], n.output[0]]
    bias_name = ""
    bias_val = None
    out = n.output[0]
    if op in ("Conv", "Gemm") and len(n.input) > 2 and n.input[2]:
        bias_val = _const_float(G, n.input[2])
        if bias_val is None:
            return None
        bias_name = n.input[2]
    elif op == "MatMul":
        c = G.single_consumer(out)
        if c is not None and G.nodes[c].op_type == "Add":
            other = [t for t in G.nodes[c].input if t != out]
            if len(other) == 1:
                bv = _const_float(G, other[0])
                if bv is not None and np.ndim(bv) <= 1:
                    bias_val = bv
                    bias_name = other[0]
                    consumed.add(c)
                    out = G.nodes[c].output[0]
                    removed.append(out)
    act, qi, _ = _act_and_q(G, out)
    if act is not None:
        consumed.add(act)
        removed.append(G.nodes[act].output[0])
    q = _q_info(G, qi) if qi is not None else None
    if qi is not None and q is None:
        return None
    if q is not None:
        consumed.add(qi)
        final = q["output"]
    else:
        final = G.nodes[act].output[0] if act is not None else out
    kind = {"Conv": "tensorrt_conv", "Gemm": "tensorrt_gemm", "MatMul": "tensorrt_matmul"}[op]
    ins = [dx["q"], dx["scale_name"], dx["zp_name"], dw["q"], dw["scale_name"], dw["zp_name"],
           bias_name, q["scale_name"] if q else "", q["zp_name"] if q else ""]
    fa = {"target": op}
    if op in ("Conv", "Gemm"):
        fa.update({k: v for k, v in a.items()})
    if dw["axis"] != 1:
        fa["w_axis"] = int(dw["axis"])
    if act is not None:
        an = G.nodes[act]
        fa["activation"] = an.op_type
        if an.op_type == "Clip":
            b = _clip_bounds(G, an)
            if b is None:
                return None
            fa["clip_min"] = float(np.asarray(b[0]).reshape(()))
            fa["clip_max"] = float(np.asarray(b[1]).reshape(()))
    while ins and ins[-1] == "":
        ins.pop()
    from onnx import helper
    node = helper.make_node("TensorRTFused", ins, [final], name=(n.name or final) + "_trt",
                            domain=_DOMAIN, **fa)
    what = "DQ -> " + op + (" + bias" if bias_name else "") + \
           (f" -> {G.nodes[act].op_type}" if act is not None else "") + (" -> Q" if q else "")
    return (node, consumed, _dedupe(removed, final), kind,
            f"{what} => one TensorRT int8 kernel ({'int8' if q else 'float'} output)", {})


def _const_float(G, tensor):
    v = G.const(tensor)
    if v is not None:
        return np.asarray(v) if np.asarray(v).dtype.kind == "f" else None
    d = _dq_info(G, tensor)
    if d is not None and G.const(d["q"]) is not None:
        from .reference import dequantize_linear
        return dequantize_linear(G.const(d["q"]), d["scale"], d["zp"], axis=d["axis"])
    return None


def plan_fusions(model, fuse):
    """The rewrites ``fuse`` applies to ``model``: a list of :class:`Fusion` (empty for None)."""
    model = load_model(model)
    fuse = _normalize_fuse(fuse)
    return _rewrite(model, fuse)[1]


# --------------------------------------------------------------------------- execution

def _check_inputs(model, inputs):
    from onnx import helper
    if not isinstance(inputs, dict):
        raise TypeError(f"inputs: expected a dict {{input name: array}}, got {type(inputs).__name__}")
    inits = {i.name for i in model.graph.initializer}
    declared = [vi for vi in model.graph.input if vi.name not in inits]
    names = [vi.name for vi in declared]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise ValueError(f"inputs: missing graph input(s) {missing}; the model's inputs are {names}")
    extra = [n for n in inputs if n not in names and n not in inits]
    if extra:
        raise ValueError(f"inputs: {extra} are not inputs of the model; its inputs are {names}")
    feeds = {}
    for vi in declared:
        arr = np.asarray(inputs[vi.name])
        tt = vi.type.tensor_type
        if tt.elem_type:
            want = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
            if arr.dtype != want:
                raise TypeError(f"inputs[{vi.name!r}]: the model declares {want}, got {arr.dtype}")
        if tt.HasField("shape"):
            dims = tt.shape.dim
            if len(dims) != arr.ndim:
                raise ValueError(f"inputs[{vi.name!r}]: the model declares rank {len(dims)}, got "
                                 f"shape {arr.shape}")
            for k, d in enumerate(dims):
                if d.HasField("dim_value") and d.dim_value != arr.shape[k]:
                    raise ValueError(f"inputs[{vi.name!r}]: dimension {k} must be {d.dim_value}, "
                                     f"got shape {arr.shape}")
        feeds[vi.name] = arr
    for n in inputs:     # overriding initializers is allowed (ONNX semantics of graph inputs)
        if n in inits and n in names:
            pass
    return feeds


def _opt(v):
    return None if v is None or (isinstance(v, np.ndarray) and v.size == 0 and v.dtype == object) else v


def _max_pool_2d_fast(self, x, auto_pad, ceil_mode, dilations, kernel_shape, new_pads, storage_order,
                      strides, output_spatial_shape):
    """onnx.reference's 2-D MaxPool loop (the path it takes for strides or dilations other than
    1), one kernel tap at a time over all outputs instead of one output at a time: the same
    values bit for bit -- taps in the same (h, w) order, the first in-bounds one starts the
    running value and a later one replaces it only when ``v > acc`` (so a NaN counts only when
    it comes first), and an output whose window holds no input element stays 0.  A ResNet-18-like
    model's run_model took 0.77-0.98 s with onnx's loop for its stem MaxPool, 0.47-0.61 s with
    this.  With the Indices output requested, onnx's own loop runs."""
    if len(self.output) != 1 or x.ndim != 4 or len(kernel_shape) != 2:
        return type(self).__mro__[1]._max_pool_2d(self, x, auto_pad, ceil_mode, dilations, kernel_shape,
                                                  new_pads, storage_order, strides, output_spatial_shape)
    N, C, H, W = x.shape
    OH, OW = int(output_spatial_shape[0]), int(output_spatial_shape[1])
    sh, sw = int(strides[0]), int(strides[1])
    dh, dw = int(dilations[0]), int(dilations[1])
    ph, pw = int(new_pads[0, 0]), int(new_pads[1, 0])
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    has = np.zeros((OH, OW), dtype=bool)
    hs = np.arange(OH) * sh - ph
    ws = np.arange(OW) * sw - pw
    for i in range(int(kernel_shape[0])):
        h = hs + i * dh
        hv = (h >= 0) & (h < H)
        for j in range(int(kernel_shape[1])):
            w = ws + j * dw
            wv = (w >= 0) & (w < W)
            valid = hv[:, None] & wv[None, :]
            if not valid.any():
                continue
            v = x[:, :, np.clip(h, 0, max(H - 1, 0))[:, None], np.clip(w, 0, max(W - 1, 0))[None, :]]
            first = valid & ~has
            take = first | (valid & has & (v > y))
            y = np.where(take, v, y)
            has |= valid
    return (y,)


def _make_ops(profile, fusions_by_output, kernels=True):
    from onnx.reference.op_run import OpRun
    from ._oprun import run_reference, OP_INPUTS
    ops = _op_funcs(kernels)

    def node_attrs(self):
        return _attrs(self.onnx_node)

    def opset(self, domain=""):
        return self.run_params.get("opsets", {}).get(domain)

    def make_q(opname, domain):
        names = OP_INPUTS[opname]

        def _run(self, *args, **kwargs):
            ins = {}
            for nm, v in zip(names, args):
                if v is not None:
                    ins[nm] = v
            at = node_attrs(self)
            if opname == "QuantizeLinear" and at.get("output_dtype", 0) == 0:
                at.pop("output_dtype", None)
            if opname == "DequantizeLinear" and at.get("output_dtype", 0) == 0:
                at.pop("output_dtype", None)
            if opname == "QuantizeLinear" and at.get("precision", 0) == 0:
                at.pop("precision", None)
            op_ver = opset(self, domain) if domain == "" else None
            if domain == "com.microsoft" and opname in ("QuantizeLinear", "DequantizeLinear"):
                op_ver = None
            if self.onnx_node.name.endswith(_S8U8) and opname in ("QLinearConv", "QLinearMatMul", "QGemm"):
                return (_s8_to_u8_run(opname, ins, at, profile, kernels),)
            if opname == "MatMulInteger":
                return (ops.matmul_integer(*[ins.get(k) for k in names], profile=profile),)
            r = run_reference(opname, ins, at, profile=profile,
                              opset=None if opname == "QGemm" else op_ver, kernels=kernels)
            return tuple(r) if isinstance(r, tuple) else (r,)

        return type(opname, (OpRun,), {"op_domain": domain, "_run": _run})

    classes = [make_q(op, dom) for (dom, op) in _QOPS]

    def _mitf(self, A, B, a_scale, b_scale, a_zero_point=None, b_zero_point=None, bias=None, **kw):
        if np.asarray(A).dtype == np.int8 and self.onnx_node.name.endswith(_S8U8):
            A = _shift_u8(A)
            a_zero_point = _shift_u8(np.int8(0) if a_zero_point is None else a_zero_point)
        acc = ops.matmul_integer(A, B, a_zero_point, b_zero_point, profile=profile)
        s = (np.asarray(a_scale, np.float32) * np.asarray(b_scale, np.float32)).astype(np.float32)
        y = (acc.astype(np.float32) * s).astype(np.float32)
        if bias is not None:
            y = (y + np.asarray(bias, np.float32)).astype(np.float32)
        return (y,)

    classes.append(type("MatMulIntegerToFloat", (OpRun,), {"op_domain": "com.microsoft", "_run": _mitf}))

    def _trt(self, *args, **kw):
        return (_run_trt_fused(args, node_attrs(self), profile, ops),)

    classes.append(type("TensorRTFused", (OpRun,), {"op_domain": _DOMAIN, "_run": _trt}))

    def _softmax(self, X, axis=None, _log=False):
        # onnx.reference applies opset-13 semantics at every opset: Softmax-1/11 coerce the input
        # to 2-D at ``axis`` (default 1) and normalize over everything from it on
        op_ver = opset(self, "") or 13
        at = node_attrs(self)
        X = np.asarray(X)
        if X.size == 0:
            return (X,)
        if op_ver < 13:
            ax = int(at.get("axis", 1))
            ax = ax + X.ndim if ax < 0 else ax
            Z = X.reshape(int(np.prod(X.shape[:ax])), -1)
            ax2 = 1
        else:
            Z, ax2 = X, int(at.get("axis", -1))
        tmp = Z - Z.max(axis=ax2, keepdims=True)
        if _log:
            Y = tmp - np.log(np.exp(tmp).sum(axis=ax2, keepdims=True))
        else:
            Y = np.exp(tmp)
            Y /= Y.sum(axis=ax2, keepdims=True)
        return (Y.astype(X.dtype).reshape(X.shape),)

    def _log_softmax(self, X, axis=None):
        return _softmax(self, X, axis, _log=True)

    from onnx.reference.ops.op_resize import Resize as _RefResize
    ort_arith = getattr(profile, "name", "").startswith("onnxruntime")

    def _resize(self, X, roi=None, scales=None, sizes=None, **kw):
        X = np.asarray(X)
        r = _ort_resize_plan(self, X, roi, scales, sizes, kw) if ort_arith else None
        if r is not None:
            return (_ort_resize_bilinear_int(X, *r),)
        return _RefResize._run(self, X, roi, scales, sizes, **kw)

    def _ort_resize_plan(self, X, roi, scales, sizes, kw):
        """(out_hw, scales_hw, mode) when ORT runs its integer bilinear kernel, else None."""
        if X.dtype not in _EIGHT_BIT or X.ndim != 4 or (opset(self, "") or 21) < 11:
            return None
        ctm = kw.get("coordinate_transformation_mode") or "half_pixel"
        ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
        mode = kw.get("mode") or "nearest"
        mode = mode.decode() if isinstance(mode, bytes) else mode
        kar = kw.get("keep_aspect_ratio_policy") or "stretch"
        kar = kar.decode() if isinstance(kar, bytes) else kar
        if mode != "linear" or kw.get("antialias") or kw.get("axes") is not None or \
                ctm not in _ORT_RESIZE_CTM or kar != "stretch":
            return None
        if sizes is not None and np.size(sizes):
            out = [int(v) for v in np.asarray(sizes).reshape(-1)]
            sc = [np.float32(out[i]) / np.float32(X.shape[i]) for i in range(4)]
        elif scales is not None and np.size(scales):
            sc = [np.float32(v) for v in np.asarray(scales, np.float32).reshape(-1)]
            out = [int(np.float32(sc[i]) * np.float32(X.shape[i])) for i in range(4)]
        else:
            return None
        if len(sc) != 4 or sc[0] != 1 or sc[1] != 1 or out[0] != X.shape[0] or out[1] != X.shape[1]:
            return None
        return (out[2], out[3]), (sc[2], sc[3]), ctm

    classes.append(type("Resize", (_RefResize,), {"op_domain": "", "_run": _resize}))
    from onnx.reference.ops.op_max_pool import MaxPool as _RefMaxPool
    classes.append(type("MaxPool", (_RefMaxPool,), {"op_domain": "", "_max_pool_2d": _max_pool_2d_fast}))
    classes.append(type("Softmax", (OpRun,), {"op_domain": "", "_run": _softmax}))
    classes.append(type("LogSoftmax", (OpRun,), {"op_domain": "", "_run": _log_softmax}))
    for name, fn in _ORT_CONTRIB.items():
        def _c(self, *args, _fn=fn, _name=name, **kw):
            args = list(args)
            if self.onnx_node.name.endswith(_S8U8):
                return (_contrib_s8_to_u8(_name, _fn, args, node_attrs(self), profile),)
            return (_fn(args, node_attrs(self), profile),)
        classes.append(type(name, (OpRun,), {"op_domain": "com.microsoft", "_run": _c}))
    return classes


# --------------------------------------------------------------------------- ORT contrib QLinear ops

def _fma32(x, y, z):
    """fl32(x*y + z) with one rounding (an FMA): x*y exact in float64 (x small integers or
    float32, y float32), the sum rounded to odd in float64, then to float32 (exact)."""
    p = np.asarray(x, np.float64) * np.asarray(y, np.float64)
    zz = np.asarray(z, np.float64)
    s = p + zz
    bp = s - zz                                   # TwoSum error term
    e = (p - bp) + (zz - (s - bp))
    bits = s.view(np.int64) if s.ndim else np.array(s).view(np.int64)
    odd = (bits & 1) == 1
    fix = (e != 0) & ~odd & np.isfinite(s)
    s = np.where(fix, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


def _sat_cvt(v, dt):
    """cvtps2dq (RNE; NaN/out of range -> INT32_MIN), packs to int16, pack to the 8-bit type."""
    from ._dtypes import qrange
    v = np.asarray(v, np.float32)
    with np.errstate(invalid="ignore"):
        r = np.rint(v.astype(np.float64))
    r = np.where(np.isfinite(r) & (r >= -2.0 ** 31) & (r < 2.0 ** 31), r, -2.0 ** 31).astype(np.int64)
    r = np.clip(r, -32768, 32767)
    lo, hi = qrange(dt)
    return np.clip(r, lo, hi).astype(dt)


def _ort_qlinear_add(args, at, profile):
    """com.microsoft QLinearAdd as MLAS's AVX2 kernel computes it (qladd_avx2.cpp, FMA):
    rAC = fl32(sa/sc), rBC = fl32(sb/sc), F = fl32(zc - fma(rAC, za, fl32(rBC*zb))),
    c = sat(cvt(fma(a, rAC, fma(b, rBC, F)))).  Verified: 0 of 58,179 tie-heavy outputs differ
    from onnxruntime 1.32 (uint8 and int8, scalar and vector B)."""
    a, sa, za, b, sb, zb, sc, zc = (list(args) + [None] * 8)[:8]
    a, b = np.asarray(a), np.asarray(b)
    dt = a.dtype
    za = 0 if za is None else int(np.asarray(za).reshape(()))
    zb = 0 if zb is None else int(np.asarray(zb).reshape(()))
    zc = 0 if zc is None else int(np.asarray(zc).reshape(()))
    sa, sb, sc = (np.float32(np.asarray(v).reshape(())) for v in (sa, sb, sc))
    if a.size == 1 and b.size > 1:          # ORT passes the scalar as B
        a, b, sa, sb, za, zb = b, a, sb, sa, zb, za
    rAC = np.float32(sa / sc)
    rBC = np.float32(sb / sc)
    F = np.float32(np.float32(zc) - _fma32(rAC, np.float32(za), np.float32(rBC * np.float32(zb))))
    bf = b.astype(np.float32)
    af = a.astype(np.float32)
    v = _fma32(af, rAC, _fma32(bf, rBC, F))
    return _sat_cvt(v, dt)


def _ort_qlinear_mul(args, at, profile):
    """com.microsoft QLinearMul, MLAS SSE2 formula: sat(cvt(fl32((a-za)(b-zb)) * fl32(fl32(sa*sb)/sc)) + zc).
    NOT bit-exact with onnxruntime 1.32 on this CPU: 40 of 20,329 tie-heavy outputs differ (its
    x86 kernel rounds ties as a fixed-point multiplier would)."""
    a, sa, za, b, sb, zb, sc, zc = (list(args) + [None] * 8)[:8]
    a, b = np.asarray(a), np.asarray(b)
    z = [0 if v is None else int(np.asarray(v).reshape(())) for v in (za, zb, zc)]
    ratio = np.float32(np.float32(np.float32(sa) * np.float32(sb)) / np.float32(sc))
    prod = ((a.astype(np.int64) - z[0]) * (b.astype(np.int64) - z[1])).astype(np.float32)
    v = (prod * ratio).astype(np.float32)
    from ._dtypes import qrange
    lo, hi = qrange(a.dtype)
    with np.errstate(invalid="ignore"):
        r = np.rint(v.astype(np.float64))
    return np.clip(np.clip(r, -2 ** 31, 2 ** 31 - 1) + z[2], lo, hi).astype(a.dtype)


def _ort_qlinear_gap(args, at, profile):
    """com.microsoft QLinearGlobalAveragePool (MLAS qlgavgpool.cpp, x86): acc = sum(x) - zx*N in
    int32, M = fl32(sx / fl32(sy * fl32(N))), then MlasRequantizeOutput (fl32(acc)*M, RNE, + zy,
    saturate).  Verified: 0 of 597 outputs differ from onnxruntime 1.32."""
    from .reference.requant import requantize
    x, sx, zx, sy, zy = (list(args) + [None] * 5)[:5]
    x = np.asarray(x)
    cl = int(at.get("channels_last", 0))
    axes = tuple(range(1, x.ndim - 1)) if cl else tuple(range(2, x.ndim))
    N = int(np.prod([x.shape[k] for k in axes]))
    zxi = 0 if zx is None else int(np.asarray(zx).reshape(()))
    acc = x.astype(np.int64).sum(axis=axes, keepdims=True) - zxi * N
    M = np.float32(np.float32(np.asarray(sx).reshape(())) /
                   np.float32(np.float32(np.asarray(sy).reshape(())) * np.float32(N)))
    return requantize(acc.astype(np.int32), M, None if zy is None else np.asarray(zy).reshape(()),
                      output_dtype=x.dtype, profile="onnxruntime")


def _float_sim(args, at, profile, f, n_in=1):
    """Q(f(DQ(x))) in float32: ORT's table-based / dequantizing contrib kernels."""
    from .reference import quantize_linear, dequantize_linear
    x, sx, zx, sy, zy = (list(args) + [None] * 5)[:5]
    xf = dequantize_linear(np.asarray(x), sx, zx, profile="onnxruntime")
    y = np.asarray(f(xf), np.float32)
    zz = zy if zy is not None else np.zeros((), np.asarray(x).dtype)
    return quantize_linear(y, sy, zz, profile="onnxruntime")


def _ort_sigmoid(args, at, profile):
    """QLinearSigmoid: ORT's lookup table Q(sigmoid(DQ(code))) (0 of 7,840 differ, ORT 1.32)."""
    return _float_sim(args, at, profile,
                      lambda v: (1.0 / (1.0 + np.exp(-v.astype(np.float64)))).astype(np.float32))


def _ort_leaky_relu(args, at, profile):
    """QLinearLeakyRelu: Q(leaky_relu(DQ(code))) (0 of 7,840 differ, ORT 1.32)."""
    al = np.float32(at.get("alpha", 0.01))
    return _float_sim(args, at, profile, lambda v: np.where(v >= 0, v, (v * al).astype(np.float32)))


def _ort_pool_geometry(at, spatial):
    """ORT PoolAttributes: (kernel, strides, pads [begin..., end...], output sizes) for the
    spatial input sizes (auto_pad, ceil_mode and dilations as ORT's ComputeOutputSize has them)."""
    k = [int(v) for v in at["kernel_shape"]]
    nd = len(k)
    s = [int(v) for v in at.get("strides", [])] or [1] * nd
    p = [int(v) for v in at.get("pads", [])] or [0] * (2 * nd)
    dl = [int(v) for v in at.get("dilations", [])] or [1] * nd
    ceil = int(at.get("ceil_mode", 0))
    ap = at.get("auto_pad", "NOTSET")
    ap = ap.decode() if isinstance(ap, bytes) else ap
    out = []
    for d in range(nd):
        n = int(spatial[d])
        if ap in ("SAME_UPPER", "SAME_LOWER"):
            need = ((n + s[d] - 1) // s[d] - 1) * s[d] + k[d] - n
            p[d] = int((need + 1) / 2) if ap == "SAME_LOWER" else int(need / 2)   # C division
            p[d + nd] = need - p[d]
        elif ap == "VALID":
            p[d] = p[d + nd] = 0
        v = np.float32(n + p[d] + p[d + nd] - dl[d] * (k[d] - 1) - 1) / np.float32(s[d]) + np.float32(1)
        o = int(np.ceil(v)) if ceil else int(v)
        if ceil and (o - 1) * s[d] >= n + p[d]:     # the last window must start inside the input
            o -= 1
        out.append(o)
    return k, s, p, out


def _ort_avgpool(args, at, profile):
    """com.microsoft QLinearAveragePool as ORT's CPU kernel computes it (qlinear_pool.cc):
    x_f = fl32(sx * (x - zx)); the window (clipped to the input; dilations ignored) summed in
    float32 in row-major order; divided by fl32(count) (the kernel size with count_include_pad,
    else the clipped window size); y = sat(int32(nearbyintf(fl32(fl32(sum / sy) + zy)))) -- the
    zero point is added before rounding, so ties go to the even *code*.  A kernel covering the
    whole (unpadded) input falls back to QLinearGlobalAveragePool's integer arithmetic."""
    from ._dtypes import qrange
    x, sx, zx, sy, zy = (list(args) + [None] * 5)[:5]
    x = np.asarray(x)
    dt = x.dtype
    cl = int(at.get("channels_last", 0))
    if cl:
        x = np.moveaxis(x, -1, 1)
    nd = x.ndim - 2
    k, s, p, out = _ort_pool_geometry(at, x.shape[2:])
    if list(x.shape[2:]) == k and not any(p):
        return _ort_qlinear_gap([np.moveaxis(x, 1, -1) if cl else x, sx, zx, sy, zy],
                                {"channels_last": cl}, profile)
    zxi = 0 if zx is None else int(np.asarray(zx).reshape(()))
    zyi = 0 if zy is None else int(np.asarray(zy).reshape(()))
    sxf = np.float32(np.asarray(sx).reshape(()))
    syf = np.float32(np.asarray(sy).reshape(()))
    xf = (sxf * (x.astype(np.int32) - zxi).astype(np.float32)).astype(np.float32)
    # zero-padded copy large enough for every window (adding +0.0 leaves a float sum unchanged)
    lo_pad = [p[d] for d in range(nd)]
    hi_pad = [max(0, (out[d] - 1) * s[d] - p[d] + k[d] - x.shape[2 + d]) for d in range(nd)]
    xp = np.pad(xf, [(0, 0), (0, 0)] + [(lo_pad[d], hi_pad[d]) for d in range(nd)])
    acc = np.zeros(x.shape[:2] + tuple(out), np.float32)
    for off in np.ndindex(*k):
        sl = tuple(slice(off[d], off[d] + (out[d] - 1) * s[d] + 1, s[d]) for d in range(nd))
        acc = (acc + xp[(slice(None), slice(None)) + sl]).astype(np.float32)
    if int(at.get("count_include_pad", 0)):
        cnt = np.full(tuple(out), np.float32(np.prod(k)), np.float32)
    else:
        cnt = np.ones(tuple(out), np.int64)
        for d in range(nd):
            st = np.arange(out[d]) * s[d] - p[d]
            size = np.minimum(st + k[d], x.shape[2 + d]) - np.maximum(st, 0)
            shape = [1] * nd
            shape[d] = out[d]
            cnt = cnt * size.reshape(shape)
        cnt = cnt.astype(np.float32)
    avg = (acc / cnt).astype(np.float32)
    v = ((avg / syf).astype(np.float32) + np.float32(zyi)).astype(np.float32)
    with np.errstate(invalid="ignore"):
        r = np.rint(v.astype(np.float64))
    r = np.where(np.isfinite(r) & (r >= -2.0 ** 31) & (r < 2.0 ** 31), r, -2.0 ** 31)
    qlo, qhi = qrange(dt)
    y = np.clip(r, qlo, qhi).astype(dt)
    return np.moveaxis(y, 1, -1) if cl else y


def _softmax_since(opset):
    """The SinceVersion of ai.onnx Softmax at a model opset (what ORT writes as ``opset``)."""
    return 13 if opset >= 13 else (11 if opset >= 11 else 1)


_LIBM = []


def _libm_fns():
    """(logf, exp) from the C math library ORT itself calls (glibc), else numpy stand-ins
    (float64 log rounded to float32; numpy exp)."""
    if not _LIBM:
        fns = None
        try:
            import ctypes
            import ctypes.util
            lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
            lib.logf.restype, lib.logf.argtypes = ctypes.c_float, [ctypes.c_float]
            lib.exp.restype, lib.exp.argtypes = ctypes.c_double, [ctypes.c_double]
            fns = (lambda v: np.float32(lib.logf(float(v))), lambda v: float(lib.exp(float(v))))
        except (OSError, AttributeError):
            fns = (lambda v: np.float32(np.log(np.float64(v))), lambda v: float(np.exp(np.float64(v))))
        _LIBM.append(fns)
    return _LIBM[0]


def _ort_qlinear_softmax(args, at, profile):
    """com.microsoft QLinearSoftmax as ORT 1.32's CPU kernel computes it (qlinear_softmax.cc;
    the arithmetic read off the shipped x86-64 binary and checked bit for bit).

    Rows: opset < 13 flattens to (prod(shape[:axis]), prod(shape[axis:])); opset >= 13 reduces
    along ``axis`` alone.  The default axis is the schema's -1 for every opset (the kernel's
    "opset < 13 -> 1" fallback never fires).  With D the row length:
    ``b = max(0, double(logf(FLT_MAX / fl32(D))) - 5) / sx`` and a float32 table
    ``T[k] = fl32(exp((k - 255 + b) * sx))`` (double), indexed by ``x - max(row) + 255``;
    ``sum`` adds the row's entries in float32, in order; ``N = double(floorf(1.0f / sy))``;
    ``y = clamp(nearbyint(double(T) * N / double(sum)) + zy)`` in double (ties to even),
    saturated to the 8-bit type (the scale is taken as 1/N: not Q(softmax) in general)."""
    x, sx, zx, sy, zy = (list(args) + [None] * 5)[:5]
    x = np.asarray(x)
    dt = x.dtype
    if "opset" not in at:
        raise ValueError("QLinearSoftmax: the 'opset' attribute is required (ORT: opset must be "
                         "existed in attributes of QlinearSoftmax)")
    opset = int(at["opset"])
    axis = int(at.get("axis", -1))
    axis = axis + x.ndim if axis < 0 else axis
    if x.size == 0:
        return np.zeros_like(x)
    if opset < 13:
        D = int(np.prod(x.shape[axis:]))
        rows = x.reshape(-1, D)
    else:
        xt = np.swapaxes(x, axis, -1)
        D = x.shape[axis]
        rows = xt.reshape(-1, D)
    sxf = np.float32(np.asarray(sx).reshape(()))
    if not sxf > 0:
        raise ValueError(f"QLinearSoftmax: x_scale must be positive, got {sxf}")
    logf, exp = _libm_fns()
    bs = float(logf(np.float32(np.finfo(np.float32).max) / np.float32(D)))
    bs = max(0.0, bs - 5.0) / float(sxf)
    table = np.array([exp((k - 255.0 + bs) * float(sxf)) for k in range(256)]).astype(np.float32)
    ri = rows.astype(np.int32)
    vt = table[ri - ri.max(axis=1, keepdims=True) + 255]
    vsum = np.cumsum(vt, axis=1, dtype=np.float32)[:, -1:]
    syf = np.float32(np.asarray(sy).reshape(()))
    with np.errstate(all="ignore"):
        n = np.float64(np.floor(np.float32(1.0) / syf))
        if not np.isfinite(n):
            n = 1.0 / np.float64(syf)
            n = np.floor(n) if abs(n) < 2.0 ** 52 else n
        v = np.rint(vt.astype(np.float64) * n / vsum.astype(np.float64))
    zyi = 0 if zy is None else int(np.asarray(zy).reshape(()))
    from ._dtypes import qrange
    lo, hi = qrange(dt)
    v = v + zyi
    y = np.where(np.isnan(v), 0, np.clip(np.nan_to_num(v, nan=0.0), lo, hi)).astype(dt)
    if opset < 13:
        return y.reshape(x.shape)
    return np.swapaxes(y.reshape(xt.shape), axis, -1)


_ORT_RESIZE_CTM = ("half_pixel", "pytorch_half_pixel", "asymmetric", "align_corners")


def _ort_resize_coord(o, scale, out_len, in_len, ctm):
    """ORT GetOriginalCoordinateFromResizedCoordinate, in float32."""
    f = np.float32
    o, scale = f(o), f(scale)
    if ctm == "half_pixel" or (ctm == "pytorch_half_pixel" and out_len > 1):
        return f(f(f(o + f(0.5)) / scale) - f(0.5))
    if ctm == "pytorch_half_pixel":
        return f(0)
    if ctm == "asymmetric":
        return f(o / scale)
    return f(0) if out_len == 1 else f(f(o * f(in_len - 1)) / f(out_len - 1))


def _ort_bilinear_params(in_len, out_len, scale, ctm):
    """ORT SetupUpsampleBilinear for one axis: (i1, i2, d1, d2) with the coordinate clamped to the
    input, d1 = |c - i1|, d2 = |c - i2| (0.5 each where i1 == i2)."""
    i1 = np.zeros(out_len, np.int64)
    i2 = np.zeros(out_len, np.int64)
    d1 = np.zeros(out_len, np.float32)
    d2 = np.zeros(out_len, np.float32)
    for o in range(out_len):
        c = _ort_resize_coord(o, scale, out_len, in_len, ctm) if scale != 1 else np.float32(o)
        c = np.float32(max(np.float32(0), min(c, np.float32(in_len - 1))))
        a = min(int(c), in_len - 1)
        b = min(a + 1, in_len - 1)
        if a == b:
            d1[o] = d2[o] = np.float32(0.5)
        else:
            d1[o] = abs(np.float32(c - np.float32(a)))
            d2[o] = abs(np.float32(c - np.float32(b)))
        i1[o], i2[o] = a, b
    return i1, i2, d1, d2


def _ort_resize_bilinear_int(X, out_hw, scales_hw, ctm):
    """ORT's CPU Resize (linear, NCHW, 8-bit integer input; upsample.h UpsampleBilinear):
    float weights ``w = fl32(dx * dy)``, ``v = ((w11*X11 + w21*X21) + w12*X12) + w22*X22`` in
    float32, then ``static_cast<T>``: truncation toward zero, not rounding."""
    f = np.float32
    H, W = X.shape[2], X.shape[3]
    y1, y2, dy1, dy2 = _ort_bilinear_params(H, out_hw[0], scales_hw[0], ctm)
    x1, x2, dx1, dx2 = _ort_bilinear_params(W, out_hw[1], scales_hw[1], ctm)
    xf = X.astype(f)
    r1, r2 = xf[:, :, y1], xf[:, :, y2]
    X11, X21, X12, X22 = r1[..., x1], r1[..., x2], r2[..., x1], r2[..., x2]
    DX1, DX2 = dx1[None, None, None, :], dx2[None, None, None, :]
    DY1, DY2 = dy1[None, None, :, None], dy2[None, None, :, None]
    v = (((DX2 * DY2).astype(f) * X11).astype(f) + ((DX1 * DY2).astype(f) * X21).astype(f)).astype(f)
    v = (v + ((DX2 * DY1).astype(f) * X12).astype(f)).astype(f)
    v = (v + ((DX1 * DY1).astype(f) * X22).astype(f)).astype(f)
    return np.trunc(v.astype(np.float64)).astype(np.int64).astype(X.dtype)


def _ort_concat(args, at, profile):
    """QLinearConcat: Q(concat(DQ(x_i))) (requantizes inputs whose scale/zero point differ)."""
    from .reference import quantize_linear, dequantize_linear
    sy, zy = args[0], args[1]
    xs = []
    for k in range(2, len(args), 3):
        x, s, z = args[k], args[k + 1], args[k + 2] if k + 2 < len(args) else None
        xs.append(dequantize_linear(np.asarray(x), s, z, profile="onnxruntime"))
    y = np.concatenate(xs, axis=int(at.get("axis", 0)))
    return quantize_linear(y, sy, zy, profile="onnxruntime")


def _contrib_s8_to_u8(name, fn, args, at, profile):
    """Run a contrib QLinear op the way ORT does after QDQS8ToU8: int8 codes and zero points + 128
    (uint8), the kernel in uint8, the result shifted back to int8."""
    if name == "QLinearConcat":
        pos = [1] + [k for j in range(2, len(args), 3) for k in (j, j + 2)]
    elif name in ("QLinearAdd", "QLinearMul"):
        pos = [0, 2, 3, 5, 7]
    else:
        pos = [0, 2, 4]
    args = list(args)
    for k in pos:
        if k < len(args) and args[k] is not None and np.asarray(args[k]).dtype == np.int8:
            args[k] = _shift_u8(args[k])
    r = np.asarray(fn(args, at, profile))
    return (r.astype(np.int16) - 128).astype(np.int8) if r.dtype == np.uint8 else r


_ORT_CONTRIB = {
    "QLinearAdd": _ort_qlinear_add,
    "QLinearMul": _ort_qlinear_mul,
    "QLinearGlobalAveragePool": _ort_qlinear_gap,
    "QLinearAveragePool": _ort_avgpool,
    "QLinearSigmoid": _ort_sigmoid,
    "QLinearLeakyRelu": _ort_leaky_relu,
    "QLinearConcat": _ort_concat,
    "QLinearSoftmax": _ort_qlinear_softmax,
}


_S8U8 = "__s8_to_u8"
_X_INPUTS = {"QLinearConv": ("x", "x_zero_point", "y_zero_point"),
             "QLinearMatMul": ("a", "a_zero_point", "y_zero_point"),
             "QGemm": ("A", "a_zero_point", "y_zero_point")}


def _shift_u8(v):
    return (np.asarray(v).astype(np.int16) + 128).astype(np.uint8)


def _s8_to_u8_run(opname, ins, at, profile, kernels=True):
    """ORT's QDQS8ToU8Transformer (level 2, x86): int8 activations become uint8 (codes and zero
    point + 128) before the fused kernel, so the integer GEMM is u8 x s8 (exactly the same
    accumulator, but subject to int16 pair saturation on AVX2).  The int8 output is
    recovered by shifting back (the uint8 saturation range is the int8 one shifted)."""
    from ._oprun import run_reference
    x, xz, yz = _X_INPUTS[opname]
    ins = dict(ins)
    ins[x] = _shift_u8(ins[x])
    ins[xz] = _shift_u8(ins.get(xz, np.int8(0)))
    out_i8 = yz in ins and np.asarray(ins[yz]).dtype == np.int8
    if out_i8:
        ins[yz] = _shift_u8(ins[yz])
    r = run_reference(opname, ins, at, profile=profile, kernels=kernels)
    if out_i8:
        r = (np.asarray(r).astype(np.int16) - 128).astype(np.int8)
    return r


def _run_trt_fused(args, at, profile, ops=None):
    """TensorRT fused kernel: see the module docstring.  ops: _op_funcs(...)."""
    ops = ops or _op_funcs(False)
    qlinear_conv, qgemm, conv_integer, matmul_integer = ops.qlinear_conv, ops.qgemm, ops.conv_integer, ops.matmul_integer
    from .reference.requant import round_to_int
    from ._dtypes import qrange
    args = list(args) + [None] * (9 - len(args))
    xq, sx, zx, wq, sw, zw, b, sy, zy = args
    target = at.pop("target")
    act = at.pop("activation", None)
    cmin = at.pop("clip_min", None)
    cmax = at.pop("clip_max", None)
    w_axis = at.pop("w_axis", 1)
    sx = np.asarray(sx)
    sw = np.asarray(sw)
    if target == "Conv":
        conv_at = {k: at[k] for k in ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
                   if k in at}
        if isinstance(conv_at.get("auto_pad"), bytes):
            conv_at["auto_pad"] = conv_at["auto_pad"].decode()
        if sy is not None:
            y = qlinear_conv(xq, sx, zx, wq, sw, zw, sy, zy,
                             None if b is None else np.asarray(b, np.float32).reshape(-1),
                             profile=profile, **conv_at)
        else:
            acc = conv_integer(xq, wq, zx, zw, **conv_at)
            S = (sx.astype(np.float32) * sw.astype(np.float32).reshape(-1)).astype(np.float32)
            S = S.reshape((1, -1) + (1,) * (acc.ndim - 2)) if S.size > 1 else S.reshape(())
            y = (acc.astype(np.float32) * S).astype(np.float32)
            if b is not None:
                y = (y + np.asarray(b, np.float32).reshape((1, -1) + (1,) * (acc.ndim - 2))).astype(np.float32)
    else:
        xq = np.asarray(xq)
        wq = np.asarray(wq)
        transA = int(at.get("transA", 0)) if target == "Gemm" else 0
        transB = int(at.get("transB", 0)) if target == "Gemm" else 0
        alpha = float(at.get("alpha", 1.0)) if target == "Gemm" else 1.0
        lead = None
        if target == "MatMul" and xq.ndim != 2:
            lead = xq.shape[:-1]
            xq = xq.reshape(-1, xq.shape[-1])
        if sw.size > 1 and w_axis not in ((0,) if transB else (1, -1)):
            raise ValueError(f"TensorRT fused {target}: weight scale axis {w_axis} is not the output "
                             "channel axis")
        bias = None if b is None else np.asarray(b, np.float32)
        if sy is not None:
            y = qgemm(xq, sx, zx, wq, sw.reshape(-1) if sw.size > 1 else sw, zw, bias, sy, zy,
                      alpha=alpha, transA=transA, transB=transB, profile=profile)
        else:
            A = xq.T if transA else xq
            B = wq.T if transB else wq
            acc = matmul_integer(A, B, zx, zw)
            S = (np.float32(alpha) * sx.astype(np.float32) * sw.astype(np.float32).reshape(-1)).astype(np.float32)
            y = (acc.astype(np.float32) * (S if S.size > 1 else S.reshape(()))).astype(np.float32)
            if bias is not None:
                y = (y + bias).astype(np.float32)
        if lead is not None:
            y = y.reshape(lead + y.shape[-1:])
    if act is None:
        return y
    if sy is None:      # float output: the activation in float
        if act == "Relu":
            return np.maximum(y, np.float32(0)).astype(y.dtype)
        return np.clip(y, np.float32(cmin), np.float32(cmax)).astype(y.dtype)
    lo, hi = qrange(y.dtype)
    z = int(np.asarray(zy).reshape(())) if zy is not None else 0
    yi = y.astype(np.int64)
    if act == "Relu":
        yi = np.maximum(yi, z)
    else:
        s = np.float32(np.asarray(sy).reshape(()))
        with np.errstate(all="ignore"):
            qlo = round_to_int(np.array(np.float32(cmin) / s, np.float32), "half_even") if np.isfinite(cmin) else lo - z
            qhi = round_to_int(np.array(np.float32(cmax) / s, np.float32), "half_even") if np.isfinite(cmax) else hi - z
        yi = np.clip(yi, max(lo, int(qlo) + z), min(hi, int(qhi) + z))
    return yi.astype(y.dtype)


def _op_funcs(kernels):
    """The integer ops the model runner calls: ``refquant.<op>`` (kernels=True: a fast kernel
    where one covers the call, the reference's bits, as tests/test_*_kernels.py and
    tools/fuzz_kernels.py check) or ``refquant.reference.<op>``."""
    if kernels:
        from . import _dispatch as mod
    else:
        from . import reference as mod
    return mod


def run_model(model, inputs, *, profile="onnx", fuse=None, return_fusions=False, overrides=None,
              kernels=True):
    """Run an ONNX model with the reference's arithmetic; return every intermediate and output tensor.

    model    onnx.ModelProto, a path to a .onnx file, or serialized bytes.
    inputs   dict {graph input name: numpy array} (dtype and static dimensions are checked).
    profile  profile name or refquant.Profile: the arithmetic of every quantized op.
    fuse     None (the graph as written, float simulation between Q and DQ), "onnxruntime-basic",
             "onnxruntime" (ORT's QDQ -> QLinear fusions, ORT_ENABLE_EXTENDED/ALL) or "tensorrt"
             (DQ -> Conv/MatMul/Gemm [-> act] -> Q as one int8 kernel).  See the module docstring
             for the exact rewrites and which tensors disappear.
    return_fusions  also return the list of :class:`Fusion` applied: ``(values, fusions)``.
    overrides  {tensor name: array}: the consumers of these tensors read the given values
             instead of the computed ones (e.g. an engine's observed tensors, to replay each
             layer on the engine's inputs).  The returned value of an overridden tensor is still
             the one its producer computes.  Names that do not exist in the executed graph
             (inside a fusion) are ignored.
    kernels  True (default): the integer ops run ``refquant.<op>``, a fast kernel wherever one
             covers the call (the reference's bits; a ResNet-50-like chain of 24 QLinearConv
             layers: 0.54 s -> see docs/performance.md, session 28); False: every op on
             ``refquant.reference`` itself.  REFQUANT_DISABLE_FAST=1 also turns the kernels off.

    Returns {tensor name: numpy array} for every node output of the executed graph, in
    topological order (a Python dict keeps insertion order).
    """
    values, _m, fusions = _execute(model, inputs, profile, fuse, overrides=overrides, kernels=kernels)
    if return_fusions:
        return values, fusions
    return values


_COMPUTED = "__refquant_computed"


def _apply_overrides(m, overrides):
    """Rename each overridden tensor's producer output to <t>__refquant_computed and feed <t>."""
    import onnx
    produced = {o for n in m.graph.node for o in n.output if o}
    todo = {t for t in overrides if t in produced}
    if not todo:
        return m, {}
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    for n in m2.graph.node:
        for k, o in enumerate(n.output):
            if o in todo:
                n.output[k] = o + _COMPUTED
    for t in sorted(todo):
        m2.graph.input.append(onnx.ValueInfoProto(name=t))
    return m2, {t: np.asarray(overrides[t]) for t in todo}


def _fuse_profile_error(exc, prof, fuse, m=None):
    """A ProfileError naming the real reason when a fuse mode and a profile cannot run together
    (onnx.reference hides a custom op's error behind "Issues with types ..."), else None."""
    from .profile import ProfileError
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if "(operator 'TensorRTFused')" in str(exc) and cause is not exc:
        return ProfileError(
            f"fuse='tensorrt' needs a float-bias profile such as tensorrt (TensorRT's fused "
            f"epilogue adds the float bias after the int32 accumulator; also pytorch-fbgemm, "
            f"pytorch-x86, pytorch-onednn); profile {prof.name}: {cause}")
    if isinstance(exc, ProfileError) and fuse in ("onnxruntime", "onnxruntime-basic") and \
            getattr(prof, "symmetric_only", False) and \
            (m is None or any(n.name.endswith(_S8U8) for n in m.graph.node)):
        return ProfileError(
            f"profile {prof.name} with fuse={fuse!r} is not a meaningful combination: the "
            "onnxruntime fusions reproduce ONNX Runtime's graph (its x86 QDQS8ToU8 rewrite shifts "
            "int8 activations to uint8 with zero point 128), which a symmetric-only profile "
            f"cannot run; use fuse='tensorrt' (or none) with profile {prof.name}, or an onnxruntime "
            f"profile with fuse={fuse!r} ({prof.name}: {exc})")
    return None


def _execute(model, inputs, profile, fuse, overrides=None, kernels=True):
    """(values, executed ModelProto, fusions): run_model's work, with the rewritten graph."""
    from onnx.reference import ReferenceEvaluator
    from .profile import get_profile
    model = load_model(model)
    fuse = _normalize_fuse(fuse)
    prof = get_profile(profile)
    feeds = _check_inputs(model, inputs)
    m, fusions = _rewrite(model, fuse)
    if overrides:
        if not isinstance(overrides, dict):
            raise TypeError(f"overrides: expected a dict {{tensor name: array}}, got "
                            f"{type(overrides).__name__}")
        run_m, extra = _apply_overrides(m, overrides)
        feeds = dict(feeds, **extra)
    else:
        run_m = m
    classes = _make_ops(prof, {f.output: f for f in fusions}, kernels)
    try:
        ev = ReferenceEvaluator(run_m, new_ops=classes)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"model: onnx.reference cannot load the model: {exc}") from exc
    try:
        res = ev.run(None, feeds, intermediate=True)
    except Exception as exc:  # noqa: BLE001  (re-raised, with the real cause where known)
        better = _fuse_profile_error(exc, prof, fuse, m)
        if better is None:
            raise
        raise better from (exc.__cause__ or exc)
    out = {}
    for n in m.graph.node:
        for o in n.output:
            if not o:
                continue
            key = o + _COMPUTED if o + _COMPUTED in res else o
            if key in res:
                v = res[key]
                out[o] = np.asarray(v) if not isinstance(v, (list, tuple)) else v
    for o in m.graph.output:
        if o.name in res and o.name not in out:
            out[o.name] = np.asarray(res[o.name])
    return out, m, fusions
