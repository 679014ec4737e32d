"""A/B of the AMX plain-B driver's packing overlap (REFQUANT_AMX_OVERLAP 0 / 1 / 2), on an AMX CPU.

    python benchmarks/bench_amx_overlap.py [--rounds 4] [--budget 0.25] [--cpus 4,5]

The driver packs each 64-column group of a plain B right before its tile work (mode 0), or packs
the next group in steps while the tile unit works on the current one: after each tile call
(mode 1) or inside each call's k loop (mode 2).  All three give the same bits (tests/test_build.py
checks them under the emulated AMX build); this measures which is faster.  The mode is read once
per process, so each (round, mode) is a fresh process, the modes alternating round by round;
each process times the plain-B GEMMs the driver takes (uint8 A with a zero point, int8 B, 1 and
2 threads) and a 1x1 conv (256 -> 64, 56x56), median microseconds over about --budget seconds.
The table gives, per shape, the median over rounds for each mode and the ratio mode / mode 0.
--cpus pins the children (taskset) to those CPUs, for a quiet pair of cores on a large host.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import os, sys, time, numpy as np, refquant
budget = float(sys.argv[1])
rng = np.random.default_rng(0)
def med(f):
    for _ in range(3): f()
    ts = []; t_end = time.perf_counter() + budget
    while time.perf_counter() < t_end or len(ts) < 15:
        t0 = time.perf_counter(); f(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e6
shapes = [(128, 768, 768), (64, 768, 768), (256, 768, 768), (128, 1024, 1024), (32, 768, 3072)]
for nt in (1, 2):
    refquant.set_num_threads(nt)
    for M, K, N in shapes:
        A = rng.integers(0, 256, (M, K), dtype=np.uint8); B = rng.integers(-128, 128, (K, N), dtype=np.int8)
        us = med(lambda: refquant.matmul_integer(A, B, np.uint8(117)))
        print(f"R t{nt} {M}x{K}x{N} {us:.1f} {refquant.last_path()['path']}", flush=True)
    x = rng.integers(0, 256, (1, 256, 56, 56), dtype=np.uint8)
    w = rng.integers(-128, 128, (64, 256, 1, 1), dtype=np.int8)
    us = med(lambda: refquant.qlinear_conv(x, np.float32(0.02), np.uint8(100), w, np.float32(0.01), np.int8(0),
                                           np.float32(0.05), np.uint8(120)))
    print(f"R t{nt} conv1x1 {us:.1f} {refquant.last_path()['path']}", flush=True)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--budget", type=float, default=0.25, help="seconds per timed shape")
    ap.add_argument("--cpus", default=None, help="taskset CPU list for the children, e.g. 4,5")
    a = ap.parse_args(argv)
    import refquant
    from refquant import _levels
    if "amx" not in _levels.available():
        print("no AMX level here (CPU, OS or build): nothing to compare")
        return 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(refquant.__file__)))   # the children import this refquant
    env = dict(os.environ, PYTHONPATH=root + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""))
    pre = ["taskset", "-c", a.cpus] if a.cpus and shutil.which("taskset") else []
    times = collections.defaultdict(list)
    paths = {}
    for r in range(a.rounds):
        for mode in "012":
            out = subprocess.run(pre + [sys.executable, "-c", CHILD, str(a.budget)], env=dict(env, REFQUANT_AMX_OVERLAP=mode),
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                if line.startswith("R "):
                    _, t, shape, us, path = line.split()
                    times[(t, shape, mode)].append(float(us))
                    paths[(t, shape)] = path
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr, flush=True)
    print(f"{'threads':7s} {'shape':16s} {'mode 0 us':>10s} {'mode 1 us':>10s} {'mode 2 us':>10s}  1/0    2/0   path")
    for (t, shape), path in paths.items():
        m = [statistics.median(times[(t, shape, k)]) for k in "012"]
        print(f"{t[1:]:7s} {shape:16s} {m[0]:10.1f} {m[1]:10.1f} {m[2]:10.1f}  {m[1] / m[0]:.3f}  {m[2] / m[0]:.3f}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
