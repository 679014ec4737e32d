"""The public names and signatures of ../shared/CONTRACT.md, as help() and inspect show them.

``refquant.<op>`` dispatches with ``(*args, **kwargs)`` for speed; it must still present the
reference's signature and documentation (with its formula), so that a user's ``help()`` and
tools that read signatures see the contract.
"""
from __future__ import annotations

import inspect

import pytest

import refquant

# CONTRACT.md's parameter lists (names, order, kinds, defaults): refquant.<op> and
# refquant.reference.<op> both present these; extra keywords may follow.
CONTRACT = {
    "quantize_linear": "(x, y_scale, y_zero_point=None, *, axis=1, block_size=0, output_dtype=None, "
                       "saturate=1, precision=None, profile='onnx', opset=None",
    "dequantize_linear": "(x, x_scale, x_zero_point=None, *, axis=1, block_size=0, output_dtype=None, "
                         "profile='onnx', opset=None",
    "dynamic_quantize_linear": "(x, *, profile='onnx', opset=None",
    "matmul_integer": "(A, B, a_zero_point=None, b_zero_point=None, *, profile='onnx', opset=None",
    "qlinear_matmul": "(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point, *, "
                      "profile='onnx', opset=None",
    "conv_integer": "(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad='NOTSET', dilations=None, "
                    "group=1, kernel_shape=None, pads=None, strides=None, profile='onnx', opset=None",
    "qlinear_conv": "(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B=None, *, "
                    "auto_pad='NOTSET', dilations=None, group=1, kernel_shape=None, pads=None, strides=None, "
                    "profile='onnx', opset=None",
    "qgemm": "(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C=None, y_scale=None, y_zero_point=None, *, "
             "alpha=1.0, transA=0, transB=0, profile='onnx', opset=None",
    "requantize": "(acc, multiplier, y_zero_point, *, output_dtype, bias=None, profile='onnx'",
}
# a formula fragment each docstring must show
FORMULA = {
    "quantize_linear": "round(x / y_scale) + y_zero_point",
    "dequantize_linear": "(x - x_zero_point) * x_scale",
    "dynamic_quantize_linear": "y_scale",
    "matmul_integer": "(A - a_zero_point) * (B - b_zero_point)",
    "qlinear_matmul": "a_scale*b_scale/y_scale",
    "conv_integer": "conv(x - x_zero_point, w - w_zero_point)",
    "qlinear_conv": "x_scale*w_scale[m]/y_scale",
    "qgemm": "alpha * A' B' + C",
    "requantize": "(acc + bias) * M",
}


@pytest.mark.parametrize("where", ["refquant", "refquant.reference"])
@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_signature_and_formula(where, name):
    fn = getattr(refquant if where == "refquant" else refquant.reference, name)
    sig = str(inspect.signature(fn))
    assert sig.startswith(CONTRACT[name]), f"{where}.{name}{sig}"
    doc = inspect.getdoc(fn) or ""
    assert FORMULA[name] in doc, f"{where}.{name}: no formula in its docstring"
    if where == "refquant":
        assert "refquant.last_path()" in doc and "REFQUANT_DISABLE_FAST" in doc


@pytest.mark.parametrize("name", ["quantize_linear", "dequantize_linear"])
def test_out_keyword_shown(name):
    params = inspect.signature(getattr(refquant, name)).parameters
    assert params["out"].kind is inspect.Parameter.KEYWORD_ONLY and params["out"].default is None


def test_other_contract_names():
    assert str(inspect.signature(refquant.pack_weights)) == "(B)"
    assert "PackedWeights" in inspect.getdoc(refquant.pack_weights)
    for name in ("pack", "unpack", "show_config", "profiles", "Profile", "explain", "run_model",
                 "compute_scale_zero_point", "calibrate"):
        assert callable(getattr(refquant, name)), name
    assert str(inspect.signature(refquant.compute_scale_zero_point)).startswith(
        "(rmin, rmax, *, dtype='int8', symmetric=False, reduce_range=False, tool='onnxruntime'")
    assert str(inspect.signature(refquant.run_model)).startswith("(model, inputs, *, profile='onnx', fuse=None")
