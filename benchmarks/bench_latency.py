"""Per-call latency of refquant's ops on small tensors, against onnxruntime's session.run.

    python benchmarks/bench_latency.py [--threads 1] [--rounds 15] [--calls 200] [--json FILE]

On small tensors a call's cost is mostly its fixed overhead: argument checks, the output's
allocation, dispatch.  Users who run a model layer by layer (debugging, conformance sweeps,
calibration) pay it on every call.  For each case below, refquant's top-level call is timed
with the scalars written as a user types them (Python float scales and int zero points:
"py") and as numpy scalars of the ONNX types ("np"), against an ORT session that holds the
same op with its scales, zero points and weights as constant initializers
(``session.run`` with the one input, at ORT's default graph optimizations).

Timing: ``--rounds`` rounds; in each round every variant, in a shuffled order, makes
``--calls`` calls after a warm-up, and its median per-call time is kept.  The table gives the
median over rounds in microseconds and "ort/rq" (>1: refquant is faster), the median of the
per-round ratios.  Outputs are checked equal to ORT's and to the numpy reference.  The machine
is shared: compare ratios from one run.
"""
from __future__ import annotations

import argparse
import json
import random
import os
import sys
import time

import numpy as np


def _model(op, inputs, outputs, inits, attrs=None, opset=21):
    from onnx import helper, numpy_helper, TensorProto
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
            np.dtype(np.int8): TensorProto.INT8, np.dtype(np.int32): TensorProto.INT32}
    # the graph input and the constants in the op's own argument order
    node = helper.make_node(op, list(_ORDER[op](inputs, inits)), [n for n, _, _ in outputs], **(attrs or {}))
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, elem[a.dtype], list(a.shape)) for n, a in inputs],
        [helper.make_tensor_value_info(n, elem[np.dtype(dt)], shp) for n, dt, shp in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model.SerializeToString()


def _names(*order):
    def f(inputs, inits):
        have = {n for n, _ in inputs} | {n for n, _ in inits}
        return [n if n in have else "" for n in order]
    return f


_ORDER = {
    "QuantizeLinear": _names("x", "s", "z"),
    "DequantizeLinear": _names("x", "s", "z"),
    "DynamicQuantizeLinear": _names("x"),
    "MatMulInteger": _names("a", "b", "az", "bz"),
    "QLinearMatMul": _names("a", "as", "az", "b", "bs", "bz", "ys", "yz"),
    "QLinearConv": _names("x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "B"),
}


def _session(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    if os.environ.get("REFQUANT_BENCH_ORT_SPIN_STOP", "") not in ("", "0"):
        so.add_session_config_entry("session.force_spinning_stop", "1")   # see run_all.py
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def cases(rng):
    """(name, ORT model bytes, feed dict, {variant: fn}, reference fn)."""
    import refquant
    from refquant import reference as R
    f32 = np.float32
    out = []
    for n in (4096, 65536):
        x = (rng.standard_normal(n) * 3).astype(f32)
        q = R.quantize_linear(x, f32(0.0235), np.uint8(131))
        out.append((f"QuantizeLinear f32->u8 n={n}",
                    _model("QuantizeLinear", [("x", x)], [("y", np.uint8, [n])],
                           [("s", f32(0.0235)), ("z", np.uint8(131))]), {"x": x},
                    {"np": lambda x=x: refquant.quantize_linear(x, f32(0.0235), np.uint8(131)),
                     "py": lambda x=x: refquant.quantize_linear(x, 0.0235, np.uint8(131))},
                    lambda x=x: R.quantize_linear(x, f32(0.0235), np.uint8(131))))
        out.append((f"DequantizeLinear u8->f32 n={n}",
                    _model("DequantizeLinear", [("x", q)], [("y", np.float32, [n])],
                           [("s", f32(0.0235)), ("z", np.uint8(131))]), {"x": q},
                    {"np": lambda q=q: refquant.dequantize_linear(q, f32(0.0235), np.uint8(131)),
                     "py": lambda q=q: refquant.dequantize_linear(q, 0.0235, 131)},
                    lambda q=q: R.dequantize_linear(q, f32(0.0235), np.uint8(131))))
    x = (rng.standard_normal(4096) * 3).astype(f32)
    out.append(("DynamicQuantizeLinear n=4096",
                _model("DynamicQuantizeLinear", [("x", x)],
                       [("y", np.uint8, [4096]), ("ys", np.float32, []), ("yz", np.uint8, [])], []),
                {"x": x}, {"np": lambda x=x: refquant.dynamic_quantize_linear(x)},
                lambda x=x: R.dynamic_quantize_linear(x)))
    for (M, K, N) in ((8, 64, 64), (1, 768, 768)):
        a = rng.integers(0, 256, (M, K), dtype=np.uint8)
        b = rng.integers(-128, 128, (K, N)).astype(np.int8)
        out.append((f"MatMulInteger u8s8 {M}x{K}x{N}",
                    _model("MatMulInteger", [("a", a)], [("y", np.int32, [M, N])],
                           [("b", b), ("az", np.uint8(117)), ("bz", np.int8(0))], opset=13), {"a": a},
                    {"np": lambda a=a, b=b: refquant.matmul_integer(a, b, np.uint8(117), np.int8(0)),
                     "py": lambda a=a, b=b: refquant.matmul_integer(a, b, 117, 0)},
                    lambda a=a, b=b: R.matmul_integer(a, b, np.uint8(117), np.int8(0))))
        qargs = (f32(0.02), np.uint8(117), b, f32(0.004), np.int8(0), f32(0.3), np.uint8(128))
        out.append((f"QLinearMatMul u8s8->u8 {M}x{K}x{N}",
                    _model("QLinearMatMul", [("a", a)], [("y", np.uint8, [M, N])],
                           [("as", qargs[0]), ("az", qargs[1]), ("b", b), ("bs", qargs[3]), ("bz", qargs[4]),
                            ("ys", qargs[5]), ("yz", qargs[6])]), {"a": a},
                    {"np": lambda a=a, qa=qargs: refquant.qlinear_matmul(a, *qa),
                     "py": lambda a=a, b=b: refquant.qlinear_matmul(a, 0.02, 117, b, 0.004, 0, 0.3, 128)},
                    lambda a=a, qa=qargs: R.qlinear_matmul(a, *qa)))
    x = rng.integers(0, 256, (1, 16, 14, 14), dtype=np.uint8)
    w = rng.integers(-128, 128, (16, 16, 3, 3)).astype(np.int8)
    bias = rng.integers(-2000, 2000, 16).astype(np.int32)
    cargs = (f32(0.02), np.uint8(117), w, f32(0.004), np.int8(0), f32(0.3), np.uint8(128), bias)
    out.append(("QLinearConv 3x3 16->16 14x14",
                _model("QLinearConv", [("x", x)], [("y", np.uint8, [1, 16, 14, 14])],
                       [("xs", cargs[0]), ("xz", cargs[1]), ("w", w), ("ws", cargs[3]), ("wz", cargs[4]),
                        ("ys", cargs[5]), ("yz", cargs[6]), ("B", bias)], {"pads": [1, 1, 1, 1]}, opset=13),
                {"x": x},
                {"np": lambda: refquant.qlinear_conv(x, *cargs, pads=[1, 1, 1, 1]),
                 "py": lambda: refquant.qlinear_conv(x, 0.02, 117, w, 0.004, 0, 0.3, 128, bias, pads=[1, 1, 1, 1])},
                lambda: R.qlinear_conv(x, *cargs, pads=[1, 1, 1, 1])))
    return out


def _per_call(fn, calls):
    fn()
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        ts.append(time.perf_counter_ns() - t0)
    ts.sort()
    return ts[len(ts) // 2] / 1e3


def _first(r):
    return r[0] if isinstance(r, (list, tuple)) else r


def run(threads, rounds, calls, seed=0):
    import refquant
    import onnxruntime as ort
    rng = np.random.default_rng(seed)
    refquant.set_num_threads(threads)
    rows = []
    print(f"\n== per-call latency, threads={threads} (onnxruntime {ort.__version__}); us per call, "
          f"median of {rounds} rounds")
    print(f"  {'case':38s} {'ORT':>8s} {'rq np':>8s} {'rq py':>8s}  {'ort/rq np':>9s} {'ort/rq py':>9s}  kernel")
    for name, model, feed, fns, ref in cases(rng):
        sess = _session(model, threads)
        want = ref()
        got_ort = sess.run(None, feed)
        for v, fn in fns.items():
            got = fn()
            for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
                assert np.array_equal(np.asarray(g), np.asarray(w)), f"{name} {v}: differs from the reference"
        assert np.array_equal(np.asarray(_first(fns["np"]())), got_ort[0]), f"{name}: differs from ORT"
        kernel = refquant.last_path()["path"]
        variants = dict(fns, ort=lambda: sess.run(None, feed))
        per = {k: [] for k in variants}
        for _ in range(rounds):
            order = list(variants)
            random.shuffle(order)
            for k in order:
                per[k].append(_per_call(variants[k], calls))
        med = {k: float(np.median(v)) for k, v in per.items()}
        ratio = {k: float(np.median([o / r for o, r in zip(per["ort"], per[k])])) for k in fns}
        print(f"  {name:38s} {med['ort']:8.2f} {med['np']:8.2f} {med.get('py', float('nan')):8.2f}  "
              f"{ratio['np']:8.2f}x {ratio.get('py', float('nan')):8.2f}x  {kernel}")
        rows.append({"case": name, "threads": threads, "us": med, "ort_over_rq": ratio, "kernel": kernel})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed: nothing to compare against", file=sys.stderr)
        return 1
    rows = []
    for th in args.threads:
        rows += run(th, args.rounds, args.calls)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"latency": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
