"""``refquant lint``: quantization-parameter hazards in an ONNX model, for a target engine.

    refquant lint MODEL.onnx [--target PROFILE] [--json] [--fail-on {error,warning,info}]

Python: ``lint_model(model, target=None) -> [Finding]``; each finding has ``severity``
("error": the target rejects the model or computes garbage; "warning": results silently differ
from what the graph means or between machines; "info"), ``code``, ``node``, ``message``,
``hint`` and ``to_dict()``.

Exit status: 0 when no finding reaches ``--fail-on`` (default: error), 1 when one does, 2 on bad
input (a missing file, a file that is not an ONNX model, an unknown --target).

Rules (code: what is checked)
-----------------------------
- RQ101 scale validity: every constant scale of QuantizeLinear / DequantizeLinear / QLinear* must
  be finite and > 0 (zero, negative, NaN, Inf are errors); a float32-denormal scale (< 2^-126) is an
  error (x/s overflows, engines that flush denormals divide by zero).
- RQ102 fp16-unrepresentable scale: a scale below fp16's smallest normal (6.1e-5) loses precision
  in an fp16 network (TensorRT FP16/strongly typed fp16, ORT fp16 models), below 2^-24 it becomes
  0, above 65504 Inf (warning; error where the scale itself is float16; info for the subnormal
  float32 scales of 16-bit quantization, which are usual, unless the target is TensorRT).
- RQ103 zero point: its type must be the quantized tensor's type (DequantizeLinear x vs zp),
  scalar where the op needs it (QLinearConv x/y, QLinearMatMul a/y); uint4 without a zero
  point gets the implicit 0 while MatMulNBits-style kernels default to 8 (onnxruntime#31692).
- RQ104 symmetric-only target (``Profile.symmetric_only``, TensorRT): a non-zero zero point is an
  error with the target's own message.  Targets that only need symmetric weights (pytorch-onednn:
  every weight zero point 0; tflite-*: int8 weight zero points 0, ``Profile.extra["weights"]``)
  get the same error for a weight's non-zero zero point -- the profile's QLinear ops raise
  ProfileError for it too.
- RQ105 TensorRT types and ops: uint8 DQ input rejected; uint8 Q with zp 0 silently becomes int8
  (range [-128, 127] instead of [0, 255]); int16/uint16/2-bit/e5m2 Q/DQ rejected; QLinearConv,
  QLinearMatMul, ConvInteger, MatMulInteger, DynamicQuantizeLinear rejected by the parser;
  scales/zero points must be build-time constants; per-channel only on constant inputs; a 1-D
  scale without an ``axis`` attribute means axis 0 to the parser (ONNX says 1).
- RQ106 Q -> DQ pair whose scale or zero point differ (every value silently rescaled).  Per-tensor
  parameters are compared by value: a scalar and a 1-element vector are the same parameter.
- RQ201 per-channel axis vs op: the weight scale of Conv must run along axis 0 (output
  channels), of ConvTranspose along axis 1, of Gemm along 1 - transB, of MatMul along the last
  axis; the scale length must equal that dimension.  Depthwise Conv with a per-tensor weight scale
  is reported as info.
- RQ202 narrow vs full range: int8 weights using -128 (full range) where the target expects
  [-127, 127] (TFLite weights, TensorRT's absmax/127 convention) -- warning for those targets,
  info when a model mixes both conventions.
- RQ301 int32 bias: a float bias feeding a DQ'd Conv/Gemm becomes round(b / (sx*sw)) in ORT
  (BiasQuantization, ORT_ENABLE_BASIC) and in quantization tools: beyond int32 it wraps/clamps
  (error), beyond 2^30 is near overflow with the accumulator added (warning), beyond 2^24 the
  float32 epilogue (cvtdq2ps) starts rounding (info).  Integer biases of QLinearConv/QGemm: the
  same limits on |bias| + the worst-case accumulator.  A bias DQ whose scale differs from
  sx*sw blocks ORT's QLinear fusion (warning); for a TFLite target, beyond 0.02 output steps
  (|sx*sw - sb| / sy) LiteRT refuses a FULLY_CONNECTED or uint8 CONV_2D layer (error).
- RQ401 int16 pair saturation (AVX2 without VNNI, vpmaddubsw): for every u8 x s8 integer GEMM
  or convolution (QLinear*, *Integer, or a QDQ unit ORT fuses into one), the number of weight
  pairs (k, k+1) in the kernel's reduction order for which an activation in [0, 255] can push
  w[k]*a + w[k+1]*a' outside int16 -- the "will this model give other results on an AVX2 CPU"
  check (warning; the hint names reduce_range / 7-bit weights / VNNI).  int8 activations of a
  QDQ unit count too for ONNX Runtime (generic target or an onnxruntime* target): its
  QDQS8ToU8Transformer (ORT_ENABLE_EXTENDED and above, x86) shifts them to uint8 before the fused
  kernel, which is then u8 x s8 (observed in ORT 1.32's optimized graphs; the saturation itself
  cannot be reproduced on a VNNI/AMX CPU).  Target-aware: not reported for targets whose kernels
  never saturate (tensorrt*, tflite-*, pytorch-qnnpack); for pytorch-fbgemm a depthwise conv on
  fbgemm's fast path saturates on every x86 CPU (VNNI or not), which the message says.
- RQ501 int4 / blocked quantization: the scale shape must match x with the blocked axis divided
  by block_size (rounded up); a MatMul weight should be blocked along K; TensorRT needs an even
  last dimension for int4 weights and takes int4 for weights only.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass

import numpy as np

from .model import _Graph, _attrs, load_model

__all__ = ["lint_model", "Finding", "add_parser", "run", "SEVERITIES"]

SEVERITIES = ("error", "warning", "info")
_FP16_MIN_NORMAL = 6.103515625e-05
_FP16_MIN_SUB = 5.960464477539063e-08
_F32_TINY = float(np.finfo(np.float32).tiny)
_INT_OPS_TRT_REJECTS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
                        "DynamicQuantizeLinear")


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str
    node: str
    message: str
    hint: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)

    def __str__(self):
        s = f"{self.severity:<7} {self.code} [{self.node}] {self.message}"
        if self.hint:
            s += f"\n        hint: {self.hint}"
        return s


# scale / zp input positions: op -> [(scale index, zp index, quantized-tensor index)]
_QPARAMS = {
    "QuantizeLinear": [(1, 2, None)],
    "DequantizeLinear": [(1, 2, 0)],
    "QLinearConv": [(1, 2, 0), (4, 5, 3), (6, 7, None)],
    "QLinearMatMul": [(1, 2, 0), (4, 5, 3), (6, 7, None)],
    "QGemm": [(1, 2, 0), (4, 5, 3), (7, 8, None)],
}


_MOVES = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "MaxPool", "Slice")


def _dq_through(G, tensor):
    """The DequantizeLinear feeding ``tensor``, looking through data-movement ops (ORT moves the
    DQ forward across them before fusing)."""
    from .model import _dq_info
    for _ in range(16):
        d = _dq_info(G, tensor)
        if d is not None:
            return d
        i = G.producer.get(tensor)
        if i is None or G.nodes[i].op_type not in _MOVES:
            return None
        tensor = G.nodes[i].input[0]
    return None


class _Linter:
    def __init__(self, model, target):
        from .profile import get_profile
        self.model = load_model(model)
        self.G = _Graph(self.model)
        self.prof = get_profile(target) if target is not None else None
        self.trt = bool(self.prof is not None and (self.prof.symmetric_only or
                                                    self.prof.name.startswith("tensorrt")))
        self.tflite = bool(self.prof is not None and self.prof.name.startswith("tflite"))
        self.findings = []
        self.opset = {o.domain or "": o.version for o in self.model.opset_import}.get("", 21)

    def add(self, severity, code, node_i, message, hint=""):
        lab = self.G.labels[node_i] if isinstance(node_i, int) else str(node_i)
        self.findings.append(Finding(severity, code, lab, message, hint))

    def const(self, t):
        return self.G.const(t)

    # ----------------------------------------------------------------- scales and zero points
    def check_qparams(self, i, n):
        op = n.op_type
        for si, zi, xi in _QPARAMS.get(op, ()):
            sname = n.input[si] if len(n.input) > si else ""
            zname = n.input[zi] if len(n.input) > zi else ""
            if not sname:
                continue
            s = self.const(sname)
            if s is None:
                if self.trt and op in ("QuantizeLinear", "DequantizeLinear"):
                    self.add("error", "RQ105", i, f"scale {sname!r} is not a constant",
                             "TensorRT needs scales and zero points as build-time constants "
                             "(initializers)")
                continue
            z = self.const(zname) if zname else None
            x_dt = None
            if xi is not None and len(n.input) > xi:
                from .model import _tensor_dtype
                x_dt = _tensor_dtype(self.G, n.input[xi])
            # an int32 bias DQ's scale is sx*sw, tiny by construction: no fp16 check
            qt = np.asarray(z).dtype if z is not None else (x_dt if op == "DequantizeLinear" else None)
            self.check_scale(i, sname, np.asarray(s), fp16=(x_dt != np.dtype(np.int32)),
                             wide=qt is not None and qt in (np.dtype(np.int16), np.dtype(np.uint16)))
            if z is not None:
                z = np.asarray(z)
                if x_dt is not None and z.dtype != x_dt:
                    self.add("error", "RQ103", i, f"zero point {zname!r} is {z.dtype} but the "
                             f"quantized input {n.input[xi]!r} is {x_dt}",
                             "the zero point must have the quantized tensor's type")
                if z.dtype.kind in "iu" and np.any(z != 0) and self.prof is not None \
                        and self.prof.symmetric_only:
                    self.add("error", "RQ104", i, f"non-zero zero point {zname!r} "
                             f"(values {np.unique(z)[:4].tolist()}): {self.prof.symmetric_error or 'symmetric only'}",
                             f"target {self.prof.name!r} accepts only symmetric quantization: "
                             "re-quantize with zero point 0 (int8 symmetric scale absmax/127)")
                if z.dtype.kind in "iu" and np.any(z != 0) and self.prof is not None \
                        and not self.prof.symmetric_only and self._is_weight_zp(n, zname):
                    why = self._weight_zp_rule(z.dtype)
                    if why:
                        self.add("error", "RQ104", i, f"non-zero weight zero point {zname!r} (values "
                                 f"{np.unique(z)[:4].tolist()}): {why}",
                                 f"target {self.prof.name!r} needs weight zero points of 0: "
                                 "re-quantize the weights symmetrically (int8, scale absmax/127)")
                if op in ("QLinearConv", "QLinearMatMul") and si in (1, 6) and np.size(z) != 1:
                    self.add("error", "RQ103", i, f"zero point {zname!r} must be a scalar for {op}")
            elif x_dt is not None and str(x_dt) == "uint4" and op == "DequantizeLinear":
                self.add("warning", "RQ103", i, f"uint4 input {n.input[0]!r} has no zero point: the "
                         "implicit zero point is 0",
                         "ORT's MatMulNBits/CUDA kernels default uint4 to 8 (onnxruntime#31692); "
                         "store the zero point explicitly")
            if zname and z is None and self.trt and op in ("QuantizeLinear", "DequantizeLinear"):
                self.add("error", "RQ105", i, f"zero point {zname!r} is not a constant",
                         "TensorRT needs build-time constant zero points")

    def check_scale(self, i, name, s, fp16=True, wide=False):
        """RQ101 / RQ102 for one scale.  wide: the quantized type is 16-bit, whose fine steps
        give float32 scales below fp16's normal range by design (range / 65535): with no fp16
        target (TensorRT) that is reported as info, not a warning."""
        sf = s.astype(np.float64)
        bad = ~np.isfinite(sf) | (sf <= 0)
        if bad.any():
            vals = np.unique(sf[bad])[:4].tolist()
            self.add("error", "RQ101", i, f"scale {name!r} has {int(bad.sum())} zero/negative/NaN/Inf "
                     f"value(s) {vals}", "every scale must be finite and > 0; a zero scale usually "
                     "comes from a constant (all-equal) calibration range")
        ok = sf[~bad]
        den = ok < _F32_TINY
        if den.any():
            self.add("error", "RQ101", i, f"scale {name!r} has {int(den.sum())} float32-denormal "
                     f"value(s) (min {ok.min():.3g})", "x/s overflows to Inf and engines that flush "
                     "denormals (XNNPACK, GPUs with FTZ) divide by zero; widen the range or clamp "
                     "the scale to >= 2^-126")
        rest = ok[~den]
        if rest.size and fp16:
            sev = "error" if s.dtype == np.float16 else "warning"
            if (rest < _FP16_MIN_SUB / 2).any():
                self.add(sev, "RQ102", i, f"scale {name!r} becomes 0 in float16 (min {rest.min():.3g})",
                         "an fp16 network (TensorRT FP16, fp16 ONNX models) loses this scale entirely")
            elif (rest < _FP16_MIN_NORMAL).any():
                quiet = wide and s.dtype != np.float16 and not self.trt
                self.add(sev if s.dtype == np.float16 else ("info" if quiet else "warning"), "RQ102", i,
                         f"scale {name!r} is subnormal in float16 (min {rest.min():.3g} < 6.1e-5)",
                         "in fp16 the scale keeps fewer than 11 significant bits: quantized values "
                         "change in fp16 networks (TensorRT-Incubator#392)"
                         + ("; usual for 16-bit quantization, harmless in float32 engines" if quiet else ""))
            if (rest > 65504).any():
                self.add(sev, "RQ102", i, f"scale {name!r} overflows float16 (max {rest.max():.3g})",
                         "Inf in an fp16 network")

    # ----------------------------------------------------------------- TensorRT type rules
    def check_trt(self, i, n):
        if not self.trt:
            return
        op = n.op_type
        if op in _INT_OPS_TRT_REJECTS:
            self.add("error", "RQ105", i, f"{op} is rejected by the TensorRT ONNX parser",
                     "export Q/DQ (QDQ format) instead of QOperator ops; TensorRT fuses "
                     "DQ -> Conv/MatMul -> Q itself")
            return
        if op not in ("QuantizeLinear", "DequantizeLinear"):
            return
        from .model import _tensor_dtype, _q_info
        if op == "DequantizeLinear":
            dt = _tensor_dtype(self.G, n.input[0])
        else:
            q = _q_info(self.G, i)
            dt = q["dtype"] if q else None
        a = _attrs(n)
        if dt is not None:
            name = str(dt)
            if name == "uint8":
                if op == "DequantizeLinear":
                    self.add("error", "RQ105", i, "uint8 DequantizeLinear input is rejected by TensorRT",
                             "use int8 (symmetric) quantization")
                elif q is not None and (q["zp"] is None or not np.any(np.asarray(q["zp"]) != 0)):
                    self.add("warning", "RQ105", i, "uint8 QuantizeLinear becomes int8 in TensorRT "
                             "(with a parser warning): the output range is [-128, 127], not [0, 255]",
                             "use int8 with zero point 0")
            elif name == "int32":
                self.add("error", "RQ105", i, "int32 (bias) DequantizeLinear is not supported by TensorRT",
                         "keep the Conv/Gemm bias in float: TensorRT applies it in the fused "
                         "kernel's float epilogue")
            elif name not in ("int8", "int4", "float8_e4m3fn", "float4_e2m1fn"):
                self.add("error", "RQ105", i, f"{name} Q/DQ is not supported by TensorRT",
                         "TensorRT takes INT8, INT4 (weights), FP8 E4M3 and FP4 E2M1")
        s = self.const(n.input[1]) if len(n.input) > 1 else None
        if s is not None and np.size(s) > 1:
            if "axis" not in a:
                self.add("warning", "RQ105", i, "per-channel scale without an 'axis' attribute: "
                         "ONNX means axis 1, the TensorRT parser uses axis 0",
                         "write the axis explicitly")
            if self.const(n.input[0]) is None and op == "DequantizeLinear" \
                    and self.G.prod(n.input[0], "QuantizeLinear") is None:
                self.add("error", "RQ105", i, "per-channel quantization of a non-constant tensor",
                         "TensorRT quantizes activations per tensor only")

    # ----------------------------------------------------------------- per-channel axis
    def check_axes(self):
        G = self.G
        for i, n in enumerate(G.nodes):
            if n.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul") or len(n.input) < 2:
                continue
            d = G.prod(n.input[1], "DequantizeLinear")
            if d is None:
                continue
            dq = G.nodes[d]
            s = self.const(dq.input[1]) if len(dq.input) > 1 else None
            w = self.const(dq.input[0])
            if s is None:
                continue
            a = _attrs(dq)
            if a.get("block_size", 0):
                continue
            na = _attrs(n)
            wshape = None if w is None else np.shape(w)
            if n.op_type == "Conv":
                want = 0
            elif n.op_type == "ConvTranspose":
                want = 1
            elif n.op_type == "Gemm":
                want = 0 if na.get("transB", 0) else 1
            else:
                want = (len(wshape) - 1) if wshape is not None else 1
            if np.size(s) <= 1:
                if n.op_type == "Conv" and wshape is not None and len(wshape) >= 2 and \
                        na.get("group", 1) > 1 and wshape[1] == 1:
                    self.add("info", "RQ201", d, f"depthwise Conv {G.labels[i]!r} has a per-tensor "
                             "weight scale", "depthwise filters differ widely in range: per-channel "
                             "(axis 0) scales are usually much more accurate")
                continue
            axis = a.get("axis", 1)
            nd = len(wshape) if wshape is not None else None
            ax = axis % nd if nd else axis
            wn = want % nd if nd else want
            if ax != wn:
                self.add("error", "RQ201", d, f"per-channel weight scale of {n.op_type} "
                         f"{G.labels[i]!r} runs along axis {axis}; the output channels are axis {want}",
                         {"Conv": "Conv weights (M, C/g, k...) are per output channel: axis 0",
                          "ConvTranspose": "ConvTranspose weights are (C_in, C_out/g, k...): the "
                                           "output channels are axis 1 (TensorRT #1694)",
                          "Gemm": f"Gemm with transB={na.get('transB', 0)}: B's output columns are "
                                  f"axis {want} (onnxruntime PR #21793)",
                          "MatMul": "MatMul weights (K, N): per output column is the last axis"}[n.op_type])
            elif wshape is not None and np.size(s) != wshape[ax]:
                self.add("error", "RQ201", d, f"per-channel scale has {np.size(s)} values, axis "
                         f"{axis} of the weight has {wshape[ax]}")

    # ----------------------------------------------------------------- narrow vs full range
    def check_ranges(self):
        G = self.G
        full, narrow = [], []
        for i, n in enumerate(G.nodes):
            if n.op_type != "DequantizeLinear":
                continue
            w = self.const(n.input[0])
            if w is None or np.asarray(w).dtype != np.int8 or np.size(w) < 16:
                continue
            cons = G.consumers.get(n.output[0], [])
            if not any(G.nodes[c].op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") for c in cons):
                continue
            (full if np.any(np.asarray(w) == -128) else narrow).append(i)
        if full and (self.tflite or self.trt):
            for i in full:
                self.add("warning", "RQ202", i, "int8 weights use -128 (full range [-128, 127])",
                         "TFLite's int8 weight spec and TensorRT's absmax/127 scales assume the "
                         "narrow range [-127, 127] (onnxruntime#3442, TensorRT #1796); -128 cannot "
                         "be negated exactly")
        elif full and narrow:
            self.add("info", "RQ202", full[0], f"{len(full)} weight tensor(s) use the full int8 range, "
                     f"{len(narrow)} the narrow one [-127, 127]",
                     "mixed conventions usually mean two quantizers: check that the scales match the "
                     "range each assumed")

    # ----------------------------------------------------------------- bias
    def check_bias(self):
        G = self.G
        for i, n in enumerate(G.nodes):
            op = n.op_type
            if op in ("Conv", "Gemm") and len(n.input) > 2 and n.input[2]:
                self._bias_qdq(i, n)
            elif op == "QLinearConv" and len(n.input) > 8 and n.input[8]:
                self._bias_int(i, n, self.const(n.input[8]), n.input[3])
            elif op == "QGemm" and len(n.input) > 6 and n.input[6]:
                self._bias_int(i, n, self.const(n.input[6]), n.input[3])

    def _tflite_refuses_bias_scale(self, i, n, dx, want, got):
        """LiteRT's check (kernel_util.cc GetQuantizedConvolutionMultipler, for FULLY_CONNECTED
        and the legacy uint8 CONV_2D path, per-tensor weights): |fl32(x_s * w_s) - bias_scale| /
        y_scale <= 0.02, y_scale the Q the layer's output reaches (through Relu / Clip)."""
        if not self.tflite or want.size != 1:
            return False
        if dx.get("zp") is not None:
            x_u8 = np.asarray(dx["zp"]).dtype == np.uint8
        else:
            from .model import _tensor_dtype
            x_u8 = _tensor_dtype(self.G, dx["q"]) == np.dtype(np.uint8)
        if n.op_type == "Conv" and not x_u8:
            return False
        G = self.G
        j = i
        while True:
            c = G.consumers.get(G.nodes[j].output[0], [])
            if len(c) != 1:
                return False
            j = c[0]
            if G.nodes[j].op_type == "QuantizeLinear":
                break
            if G.nodes[j].op_type not in ("Relu", "Clip"):
                return False
        sy = self.const(G.nodes[j].input[1])
        if sy is None or np.size(sy) != 1 or not float(np.asarray(sy).reshape(())) > 0:
            return False
        diff = abs(float(want.reshape(())) - float(np.asarray(got).reshape(-1)[0]))
        return diff / float(np.asarray(sy).reshape(())) > 0.02

    def _bias_qdq(self, i, n):
        from .model import _dq_info
        G = self.G
        dx = _dq_info(G, n.input[0])
        dw = _dq_info(G, n.input[1])
        if dx is None or dw is None:
            return
        sx = np.asarray(dx["scale"], np.float64).reshape(-1)
        sw = np.asarray(dw["scale"], np.float64).reshape(-1)
        db = _dq_info(G, n.input[2])
        if db is not None:
            bq = self.const(db["q"])
            if bq is None:
                return
            want = (np.asarray(dx["scale"], np.float32) * np.asarray(dw["scale"], np.float32)).astype(np.float32)
            got = np.asarray(db["scale"], np.float32)
            if got.size == want.size:
                if self._tflite_refuses_bias_scale(i, n, dx, want, got):
                    self.add("error", "RQ301", db["index"], "bias scale differs from x_scale * w_scale "
                             "by more than 0.02 output steps", "LiteRT refuses the model (kernel_util.cc "
                             "GetQuantizedConvolutionMultipler: |x_scale * w_scale - bias_scale| / "
                             "y_scale <= 0.02, for FULLY_CONNECTED and uint8 CONV_2D)")
                elif not np.array_equal(got.reshape(want.shape), want):
                    self.add("warning", "RQ301", db["index"], "bias scale differs from "
                             "x_scale * w_scale", "ORT's QDQ selectors then do not fuse the Conv into "
                             "QLinearConv; the engine and the float simulation diverge")
            self._bias_int(i, n, np.asarray(bq), n.input[1], qdq=True)
            return
        b = self.const(n.input[2])
        if b is None or np.asarray(b).dtype.kind != "f":
            return
        b = np.asarray(b, np.float64).reshape(-1)
        s = sx[0] * sw if sw.size == b.size else sx[0] * sw[0]
        with np.errstate(all="ignore"):
            q = np.abs(b / s)
        mx = float(np.nanmax(q)) if q.size else 0.0
        where = int(np.nanargmax(q)) if q.size else 0
        msg = (f"float bias {n.input[2]!r} in units of x_scale*w_scale reaches {mx:.4g} "
               f"(channel {where}: b={b[where]:.4g}, sx*sw={float(np.broadcast_to(s, b.shape)[where]):.3g})")
        if not np.isfinite(mx) or mx > 2 ** 31 - 1:
            self.add("error", "RQ301", i, msg + ": beyond int32",
                     "ORT quantizes this bias to int32 at ORT_ENABLE_BASIC and above (out of range -> "
                     "INT32_MIN) and quantization tools clamp it (onnxruntime PR #22020): tiny weight "
                     "scales are the usual cause; raise the weight scale floor or keep this layer float")
        elif mx > 2 ** 30:
            self.add("warning", "RQ301", i, msg + ": near the int32 limit",
                     "acc + bias may overflow int32; raise the weight scale floor")
        elif mx > 2 ** 24:
            self.add("info", "RQ301", i, msg + ": beyond 2^24",
                     "the int32 bias is exact, but acc + bias above 2^24 rounds in the float32 "
                     "epilogue (cvtdq2ps)")

    def _bias_int(self, i, n, b, wname, qdq=False):
        if b is None:
            return
        b = np.asarray(b).astype(np.int64).reshape(-1)
        w = self.const(wname) if not qdq else None
        if qdq:
            from .model import _dq_info
            d = _dq_info(self.G, wname)
            w = self.const(d["q"]) if d else None
        K = int(np.size(w)) // max(int(b.size), 1) if w is not None else 0
        worst = int(np.abs(b).max()) + K * 255 * 128 if b.size else 0
        if b.size and int(np.abs(b).max()) > 2 ** 31 - 1:
            self.add("error", "RQ301", i, "int32 bias out of range")
        elif worst > 2 ** 31 - 1:
            self.add("warning", "RQ301", i, f"|bias| + worst-case accumulator reaches {worst} > 2^31 - 1",
                     "acc + bias can wrap in int32")

    # ----------------------------------------------------------------- int16 pairs
    def _weight_codes(self, t):
        """A constant weight's integer codes: an initializer, or QuantizeLinear of a constant
        float tensor with constant parameters (AddQDQPairToWeight), folded by the reference."""
        w = self.const(t)
        if w is not None:
            return w
        i = self.G.producer.get(t)
        if i is None:
            return None
        n = self.G.nodes[i]
        if n.op_type != "QuantizeLinear" or n.domain not in ("", "ai.onnx", "com.microsoft"):
            return None
        x = self.const(n.input[0])
        sc = self.const(n.input[1]) if len(n.input) > 1 else None
        zp = self.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if x is None or sc is None:
            return None
        a = _attrs(n)
        try:
            from .reference import quantize_linear
            return quantize_linear(np.asarray(x), np.asarray(sc), None if zp is None else np.asarray(zp),
                                   axis=int(a.get("axis", 1)), block_size=int(a.get("block_size", 0) or 0))
        except Exception:  # noqa: BLE001 - not foldable here: not checked
            return None

    def _ort_integer_units(self):
        """Labels of the float Conv / MatMul / Gemm nodes ONNX Runtime fuses into integer
        kernels (plan_fusions with "onnxruntime", the extended level), computed once."""
        if not hasattr(self, "_ort_units"):
            from .model import plan_fusions
            try:
                fus = plan_fusions(self.model, "onnxruntime")
            except Exception:  # noqa: BLE001 - a model the planner cannot read: check every unit
                self._ort_units = set(self.G.labels)
            else:
                self._ort_units = {lab for f in fus if f.kind in ("QLinearConv", "QLinearMatMul", "QGemm",
                                                                 "MatMulIntegerToFloat") for lab in f.nodes}
        return self._ort_units

    def check_pairs(self):
        from .model import _dq_info, _tensor_dtype
        G = self.G
        for i, n in enumerate(G.nodes):
            op = n.op_type
            site = None
            if op in ("QLinearConv", "ConvInteger"):
                xw = (n.input[0], n.input[3] if op == "QLinearConv" else n.input[1])
                site = ("conv",) + xw
            elif op in ("QLinearMatMul",):
                site = ("matmul", n.input[0], n.input[3])
            elif op == "MatMulInteger":
                site = ("matmul", n.input[0], n.input[1])
            elif op == "QGemm":
                site = ("gemm", n.input[0], n.input[3])
            elif op in ("Conv", "MatMul", "Gemm") and len(n.input) > 1:
                dx, dw = _dq_through(G, n.input[0]), _dq_info(G, n.input[1])
                if dx is None or dw is None:
                    continue
                site = ({"Conv": "conv", "MatMul": "matmul", "Gemm": "gemm"}[op], dx["q"], dw["q"])
            if site is None:
                continue
            if op in ("Conv", "MatMul", "Gemm") and (self.prof is None or self.prof.name.startswith("onnxruntime")) \
                    and G.labels[i] not in self._ort_integer_units():
                continue    # ORT keeps this unit in float (no integer kernel, nothing to saturate)
            kind, xn, wn = site
            if self.prof is not None and (self.trt or self.tflite or
                                          self.prof.name.startswith("pytorch-qnnpack")):
                continue    # GPU / ARM-style kernels widen to int16 or int32 before multiplying
            xdt = _tensor_dtype(G, xn)
            if xdt is None and op in ("QLinearConv", "QLinearMatMul", "QGemm"):
                # an activation from another com.microsoft op (QLinearAdd, QGemm ...): its type
                # is the op's activation zero point's
                z = self.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
                xdt = None if z is None else np.asarray(z).dtype
            w = self._weight_codes(wn)
            if w is None or np.asarray(w).dtype != np.int8:
                continue
            converted = False
            if xdt == np.dtype(np.int8) and op in ("Conv", "MatMul", "Gemm") and \
                    (self.prof is None or self.prof.name.startswith("onnxruntime")):
                # ORT QDQS8ToU8Transformer: s8 activation pairs run as u8 on x86 (and only then
                # is the unit fused into an integer kernel)
                from .model import _eff_dtype
                if _eff_dtype(G, xn) != np.dtype(np.uint8):
                    continue
                converted = True
            elif xdt != np.dtype(np.uint8):
                continue
            w = np.asarray(w).astype(np.int64)
            if kind == "conv":
                if w.ndim < 3:
                    continue
                if (op in ("QLinearConv", "Conv") and (self.prof is None or self.prof.name.startswith("onnxruntime"))
                        and w.shape[1] == 1
                        and w.shape[0] == int(_attrs(n).get("group", 1))):
                    continue    # ORT's depthwise QLinearConv (MlasConvDepthwise) widens: exact
                M, Cg = w.shape[:2]
                cols = np.moveaxis(w.reshape(M, Cg, -1), 1, 2).reshape(M, -1)   # (kpos, c), c fastest
            elif kind == "gemm":
                tb = _attrs(n).get("transB", 0)
                cols = w if tb else w.T          # (N, K)
            else:
                if w.ndim != 2:
                    cols = np.moveaxis(w, -1, -2).reshape(-1, w.shape[-2])
                else:
                    cols = w.T
            K = cols.shape[1]
            if K < 2:
                continue
            if K % 2:
                cols = np.concatenate([cols, np.zeros((cols.shape[0], 1), np.int64)], axis=1)
            w0, w1 = cols[:, 0::2], cols[:, 1::2]
            hi = 255 * (np.maximum(w0, 0) + np.maximum(w1, 0))
            lo = 255 * (np.minimum(w0, 0) + np.minimum(w1, 0))
            bad = (hi > 32767) | (lo < -32768)
            nb = int(bad.sum())
            if nb:
                worst = int(max(hi.max(), -lo.min()))
                pre = (f"s8 activations (ORT converts them to u8 = x + 128 on x86, "
                       f"QDQS8ToU8Transformer) x s8 weights, {op}" if converted else f"u8 x s8 {op}")
                where, hint = self._rq401_where(n, kind, w)
                self.add("warning", "RQ401", i, f"{pre}: {nb} of {bad.size} weight pairs "
                         f"(k, k+1) can leave int16 for activations in [0, 255] (worst |pair sum| "
                         f"{worst} > 32767): {where}", hint)

    def _is_weight_zp(self, n, zname):
        """Is ``zname`` the zero point of a weight: a QLinear op's w/b/B zero point, or that of a
        DequantizeLinear of a constant feeding a Conv/ConvTranspose/MatMul/Gemm weight input?"""
        if n.op_type in ("QLinearConv", "QLinearMatMul", "QGemm"):
            return len(n.input) > 5 and n.input[5] == zname
        if n.op_type != "DequantizeLinear" or self.const(n.input[0]) is None:
            return False
        out = n.output[0]
        return any(m.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") and len(m.input) > 1 and
                   m.input[1] == out for m in self.G.nodes)

    def _weight_zp_rule(self, wdt):
        """The target's refusal of a non-zero weight zero point of type ``wdt`` ('' if accepted);
        the same rule as the profile's QLinear ops (reference/gemm.py _weight_check)."""
        from .reference.gemm import _WEIGHT_RULES
        extra = getattr(self.prof, "extra", None) or {}
        rule = extra.get("weights")
        if rule is None or (rule == "int8_zero_point_0" and np.dtype(wdt) != np.dtype(np.int8)):
            return ""
        return extra.get("weights_error") or _WEIGHT_RULES.get(rule, rule)

    def _rq401_where(self, n, kind, w):
        """(where the pair sums saturate, hint) for RQ401, by target."""
        mode = None if self.prof is None else self.prof.int16_pair_saturation
        seven = "quantize weights to 7 bits (reduce_range, [-64, 64])"
        if mode == "fbgemm_depthwise" and kind == "conv":
            from .reference.conv import fbgemm_depthwise_fast_path
            a = _attrs(n)
            nd = w.ndim - 2
            g = int(a.get("group", 1))
            pads = list(a.get("pads", [0] * (2 * nd)))
            try:
                dw = fbgemm_depthwise_fast_path((1, g * w.shape[1]) + (1,) * nd, w.shape, group=g,
                                                strides=list(a.get("strides", [1] * nd)),
                                                dilations=list(a.get("dilations", [1] * nd)),
                                                pads_begin=pads[:nd], pads_end=pads[nd:])
            except Exception:  # noqa: BLE001
                dw = False
            if dw:
                return (f"target {self.prof.name}: fbgemm's depthwise fast path sums u8 x s8 pairs "
                        "with vpmaddubsw and saturates on every x86 CPU, VNNI or not",
                        f"{seven}; run_model(profile={self.prof.name!r}) computes the saturated result")
            return (f"target {self.prof.name}: results differ on x86 CPUs without VNNI (fbgemm's AVX2 "
                    "vpmaddubsw kernels); this layer is not on fbgemm's depthwise fast path (G == C, "
                    "G % 8 == 0, 3/5/7 kernel, 'same' pads), which saturates on every x86 CPU",
                    f"{seven} or deploy only on VNNI/AMX CPUs; run_model(profile={self.prof.name!r}) "
                    "follows the depthwise rule")
        if mode in (True, "mlas"):
            return (f"target {self.prof.name} saturates them (AVX2 vpmaddubsw, a CPU without VNNI)",
                    f"{seven} or deploy only on VNNI/AMX/ARM CPUs; run_model(profile={self.prof.name!r}) "
                    "computes the saturated result")
        return ("results differ on x86 AVX2/AVX-512BW CPUs without VNNI (vpmaddubsw saturates)",
                f"{seven} or deploy only on VNNI/AMX/ARM CPUs; 'refquant compare --profile "
                "onnxruntime-avx2' (or run_model(profile='onnxruntime-avx2')) computes the saturated result")

    # ----------------------------------------------------------------- int4 / blocked
    def check_blocked(self):
        from .model import _tensor_dtype
        G = self.G
        for i, n in enumerate(G.nodes):
            if n.op_type not in ("DequantizeLinear", "QuantizeLinear"):
                continue
            a = _attrs(n)
            bs = int(a.get("block_size", 0) or 0)
            x = self.const(n.input[0]) if n.op_type == "DequantizeLinear" else None
            s = self.const(n.input[1]) if len(n.input) > 1 else None
            dt = _tensor_dtype(G, n.input[0]) if n.op_type == "DequantizeLinear" else None
            is4 = dt is not None and str(dt) in ("int4", "uint4")
            if bs and x is not None and s is not None:
                ax = a.get("axis", 1) % max(np.ndim(x), 1)
                want = list(np.shape(x))
                want[ax] = -(-want[ax] // bs)
                if list(np.shape(s)) != want:
                    self.add("error", "RQ501", i, f"blocked scale shape {list(np.shape(s))} does not "
                             f"match x {list(np.shape(x))} with block_size {bs} on axis {ax} "
                             f"(expected {want})")
                cons = G.consumers.get(n.output[0], [])
                for c in cons:
                    cn = G.nodes[c]
                    if cn.op_type == "MatMul" and len(cn.input) > 1 and cn.input[1] == n.output[0] \
                            and np.ndim(x) == 2 and ax != 0:
                        self.add("warning", "RQ501", i, f"MatMul weight blocked along axis {ax}, not "
                                 "along K (axis 0)", "block quantization of GEMM weights is meant "
                                 "along the reduction axis; kernels (MatMulNBits, TensorRT) assume it")
            if self.trt and is4:
                if x is None:
                    self.add("error", "RQ501", i, "int4 on a non-constant tensor",
                             "TensorRT takes INT4 for weights only")
                elif np.shape(x)[-1] % 2:
                    self.add("error", "RQ501", i, f"int4 weight with odd last dimension {np.shape(x)[-1]}",
                             "the TensorRT parser needs an even last dimension for packed INT4")

    # ----------------------------------------------------------------- Q -> DQ pairs
    def check_pairs_qdq(self):
        """A Q whose DQ consumer uses another scale / zero point re-scales the tensor silently."""
        G = self.G
        for i, n in enumerate(G.nodes):
            if n.op_type != "QuantizeLinear" or n.domain not in ("", "ai.onnx"):
                continue
            s = self.const(n.input[1]) if len(n.input) > 1 else None
            z = self.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            for c in G.consumers.get(n.output[0], []):
                d = G.nodes[c]
                if d.op_type != "DequantizeLinear":
                    continue
                s2 = self.const(d.input[1]) if len(d.input) > 1 else None
                z2 = self.const(d.input[2]) if len(d.input) > 2 and d.input[2] else None
                if s is None or s2 is None:
                    continue
                zs = np.zeros(()) if z is None else np.asarray(z).astype(np.int64)
                zs2 = np.zeros(()) if z2 is None else np.asarray(z2).astype(np.int64)
                ax, ax2 = int(_attrs(n).get("axis", 1)), int(_attrs(d).get("axis", 1))
                same_s = _same_qparam(s, s2, ax, ax2)
                same_z = _same_qparam(zs, zs2, ax, ax2)
                if not (same_s and same_z):
                    what = "scale" if not same_s else "zero point"
                    a, b = (s, s2) if not same_s else (z, z2)
                    self.add("error", "RQ106", c, f"DequantizeLinear reads the quantized tensor "
                             f"{n.output[0]!r} (Q {G.labels[i]!r} of {n.input[0]!r}) with a different "
                             f"{what}: Q {_short(a)} vs DQ {_short(b)}",
                             "silently rescaled (usually a calibration/export bug)")

    def run(self):
        self.check_pairs_qdq()
        for i, n in enumerate(self.G.nodes):
            if n.domain not in ("", "ai.onnx", "com.microsoft"):
                continue
            self.check_qparams(i, n)
            self.check_trt(i, n)
        self.check_axes()
        self.check_ranges()
        self.check_bias()
        self.check_pairs()
        self.check_blocked()
        order = {s: k for k, s in enumerate(SEVERITIES)}
        return sorted(self.findings, key=lambda f: order[f.severity])


def _per_tensor(v):
    """A scalar and a 1-element vector both mean one value for the whole tensor."""
    return v is None or np.size(v) == 1


def _same_qparam(a, b, axis_a=None, axis_b=None):
    """Same quantization parameter: per-tensor values compared as values (whatever their shape),
    per-axis / blocked ones by shape, values and axis."""
    a = np.zeros(()) if a is None else np.asarray(a)
    b = np.zeros(()) if b is None else np.asarray(b)
    if _per_tensor(a) and _per_tensor(b):
        return np.array_equal(a.reshape(()).astype(np.float64), b.reshape(()).astype(np.float64),
                              equal_nan=True)
    if np.shape(a) != np.shape(b):
        return False
    if a.ndim == 1 and axis_a is not None and axis_b is not None and (axis_a < 0) == (axis_b < 0) \
            and axis_a != axis_b:     # (1 and -1 may name the same axis: the rank is not known here)
        return False
    return np.array_equal(a.astype(np.float64), b.astype(np.float64), equal_nan=True)


def _short(v):
    if v is None:
        return "(none)"
    a = np.asarray(v)
    if a.size <= 4:
        return np.array2string(a, separator=", ") if a.ndim else str(a[()])
    return f"shape {list(a.shape)}"


def lint_model(model, target=None):
    """Quantization-parameter hazards of ``model`` (ModelProto or path) for ``target`` (a profile
    name or Profile; None = generic checks only).  Returns a list of :class:`Finding`, errors
    first.  See the module docstring for the rules."""
    return _Linter(model, target).run()


def add_parser(subparsers):
    import argparse
    p = subparsers.add_parser(
        "lint", help="quantization-parameter hazards in a model, for a target engine",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--target", default=None, metavar="PROFILE",
                   help="target profile (e.g. tensorrt, onnxruntime-avx2, tflite-reference); "
                        "default: generic checks")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--fail-on", default="error", choices=list(SEVERITIES),
                   help="exit 1 when a finding of this severity or worse exists (default: error)")
    p.set_defaults(_run=run)
    return p


_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearMatMul",
              "MatMulInteger", "QLinearConv", "ConvInteger", "QGemm", "QLinearAdd", "QLinearMul",
              "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool", "QLinearGlobalAveragePool",
              "QLinearConcat", "QAttention", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
              "MatMulNBits", "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere"}


def _has_quantized_ops(model):
    """Whether the model (a path or ModelProto) has any quantized op, in its functions too."""
    try:
        import onnx
        m = onnx.load(model, load_external_data=False) if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__") else model
    except Exception:  # noqa: BLE001 - only a wording choice depends on it
        return True
    nodes = list(m.graph.node) + [n for f in m.functions for n in f.node]
    return any(n.op_type in _QUANT_OPS for n in nodes)


def run(args):
    try:
        findings = lint_model(args.model, args.target)
    except (ValueError, TypeError, OSError) as exc:
        print(f"refquant lint: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"model": str(args.model), "target": args.target,
                          "findings": [f.to_dict() for f in findings]}, indent=1))
    else:
        if not findings:
            print(f"refquant lint: no findings ({args.model}, target {args.target or 'generic'}"
                  + ("; the model has no quantized ops" if not _has_quantized_ops(args.model) else "")
                  + ")")
        for f in findings:
            print(f)
        counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
        if findings:
            print(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info")
    limit = SEVERITIES.index(args.fail_on)
    return 1 if any(SEVERITIES.index(f.severity) <= limit for f in findings) else 0
