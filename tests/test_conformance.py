"""Golden cases and the conformance report.

The bundled golden/ cases hold outputs recorded from real engines; every one of them must be
reproduced bit for bit by refquant's profile for that engine (that is what the main job,
``refquant conformance``, checks).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import ml_dtypes
import pytest

from refquant import golden
from refquant.cli import main
from refquant.conformance import run_conformance, check_case, format_report
from refquant._oprun import diff_steps, run_reference


def test_case_roundtrip_all_dtypes(tmp_path):
    arrays = {
        "x": np.arange(6, dtype=np.float32).reshape(2, 3),
        "y_scale": np.float32(0.5),
        "y_zero_point": np.array([1, -2], ml_dtypes.int4),
    }
    outs = {"e1": np.array([1.5, np.nan], ml_dtypes.float8_e4m3fn),
            "e2": (np.array([1, 2], np.uint8), np.array(0.25, np.float32), np.uint8(3)),
            "e3": np.array([1, 2], ml_dtypes.bfloat16)}
    c = golden.Case("c", "QuantizeLinear", arrays, {"axis": 0}, opset=23, tags=("t",),
                    outputs=outs, output_meta={"e1": {"version": "1"}})
    p = tmp_path / "c.npz"
    golden.save_case(p, c)
    d = golden.load_case(p)
    assert d.op == "QuantizeLinear" and d.opset == 23 and d.attributes == {"axis": 0}
    for k, v in arrays.items():
        assert d.inputs[k].dtype == np.asarray(v).dtype
        np.testing.assert_array_equal(d.inputs[k].reshape(-1).view(np.uint8),
                                      np.asarray(v).reshape(-1).view(np.uint8))
    assert d.outputs["e1"].dtype == np.dtype(ml_dtypes.float8_e4m3fn)
    assert isinstance(d.outputs["e2"], tuple) and len(d.outputs["e2"]) == 3
    assert d.outputs["e3"].dtype == np.dtype(ml_dtypes.bfloat16)


def test_standard_cases_run_on_the_reference():
    cases = golden.standard_cases()
    assert len(cases) >= 50
    ops = {c.op for c in cases}
    assert ops == {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
                   "QLinearMatMul", "ConvInteger", "QLinearConv", "QGemm"}
    for c in cases:
        run_reference(c.op, c.inputs, c.attributes, opset=c.opset)


def test_diff_steps():
    a = np.array([1, 2, 3], np.int8)
    b = np.array([1, 4, 2], np.int8)
    np.testing.assert_array_equal(diff_steps("QuantizeLinear", a, b), [0, 2, 1])
    f = np.array([1.0, 1.5, np.nan], ml_dtypes.float8_e4m3fn)
    g = np.array([1.125, 1.5, np.nan], ml_dtypes.float8_e4m3fn)
    np.testing.assert_array_equal(diff_steps("QuantizeLinear", f, g), [1, 0, 0])
    dq = diff_steps("DequantizeLinear", np.array([0.5, 1.0], np.float32),
                    np.array([0.75, 1.0], np.float32), {"x_scale": np.float32(0.25)}, {})
    np.testing.assert_array_equal(dq, [1, 0])


def test_check_case_reports_deviation_in_steps():
    c = golden.Case("t", "QuantizeLinear", {"x": np.array([0.5, 1.5, 2.5], np.float32),
                                            "y_scale": np.float32(1), "y_zero_point": np.int8(0)})
    half_away = np.array([1, 2, 3], np.int8)
    r = check_case(c, "some-engine", half_away, explain=False)
    assert r["spec_match"] is False and r["n_diff"] == 2 and r["max_steps"] == 1
    assert r["profile_match"] is None


onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")


def test_record_and_conformance_live(tmp_path):
    d = tmp_path / "cases"
    golden.generate(d)
    ok, na, errors = golden.record("onnx-reference", d, op="QLinearMatMul")
    assert ok >= 3
    rep = run_conformance(d, op="QLinearMatMul", explain=False)
    assert rep["n_cases"] >= 3
    # onnx.reference adds the zero point before rounding: a named deviation on the tie cases
    dev = {r["case"] for r in rep["results"] if not r["spec_match"]}
    assert "qlmm_u8s8_ties" in dev
    # ...and refquant's onnx-reference profile reproduces it exactly
    assert all(r["profile_match"] for r in rep["results"])
    live = run_conformance(d, op="QLinearMatMul", engines=["onnxruntime"], live=True,
                           explain=False)
    assert live["n_results"] >= 3 and all(r["spec_match"] for r in live["results"])


def test_bundled_golden_cases_are_reproduced_by_their_profiles():
    rep = run_conformance(explain=False)
    assert rep["n_cases"] >= 50
    assert len(rep["engines"]) >= 2
    bad = [(r["engine"], r["case"], r.get("profile_n_diff"), r.get("error"))
           for r in rep["results"] if r.get("profile_match") is False or "status" in r]
    assert not bad, bad
    # the verdict and its counts agree with the results
    assert rep["verdict"] == "pass" and rep["n_not_reproduced"] == 0
    compared = [r for r in rep["results"] if "status" not in r]
    assert rep["n_reproduced"] + rep["n_not_modelled"] == len(compared) == rep["n_compared"]
    assert rep["n_spec_match"] == sum(r["spec_match"] for r in compared) < len(compared)
    text = format_report(rep)
    assert text.splitlines()[-1].startswith(f"verdict: PASS: refquant reproduces all {rep['n_reproduced']} ")
    assert "own profile: outputs that refquant's profile of that engine reproduces" in text


def test_verdict_fails_on_a_mis_model_and_under_strict(tmp_path, capsys):
    out = tmp_path / "rep.json"
    assert main(["conformance", "--quiet", "--no-explain", "--strict", "--json", str(out)]) == 1
    rep = json.loads(out.read_text())
    assert rep["verdict"] == "fail" and rep["n_not_reproduced"] == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("verdict: FAIL (--strict): ")
    rep = run_conformance(op="MatMulInteger", explain=False)
    r0 = next(r for r in rep["results"] if r.get("profile_match"))
    r0["profile_match"], r0["profile_n_diff"], r0["profile_max_steps"] = False, 3, 1.0
    rep["verdict"], rep["n_not_reproduced"] = "fail", 1
    text = format_report(rep, quiet=True)
    assert "NOT REPRODUCED by refquant's own profile (1)" in text
    assert text.splitlines()[-1].startswith(f"verdict: FAIL: 1 of {rep['n_compared']} engine outputs")


def test_cli_conformance_json(tmp_path):
    out = tmp_path / "rep.json"
    html = tmp_path / "rep.html"
    r = subprocess.run([sys.executable, "-m", "refquant.cli", "conformance", "--quiet",
                        "--op", "MatMulInteger", "--json", str(out), "--html", str(html)],
                       capture_output=True, text=True)
    assert r.returncode in (0, 1), r.stderr
    rep = json.loads(out.read_text())
    assert rep["n_cases"] >= 5 and rep["results"]
    assert "<table" in html.read_text()
    assert "MatMulInteger" in r.stdout


def test_cli_help():
    r = subprocess.run([sys.executable, "-m", "refquant.cli", "--help"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "conformance" in r.stdout
    r = subprocess.run([sys.executable, "-m", "refquant.cli", "golden", "record", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "--engine" in r.stdout


def test_engine_group_names():
    assert golden.expand_engines(["tflite", "onnxruntime", "tflite-reference"]) == [
        "tflite-reference", "tflite-optimized", "tflite-xnnpack", "onnxruntime"]
    assert "pytorch-fbgemm" in golden.expand_engines(["torch"])


def _conf(argv):
    from refquant.cli import main
    return main(["conformance", "--quiet", "--no-explain", *argv])


def test_cli_unknown_or_empty_engine_and_op_case(tmp_path, capsys):
    """A misspelt engine, or one with nothing recorded, must not pass a CI gate vacuously."""
    assert _conf(["--engine", "onxruntime"]) == 2
    err = capsys.readouterr().err
    assert "unknown engine 'onxruntime'" in err and "onnxruntime" in err
    d = tmp_path / "cases"
    golden.generate(d)                                  # no recorded outputs at all
    assert _conf(["--cases", str(d), "--engine", "tensorrt", "--op", "QuantizeLinear"]) == 2
    err = capsys.readouterr().err
    assert "nothing compared" in err and "golden record --engine tensorrt" in err
    assert _conf(["--op", "QLinearConvv"]) == 2
    assert "valid: " in capsys.readouterr().err
    rep = run_conformance(op="qlinearconv", explain=False)
    assert rep["n_cases"] >= 1 and {r["op"] for r in rep["results"]} == {"QLinearConv"}
    with pytest.raises(ValueError, match="unknown engine"):
        run_conformance(engines=["onxruntime"], explain=False)


def test_conformance_json_is_strict(tmp_path):
    """max_steps of inf is written as "inf": no Infinity token (JSON.parse rejects it)."""
    from refquant import _json
    assert _json.dumps({"a": float("inf"), "b": [np.float32("nan"), -np.inf], "c": np.int8(3)}) == \
        '{"a": "inf", "b": ["nan", "-inf"], "c": 3}'
    d = tmp_path / "cases"
    golden.generate(d)
    c = golden.load_cases(d, op="MatMulInteger")[0]
    c.outputs["onnxruntime"] = np.zeros((1, 1), np.int32)          # wrong shape: inf steps
    golden.save_case(c.path, c)
    out = tmp_path / "r.json"
    assert _conf(["--cases", str(d), "--op", "MatMulInteger", "--json", str(out)]) == 1
    text = out.read_text()
    assert "Infinity" not in text
    def bad(k):
        raise ValueError(k)
    rep = json.loads(text, parse_constant=bad)
    assert any(r.get("max_steps") == "inf" for r in rep["results"])


def test_profile_that_cannot_run_a_case_is_not_a_mis_model(capsys):
    """--profile tensorrt on ConvInteger (which it does not model): 'not applicable', not
    'NOT REPRODUCED'; nothing compared at all -> exit 2; partly applicable -> exit 0."""
    rep = run_conformance(op="ConvInteger", profile="tensorrt", engines=["onnxruntime"], explain=False)
    assert rep["n_results"] and rep["n_compared"] == 0
    assert all(r["status"] == "not-applicable" for r in rep["results"])
    assert _conf(["--profile", "tensorrt", "--engine", "onnxruntime", "--op", "ConvInteger"]) == 2
    cap = capsys.readouterr()
    assert "NOT REPRODUCED" not in cap.out and "nothing compared" in cap.err
    assert _conf(["--profile", "tensorrt", "--engine", "onnxruntime", "--op", "QLinearConv"]) == 0
    assert "not applicable to profile tensorrt" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::refquant.golden.GoldenCaseWarning")
def test_stray_or_corrupt_npz_in_cases_dir_is_skipped_with_a_warning(tmp_path, capsys):
    d = tmp_path / "cases"
    golden.generate(d)
    n = len(golden.load_cases(d))
    np.savez(d / "QuantizeLinear" / "my_inputs.npz", x=np.ones(3, np.float32))
    (d / "QuantizeLinear" / "broken.npz").write_text("junk")
    with pytest.raises(golden.CaseFormatError, match="my_inputs.npz"):
        golden.load_case(d / "QuantizeLinear" / "my_inputs.npz")
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(golden.load_cases(d)) == n
    assert sorted(str(w.message).split("/")[-1].split(":")[0] for w in caught
                  if w.category is golden.GoldenCaseWarning) == ["broken.npz", "my_inputs.npz"]
    skipped = []
    assert len(golden.load_cases(d, skipped=skipped)) == n and len(skipped) == 2
    assert [getattr(e, "corrupt", None) for _, e in sorted(skipped)] == [True, False]
    golden.record("onnx-reference", d, op="QLinearMatMul")
    capsys.readouterr()
    # a damaged case file: the report is incomplete -> exit 2 (verdict "error"); a stray .npz
    # that is no golden case is a warning only
    assert _conf(["--cases", str(d), "--op", "QLinearMatMul"]) == 2
    err = capsys.readouterr().err
    assert "my_inputs.npz" in err and "broken.npz" in err and "Traceback" not in err
    assert "could not be read" in err and "not an .npz file" in err
    assert run_conformance(d, op="QLinearMatMul")["verdict"] == "error"
    from refquant.cli import main
    assert main(["golden", "list", "--cases", str(d)]) == 2
    assert "broken.npz" in capsys.readouterr().err
    (d / "QuantizeLinear" / "broken.npz").unlink()
    assert _conf(["--cases", str(d), "--op", "QLinearMatMul"]) == 0
    assert "warning: " in capsys.readouterr().err
    assert main(["golden", "list", "--cases", str(d)]) == 0
    # a truncated case file is damaged too
    f = sorted((d / "QLinearMatMul").glob("*.npz"))[0]
    f.write_bytes(f.read_bytes()[:200])
    assert _conf(["--cases", str(d), "--op", "QLinearMatMul"]) == 2
    assert f.name in capsys.readouterr().err


def test_unwritable_report_paths_exit_2_before_the_run(tmp_path, capsys):
    from refquant._cliutil import check_writable
    check_writable(None, "--json")
    check_writable("-", "--json")
    check_writable(tmp_path / "ok.json", "--json")
    with pytest.raises(ValueError, match="is a directory"):
        check_writable(tmp_path, "--html")
    for opt in ("--json", "--html"):
        assert _conf(["--op", "QGemm", opt, str(tmp_path / "no_dir" / "r.out")]) == 2
        err = capsys.readouterr().err
        assert f"{opt}: cannot write" in err and "does not exist" in err


def test_bad_cases_engine_errors_and_api_gates(tmp_path, capsys):
    """A case the reference refuses is bad input (exit 2, verdict "error"), not a mis-model; an
    engine error recorded in the case file is reported (exit 1) like a live one; the Python API
    refuses an empty directory, takes one engine name as a string, and does not pass a run that
    compared nothing; --json - writes the JSON to stdout."""
    d = tmp_path / "cases"
    golden.generate(d)
    golden.record("onnx-reference", d, op="QLinearMatMul")
    capsys.readouterr()
    files = sorted((d / "QLinearMatMul").glob("*.npz"))
    c = golden.load_case(files[0])
    c.opset = 3                                       # QLinearMatMul has no opset 3
    golden.save_case(files[0], c)
    assert _conf(["--cases", str(d), "--op", "QLinearMatMul"]) == 2
    cap = capsys.readouterr()
    assert "BAD CASES" in cap.out and "NOT REPRODUCED" not in cap.out and "refuses 1 case" in cap.err
    assert run_conformance(d, op="QLinearMatMul")["verdict"] == "error"
    c.opset = 21
    c.outputs.pop("onnx-reference")
    c.output_meta["onnx-reference"] = {"version": "x", "note": "error: RuntimeError: it broke\nsecond line"}
    golden.save_case(files[0], c)
    assert _conf(["--cases", str(d), "--op", "QLinearMatMul"]) == 1
    out = capsys.readouterr().out
    assert "engine error when recorded: RuntimeError: it broke" in out and "second line" not in out
    rep = run_conformance(d, op="QLinearMatMul", engines="onnx-reference")
    assert rep["verdict"] == "fail" and any(r.get("status") == "engine-error" for r in rep["results"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no cases found"):
        run_conformance(tmp_path / "nothing")
    assert run_conformance(d, op="QLinearMatMul", engines=["onnxruntime"])["verdict"] == "error"
    assert _conf(["--cases", str(d), "--op", "QLinearMatMul", "--json", "-"]) == 1
    cap = capsys.readouterr()
    assert json.loads(cap.out)["verdict"] == "fail" and "verdict: FAIL" in cap.err


def test_live_tensorrt_without_its_package_is_one_line(capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    assert _conf(["--live", "--engine", "tensorrt", "--op", "QuantizeLinear"]) == 2
    err = capsys.readouterr().err
    assert "tensorrt package is not installed" in err and len(err.strip().splitlines()) == 1


def test_record_checks_engine_names_and_cases_first(tmp_path, capsys):
    d = tmp_path / "cases"
    golden.generate(d)
    assert main(["golden", "record", "--engine", "onnx-reference", "--engine", "bogus", "--cases", str(d),
                 "--quiet"]) == 2
    assert "unknown engine 'bogus'" in capsys.readouterr().err
    assert all(not golden.load_case(f).outputs for f in d.rglob("*.npz"))     # nothing recorded
    (tmp_path / "empty").mkdir()
    assert main(["golden", "record", "--engine", "onnx-reference", "--cases", str(tmp_path / "empty")]) == 2
    assert "no cases found" in capsys.readouterr().err
    assert main(["golden", "list", "--cases", str(tmp_path / "empty")]) == 2


def test_exit_status_and_verdict_agree_on_edge_cases(tmp_path, capsys):
    """Every result an engine error: exit 1 and verdict "fail" (not "error"); a damaged file
    beside an engine error: golden record exits 2; load_cases' skip reasons are strings (JSON
    serialisable) carrying ``corrupt``; a folder whose only case files are damaged names them."""
    d = tmp_path / "c1"
    golden.generate(d)
    f = sorted((d / "QLinearMatMul").glob("*.npz"))[0]
    for g in d.rglob("*.npz"):
        if g != f:
            g.unlink()
    c = golden.load_case(f)
    c.output_meta["onnxruntime"] = {"version": "x", "note": "error: RuntimeError: boom"}
    golden.save_case(f, c)
    assert _conf(["--cases", str(d), "--json", "-"]) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "fail"
    assert run_conformance(d)["verdict"] == "fail"
    (d / "QLinearMatMul" / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    assert main(["golden", "record", "--engine", "onnx-reference", "--cases", str(d), "--quiet"]) == 2
    assert "could not be read" in capsys.readouterr().err
    skipped = []
    golden.load_cases(d, skipped=skipped)
    assert json.dumps(skipped) and skipped[0][1].corrupt and isinstance(skipped[0][1], str)
    f.unlink()
    with pytest.raises(ValueError, match="1 file could not be read: bad.npz"):
        run_conformance(d)
    assert _conf(["--cases", str(d)]) == 2
    assert "bad.npz" in capsys.readouterr().err
