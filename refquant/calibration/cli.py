"""``refquant calibrate``: each tool's calibration of the same data, side by side.

    refquant calibrate DATA.npz [--tool T] [--method M] [--per-channel AXIS] [--dtype int8]
                       [--symmetric] [--reduce-range] [--num-bins N] [--num-quantized-bins N]
                       [--percentile P] [--averaging-constant C] [--strides N]
                       [--calib-symmetric {true,false}] [--torch-threads K] [--compare-tools]
                       [--html FILE] [--json [FILE]]

DATA: an ``.npz`` whose arrays are the calibration batches, taken in **sorted key order**
(``np.savez(f, b000=..., b001=...)``); or an ``.npy`` holding one batch.

``--json`` is strict JSON: a non-finite result (a tool's inf or NaN scale, e.g. PyTorch minmax on a
range near float32's limit, or a distribution method on constant data) is written as the string
``"inf"``, ``"-inf"`` or ``"nan"``; the Python API keeps the float.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from . import calibrate, compare_tools, supported, CalibrationError, TOOLS, METHODS
from .report import table, html_page
from .. import _json


def load_batches(path: str) -> list:
    """The batches of a .npy / .npz file (never unpickled: object arrays are refused)."""
    from .._cliutil import load_arrays
    try:
        got = load_arrays(path, "DATA")
    except ValueError as exc:
        raise CalibrationError(str(exc)) from None
    if isinstance(got, np.ndarray):
        return [got]
    if not got:
        raise CalibrationError(f"{path}: the archive holds no arrays")
    return [got[k] for k in sorted(got)]


def add_parser(subparsers):
    p = subparsers.add_parser("calibrate", help="tool-exact calibration: ranges, scales, zero points",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    p.set_defaults(func=run)
    return p


def _add_arguments(p):
    p.add_argument("data", help=".npz (batches in sorted key order) or .npy")
    p.add_argument("--tool", default="onnxruntime", choices=TOOLS,
                   help="whose calibration to reproduce (default: onnxruntime)")
    p.add_argument("--method", default=None, choices=METHODS, help="default: the tool's own default")
    p.add_argument("--per-channel", dest="axis", type=int, default=None, metavar="AXIS",
                   help="one range per index along AXIS (default: one range per tensor)")
    p.add_argument("--dtype", default="int8",
                   help="quantized type the scale and zero point are for (default: int8; also uint8, "
                        "int16, uint16, int4, uint4, ... as the tool allows)")
    p.add_argument("--symmetric", action="store_true",
                   help="symmetric range: zero point at the type's middle, scale from max|x|")
    p.add_argument("--reduce-range", action="store_true",
                   help="one bit less of range (7-bit int8 / uint8), as the tools' reduce_range")
    p.add_argument("--num-bins", type=int, default=None,
                   help="histogram bins for the histogram methods (default: the tool's)")
    p.add_argument("--num-quantized-bins", type=int, default=None,
                   help="entropy method: quantized bins of the KL search (default: the tool's)")
    p.add_argument("--percentile", type=float, default=None,
                   help="percentile method: the percentile kept, e.g. 99.99 (default: the tool's)")
    p.add_argument("--averaging-constant", type=float, default=None,
                   help="moving_average_minmax: the weight of each new batch (default: the tool's)")
    p.add_argument("--strides", type=int, default=None, metavar="N",
                   help="onnxruntime: CalibStridedMinMax, N batches per collect_data call (every method)")
    p.add_argument("--calib-symmetric", default=None, choices=("true", "false"),
                   help="onnxruntime: CalibTensorRangeSymmetric (default: the calibrator's own)")
    p.add_argument("--torch-threads", type=int, default=None, metavar="K",
                   help="torch.get_num_threads() to replay in torch.histc (pytorch histogram, modelopt)")
    p.add_argument("--compare-tools", action="store_true",
                   help="run every supported (tool, method) pair and show them side by side")
    p.add_argument("--html", default=None, metavar="FILE", help="write a page with a histogram plot")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="JSON output to FILE (or stdout without FILE)")


def run(args) -> int:
    with np.errstate(all="ignore"):   # a non-finite result is reported below, once, in words
        return _run(args)


def _run(args) -> int:
    try:
        from .._cliutil import check_writable
        check_writable(args.json, "--json")
        check_writable(args.html, "--html")
    except ValueError as exc:
        print(f"refquant calibrate: error: {exc}", file=sys.stderr)
        return 2
    try:
        batches = load_batches(args.data)
        kw = dict(dtype=args.dtype, symmetric=args.symmetric, reduce_range=args.reduce_range, axis=args.axis)
        opt = dict(num_bins=args.num_bins, num_quantized_bins=args.num_quantized_bins,
                   percentile=args.percentile, averaging_constant=args.averaging_constant)
        extra = {k: v for k, v in (("strides", args.strides), ("torch_threads", args.torch_threads),
                                   ("calib_symmetric", None if args.calib_symmetric is None
                                    else args.calib_symmetric == "true")) if v is not None}
        if args.compare_tools:
            results = []
            for tool, methods in supported().items():
                for m in methods:
                    o = {k: v for k, v in opt.items() if v is not None}
                    try:
                        results.append(calibrate(batches, tool=tool, method=m, **kw, **o, **extra))
                    except (CalibrationError, TypeError) as exc:
                        results.append((tool, m, str(exc)))
            text = table(results)
        else:
            r = calibrate(batches, tool=args.tool, method=args.method, **kw, **opt, **extra)
            results = [r]
            text = str(r)
    except (CalibrationError, TypeError, OSError) as exc:
        print(f"refquant calibrate: error: {exc}", file=sys.stderr)
        return 2
    for r in results:
        if not isinstance(r, tuple) and not np.all(np.isfinite(np.asarray(r.scale, np.float64))):
            print(f"refquant calibrate: warning: {r.tool} {r.method} gives a non-finite scale "
                  f"({np.asarray(r.scale).ravel()[~np.isfinite(np.asarray(r.scale, np.float64).ravel())][0]}): "
                  "unusable for quantization (it is what the tool computes on this data)", file=sys.stderr)
    if args.json is not None:
        doc = {"data": args.data, "n_batches": len(batches),
               "results": [r.to_dict() for r in results if not isinstance(r, tuple)],
               "not_applicable": [{"tool": t, "method": m, "reason": e}
                                  for t, m, e in (r for r in results if isinstance(r, tuple))]}
        s = _json.dumps(doc, indent=1)
        if args.json == "-":
            print(s)
        else:
            try:
                with open(args.json, "w") as f:
                    f.write(s)
            except OSError as exc:
                print(f"refquant calibrate: error: cannot write --json: {exc}", file=sys.stderr)
                return 2
    if args.json != "-":
        print(text)
    if args.html:
        try:
            with open(args.html, "w") as f:
                f.write(html_page(batches, results, title=f"refquant calibrate {args.data}"))
        except OSError as exc:
            print(f"refquant calibrate: error: cannot write --html: {exc}", file=sys.stderr)
            return 2
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="refquant calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
