"""The built-in named profiles: each engine's integer arithmetic as a point in the policy space
of ``refquant.profile`` (read that module's docstring for the meaning of every field).

Every profile carries ``description`` (one line, shown by ``refquant.profiles()``), ``sources``
(the vendor files it models) and ``doc`` (how it was established: which ops are verified live
against which engine version by ``tests/test_profiles_*.py``, and what is not verified).
"Verified live" means bit-exact on the test sweeps (near-ties (k+0.5)*s and their float32
neighbours, saturation, NaN/+-Inf/huge inputs, denormal scales, large accumulators, sizes
1..67 and 1000+); ``docs/profiles.md`` has the tables.

Mapping conventions for engines whose ops are not ONNX ops (documented in
``refquant.engines``): torch quantized linear/conv2d and LiteRT FULLY_CONNECTED/CONV_2D stand in
for QLinearMatMul / QGemm / QLinearConv; an int32 bias C maps to the float bias that represents C
exactly in each torch engine's bias domain.

Profile names: onnx, onnx-reference, onnxruntime, onnxruntime-avx2, pytorch, pytorch-fakequant,
pytorch-fbgemm, pytorch-x86, pytorch-qnnpack, pytorch-onednn, tflite-reference,
tflite-optimized, tflite-xnnpack, tensorrt.  ``tensorrt_profile(...)`` builds TensorRT variants
for the choices its documentation leaves open.
"""
from __future__ import annotations

from .profile import Profile, register_profile

__all__ = ["tensorrt_profile", "TENSORRT_SYMMETRIC_ERROR", "ENGINE_OF"]

_QDQ = ("QuantizeLinear", "DequantizeLinear")
_QLIN = ("QLinearMatMul", "QGemm", "QLinearConv")

# --------------------------------------------------------------------------------------- ONNX
ONNX = register_profile(Profile(
    name="onnx",
    description="ONNX specification (onnx/defs/quantization/defs.cc): x/s, round half to even, "
                "zp after rounding, saturate; requant fl32(acc+bias)*fl32(fl32(a_s*b_s)/y_s), RNE",
    sources=("onnx/defs/quantization/defs.cc (QuantizeLinear, DequantizeLinear, "
             "DynamicQuantizeLinear)", "onnx/defs/math/defs.cc (QLinearMatMul, MatMulInteger)",
             "onnx/defs/nn/defs.cc (QLinearConv, ConvInteger)"),
    q_float_zero_point="add_nonzero_float8",
    doc="""The ONNX specification, with the points the spec leaves open pinned to the ONNX Runtime
(MLAS) reading: NaN -> qmin, +-Inf and out-of-range -> saturate, requantization in float32
(fl32(acc + bias) * fl32(fl32(a_s*b_s)/y_s), RNE, zp after rounding).  float8 outputs add a
non-zero zero point only (-0.0 stays -0.0, as ORT and onnx.reference); float4/float6 outputs add
it in IEEE arithmetic (-0.0 + 0 = +0: ONNX's test_quantizelinear_float4e2m1 and onnx.reference).
DequantizeLinear multiplies in the output type ("the output type also determines the precision
of the multiplication operation").  Being the definition it is not "verified" against an engine;
the tests check that it equals 'onnxruntime' on every op except float16 quantization at opset
< 23 (where ORT divides in float32), the float8 zero point (ORT ignores it) and DequantizeLinear
to float16 (ORT multiplies in float32, then casts), and that it differs from 'onnx-reference'
only where that evaluator deviates.""",
))

ONNX_REFERENCE = register_profile(Profile(
    name="onnx-reference",
    description="onnx.reference.ReferenceEvaluator (numpy), deviations included: int32 cast before "
                "clip (NaN/Inf/huge wrap), zp ignored for float8, zp added before rounding and "
                "float64 products in QLinear ops, all-zero DynamicQuantizeLinear scale 1/255",
    sources=("onnx/reference/ops/op_quantize_linear.py (_CommonQuantizeLinear._run)",
             "onnx/reference/ops/op_dequantize_linear.py (_CommonDequantizeLinear._run)",
             "onnx/reference/ops/op_qlinear_matmul.py", "onnx/reference/ops/op_qlinear_conv.py",
             "onnx/reference/ops/op_dynamic_quantize_linear.py"),
    q_nan="int32_wrap", q_overflow="int32_wrap", q_inf="saturate",
    q_float_zero_point="ignore_float8", q_division_precision="numpy_promotion",
    dq_subtract="float32",
    dql_zero_range_scale=1.0 / 255.0,
    rq_multiplier="scale_type", rq_precision="float64", rq_acc_to_float="float64",
    rq_zero_point="before_rounding",
    ops=_QDQ + ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearMatMul",
                "QLinearConv"),
    doc="""onnx 1.23.2's numpy ReferenceEvaluator, bugs and all (conformance suites are often run
against it).  QuantizeLinear: v = x / s in numpy's promoted type (an int32 x with a float32 scale
divides in float64), np.rint, cast to int32 *before* the clip: NaN, +-Inf and |v| >= 2^31 become
INT32_MIN, then + zp wraps in int32 (a negative zp turns INT32_MIN into qmax).  float8 outputs
ignore the zero point.  DequantizeLinear: fl32(x) - fl32(zp) (int32 x above 2^24 rounds).
QLinearMatMul/QLinearConv: M = a_s*b_s/y_s in the scales' type (fl32(fl32(a_s*b_s)/y_s) for
float32 scales; QLinearMatMul-21's float16 / bfloat16 scales give a float16 / bfloat16 M), acc * M
in float64, rint(acc*M + zp).
DynamicQuantizeLinear: an all-zero input gets scale 1/255 (operator precedence in the source).
Not modelled: QGemm (com.microsoft, not in onnx).  MatMulInteger with a per-row a_zero_point
raises a broadcast error in the evaluator; refquant computes the spec's result.
Verified live against onnx 1.23.2: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
QLinearMatMul, QLinearConv, MatMulInteger, ConvInteger (tests/test_profiles_onnx.py).""",
))

# ------------------------------------------------------------------------------- ONNX Runtime
_ORT_SOURCES = (
    "onnxruntime/core/mlas/lib/quantize.cpp (MlasQuantizeLinearKernel, MlasRequantizeOutput)",
    "onnxruntime/core/util/qmath.h (ParQuantizeLinearStd, GetQuantizationParameter)",
    "onnxruntime/core/providers/cpu/quantization/quantize_linear.cc",
    "onnxruntime/core/providers/cpu/quantization/dynamicquantizelinear.cc",
    "onnxruntime/core/providers/cpu/quantization/quantize_linear_matmul.cc (QLinearMatMul::Compute)",
    "onnxruntime/core/providers/cpu/quantization/qlinearconv.cc (ComputeOutputScale)",
    "onnxruntime/contrib_ops/cpu/quantization/quant_gemm.cc (QGemm)",
    "onnxruntime/core/mlas/lib/qgemm.h (MlasGemmQuantGetDispatch)",
)
ONNXRUNTIME = register_profile(Profile(
    name="onnxruntime",
    description="ONNX Runtime CPU (MLAS) on a VNNI/AMX CPU: x/s, clamp in float, RNE, NaN->qmin; "
                "requant cvtdq2ps(acc+bias) * fl32(fl32(a_s*b_s)/y_s), RNE, zp after rounding",
    sources=_ORT_SOURCES,
    q_nan="qmin", q_fp16_division="float32_below_opset23", q_float8_saturate0="onnxruntime",
    q_float_zero_point="ignore", dq_subtract="float32",
    doc="""ONNX Runtime's CPU execution provider (MLAS) on a CPU with AVX512-VNNI / AMX-INT8 (no
int16 intermediate saturation).  QuantizeLinear: true float32 division x/s, clamp in float to
[qmin - zp, qmax - zp] (MAXPS sends NaN to the lower bound), cvtps2dq (RNE), + zp: NaN -> qmin,
+-Inf -> qmax/qmin.  float16 inputs divide in float32 below opset 23 and in float16 from 23.
float8 outputs (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz; verified live through an exact Cast): round to
nearest even, except with saturate=0 where ORT's converter maps e4m3fn |v| in [480, 496) to
+-448 and e5m2 |v| in [61440, 65536) to NaN (q_float8_saturate0="onnxruntime"; the Cast table
gives NaN and +-Inf); the float8 zero point is ignored by QuantizeLinear and a non-zero one
refused by DequantizeLinear (q_float_zero_point="ignore"; the spec adds it).  int4/uint4 outputs
verified live.  DequantizeLinear: fl32(x - zp) * fl32(s) in float32, then cast to the output type
(dq_subtract="float32"; the spec multiplies in the output type: float16 outputs differ); an int32
x with a zero point is subtracted in int32 with wraparound by ORT, exactly here (not modelled;
the spec gives int32 no zero point).
DynamicQuantizeLinear: scale (max - min)/255 in float32, 1.0 for an all-zero input.
QLinearMatMul/QLinearConv/QGemm: exact int32 accumulation, + int32 bias, cvtdq2ps (rounds above
2^24), times the float32 multiplier fl32(fl32(a_s*b_s)/y_s) (QGemm: alpha folded in), clamp,
RNE, + zp.  Verified live against onnxruntime 1.32.0 on this CPU (graph optimizations off,
1 thread): QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, ConvInteger,
QLinearMatMul, QLinearConv, QGemm (tests/test_profiles_onnxruntime.py).""",
))

ONNXRUNTIME_AVX2 = register_profile(ONNXRUNTIME.replace(
    name="onnxruntime-avx2",
    description="ONNX Runtime CPU on an AVX2-only CPU: as 'onnxruntime' plus the int16 pair "
                "saturation of the u8 x s8 vpmaddubsw kernel (hand-derived, not checkable live here)",
    sources=_ORT_SOURCES + ("onnxruntime/core/mlas/lib/x86_64/QgemmU8X8KernelAvx2.S",
                            "onnxruntime/core/mlas/lib/x86_64/QgemmU8S8KernelAvx2.S",
                            "microsoft/onnxruntime#16105 (the saturating inputs)"),
    int16_pair_saturation="mlas",
    doc="""What ONNX Runtime computes on an x86 CPU with AVX2 but without VNNI (and SSE4.1): the
u8 x s8 GEMM kernel multiplies with vpmaddubsw, which sums each adjacent k-pair
a[k]*b[k] + a[k+1]*b[k+1] into a *saturating* int16 before vpmaddwd widens to int32
(int16_pair_saturation="mlas").  Depthwise QLinearConv (one input and one output channel a
group) runs MlasConvDepthwise instead, which widens both operands to int16 and multiplies
into int32 (qdwconv_avx2.cpp): exact, no saturation.  Everything else is the 'onnxruntime'
profile.  u8 x u8 and s8 x s8 go through other kernels (no
saturation is modelled for them by the GEMM reference).  NOT verified live: this machine has
VNNI/AMX, where MLAS never saturates.  Tested on hand-derived cases instead: ORT #16105
(x = [210, 198, 234] u8, w = [-81, -80, 127] s8: the first pair is 210*-81 + 198*-80 = -32850,
saturated to -32768, so acc = -32768 + 234*127 = -3050 instead of -3132) and the worst case
255*127*2 = 64770 (tests/test_profiles_onnxruntime.py).""",
))

# ----------------------------------------------------------------------------------- PyTorch
_TORCH_Q = dict(
    q_scale_op="multiply_reciprocal", q_fma=True, q_zero_point="before_rounding", q_nan="qmax",
    overrides=(("per_axis", {"q_fma": False, "q_nan": "zero"}),),
)
_TORCH_Q_SOURCES = (
    "aten/src/ATen/native/quantized/cpu/kernels/QuantizedOpKernels.cpp "
    "(quantize_tensor_per_tensor_affine_cpu, quantize_tensor_per_channel_affine_cpu)",
    "aten/src/ATen/native/quantized/AffineQuantizerBase.cpp (quantize_val)",
    "fbgemm/QuantUtils.h (fbgemm::Quantize<T, LEGACY>)",
)
PYTORCH = register_profile(Profile(
    name="pytorch",
    description="torch.quantize_per_tensor (fl32(fma(x, fl32(1/s), zp)) then RNE, NaN->qmax) / "
                "quantize_per_channel (fl32(fl32(x*fl32(1/s)) + zp) then RNE, NaN->0) / dequantize",
    sources=_TORCH_Q_SOURCES,
    ops=_QDQ,
    **_TORCH_Q,
    doc="""torch 2.13 CPU quantize/dequantize (quint8, qint8, qint32).  A scalar scale follows
torch.quantize_per_tensor: inv = fl32(1/s), v = fl32(fma(x, inv, zp)) (one rounding: fbgemm's
Quantize<T, LEGACY=true> compiled with FMA), RNE, clamp; NaN -> qmax, +-Inf and huge values
saturate.  A 1-D scale follows torch.quantize_per_channel: v = fl32(fl32(x*inv) + zp) (two
roundings), RNE, clamp; NaN -> the code 0 whatever the zero point (override "per_axis").
Dequantize: (q - zp) * s in float32.  torch takes only float32 x (a Half tensor raises "Quantize
only works on Float Tensor") and int8/uint8/int32 outputs (qint32 NaN handling differs:
INT32_MIN, not modelled); other types are refquant's extension, the same formula in the spec's
precision (float16 x: x, inv, x*inv and the sum each rounded to float16, the fused form rounded
once), not torch's behaviour.  Verified live against torch 2.13.0+cpu: QuantizeLinear
(per-tensor and per-axis, int8/uint8) and DequantizeLinear (tests/test_profiles_pytorch.py).""",
))

PYTORCH_FAKEQUANT = register_profile(Profile(
    name="pytorch-fakequant",
    description="torch.fake_quantize_per_tensor_affine / _per_channel_affine: q = zp + "
                "RNE(fl32(x*fl32(1/s))), clamp with fmin/fmax (NaN->qmin); returns the codes q",
    sources=("aten/src/ATen/native/quantized/cpu/kernels/QuantizedOpKernels.cpp "
             "(fake_quantize_tensor_cachemask_kernel, _fake_quantize_tensor_helper)",
             "aten/src/ATen/native/quantized/FakeQuantPerTensorAffine.cpp",
             "aten/src/ATen/native/quantized/FakeQuantPerChannelAffine.cpp"),
    q_scale_op="multiply_reciprocal", q_zero_point="after_rounding", q_nan="qmin",
    q_fp16_division="float32",
    overrides=(("per_axis", {"q_overflow": "int64_min"}),),
    ops=_QDQ,
    doc="""torch.fake_quantize_per_tensor_affine and fake_quantize_per_channel_affine (torch
2.13 CPU): inv = fl32(1/s); q = zp + nearbyint(x * inv) (RNE, zero point after rounding);
clamp with fmin/fmax, so NaN -> qmin; +-Inf and huge values saturate per-tensor, but the
per-channel kernel converts zp + nearbyint(x*inv) to int64 first, so |v| >= 2^63 and +-Inf give
qmin (override per_axis: q_overflow="int64_min"; 9.2e18 -> qmax, 9.3e18 -> qmin); the op returns (q - zp) * s, refquant returns the code q
(as quantize_linear does; the engine adapter inverts the float exactly).  Any integer range
(int8, uint8, int16, uint16, int4 ...) works through quant_min/quant_max.  float16 / bfloat16
inputs compute in float32 (x widened exactly; q_fp16_division="float32"): torch's Half / BFloat16
fake-quantize output is its float32 result cast down.  Verified live against torch 2.13.0+cpu:
QuantizeLinear per-tensor and per-axis, float32, float16 and bfloat16 x
(tests/test_profiles_pytorch.py).""",
))

_TORCH_LINEAR_DOC = """torch.ops.quantized.linear / conv2d with torch.backends.quantized.engine =
{engine!r} (torch 2.13 CPU), mapped onto QLinearMatMul (W = b^T), QGemm (alpha 1, float bias
standing for C exactly) and QLinearConv (2-D, uint8 activations, int8 weights, per-tensor or
per-channel).  {arith}  Quantize/dequantize fields are the 'pytorch' ones (the engine setting
does not change torch.quantize_per_tensor on x86).  {verified}"""

PYTORCH_FBGEMM = register_profile(Profile(
    name="pytorch-fbgemm",
    description="torch quantized linear/conv2d on FBGEMM: float bias fl32(acc)+fl32(b/(sx*sw)), "
                "M = fl32(fl32(sx*sw)/sy), RNE (lrintf), zp after rounding; depthwise conv saturates "
                "int16 pairs; quantize as 'pytorch'",
    sources=("aten/src/ATen/native/quantized/cpu/qlinear.cpp (PackedLinearWeight::apply_impl)",
             "aten/src/ATen/native/quantized/cpu/qconv.cpp (PackedConvWeight::apply_impl)",
             "fbgemm/include/fbgemm/OutputProcessing-inl.h (ReQuantizeOutput::f)",
             "fbgemm/src/QuantUtilsAvx2.cc (requantizeOutputProcessingAvx2)") + _TORCH_Q_SOURCES,
    ops=_QDQ + _QLIN,
    rq_multiplier="fp32", rq_bias="float", int16_pair_saturation="fbgemm_depthwise",
    rq_float_to_int="int32_min",
    # per-tensor weights: the bias times fl32(1 / (sx*sw)), fused into the accumulator's add
    overrides=_TORCH_Q["overrides"] + (("QLinearMatMul+per_tensor", {"rq_bias": "float_rcp_fma"}),
                                       ("QGemm+per_tensor", {"rq_bias": "float_rcp_fma"}),
                                       ("QLinearConv+per_tensor", {"rq_bias": "float_rcp_fma"})),
    **{k: v for k, v in _TORCH_Q.items() if k != "overrides"},
    doc=_TORCH_LINEAR_DOC.format(
        engine="fbgemm",
        arith="Requantization (fbgemm ReQuantizeOutput): raw = exact int32 accumulator; "
              "v = fl32(fl32(raw) + fl32(b / fl32(sx*sw[c]))) with the float bias b and per-channel "
              "weights; with per-tensor weights the bias is multiplied by fl32(1 / fl32(sx*sw)) and "
              "added by one fused multiply-add, v = fma(b, fl32(1/fl32(sx*sw)), fl32(raw)) "
              "(rq_bias='float_rcp_fma', override '<op>+per_tensor'; measured: 0 of 12,412 tie-prone "
              "outputs differ, 6 with the division); "
              "y = clamp(lrintf(fl32(v * M[c])) + zp) with M[c] = fl32(fl32(sx*sw[c]) / sy) "
              "(RNE); a scaled value outside int32 (tiny ys) converts to INT32_MIN (cvtps2dq) and "
              "gives qmin whatever its sign (rq_float_to_int='int32_min', measured).  int16 pair saturation: fbgemm's depthwise conv fast path is AVX2 code "
              "(vpmaddubsw) that saturates u8 x s8 pairs even on this AVX512-VNNI CPU "
              "(int16_pair_saturation='fbgemm_depthwise'; measured: 20,966 of 48,224 extreme-value "
              "depthwise outputs differ without it, 0 with it); its GEMM, im2col and groupwise paths "
              "do not saturate here.",
        verified="Verified live against torch 2.13.0+cpu: QLinearMatMul, QGemm, QLinearConv, "
                 "QuantizeLinear, DequantizeLinear (tests/test_profiles_pytorch.py)."),
))

PYTORCH_X86 = register_profile(PYTORCH_FBGEMM.replace(
    name="pytorch-x86",
    int16_pair_saturation=False,
    description="torch quantized linear/conv2d on the 'x86' engine: linear as 'pytorch-fbgemm'; "
                "conv2d with symmetric weights runs oneDNN (zp added before rounding)",
    overrides=PYTORCH_FBGEMM.overrides + (("QLinearConv", {"rq_zero_point": "before_rounding",
                                                           "rq_multiplier": "onednn",
                                                           "rq_float_to_int": "saturate",
                                                           "rq_nan": "qmax"}),
                                          # a non-zero weight zero point: FBGEMM runs the conv
                                          ("QLinearConv+asymmetric_weights",
                                           {"rq_zero_point": "after_rounding", "rq_multiplier": "fp32",
                                            "rq_float_to_int": "int32_min", "rq_nan": "int32_min",
                                            "int16_pair_saturation": "fbgemm_depthwise"})),
    doc=_TORCH_LINEAR_DOC.format(
        engine="x86",
        arith="The x86 engine runs quantized.linear on FBGEMM ('pytorch-fbgemm' arithmetic) and, on a "
              "VNNI CPU with symmetric (zero) weight zero points, quantized.conv2d on oneDNN, whose "
              "epilogue is the one of 'pytorch-onednn' (override QLinearConv: rq_multiplier='onednn', "
              "rq_zero_point='before_rounding': the scales one by one after a reciprocal round trip, "
              "float bias after them, times fl32(1/ys), zp added before rounding; measured at exact "
              "ties, e.g. v = -16.5 with zp 111 gives 94, FBGEMM 95).  Asymmetric-weight convs fall "
              "back to FBGEMM, whose arithmetic the override 'QLinearConv+asymmetric_weights' restores "
              "(measured: 0 of 114 random asymmetric convs differ from 'pytorch-fbgemm').",
        verified="Verified live against torch 2.13.0+cpu: QLinearMatMul, QGemm, QLinearConv "
                 "(symmetric weights), any scales (tests/test_profiles_pytorch.py)."),
))

PYTORCH_ONEDNN = register_profile(PYTORCH_FBGEMM.replace(
    name="pytorch-onednn",
    int16_pair_saturation=False,
    description="torch quantized linear/conv2d on oneDNN: scales applied one by one after a "
                "reciprocal round trip, float bias after them, * fl32(1/sy), zp added before "
                "rounding (symmetric weights only)",
    rq_zero_point="before_rounding", rq_multiplier="onednn", rq_float_to_int="saturate", rq_nan="qmax",
    extra={"weights": "zero_point_0",
           "weights_error": "oneDNN requires a zero weight zero point ('ONEDNN only supports symmetric "
                            "quantization of weight')"},
    sources=("aten/src/ATen/native/quantized/cpu/qlinear.cpp (PackedLinearWeightsOnednn)",
             "aten/src/ATen/native/quantized/cpu/qconv.cpp (PackedConvWeightsOnednn)",
             "aten/src/ATen/native/quantized/cpu/qlinear_prepack.cpp") + _TORCH_Q_SOURCES,
    doc=_TORCH_LINEAR_DOC.format(
        engine="onednn",
        arith="oneDNN requires a zero weight zero point ('ONEDNN only supports symmetric "
              "quantization of weight').  Measured epilogue (rq_multiplier='onednn'): the scales are "
              "applied one after the other, each after a reciprocal round trip (torch hands ideep "
              "1/s), the float bias after them, then times fl32(1/ys), and the output zero point is "
              "added in float before rounding: v = fl32(fl32(fl32(fl32(acc)*xs')*ws') + b) * "
              "fl32(1/ys), s' = fl32(1/fl32(1/s)), y = RNE(fl32(v + zp)) (exact ties v = -16.5, "
              "zp 111 -> 94 where FBGEMM gives 95).",
        verified="Verified live against torch 2.13.0+cpu: QLinearMatMul, QGemm, QLinearConv "
                 "(conv1d/2d/3d) with symmetric weights and arbitrary scales, bit-exact "
                 "(tests/test_profiles_pytorch.py, tests/test_gemm_engines_edge.py).  Known engine "
                 "bug, not modelled: ONEDNN_CONV3D_DEPTH1_PADDED, a 3-D conv over a depth-1 input "
                 "with depth padding 1 and stride 2 is wrong for some channel counts (7, 9, 10, 11); "
                 "ONEDNN_CONV2D_WIDTH1_STRIDED, an output of width 1 computed with a width stride > 1 "
                 "is wrong for some channel counts (both seen with oneDNN's AMX kernels on Sapphire "
                 "Rapids; exact on an AMD Zen 5 without AMX).  Not modelled either: the epilogue depends on the "
                 "oneDNN kernel chosen -- some convolutions apply fl32(fl32(fl32(acc)*xs')*ws') (this "
                 "profile), others fl32(acc*fl32(1/fl32(1/fl32(xs*ws)))) (the scales combined first); "
                 "they differ only near ties (23 of 494 tie-prone random convs, 10 one way, 13 the other)."),
))

PYTORCH_QNNPACK = register_profile(Profile(
    name="pytorch-qnnpack",
    description="torch quantized linear/conv2d on QNNPACK: int32 bias, M = fl32(fl32(sx*sw)*"
                "fl32(1/sy)) (reciprocal), RNE, zp after rounding; quantize as 'pytorch'",
    sources=("aten/src/ATen/native/quantized/cpu/QnnpackUtils.h (generate_requantization_scales, "
             "make_zero_points_and_scales_tensor)",
             "aten/src/ATen/native/quantized/cpu/qlinear.cpp (PackedLinearWeightsQnnp)",
             "aten/src/ATen/native/quantized/cpu/qnnpack/src/requantization/fp32-*.c") + _TORCH_Q_SOURCES,
    ops=_QDQ + _QLIN,
    rq_multiplier="fp32_reciprocal", rq_bias="int32", rq_float_to_int="int32_min",
    extra={"multiplier": "normal",
           "multiplier_error": "QNNPACK refuses it ('failed to create op with requantization scale: "
                               "...: requantization scale must be finite and positive', std::isnormal)",
           "bias_scale": "normal",
           "bias_scale_error": "torch quantizes the bias (zeros when there is none) to int32 with scale "
                               "a_scale*b_scale: 1/scale overflows to inf, the bias becomes INT32_MIN and "
                               "the outputs collapse to qmin or qmax (measured); not modelled"},
    **_TORCH_Q,
    doc=_TORCH_LINEAR_DOC.format(
        engine="qnnpack",
        arith="QNNPACK shifts int8 weights to uint8 (+128, exact), quantizes the bias to int32 "
              "(scale sx*sw, the int32 C itself here) and requantizes with "
              "M[c] = fl32(fl32(sx*sw[c]) * fl32(1/sy)): y = clamp(RNE(fl32(fl32(acc + C) * M)) + zp); "
              "a scaled value outside int32 (tiny sy) converts to INT32_MIN (cvtps2dq, then saturating "
              "packs) and gives qmin whatever its sign (rq_float_to_int='int32_min', measured).",
        verified="Verified live against torch 2.13.0+cpu: QLinearMatMul, QGemm, QLinearConv "
                 "(tests/test_profiles_pytorch.py)."),
))

# ------------------------------------------------------------------------------ LiteRT/TFLite
_TFL_SOURCES = (
    "tensorflow/lite/kernels/quantize.cc, dequantize.cc, fully_connected.cc, conv.cc",
    "tensorflow/lite/kernels/internal/quantization_util.cc (QuantizeMultiplier)",
    "tensorflow/lite/kernels/internal/common.h (MultiplyByQuantizedMultiplier)",
    "tensorflow/lite/kernels/kernel_util.cc (PopulateConvolutionQuantizationParams)",
)
TFLITE_REFERENCE = register_profile(Profile(
    name="tflite-reference",
    description="LiteRT reference kernels: QUANTIZE RHAZ(fl32(x/s)) (NaN/Inf/huge -> INT32_MIN "
                "wrap); CONV_2D gemmlowp fixed point, double rounding; FULLY_CONNECTED "
                "RHAZ(double(acc)*double M)",
    sources=_TFL_SOURCES + (
        "tensorflow/lite/kernels/internal/reference/quantize.h (AffineQuantize)",
        "tensorflow/lite/kernels/internal/reference/integer_ops/conv.h",
        "tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h",
        "tensorflow/lite/kernels/internal/reference/dequantize.h"),
    q_scale_op="divide", q_rounding="half_away", q_nan="int32_wrap", q_overflow="int32_wrap",
    rq_multiplier="fp64", rq_method="fixed_point", rq_fixed_rounding="double",
    overrides=(
        ("QLinearMatMul", {"rq_method": "float", "rq_precision": "float64",
                           "rq_acc_to_float": "float64", "rq_rounding": "half_away",
                           "rq_float_to_int": "int32_min_wrap"}),
        ("QGemm", {"rq_method": "float", "rq_precision": "float64",
                   "rq_acc_to_float": "float64", "rq_rounding": "half_away",
                   "rq_float_to_int": "int32_min_wrap"}),
        ("QLinearConv+uint8", {"rq_multiplier": "fp64_f32product"}),
    ),
    extra={"weights": "int8_zero_point_0",
           "weights_error": "TFLite's int8 quantization spec requires weight (filter) zero points "
                            "of 0 (uint8 weights: any zero point)",
           "per_channel_conv": "int8_int16_input",
           "per_channel_conv_error": "LiteRT refuses per-channel CONV_2D weights with a uint8 input "
                                     "(kernel_util.cc: input->type == kTfLiteInt8 || kTfLiteInt16)"},
    ops=_QDQ + _QLIN,
    doc="""LiteRT 2.3.0 with the reference op resolver (OpResolverType.BUILTIN_REF).
QUANTIZE: int32(TfLiteRound(fl32(x / s))) + zp, clamp; TfLiteRound is std::round (half away
from zero); the float->int32 conversion of NaN, +-Inf and |x/s| >= 2^31 gives INT32_MIN, and the
zero point is then added in int32 (a negative zp wraps to qmax) -- same as onnx.reference.
DEQUANTIZE: (q - zp) * s.  CONV_2D (QLinearConv): acc + bias, MultiplyByQuantizedMultiplier with
the Q31 multiplier of double(sx)*double(sw[c])/double(sy), SRDHM (half up) then
RoundingDivideByPOT (half away), + zp; a uint8 CONV_2D takes the legacy multiplier
double(fl32(sx*sw))/double(sy) instead (GetQuantizedConvolutionMultipler; override
"QLinearConv+uint8": rq_multiplier="fp64_f32product"; measured: x_s=0.041279905,
w_s=0.0321819, y_s=0.68017447 make it exactly 2^-9, the double product just below, and the
results differ at acc = 1155).  FULLY_CONNECTED (QLinearMatMul, QGemm; override): the
float variant, y = int32(round(double(acc) * double M)) + zp, half away from zero; beyond
int32 the conversion gives INT32_MIN and the zero point is added with wraparound
(rq_float_to_int="int32_min_wrap"; measured with tiny output scales).  A CONV_2D multiplier
>= 2^31 shifts left by more than 31 bits, undefined in C++: x86 masks the count to 5 bits
(modelled in the "double" fixed-point rounding; measured).  Verified
live against ai-edge-litert 2.3.0: QuantizeLinear (int8/uint8/int16), DequantizeLinear,
QLinearMatMul, QGemm, QLinearConv (tests/test_profiles_tflite.py).""",
))

TFLITE_OPTIMIZED = register_profile(Profile(
    name="tflite-optimized",
    description="LiteRT optimized built-in kernels (no delegate, ruy): QUANTIZE blocks of 8 "
                "RNE(fl32(x*fl32(1/s))), tail std::round(double x/s) (NaN/Inf/huge -> INT32_MIN wrap); "
                "FC/CONV_2D fixed point, both steps round half up",
    sources=_TFL_SOURCES + (
        "tensorflow/lite/kernels/internal/optimized/optimized_ops.h (AffineQuantize)",
        "tensorflow/lite/kernels/internal/optimized/integer_ops/fully_connected.h, conv.h",
        "ruy/kernel_x86.h, ruy/kernel_avx512.cc (multiplier application)"),
    q_scale_op="multiply_reciprocal", q_rounding="half_even", q_nan="int32_wrap",
    q_overflow="int32_wrap", q_vector_width=8,
    dq_subtract="scale_then_subtract", dq_vector_width=8,
    rq_multiplier="fp64", rq_method="fixed_point", rq_fixed_rounding="double_half_up",
    overrides=(("tail", {"q_scale_op": "divide", "q_rounding": "half_away",
                         "q_division_precision": "float64", "dq_subtract": "exact"}),
               # per-channel QUANTIZE / DEQUANTIZE run the reference kernels ('tflite-reference')
               ("per_axis", {"q_vector_width": 0, "q_scale_op": "divide", "q_rounding": "half_away",
                             "dq_vector_width": 0, "dq_subtract": "exact"}),
               ("QLinearMatMul+per_tensor", {"rq_multiplier": "fp64_f32product"}),
               ("QGemm+per_tensor", {"rq_multiplier": "fp64_f32product"}),
               ("QLinearConv+uint8", {"rq_multiplier": "fp64_f32product"})),
    extra={"weights": "int8_zero_point_0",
           "weights_error": "TFLite's int8 quantization spec requires weight (filter) zero points "
                            "of 0 (uint8 weights: any zero point)",
           "per_channel_conv": "int8_int16_input",
           "per_channel_conv_error": "LiteRT refuses per-channel CONV_2D weights with a uint8 input "
                                     "(kernel_util.cc: input->type == kTfLiteInt8 || kTfLiteInt16)",
           "groups": "refuse",
           "groups_error": "LiteRT runs grouped / depthwise convolutions as DEPTHWISE_CONV_2D, whose "
                           "optimized kernels round differently from CONV_2D's (kernel-dependent; "
                           "measured 1-step differences in 0.1-0.5% of int8 outputs); not modelled "
                           "('tflite-reference' and 'tflite-xnnpack' match them)"},
    ops=_QDQ + _QLIN,
    doc="""LiteRT 2.3.0 with OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES on x86-64 (AVX-512):
QUANTIZE: the flattened tensor is processed in blocks of 8 with RNE(fl32(x * fl32(1/s))) + zp;
the last n mod 8 elements go through a scalar loop computing std::round(double(x) / double(s))
+ zp (half away from zero, true division in double; the reference kernel divides in float) -- measured: a tie x*(1/s) = 96.5 gives 96 at index 0..7 and 97
at index 8 of a 9-element tensor (q_vector_width=8 with a "tail" override).  Both loops share
the int32 conversion artefacts of the reference kernel (NaN, +-Inf, huge -> INT32_MIN, + zp
wraps).  DEQUANTIZE: blocks of 8 compute fl32(fl32(q*s) - fl32(zp*s)), the tail (q - zp)*s
exactly (measured bit patterns: 0 of ~10,000 differ).  Per-channel QUANTIZE and DEQUANTIZE
(quantizedDimension) run the reference kernels: override "per_axis" gives them the
'tflite-reference' arithmetic (measured: 0 of 2,069 differ; the blocks-of-8 model missed 352).  FULLY_CONNECTED and CONV_2D run
through ruy: Q31 multiplier of the double M as in QuantizeMultiplier, then
RHU(RHU(acc*qm / 2^31) / 2^-shift) -- both roundings half up (like SQRDMULH then SRSHL); the
source of this exact sequence on x86 was not located (ruy's portable path rounds once), the
behaviour is measured.  The multiplier: double(sx)*double(sw[c])/double(sy) for int8 CONV_2D
and per-channel FULLY_CONNECTED; double(fl32(sx*sw))/double(sy) (GetQuantizedConvolutionMultipler,
a float32 product) for per-tensor FULLY_CONNECTED and uint8 CONV_2D (overrides
"QLinearMatMul+per_tensor", "QGemm+per_tensor", "QLinearConv+uint8": "fp64_f32product";
measured where the two differ in the Q31 multiplier).  Verified live against ai-edge-litert 2.3.0: QuantizeLinear (int8/uint8/
int16), DequantizeLinear, QLinearMatMul, QGemm, QLinearConv (tests/test_profiles_tflite.py).""",
))

TFLITE_XNNPACK = register_profile(Profile(
    name="tflite-xnnpack",
    description="LiteRT default XNNPACK delegate: QUANTIZE RNE(fl32(x*fl32(1/s))), saturating, "
                "NaN->qmax; FC/CONV_2D fl32(acc+bias)*fl32(fl32(sx*sw)/sy), RNE",
    sources=("tensorflow/lite/delegates/xnnpack/xnnpack_delegate.cc",
             "XNNPACK/src/qs8-vcvt, f32-qs8-vcvt, qs8-gemm fp32 requantization "
             "(xnn_init_qs8_conv_minmax_fp32_params)"),
    q_scale_op="multiply_reciprocal", q_rounding="half_even", q_nan="qmax",
    rq_multiplier="fp32", rq_method="float", rq_float_to_int="int32_min_wrap_negative",
    extra={"weights": "int8_zero_point_0",
           "weights_error": "TFLite's int8 quantization spec requires weight (filter) zero points "
                            "of 0 (uint8 weights: any zero point)",
           "per_channel_conv": "int8_int16_input",
           "per_channel_conv_error": "LiteRT refuses per-channel CONV_2D weights with a uint8 input "
                                     "(kernel_util.cc: input->type == kTfLiteInt8 || kTfLiteInt16)"},
    ops=_QDQ + _QLIN,
    doc="""LiteRT 2.3.0 with its default XNNPACK delegate (OpResolverType.AUTO); int8/uint8 only
(int16 QUANTIZE is not delegated).  QUANTIZE: fl32(x * fl32(1/s)), clamped in float (NaN ->
qmax), RNE, + zp.  FULLY_CONNECTED / CONV_2D: the 'fp32' requantization, fl32(acc + bias) *
fl32(fl32(sx*sw[c])/sy), clamp, RNE, + zp -- the same arithmetic as ONNX Runtime, except
that only the top is clamped in float: a scaled value below -2^31 converts to INT32_MIN and the
zero point is added in int32 with wraparound (rq_float_to_int="int32_min_wrap_negative"; with a
negative zp the result is qmax; measured with int32 biases near INT32_MIN).  Verified
live against ai-edge-litert 2.3.0: QuantizeLinear, DequantizeLinear, QLinearMatMul, QGemm,
QLinearConv (tests/test_profiles_tflite.py).""",
))

# -------------------------------------------------------------------------------- TensorRT
TENSORRT_SYMMETRIC_ERROR = (
    "Assertion failed: shiftIsAllZeros(zeroPoint): TensorRT only supports symmetric quantization. "
    "The zero point for the QuantizeLinear/DequantizeLinear operator must be all zeros.")

_TRT_SOURCES = (
    "NVIDIA/TensorRT include/NvInfer.h (IQuantizeLayer, IDequantizeLayer class docs)",
    "onnx/onnx-tensorrt onnxOpImporters.cpp (QuantDequantLinearHelper), importerUtils.cpp "
    "(shiftIsAllZeros)",
    "TensorRT Developer Guide, 'Explicit Quantization' / 'Working with Quantized Types'",
    "NVIDIA/cutlass include/cutlass/epilogue/thread/linear_combination_clamp.h",
    "NVIDIA/TensorRT plugin/common/common.cuh (quantize)",
)

_TRT_OPTIONS = {
    # option name: (profile field, {option value: field value}, default)
    "scale_op": ("q_scale_op", {"multiply_reciprocal": "multiply_reciprocal", "divide": "divide"},
                 "multiply_reciprocal"),
    "bias": ("rq_bias", {"after_scaling": "float_after_scaling", "before_scaling": "int32"},
             "after_scaling"),
    "epilogue": ("rq_epilogue_dtype", {"float32": "float32", "float16": "float16"}, "float32"),
    "multiplier": ("rq_multiplier", {"reciprocal": "fp32_reciprocal", "divide": "fp32"},
                   "reciprocal"),
}


def tensorrt_profile(*, scale_op: str = "multiply_reciprocal", bias: str = "after_scaling",
                     epilogue: str = "float32", multiplier: str = "reciprocal",
                     name: str | None = None) -> Profile:
    """A TensorRT profile with the choices TensorRT's documentation leaves open made explicit.

    scale_op    "multiply_reciprocal" (default): q = RNE(x * fl32(1/s)) -- the developer guide
                says quantization "uses the reciprocal scale", NVIDIA's int8 plugins multiply by
                a host-computed 1/s, a TRT 7 memory dump showed a multiply; "divide": RNE(x / s),
                what the IQuantizeLayer API formula literally says.
    bias        "after_scaling" (default): the float bias enters the fp32 epilogue after the
                multiplier, v = fl32(acc)*M + fl32(b/sy) (cuDNN/CUTLASS conv-bias-act order; ONNX
                Q/DQ models keep the bias float); "before_scaling": an int32 bias added to the
                accumulator first (the ONNX QLinearConv order).
    epilogue    "float32" (default; CUTLASS int8 epilogues compute in float) or "float16" (mixed
                networks built with FP16 enabled).
    multiplier  "reciprocal" (default): M = fl32(fl32(sx*sw[c]) * fl32(1/sy)) (scale factoring is
                a documented legal rewrite, 1/sy folded at build time); "divide":
                fl32(fl32(sx*sw[c]) / sy).
    The name is "tensorrt" for the defaults, else "tensorrt[option=value,...]".
    """
    chosen = {"scale_op": scale_op, "bias": bias, "epilogue": epilogue, "multiplier": multiplier}
    fields = {}
    for opt, val in chosen.items():
        fname, table, _ = _TRT_OPTIONS[opt]
        if val not in table:
            raise ValueError(f"{opt}: expected one of {tuple(table)}, got {val!r}")
        fields[fname] = table[val]
    nondefault = [f"{k}={v}" for k, v in chosen.items() if v != _TRT_OPTIONS[k][2]]
    if name is None:
        name = "tensorrt" if not nondefault else "tensorrt[" + ",".join(nondefault) + "]"
    return Profile(
        name=name,
        description="TensorRT explicit quantization (documented arithmetic, not verified live): "
                    "symmetric only, q = RNE(x*fl32(1/s)) saturated, NaN->0; fused DQ->Conv/Gemm->Q "
                    "epilogue fl32(acc)*fl32(fl32(sx*sw)*fl32(1/sy)) + b/sy, RNE",
        sources=_TRT_SOURCES,
        q_rounding="half_even", q_zero_point="after_rounding", q_nan="zero",
        q_overflow="saturate", q_inf="saturate", q_float8_saturate0="saturate",
        rq_method="float", rq_rounding="half_even", rq_precision="float32",
        rq_acc_to_float="float32", rq_nan="zero",
        symmetric_only=True, symmetric_error=TENSORRT_SYMMETRIC_ERROR,
        qtypes=("int8", "int4", "float8e4m3fn", "float4e2m1"),
        qtypes_error="TensorRT quantizes to INT8, FP8 E4M3, INT4 (weights) and FP4 E2M1 only; its "
                     "ONNX parser turns a uint8 Q with zero point 0 into INT8 (warning) and rejects "
                     "uint8 and int32 (bias) DQ inputs -- keep the bias float --, int16/uint16/int2/uint2, "
                     "E5M2 and FP6",
        ops=_QDQ + _QLIN,
        extra={"options": dict(chosen)},
        doc=f"""TensorRT 8.6-11.x explicit (Q/DQ) quantization, from NVIDIA's documentation and
open-source code (TensorRT cannot run here: NOT verified live; the tests check hand-derived
cases of the documented arithmetic).  Rules: zero points must be all zero -- a non-zero one is
rejected with the ONNX parser's own message: "{TENSORRT_SYMMETRIC_ERROR}"; int8 range
[-128, 127], round half to even (GPU), NaN -> 0 (PTX cvt.rni.sat), +-Inf saturate.  Types:
INT8, FP8 E4M3 (always saturating to +-448: the parser ignores the ONNX saturate attribute; NaN
stays NaN), INT4, FP4 E2M1; uint8, int16, E5M2, an int32 (bias) DQ and the rest raise
ProfileError.
QuantizeLinear/DequantizeLinear model the Q/DQ layers; QLinearMatMul/QGemm/QLinearConv model the
fused DQ(x), DQ(w) -> MatMul/Gemm/Conv -> Q kernel: int32 accumulation, fl32(acc) times a
per-channel fp32 multiplier, bias, RNE, saturation.  Open choices (options of
refquant.tensorrt_profile, defaults marked): scale_op multiply_reciprocal* | divide; bias
after_scaling* | before_scaling; epilogue float32* | float16; multiplier reciprocal* | divide.
This profile: {', '.join(f'{k}={v}' for k, v in chosen.items())}.  DynamicQuantizeLinear,
MatMulInteger, ConvInteger, QLinearMatMul/QLinearConv as *ONNX nodes* are rejected by the
TensorRT ONNX parser; DLA (ties away from zero) and implicit-quantization weights (ties toward
+inf) are not modelled.""",
        **fields,
    )


TENSORRT = register_profile(tensorrt_profile())

# engine adapter (refquant.engines) whose output each profile reproduces, where one exists
ENGINE_OF = {
    "onnx-reference": "onnx-reference", "onnxruntime": "onnxruntime", "pytorch": "pytorch",
    "pytorch-fakequant": "pytorch-fakequant", "pytorch-fbgemm": "pytorch-fbgemm",
    "pytorch-x86": "pytorch-x86", "pytorch-qnnpack": "pytorch-qnnpack",
    "pytorch-onednn": "pytorch-onednn", "tflite-reference": "tflite-reference",
    "tflite-optimized": "tflite-optimized", "tflite-xnnpack": "tflite-xnnpack",
}
