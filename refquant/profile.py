"""Profiles: a named, documented record of every arithmetic choice an engine makes.

The ops never branch on a profile's *name*; they read its fields.  A vendor
profile is one point in this policy space; a user builds a custom one with
``Profile(name="mine", q_scale_op="multiply_reciprocal", ...)`` or
``get_profile("onnx").replace(q_rounding="half_away")``.  ``refquant.profiles()`` lists the named
profiles (``refquant/_builtin_profiles.py``; ``docs/profiles.md`` compares them).

Fields (the value in brackets is the ``onnx`` specification profile):

Quantize (QuantizeLinear, the Q half of DynamicQuantizeLinear)
    q_scale_op ["divide"]            "divide": x / s;  "multiply_reciprocal": x * fl(1/s), the
                                     reciprocal rounded to the division precision.
    q_fma [False]                    with multiply_reciprocal and zero point before rounding:
                                     fl(fma(x, 1/s, zp)), one rounding (torch.quantize_per_tensor).
    q_rounding ["half_even"]         rounding of x/s to an integer: "half_even" (RNE),
                                     "half_away" (std::round), "half_up" (toward +inf).
    q_zero_point ["after_rounding"]  "after_rounding": round(x/s) + zp;
                                     "before_rounding": round(x/s + zp) (sum in division precision).
    q_nan ["qmin"]                   integer code a NaN input produces: "qmin", "qmax", "zero_point",
                                     "zero" (the code 0 whatever the zero point: torch.quantize_per_channel),
                                     or "int32_wrap" (onnx.reference: NaN -> INT32_MIN, + zp, clip).
    q_overflow ["saturate"]          |x/s| beyond int32: "saturate" (clamp to [qmin, qmax]) or
                                     "int32_wrap" (onnx.reference casts to int32 before clipping), or
                                     "int64_min" (a float -> int64 conversion: |v| >= 2^63 and +-Inf give
                                     INT64_MIN, hence qmin; smaller values saturate:
                                     torch.fake_quantize_per_channel_affine).
    q_inf ["saturate"]               "saturate" (+inf -> qmax, -inf -> qmin), "qmin" or "qmax" (both).
    q_fp16_division ["spec"]         precision of x/s for float16/bfloat16 inputs: "spec" (the scale
                                     type, or ``precision``), "float32" (always float32), or
                                     "float32_below_opset23" (ORT: float32 at opset < 23, spec after).
    q_division_precision ["spec"]    "spec": the ``precision`` attribute, else the scale type (opset >= 23)
                                     / the common x-and-scale type (opset < 23; int32 x -> scale type);
                                     "numpy_promotion": numpy's result type of x / scale (onnx.reference:
                                     int32 x with a float32 scale divides in float64, a float32 x with a
                                     float16 scale in float32); "float64": x and the scale widened
                                     exactly to double and divided there (LiteRT optimized QUANTIZE's
                                     scalar tail: std::round(double(x) / double(s))).
    q_float8_saturate0 ["cast"]      float8 outputs with saturate=0: "cast" (round to nearest even, the
                                     Cast table: overflow -> NaN / Inf) or "onnxruntime" (ORT's
                                     conversion: e4m3fn |v| in [480, 496) -> +-448, e5m2 |v| in
                                     [61440, 65536) -> NaN), or "saturate" (the attribute is ignored and
                                     float8 always saturates: TensorRT's parser).
    q_vector_width [0]               0: every element follows the fields above.  w > 0: the engine
                                     quantizes full blocks of w elements with a vector loop and the
                                     last (n mod w) elements of the flattened (C-order) tensor with a
                                     scalar loop whose arithmetic is given by the "tail" override
                                     (LiteRT's optimized QUANTIZE: w = 8, vector RNE(x*fl32(1/s)),
                                     tail std::round(x/s)).
    q_float_zero_point ["add_nonzero"] float8/4/6 targets: "add_nonzero": v + zp, a zero zp leaving v
                                     (so -0.0 stays -0.0, as ORT float8); "add": IEEE v + zp always;
                                     "add_nonzero_float8": "add_nonzero" for float8, "add" for
                                     float4/float6 (the 'onnx' profile: onnx.reference and ONNX's own
                                     test_quantizelinear_float4e2m1 give +0 for -0.0 + a zero zp);
                                     "ignore" the zero point (ORT: float8 Q drops it, float8 DQ refuses
                                     a non-zero one); "ignore_float8": ignore it for float8,
                                     IEEE-add it for float4/float6 (onnx.reference).

Dequantize
    dq_subtract ["exact"]            "exact": (x - zp) in int64, then converted to the compute type;
                                     "float32": fl32(x) - fl32(zp) (onnx.reference; rounds int32 x
                                     above 2^24).  "scale_then_subtract": fl(fl(x*s) - fl(zp*s))
                                     (LiteRT optimized DEQUANTIZE's vector loop).
    dq_vector_width [0]              as q_vector_width, for DequantizeLinear (LiteRT optimized: 8; the
                                     "tail" override gives the remainder loop's fields).

DynamicQuantizeLinear
    dql_zero_range_scale [1.0]       y_scale when max == min (all-zero input): 1.0 (ORT) or 1/255
                                     (onnx.reference).

Requantization (QLinearMatMul, QLinearConv, QGemm, requantize): y = sat(round(acc * M) + zp)
    rq_multiplier ["fp32"]           how M = a_s*b_s/y_s is formed: "fp32": fl32(fl32(a_s*b_s)/y_s);
                                     "scale_type": the same in the scales' own type, fl_T(fl_T(a_s*b_s)
                                     /y_s) with T float16 / bfloat16 when every scale has that type
                                     (QLinearMatMul-21's float16 scales in onnx's reference
                                     evaluator), else float32;
                                     "fp32_reciprocal": fl32(fl32(a_s*b_s)*fl32(1/y_s)) (QNNPACK);
                                     "fp64": (double)a_s*(double)b_s/(double)y_s (TFLite);
                                     "fp64_f32product": (double)fl32(a_s*b_s)/(double)y_s (TFLite's
                                     GetQuantizedConvolutionMultipler: the per-tensor FULLY_CONNECTED
                                     and the uint8 CONV_2D multiplier);
                                     "onednn": no single M -- the scales are applied one after the
                                     other, each through a reciprocal round trip, the float bias
                                     after them: v = fl32(fl32(fl32(fl32(acc)*a_s')*b_s') + b) *
                                     fl32(1/y_s), s' = fl32(1/fl32(1/s)) (oneDNN via torch/ideep).
    rq_method ["float"]              "float": round(acc_f * M_f) in rq_precision;
                                     "fixed_point": gemmlowp Q31 multiplier (see rq_fixed_rounding).
    rq_precision ["float32"]         precision of the float product: "float32" or "float64".
    rq_acc_to_float ["float32"]      conversion of the int32 accumulator (+ bias): "float32" (cvtdq2ps,
                                     rounds above 2^24) or "float64" (exact).
    rq_rounding ["half_even"]        rounding rule for the float method.
    rq_zero_point ["after_rounding"] "after_rounding" or "before_rounding" (onnx.reference).
    rq_fixed_rounding ["double"]     fixed point: "double" (SRDHM half-up then RDPOT half-away,
                                     gemmlowp/TFLite reference), "single" (TFLITE_SINGLE_ROUNDING,
                                     half-up once), "double_half_up" (ruy x86: half-up twice).
    rq_bias ["int32"]                "int32": bias added to acc before conversion; "float": fbgemm's
                                     fl32(acc) + fl32(b / (a_s*b_s)) with a float bias (its
                                     per-channel path); "float_rcp_fma": fbgemm's per-tensor path,
                                     fma(b, fl32(1 / fl32(a_s*b_s)), fl32(acc)) rounded once;
                                     "float_after_scaling": acc*M + b/y_s (a TensorRT option).
    rq_epilogue_dtype ["float32"]    "float32" or "float16" epilogue (TensorRT option).
    rq_float_to_int ["saturate"]     the float -> integer conversion of the scaled value when it
                                     leaves int32 (a tiny y_scale: |round(v)| >= 2^31): "saturate"
                                     (clamped in float first, MLAS / oneDNN / the spec: +-huge ->
                                     qmax / qmin) or "int32_min" (cvtps2dq returns INT32_MIN, and the
                                     saturating packs that follow give qmin whatever the sign:
                                     fbgemm requantizeOutputProcessingAvx2, QNNPACK's SSE2 kernels),
                                     or "int32_min_wrap" (INT32_MIN, + zp in int32 with wraparound,
                                     then the clamp: TFLite's reference FULLY_CONNECTED), or
                                     "int32_min_wrap_negative" (that below -2^31 only; the top is
                                     clamped in float first: XNNPACK's AVX-512 VNNI GEMM).
    rq_nan ["int32_min"]             the result of a NaN scaled value (a NaN float bias, or inf - inf
                                     when fl(acc*M) overflows against an infinite bias term; never
                                     with an int32 bias and a float32/float64 epilogue): "int32_min"
                                     (cvtps2dq gives INT32_MIN, which rq_float_to_int then handles:
                                     qmin, or INT32_MIN + zp with wraparound; measured, torch fbgemm),
                                     "zero" (the conversion gives 0, then + zp when it is added after
                                     rounding: the GPU's cvt.rni.sat, TensorRT) or "qmax" (a vminps
                                     clamp with the bound second returns the bound: measured, torch
                                     2.13 oneDNN linear/conv, u8 output 255).

Integer GEMM
    int16_pair_saturation [False]    u8 x s8 products summed pairwise (k, k+1) into a saturating
                                     int16 before int32 accumulation (x86 vpmaddubsw, AVX2 MLAS/fbgemm):
                                     False, True (every GEMM/conv), "mlas" (ONNX Runtime's AVX2
                                     kernels: every GEMM/conv but depthwise QLinearConv, whose
                                     MlasConvDepthwise widens exactly), or "fbgemm_depthwise" (only the
                                     convolutions that take fbgemm's depthwise fast path, AVX2 code
                                     that saturates even on VNNI CPUs; see reference/conv.py).
    accumulator ["int32_wrap"]       "int32_wrap": exact sum, two's-complement wrap at 32 bits.

Restrictions (an op a profile cannot express raises ``ProfileError``)
    ops [None]                       op names the profile models (None = all).
    symmetric_only [False]           non-zero zero points rejected (TensorRT).
    symmetric_error [""]             the engine's own error message for that rejection.
    qtypes [None]                    quantized element types (ONNX names) the engine supports, None =
                                     all; QuantizeLinear outputs / DequantizeLinear inputs of another
                                     type raise ProfileError with ``qtypes_error``.
    qtypes_error [""]                the message for that rejection (the engine's rule).
    extra["weights"]                 (metadata, not arithmetic) the engine's weight zero point
                                     limit: "zero_point_0" (pytorch-onednn) or "int8_zero_point_0"
                                     (tflite-*); the QLinear ops raise ProfileError with
                                     extra["weights_error"] (lint RQ104 says the same).
    extra["multiplier"]              "normal": the engine refuses a requantization multiplier that is
                                     zero or subnormal in float32 (pytorch-qnnpack); the QLinear ops
                                     raise ProfileError with extra["multiplier_error"].

Variants inside one engine
    overrides [()]                   field changes that apply only to some calls, as a tuple of
                                     (selector, {field: value}) pairs, applied in order by
                                     ``Profile.for_op(op, per_axis=..., dtype=...)``.  Selectors: an
                                     ONNX op name ("QLinearMatMul", "QGemm", "QLinearConv",
                                     "QuantizeLinear", ...), "per_axis" (Q/DQ with a 1-D scale; the
                                     QLinear ops with a per-channel weight scale), "per_tensor" (the
                                     opposite), "uint8" (the QLinear ops with a uint8 activation
                                     input x / a / A), "asymmetric_weights" (the QLinear ops with a
                                     non-zero weight zero point), "tail" (the scalar remainder loop, see
                                     q_vector_width), or several of these joined by "+", which
                                     selects the calls where all of them hold
                                     ("QLinearMatMul+per_tensor").  Example: torch.quantize_per_channel rounds twice
                                     where quantize_per_tensor fuses (pytorch: per_axis -> q_fma=False),
                                     LiteRT's reference FULLY_CONNECTED requantizes in double where its
                                     CONV_2D uses fixed point.  Ops call ``for_op`` before reading fields;
                                     a profile without overrides is returned unchanged.

Documentation (not arithmetic)
    name, description (one line), sources (vendor files modelled), doc (long text: what is verified
    live against which engine version, what is not), extra (free-form metadata).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

__all__ = ["Profile", "ProfileError", "get_profile", "profiles", "register_profile"]


class ProfileError(ValueError):
    """An op or argument a profile cannot express."""


_CHOICES = {
    "q_scale_op": ("divide", "multiply_reciprocal"),
    "q_rounding": ("half_even", "half_away", "half_up"),
    "q_zero_point": ("after_rounding", "before_rounding"),
    "q_nan": ("qmin", "qmax", "zero_point", "zero", "int32_wrap"),
    "q_overflow": ("saturate", "int32_wrap", "int64_min"),
    "q_inf": ("saturate", "qmin", "qmax"),
    "q_fp16_division": ("spec", "float32", "float32_below_opset23"),
    "q_division_precision": ("spec", "numpy_promotion", "float64"),
    "q_float_zero_point": ("add_nonzero", "add", "add_nonzero_float8", "ignore", "ignore_float8"),
    "q_float8_saturate0": ("cast", "onnxruntime", "saturate"),
    "dq_subtract": ("exact", "float32", "scale_then_subtract"),
    "rq_multiplier": ("fp32", "fp32_reciprocal", "fp64", "fp64_f32product", "onednn", "scale_type"),
    "rq_method": ("float", "fixed_point"),
    "rq_precision": ("float32", "float64"),
    "rq_acc_to_float": ("float32", "float64"),
    "rq_rounding": ("half_even", "half_away", "half_up"),
    "rq_zero_point": ("after_rounding", "before_rounding"),
    "rq_fixed_rounding": ("double", "single", "double_half_up"),
    "rq_bias": ("int32", "float", "float_rcp_fma", "float_after_scaling"),
    "rq_epilogue_dtype": ("float32", "float16"),
    "rq_float_to_int": ("saturate", "int32_min", "int32_min_wrap", "int32_min_wrap_negative"),
    "rq_nan": ("int32_min", "zero", "qmax"),
    "accumulator": ("int32_wrap",),
}


@dataclass(frozen=True)
class Profile:
    """A record of arithmetic choices; see the module docstring for every field."""

    name: str = "custom"
    description: str = ""
    sources: tuple = ()
    # quantize
    q_scale_op: str = "divide"
    q_fma: bool = False
    q_rounding: str = "half_even"
    q_zero_point: str = "after_rounding"
    q_nan: str = "qmin"
    q_overflow: str = "saturate"
    q_inf: str = "saturate"
    q_fp16_division: str = "spec"
    q_division_precision: str = "spec"
    q_float_zero_point: str = "add_nonzero"
    q_float8_saturate0: str = "cast"
    q_vector_width: int = 0
    # dequantize
    dq_subtract: str = "exact"
    dq_vector_width: int = 0
    # dynamic quantize
    dql_zero_range_scale: float = 1.0
    # requantize
    rq_multiplier: str = "fp32"
    rq_method: str = "float"
    rq_precision: str = "float32"
    rq_acc_to_float: str = "float32"
    rq_rounding: str = "half_even"
    rq_zero_point: str = "after_rounding"
    rq_fixed_rounding: str = "double"
    rq_bias: str = "int32"
    rq_epilogue_dtype: str = "float32"
    rq_float_to_int: str = "saturate"
    rq_nan: str = "int32_min"
    # integer GEMM
    int16_pair_saturation: bool = False
    accumulator: str = "int32_wrap"
    # restrictions
    ops: tuple | None = None
    symmetric_only: bool = False
    symmetric_error: str = ""
    qtypes: tuple | None = None
    qtypes_error: str = ""
    # variants
    overrides: tuple = ()
    doc: str = field(default="", compare=False)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        for fname, allowed in _CHOICES.items():
            val = getattr(self, fname)
            if val not in allowed:
                raise ValueError(f"Profile field {fname}={val!r}: expected one of {allowed}")
        if self.ops is not None and not isinstance(self.ops, tuple):
            object.__setattr__(self, "ops", tuple(self.ops))
        if self.qtypes is not None:
            from ._dtypes import onnx_name, resolve_dtype
            object.__setattr__(self, "qtypes", tuple(onnx_name(resolve_dtype(t, argname="qtypes"))
                                                     for t in self.qtypes))
        if self.ops is not None:
            bad = [o for o in self.ops if o not in _OP_NAMES]
            if bad:
                raise ValueError(f"Profile field ops: unknown op name(s) {bad}; expected ONNX names "
                                 f"from {_OP_NAMES}")
        if not isinstance(self.sources, tuple):
            object.__setattr__(self, "sources", tuple(self.sources))
        for fname in ("q_vector_width", "dq_vector_width"):
            v = getattr(self, fname)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"Profile field {fname}={v!r}: expected an int >= 0")
        if not isinstance(self.q_fma, bool):
            raise TypeError("Profile field q_fma must be bool")
        if self.int16_pair_saturation not in (False, True, "fbgemm_depthwise", "mlas") or \
                isinstance(self.int16_pair_saturation, (int, float)) and \
                not isinstance(self.int16_pair_saturation, bool):
            raise ValueError(f"Profile field int16_pair_saturation={self.int16_pair_saturation!r}: "
                             "expected False, True, 'mlas' or 'fbgemm_depthwise'")
        try:
            zr = float(self.dql_zero_range_scale)
        except (TypeError, ValueError):
            raise TypeError("Profile field dql_zero_range_scale must be a float") from None
        if not zr > 0 or zr != zr or zr == float("inf"):
            raise ValueError(f"Profile field dql_zero_range_scale={self.dql_zero_range_scale!r}: must be "
                             "finite and > 0")
        object.__setattr__(self, "overrides", _normalize_overrides(self.overrides))

    def for_op(self, op: str, *, per_axis: bool | None = None, tail: bool = False,
               dtype=None, asymmetric_weights: bool | None = None) -> "Profile":
        """The profile as it applies to one call: ``overrides`` whose selector is ``op``, or
        "per_axis"/"per_tensor" when ``per_axis`` is True/False, "uint8" when ``dtype`` (the
        activation input's type) is uint8, "asymmetric_weights" when ``asymmetric_weights`` (a
        non-zero weight zero point), or "tail" when ``tail`` -- a "+"-joined selector
        when every part holds -- applied in order.  Returns ``self`` when nothing applies (so
        identity and equality are kept); otherwise a profile of the same name keeping only the
        overrides not applied (an unknown ``per_axis`` / ``dtype`` leaves theirs for later)."""
        is_u8 = None
        if dtype is not None:
            import numpy as np
            try:
                is_u8 = np.dtype(dtype) == np.dtype(np.uint8)
            except TypeError:
                is_u8 = False

        def holds(part):
            return (part == op or (per_axis is True and part == "per_axis") or
                    (per_axis is False and part == "per_tensor") or (tail and part == "tail") or
                    (is_u8 is True and part == "uint8") or
                    (asymmetric_weights is True and part == "asymmetric_weights"))

        changes, rest = {}, []
        for sel, fields in self.overrides:
            if all(holds(part) for part in sel.split("+")):
                changes.update(fields)
            else:
                rest.append((sel, fields))
        if not changes:
            return self
        return dataclasses.replace(self, name=self.name, overrides=tuple(rest), **changes)

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (name becomes '<name>+custom' unless given)."""
        if "name" not in changes:
            changes["name"] = self.name + "+custom"
        return dataclasses.replace(self, **changes)

    def arithmetic(self) -> dict:
        """The arithmetic fields only (no name/description/sources/doc), as a dict."""
        skip = {"name", "description", "sources", "extra", "doc", "qtypes_error", "symmetric_error"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}

    def diff(self, other: "Profile") -> dict:
        """{field: (self value, other value)} for every arithmetic field that differs."""
        a, b = self.arithmetic(), other.arithmetic()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    def check_op(self, op: str) -> None:
        """Raise ProfileError if this profile does not model ``op``."""
        if self.ops is not None and op not in self.ops:
            raise ProfileError(f"profile {self.name!r} does not model {op} "
                               f"(it models: {', '.join(self.ops)})")

    def check_qtype(self, dtype, op: str) -> None:
        """Raise ProfileError if ``dtype`` is not among ``qtypes`` (when set)."""
        if self.qtypes is None:
            return
        from ._dtypes import onnx_name
        name = onnx_name(dtype)
        if name not in self.qtypes:
            raise ProfileError(f"profile {self.name!r}: {op} with {name} is not supported "
                               f"(supported: {', '.join(self.qtypes)})"
                               + (f"; {self.qtypes_error}" if self.qtypes_error else ""))

    def __str__(self):
        return f"Profile({self.name!r})"


_SELECTORS_EXTRA = ("per_axis", "per_tensor", "tail", "uint8", "asymmetric_weights")
_OP_NAMES = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
             "QLinearMatMul", "ConvInteger", "QLinearConv", "QGemm")


def _normalize_overrides(ov) -> tuple:
    """Validate ``overrides`` and return it as a hashable tuple of (selector, ((field, value), ...))."""
    if ov is None:
        return ()
    if isinstance(ov, dict):
        ov = tuple(ov.items())
    out = []
    names = {f.name for f in dataclasses.fields(Profile)} - {
        "name", "description", "sources", "doc", "extra", "overrides", "ops"}
    for item in ov:
        try:
            sel, fields = item
        except (TypeError, ValueError):
            raise TypeError("Profile field overrides: expected (selector, {field: value}) pairs") from None
        if not isinstance(sel, str) or not sel or \
                any(part not in _OP_NAMES and part not in _SELECTORS_EXTRA for part in sel.split("+")):
            raise ValueError(f"Profile field overrides: unknown selector {sel!r}; expected an op name "
                             f"({', '.join(_OP_NAMES)}) or one of {_SELECTORS_EXTRA}, or several joined "
                             f"by '+'")
        items = tuple(sorted(dict(fields).items()))
        for k, v in items:
            if k not in names:
                raise ValueError(f"Profile field overrides[{sel!r}]: {k!r} is not an arithmetic field")
            if k in _CHOICES and v not in _CHOICES[k]:
                raise ValueError(f"Profile field overrides[{sel!r}]: {k}={v!r}: expected one of "
                                 f"{_CHOICES[k]}")
        out.append((sel, items))
    return tuple(out)


_REGISTRY: dict[str, Profile] = {}
# bumped by every register_profile(): caches of what a named profile allows (refquant._dispatch's
# compiled entries for the default profile) compare it to know they are current
_GENERATION = [0]


def register_profile(profile: Profile) -> Profile:
    """Add a profile to the registry under ``profile.name`` (replacing one of that name)."""
    _REGISTRY[profile.name] = profile
    _GENERATION[0] += 1
    return profile


def get_profile(profile) -> Profile:
    """Resolve a profile argument: a ``Profile`` or a registered name."""
    if isinstance(profile, Profile):
        return profile
    if profile is None:
        profile = "onnx"
    if isinstance(profile, str):
        _ensure_builtin()
        try:
            return _REGISTRY[profile]
        except KeyError:
            raise ValueError(f"profile: unknown profile {profile!r}; known: "
                             f"{', '.join(sorted(_REGISTRY))}") from None
    raise TypeError(f"profile: expected a profile name or refquant.Profile, got {type(profile).__name__}")


def profiles() -> dict:
    """{name: one-line description} of every registered profile."""
    _ensure_builtin()
    return {n: p.description for n, p in _REGISTRY.items()}


def _ensure_builtin():
    if "onnx" not in _REGISTRY:
        from . import _builtin_profiles  # noqa: F401  (registers on import)
