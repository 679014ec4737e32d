"""Run every refquant benchmark (quantize/dequantize, GEMM, conv, whichever are present)
and merge their JSON.

    python benchmarks/run_all.py [--threads 1 2] [--json FILE] [--quick]

Each benchmark runs in its own process (its own thread pools), one after the other.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--ort-spin-stop", action="store_true",
                    help="ORT sessions with session.force_spinning_stop=1: ORT's worker threads stop "
                         "polling when a run returns, so at 2+ threads they do not take a core from "
                         "refquant's next call, but ORT's own runs slow down (each wakes its workers); "
                         "sets REFQUANT_BENCH_ORT_SPIN_STOP=1 for every benchmark")
    args = ap.parse_args(argv)
    if args.ort_spin_stop:
        os.environ["REFQUANT_BENCH_ORT_SPIN_STOP"] = "1"
    merged, rc = {}, 0
    benches = [("bench_quant.py", ["--reps", "5" if args.quick else "15", "--float8"]),
               ("bench_gemm.py", ["--budget", "0.2"] if args.quick else []),
               ("bench_conv.py", ["--layers", "all"] + (["--budget", "0.2"] if args.quick else [])),
               ("bench_latency.py", ["--rounds", "5"] if args.quick else [])]
    for script, extra in benches:
        path = os.path.join(HERE, script)
        if not os.path.exists(path):
            print(f"(skipping {script}: not present)")
            continue
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tf:
            out = tf.name
        cmd = [sys.executable, path, "--threads", *map(str, args.threads), "--json", out, *extra]
        print(f"$ {' '.join(cmd)}", flush=True)
        r = subprocess.run(cmd)
        rc |= r.returncode
        try:
            with open(out) as f:
                merged[script[:-3]] = json.load(f)
        except (OSError, ValueError):
            merged[script[:-3]] = {"error": f"exit code {r.returncode}, no JSON"}
        finally:
            if os.path.exists(out):
                os.unlink(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(merged, f, indent=2, default=str)
    return rc


if __name__ == "__main__":
    sys.exit(main())
