"""Element types: resolution of user dtype arguments and the facts every op needs.

A dtype argument may be a numpy dtype (or anything ``np.dtype`` accepts), an
``ml_dtypes`` scalar type, an ONNX ``TensorProto`` enum value (an int), or an
ONNX type name (``"int8"``, ``"uint4"``, ``"float8e4m3fn"``, ``"FLOAT4E2M1"``,
``"float8_e4m3fn"`` ...).  :func:`resolve_dtype` maps all of them to one
``numpy.dtype``; :func:`onnx_name` / :func:`onnx_enum` map back.

Integer ranges (ONNX QuantizeLinear saturation ranges)::

    uint8 [0, 255]          int8 [-128, 127]
    uint16 [0, 65535]       int16 [-32768, 32767]
    uint4 [0, 15]           int4 [-8, 7]
    uint2 [0, 3]            int2 [-2, 1]
    int32 [-2^31, 2^31-1]   (accumulators, biases, DequantizeLinear input)
"""
from __future__ import annotations

import numpy as np
import ml_dtypes

__all__ = [
    "resolve_dtype", "onnx_name", "onnx_enum", "qrange", "is_integer", "is_float",
    "is_low_float", "bits", "INTEGER_QTYPES", "FLOAT_QTYPES", "QTYPES",
    "FLOAT_COMPUTE_TYPES",
]

# ONNX TensorProto.DataType enum (onnx/onnx.proto), for the types refquant uses.
_ONNX = [
    # (enum, canonical ONNX name, numpy dtype)
    (1, "float", np.dtype(np.float32)),
    (2, "uint8", np.dtype(np.uint8)),
    (3, "int8", np.dtype(np.int8)),
    (4, "uint16", np.dtype(np.uint16)),
    (5, "int16", np.dtype(np.int16)),
    (6, "int32", np.dtype(np.int32)),
    (7, "int64", np.dtype(np.int64)),
    (9, "bool", np.dtype(np.bool_)),
    (10, "float16", np.dtype(np.float16)),
    (11, "double", np.dtype(np.float64)),
    (12, "uint32", np.dtype(np.uint32)),
    (13, "uint64", np.dtype(np.uint64)),
    (16, "bfloat16", np.dtype(ml_dtypes.bfloat16)),
    (17, "float8e4m3fn", np.dtype(ml_dtypes.float8_e4m3fn)),
    (18, "float8e4m3fnuz", np.dtype(ml_dtypes.float8_e4m3fnuz)),
    (19, "float8e5m2", np.dtype(ml_dtypes.float8_e5m2)),
    (20, "float8e5m2fnuz", np.dtype(ml_dtypes.float8_e5m2fnuz)),
    (21, "uint4", np.dtype(ml_dtypes.uint4)),
    (22, "int4", np.dtype(ml_dtypes.int4)),
    (23, "float4e2m1", np.dtype(ml_dtypes.float4_e2m1fn)),
    (24, "float8e8m0", np.dtype(ml_dtypes.float8_e8m0fnu)),
    (25, "uint2", np.dtype(ml_dtypes.uint2)),
    (26, "int2", np.dtype(ml_dtypes.int2)),
    (27, "float6e2m3", np.dtype(ml_dtypes.float6_e2m3fn)),
    (28, "float6e3m2", np.dtype(ml_dtypes.float6_e3m2fn)),
]

_BY_ENUM = {e: dt for e, _, dt in _ONNX}
_NAME_OF = {dt: n for _, n, dt in _ONNX}
_ENUM_OF = {dt: e for e, _, dt in _ONNX}


def _norm(name: str) -> str:
    return name.lower().replace("_", "").replace("tensorproto.", "")


_BY_NAME = {}
for _e, _n, _dt in _ONNX:
    _BY_NAME[_norm(_n)] = _dt
    _BY_NAME[_norm(_dt.name)] = _dt      # ml_dtypes / numpy spelling, e.g. float8_e4m3fn
_BY_NAME.update({
    "float32": np.dtype(np.float32), "float64": np.dtype(np.float64),
    "half": np.dtype(np.float16), "fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16),
    "bf16": np.dtype(ml_dtypes.bfloat16),
    "float4e2m1fn": np.dtype(ml_dtypes.float4_e2m1fn),
    "float6e2m3fn": np.dtype(ml_dtypes.float6_e2m3fn),
    "float6e3m2fn": np.dtype(ml_dtypes.float6_e3m2fn),
    "float8e8m0fnu": np.dtype(ml_dtypes.float8_e8m0fnu),
    "qint8": np.dtype(np.int8), "quint8": np.dtype(np.uint8), "qint32": np.dtype(np.int32),
})

INTEGER_QTYPES = tuple(np.dtype(t) for t in (
    np.int8, np.uint8, np.int16, np.uint16, ml_dtypes.int4, ml_dtypes.uint4,
    ml_dtypes.int2, ml_dtypes.uint2))
FLOAT_QTYPES = tuple(np.dtype(t) for t in (
    ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
    ml_dtypes.float8_e5m2fnuz, ml_dtypes.float4_e2m1fn, ml_dtypes.float6_e2m3fn,
    ml_dtypes.float6_e3m2fn))
#: Every output type QuantizeLinear allows at opset 28.
QTYPES = INTEGER_QTYPES + FLOAT_QTYPES
#: Float types usable as inputs, scales and DequantizeLinear outputs.
FLOAT_COMPUTE_TYPES = tuple(np.dtype(t) for t in (np.float32, np.float16, ml_dtypes.bfloat16,
                                                   np.float64))

_RANGES = {
    np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint16): (0, 65535), np.dtype(np.int16): (-32768, 32767),
    np.dtype(ml_dtypes.uint4): (0, 15), np.dtype(ml_dtypes.int4): (-8, 7),
    np.dtype(ml_dtypes.uint2): (0, 3), np.dtype(ml_dtypes.int2): (-2, 1),
    np.dtype(np.int32): (-2**31, 2**31 - 1), np.dtype(np.uint32): (0, 2**32 - 1),
}
_BITS = {
    np.dtype(ml_dtypes.uint4): 4, np.dtype(ml_dtypes.int4): 4, np.dtype(ml_dtypes.float4_e2m1fn): 4,
    np.dtype(ml_dtypes.uint2): 2, np.dtype(ml_dtypes.int2): 2,
    np.dtype(ml_dtypes.float6_e2m3fn): 6, np.dtype(ml_dtypes.float6_e3m2fn): 6,
}


def resolve_dtype(dtype, *, argname: str = "dtype") -> np.dtype:
    """Return the ``numpy.dtype`` for a numpy/ml_dtypes type, ONNX enum value or ONNX name.

    Raises ``TypeError`` (naming ``argname``) for anything unknown.
    """
    if isinstance(dtype, np.dtype):
        return dtype
    if isinstance(dtype, (bool, np.bool_)):
        raise TypeError(f"{argname}: expected a dtype, got {dtype!r}")
    if isinstance(dtype, (int, np.integer)):
        try:
            return _BY_ENUM[int(dtype)]
        except KeyError:
            raise TypeError(f"{argname}: {int(dtype)} is not an ONNX TensorProto data type "
                            f"that refquant supports (known: {sorted(_BY_ENUM)})") from None
    if isinstance(dtype, str):
        try:
            return _BY_NAME[_norm(dtype)]
        except KeyError:
            raise TypeError(f"{argname}: unknown type name {dtype!r}; use an ONNX name such as "
                            f"'int8', 'uint4', 'float8e4m3fn', 'float4e2m1' or a numpy dtype") from None
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{argname}: cannot interpret {dtype!r} as a dtype") from None


def onnx_name(dtype) -> str:
    """Canonical ONNX name (lower case) of a dtype, e.g. ``'float8e4m3fn'``."""
    dt = resolve_dtype(dtype)
    try:
        return _NAME_OF[dt]
    except KeyError:
        raise TypeError(f"{dt} has no ONNX counterpart") from None


def onnx_enum(dtype) -> int:
    """ONNX ``TensorProto.DataType`` value of a dtype."""
    dt = resolve_dtype(dtype)
    try:
        return _ENUM_OF[dt]
    except KeyError:
        raise TypeError(f"{dt} has no ONNX counterpart") from None


def is_integer(dtype) -> bool:
    """True for integer element types, the sub-byte ml_dtypes ones included."""
    dt = resolve_dtype(dtype)
    return dt in _RANGES or dt.kind in "iu"


def is_float(dtype) -> bool:
    """True for every floating element type (numpy and ml_dtypes)."""
    dt = resolve_dtype(dtype)
    return not is_integer(dt) and dt != np.dtype(np.bool_)


def is_low_float(dtype) -> bool:
    """float8 / float6 / float4 types (QuantizeLinear float targets)."""
    return resolve_dtype(dtype) in FLOAT_QTYPES


def qrange(dtype) -> tuple[int, int]:
    """(qmin, qmax) saturation range of an integer element type."""
    dt = resolve_dtype(dtype)
    try:
        return _RANGES[dt]
    except KeyError:
        if dt.kind in "iu":
            info = np.iinfo(dt)
            return int(info.min), int(info.max)
        raise TypeError(f"{dt} is not an integer type") from None


def bits(dtype) -> int:
    """Storage width in bits of one element (4 for int4, 8 for int8, ...)."""
    dt = resolve_dtype(dtype)
    return _BITS.get(dt, dt.itemsize * 8)


def refuse_masked(v, argname: str) -> None:
    """Raise TypeError for a numpy masked array: the ops take plain arrays, and a mask would
    be silently ignored (numpy.ma arithmetic also leaves masked data unchanged, so results
    would mix computed and raw values)."""
    if isinstance(v, np.ma.MaskedArray):
        raise TypeError(f"{argname}: masked arrays are not supported (the mask would be ignored); "
                        f"pass {argname}.filled(value) to choose the masked entries, or "
                        f"np.asarray({argname}) to use the data as it is")
