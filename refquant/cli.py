"""The ``refquant`` command.

Subcommands::

    refquant conformance   run the bundled golden cases against the reference and report
    refquant golden        record golden cases (engine outputs) into a case directory
    refquant explain       which profile reproduces an observed output, and why others differ
    refquant calibrate     scale / zero point as each tool computes them
    refquant compare       whole model: first tensor where an engine leaves the reference
    refquant lint          quantization-parameter hazards in a model, for a target engine
    refquant profiles      list the named arithmetic profiles
    refquant info          build configuration: compiled ISAs, CPU features, kernels chosen
    refquant demo          a short worked example of a vendor mismatch

``refquant <command> --help`` documents each one.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (command, module providing add_parser(subparsers) and run(args))
_PLUGINS = [
    ("conformance", "refquant.conformance"),
    ("golden", "refquant.golden"),
    ("explain", "refquant.explain_cli"),
    ("calibrate", "refquant.calibration.cli"),
    ("compare", "refquant.compare"),
    ("lint", "refquant.lint"),
]


def _cmd_info(args):
    from ._config import show_config
    show_config(as_json=args.json)
    return 0


def _cmd_profiles(args):
    from .profile import profiles
    items = profiles()
    width = max(len(n) for n in items)
    for name, desc in items.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def _cmd_demo(args):
    """The same QuantizeLinear on exact ties under four engines' arithmetic."""
    import numpy as np
    import refquant

    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.273939937], np.float32)
    scale = np.float32(1.0)
    print("QuantizeLinear(x, scale=1, zero_point=1 [int8]) on exact ties")
    print("x =", x[:6].tolist())
    zp = np.int8(1)
    for prof in ("onnx", "onnxruntime", "pytorch", "tflite-reference"):
        try:
            y = refquant.reference.quantize_linear(x[:6], scale, zp, profile=prof)
        except (ValueError, KeyError) as exc:  # profile not registered in this build
            print(f"  {prof:<18} unavailable: {exc}")
            continue
        print(f"  {prof:<18} {y.tolist()}")
    s = np.float32(0.00214854861)
    f = lambda v: repr(float(v))  # noqa: E731 - float32 values, shown as Python floats
    print(f"\nuint8, x = {f(x[6])}, scale = {f(s)} (float32): x/s = {f(np.float32(x[6] / s))}, "
          f"x*(1/s) = {f(np.float32(x[6] * np.float32(1 / s)))}")
    for prof in ("onnx", "pytorch"):
        try:
            y = refquant.reference.quantize_linear(x[6:], s, np.uint8(0), profile=prof)
            print(f"  {prof:<18} {int(y[0])}")
        except (ValueError, KeyError) as exc:
            print(f"  {prof:<18} unavailable: {exc}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="refquant",
        description="refquant: the bit-exact reference for low-bit quantized arithmetic "
                    "(ONNX QuantizeLinear/DequantizeLinear, QLinear*, integer GEMM/conv), "
                    "vendor profiles, calibration and fast kernels.")
    from ._version import __version__
    parser.add_argument("--version", action="version", version=f"refquant {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in _PLUGINS:
        try:
            mod = importlib.import_module(modname)
        except ImportError as exc:
            p = sub.add_parser(name, help=f"(unavailable: {exc})")
            p.set_defaults(_run=lambda a, _e=exc, _n=name: _unavailable(_n, _e))
            continue
        mod.add_parser(sub)
        p = sub.choices.get(name)
        if p is not None and p.get_default("_run") is None:
            p.set_defaults(_run=mod.run)
    p = sub.add_parser("profiles", help="list the named arithmetic profiles")
    p.set_defaults(_run=_cmd_profiles)
    p = sub.add_parser("info", help="build configuration: ISAs, CPU features, kernels chosen")
    p.add_argument("--json", action="store_true", help="print the configuration as JSON")
    p.set_defaults(_run=_cmd_info)
    p = sub.add_parser("demo", help="a short worked example of a vendor mismatch")
    p.set_defaults(_run=_cmd_demo)
    return parser


def _unavailable(name, exc):
    print(f"refquant {name}: unavailable in this installation ({exc})", file=sys.stderr)
    return 2


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help()
        return 0
    try:
        rc = run(args)
    except ModuleNotFoundError as exc:   # an optional engine / model package missing
        from ._cliutil import _OPTIONAL, import_error_message
        if (exc.name or "").split(".")[0] not in _OPTIONAL:
            raise
        print(f"refquant {args.command}: {import_error_message(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:              # e.g. `refquant conformance | head`: stop quietly
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0 if rc is None else int(rc)


if __name__ == "__main__":
    sys.exit(main())
