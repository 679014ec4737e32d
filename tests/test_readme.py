"""The README's examples run exactly as written, and print what their comments say."""
from __future__ import annotations

import contextlib
import io
import pathlib
import re

import numpy as np
import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_examples_run_and_print_their_comments():
    blocks = _python_blocks()
    assert blocks, "README has no python example"
    namespace = {"__name__": "__readme__"}      # one session: later blocks build on earlier ones
    for code in blocks:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, str(README), "exec"), namespace)
        printed = [ln.strip() for ln in buf.getvalue().splitlines()]
        expected = [m.group(1).strip() for m in re.finditer(r"print\(.*\)\s+#\s*(.*)$", code, re.M)]
        assert len(printed) >= len(expected)
        for exp, got in zip(expected, printed):
            want = exp.rsplit(": ", 1)[-1]        # "<prose>: <output>" or just "<output>"
            assert want in got, (exp, got)


def test_calibration_doc_example_runs_and_prints_its_comments():
    doc = README.parent / "docs" / "calibration.md"
    code = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)[0]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, str(doc), "exec"), {"__name__": "__doc__"})
    out = buf.getvalue()
    for want in re.findall(r"^# (\(array\(.*\)\))", code, re.M):   # the commented results
        assert want in out, want
    assert out.count("zero point") >= 10


def test_conformance_doc_own_engine_example_runs(tmp_path, monkeypatch, capsys):
    """docs/conformance.md's "Your own engine" snippet, with the spec's reference as the engine:
    the recorded outputs then pass `refquant conformance --engine my-npu --strict`."""
    doc = README.parent / "docs" / "conformance.md"
    code = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)[0]
    from refquant._oprun import run_reference
    monkeypatch.chdir(tmp_path)

    def my_engine(op, inputs, attributes):
        return run_reference(op, inputs, attributes, profile="onnx")

    exec(compile(code, str(doc), "exec"), {"__name__": "__doc__", "my_engine": my_engine})
    from refquant.cli import main
    assert main(["conformance", "--engine", "my-npu", "--strict", "--cases", "my_cases/", "--quiet",
                 "--no-explain"]) == 0
    assert "verdict: PASS" in capsys.readouterr().out


def test_examples_module_writes_the_debugging_doc_files(tmp_path, capsys):
    """`python -m refquant.examples DIR` writes docs/debugging.md's model.onnx and inputs.npz, and
    the doc's run_model snippet runs on them."""
    pytest.importorskip("onnx")
    from refquant import examples
    assert examples.main([str(tmp_path)]) == 0
    assert "model.onnx" in capsys.readouterr().out
    doc = README.parent / "docs" / "debugging.md"
    code = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)[0]
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        ns = {"__name__": "__doc__"}
        exec(compile(code, str(doc), "exec"), ns)
    finally:
        os.chdir(cwd)
    assert ns["vals"]["yq"].dtype == np.uint8 and ns["vals"]["yq"].shape == (1, 16, 16, 16)
