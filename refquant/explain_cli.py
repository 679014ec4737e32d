"""``refquant explain``: which profile reproduces an observed output (CLI for ``refquant.explain``).

    refquant explain QuantizeLinear --inputs inputs.npz --observed y.npy
    refquant explain QLinearConv --inputs in.npz --observed y.npz --attr pads=1,1,1,1 --json
    refquant explain QuantizeLinear --inputs in.npz            # in.npz holds "observed" too
    refquant explain QLinearMatMul --inputs in.npz --engine tflite-optimized   # run it live
    refquant explain DequantizeLinear --inputs in.npz --observed y.npy --dtype x=int4

``--inputs`` is an .npz keyed by the op's ONNX input names (x, y_scale, y_zero_point ...); the
observed output comes from ``--observed`` (.npy, or .npz: the array named "observed", "y" or
"Y", else its only array) or from an "observed" array inside the inputs file.  Attributes are
given as ``--attr name=value`` (ints, floats, comma-separated int lists, strings) or
``--attributes JSON``.

Low-bit arrays (int4, uint4, int2, float8*, float4e2m1 ... ml_dtypes arrays) are stored by
numpy's .npy/.npz as raw bytes (dtype ``|V1``).  Name their type with ``--dtype NAME=TYPE``
(ONNX type names; NAME is an input name or ``observed``), e.g. ``--dtype x=int4 --dtype
observed=float8e4m3fn``.  Without it the type is taken where the op fixes it: QuantizeLinear's
output (and y_zero_point) from y_zero_point's type or the ``output_dtype`` attribute,
DequantizeLinear's x from x_zero_point's type and the other way round; a raw-byte array whose
type is still unknown is an error that says so.  ``--dtype`` also converts a plain integer or
float array (e.g. int4 values saved as int8) when every value is exactly representable.

``--observed`` and ``--engine`` are mutually exclusive.  Exit status: 0
when at least one profile reproduces the observation, 1 when none does, 2 on bad input
(unreadable files, unknown op or profile, and inputs the reference itself rejects -- a missing
input, a zero scale, float64 x, mismatched shapes, an unsupported --opset: every profile fails
the same way; the error is printed).
"""
from __future__ import annotations

import json
import sys

import numpy as np

__all__ = ["add_parser", "run", "load_arrays", "parse_attr", "parse_dtypes", "apply_dtypes"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "explain", help="which profile reproduces an observed output, and why others differ",
        description=__doc__.split("\n\n", 1)[1], formatter_class=_raw_formatter())
    p.add_argument("op", help="ONNX op name: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, "
                              "MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv, QGemm")
    p.add_argument("--inputs", required=True, metavar="FILE.npz", help="inputs keyed by ONNX input names")
    p.add_argument("--observed", metavar="FILE", help="observed output (.npy or .npz)")
    p.add_argument("--engine", metavar="ENGINE",
                   help="instead of --observed (not with it), run OP on this live engine (refquant.engines names: "
                        "onnxruntime, pytorch, tflite-reference, ...)")
    p.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE",
                   help="an ONNX attribute (repeatable), e.g. axis=0, pads=1,1,1,1, alpha=0.5")
    p.add_argument("--attributes", metavar="JSON", help="attributes as a JSON object")
    p.add_argument("--dtype", action="append", default=[], metavar="NAME=TYPE",
                   help="element type of an array saved as raw bytes (|V1) or to convert exactly, "
                        "e.g. x=int4, observed=float8e4m3fn (repeatable; NAME: an input or 'observed')")
    p.add_argument("--profiles", metavar="A,B,...", help="candidate profiles (default: all modelling OP)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: newest)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(_run=run)
    return p


def _raw_formatter():
    import argparse
    return argparse.RawDescriptionHelpFormatter


def parse_attr(text: str):
    """'name=value' -> (name, value): int, float, list of ints/floats, or string."""
    if "=" not in text:
        raise ValueError(f"--attr: expected NAME=VALUE, got {text!r}")
    name, val = text.split("=", 1)
    name, val = name.strip(), val.strip()

    def one(v):
        for conv in (int, float):
            try:
                return conv(v)
            except ValueError:
                pass
        return v
    if "," in val:
        return name, [one(v) for v in val.split(",") if v != ""]
    return name, one(val)


def load_arrays(path: str, option: str = "--inputs") -> dict:
    """{name: array} from an .npz, or {"observed": array} from an .npy."""
    from ._cliutil import load_arrays as _load
    got = _load(path, option)
    return {"observed": got} if isinstance(got, np.ndarray) else got


def _observed(args, inputs):
    if getattr(args, "engine", None):
        if args.observed:
            raise ValueError("--observed and --engine are mutually exclusive: give the engine's output "
                             "file or the engine to run, not both")
        if "observed" in inputs:
            raise ValueError(f"--engine: {args.inputs} already holds an 'observed' array; drop it or "
                             "drop --engine")
    if args.observed:
        arrs = load_arrays(args.observed, "--observed")
        for k in ("observed", "y", "Y"):
            if k in arrs:
                if args.op == "DynamicQuantizeLinear" and "y_scale" in arrs and "y_zero_point" in arrs:
                    return (arrs[k], arrs["y_scale"], arrs["y_zero_point"])
                return arrs[k]
        if len(arrs) == 1:
            return next(iter(arrs.values()))
        raise ValueError(f"--observed: {args.observed} holds {sorted(arrs)}; name the output "
                         "'observed' (or 'y')")
    if "observed" in inputs:
        return inputs.pop("observed")
    if getattr(args, "engine", None):
        from . import engines
        return engines.run(args.engine, args.op, inputs, _attrs(args), opset=args.opset)
    raise ValueError("no observed output: give --observed FILE, --engine ENGINE or an 'observed' "
                     "array in --inputs")


def _attrs(args):
    try:
        attrs = json.loads(args.attributes) if args.attributes else {}
    except ValueError as exc:
        raise ValueError(f"--attributes: not valid JSON ({exc}); e.g. '{{\"axis\": 0}}'") from None
    if not isinstance(attrs, dict):
        raise ValueError("--attributes: expected a JSON object")
    for a in args.attr:
        k, v = parse_attr(a)
        attrs[k] = v
    return attrs


def parse_dtypes(items) -> dict:
    """['x=int4', 'observed=float8e4m3fn'] -> {name: numpy dtype}."""
    from ._dtypes import resolve_dtype
    out = {}
    for it in items or []:
        if "=" not in it:
            raise ValueError(f"--dtype: expected NAME=TYPE, got {it!r}")
        name, t = (v.strip() for v in it.split("=", 1))
        out[name] = resolve_dtype(t, argname=f"--dtype {name}")
    return out


def _is_raw(a):
    """An array numpy loaded as raw bytes (plain void dtype, e.g. '|V1'); ml_dtypes types, which
    numpy also calls kind 'V', are not raw."""
    return isinstance(a, np.ndarray) and type(a.dtype) is type(np.dtype("V1")) and a.dtype.names is None


def _retype(name, a, dt):
    """``a`` as dtype ``dt``: raw bytes are reinterpreted, other arrays converted exactly."""
    if _is_raw(a):
        if a.dtype.itemsize != dt.itemsize:
            raise ValueError(f"--dtype {name}: the array holds {a.dtype.itemsize}-byte raw elements, "
                             f"{dt} has {dt.itemsize}-byte elements")
        return a.view(dt)
    if a.dtype == dt:
        return a
    with np.errstate(all="ignore"):
        b = a.astype(dt)
        back = b.astype(a.dtype)
    same = (back == a) | (np.isnan(back) & np.isnan(a) if a.dtype.kind == "f" else False)
    if not np.all(same):
        raise ValueError(f"--dtype {name}: {a.dtype} values are not all exactly representable as {dt}")
    return b


def apply_dtypes(op, inputs, observed, attrs, dtypes):
    """Give raw-byte (|V1) arrays their element type (see the module docstring); returns
    (inputs, observed)."""
    from ._dtypes import resolve_dtype
    dtypes = dict(dtypes)
    unknown = set(dtypes) - set(inputs) - {"observed"}
    if unknown:
        raise ValueError(f"--dtype: no array named {', '.join(sorted(unknown))} "
                         f"(inputs: {', '.join(inputs)}; or 'observed')")
    for n in list(inputs):
        if n in dtypes:
            inputs[n] = _retype(n, inputs[n], dtypes[n])
    multi = isinstance(observed, tuple)
    obs0 = observed[0] if multi else observed
    if observed is None:
        obs0 = None
        dtypes.pop("observed", None)
    if "observed" in dtypes:
        obs0 = _retype("observed", obs0, dtypes["observed"])

    def typed(a):
        return a is not None and not _is_raw(a)
    od = attrs.get("output_dtype")
    od = resolve_dtype(od, argname="output_dtype") if od not in (None, 0) else None
    if op == "QuantizeLinear":
        zp = inputs.get("y_zero_point")
        out_t = zp.dtype if typed(zp) else od
        if zp is not None and _is_raw(zp) and od is not None:
            inputs["y_zero_point"] = _retype("y_zero_point", zp, od)
            out_t = od
        if _is_raw(obs0) and out_t is not None:
            obs0 = _retype("observed", obs0, out_t)
    elif op == "DequantizeLinear":
        x, zp = inputs.get("x"), inputs.get("x_zero_point")
        if _is_raw(x) and typed(zp):
            inputs["x"] = _retype("x", x, zp.dtype)
        elif zp is not None and _is_raw(zp) and typed(x):
            inputs["x_zero_point"] = _retype("x_zero_point", zp, x.dtype)
    for n, a in list(inputs.items()) + ([("observed", obs0)] if observed is not None else []):
        if _is_raw(a):
            raise ValueError(f"{n}: numpy stored this array as raw bytes ({a.dtype.str}), as it does "
                             f"for ml_dtypes arrays (int4, float8 ...); give its type with "
                             f"--dtype {n}=TYPE (e.g. int4, uint4, float8e4m3fn, float4e2m1)")
    if observed is None:
        return inputs, None
    return inputs, ((obs0,) + tuple(observed[1:]) if multi else obs0)


def run(args):
    from .explain import explain
    try:
        inputs = load_arrays(args.inputs)
        embedded = inputs.pop("observed", None)
        attrs = _attrs(args)
        dts = parse_dtypes(getattr(args, "dtype", None))
        inputs, _ = apply_dtypes(args.op, inputs, None, attrs, dts)   # typed before an engine runs
        if embedded is not None:
            inputs["observed"] = embedded
        observed = _observed(args, inputs)
        inputs.pop("observed", None)
        inputs, observed = apply_dtypes(args.op, inputs, observed, attrs, dts)
        cands = [c.strip() for c in args.profiles.split(",") if c.strip()] if args.profiles else None
        result = explain(args.op, inputs, observed, attributes=attrs, candidates=cands, opset=args.opset)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        print(f"refquant explain: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result)
    return 0 if result.matches else 1
