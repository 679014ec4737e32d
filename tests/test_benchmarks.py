"""The benchmark scripts still run: each on tiny problems with a tiny time budget (their numbers
mean nothing here), exiting 0, writing JSON with the fields the docs quote, and finding
refquant's results bit-identical to ORT's where they compare them.  The real measurements are
``python benchmarks/run_all.py`` (docs/performance.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("refquant._gemm", reason="compiled kernels not built")


def _run(tmp_path, script, *args):
    out = tmp_path / (script + ".json")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", script + ".py"), *args,
                        "--json", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r.stdout, json.loads(out.read_text())


def test_bench_gemm_smoke(tmp_path):
    pytest.importorskip("onnxruntime")
    out, js = _run(tmp_path, "bench_gemm", "--shapes", "16x48x64", "--threads", "1", "--budget", "0.02",
                   "--no-torch", "--no-numpy")
    res = js["results"]["16x48x64 t1"]
    assert res["rq u8s8"]["gops"] > 0 and "ratio_vs_ort_u8s8" in res["rq u8s8"]
    assert res["ort MatMulInteger u8s8"]["bitexact_vs_ort"] is True
    assert res["ort QLinearMatMul u8s8"]["bitexact_vs_ort"] is True
    assert set(res["alternating"]) == {"rq_vs_ort", "rq_packed_vs_ort", "rq_q_vs_ort_q"}
    assert "alternating (ratio)" in out


def test_bench_conv_smoke(tmp_path):
    pytest.importorskip("onnxruntime")
    _, js = _run(tmp_path, "bench_conv", "--layers", "dw", "--threads", "1", "--budget", "0.01", "--no-torch")
    res = next(iter(js["results"].values()))
    assert res["rq QLinearConv"]["bitexact_vs_ort"] is True
    assert res["rq QLinearConv"]["gops"] > 0


def test_bench_conv_more_layers_smoke(tmp_path):
    """The extra layers: per-channel weight scales (ORT and refquant), stride 2, 3 channels."""
    pytest.importorskip("onnxruntime")
    _, js = _run(tmp_path, "bench_conv", "--layers", "3x3pc", "3x3s2", "stem3", "--threads", "1", "--budget", "0.01",
                 "--no-torch")
    for key in ("3x3pc t1", "3x3s2 t1", "stem3 t1"):
        assert js["results"][key]["rq QLinearConv"]["bitexact_vs_ort"] is True, key


def test_bench_latency_smoke(tmp_path):
    pytest.importorskip("onnxruntime")
    out, js = _run(tmp_path, "bench_latency", "--rounds", "1", "--calls", "3")
    cases = {r["case"] for r in js["latency"]}
    assert any(c.startswith("QuantizeLinear") for c in cases) and any(c.startswith("QLinearConv") for c in cases)
    assert all(r["us"]["ort"] > 0 and r["ort_over_rq"]["np"] > 0 for r in js["latency"])
    assert "ort/rq" in out


def test_bench_quant_smoke(tmp_path):
    pytest.importorskip("onnxruntime")
    _, js = _run(tmp_path, "bench_quant", "--n", "65536", "--threads", "1", "--reps", "1", "--float8")
    row = js[0] if isinstance(js, list) else js["results"][0]
    assert row["ort_quantize_bitexact"] is True and row["ort_dequantize_bitexact"] is True
    assert row["ratio_rq_q_pre_vs_ort_q_pre"] > 0
    f8 = js["float8"][0]
    assert f8["ort_bitexact"] is True and f8["ort_dq_bitexact"] is True and f8["rq_q_s"] > 0
    lb = js["lowfloat_blocked"]
    assert {r["type"] for r in lb} == {"float8_e4m3fn", "float4_e2m1fn"}
    assert all(r["kernel_quantize"].startswith("rq_quantize_f32") and r["rq_d_s"] > 0 for r in lb)


def test_bench_amx_overlap_smoke():
    """The AMX packing-overlap A/B: on a CPU without AMX it says so and exits 0; with AMX, one
    short round of the three modes and the table."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_amx_overlap.py"), "--rounds", "1",
                        "--budget", "0.01"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "nothing to compare" in r.stdout or "mode 2 us" in r.stdout, r.stdout
