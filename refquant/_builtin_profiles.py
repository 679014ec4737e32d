"""The built-in named profiles.  Each docstring/description cites what it models.

See ``refquant.profile`` for the meaning of every field.
"""
from __future__ import annotations

from .profile import Profile, register_profile

ONNX = register_profile(Profile(
    name="onnx",
    description="ONNX specification (onnx/defs/quantization/defs.cc): x/s, round half to even, "
                "zp after rounding, saturate; requant fl32(fl32(a_s*b_s)/y_s) in float32",
    sources=("onnx/defs/quantization/defs.cc", "onnx/defs/math/defs.cc (QLinearMatMul)",
             "onnx/defs/nn/defs.cc (QLinearConv, ConvInteger)"),
))

ONNX_REFERENCE = register_profile(Profile(
    name="onnx-reference",
    description="onnx.reference.ReferenceEvaluator (numpy), deviations included: int32 cast before "
                "clip, zp ignored for float8, zp added before rounding in QLinear ops, float64 products",
    sources=("onnx/reference/ops/op_quantize_linear.py", "onnx/reference/ops/op_dequantize_linear.py",
             "onnx/reference/ops/op_qlinear_matmul.py", "onnx/reference/ops/op_qlinear_conv.py",
             "onnx/reference/ops/op_dynamic_quantize_linear.py"),
    q_nan="int32_wrap", q_overflow="int32_wrap", q_inf="saturate",
    q_float_zero_point="ignore_float8", q_division_precision="numpy_promotion",
    dq_subtract="float32",
    dql_zero_range_scale=1.0 / 255.0,
    rq_multiplier="fp32", rq_precision="float64", rq_acc_to_float="float64",
    rq_zero_point="before_rounding",
))

ONNXRUNTIME = register_profile(Profile(
    name="onnxruntime",
    description="ONNX Runtime CPU (MLAS) on a VNNI/AMX CPU: x/s, clamp in float, RNE; requant "
                "cvtdq2ps(acc+bias) * fl32(fl32(a_s*b_s)/y_s), RNE, zp after rounding",
    sources=("onnxruntime/core/mlas/lib/quantize.cpp (MlasQuantizeLinear, MlasRequantizeOutput)",
             "onnxruntime/core/util/qmath.h (GetQuantizationParameter)",
             "onnxruntime/core/providers/cpu/quantization/quantize_linear_matmul.cc",
             "onnxruntime/core/providers/cpu/quantization/qlinearconv.cc",
             "onnxruntime/contrib_ops/cpu/quantization/quant_gemm.cc"),
    q_nan="qmin", q_fp16_division="float32_below_opset23",
))

ONNXRUNTIME_AVX2 = register_profile(ONNXRUNTIME.replace(
    name="onnxruntime-avx2",
    description="ONNX Runtime CPU on an AVX2-only CPU: as 'onnxruntime' plus int16 pair saturation "
                "of the u8 x s8 vpmaddubsw kernel (not checkable live on a VNNI machine)",
    sources=ONNXRUNTIME.sources + ("onnxruntime/core/mlas/lib/x86_64/QgemmU8X8KernelAvx2.S",),
    int16_pair_saturation=True,
))
