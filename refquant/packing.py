"""ONNX packed layouts for sub-byte element types (onnx/onnx.proto, TensorProto comments).

- 4-bit (int4, uint4, float4e2m1): two elements per byte; element 0 in the low nibble,
  element 1 in the high nibble; an odd count leaves the last high nibble zero.
- 2-bit (int2, uint2): four elements per byte, x0 | x1 << 2 | x2 << 4 | x3 << 6.
- 6-bit (float6e2m3, float6e3m2): a little-endian bit stream, element i in bits
  [6i, 6i + 6), zero-padded to ceil(6n / 8) bytes.
- 8-bit and wider types are returned as their raw little-endian bytes (``arr.view(uint8)``;
  an array in big-endian byte order is converted first).

Elements are taken in C (row-major) order of the logical shape.
"""
from __future__ import annotations

import numpy as np

from ._dtypes import bits, is_integer, qrange, resolve_dtype

__all__ = ["pack", "unpack", "codes", "from_codes"]


def codes(arr) -> np.ndarray:
    """The raw bit pattern of every element as uint8 (low ``bits`` bits), C order, flattened."""
    arr = np.asarray(arr)
    nb = bits(arr.dtype)
    if nb > 8:
        raise TypeError(f"codes: {arr.dtype} is wider than 8 bits")
    flat = np.ascontiguousarray(arr).reshape(-1)
    if is_integer(arr.dtype):
        return (flat.astype(np.int64) & ((1 << nb) - 1)).astype(np.uint8)
    return flat.view(np.uint8) & np.uint8((1 << nb) - 1)


def from_codes(c, dtype) -> np.ndarray:
    """Inverse of :func:`codes`: uint8 bit patterns -> values of ``dtype`` (1-D)."""
    dt = resolve_dtype(dtype, argname="dtype")
    nb = bits(dt)
    if nb > 8:
        raise TypeError(f"from_codes: {dt} is wider than 8 bits")
    c = np.asarray(c, dtype=np.uint8) & np.uint8((1 << nb) - 1)
    if is_integer(dt):
        qmin, _ = qrange(dt)
        v = c.astype(np.int64)
        if qmin < 0:
            v = np.where(v >= (1 << (nb - 1)), v - (1 << nb), v)
        return v.astype(dt)
    table = np.arange(1 << nb, dtype=np.uint8).view(dt)
    return table[c]


def pack(arr) -> np.ndarray:
    """Pack an array into ONNX's byte layout; returns a 1-D uint8 buffer."""
    arr = np.asarray(arr)
    nb = bits(arr.dtype)
    if nb >= 8:
        if arr.dtype.itemsize > 1 and arr.dtype.byteorder not in ("<", "|") and not (
                arr.dtype.byteorder == "=" and np.little_endian):
            arr = arr.astype(arr.dtype.newbyteorder("<"))   # ONNX raw data is little-endian
        return np.ascontiguousarray(arr).reshape(-1).view(np.uint8).copy()
    c = codes(arr).astype(np.uint16)
    n = c.size
    if nb == 4:
        c = np.concatenate([c, np.zeros(n % 2, np.uint16)])
        return (c[0::2] | (c[1::2] << 4)).astype(np.uint8)
    if nb == 2:
        c = np.concatenate([c, np.zeros((-n) % 4, np.uint16)])
        return (c[0::4] | (c[1::4] << 2) | (c[2::4] << 4) | (c[3::4] << 6)).astype(np.uint8)
    if nb == 6:
        nbytes = (6 * n + 7) // 8
        bitarr = np.zeros(nbytes * 8, np.uint8)
        pos = 6 * np.arange(n)
        for k in range(6):
            bitarr[pos + k] = (c >> k) & 1
        return np.packbits(bitarr, bitorder="little")
    raise TypeError(f"pack: unsupported element width {nb} bits ({arr.dtype})")


def _as_bytes(buf) -> np.ndarray:
    """``buf`` as a 1-D uint8 array: bytes-like objects (bytes, bytearray, memoryview) by their
    bytes; uint8/int8 arrays by their bytes; other integer arrays and lists by value, each in
    [0, 255].  Anything else (floats, wider values) is refused rather than truncated."""
    if isinstance(buf, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(buf), np.uint8)
    a = np.asarray(buf)
    if a.dtype in (np.dtype(np.uint8), np.dtype(np.int8)):
        return np.frombuffer(np.ascontiguousarray(a).tobytes(), np.uint8)
    if a.dtype.kind not in "iu" and not (a.dtype.kind == "O" and a.size == 0) and a.size:
        raise TypeError(f"unpack: buf must be bytes or an array of bytes (uint8), got dtype "
                        f"{a.dtype}")
    a = a.astype(np.int64) if a.size else a.astype(np.uint8)
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ValueError(f"unpack: buf values must be bytes in [0, 255], got "
                         f"[{a.min()}, {a.max()}]")
    return a.reshape(-1).astype(np.uint8)


def _dim(s):
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
        raise TypeError
    return int(s)


def unpack(buf, dtype, shape) -> np.ndarray:
    """Unpack an ONNX byte buffer (bytes, bytearray, memoryview or a uint8 array) into an array
    of ``dtype`` and ``shape``.  Bytes beyond the ones the shape needs are ignored."""
    dt = resolve_dtype(dtype, argname="dtype")
    try:
        shape = tuple(_dim(s) for s in np.atleast_1d(shape)) if np.ndim(shape) else (
            (_dim(shape),) if shape != () else ())
    except (TypeError, ValueError):
        raise TypeError(f"unpack: shape must be an int or a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"unpack: shape {shape} has a negative dimension")
    n = 1
    for d in shape:
        n *= d                       # exact (Python ints): a product past int64 is refused below
    if n > np.iinfo(np.int64).max // 8:
        raise ValueError(f"unpack: shape {shape} has {n} elements, more than any buffer holds")
    buf = _as_bytes(buf)
    nb = bits(dt)
    need = (n * nb + 7) // 8
    if buf.size < need:
        raise ValueError(f"unpack: buffer has {buf.size} bytes, {need} needed for {n} x {dt} "
                         f"({nb}-bit)")
    if nb >= 8:
        return buf[:need].view(dt).reshape(shape).copy()
    if nb == 4:
        c = np.empty(2 * need, np.uint8)
        c[0::2] = buf[:need] & 0x0F
        c[1::2] = buf[:need] >> 4
    elif nb == 2:
        c = np.empty(4 * need, np.uint8)
        for k in range(4):
            c[k::4] = (buf[:need] >> (2 * k)) & 0x3
    elif nb == 6:
        bitarr = np.unpackbits(buf[:need], bitorder="little")
        pos = 6 * np.arange(n)
        c = np.zeros(n, np.uint8)
        for k in range(6):
            c |= (bitarr[pos + k] << k).astype(np.uint8)
    else:
        raise TypeError(f"unpack: unsupported element width {nb} bits ({dt})")
    return from_codes(c[:n], dt).reshape(shape)
