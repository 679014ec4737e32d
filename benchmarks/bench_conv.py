"""Benchmark refquant's integer convolution against onnxruntime and PyTorch quantized conv.

    python benchmarks/bench_conv.py [--layers 3x3 1x1 dw | all] [--threads 1 2] [--budget 0.6]
                                    [--json FILE] [--no-torch]

Layers (ResNet-50 / MobileNet shapes, N=1, NCHW, uint8 activations, int8 weights, int32 bias);
the first three (the issue's goals) run by default, ``--layers all`` adds the others:
  3x3     C=64 -> 64, 56x56, pad 1                      (231 MOPs)
  1x1     C=256 -> 64, 56x56                             (103 MOPs)
  dw      C=128, group 128, 3x3, 56x56, pad 1           (7.2 MOPs)
  3x3pc   the 3x3 layer with per-output-channel weight scales (what quantizers emit)
  3x3s2   C=64 -> 128, 3x3, stride 2, 56x56 -> 28x28     (116 MOPs, ResNet-18 downsampling)
  stem7   C=3 -> 64, 7x7, stride 2, 224x224 -> 112x112   (236 MOPs, ResNet stem)
  stem3   C=3 -> 32, 3x3, stride 2, 224x224 -> 112x112   (21.7 MOPs, MobileNet stem)
  3x3c32  C=32 -> 32, 3x3, 56x56                         (57.8 MOPs, channels not a multiple of 64)
  3x3w512 C=512 -> 512, 3x3, 7x7, pad 1                  (231 MOPs, ResNet-50's last stage: 2.4 MB
          of weights, which refquant packs on every call when they come as a plain array)
  3x3s2w512 C=512 -> 512, 3x3, stride 2, 14x14 -> 7x7    (231 MOPs, ResNet-50 v1.5 downsampling)
  1x1w2048 C=512 -> 2048, 1x1, 7x7                       (103 MOPs, ResNet-50's last expansion)
  3d      C=32 -> 32, 3x3x3, 16x32x32, pad 1             (906 MOPs, a 3-D U-Net / video layer)
  3ddw    C=64, group 64, 3x3x3, 8x28x28, pad 1          (21.7 MOPs, a depthwise 3-D layer)
  dw14    C=512, group 512, 3x3, 14x14, pad 1            (1.8 MOPs, MobileNet-v1's 14x14 depthwise)
  dw14s2  C=512, group 512, 3x3, stride 2, 14x14 -> 7x7  (0.45 MOPs)
  dw7     C=1024, group 1024, 3x3, 7x7, pad 1            (0.90 MOPs, MobileNet-v1's last depthwise)

Peers at the same thread count, in the same run: refquant.qlinear_conv (weights as a plain array
every call, and pre-packed with pack_weights), refquant.conv_integer; ORT QLinearConv and
ConvInteger with the weights as initializers; torch quantized Conv2d (Conv3d) on the fbgemm, x86 and
onednn engines with NCHW and channels-last (NHWC) input.  GOPS = 2*MACs / median time;
ratios are against ORT QLinearConv.  refquant's outputs are checked bit-identical to ORT's.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))   # _peers, also when imported
from _peers import peer_ratios, print_peer_ratios  # noqa: E402

LAYERS = {
    "3x3": dict(C=64, M=64, H=56, W=56, k=3, pad=1, group=1),
    "1x1": dict(C=256, M=64, H=56, W=56, k=1, pad=0, group=1),
    "dw": dict(C=128, M=128, H=56, W=56, k=3, pad=1, group=128),
    "3x3pc": dict(C=64, M=64, H=56, W=56, k=3, pad=1, group=1, per_channel=True),
    "3x3s2": dict(C=64, M=128, H=56, W=56, k=3, pad=1, group=1, stride=2),
    "stem7": dict(C=3, M=64, H=224, W=224, k=7, pad=3, group=1, stride=2),
    "stem3": dict(C=3, M=32, H=224, W=224, k=3, pad=1, group=1, stride=2),
    "3x3c32": dict(C=32, M=32, H=56, W=56, k=3, pad=1, group=1),
    "3x3w512": dict(C=512, M=512, H=7, W=7, k=3, pad=1, group=1),
    "3x3s2w512": dict(C=512, M=512, H=14, W=14, k=3, pad=1, group=1, stride=2),
    "1x1w2048": dict(C=512, M=2048, H=7, W=7, k=1, pad=0, group=1),
    "3d": dict(C=32, M=32, D=16, H=32, W=32, k=3, pad=1, group=1),
    "3ddw": dict(C=64, M=64, D=8, H=28, W=28, k=3, pad=1, group=64),
    "dw14": dict(C=512, M=512, H=14, W=14, k=3, pad=1, group=512),
    "dw14s2": dict(C=512, M=512, H=14, W=14, k=3, pad=1, group=512, stride=2),
    "dw7": dict(C=1024, M=1024, H=7, W=7, k=3, pad=1, group=1024),
}


def _spatial(L):
    """The layer's input spatial shape: (D, H, W) for the 3-D layers, else (H, W)."""
    return (L["D"], L["H"], L["W"]) if "D" in L else (L["H"], L["W"])
DEFAULT_LAYERS = ["3x3", "1x1", "dw"]


# idle before each timing: the previous engine's spinning pool threads would share the cores
# (bench_gemm.SETTLE)
SETTLE = 0.02


def timeit(fn, budget, min_reps=3, max_reps=500):
    time.sleep(SETTLE)
    fn()
    ts = []
    t_end = time.perf_counter() + budget
    while len(ts) < min_reps or (time.perf_counter() < t_end and len(ts) < max_reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), float(np.min(ts))


def ort_conv(op, x, w, bias, qp, L, threads):
    from onnx import TensorProto, helper, numpy_helper
    import onnxruntime as ort

    nd = len(_spatial(L))
    pads = [L["pad"]] * (2 * nd)
    st = L.get("stride", 1)
    attrs = dict(kernel_shape=[L["k"]] * nd, pads=pads, group=L["group"], strides=[st] * nd)
    if op == "QLinearConv":
        ws = np.asarray(qp["w_s"], np.float32)
        inits = [numpy_helper.from_array(np.array(qp["x_s"], np.float32), "xs"),
                 numpy_helper.from_array(np.array(qp["x_zp"], np.uint8), "xz"),
                 numpy_helper.from_array(w, "w"),
                 numpy_helper.from_array(ws, "ws"),
                 numpy_helper.from_array(np.zeros(ws.shape, np.int8), "wz"),
                 numpy_helper.from_array(np.array(qp["y_s"], np.float32), "ys"),
                 numpy_helper.from_array(np.array(qp["y_zp"], np.uint8), "yz"),
                 numpy_helper.from_array(bias, "b")]
        node = helper.make_node(op, ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"], **attrs)
        yt = TensorProto.UINT8
    else:
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(qp["x_zp"], np.uint8), "xz")]
        node = helper.make_node(op, ["x", "w", "xz"], ["y"], **attrs)
        yt = TensorProto.INT32
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x.shape))],
                              [helper.make_tensor_value_info("y", yt, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    if os.environ.get("REFQUANT_BENCH_ORT_SPIN_STOP", "") not in ("", "0"):
        so.add_session_config_entry("session.force_spinning_stop", "1")   # see run_all.py
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def torch_conv(engine, x, w, bias, qp, L, threads, channels_last):
    import torch
    if engine not in torch.backends.quantized.supported_engines:
        return None
    torch.backends.quantized.engine = engine
    torch.set_num_threads(threads)
    nd = len(_spatial(L))
    cls = torch.ao.nn.quantized.Conv3d if nd == 3 else torch.ao.nn.quantized.Conv2d
    conv = cls(L["C"], L["M"], L["k"], padding=L["pad"], groups=L["group"], stride=L.get("stride", 1))
    ws = np.asarray(qp["w_s"], np.float32)
    if ws.ndim:
        wq = torch._make_per_channel_quantized_tensor(torch.from_numpy(w), torch.from_numpy(ws.astype(np.float64)),
                                                      torch.zeros(ws.shape[0], dtype=torch.int64), 0)
    else:
        wq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(w), float(ws), 0)
    conv.set_weight_bias(wq, torch.from_numpy((bias.astype(np.float32) * np.float32(qp["x_s"]) * ws).astype(np.float32)))
    conv.scale, conv.zero_point = qp["y_s"], qp["y_zp"]
    xq = torch._make_per_tensor_quantized_tensor(torch.from_numpy(x), qp["x_s"], qp["x_zp"])
    if channels_last:
        xq = xq.contiguous(memory_format=torch.channels_last_3d if nd == 3 else torch.channels_last)

    def run():
        with torch.no_grad():
            return conv(xq)
    return run


def bench_layer(name, threads, budget, use_torch, rng):
    import refquant
    L = LAYERS[name]
    refquant.set_num_threads(threads)
    sp = _spatial(L)
    nd = len(sp)
    x = rng.integers(0, 256, (1, L["C"]) + sp, dtype=np.uint8)
    w = rng.integers(-128, 128, (L["M"], L["C"] // L["group"]) + (L["k"],) * nd).astype(np.int8)
    bias = rng.integers(-2000, 2000, L["M"]).astype(np.int32)
    qp = dict(x_s=0.02, x_zp=119, w_s=0.005, y_s=0.3, y_zp=127)
    if L.get("per_channel"):
        qp["w_s"] = (rng.random(L["M"]) * 0.008 + 0.002).astype(np.float32)
    st = L.get("stride", 1)
    outs = [(n + 2 * L["pad"] - L["k"]) // st + 1 for n in sp]
    ops = 2.0 * L["M"] * float(np.prod(outs)) * (L["C"] // L["group"]) * L["k"] ** nd
    res = {}

    def rec(key, t, check=None, kernel=None):
        med, best = t
        res[key] = {"gops": ops / med / 1e9, "gops_best": ops / best / 1e9, "median_s": med}
        if check is not None:
            res[key]["bitexact_vs_ort"] = bool(check)
        if kernel:
            res[key]["kernel"] = kernel

    kw = dict(pads=[L["pad"]] * (2 * nd), group=L["group"], strides=[st] * nd)
    w_s = qp["w_s"] if L.get("per_channel") else np.float32(qp["w_s"])
    args = (x, np.float32(qp["x_s"]), np.uint8(qp["x_zp"]), w, w_s,
            np.zeros(L["M"], np.int8) if L.get("per_channel") else np.int8(0),
            np.float32(qp["y_s"]), np.uint8(qp["y_zp"]), bias)
    y_rq = refquant.qlinear_conv(*args, **kw)
    kern = refquant.last_path()["path"]
    t_rq = timeit(lambda: refquant.qlinear_conv(*args, **kw), budget)
    pw = refquant.pack_weights(w) if L["group"] == 1 else w
    args_p = args[:3] + (pw,) + args[4:]
    t_rqp = timeit(lambda: refquant.qlinear_conv(*args_p, **kw), budget)
    ci = refquant.conv_integer(x, w, np.uint8(qp["x_zp"]), **kw)
    t_ci = timeit(lambda: refquant.conv_integer(x, w, np.uint8(qp["x_zp"]), **kw), budget)
    try:
        s = ort_conv("QLinearConv", x, w, bias, qp, L, threads)
        y_ort = s.run(None, {"x": x})[0]
        rec("rq QLinearConv", t_rq, check=np.array_equal(y_ort, y_rq), kernel=kern)
        rec("ort QLinearConv", timeit(lambda: s.run(None, {"x": x}), budget))
        s2 = ort_conv("ConvInteger", x, w, bias, qp, L, threads)
        ci_ort = s2.run(None, {"x": x})[0]
        rec("rq ConvInteger", t_ci, check=np.array_equal(ci_ort, ci))
        rec("ort ConvInteger", timeit(lambda: s2.run(None, {"x": x}), budget))
    except ImportError:
        rec("rq QLinearConv", t_rq, kernel=kern)
        rec("rq ConvInteger", t_ci)
    rec("rq QLinearConv packed", t_rqp)
    if use_torch:
        for eng in ("fbgemm", "x86", "onednn"):
            for cl in (False, True):
                key = f"torch {eng} {'nhwc' if cl else 'nchw'}"
                try:
                    f = torch_conv(eng, x, w, bias, qp, L, threads, cl)
                    if f is not None:
                        rec(key, timeit(f, budget))
                except Exception as e:  # noqa: BLE001
                    res[key] = {"error": str(e)[:200]}
    o = res.get("ort QLinearConv", {}).get("gops")
    if o:
        for v in res.values():
            if "gops" in v:
                v["ratio_vs_ort_qlinearconv"] = v["gops"] / o
    res["vs_peers"] = peer_ratios(res, [("rq QLinearConv", "ort QLinearConv"), ("rq ConvInteger", "ort ConvInteger")]
                                  + [("rq QLinearConv", f"torch {e} {f}") for e in ("fbgemm", "x86", "onednn")
                                     for f in ("nchw", "nhwc")])
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", nargs="+", default=DEFAULT_LAYERS,
                    help=f"any of {', '.join(LAYERS)}, or 'all' (default: {' '.join(DEFAULT_LAYERS)})")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--budget", type=float, default=0.6)
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if "all" in args.layers:
        args.layers = list(LAYERS)
    import refquant
    rng = np.random.default_rng(args.seed)
    out = {"config": vars(args), "versions": {"numpy": np.__version__}, "results": {}}
    for mod in ("onnxruntime", "torch"):
        try:
            out["versions"][mod] = __import__(mod).__version__
        except ImportError:
            if mod == "torch":
                args.no_torch = True
    for t in args.threads:
        for name in args.layers:
            r = bench_layer(name, t, args.budget, not args.no_torch, rng)
            out["results"][f"{name} t{t}"] = r
            print(f"\n== {name} threads={t}")
            for k, v in r.items():
                if k == "vs_peers":
                    print_peer_ratios(v, 26)
                    continue
                if "gops" not in v:
                    print(f"  {k:26s} {v}")
                    continue
                ratio = v.get("ratio_vs_ort_qlinearconv")
                ex = "" if "bitexact_vs_ort" not in v else ("  exact" if v["bitexact_vs_ort"] else "  MISMATCH")
                kern = f"  [{v['kernel']}]" if "kernel" in v else ""
                print(f"  {k:26s} {v['gops']:9.1f} GOPS (best {v['gops_best']:9.1f})"
                      f"{'' if ratio is None else f'  vs ORT QLinearConv {ratio:.2f}x'}{ex}{kern}")
            sys.stdout.flush()
    refquant.set_num_threads(None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
