"""``refquant explain``: which profile reproduces an observed output (CLI for ``refquant.explain``).

    refquant explain QuantizeLinear --inputs inputs.npz --observed y.npy
    refquant explain QLinearConv --inputs in.npz --observed y.npz --attr pads=1,1,1,1 --json
    refquant explain QuantizeLinear --inputs in.npz            # in.npz holds "observed" too
    refquant explain QLinearMatMul --inputs in.npz --engine tflite-optimized   # run it live

``--inputs`` is an .npz keyed by the op's ONNX input names (x, y_scale, y_zero_point ...); the
observed output comes from ``--observed`` (.npy, or .npz: the array named "observed", "y" or
"Y", else its only array) or from an "observed" array inside the inputs file.  Attributes are
given as ``--attr name=value`` (ints, floats, comma-separated int lists, strings) or
``--attributes JSON``.  ``--observed`` and ``--engine`` are mutually exclusive.  Exit status: 0
when at least one profile reproduces the observation, 1 when none does, 2 on bad input
(unreadable files, unknown op or profile, and inputs the reference itself rejects -- a missing
input, a zero scale, float64 x, mismatched shapes, an unsupported --opset: every profile fails
the same way; the error is printed).
"""
from __future__ import annotations

import json
import sys

import numpy as np

__all__ = ["add_parser", "run", "load_arrays", "parse_attr"]


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


def load_arrays(path: str) -> dict:
    """{name: array} from an .npz, or {"observed": array} from an .npy."""
    if path.endswith(".npy"):
        return {"observed": np.load(path, allow_pickle=False)}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _observed(args, inputs):
    if getattr(args, "engine", None):
        if args.observed:
            raise ValueError("--observed and --engine are mutually exclusive: give the engine's output "
                             "file or the engine to run, not both")
        if "observed" in inputs:
            raise ValueError(f"--engine: {args.inputs} already holds an 'observed' array; drop it or "
                             "drop --engine")
    if args.observed:
        arrs = load_arrays(args.observed)
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
    attrs = json.loads(args.attributes) if args.attributes else {}
    if not isinstance(attrs, dict):
        raise ValueError("--attributes: expected a JSON object")
    for a in args.attr:
        k, v = parse_attr(a)
        attrs[k] = v
    return attrs


def run(args):
    from .explain import explain
    try:
        inputs = load_arrays(args.inputs)
        observed = _observed(args, inputs)
        inputs.pop("observed", None)
        attrs = _attrs(args)
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
