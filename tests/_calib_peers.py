"""Live peers for the calibration tests: run the real tools the way their pipelines run them."""
from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np


# ---------------------------------------------------------------- onnxruntime
def ort_ranges(batches, *, method, calib_symmetric=None, moving_average=False, averaging_constant=None,
               num_bins=None, num_quantized_bins=None, percentile=None, per_channel=False,
               strides=None):
    """Run onnxruntime.quantization's calibrator as quantize_static does (create_calibrator ->
    collect_data(reader) -> compute_data) on a one-node Identity-like model; returns TensorData."""
    import onnx
    from onnx import helper, TensorProto
    from onnxruntime.quantization.calibrate import (CalibrationDataReader, CalibrationMethod,
                                                    create_calibrator)
    shape = list(batches[0].shape)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None] * len(shape) if not per_channel else shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * len(shape) if not per_channel else shape)
    # Abs(Neg(Neg(x)))-free identity: Mul by 1 keeps every value and gives a calibratable tensor "y"
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    node = helper.make_node("Mul", ["x", "one"], ["y"])
    g = helper.make_graph([node], "g", [x], [y], initializer=[one])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8

    class Reader(CalibrationDataReader):
        def __init__(self, bs):
            self.bs = list(bs)
            self.i = 0
            self.start, self.end = 0, len(self.bs)

        def get_next(self):
            if self.i >= self.end:
                return None
            v = self.bs[self.i]
            self.i += 1
            return {"x": v}

        def __len__(self):
            return len(self.bs)

        def set_range(self, start_index, end_index):
            self.i, self.end = start_index, end_index

    meth = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
            "distribution": CalibrationMethod.Distribution}[method]
    extra = {}
    if calib_symmetric is not None:
        extra["symmetric"] = calib_symmetric
    if moving_average:
        extra["moving_average"] = True
    if averaging_constant is not None:
        extra["averaging_constant"] = averaging_constant
    if num_bins is not None:
        extra["num_bins"] = num_bins
    if num_quantized_bins is not None:
        extra["num_quantized_bins"] = num_quantized_bins
    if percentile is not None:
        extra["percentile"] = percentile
    if per_channel:
        extra["per_channel"] = True
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.onnx")
        onnx.save(m, p)
        cal = create_calibrator(p, ["Mul"], augmented_model_path=os.path.join(d, "aug.onnx"),
                                calibrate_method=meth, extra_options=extra)
        r = Reader(batches)
        import contextlib, io
        with contextlib.redirect_stdout(io.StringIO()):
            if strides:
                for s in range(0, len(batches), strides):
                    r.set_range(s, s + strides)
                    cal.collect_data(r)
            else:
                cal.collect_data(r)
            td = cal.compute_data()
        del cal
    return td["y"]


def _ort_version():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


#: the installed onnxruntime's version (refquant follows its compute_scale_zp: ort_version=)
ORT_VERSION = _ort_version()


def ort_qparams(rmin, rmax, dtype, symmetric, reduce_range, min_real_range=None):
    from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType
    from refquant._dtypes import onnx_enum
    qmin, qmax = get_qmin_qmax_for_qType(onnx_enum(dtype), reduce_range=reduce_range, symmetric=symmetric)
    zp, scale = compute_scale_zp(np.asarray(rmin, np.float32), np.asarray(rmax, np.float32), qmin, qmax,
                                 symmetric, min_real_range)
    return scale, zp


# ---------------------------------------------------------------- torch
def torch_dtype_kwargs(dtype):
    import torch
    m = {"int8": (torch.qint8, None), "uint8": (torch.quint8, None), "int16": (torch.int16, None),
         "uint16": (torch.uint16, None), "int32": (torch.qint32, None),
         "int4": (torch.qint8, (-8, 7)), "uint4": (torch.quint8, (0, 15)),
         "int2": (torch.qint8, (-2, 1)), "uint2": (torch.quint8, (0, 3))}
    tdt, rng = m[dtype]
    kw = {"dtype": tdt}
    if rng:
        kw.update(quant_min=rng[0], quant_max=rng[1])
    return kw


def torch_observer(batches, *, method, dtype="int8", symmetric=False, reduce_range=False, axis=None,
                   averaging_constant=None, bins=None):
    import torch
    from torch.ao.quantization import observer as O
    kw = torch_dtype_kwargs(dtype)
    kw["reduce_range"] = reduce_range
    if axis is None:
        kw["qscheme"] = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    else:
        kw["qscheme"] = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        kw["ch_axis"] = axis
    if averaging_constant is not None:
        kw["averaging_constant"] = averaging_constant
    if bins is not None:
        kw["bins"] = bins
    cls = {("minmax", False): O.MinMaxObserver, ("minmax", True): O.PerChannelMinMaxObserver,
           ("moving_average_minmax", False): O.MovingAverageMinMaxObserver,
           ("moving_average_minmax", True): O.MovingAveragePerChannelMinMaxObserver,
           ("histogram", False): O.HistogramObserver}[(method, axis is not None)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ob = cls(**kw)
        for b in batches:
            ob(torch.from_numpy(np.ascontiguousarray(b)))
        s, z = ob.calculate_qparams()
        if method == "histogram":
            lo, hi = ob._non_linear_param_search()
        else:
            lo, hi = ob.min_val, ob.max_val
    return s.numpy(), z.numpy(), lo.numpy(), hi.numpy()


# ---------------------------------------------------------------- modelopt
def modelopt_amax(batches, *, method, dtype="int8", axis=None, num_bins=None, percentile=None):
    import torch
    from modelopt.torch.quantization.calib import MaxCalibrator, HistogramCalibrator
    nbits, unsigned = {"int8": (8, False), "uint8": (8, True), "int4": (4, False)}[dtype]
    if method == "minmax":
        cal = MaxCalibrator(num_bits=nbits, axis=axis, unsigned=unsigned)
        for b in batches:
            cal.collect(torch.from_numpy(np.ascontiguousarray(b)))
        return cal.compute_amax().numpy()
    cal = HistogramCalibrator(num_bits=nbits, unsigned=unsigned, num_bins=num_bins or 2048)
    for b in batches:
        cal.collect(torch.from_numpy(np.ascontiguousarray(b)))
    kw = {}
    if method == "percentile" and percentile is not None:
        kw["percentile"] = percentile
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(cal.compute_amax(method, **kw).numpy(), np.float32)
