"""Tool-exact quantization parameters and calibration.

``compute_scale_zero_point(rmin, rmax, ...)`` -- the scale and zero point each tool derives from a
range (formulas in :mod:`refquant.calibration.qparams`).

``calibrate(data, method=..., tool=...)`` -- the range each tool's calibrator chooses for the same
data, consuming batches the way that tool does, then its scale and zero point.

=============  ==============================================================  ================
tool           methods (first = default when method=None)                        module
=============  ==============================================================  ================
onnxruntime    minmax, moving_average_minmax, entropy, percentile, distribution  .onnxruntime
pytorch        histogram, minmax, moving_average_minmax                          .pytorch
tensorrt       entropy, minmax, percentile                                       .tensorrt
modelopt       minmax, entropy, mse, percentile                                  .modelopt
=============  ==============================================================  ================

"histogram" is an alias of each tool's histogram method where that tool has one name for it:
pytorch's HistogramObserver (L2 search).  Batches: onnxruntime's quantize_static gathers every
batch before building its histogram (one histogram of the concatenation); torch observers and
ModelOpt calibrators update per batch (histograms merged/re-binned as the range grows); TensorRT's
calibrators are modelled as two-pass (global range, then one histogram).

Verified bit-exact against onnxruntime 1.32.0, torch 2.13.0 and nvidia-modelopt 0.47.0 by
tests/test_calibration*.py, and against onnxruntime 1.30.0 and 1.31.1 with ``ort_version=`` (1.30
rounded the range to float32 before promoting it); TensorRT from its documented algorithm only
(see .tensorrt).
"""
from __future__ import annotations

import numpy as np

from .._dtypes import resolve_dtype
from ._common import (CalibrationError, CalibrationResult, TOOLS, METHODS, check_flag, check_percentile,
                      check_positive_int, dtype_name, prepare_batches)
from .qparams import compute_scale_zero_point
from . import onnxruntime as _ort, pytorch as _pt, tensorrt as _trt, modelopt as _mo

__all__ = ["compute_scale_zero_point", "calibrate", "compare_tools", "CalibrationResult", "CalibrationError",
           "supported", "TOOLS", "METHODS", "default_method"]

_MODULES = {"onnxruntime": _ort, "pytorch": _pt, "tensorrt": _trt, "modelopt": _mo}


def supported() -> dict:
    """{tool: (methods...)} -- every supported (tool, method) pair; the first method is the default."""
    out = {}
    for t, m in _MODULES.items():
        ms = [m.DEFAULT_METHOD] + [x for x in m.METHODS if x != m.DEFAULT_METHOD]
        out[t] = tuple(ms)
    return out


def default_method(tool: str) -> str:
    if tool not in _MODULES:
        raise CalibrationError(f"tool: expected one of {', '.join(TOOLS)}, got {tool!r}")
    return _MODULES[tool].DEFAULT_METHOD


def _pairs_text():
    return "; ".join(f"{t}: {', '.join(ms)}" for t, ms in supported().items())


def calibrate(data, *, method="minmax", tool="onnxruntime", dtype="int8", symmetric=False,
              reduce_range=False, axis=None, num_bins=None, num_quantized_bins=None,
              percentile=None, averaging_constant=None, **options) -> CalibrationResult:
    """Calibrate ``data`` the way ``tool`` does and return its range, scale and zero point.

    data: one array, or a list/tuple of arrays consumed in order as calibration batches.  Each
        batch is converted to float32 (the tools calibrating float32 tensors); a lossy conversion
        or a half-precision input is reported in ``result.notes``.
    method: "minmax", "moving_average_minmax", "percentile", "entropy", "mse", "distribution",
        "histogram", or None for the tool's default (see :func:`supported`).
    dtype: the quantized type (numpy / ml_dtypes / ONNX enum or name).
    symmetric, reduce_range: the tool's own options of those names (ORT: ActivationSymmetric and
        reduce_range of compute_scale_zp; torch: per_tensor_symmetric qscheme and reduce_range).
    axis: per-channel calibration along this axis (minmax-type methods).
    num_bins, num_quantized_bins, percentile, averaging_constant: None = the tool's default.

    Extra options: ``calib_symmetric`` (ORT CalibTensorRangeSymmetric), ``strides`` (ORT
    CalibStridedMinMax: batches per collect_data call), ``min_real_range`` (ORT
    MinimumRealRange), ``ort_version`` (the onnxruntime release whose compute_scale_zp to follow,
    e.g. ``onnxruntime.__version__``; default: 1.31 and later -- see compute_scale_zero_point),
    ``start_bin`` (ModelOpt), ``torch_simd_width`` (lanes of torch's float32
    kernels, default 8), ``torch_threads`` (torch.get_num_threads() for torch.histc in the pytorch
    histogram and ModelOpt calibrators: it matters only when one thread's share of a batch holds
    more than 2**24 values of one bin, where torch's float32 counts stop; default None = exact
    counts).

    Raises CalibrationError (a ValueError) for bad data (empty, NaN/Inf), bad options and
    unsupported (tool, method) pairs; TypeError for an unknown dtype.
    """
    if tool not in _MODULES:
        raise CalibrationError(f"tool: expected one of {', '.join(TOOLS)}, got {tool!r}")
    mod = _MODULES[tool]
    if method is None:
        method = mod.DEFAULT_METHOD
    if method == "histogram" and tool != "pytorch":
        raise CalibrationError(f"method: 'histogram' is torch's HistogramObserver; for {tool} name the "
                               f"histogram method (supported pairs: {_pairs_text()})")
    if method not in METHODS:
        raise CalibrationError(f"method: expected one of {', '.join(METHODS)} or None, got {method!r}")
    if method not in mod.METHODS:
        raise CalibrationError(f"method: {tool} has no {method!r} calibrator; supported (tool, method) "
                               f"pairs: {_pairs_text()}")
    allowed = {"calib_symmetric", "strides", "min_real_range", "start_bin", "torch_simd_width",
               "torch_threads", "ort_version"}
    if options.get("ort_version") is not None and tool != "onnxruntime":
        raise CalibrationError("ort_version: only for tool='onnxruntime'")
    if options.get("torch_threads") is not None:
        options["torch_threads"] = check_positive_int("torch_threads", options["torch_threads"])
    bad = set(options) - allowed
    if bad:
        raise TypeError(f"calibrate() got unexpected keyword argument(s) {sorted(bad)}")
    dt = resolve_dtype(dtype, argname="dtype")
    symmetric = check_flag("symmetric", symmetric)
    reduce_range = check_flag("reduce_range", reduce_range)
    if options.get("calib_symmetric") is not None:
        options["calib_symmetric"] = check_flag("calib_symmetric", options["calib_symmetric"])
    nb = check_positive_int("num_bins", num_bins)
    nq = check_positive_int("num_quantized_bins", num_quantized_bins)
    if nb is not None and nq is not None and nb < nq:
        raise CalibrationError(f"num_bins: {nb} is smaller than num_quantized_bins {nq}")
    p = check_percentile(percentile)
    if averaging_constant is not None:
        c = float(averaging_constant)
        if not (0.0 <= c <= 1.0):
            raise CalibrationError(f"averaging_constant: must lie in [0, 1], got {averaging_constant!r}")
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
        raise CalibrationError(f"axis: expected an integer or None, got {axis!r}")
    conversions = []
    batches = prepare_batches(data, tool=tool, axis=axis, conversions=conversions, method=method)
    result = mod.calibrate(batches, method=method, dtype=dtype_name(dt), dt=dt, symmetric=bool(symmetric),
                           reduce_range=bool(reduce_range), axis=None if axis is None else int(axis),
                           num_bins=nb, num_quantized_bins=nq, percentile=p,
                           averaging_constant=averaging_constant, **options)
    if conversions:
        kinds = sorted({d for _, d in conversions})
        which = ", ".join(str(i) for i, _ in conversions[:8]) + (" ..." if len(conversions) > 8 else "")
        result.notes.append(
            f"data converted to float32 from {', '.join(kinds)} (batch(es) {which}): this is {tool} "
            f"calibrating float32 tensors (values rounded to float32 first); a tool fed half-precision "
            f"tensors computes in that precision, which is not modelled")
    return result


def compare_tools(data, *, dtype="int8", symmetric=False, reduce_range=False, axis=None,
                  methods=None, **kw) -> list:
    """Run every supported (tool, method) pair (or ``methods``: {tool: [method, ...]}) on the same data.

    Pairs that refuse the options (e.g. reduce_range for TensorRT) are reported as
    (tool, method, error message) instead of a result.
    """
    out = []
    pairs = methods or supported()
    for tool, ms in pairs.items():
        for m in ms:
            try:
                out.append(calibrate(data, tool=tool, method=m, dtype=dtype, symmetric=symmetric,
                                     reduce_range=reduce_range, axis=axis, **kw))
            except (CalibrationError, TypeError) as exc:
                out.append((tool, m, str(exc)))
    return out
