"""Benchmark refquant QuantizeLinear / DequantizeLinear against onnxruntime (and numpy).

    python benchmarks/bench_quant.py [--n 16777216] [--threads 1 2] [--reps 9] [--json FILE]

Measures, per thread count (refquant.set_num_threads / ORT intra_op_num_threads, graph
optimizations at ORT's default), input GB/s (bytes of the input read per second; for
DequantizeLinear the input is 1 byte per element, so GB/s = Gelem/s) and the ratio
refquant / ORT (median of per-repetition ratios; refquant and ORT calls interleave, in a
shuffled order, each repetition of a variant one warm-up call and the median of three timed
ones).  Two variants each:
  * "prealloc": the output buffer is allocated once (refquant: ``out=`` of
    refquant.quantize_linear / dequantize_linear; ORT: io_binding to a preallocated
    OrtValue) -- kernel speed;
  * "api": refquant.quantize_linear(...) allocating its result every call; ORT run() with
    its arena-allocated output.
Ratios quoted as goals are prealloc/prealloc at 1 thread.  Each result is the median of
``--reps`` timed calls after a warm-up; the machine is shared, so compare ratios measured in
one run.  Also checks that the outputs are bit-identical to ORT's and to the reference.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _median_time(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def _ort_session(op, x_dtype, y_dtype, scale, zp, shape, axis, threads):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    import onnxruntime as ort

    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.uint8): TensorProto.UINT8,
            np.dtype(np.int8): TensorProto.INT8}
    inits = [numpy_helper.from_array(np.asarray(scale, np.float32), "s"),
             numpy_helper.from_array(np.asarray(zp), "z")]
    node = helper.make_node(op, ["x", "s", "z"], ["y"], axis=axis)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem[x_dtype], shape)],
                              [helper.make_tensor_value_info("y", elem[y_dtype], shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    so = ort.SessionOptions()
    if os.environ.get("REFQUANT_BENCH_ORT_SPIN_STOP", "") not in ("", "0"):
        so.add_session_config_entry("session.force_spinning_stop", "1")   # see run_all.py
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _ort_dynamic_session(shape, threads):
    from onnx import TensorProto, helper
    import onnxruntime as ort

    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "ys", "yz"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, shape),
         helper.make_tensor_value_info("ys", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("yz", TensorProto.UINT8, [])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    so = ort.SessionOptions()
    if os.environ.get("REFQUANT_BENCH_ORT_SPIN_STOP", "") not in ("", "0"):
        so.add_session_config_entry("session.force_spinning_stop", "1")   # see run_all.py
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _ort_runners(sess, x, y_dtype):
    import onnxruntime as ort

    def plain():
        return sess.run(None, {"x": x})[0]

    binding = sess.io_binding()
    binding.bind_cpu_input("x", x)
    out = np.empty(x.shape, y_dtype)
    binding.bind_output("y", "cpu", 0, y_dtype, out.shape, out.ctypes.data)

    def prealloc():
        sess.run_with_iobinding(binding)
        return out

    return plain, prealloc


def bench(n, threads_list, reps, per_axis=False):
    """per_axis: False (one scale), True (axis 0 of (4096, n / 4096): long runs per channel) or
    "last" (axis 1 of (n / 64, 64): 64 channels on the contiguous axis, as NHWC activations)."""
    import refquant
    rng = np.random.default_rng(0)
    if per_axis == "last":
        C = 64
        shape, axis = (n // C, C), 1
    else:
        C = 4096 if per_axis else 1
        shape, axis = ((C, n // C), 0) if per_axis else ((n,), 1)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    if per_axis:
        scale = (rng.random(C).astype(np.float32) * 0.05 + 0.01).astype(np.float32)
        zp = rng.integers(0, 256, C).astype(np.uint8)
    else:
        scale, zp = np.float32(0.0235), np.uint8(131)
    q_ref = refquant.reference.quantize_linear(x, scale, zp, axis=axis)
    results = []
    for th in threads_list:
        refquant.set_num_threads(th)
        out_q = np.empty(shape, np.uint8)
        out_d = np.empty(shape, np.float32)
        rq_q_pre = lambda: refquant.quantize_linear(x, scale, zp, axis=axis, out=out_q)  # noqa: E731
        rq_q_api = lambda: refquant.quantize_linear(x, scale, zp, axis=axis)  # noqa: E731
        rq_d_pre = lambda: refquant.dequantize_linear(q_ref, scale, zp, axis=axis, out=out_d)  # noqa: E731
        rq_d_api = lambda: refquant.dequantize_linear(q_ref, scale, zp, axis=axis)  # noqa: E731
        rq_q_pre()
        kq = refquant.last_path()["path"]
        rq_d_pre()
        kd = refquant.last_path()["path"]
        assert np.array_equal(out_q, q_ref), "refquant quantize differs from the reference"
        d_ref = refquant.reference.dequantize_linear(q_ref, scale, zp, axis=axis)
        assert np.array_equal(out_d.view(np.uint32), d_ref.view(np.uint32)), "dequantize differs"
        row = {"threads": th, "n": int(x.size), "per_axis": per_axis,
               "kernel_quantize": kq, "kernel_dequantize": kd}
        t = {}
        fns = {"rq_q_pre": rq_q_pre, "rq_q_api": rq_q_api, "rq_d_pre": rq_d_pre, "rq_d_api": rq_d_api}
        if not per_axis:
            fns["rq_dyn_api"] = lambda: refquant.dynamic_quantize_linear(x)  # noqa: E731
        try:
            import onnxruntime as ort
            sq = _ort_session("QuantizeLinear", np.dtype(np.float32), np.dtype(np.uint8), scale, zp,
                              list(shape), axis, th)
            sd = _ort_session("DequantizeLinear", np.dtype(np.uint8), np.dtype(np.float32), scale, zp,
                              list(shape), axis, th)
            oq_plain, oq_pre = _ort_runners(sq, x, np.uint8)
            od_plain, od_pre = _ort_runners(sd, q_ref, np.float32)
            row["ort_version"] = ort.__version__
            row["ort_quantize_bitexact"] = bool(np.array_equal(oq_pre(), q_ref))
            row["ort_dequantize_bitexact"] = bool(np.array_equal(od_pre().view(np.uint32),
                                                                 d_ref.view(np.uint32)))
            fns.update({"ort_q_pre": oq_pre, "ort_q_api": oq_plain, "ort_d_pre": od_pre,
                        "ort_d_api": od_plain})
            if not per_axis:
                sdyn = _ort_dynamic_session(list(shape), th)
                fns["ort_dyn_api"] = lambda: sdyn.run(None, {"x": x})  # noqa: E731
                o = sdyn.run(None, {"x": x})
                r = refquant.reference.dynamic_quantize_linear(x)
                row["ort_dynamic_bitexact"] = bool(all(np.array_equal(np.asarray(a), b)
                                                       for a, b in zip(o, r)))
        except ImportError:
            row["ort_version"] = None
        # Interleaved: every repetition times each variant once (after one untimed warm-up
        # call of that same variant, so each is measured in its own steady state: caches and
        # allocator warm, as an inference loop would see it), so refquant and ORT see the same
        # machine load; ratios are medians of per-repetition ratios.  The order of the variants
        # is shuffled every repetition (seeded): a fixed order gave a position bias, the
        # variant timed right after the other op's calls running up to 10% slower whichever it
        # was (measured by swapping refquant's dequantize "pre" and "api": 4.75 / 5.20 GB/s
        # became 5.23 / 4.73).
        samples = {k: [] for k in fns}
        order_rng = np.random.default_rng(1234 + th)
        keys = list(fns)
        for _ in range(reps):
            for i in order_rng.permutation(len(keys)):
                k = keys[i]
                f = fns[k]
                if th > 1:
                    time.sleep(0.005)   # let the other engine's spinning pool threads go idle
                f()
                ts = []   # three timed calls, their median: a 64 MiB output's dirty lines from the
                for _r in range(3):   # variant timed before outlast one warm-up call
                    t0 = time.perf_counter()
                    f()
                    ts.append(time.perf_counter() - t0)
                samples[k].append(float(np.median(ts)))
        t = {k: float(np.median(v)) for k, v in samples.items()}
        pair_ratio = {}
        for a, b in (("rq_q_pre", "ort_q_pre"), ("rq_q_api", "ort_q_api"),
                     ("rq_d_pre", "ort_d_pre"), ("rq_d_api", "ort_d_api"),
                     ("rq_dyn_api", "ort_dyn_api")):
            if a in samples and b in samples:
                pair_ratio[f"ratio_{a}_vs_{b}"] = float(np.median(np.array(samples[b]) / np.array(samples[a])))
        if th == 1:
            pshape = (-1, 1) if axis == 0 else (1, -1)
            sc = np.float32(scale) if not per_axis else scale.reshape(pshape)
            zz = np.float32(zp) if not per_axis else zp.reshape(pshape).astype(np.float32)
            t["numpy_q"] = _median_time(lambda: np.clip(np.rint(x / sc) + zz, 0, 255).astype(np.uint8),
                                        max(3, reps // 3))
        qbytes, dbytes = x.size * 4, x.size * 1
        for k, v in t.items():
            row[f"{k}_s"] = v
            row[f"{k}_GBps"] = (qbytes if ("_q" in k or "_dyn" in k) else dbytes) / v / 1e9
        row.update(pair_ratio)
        if "numpy_q" in t:
            row["ratio_rq_q_pre_vs_numpy_q"] = t["numpy_q"] / t["rq_q_pre"]
        results.append(row)
    refquant.set_num_threads(None)
    return results


def bench_float8(n, threads_list, reps):
    """float32 -> float8 e4m3fn QuantizeLinear (saturate=1, zero point +0) and back, per tensor,
    against ORT's (opset 21) in the same run."""
    import ml_dtypes
    import refquant
    from refquant import reference as R
    dt = np.dtype(ml_dtypes.float8_e4m3fn)
    x = (np.random.default_rng(0).standard_normal(n) * 50).astype(np.float32)
    s, z = np.float32(0.25), np.zeros((), dt)
    rows = []
    for th in threads_list:
        refquant.set_num_threads(th)
        y = refquant.quantize_linear(x, s, z)
        row = {"threads": th, "n": n, "kernel_quantize": refquant.last_path()["path"]}
        refquant.dequantize_linear(y, s, z)
        row["kernel_dequantize"] = refquant.last_path()["path"]
        row["rq_q_s"] = _median_time(lambda: refquant.quantize_linear(x, s, z), reps)
        row["rq_d_s"] = _median_time(lambda: refquant.dequantize_linear(y, s, z), reps)
        small = slice(0, min(n, 1 << 20))
        row["ref_q_s"] = _median_time(lambda: R.quantize_linear(x[small], s, z), 3) * n / x[small].size
        try:
            import onnxruntime as ort
            from onnx import TensorProto, helper, numpy_helper
            so = ort.SessionOptions()
            if os.environ.get("REFQUANT_BENCH_ORT_SPIN_STOP", "") not in ("", "0"):
                so.add_session_config_entry("session.force_spinning_stop", "1")   # see run_all.py
            so.intra_op_num_threads = th
            so.inter_op_num_threads = 1
            # (ORT's Python binding takes no float8 arrays: DequantizeLinear's input is an
            # initializer, and constant folding is off so that the node runs on every call)
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            sess = {}
            for op, xt, yt in (("QuantizeLinear", TensorProto.FLOAT, TensorProto.FLOAT8E4M3FN),
                               ("DequantizeLinear", TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT)):
                zi = helper.make_tensor("z", TensorProto.FLOAT8E4M3FN, [], [0.0])
                node = helper.make_node(op, ["x", "s", "z"], ["y"])
                inits = [numpy_helper.from_array(np.asarray(s), "s"), zi]
                ins = [helper.make_tensor_value_info("x", xt, [n])]
                if op == "DequantizeLinear":
                    inits.append(numpy_helper.from_array(y, "x"))
                    ins = []
                g = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info("y", yt, [n])], inits)
                m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
                m.ir_version = 10
                sess[op] = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
            yo = sess["QuantizeLinear"].run(None, {"x": x})[0]
            row["ort_version"] = ort.__version__
            row["ort_bitexact"] = bool(np.array_equal(np.asarray(yo).view(np.uint8), y.view(np.uint8)))
            row["ort_q_s"] = _median_time(lambda: sess["QuantizeLinear"].run(None, {"x": x}), reps)
            yd = sess["DequantizeLinear"].run(None, {})[0]
            row["ort_dq_bitexact"] = bool(np.array_equal(yd.view(np.uint32),
                                                         refquant.dequantize_linear(y, s, z).view(np.uint32)))
            row["ort_d_s"] = _median_time(lambda: sess["DequantizeLinear"].run(None, {}), reps)
        except Exception as e:  # noqa: BLE001 - no ORT, or no float8 there
            row["ort_error"] = str(e)[:200]
        rows.append(row)
    refquant.set_num_threads(None)
    return rows


def bench_lowfloat_blocked(threads_list, reps, rows=4096, cols=4096):
    """Blocked-scale weights (a scale per block of the last axis, as float8 / MX / NV float4
    checkpoints store them): float32 -> float8 e4m3fn (blocks of 128) and float4 e2m1 (blocks
    of 32 and 16) QuantizeLinear and back, against the numpy reference (ONNX Runtime has no CPU
    float4 kernel, and no blocked float8 one)."""
    import ml_dtypes
    import refquant
    from refquant import reference as R
    rng = np.random.default_rng(0)
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    rows_out = []
    for th in threads_list:
        refquant.set_num_threads(th)
        for name, bs in (("float8_e4m3fn", 128), ("float4_e2m1fn", 32), ("float4_e2m1fn", 16)):
            dt = np.dtype(getattr(ml_dtypes, name))
            s = (rng.random((rows, cols // bs)) + 0.05).astype(np.float32)
            z = np.zeros(s.shape, dt)
            kw = dict(axis=1, block_size=bs)
            y = refquant.quantize_linear(w, s, z, **kw)
            row = {"threads": th, "type": name, "block": bs, "n": w.size,
                   "kernel_quantize": refquant.last_path()["path"]}
            refquant.dequantize_linear(y, s, z, **kw)
            row["kernel_dequantize"] = refquant.last_path()["path"]
            row["rq_q_s"] = _median_time(lambda: refquant.quantize_linear(w, s, z, **kw), reps)
            row["rq_d_s"] = _median_time(lambda: refquant.dequantize_linear(y, s, z, **kw), reps)
            part = slice(0, max(1, rows // 16))          # the reference on a sixteenth, scaled
            row["ref_q_s"] = _median_time(lambda: R.quantize_linear(w[part], s[part], z[part], **kw), 3) * 16
            row["ref_d_s"] = _median_time(lambda: R.dequantize_linear(y[part], s[part], z[part], **kw), 3) * 16
            rows_out.append(row)
    refquant.set_num_threads(None)
    return rows_out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--per-axis", action="store_true",
                    help="also run per-axis: axis 0 of 4096 rows, and the last axis of 64 channels "
                         "(ORT runs the latter element by element: slow)")
    ap.add_argument("--float8", action="store_true",
                    help="also run float32 -> float8 e4m3fn QuantizeLinear and back (per tensor), "
                         "and blocked float8 / float4 weights")
    ap.add_argument("--json", metavar="FILE", help="write results as JSON ('-' = stdout)")
    args = ap.parse_args(argv)
    import refquant
    res = bench(args.n, args.threads, args.reps)
    if args.per_axis:
        res += bench(args.n, args.threads, args.reps, per_axis=True)
        res += bench(args.n, args.threads, max(1, args.reps // 3), per_axis="last")
    for r in res:
        gran = {False: "per-tensor", True: "per-axis (axis 0, 4096 rows)",
                "last": "per-axis (last axis, 64 channels)"}[r["per_axis"]]
        print(f"\n== {r['n']} elements, {gran}, {r['threads']} thread(s); kernels "
              f"{r['kernel_quantize']}, {r['kernel_dequantize']}; ORT {r.get('ort_version')}")
        for op, key in (("QuantizeLinear f32->u8", "q"), ("DequantizeLinear u8->f32", "d")):
            for var in ("pre", "api"):
                rq, ort_ = r.get(f"rq_{key}_{var}_GBps"), r.get(f"ort_{key}_{var}_GBps")
                ratio = r.get(f"ratio_rq_{key}_{var}_vs_ort_{key}_{var}")
                line = f"  {op:<26} {var:<8} refquant {rq:7.2f} GB/s"
                if ort_ is not None:
                    line += f"   ORT {ort_:7.2f} GB/s   ratio {ratio:5.2f}x"
                print(line)
        if "rq_dyn_api_GBps" in r:
            line = f"  {'DynamicQuantizeLinear f32':<26} {'api':<8} refquant {r['rq_dyn_api_GBps']:7.2f} GB/s"
            if "ort_dyn_api_GBps" in r:
                line += (f"   ORT {r['ort_dyn_api_GBps']:7.2f} GB/s   ratio "
                         f"{r['ratio_rq_dyn_api_vs_ort_dyn_api']:5.2f}x")
            print(line)
        if "numpy_q_GBps" in r:
            print(f"  numpy naive quantize            {r['numpy_q_GBps']:7.2f} GB/s  "
                  f"(refquant {r['ratio_rq_q_pre_vs_numpy_q']:.1f}x)")
        if r.get("ort_version"):
            print(f"  ORT bit-exact vs reference: quantize {r['ort_quantize_bitexact']}, "
                  f"dequantize {r['ort_dequantize_bitexact']}, "
                  f"dynamic {r.get('ort_dynamic_bitexact', 'n/a')}")
    f8 = bench_float8(args.n, args.threads, args.reps) if args.float8 else []
    for r in f8:
        print(f"\n== float8 e4m3fn, {r['n']} elements, per-tensor, {r['threads']} thread(s); kernels "
              f"{r['kernel_quantize']}, {r['kernel_dequantize']}; ORT {r.get('ort_version')}")
        for op, key in (("QuantizeLinear f32->e4m3fn", "q"), ("DequantizeLinear e4m3fn->f32", "d")):
            line = f"  {op:<28} refquant {r['n'] / r[f'rq_{key}_s'] / 1e9:6.2f} Gelem/s"
            if f"ort_{key}_s" in r:
                line += (f"   ORT {r['n'] / r[f'ort_{key}_s'] / 1e9:6.2f} Gelem/s   ratio "
                         f"{r[f'ort_{key}_s'] / r[f'rq_{key}_s']:5.2f}x")
            print(line)
        print(f"  numpy reference quantize     {r['n'] / r['ref_q_s'] / 1e9:6.2f} Gelem/s "
              f"(refquant {r['ref_q_s'] / r['rq_q_s']:.0f}x)")
        if "ort_bitexact" in r:
            print(f"  ORT bit-exact vs refquant: quantize {r['ort_bitexact']}, "
                  f"dequantize {r.get('ort_dq_bitexact')}")
    lowb = bench_lowfloat_blocked(args.threads, args.reps, rows=max(16, args.n // 4096)) if args.float8 else []
    for r in lowb:
        print(f"\n== {r['type']}, blocks of {r['block']} along the last axis, {r['n']} elements, "
              f"{r['threads']} thread(s); kernels {r['kernel_quantize']}, {r['kernel_dequantize']}")
        for op, key in (("QuantizeLinear", "q"), ("DequantizeLinear", "d")):
            print(f"  {op:<18} refquant {r['n'] / r[f'rq_{key}_s'] / 1e9:6.2f} Gelem/s   numpy reference "
                  f"{r['n'] / r[f'ref_{key}_s'] / 1e9:6.3f} Gelem/s   ratio {r[f'ref_{key}_s'] / r[f'rq_{key}_s']:5.1f}x")
    if args.json:
        out = {"refquant": refquant.__version__, "config": refquant._config.config_dict(),
               "results": res, "float8": f8, "lowfloat_blocked": lowb}
        text = json.dumps(out, indent=2, default=str)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
