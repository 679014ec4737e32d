"""Benchmark refquant's integer GEMM against onnxruntime, PyTorch quantized linear and numpy.

    python benchmarks/bench_gemm.py [--shapes 1x4096x4096 128x768x768 ...] [--threads 1 2]
                                    [--budget 0.6] [--json FILE] [--no-torch] [--no-numpy]

For each thread count (refquant.set_num_threads, ORT intra_op_num_threads, torch.set_num_threads;
numpy's OpenBLAS in a subprocess with OPENBLAS_NUM_THREADS) and each (M, N, K):

  refquant  matmul_integer u8s8 with B a plain array every call ("rq u8s8"), with
            pack_weights(B) ("rq u8s8 packed"), qlinear_matmul u8s8->u8, and u8u8 / s8s8 /
            s8u8 matmul_integer;
  ORT       MatMulInteger u8s8 / u8u8 / s8s8 and QLinearMatMul u8s8 with B a constant
            initializer (pre-packed by ORT), plain session.run();
  torch     quantized Linear (quint8 x qint8 -> quint8) on the fbgemm, x86 and onednn engines;
  numpy     float32 matmul (OpenBLAS sgemm).

GOPS = 2*M*N*K / median time (each peer is timed for about --budget seconds after a warm-up;
best time also recorded).  Ratios are refquant / peer at the same thread count, measured in
the same run: the machine is shared, absolute numbers drift, ratios are what to compare.
The headline pairs (u8s8 MatMulInteger plain and packed against ORT's, QLinearMatMul against
ORT's) are also timed alternately, eight rounds in a shuffled order, and the line
"alternating (ratio)" gives the median of the per-round ratios, which the order of the
sequential timings and the machine's drift move less.
Outputs are checked bit-identical to ORT's (MatMulInteger, QLinearMatMul).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # _peers, also when imported
from _peers import peer_ratios, print_peer_ratios  # noqa: E402

DEFAULT_SHAPES = ["1x4096x4096", "128x768x768", "512x512x512", "1024x1024x1024", "2048x2048x2048"]


# Seconds of idle before each engine's timing block: a thread pool that spins after a call (ORT's
# intra-op pool, refquant's) keeps a core busy for a while, and at 2 threads on 2 cores the next
# engine's timing then shares a core with it (2 threads, 128x768x768: refquant 0.49-0.83x of ORT
# from run to run without the pause).
SETTLE = 0.02


def alternate(fns, budget, rounds=8):
    """Time the callables in ``fns`` (name -> fn) alternately: ``rounds`` rounds, each timing
    every fn in a shuffled order for budget / rounds seconds after one warm-up call.  Returns
    (name -> median seconds over all calls, name -> per-round median seconds).  Sequential
    timing (timeit) lets the machine's drift and the order enter the ratio; this does not."""
    order = np.random.default_rng(7)
    names = list(fns)
    allt = {k: [] for k in names}
    per = {k: [] for k in names}
    for _ in range(rounds):
        for i in order.permutation(len(names)):
            k = names[i]
            f = fns[k]
            time.sleep(SETTLE)
            f()
            ts = []
            t_end = time.perf_counter() + budget / rounds
            while len(ts) < 3 or (time.perf_counter() < t_end and len(ts) < 100):
                t0 = time.perf_counter()
                f()
                ts.append(time.perf_counter() - t0)
            allt[k] += ts
            per[k].append(float(np.median(ts)))
    return {k: float(np.median(v)) for k, v in allt.items()}, per


def timeit(fn, budget, min_reps=3, max_reps=200):
    time.sleep(SETTLE)
    fn()
    ts = []
    t_end = time.perf_counter() + budget
    while len(ts) < min_reps or (time.perf_counter() < t_end and len(ts) < max_reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(np.min(ts))


# ----------------------------------------------------------------------------- ORT

def ort_session(op, M, N, K, a_dt, b_dt, B, threads, qparams=None):
    from onnx import TensorProto, helper, numpy_helper
    import onnxruntime as ort

    el = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8}
    if op == "MatMulInteger":
        inits = [numpy_helper.from_array(B, "B"),
                 numpy_helper.from_array(np.array(qparams["a_zp"], a_dt), "az"),
                 numpy_helper.from_array(np.array(0, b_dt), "bz")]
        node = helper.make_node(op, ["A", "B", "az", "bz"], ["Y"])
        out = helper.make_tensor_value_info("Y", TensorProto.INT32, [M, N])
    else:
        inits = [numpy_helper.from_array(B, "B"),
                 numpy_helper.from_array(np.array(qparams["a_s"], np.float32), "as"),
                 numpy_helper.from_array(np.array(qparams["a_zp"], a_dt), "az"),
                 numpy_helper.from_array(np.array(qparams["b_s"], np.float32), "bs"),
                 numpy_helper.from_array(np.array(0, b_dt), "bz"),
                 numpy_helper.from_array(np.array(qparams["y_s"], np.float32), "ys"),
                 numpy_helper.from_array(np.array(qparams["y_zp"], a_dt), "yz")]
        node = helper.make_node(op, ["A", "as", "az", "B", "bs", "bz", "ys", "yz"], ["Y"])
        out = helper.make_tensor_value_info("Y", el[np.dtype(a_dt)], [M, N])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("A", el[np.dtype(a_dt)], [M, K])],
                              [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    if os.environ.get("REFQUANT_BENCH_ORT_SPIN_STOP", "") not in ("", "0"):
        so.add_session_config_entry("session.force_spinning_stop", "1")   # see run_all.py
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- torch

def torch_linear(engine, A_u8, B_s8, qp, threads):
    import torch
    if engine not in torch.backends.quantized.supported_engines:
        return None
    torch.backends.quantized.engine = engine
    torch.set_num_threads(threads)
    K, N = B_s8.shape
    lin = torch.ao.nn.quantized.Linear(K, N, bias_=False)
    wq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(B_s8.T)),
                                                 qp["b_s"], 0)
    lin.set_weight_bias(wq, None)
    lin.scale, lin.zero_point = qp["y_s"], qp["y_zp"]
    xq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(A_u8), qp["a_s"], qp["a_zp"])

    def run():
        with torch.no_grad():
            return lin(xq)
    return run


def numpy_f32(M, N, K, threads, budget):
    code = ("import numpy as np,time,sys;M,N,K=%d,%d,%d;a=np.random.rand(M,K).astype(np.float32);"
            "b=np.random.rand(K,N).astype(np.float32);a@b;ts=[];t1=time.perf_counter()+%f\n"
            "while len(ts)<3 or (time.perf_counter()<t1 and len(ts)<200):\n"
            " t=time.perf_counter();a@b;ts.append(time.perf_counter()-t)\n"
            "print(float(np.median(ts)),float(np.min(ts)))") % (M, N, K, budget)
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return None
    med, best = map(float, r.stdout.split())
    return med, best


# ----------------------------------------------------------------------------- main

def bench_shape(M, N, K, threads, budget, use_torch, use_numpy, rng):
    import refquant
    from refquant import reference as R

    refquant.set_num_threads(threads)
    ops = 2.0 * M * N * K
    res = {}

    def rec(name, t, check=None):
        if t is None:
            return
        med, best = t
        res[name] = {"gops": ops / med / 1e9, "gops_best": ops / best / 1e9, "median_s": med}
        if check is not None:
            res[name]["bitexact_vs_ort"] = bool(check)

    A_u8 = rng.integers(0, 256, (M, K), dtype=np.uint8)
    A_s8 = rng.integers(-128, 128, (M, K)).astype(np.int8)
    B_s8 = rng.integers(-128, 128, (K, N)).astype(np.int8)
    B_u8 = rng.integers(0, 256, (K, N), dtype=np.uint8)
    qp = dict(a_s=0.02, a_zp=117, b_s=0.004, y_s=0.9, y_zp=121)
    slow_budget = budget if M * N * K <= 1024 ** 3 else budget / 2

    # refquant
    az = {np.uint8: np.uint8(qp["a_zp"]), np.int8: np.int8(-3)}
    cases = [("u8s8", A_u8, B_s8), ("u8u8", A_u8, B_u8), ("s8s8", A_s8, B_s8), ("s8u8", A_s8, B_u8)]
    rq_out = {}
    for name, A, B in cases:
        zA = az[A.dtype.type]
        zB = B.dtype.type(0)
        rq_out[name] = refquant.matmul_integer(A, B, zA, zB)
        res_path = refquant.last_path()["path"]
        rec(f"rq {name}", timeit(lambda: refquant.matmul_integer(A, B, zA, zB), budget))
        res[f"rq {name}"]["kernel"] = res_path
    pw = refquant.pack_weights(B_s8)
    rec("rq u8s8 packed", timeit(lambda: refquant.matmul_integer(A_u8, pw, az[np.uint8], np.int8(0)), budget))
    qargs = (A_u8, np.float32(qp["a_s"]), np.uint8(qp["a_zp"]), B_s8, np.float32(qp["b_s"]), np.int8(0),
             np.float32(qp["y_s"]), np.uint8(qp["y_zp"]))
    rq_q = refquant.qlinear_matmul(*qargs)
    rec("rq qlinear u8s8", timeit(lambda: refquant.qlinear_matmul(*qargs), budget))
    qargs_p = qargs[:3] + (pw,) + qargs[4:]
    rec("rq qlinear u8s8 packed", timeit(lambda: refquant.qlinear_matmul(*qargs_p), budget))

    # ORT
    try:
        import onnxruntime  # noqa: F401
        have_ort = True
    except ImportError:
        have_ort = False
    if have_ort:
        for name, A, B in cases[:3]:
            qpp = dict(qp, a_zp=int(az[A.dtype.type]))
            s = ort_session("MatMulInteger", M, N, K, A.dtype, B.dtype, B, threads, qpp)
            y = s.run(None, {"A": A})[0]
            rec(f"ort MatMulInteger {name}",
                timeit(lambda: s.run(None, {"A": A}), budget if name == "u8s8" else slow_budget,
                       min_reps=1 if name != "u8s8" else 3),
                check=np.array_equal(y, rq_out[name]))
        s = ort_session("QLinearMatMul", M, N, K, np.uint8, np.int8, B_s8, threads, qp)
        y = s.run(None, {"A": A_u8})[0]
        rec("ort QLinearMatMul u8s8", timeit(lambda: s.run(None, {"A": A_u8}), budget),
            check=np.array_equal(y, rq_q))
    if use_torch:
        for eng in ("fbgemm", "x86", "onednn"):
            try:
                f = torch_linear(eng, A_u8, B_s8, qp, threads)
            except Exception as e:  # noqa: BLE001
                f = None
                res[f"torch linear {eng}"] = {"error": str(e)[:200]}
            if f is not None:
                rec(f"torch linear {eng}", timeit(f, budget))
    if use_numpy:
        rec("numpy f32 matmul", numpy_f32(M, N, K, threads, budget))
    if have_ort:
        # the headline pairs again, timed alternately (see alternate()): the per-round ratios'
        # median is the number least moved by the shared machine's drift
        s1 = ort_session("MatMulInteger", M, N, K, np.uint8, np.int8, B_s8, threads,
                         dict(qp, a_zp=int(az[np.uint8])))
        s2 = ort_session("QLinearMatMul", M, N, K, np.uint8, np.int8, B_s8, threads, qp)
        fns = {"rq": lambda: refquant.matmul_integer(A_u8, B_s8, az[np.uint8], np.int8(0)),
               "rq_packed": lambda: refquant.matmul_integer(A_u8, pw, az[np.uint8], np.int8(0)),
               "ort": lambda: s1.run(None, {"A": A_u8}),
               "rq_q": lambda: refquant.qlinear_matmul(*qargs),
               "ort_q": lambda: s2.run(None, {"A": A_u8})}
        _, per = alternate(fns, 2 * budget if M * N * K <= 1024 ** 3 else budget)
        alt = {}
        for a, b in (("rq", "ort"), ("rq_packed", "ort"), ("rq_q", "ort_q")):
            alt[f"{a}_vs_{b}"] = float(np.median(np.array(per[b]) / np.array(per[a])))
        res["alternating"] = alt
    # ratios
    ort = res.get("ort MatMulInteger u8s8", {}).get("gops")
    for k, v in res.items():
        if ort and "gops" in v:
            v["ratio_vs_ort_u8s8"] = v["gops"] / ort
    for name in ("u8u8", "s8s8"):
        o = res.get(f"ort MatMulInteger {name}", {}).get("gops")
        if o and f"rq {name}" in res:
            res[f"rq {name}"][f"ratio_vs_ort_{name}"] = res[f"rq {name}"]["gops"] / o
    qo = res.get("ort QLinearMatMul u8s8", {}).get("gops")
    for k in ("rq qlinear u8s8", "rq qlinear u8s8 packed"):
        if qo and k in res:
            res[k]["ratio_vs_ort_qlinear"] = res[k]["gops"] / qo
    # refquant against every peer: the integer GEMM against ORT's and numpy's float32 sgemm, the
    # requantized one (uint8 out) against ORT's QLinearMatMul and torch's quantized Linear
    res["vs_peers"] = peer_ratios(res, [("rq u8s8", "ort MatMulInteger u8s8"), ("rq u8s8", "numpy f32 matmul"),
                                        ("rq qlinear u8s8", "ort QLinearMatMul u8s8")]
                                  + [("rq qlinear u8s8", f"torch linear {e}") for e in ("fbgemm", "x86", "onednn")])
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, help="MxNxK")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--budget", type=float, default=0.6, help="seconds per peer measurement")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-numpy", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import refquant
    rng = np.random.default_rng(args.seed)
    out = {"config": {"shapes": args.shapes, "threads": args.threads, "budget": args.budget},
           "versions": {"numpy": np.__version__}, "results": {}}
    try:
        import onnxruntime
        out["versions"]["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if not args.no_torch:
        try:
            import torch
            out["versions"]["torch"] = torch.__version__
        except ImportError:
            args.no_torch = True
    try:
        from refquant import _gemm_fast
        out["kernels"] = _gemm_fast.kernel_names()
    except ImportError:
        out["kernels"] = {}
    for t in args.threads:
        for shp in args.shapes:
            M, N, K = (int(v) for v in shp.lower().split("x"))
            r = bench_shape(M, N, K, t, args.budget, not args.no_torch, not args.no_numpy, rng)
            out["results"][f"{shp} t{t}"] = r
            print(f"\n== {M}x{N}x{K}  threads={t}")
            for k, v in r.items():
                if k == "vs_peers":
                    print_peer_ratios(v, 28)
                    continue
                if k == "alternating":
                    print(f"  {'alternating (ratio)':28s} " + "  ".join(f"{kk}={vv:.2f}x" for kk, vv in v.items()))
                    continue
                if "gops" not in v:
                    print(f"  {k:28s} {v}")
                    continue
                extra = "  ".join(f"{kk[6:]}={vv:.2f}x" for kk, vv in v.items() if kk.startswith("ratio_"))
                ex = "" if "bitexact_vs_ort" not in v else ("  exact" if v["bitexact_vs_ort"] else "  MISMATCH")
                kern = f"  [{v['kernel']}]" if "kernel" in v else ""
                print(f"  {k:28s} {v['gops']:9.1f} GOPS (best {v['gops_best']:9.1f})  {extra}{ex}{kern}")
            sys.stdout.flush()
    refquant.set_num_threads(None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
