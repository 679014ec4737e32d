"""Adapters that run ONE ONNX-style op on a real engine: the live peers refquant's profiles are
verified against, and the recorders a golden-record / conformance command reuses.

    >>> from refquant import engines
    >>> engines.available()                       # {engine name: version} of the importable ones
    >>> engines.run("onnxruntime", "QuantizeLinear",
    ...             {"x": x, "y_scale": np.float32(0.1), "y_zero_point": np.int8(0)}, {})

``run(engine, op, inputs, attributes=None, *, opset=None)`` takes the op's ONNX name, a dict of
its inputs keyed by ONNX input names (absent optional inputs: omit or None) and a dict of ONNX
attributes, and returns the engine's output as a numpy array (a tuple for
DynamicQuantizeLinear: y, y_scale, y_zero_point).  Integer outputs come back as codes (for
``pytorch-fakequant`` the float (q - zp)*s is mapped back to q exactly).

Engine names match the profile that models each engine (``ENGINES[name].profile``):

=================  ======================================================  =====================
engine             what runs                                               ops
=================  ======================================================  =====================
onnxruntime        ORT CPU EP, graph optimizations off, 1 thread           all 8 (QGemm: contrib)
onnx-reference     onnx.reference.ReferenceEvaluator                        all but QGemm
pytorch            torch.quantize_per_tensor/_per_channel, dequantize()     Q, DQ
pytorch-fakequant  torch.fake_quantize_per_tensor/_per_channel_affine       Q
pytorch-fbgemm     torch.ops.quantized.linear/conv2d, engine "fbgemm"       QLinearMatMul, QGemm,
pytorch-x86        ... engine "x86"                                         QLinearConv
pytorch-qnnpack    ... engine "qnnpack"                                     (and Q/DQ as pytorch)
pytorch-onednn     ... engine "onednn"
tflite-reference   LiteRT BUILTIN_REF resolver                              Q, DQ, QLinearMatMul,
tflite-optimized   LiteRT BUILTIN_WITHOUT_DEFAULT_DELEGATES                 QGemm, QLinearConv
tflite-xnnpack     LiteRT default XNNPACK delegate
openvino           OpenVINO CPU plugin, f32 inference precision             Q, DQ (see _openvino)
=================  ======================================================  =====================

``run_reference(op, inputs, attributes, profile=..., opset=...)`` runs refquant's numpy
reference with the same calling convention (the comparison side of every live test).

A missing package raises :class:`EngineUnavailable` (``available()`` leaves it out; tests skip);
an op/input combination the engine or its mapping cannot run raises :class:`EngineUnsupported`.
An opset older than the op raises ValueError("opset: ..."), as the reference does.

0-d and empty inputs (measured with onnxruntime 1.32, onnx 1.23, torch 2.13, LiteRT 2.3,
OpenVINO 2026.4): every adapter returns x's shape for Q/DQ or refuses.  Q/DQ of a 0-d x runs
on every engine (torch and LiteRT on 0-d tensors; a one-element 1-D scale on a 0-d x is
per-tensor on torch).  Empty x runs everywhere except: pytorch-fakequant with zero channels,
tflite-xnnpack (XNNPACK does not take empty tensors), OpenVINO with an empty low-precision
(int4/float8/...) x (it returns shape ()), onnx-reference's DynamicQuantizeLinear.  A sum over
zero terms (K = 0 / no input channels) is refused where the engine gets it wrong: onnxruntime
(uninitialised memory, QLinearMatMul 0), LiteRT FULLY_CONNECTED (unwritten output), torch
fbgemm/x86/onednn (uninitialised output or SIGFPE); torch qnnpack also refuses no output
channels (SIGFPE).
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

import numpy as np

from ._errors import EngineUnavailable, EngineUnsupported
from ._onnx_model import OP_INPUTS, check_inputs
from ._reference import run_reference, resolve_profile

__all__ = ["available", "run", "engines", "ENGINES", "Engine", "EngineUnavailable",
           "EngineUnsupported", "OP_INPUTS", "versions", "run_reference", "resolve_profile"]


@dataclass(frozen=True)
class Engine:
    name: str
    package: str          # import name of the package it needs
    module: str           # adapter module (relative)
    ops: tuple
    profile: str          # the refquant profile modelling it
    description: str

    def importable(self) -> bool:
        try:
            return importlib.util.find_spec(self.package) is not None
        except (ImportError, ValueError):
            return False

    def version(self) -> str:
        return self._mod().version()

    def _mod(self):
        if not self.importable():
            raise EngineUnavailable(f"engine {self.name!r} needs the Python package {self.package!r}, "
                                    "which is not installed")
        try:
            return importlib.import_module(self.module, __name__)
        except ImportError as e:
            raise EngineUnavailable(f"engine {self.name!r}: importing {self.package!r} failed: {e}") from e


_QD = ("QuantizeLinear", "DequantizeLinear")
_LIN = ("QLinearMatMul", "QGemm", "QLinearConv")
ENGINES = {e.name: e for e in [
    Engine("onnxruntime", "onnxruntime", "._ort", tuple(OP_INPUTS), "onnxruntime",
           "ONNX Runtime CPU execution provider (MLAS), ORT_DISABLE_ALL, 1 thread"),
    Engine("onnx-reference", "onnx", "._onnxref", tuple(o for o in OP_INPUTS if o != "QGemm"),
           "onnx-reference", "onnx.reference.ReferenceEvaluator"),
    Engine("pytorch", "torch", "._torch", _QD, "pytorch",
           "torch.quantize_per_tensor / quantize_per_channel / Tensor.dequantize"),
    Engine("pytorch-fakequant", "torch", "._torch", ("QuantizeLinear",), "pytorch-fakequant",
           "torch.fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine (codes)"),
] + [
    Engine(f"pytorch-{q}", "torch", "._torch", _QD + _LIN, f"pytorch-{q}",
           f"torch.ops.quantized.linear / conv2d with torch.backends.quantized.engine = {q!r}")
    for q in ("fbgemm", "x86", "qnnpack", "onednn")
] + [
    Engine(n, "ai_edge_litert", "._tflite", _QD + _LIN, n, f"LiteRT interpreter, {r} op resolver")
    for n, r in (("tflite-reference", "BUILTIN_REF"),
                 ("tflite-optimized", "BUILTIN_WITHOUT_DEFAULT_DELEGATES"),
                 ("tflite-xnnpack", "AUTO (XNNPACK delegate)"))
] + [
    Engine("openvino", "openvino", "._openvino", _QD, "openvino",
           "OpenVINO CPU plugin on the one-node ONNX model, INFERENCE_PRECISION_HINT f32"),
]}


def engines() -> dict:
    """{engine name: description} of every known engine (importable or not)."""
    return {n: e.description for n, e in ENGINES.items()}


def available() -> dict:
    """{engine name: package version} for the engines whose package is importable here."""
    out = {}
    for n, e in ENGINES.items():
        if e.importable():
            try:
                out[n] = e.version()
            except EngineUnavailable:
                continue
    return out


def versions() -> dict:
    """Alias of :func:`available` (engine -> version string)."""
    return available()


def _get(engine):
    if engine not in ENGINES:
        raise ValueError(f"engine: unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return ENGINES[engine]


def _check_axis(op, inputs, attributes):
    """A per-axis / blocked Q/DQ ``axis`` outside [-r, r-1]: the reference's ValueError (engines
    otherwise fail their own way, or torch's adapter would wrap it around silently)."""
    if op not in ("QuantizeLinear", "DequantizeLinear"):
        return
    x = inputs["x"]
    s = inputs.get("y_scale" if op == "QuantizeLinear" else "x_scale")
    if s is None or np.ndim(s) == 0 or x.ndim == 0:
        return
    axis, r = int(attributes.get("axis", 1)), x.ndim
    if not -r <= axis < r:
        raise ValueError(f"axis: {axis} is outside [{-r}, {r - 1}] for an input of rank {r}")


def run(engine: str, op: str, inputs: dict, attributes: dict | None = None, *, opset: int | None = None):
    """Run ``op`` (ONNX name) on ``engine`` and return its output (a tuple for multi-output ops)."""
    e = _get(engine)
    if op not in OP_INPUTS:
        raise ValueError(f"op: unknown op {op!r}; known: {', '.join(OP_INPUTS)}")
    attributes = dict(attributes or {})
    if op not in e.ops:
        raise EngineUnsupported(f"engine {engine!r} does not run {op} (it runs: {', '.join(e.ops)})")
    inputs = check_inputs(op, inputs)
    _check_axis(op, inputs, attributes)
    mod = e._mod()
    if engine in ("onnxruntime", "onnx-reference"):
        return mod.run(op, inputs, attributes, opset)
    if engine == "openvino":
        return mod.run(op, inputs, attributes, opset)
    if engine.startswith("pytorch"):
        import warnings
        with warnings.catch_warnings():
            # torch 2.13 deprecates its quantized tensors, which these engines exist to run
            warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions",
                                    category=UserWarning)
            if op == "QuantizeLinear":
                return (mod.fake_quantize if engine == "pytorch-fakequant" else mod.quantize)(inputs, attributes)
            if op == "DequantizeLinear":
                return mod.dequantize(inputs, attributes)
            qe = engine.split("-", 1)[1]
            return {"QLinearMatMul": mod.qlinear_matmul, "QGemm": mod.qgemm,
                    "QLinearConv": mod.qlinear_conv}[op](qe, inputs, attributes)
    if engine.startswith("tflite"):
        fn = {"QuantizeLinear": mod.quantize, "DequantizeLinear": mod.dequantize,
              "QLinearMatMul": mod.qlinear_matmul, "QGemm": mod.qgemm,
              "QLinearConv": mod.qlinear_conv}[op]
        return fn(engine, inputs, attributes)
    raise AssertionError(engine)
