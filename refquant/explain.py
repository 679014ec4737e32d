"""Explain an observed quantized output: which vendor profile reproduces it bit for bit, how far
the others are (in integer output steps) and why, and -- when none matches -- which single
arithmetic choice would.

    >>> r = refquant.explain("QuantizeLinear", {"x": x, "y_scale": s, "y_zero_point": zp}, observed)
    >>> r.matches                  # ['pytorch', ...]: profiles reproducing `observed` exactly
    >>> print(r)                   # readable report
    >>> r.to_dict()                # JSON-ready

Method
------
1. Every candidate profile (default: every registered profile that models ``op``) runs
   ``refquant.reference.<op>`` on ``inputs`` (op-specific overrides applied,
   ``Profile.for_op``).  A profile that cannot express the call (e.g. TensorRT and a non-zero
   zero point) is listed with its error and skipped.  When no candidate can run the call and
   they all fail with the same error that is not a profile's own limit (a missing input, a zero
   scale, float64 x, mismatched shapes, an unsupported opset), the inputs themselves are invalid:
   ``explain`` raises that error (ValueError/TypeError) instead of returning an empty match list.
2. Its output is compared with ``observed``: n_diff elements and the largest difference in
   integer steps of the output (for DequantizeLinear's float output: |diff| / x_scale).
3. Each differing element is classified by the exact (float64) value the op rounds:
   ``nan_inf_input`` (x is NaN or +-Inf), ``overflow`` (|x/s| >= 2^31),
   ``saturation_boundary`` (either value sits on qmin/qmax, or the exact value lies beyond the
   range), ``large_accumulator`` (|acc| > 2^24, float32 conversion rounds),
   ``rounding_tie`` (the exact value is within 2^-20 relative of k + 0.5 and the outputs differ
   by one step), ``int16_pair`` (u8 x
   s8 k-pair sums leave int16 and saturating them, as vpmaddubsw does, accounts for the
   difference), ``float_rounding`` (float
   outputs within 2 ulps), ``nan_vs_finite`` / ``nan_vs_inf`` / ``inf_vs_finite`` / ``inf_sign``
   (float outputs where one side is NaN or Inf: these count as infinitely many steps,
   ``max_steps`` = inf), otherwise ``other``.
4. Without a match, single-field variations of the nearest candidates are searched: each
   arithmetic field the op reads (rounding, division, zero-point order, requantization method,
   multiplier, bias domain, saturation ...) set to each other allowed value.  Every variation
   that reproduces ``observed`` exactly is reported as "<profile> with <field> = <value>".
"""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np

from .profile import Profile, ProfileError, get_profile, profiles as _profiles, _CHOICES
from .engines._onnx_model import OP_INPUTS, check_inputs
from .engines._reference import run_reference, resolve_profile

__all__ = ["explain", "Explanation", "ProfileComparison", "FIELDS_READ"]

# arithmetic fields each op reads (the single-field search space)
_Q = ("q_scale_op", "q_fma", "q_rounding", "q_zero_point", "q_nan", "q_overflow", "q_inf",
      "q_fp16_division", "q_division_precision", "q_float_zero_point", "q_float8_saturate0",
      "q_vector_width")
_RQ = ("rq_multiplier", "rq_method", "rq_precision", "rq_acc_to_float", "rq_rounding", "rq_zero_point",
       "rq_fixed_rounding", "rq_bias", "rq_epilogue_dtype", "rq_float_to_int", "rq_nan", "int16_pair_saturation")
FIELDS_READ = {
    "QuantizeLinear": _Q,
    "DequantizeLinear": ("dq_subtract", "dq_vector_width"),
    "DynamicQuantizeLinear": ("dql_zero_range_scale",) + _Q,
    "MatMulInteger": ("int16_pair_saturation",),
    "ConvInteger": ("int16_pair_saturation",),
    "QLinearMatMul": _RQ,
    "QGemm": _RQ,
    "QLinearConv": _RQ,
}
_EXTRA_VALUES = {"q_fma": (False, True), "int16_pair_saturation": (False, True, "mlas", "fbgemm_depthwise"),
                 "q_vector_width": (0, 8), "dq_vector_width": (0, 8),
                 "dql_zero_range_scale": (1.0, float(np.float32(1.0) / np.float32(255.0)), 1.0 / 255.0)}
_TOPIC = {
    "q_scale_op": "division", "q_fma": "fused multiply-add", "q_rounding": "rounding",
    "q_zero_point": "zero-point order", "q_nan": "NaN handling", "q_overflow": "overflow/saturation",
    "q_inf": "Inf handling", "q_fp16_division": "division precision",
    "q_division_precision": "division precision", "q_float_zero_point": "float zero point",
    "q_vector_width": "vector/tail split", "q_float8_saturate0": "float8 overflow", "dq_subtract": "dequantize subtraction",
    "dq_vector_width": "vector/tail split", "dql_zero_range_scale": "all-zero range scale",
    "rq_multiplier": "requantization multiplier", "rq_method": "requantization method",
    "rq_precision": "requantization precision", "rq_acc_to_float": "accumulator conversion",
    "rq_rounding": "rounding", "rq_zero_point": "zero-point order",
    "rq_fixed_rounding": "fixed-point rounding", "rq_bias": "bias domain",
    "rq_epilogue_dtype": "epilogue precision", "rq_float_to_int": "conversion beyond int32", "rq_nan": "NaN handling",
    "int16_pair_saturation": "saturation",
}
_CLASSES = ("nan_inf_input", "overflow", "saturation_boundary", "large_accumulator", "int16_pair",
            "rounding_tie", "float_rounding", "nan_vs_finite", "nan_vs_inf", "inf_vs_finite", "inf_sign",
            "other")
# how a class reads in the text report (default: underscores to spaces)
_CLASS_LABEL = {"nan_vs_finite": "NaN vs finite", "nan_vs_inf": "NaN vs Inf", "inf_vs_finite": "Inf vs finite",
                "inf_sign": "+Inf vs -Inf"}


def _label(cls):
    return _CLASS_LABEL.get(cls, cls.replace("_", " "))
_MAX_EXAMPLES = 5
_SEARCH_NEAREST = 4


@dataclasses.dataclass
class ProfileComparison:
    """One candidate profile against the observation."""
    profile: str
    status: str                     # "match", "differs", "cannot_express"
    n_diff: int = 0
    max_steps: float = 0.0
    classes: dict = dataclasses.field(default_factory=dict)
    examples: list = dataclasses.field(default_factory=list)   # (index, expected, observed, class)
    error: str = ""

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["examples"] = [{"index": list(i), "expected": e, "observed": o, "class": c}
                         for i, e, o, c in self.examples]
        return d


@dataclasses.dataclass
class Explanation:
    """The result of :func:`explain`."""
    op: str
    n: int
    matches: list
    comparisons: list
    nearest: str | None = None
    suggestions: list = dataclasses.field(default_factory=list)   # dicts: profile, field, from, to, topic
    opset: int | None = None
    step_unit: str = "output steps"
    # with a match: the single changes of the spec ("onnx") that give the observation (same dicts)
    spec_causes: list = dataclasses.field(default_factory=list)

    def comparison(self, name):
        for c in self.comparisons:
            if c.profile == name:
                return c
        raise KeyError(name)

    def to_dict(self):
        return _jsonable({
            "op": self.op, "opset": self.opset, "n": self.n, "matches": list(self.matches),
            "nearest": self.nearest, "step_unit": self.step_unit,
            "profiles": [c.to_dict() for c in self.comparisons],
            "suggestions": list(self.suggestions), "spec_causes": list(self.spec_causes),
        })

    def to_json(self, **kw):
        return json.dumps(self.to_dict(), **kw)

    def __str__(self):
        lines = [f"refquant explain: {self.op} ({self.n} output elements"
                 + (f", opset {self.opset}" if self.opset else "") + ")"]
        if self.matches:
            lines.append("Reproduced exactly by: " + ", ".join(self.matches))
            for s in self.spec_causes:
                lines.append(f"The spec ({s['profile']}) gives it with one change: {s['field']} = "
                             f"{s['to']!r} (was {s['from']!r}; {s['topic']})")
        else:
            lines.append("No candidate profile reproduces the observed output exactly.")
        others = [c for c in self.comparisons if c.status == "differs"]
        others.sort(key=lambda c: (c.n_diff, c.max_steps))
        if others:
            lines.append("")
            lines.append(f"{'profile':<20} {'differ':>8} {'max ' + self.step_unit:>18}  where the differences sit")
            for c in others:
                cls = ", ".join(f"{v} {_label(k)}" for k, v in
                                sorted(c.classes.items(), key=lambda kv: -kv[1]))
                ms = f"{c.max_steps:g}"
                lines.append(f"{c.profile:<20} {c.n_diff:>8} {ms:>18}  {cls}")
        bad = [c for c in self.comparisons if c.status == "cannot_express"]
        if bad:
            lines.append("")
            lines.append("Cannot express this call:")
            for c in bad:
                lines.append(f"  {c.profile}: {c.error}")
        if not self.matches:
            lines.append("")
            if self.nearest:
                c = self.comparison(self.nearest)
                lines.append(f"Nearest profile: {self.nearest} ({c.n_diff} of {self.n} differ, "
                             f"max {c.max_steps:g} {self.step_unit}).")
                for i, e, o, k in c.examples[:3]:
                    lines.append(f"  e.g. at {list(i)}: {self.nearest} gives {e}, observed {o} ({_label(k)})")
            if self.suggestions:
                lines.append("A single arithmetic change reproduces the observation exactly:")
                for s in self.suggestions:
                    lines.append(f"  {s['profile']} with {s['field']} = {s['to']!r} (was {s['from']!r}; "
                                 f"{s['topic']})")
            else:
                lines.append("No single-field change of the candidates reproduces it (the engine differs "
                             "in more than one choice, or in one refquant does not model).")
        return "\n".join(lines)


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating, float)):
        f = float(o)
        return f if np.isfinite(f) else repr(f)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    return o


# ------------------------------------------------------------------------------ comparison
# inputs without which no profile can run the op (the others are optional or may be None)
_REQUIRED = {
    "QuantizeLinear": ("x", "y_scale"), "DequantizeLinear": ("x", "x_scale"),
    "DynamicQuantizeLinear": ("x",), "MatMulInteger": ("A", "B"), "ConvInteger": ("x", "w"),
    "QLinearMatMul": ("a", "a_scale", "b", "b_scale", "y_scale"),
    "QLinearConv": ("x", "x_scale", "w", "w_scale", "y_scale"),
    "QGemm": ("A", "a_scale", "B", "b_scale"),
}


_SPEC = "onnx"     # the profile of the ONNX specification


def _raise_input_error(errors, op=None, inputs=()):
    """No candidate could run the call.  When they all failed with the same input error (not a
    profile's own limit), the reference itself rejects the inputs: raise that error (a missing
    trailing input as explain's own "needs" message)."""
    plain = [e for e in errors if not isinstance(e, ProfileError)]
    if plain and len({(type(e), str(e)) for e in plain}) == 1:
        m = re.search(r"missing \d+ required positional arguments?: (.*)$", str(plain[0]))
        if isinstance(plain[0], TypeError) and m:
            names = ", ".join(re.findall(r"'(\w+)'", m.group(1)))
            raise ValueError(f"inputs: {op} needs {names} (given: {', '.join(inputs)})") from None
        raise plain[0]


def _as_array(name, v):
    if v is None or isinstance(v, (dict, str, bytes)):
        raise TypeError(f"{name}: expected an array of the op's output, got "
                        f"{'None' if v is None else type(v).__name__}")
    a = np.asarray(v)
    if a.dtype == object or a.dtype.kind in "USO":
        raise TypeError(f"{name}: expected a numeric array, got {a.dtype} "
                        f"({type(v).__name__})")
    return a


def _as_outputs(op, observed):
    if op == "DynamicQuantizeLinear" and isinstance(observed, (tuple, list)):
        if not 1 <= len(observed) <= 3:
            raise ValueError(f"observed: DynamicQuantizeLinear has 3 outputs (y, y_scale, y_zero_point), "
                             f"got {len(observed)} arrays")
        return tuple(_as_array(f"observed[{i}]", o) for i, o in enumerate(observed))
    if isinstance(observed, list) and observed and all(np.ndim(o) == 0 for o in observed):
        observed = np.asarray(observed)      # a list of numbers: the values themselves
    if isinstance(observed, (tuple, list)) and op != "DynamicQuantizeLinear":
        if len(observed) != 1:
            raise ValueError(f"observed: {op} has one output, got {len(observed)} arrays")
        observed = observed[0]
    return (_as_array("observed", observed),)


def _exact_values(op, inputs, attributes, opset):
    """Per output element: (v, acc, x, qrange) -- the exact float64 value the op rounds, the
    integer accumulator (QLinear ops) and the input x (QuantizeLinear), for classification."""
    from . import reference as R
    from .reference.quantize import expand_qparam
    info = {}
    try:
        if op in ("QuantizeLinear", "DynamicQuantizeLinear"):
            x = inputs["x"]
            if op == "QuantizeLinear":
                s = np.asarray(inputs["y_scale"])
                zp = inputs.get("y_zero_point")
                axis = int(attributes.get("axis", 1)) % max(x.ndim, 1) if x.ndim else 0
                bs = int(attributes.get("block_size", 0) or 0)
                sb = expand_qparam(s, x.shape, axis, bs, argname="y_scale").astype(np.float64)
                zb = 0.0 if zp is None else expand_qparam(zp, x.shape, axis, bs,
                                                           argname="y_zero_point").astype(np.float64)
            else:
                _, s, zp = R.dynamic_quantize_linear(x.astype(np.float32))
                sb, zb = np.float64(s), np.float64(zp)
            with np.errstate(all="ignore"):
                info["v"] = np.broadcast_to(x.astype(np.float64) / sb + zb, x.shape)
            info["x"] = x
        elif op in ("QLinearMatMul", "QGemm", "MatMulInteger"):
            if op == "QLinearMatMul":
                A, B = inputs["a"], inputs["b"]
                azp, bzp = inputs.get("a_zero_point"), inputs.get("b_zero_point")
            else:
                A, B = inputs["A"], inputs["B"]
                azp, bzp = inputs.get("a_zero_point"), inputs.get("b_zero_point")
                if attributes.get("transA"):
                    A = np.swapaxes(A, -1, -2)
                if attributes.get("transB"):
                    B = np.swapaxes(B, -1, -2)
            a = A.astype(np.int64) - (0 if azp is None else np.asarray(azp, np.int64).reshape(
                (-1, 1) if np.ndim(azp) == 1 and op == "MatMulInteger" else np.shape(azp)))
            b = B.astype(np.int64) - (0 if bzp is None else np.asarray(bzp, np.int64))
            acc = a @ b
            if A.dtype == np.uint8 and B.dtype == np.int8 and A.shape[-1] >= 2:
                K2 = A.shape[-1] // 2 * 2
                pa = A[..., :K2].astype(np.int64)
                pb = B[..., :K2, :].astype(np.int64)
                prod = pa[..., :, :, None] * pb[..., None, :, :]
                pairs = prod[..., 0::2, :] + prod[..., 1::2, :]
                info["pair_loss"] = (pairs - np.clip(pairs, -32768, 32767)).sum(axis=-2)
            if op == "QGemm" and inputs.get("C") is not None and np.asarray(inputs["C"]).dtype.kind in "iu":
                acc = acc + np.asarray(inputs["C"], np.int64)
            info["acc"] = acc
            if op != "MatMulInteger" and inputs.get("y_scale") is not None:
                a_s = np.float64(np.asarray(inputs["a_scale"]).reshape(()))
                b_s = np.asarray(inputs["b_scale"], np.float64)
                y_s = np.float64(np.asarray(inputs["y_scale"]).reshape(()))
                alpha = float(attributes.get("alpha", 1.0)) if op == "QGemm" else 1.0
                info["m"] = np.broadcast_to(np.abs(alpha * a_s * b_s / y_s), acc.shape)
                v = acc * (alpha * a_s * b_s / y_s)
                if op == "QGemm" and inputs.get("C") is not None and np.asarray(inputs["C"]).dtype.kind == "f":
                    v = v + np.asarray(inputs["C"], np.float64) / y_s
                zp = inputs.get("y_zero_point")
                info["v"] = v + (0.0 if zp is None else np.float64(np.asarray(zp).reshape(())))
        elif op in ("QLinearConv", "ConvInteger"):
            conv_attrs = {k: v for k, v in attributes.items()
                          if k in ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")}
            acc = R.conv_integer(inputs["x"], inputs["w"], inputs.get("x_zero_point"),
                                 inputs.get("w_zero_point"), **conv_attrs).astype(np.int64)
            if inputs["x"].dtype != inputs["w"].dtype:     # u8 x s8: what vpmaddubsw would lose
                sat = get_profile("onnx").replace(name="pairs", int16_pair_saturation=True)
                acc_sat = R.conv_integer(inputs["x"], inputs["w"], inputs.get("x_zero_point"),
                                         inputs.get("w_zero_point"), profile=sat, **conv_attrs)
                info["pair_loss"] = acc - acc_sat.astype(np.int64)
            B = inputs.get("B")
            if op == "QLinearConv":
                if B is not None and np.asarray(B).dtype.kind in "iu":
                    acc = acc + np.asarray(B, np.int64).reshape(1, -1, *([1] * (acc.ndim - 2)))
                xs = np.float64(np.asarray(inputs["x_scale"]).reshape(()))
                ws = np.asarray(inputs["w_scale"], np.float64).reshape(
                    (1, -1) + (1,) * (acc.ndim - 2)) if np.ndim(inputs["w_scale"]) else \
                    np.float64(inputs["w_scale"])
                ys = np.float64(np.asarray(inputs["y_scale"]).reshape(()))
                v = acc * (xs * ws / ys)
                info["m"] = np.broadcast_to(np.abs(xs * ws / ys), acc.shape)
                if B is not None and np.asarray(B).dtype.kind == "f":
                    v = v + np.asarray(B, np.float64).reshape(1, -1, *([1] * (acc.ndim - 2))) / ys
                info["v"] = v + np.float64(np.asarray(inputs["y_zero_point"]).reshape(()))
            info["acc"] = acc
    except Exception:   # classification is best effort; the comparison itself never depends on it
        return {}
    return info


def _classify(op, idx, e, o, info, qrange, out_is_float):
    if out_is_float:
        return "float_rounding"
    x = info.get("x")
    if x is not None:
        xv = np.asarray(x).reshape(-1)[idx] if np.size(x) > idx else None
        if xv is not None and not np.isfinite(np.float64(xv)):
            return "nan_inf_input"
    v = info.get("v")
    vv = None
    if v is not None and np.size(v) > idx:
        vv = float(np.asarray(v).reshape(-1)[idx])
        if x is not None and abs(vv) >= 2.0 ** 31:
            return "overflow"
    if qrange is not None:
        lo, hi = qrange
        if e in (lo, hi) or o in (lo, hi) or (vv is not None and (vv < lo - 0.5 or vv > hi + 0.5)):
            return "saturation_boundary"
    loss = info.get("pair_loss")
    if loss is not None and np.size(loss) > idx:
        m = info.get("m")
        effect = abs(float(np.asarray(loss).reshape(-1)[idx])) * (
            float(np.asarray(m).reshape(-1)[idx]) if m is not None else 1.0)
        d = abs(float(e) - float(o))
        if effect >= 0.5 and max(1.0, 0.5 * effect - 1) <= d <= effect + 1:   # pairs account for it
            return "int16_pair"
    acc = info.get("acc")
    if acc is not None and np.size(acc) > idx and abs(int(np.asarray(acc).reshape(-1)[idx])) > 2 ** 24:
        return "large_accumulator"
    if vv is not None and np.isfinite(vv) and abs(float(e) - float(o)) <= 1:
        # a tie decides between two neighbours: it explains a difference of one step, not more
        frac = vv - np.floor(vv)
        if abs(frac - 0.5) <= 2.0 ** -20 * max(1.0, abs(vv)):
            return "rounding_tie"
    return "other"


def _compare(op, inputs, expected, observed, info, attributes=None):
    """(n_diff, max_steps, classes, examples) of expected vs observed outputs."""
    from ._dtypes import qrange as _qr
    n_diff, max_steps, classes, examples = 0, 0.0, {}, []
    for k, (e, o) in enumerate(zip(expected, observed)):
        e, o = np.asarray(e), np.asarray(o)
        if e.shape != o.shape:
            try:
                o = np.broadcast_to(o, e.shape)
            except ValueError:
                raise ValueError(f"observed: shape {o.shape} does not match the op's output shape "
                                 f"{e.shape}") from None
        if not _is_float(e.dtype) and _is_float(o.dtype):
            # integer codes saved as floats: compared exactly when every value is an integer
            of = o.astype(np.float64)
            ok = np.isfinite(of) & (of == np.round(of))
            if not ok.all():
                i = int(np.flatnonzero(~ok.reshape(-1))[0])
                raise ValueError(f"observed: {op} outputs {e.dtype} codes, but the observed array is "
                                 f"{o.dtype} with the non-integer value {float(of.reshape(-1)[i])!r} at flat "
                                 f"index {i}; give the engine's integer output")
            o = of.astype(np.int64)
        _check_observed_type(op, k, e, o)
        out_is_float = _is_float(e.dtype) or _is_float(o.dtype)
        try:
            qr = None if out_is_float else _qr(e.dtype)
        except Exception:
            qr = None
        if out_is_float:
            ef, of = e.astype(np.float64), o.astype(np.float64)
            same = (ef == of) | (np.isnan(ef) & np.isnan(of))
            if op == "DequantizeLinear":
                sc = np.asarray(inputs["x_scale"], np.float64)
                try:
                    from .reference.quantize import expand_qparam
                    ax = int((attributes or {}).get("axis", 1)) % max(e.ndim, 1)
                    bs = int((attributes or {}).get("block_size", 0) or 0)
                    sc = expand_qparam(inputs["x_scale"], e.shape, ax, bs,
                                       argname="x_scale").astype(np.float64) if sc.ndim else sc
                except Exception:
                    sc = np.float64(np.max(sc))
                with np.errstate(all="ignore"):
                    steps = np.abs(ef - of) / sc
            else:
                with np.errstate(all="ignore"):
                    steps = np.abs(ef - of) / np.maximum(np.abs(ef), 1e-45)   # relative for scales
            # NaN against a number, Inf against a finite value or -Inf: infinitely many steps
            steps = np.where(same, 0.0, np.nan_to_num(steps, nan=np.inf, posinf=np.inf))
            nonfinite = ~same & ~(np.isfinite(ef) & np.isfinite(of))
            steps = np.where(nonfinite, np.inf, steps)
        else:
            same = e.astype(np.int64) == o.astype(np.int64)
            steps = np.abs(e.astype(np.int64) - o.astype(np.int64)).astype(np.float64)
        bad = np.flatnonzero(~same.reshape(-1))
        n_diff += len(bad)
        if len(bad):
            max_steps = max(max_steps, float(np.max(steps.reshape(-1)[bad])))
        use_info = info if k == 0 else {}
        for j, fi in enumerate(bad):
            ev, ov = e.reshape(-1)[fi].item(), o.reshape(-1)[fi].item()
            if out_is_float:
                c = _nonfinite_class(ev, ov)
                if c is None:
                    c = "float_rounding" if _ulps(ev, ov, e.dtype) <= 2 else "other"
            else:
                c = _classify(op, int(fi), ev, ov, use_info, qr, False)
            classes[c] = classes.get(c, 0) + 1
            if len(examples) < _MAX_EXAMPLES:
                idx = tuple(int(i) for i in np.unravel_index(fi, e.shape)) if e.ndim else ()
                if k:
                    idx = (f"output{k}",) + idx
                examples.append((idx, ev, ov, c))
    if np.isfinite(max_steps) and max_steps == int(max_steps):
        max_steps = int(max_steps)
    return n_diff, max_steps, classes, examples


def _check_observed_type(op, k, e, o):
    """The observed output k must be of the op's output kind: integer codes within the output
    type's range (another integer dtype is fine: int64 from a text file), or floats of the
    output's float type.  Else the comparison would report every element as a mismatch."""
    from ._dtypes import qrange as _qr
    name = "observed" if k == 0 else f"observed[{k}]"
    if not _is_float(e.dtype):
        if o.dtype.kind in "iu" and o.size:
            try:
                lo, hi = _qr(e.dtype)
            except TypeError:
                return
            omin, omax = int(o.min()), int(o.max())
            if omin < lo or omax > hi:
                raise ValueError(f"{name}: values {omin} .. {omax} ({o.dtype}) lie outside {e.dtype}'s range "
                                 f"[{lo}, {hi}], {op}'s output type here (set by its zero point): codes "
                                 f"of another type (e.g. int8 codes stored as uint8), or not the op's "
                                 f"output (e.g. an int32 accumulator)")
        return
    if o.dtype.kind in "iub":
        raise TypeError(f"{name}: {o.dtype} values, but {op}'s output here is {e.dtype}: give the "
                        f"engine's {e.dtype} output (for the integer codes, explain the op that "
                        f"produced them)")
    if _is_float(o.dtype) and np.dtype(o.dtype).itemsize < np.dtype(e.dtype).itemsize:
        raise TypeError(f"{name}: {o.dtype} values, but {op}'s output here is {e.dtype} (set by its "
                        f"scale's type): a narrower type cannot hold the engine's {e.dtype} output")


def _is_float(dt):
    from ._dtypes import is_float
    try:
        return is_float(dt)
    except TypeError:
        return np.dtype(dt).kind == "f"


def _nonfinite_class(e, o):
    """The class of a float difference involving NaN or Inf (None when both are finite)."""
    e, o = float(e), float(o)
    if np.isfinite(e) and np.isfinite(o):
        return None
    if np.isnan(e) or np.isnan(o):
        return "nan_vs_finite" if np.isfinite(e) or np.isfinite(o) else "nan_vs_inf"
    if np.isinf(e) and np.isinf(o):
        return "inf_sign"
    return "inf_vs_finite"


def _ulps(a, b, dt):
    try:
        a32 = np.asarray(a, dt)
        b32 = np.asarray(b, dt)
        if a32 == b32:
            return 0
        gap = abs(float(a32) - float(b32))
        return gap / max(float(np.spacing(np.abs(a32))), 1e-45)
    except Exception:
        return np.inf


def _run(op, inputs, attributes, prof, opset):
    # (refquant.<op>: a kernel where one covers the call and the profile, the reference's bits)
    out = run_reference(op, inputs, attributes, profile=prof, opset=opset, kernels=True)
    return out if isinstance(out, tuple) else (out,)


def _candidates(op, candidates):
    if candidates is None:
        out = []
        for name in _profiles():
            p = get_profile(name)
            if p.ops is None or op in p.ops:
                out.append(p)
        return out
    if isinstance(candidates, (str, Profile)):
        candidates = [candidates]
    return [get_profile(c) for c in candidates]


def _variants(prof: Profile, op: str):
    """Single-field variations of ``prof`` as it applies to ``op``: (field, old, new, profile)."""
    base = resolve_profile(prof, op)
    for field in FIELDS_READ[op]:
        old = getattr(base, field)
        values = _EXTRA_VALUES.get(field, _CHOICES.get(field, ()))
        for new in values:
            if new == old or (isinstance(new, float) and isinstance(old, float) and
                              np.float32(new) == np.float32(old) and new == old):
                continue
            # drop overrides that would set this field again inside the op (per-axis, tail)
            ov = tuple((sel, tuple((k, v) for k, v in fields if k != field)) for sel, fields in base.overrides)
            try:
                variant = dataclasses.replace(base, name=f"{prof.name} with {field}={new!r}",
                                              overrides=ov, **{field: new})
            except (ValueError, TypeError):
                continue
            yield field, old, new, variant


def explain(op, inputs, observed, *, attributes=None, candidates=None, opset=None) -> Explanation:
    """Which profiles reproduce ``observed`` for ONNX op ``op`` on ``inputs``, and why the others
    differ.  See the module docstring for the method.

    op          ONNX op name: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
                MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv, QGemm (com.microsoft).
    inputs      dict keyed by the op's ONNX input names (e.g. {"x", "y_scale", "y_zero_point"}).
    observed    the engine's output (DynamicQuantizeLinear: y alone or the (y, y_scale,
                y_zero_point) tuple).
    attributes  ONNX attributes (axis, block_size, pads, alpha ...).
    candidates  profile names or Profile objects (default: every registered profile modelling op).
    opset       ONNX opset (None: newest).
    """
    if op not in OP_INPUTS:
        raise ValueError(f"op: unknown op {op!r}; expected one of {', '.join(OP_INPUTS)}")
    if not isinstance(inputs, dict):
        raise TypeError(f"inputs: expected a dict keyed by ONNX input names {OP_INPUTS[op]}, "
                        f"got {type(inputs).__name__}")
    attributes = dict(attributes or {})
    inputs = check_inputs(op, inputs)
    missing = [n for n in _REQUIRED[op] if n not in inputs]
    if missing:
        raise ValueError(f"inputs: {op} needs {', '.join(missing)} (given: {', '.join(inputs)})")
    obs = _as_outputs(op, observed)
    cands = _candidates(op, candidates)
    if not cands:
        raise ValueError(f"candidates: no profile models {op}")
    info = _exact_values(op, inputs, attributes, opset)
    comps, outputs, errors = [], {}, []
    n = None
    for p in cands:
        try:
            exp = _run(op, inputs, attributes, p, opset)
        except (ProfileError, ValueError, TypeError, NotImplementedError) as e:
            comps.append(ProfileComparison(p.name, "cannot_express", error=f"{type(e).__name__}: {e}"))
            errors.append(e)
            continue
        exp = exp[:len(obs)]
        n = int(sum(np.size(e) for e in exp)) if n is None else n
        nd, ms, cl, ex = _compare(op, inputs, exp, obs, info, attributes)
        comps.append(ProfileComparison(p.name, "match" if nd == 0 else "differs", nd, ms, cl, ex))
        outputs[p.name] = p
    if not outputs:
        _raise_input_error(errors, op, inputs)
    matches = [c.profile for c in comps if c.status == "match"]
    ranked = sorted((c for c in comps if c.status != "cannot_express"), key=lambda c: (c.n_diff, c.max_steps))
    nearest = ranked[0].profile if ranked else None
    if n is None:
        n = int(sum(np.size(o) for o in obs))
    def single_field(profiles):
        found, seen = [], set()
        for name in profiles:
            for field, old, new, variant in _variants(outputs[name], op):
                key = tuple(sorted(variant.arithmetic().items(), key=lambda kv: kv[0]).__repr__())
                if key in seen:
                    continue
                seen.add(key)
                try:
                    exp = _run(op, inputs, attributes, variant, opset)[:len(obs)]
                    nd, _, _, _ = _compare(op, inputs, exp, obs, {}, attributes)
                except (ProfileError, ValueError, TypeError, NotImplementedError):
                    continue
                if nd == 0:
                    found.append({"profile": name, "field": field, "from": old, "to": new,
                                  "topic": _TOPIC.get(field, field)})
        return found

    suggestions, spec_causes = [], []
    if not matches and ranked:
        suggestions = single_field([c.profile for c in ranked[:_SEARCH_NEAREST]])
    elif matches and _SPEC in outputs and _SPEC not in matches:
        # reproduced by a vendor profile: which one arithmetic choice takes the spec there
        spec_causes = single_field([_SPEC])
    return Explanation(op=op, n=n, matches=matches, comparisons=comps, nearest=nearest,
                       suggestions=suggestions, opset=opset, spec_causes=spec_causes,
                       step_unit="output steps" if op != "DynamicQuantizeLinear" else "output steps")
