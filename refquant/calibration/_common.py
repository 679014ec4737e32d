"""Shared pieces of the calibration package: the result record, data preparation, errors."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._dtypes import resolve_dtype, onnx_name

TOOLS = ("onnxruntime", "pytorch", "tensorrt", "modelopt")
METHODS = ("minmax", "moving_average_minmax", "percentile", "entropy", "mse", "distribution",
           "histogram")


#: What each tool does with NaN / Inf calibration data (checked live: onnxruntime 1.32, torch 2.13,
#: modelopt 0.47).
NONFINITE_BEHAVIOUR = {
    "onnxruntime": "onnxruntime: MinMax skips NaN (ReduceMin/ReduceMax) but keeps +-Inf in the range; "
                   "Entropy skips NaN and fails on Inf; Percentile fails on both with its default "
                   "calib_symmetric ('range ... is not finite' from np.histogram) but skips NaN without "
                   "it; Distribution skips NaN.",
    "pytorch": "torch: MinMax observers propagate NaN into min/max and scale, and take +-Inf as the range; "
               "HistogramObserver drops +-Inf with a warning and fails on NaN (torch.histc range not finite).",
    "tensorrt": "TensorRT: not documented; its calibrators build histograms of |x| that NaN/Inf break.",
    "modelopt": "ModelOpt: MaxCalibrator asserts ('detected nan/inf values in amax'); the histogram "
                "calibrators fail in torch.histc ('range ... is not finite') when the NaN is in the "
                "first batch, and after it silently drop the later batches' values beyond the first "
                "range.",
}


class CalibrationError(ValueError):
    """Bad calibration input or an unsupported (tool, method, option) combination."""


@dataclasses.dataclass
class CalibrationResult:
    """What a tool's calibrator chose for one tensor.

    ``rmin``/``rmax``: the range the tool's calibrator reports (float32; arrays when per-channel).
    ``scale`` (float32) and ``zero_point`` (of ``dtype``): what the tool then derives from that
    range, via :func:`refquant.calibration.compute_scale_zero_point` with the same tool.
    ``amax`` is set for the symmetric NVIDIA tools (TensorRT, ModelOpt): the dynamic range.
    ``details`` carries method-specific internals (histogram, chosen bin, candidates ...).
    """
    tool: str
    method: str
    dtype: str
    symmetric: bool
    reduce_range: bool
    axis: Any
    rmin: Any
    rmax: Any
    scale: Any
    zero_point: Any
    amax: Any = None
    params: dict = dataclasses.field(default_factory=dict)
    details: dict = dataclasses.field(default_factory=dict)
    notes: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        # the same types from every tool and method: float32 arrays for the range, the scale and
        # amax, an array of the quantized type for the zero point (0-d when per tensor)
        for name in ("rmin", "rmax", "scale", "amax"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, np.ndarray) and v.dtype == np.float32):
                setattr(self, name, np.asarray(v, np.float32))
        if self.zero_point is not None and not isinstance(self.zero_point, np.ndarray):
            self.zero_point = np.asarray(self.zero_point)

    def to_dict(self) -> dict:
        """JSON-ready dict (floats as Python floats, plus the float32 bit patterns of the scale)."""
        def conv(v):
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, np.generic):
                return v.item()
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v]
            return v
        scale32 = np.asarray(self.scale, np.float32)
        d = {
            "tool": self.tool, "method": self.method, "dtype": self.dtype,
            "symmetric": self.symmetric, "reduce_range": self.reduce_range, "axis": self.axis,
            "rmin": conv(np.asarray(self.rmin, np.float32)),
            "rmax": conv(np.asarray(self.rmax, np.float32)),
            "scale": conv(scale32),
            "scale_bits": conv(scale32.view(np.uint32).astype(np.int64)),
            "zero_point": conv(np.asarray(self.zero_point).astype(np.int64)) if _is_int(self.dtype)
            else conv(np.asarray(self.zero_point).astype(np.float32)),
            "amax": None if self.amax is None else conv(np.asarray(self.amax, np.float32)),
            "params": conv(self.params),
            "notes": list(self.notes),
        }
        return d

    def __str__(self) -> str:
        def fmt(v):
            a = np.asarray(v)
            if a.ndim == 0:
                return repr(a.item()) if a.dtype.kind in "iub" else f"{float(a):.9g}"
            if a.size > 8:
                return "[" + ", ".join(fmt(x) for x in a[:8]) + f", ... ({a.size})]"
            return "[" + ", ".join(fmt(x) for x in a) + "]"
        zp = np.asarray(self.zero_point)
        zp = zp.astype(np.int64) if _is_int(self.dtype) else zp.astype(np.float32)
        lines = [f"{self.tool} {self.method} ({self.dtype}{', symmetric' if self.symmetric else ''}"
                 f"{', reduce_range' if self.reduce_range else ''}"
                 f"{'' if self.axis is None else f', axis={self.axis}'})",
                 f"  range      [{fmt(self.rmin)}, {fmt(self.rmax)}]",
                 f"  scale      {fmt(self.scale)}",
                 f"  zero_point {fmt(zp)}"]
        if self.amax is not None:
            lines.append(f"  amax       {fmt(self.amax)}")
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)


def _is_int(dtype_name: str) -> bool:
    from .._dtypes import is_integer
    return is_integer(dtype_name)


def dtype_name(dtype) -> str:
    dt = resolve_dtype(dtype, argname="dtype")
    try:
        return onnx_name(dt)
    except TypeError:
        return dt.name


# an empty batch among others, where a tool does not just skip it (measured, onnxruntime 1.32,
# nvidia-modelopt 0.47): (tool, method or None for every method) -> why refquant refuses it
_EMPTY_BATCH = {
    ("onnxruntime", "moving_average_minmax"):
        "ONNX Runtime's moving-average calibrator takes ReduceMin / ReduceMax of the empty tensor, "
        "(inf, -inf), into its range, which then gives scale 1.0 and zero point 0 (an infinite "
        "scale with calib_symmetric)",
    ("onnxruntime", "entropy"): "ONNX Runtime's histogram calibrators stack the batches and fail on "
                                "an empty one ('inhomogeneous shape')",
    ("onnxruntime", "percentile"): "ONNX Runtime's histogram calibrators stack the batches and fail "
                                   "on an empty one ('inhomogeneous shape')",
    ("onnxruntime", "distribution"): "ONNX Runtime's histogram calibrators stack the batches and fail "
                                     "on an empty one ('inhomogeneous shape')",
    ("modelopt", None): "ModelOpt's calibrators fail on an empty tensor (max() / min() need a "
                        "reduction dim)",
}


def prepare_batches(data, *, tool: str, axis=None, conversions=None, method=None) -> list[np.ndarray]:
    """data (one array, or a list/tuple/iterator of arrays = successive batches) -> float32 arrays.

    A flat list of numbers is one batch.  Every batch is converted to float32 first: refquant
    models each tool calibrating float32 tensors (an ONNX model with float32 activations, torch
    observers on float32 tensors).  Tools fed other dtypes compute differently (ORT on a float16
    model keeps float16 ranges and scales; torch's HistogramObserver bins a float16 / float64
    tensor in that dtype); that is not modelled.
    Empty batches are skipped where the tool's observer skips them (torch; ORT's minmax); where
    the tool fails or takes them into its range (_EMPTY_BATCH) they raise CalibrationError; no
    batch at all, NaN or Inf
    (including float64 values beyond float32's range) raise :class:`CalibrationError`; structured,
    complex, string and object arrays raise TypeError.
    """
    if isinstance(data, np.ndarray) or np.isscalar(data):
        batches = [data]
    elif isinstance(data, (list, tuple)) or (hasattr(data, "__iter__") and hasattr(data, "__next__")):
        batches = list(data)
        if batches and all(np.isscalar(b) or (isinstance(b, np.ndarray) and b.ndim == 0) for b in batches):
            batches = [np.asarray(batches)]          # a flat list of numbers is one batch
    else:
        try:
            batches = [np.asarray(data)]
        except Exception as exc:  # noqa: BLE001
            raise TypeError(f"data: expected an array or a list of arrays, got {type(data).__name__}") from exc
    from .._dtypes import refuse_masked
    out, empties = [], []
    for i, b in enumerate(batches):
        refuse_masked(b, "data" if len(batches) == 1 else f"data[{i}]")
        a = np.asarray(b)
        ml = a.dtype.kind == "V" and a.dtype.names is None and \
            a.dtype.type.__module__.split(".")[0] == "ml_dtypes"      # bfloat16, float8, int4 ...
        if a.dtype.kind not in "fiub" and not ml:
            raise TypeError(f"data: batch {i} has dtype {a.dtype}; expected a real numeric array "
                            f"(float, integer, bool or an ml_dtypes float)")
        with np.errstate(over="ignore"):
            a32 = np.ascontiguousarray(a.astype(np.float32))
        if a32.size and a.dtype.itemsize > 4 and a.dtype.kind == "f" and \
                np.any(np.isinf(a32) & np.isfinite(a)):
            n_big = int(np.count_nonzero(np.isinf(a32) & np.isfinite(a)))
            raise CalibrationError(
                f"data: batch {i} ({a.dtype}) holds {n_big} finite values beyond float32's range "
                f"(|x| > 3.4028235e38); every tool calibrates float32 tensors, where they become inf. "
                f"Scale or clip the data first.")
        if conversions is not None and a.dtype != np.float32 and a32.size:
            with np.errstate(invalid="ignore"):
                lossy = a.dtype.kind == "f" and a.dtype.itemsize < 4 or \
                    (a.dtype.kind != "V" and not np.array_equal(a32.astype(a.dtype), a))
            if lossy or (a.dtype.kind == "V" and a.dtype.itemsize < 4):
                conversions.append((i, str(a.dtype)))
        a = a32
        if a.size == 0:
            empties.append(i)
            continue
        if not np.all(np.isfinite(a)):
            n_nan = int(np.isnan(a).sum())
            n_inf = int(np.isinf(a).sum())
            raise CalibrationError(
                f"data: batch {i} holds {n_nan} NaN and {n_inf} Inf values; refquant refuses them "
                f"because the tools disagree -- {NONFINITE_BEHAVIOUR[tool]} Remove or clip them first.")
        if axis is not None:
            if a.ndim == 0:
                raise CalibrationError("axis: per-channel calibration needs arrays with at least 1 dimension")
            ax = int(axis)
            if not -a.ndim <= ax < a.ndim:
                raise CalibrationError(f"axis: {axis} is out of range for a batch of rank {a.ndim}")
        out.append(a)
    if not out:
        raise CalibrationError("data: no values to calibrate on (empty data or only empty batches)")
    why = _EMPTY_BATCH.get((tool, method)) or _EMPTY_BATCH.get((tool, None))
    if empties and why:
        raise CalibrationError(f"data: batch {empties[0]} is empty; {why}. refquant refuses it: "
                               f"remove the empty batch (the other tools skip it)")
    if axis is not None:
        ax = int(axis)
        chans = {b.shape[ax % b.ndim] for b in out}
        if len(chans) != 1:
            raise CalibrationError(f"axis: batches disagree on the number of channels along axis {axis}: "
                                   f"{sorted(chans)}")
    return out


def per_channel_view(a: np.ndarray, axis: int) -> np.ndarray:
    """(C, -1) view with the channel axis first (the PerChannelMinMaxObserver layout)."""
    ax = axis % a.ndim
    perm = list(range(a.ndim))
    perm[ax], perm[0] = perm[0], perm[ax]
    return np.ascontiguousarray(np.transpose(a, perm)).reshape(a.shape[ax], -1)


def check_flag(name, v) -> bool:
    """A yes/no option: bool, numpy bool or the integers 0/1 (a string such as "no" is truthy in
    Python and would silently select the option, so it is a TypeError)."""
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, (int, np.integer)) and int(v) in (0, 1)):
        return bool(v)
    raise TypeError(f"{name}: expected True or False, got {v!r}")


def check_positive_int(name, v, *, minimum=1):
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < minimum:
        raise CalibrationError(f"{name}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


def check_finite_range(rmin, rmax, *, tool: str, method: str, why: str) -> None:
    """Refuse a non-finite calibrated range computed from finite data (a float32 overflow inside the
    tool's own arithmetic).  The tool itself would go on to an infinite or NaN scale (and, for ORT
    with rmin = -inf, a zero point cast from NaN); refquant raises instead of returning that."""
    lo = np.asarray(rmin, np.float32)
    hi = np.asarray(rmax, np.float32)
    if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
        return
    raise CalibrationError(
        f"data: {tool}'s {method} calibration overflows float32 on this data: the range it computes is "
        f"[{lo.tolist()}, {hi.tolist()}] ({why}); from it {tool} would derive an infinite or NaN scale. "
        f"refquant refuses it -- scale the data down.")


def np_histogram(tool: str, *args, **kwargs):
    """``np.histogram`` as the tool calls it; numpy's own refusals (a float32 range too narrow for
    ``bins`` finite-width bins, e.g. denormal data, or one that overflows float32) become a
    :class:`CalibrationError` naming the tool (ORT fails there with the same numpy error)."""
    try:
        return np.histogram(*args, **kwargs)
    except ValueError as exc:
        raise CalibrationError(
            f"data: {tool}'s histogram (np.histogram over float32 values) fails on this data: {exc} "
            f"(its bins need a finite float32 range and a finite, nonzero float32 width: a denormal-"
            f"narrow range or one near float32's limits fails; rescale the data or use fewer bins)"
        ) from exc


#: Size above which a histogram that grew across batches is refused by the quadratic searches
#: (ModelOpt entropy / mse, ORT entropy: every candidate scans the whole histogram) instead of
#: running for minutes or hours.
MAX_SEARCH_BINS = 1 << 15


def check_search_size(tool: str, method: str, nbins: int, *, grown: bool) -> None:
    """Refuse a quadratic search over a histogram that *grew* past MAX_SEARCH_BINS (an explicit
    num_bins that large is the caller's choice and runs, slowly, as in the tool)."""
    if grown and nbins > MAX_SEARCH_BINS:
        how = ("the histogram grew to that size because a later batch reaches far beyond the first "
               "batch's bin width")
        raise CalibrationError(
            f"num_bins: {tool}'s {method} search costs about bins**2 operations and the histogram has "
            f"{nbins} bins ({how}); refquant refuses more than {MAX_SEARCH_BINS} (the tool itself would run "
            f"for a very long time) -- use fewer bins, or put the widest batch first")


def check_percentile(p):
    if p is None:
        return None
    p = float(p)
    if not (0.0 <= p <= 100.0) or not np.isfinite(p):
        raise CalibrationError(f"percentile: must lie in [0, 100], got {p!r}")
    return p
