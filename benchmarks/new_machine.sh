#!/usr/bin/env bash
# A new CPU in one run: build in place, record the CPU, time the 1-thread benchmarks on a quiet
# machine, then check correctness at every kernel level this CPU has (the test suite, the slow
# GEMM / conv sweeps, the differential fuzzer).  Everything lands in $OUT (default
# ./new_machine_out); the summary lines go to stdout.  Used on the lent GPU hosts' Xeons (AMX),
# where a session has minutes: about 5 minutes on 16 cores, most of it the build and the suite.
#
#   bash benchmarks/new_machine.sh                      # python3 on PATH must have numpy, Cython,
#   OUT=/tmp/x BUDGET=0.3 FUZZ=60 bash benchmarks/new_machine.sh    # onnxruntime, onnx, pytest
#
# Knobs: BUDGET (seconds per peer measurement, 0.3), FUZZ (fuzzer seconds, 60), TESTS=0 skips
# the suite, WORKERS (pytest-xdist workers, from nproc), BUILD=0 skips the build.  On the device
# tool, whose $OUT returns at most 8 files: OUT=$OUT/w bash benchmarks/new_machine.sh; then
# tar czf $OUT/all.tgz -C $OUT w && rm -rf $OUT/w.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/new_machine_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
step() { echo "[+$(( $(date +%s) - T0 ))s] $*"; }
B=${BUDGET:-0.3}
NP=$(nproc)
W=${WORKERS:-$(( NP > 2 ? NP - 2 : 1 ))}
XD=""; python3 -c "import xdist" 2>/dev/null && XD="-n $W"     # (pytest-xdist where installed)

( lscpu 2>/dev/null; grep -m1 flags /proc/cpuinfo; echo "nproc $NP"
  python3 -c "import numpy, onnxruntime, onnx; print('numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__, 'onnx', onnx.__version__)"
  python3 -c "import torch; print('torch', torch.__version__)" ) > "$OUT/cpu.txt" 2>&1
grep -E "Model name|^Model:|L2 cache|L3 cache|numpy|torch" "$OUT/cpu.txt"
if [ "${BUILD:-1}" != 0 ]; then
    REFQUANT_BUILD_JOBS=$NP python3 setup.py build_ext --inplace -q > "$OUT/build.log" 2>&1 \
        || { tail -30 "$OUT/build.log"; exit 1; }
    step built
fi
python3 -c "import refquant; refquant.show_config()" > "$OUT/config.txt" 2>&1 || { cat "$OUT/config.txt"; exit 1; }
grep -E "supported ISAs|ISA level|MatMulInteger|QLinearConv " "$OUT/config.txt"

# 1 thread, nothing else running: the issue's goal shapes and layers against the peers
timeout 300 python3 benchmarks/bench_gemm.py --threads 1 --budget "$B" --no-torch --json "$OUT/gemm.json" > "$OUT/gemm.txt" 2>&1
step "bench_gemm rc=$?"
REFQUANT_DISABLE_ISA=amx,avx512vnni,avx512,avxvnni timeout 120 python3 benchmarks/bench_gemm.py --threads 1 --budget "$B" \
    --no-torch --no-numpy --shapes 1024x1024x1024 --json "$OUT/gemm_avx2.json" > "$OUT/gemm_avx2.txt" 2>&1
step "bench_gemm, AVX2 alone, rc=$?"
timeout 300 python3 benchmarks/bench_conv.py --threads 1 --budget "$B" --layers all --json "$OUT/conv.json" > "$OUT/conv.txt" 2>&1
step "bench_conv rc=$?"
timeout 120 python3 benchmarks/bench_quant.py --threads 1 --json "$OUT/quant.json" > "$OUT/quant.txt" 2>&1
step "bench_quant rc=$?"
# AMX only (skips itself elsewhere): the plain-B driver's packing overlap modes, fresh processes
timeout 200 python3 benchmarks/bench_amx_overlap.py --rounds 4 > "$OUT/amx_overlap.txt" 2>&1
step "bench_amx_overlap rc=$?"
grep -E "^[12] |nothing" "$OUT/amx_overlap.txt"
grep -E "^==|alternating" "$OUT/gemm.txt"
grep -E "^==|rq QLinearConv  " "$OUT/conv.txt"
grep -E "ratio" "$OUT/quant.txt"

# correctness at every level here
if [ "${TESTS:-1}" != 0 ]; then
    OMP_NUM_THREADS=2 timeout 900 python3 -m pytest -q -p no:cacheprovider $XD tests > "$OUT/tests.txt" 2>&1
    step "tests rc=$?"; tail -3 "$OUT/tests.txt"
    OMP_NUM_THREADS=2 timeout 600 python3 -m pytest -q -p no:cacheprovider $XD -m slow tests/test_gemm_kernels.py \
        tests/test_conv_kernels.py > "$OUT/slow.txt" 2>&1
    step "slow sweeps rc=$?"; tail -1 "$OUT/slow.txt"
fi
timeout $(( ${FUZZ:-60} + 120 )) python3 tools/fuzz_kernels.py --seconds "${FUZZ:-60}" --threads 1 2 4 --seed "$T0" \
    > "$OUT/fuzz.txt" 2>&1
step "fuzz rc=$?"; grep -E "^seed|MISMATCH|HANG" "$OUT/fuzz.txt" | head -20
