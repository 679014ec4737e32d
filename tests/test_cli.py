"""The ``refquant`` command's handling of user mistakes: one clear line and exit status 2, no
traceback; and the entry points (``python -m refquant``, a source checkout without kernels)."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import refquant
from refquant.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(argv, capsys):
    rc = main(argv)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return rc, cap.out, cap.err


def test_golden_list_missing_cases_dir(capsys):
    rc, _, err = _run(["golden", "list", "--cases", "/nonexistent/cases"], capsys)
    assert rc == 2 and "refquant golden list: --cases: /nonexistent/cases is not a directory" in err


@pytest.mark.parametrize("cmd", ["explain", "compare", "calibrate"])
def test_a_file_that_is_not_npz_or_npy(tmp_path, capsys, cmd):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"ir_version: 7 -- not numpy data")
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for path, why in ((bad, "is not an .npz"), (obj, "holds object arrays")):
        argv = {"explain": ["explain", "QuantizeLinear", "--inputs", str(path)],
                "compare": ["compare", str(tmp_path / "m.onnx"), "--inputs", str(path), "--observed", str(path)],
                "calibrate": ["calibrate", str(path)]}[cmd]
        rc, _, err = _run(argv, capsys)
        assert rc == 2, err
        if cmd == "compare" and path == obj:      # an .npy where an .npz is needed
            assert "expected an .npz archive" in err
        else:
            assert why in err and str(path) in err
        assert "allow_pickle" not in err


def test_compare_rejects_a_negative_tolerance(capsys):
    with pytest.raises(SystemExit) as e:
        main(["compare", "m.onnx", "--inputs", "x.npz", "--observed", "y.npz", "--tolerance", "-1"])
    assert e.value.code == 2
    assert "--tolerance: expected a finite number >= 0, got '-1'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="tolerance: expected a finite number >= 0"):
        refquant.compare_model("m.onnx", {}, observed={}, tolerance=-1)


def test_explain_bad_attributes_json(tmp_path, capsys):
    p = tmp_path / "x.npz"
    np.savez(p, x=np.ones(3, np.float32), y_scale=np.float32(1), y_zero_point=np.int8(0),
             observed=np.ones(3, np.int8))
    rc, _, err = _run(["explain", "QuantizeLinear", "--inputs", str(p), "--attributes", "{axis"], capsys)
    assert rc == 2 and "--attributes: not valid JSON" in err


def test_missing_optional_package_names_it():
    code = ("import sys; sys.modules['onnx'] = None; sys.modules['onnxruntime'] = None\n"
            "from refquant.cli import main\n"
            "sys.exit(main(['lint', 'model.onnx']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert "refquant lint: needs the Python package 'onnx'" in r.stderr and "pip install" in r.stderr
    assert "Traceback" not in r.stderr


def test_explain_observed_codes_saved_as_floats():
    x = np.linspace(-3, 3, 20).astype(np.float32)
    inputs = {"x": x, "y_scale": np.float32(0.1), "y_zero_point": np.int8(0)}
    y = refquant.quantize_linear(x, np.float32(0.1), np.int8(0))
    assert "onnx" in refquant.explain("QuantizeLinear", inputs, y.astype(np.float32)).matches
    with pytest.raises(ValueError, match="non-integer value -29.5 at flat index 0"):
        refquant.explain("QuantizeLinear", inputs, y.astype(np.float32) + np.float32(0.5))


def test_python_dash_m_refquant():
    r = subprocess.run([sys.executable, "-m", "refquant", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("refquant ")


def test_unbuilt_source_checkout_warns(tmp_path):
    """Python started in a checkout whose kernels are not built imports the source folder: it
    must say so rather than run the reference silently."""
    shutil.copytree(ROOT / "refquant", tmp_path / "refquant",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    (tmp_path / "setup.py").write_text("# a checkout\n")
    env = {k: v for k, v in os.environ.items() if k != "REFQUANT_DISABLE_FAST"}
    r = subprocess.run([sys.executable, "-c", "import refquant"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "RuntimeWarning" in r.stderr and "C kernels are not built" in r.stderr
    assert "pip install -e ." in r.stderr
    env["REFQUANT_DISABLE_FAST"] = "1"
    r = subprocess.run([sys.executable, "-c", "import refquant"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0 and "RuntimeWarning" not in r.stderr
