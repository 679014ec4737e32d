"""PyTorch CPU quantized ops (torch 2.x): quantize/dequantize, fake-quantize, and the
quantized linear/conv2d kernels of each quantized engine (fbgemm, x86, qnnpack, onednn).

ONNX mapping
------------
* QuantizeLinear -> ``torch.quantize_per_tensor`` (scalar scale) / ``torch.quantize_per_channel``
  (1-D scale, ``axis``); result ``int_repr()``.  uint8 -> quint8, int8 -> qint8, int32 -> qint32.
* DequantizeLinear -> ``_make_per_tensor_quantized_tensor`` / ``_make_per_channel_quantized_tensor``
  then ``dequantize()``.
* pytorch-fakequant QuantizeLinear -> ``fake_quantize_per_tensor_affine`` /
  ``fake_quantize_per_channel_affine`` with (qmin, qmax) of the output type; the float result
  (q - zp)*s is mapped back to the code q through the table fl32(fl32(q - zp) * s) over every code
  (exact; refused as unsupported when that table is not one-to-one, e.g. zero/denormal scales).
* QLinearMatMul (a: uint8 [.., M, K], b: int8 [K, N]) -> ``quantized.linear`` with
  W = b^T (qint8, per-tensor or per-channel on axis 0 when b_scale is 1-D).
* QGemm (com.microsoft; alpha = 1, y_scale given) -> ``quantized.linear`` with bias C: a float32
  C is torch's float bias as is; an int32 C is accepted on qnnpack only (see ``_torch_bias``).
* QLinearConv (1-D, 2-D or 3-D, NC..., symmetric pads, auto_pad NOTSET) -> ``quantized.conv1d`` /
  ``conv2d`` / ``conv3d`` with their ``conv{n}d_prepack``; the bias B maps as for QGemm.
"""
from __future__ import annotations

import numpy as np

from .._dtypes import qrange, resolve_dtype
from ._errors import EngineUnsupported

PACKAGE = "torch"
QENGINES = ("fbgemm", "x86", "qnnpack", "onednn")


def version():
    import torch
    return torch.__version__


def _qdtype(dt):
    import torch
    dt = np.dtype(dt)
    m = {np.dtype(np.uint8): torch.quint8, np.dtype(np.int8): torch.qint8,
         np.dtype(np.int32): torch.qint32}
    if dt not in m:
        raise EngineUnsupported(f"torch has no quantized dtype for {dt}")
    return m[dt]


def _scalar(a):
    return np.asarray(a).ndim == 0 or np.asarray(a).size == 1 and np.asarray(a).ndim <= 1 and False


def _is_per_tensor(scale):
    return np.asarray(scale).ndim == 0


def _f32(x):
    return np.asarray(x, dtype=np.float32)


def _tensor(x):
    """x as a CPU tensor of the same shape (np.ascontiguousarray alone turns a 0-d array into
    shape (1,), and torch's quantize/dequantize/fake-quantize take 0-d tensors as they are)."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(x).reshape(np.shape(x)))


def _per_axis(x, s, attributes):
    """The normalised ``axis`` of a per-axis (1-D scale) call, or None when the call is
    per-tensor: a scalar scale, or a 0-d x with a one-element scale (ONNX broadcasts it, as
    onnxruntime and the reference do; a 0-d x has no axis to quantize along)."""
    if _is_per_tensor(s):
        return None
    if np.ndim(x) == 0:
        if np.size(s) == 1:
            return None
        raise EngineUnsupported(f"torch per-channel quantization: a 0-d x has no axis for a scale of "
                                f"shape {np.shape(s)}")
    return int(attributes.get("axis", 1)) % np.ndim(x)


# --------------------------------------------------------------------------- quantize / dequantize
def quantize(inputs, attributes):
    import torch
    x = inputs["x"]
    s = inputs["y_scale"]
    zp = inputs.get("y_zero_point")
    odt = np.dtype(zp.dtype) if zp is not None else resolve_dtype(attributes.get("output_dtype") or "uint8")
    if attributes.get("block_size"):
        raise EngineUnsupported("torch has no blocked quantize")
    if x.dtype != np.float32 or s.dtype != np.float32:
        raise EngineUnsupported("torch quantize here: float32 x and scale only")
    zpa = np.zeros(np.shape(s), np.int64) if zp is None else np.asarray(zp, np.int64)
    xt = _tensor(x)
    axis = _per_axis(x, s, attributes)
    if axis is None:
        q = torch.quantize_per_tensor(xt, float(s.reshape(())), int(zpa.reshape(())), _qdtype(odt))
    else:
        q = torch.quantize_per_channel(xt, torch.from_numpy(s.astype(np.float64)),
                                       torch.from_numpy(zpa.reshape(-1)), axis, _qdtype(odt))
    return q.int_repr().numpy().astype(odt)


def dequantize(inputs, attributes):
    import torch
    x = inputs["x"]
    s = inputs["x_scale"]
    zp = inputs.get("x_zero_point")
    if attributes.get("block_size"):
        raise EngineUnsupported("torch has no blocked dequantize")
    if s.dtype != np.float32:
        raise EngineUnsupported("torch dequantize here: float32 scale only")
    _qdtype(x.dtype)
    zpa = np.zeros(np.shape(s), np.int64) if zp is None else np.asarray(zp, np.int64)
    xt = _tensor(x)
    axis = _per_axis(x, s, attributes)
    if axis is None:
        q = torch._make_per_tensor_quantized_tensor(xt, float(s.reshape(())), int(zpa.reshape(())))
    else:
        q = torch._make_per_channel_quantized_tensor(xt, torch.from_numpy(s.astype(np.float64)),
                                                     torch.from_numpy(zpa.reshape(-1)), axis)
    return q.dequantize().numpy()


def fake_quantize(inputs, attributes):
    import torch
    x = inputs["x"]
    s = inputs["y_scale"]
    zp = inputs.get("y_zero_point")
    odt = np.dtype(zp.dtype) if zp is not None else resolve_dtype(attributes.get("output_dtype") or "uint8")
    if attributes.get("block_size"):
        raise EngineUnsupported("torch has no blocked fake-quantize")
    if x.dtype != np.float32 or s.dtype != np.float32:
        raise EngineUnsupported("torch fake-quantize here: float32 x and scale only")
    try:
        qmin, qmax = qrange(odt)
    except Exception:
        raise EngineUnsupported(f"fake-quantize: {odt} is not an integer type") from None
    if qmax - qmin >= 1 << 16:
        # the codes are recovered through a table over every code (2**32 for int32: MemoryError)
        raise EngineUnsupported(f"fake-quantize: codes of {odt} cannot be recovered from the float "
                                "output here (8- and 16-bit outputs only)")
    zpa = np.zeros(np.shape(s), np.int64) if zp is None else np.asarray(zp, np.int64)
    xt = _tensor(x)
    axis = _per_axis(x, s, attributes)
    if axis is None:
        y = torch.fake_quantize_per_tensor_affine(
            xt, torch.tensor(float(s.reshape(())), dtype=torch.float32),
            torch.tensor(int(zpa.reshape(())), dtype=torch.int32), qmin, qmax).numpy()
        return _codes_from_fake(y, s.reshape(1), zpa.reshape(1), 0, qmin, qmax, odt)
    if s.size == 0:
        # torch 2.13 reduces the scale with min() and raises "Expected reduction dim to be
        # specified for input.numel() == 0" (quantize_per_channel takes zero channels)
        raise EngineUnsupported("torch.fake_quantize_per_channel_affine cannot take zero channels "
                                f"(an empty 1-D scale; x has shape {x.shape})")
    y = torch.fake_quantize_per_channel_affine(
        xt, torch.from_numpy(s.reshape(-1).copy()), torch.from_numpy(zpa.reshape(-1).astype(np.int32)),
        axis, qmin, qmax).numpy()
    return _codes_from_fake(y, s.reshape(-1), zpa.reshape(-1), axis, qmin, qmax, odt)


def _codes_from_fake(y, s, zp, axis, qmin, qmax, odt):
    """Invert y = fl32(fl32(q - zp) * s) per channel by table look-up."""
    codes = np.arange(qmin, qmax + 1, dtype=np.int64)
    out = np.empty(y.shape, np.int64)
    ym = np.moveaxis(y, axis, 0) if y.ndim else y.reshape(1)
    om = np.moveaxis(out, axis, 0) if y.ndim else out.reshape(1)
    for c in range(len(s)):
        table = (np.float32(1) * (codes - zp[c]).astype(np.float32) * np.float32(s[c])).astype(np.float32)
        keys = table.view(np.uint32)
        if len(np.unique(table)) != len(table):
            raise EngineUnsupported(f"fake-quantize output cannot be mapped back to codes for scale "
                                    f"{s[c]!r} (distinct codes give the same float)")
        order = np.argsort(keys)
        yc = (ym[c] if len(s) > 1 else ym).astype(np.float32).view(np.uint32)
        pos = np.searchsorted(keys[order], yc)
        pos = np.clip(pos, 0, len(order) - 1)
        if not np.all(keys[order][pos] == yc):
            raise EngineUnsupported("fake-quantize output is not (q - zp) * s for any code q")
        if len(s) > 1:
            om[c] = codes[order][pos]
        else:
            om[...] = codes[order][pos]
    return out.astype(odt)


# --------------------------------------------------------------------------- quantized linear / conv
class _engine:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        import torch
        if self.name not in torch.backends.quantized.supported_engines:
            raise EngineUnsupported(f"torch quantized engine {self.name!r} is not built in")
        self.old = torch.backends.quantized.engine
        torch.backends.quantized.engine = self.name

    def __exit__(self, *a):
        import torch
        torch.backends.quantized.engine = self.old


def _weight(w, scale, zp, axis):
    import torch
    wt = torch.from_numpy(np.ascontiguousarray(w.astype(np.int8)))
    if _is_per_tensor(scale):
        z = np.unique(np.asarray(zp))
        if z.size != 1:
            raise EngineUnsupported("torch quantized weights: a per-tensor scale needs one zero point, "
                                    f"got {z.size} different ones")
        return torch._make_per_tensor_quantized_tensor(wt, float(scale), int(z[0]))
    return torch._make_per_channel_quantized_tensor(
        wt, torch.from_numpy(np.asarray(scale, np.float64).reshape(-1)),
        torch.from_numpy(np.asarray(zp, np.int64).reshape(-1) * np.ones(np.size(scale), np.int64)), axis)


def _torch_bias(engine, C, a_s, b_s, n):
    """The float bias torch takes, from the ONNX bias input.

    * float32 C/B: passed unchanged (the float bias a torch user holds; refquant's float-bias
      profiles take the same float input).
    * int32 C/B on qnnpack: b = fl32(C * S) (S = fl32(a_s*b_s[n])); qnnpack quantizes it back with
      RNE(fl32(b * fl32(1/S))), which is C again (checked).
    * int32 C/B on fbgemm/x86/onednn: refused -- their bias stays float and enters as
      fl32(b / S), which cannot equal every int32 C (the float32 grid of b maps onto every other
      value near C); pass the float bias instead.
    """
    import torch
    if C is None:
        return None
    C = np.asarray(C)
    if np.ndim(C) == 0:
        C = np.full(n, C, C.dtype)
    C = C.reshape(-1)
    if C.size != n:
        raise EngineUnsupported(f"torch quantized ops: the bias must have {n} elements")
    if C.dtype.kind == "f":
        return torch.from_numpy(C.astype(np.float32))
    if C.dtype != np.int32:
        raise EngineUnsupported(f"torch quantized ops: bias must be int32 or float32, got {C.dtype}")
    if engine != "qnnpack":
        raise EngineUnsupported(f"torch engine {engine!r} keeps the bias in float (fl32(b / (a_s*b_s)) is "
                                "added to the accumulator), which cannot represent every int32 bias; "
                                "pass the float32 bias")
    S = (np.float32(a_s) * np.broadcast_to(_f32(b_s).reshape(-1) if np.ndim(b_s) else _f32(b_s), (n,))
         ).astype(np.float32)
    b = (C.astype(np.float64) * S.astype(np.float64)).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        back = np.rint((b * (np.float32(1) / S).astype(np.float32)).astype(np.float32))
    if not np.array_equal(back, C.astype(np.float64)):
        raise EngineUnsupported("qnnpack: this int32 bias does not survive the float round trip")
    return torch.from_numpy(b)


def _act(a, s, zp):
    import torch
    if a.dtype != np.uint8 or np.asarray(zp).dtype != np.uint8:
        raise EngineUnsupported("torch quantized linear/conv: activations must be uint8 (quint8)")
    return torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(a)),
                                                   float(s), int(zp))


def _check_scalar(name, v):
    if np.ndim(v) != 0:
        raise EngineUnsupported(f"torch quantized ops: {name} must be a scalar")


def _check_empty_linear(engine, K, N, what="linear"):
    """Refuse the zero-size shapes torch 2.13's quantized kernels get wrong (measured; an empty
    batch M / N = 0 runs everywhere):

    * a zero-length reduction (K = 0 for linear, 0 input channels for conv): fbgemm and x86
      return uninitialised memory (linear; fbgemm conv too), onednn dies with SIGFPE (linear),
      x86/onednn conv raise "could not create a primitive descriptor"; qnnpack gives the
      correct y_zero_point;
    * no output channels (N = 0 / M = 0): qnnpack dies with SIGFPE (linear) or raises / dies
      (conv); fbgemm conv dies, x86/onednn conv raise; linear on fbgemm/x86/onednn is fine.
    """
    if K == 0 and engine != "qnnpack":
        raise EngineUnsupported(f"torch engine {engine!r}: quantized {what} with a zero-length reduction "
                                "(fbgemm/x86 return uninitialised memory, onednn crashes or raises)")
    if N == 0 and (engine == "qnnpack" or what == "conv"):
        raise EngineUnsupported(f"torch engine {engine!r}: quantized {what} with no output channels "
                                "crashes (SIGFPE) or raises in torch 2.13")


def linear(engine, a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp, C=None):
    import torch
    for n, v in (("a_scale", a_s), ("a_zero_point", a_zp), ("y_scale", y_s), ("y_zero_point", y_zp)):
        _check_scalar(n, v)
    if b.dtype != np.int8 or b.ndim != 2:
        raise EngineUnsupported("torch quantized linear: b must be a 2-D int8 weight")
    if y_zp.dtype != np.uint8:
        raise EngineUnsupported("torch quantized linear: output must be uint8")
    K, N = b.shape
    if a.shape[-1] != K:
        raise ValueError(f"a: its last axis ({a.shape[-1]}) must match b's rows ({K})")
    _check_empty_linear(engine, K, N)
    b_zp = np.zeros((), np.int8) if b_zp is None else b_zp
    with _engine(engine):
        xq = _act(a, a_s, a_zp)
        wq = _weight(b.T, b_s, b_zp, 0)
        packed = torch.ops.quantized.linear_prepack(wq, _torch_bias(engine, C, a_s, b_s, N))
        y = torch.ops.quantized.linear(xq, packed, float(y_s), int(y_zp))
    return y.int_repr().numpy().astype(np.uint8)


def qlinear_matmul(engine, inputs, attributes):
    i = inputs
    return linear(engine, i["a"], i["a_scale"], i["a_zero_point"], i["b"], i["b_scale"],
                  i.get("b_zero_point"), i["y_scale"], i["y_zero_point"])


def qgemm(engine, inputs, attributes):
    i = inputs
    if float(attributes.get("alpha", 1.0)) != 1.0:
        raise EngineUnsupported("torch quantized linear has no alpha")
    if i.get("y_scale") is None:
        raise EngineUnsupported("torch quantized linear: QGemm with float output")
    A, B = i["A"], i["B"]
    if attributes.get("transA", 0):
        A = A.T
    if attributes.get("transB", 0):
        B = B.T
    return linear(engine, A, i["a_scale"], i["a_zero_point"], B, i["b_scale"], i.get("b_zero_point"),
                  i["y_scale"], i.get("y_zero_point", np.zeros((), np.uint8)), i.get("C"))


def qlinear_conv(engine, inputs, attributes):
    import torch
    i = inputs
    x, w = i["x"], i["w"]
    for n in ("x_scale", "x_zero_point", "y_scale", "y_zero_point"):
        _check_scalar(n, i[n])
    if x.ndim not in (3, 4, 5) or w.dtype != np.int8:
        raise EngineUnsupported("torch quantized conv1d/2d/3d: 3-, 4- or 5-D x and int8 w only")
    nd = x.ndim - 2
    if i["y_zero_point"].dtype != np.uint8:
        raise EngineUnsupported("torch quantized conv: output must be uint8")
    if attributes.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise EngineUnsupported("torch quantized conv: auto_pad must be NOTSET")
    pads = list(attributes.get("pads") or [0] * (2 * nd))
    if pads[:nd] != pads[nd:]:
        raise EngineUnsupported("torch quantized conv: asymmetric pads")
    strides = list(attributes.get("strides") or [1] * nd)
    dil = list(attributes.get("dilations") or [1] * nd)
    # a dilation along a kernel axis of size 1 changes nothing; torch 2.13's onednn engine dies
    # with SIGSEGV on some of them (1x1 kernel, dilation 2, stride 2, width 1, width pad 1 or 3)
    dil = [1 if k == 1 else d for k, d in zip(w.shape[2:], dil)]
    group = int(attributes.get("group", 1))
    M = w.shape[0]
    for D, k, st, d, p in zip(x.shape[2:], w.shape[2:], strides, dil, pads[:nd]):
        if D + 2 * p < (k - 1) * d + 1:
            # torch 2.13: fbgemm raises, x86/onednn return an empty tensor, qnnpack dies with
            # SIGFPE (3-D); refquant refuses such a conv (ValueError), so do not run it
            raise EngineUnsupported("torch quantized conv: the kernel is larger than the padded input "
                                    "(torch would return an empty tensor, raise, or crash on qnnpack)")
    _check_empty_linear(engine, int(np.prod(w.shape[1:])), M, "conv")
    w_zp = i.get("w_zero_point")
    w_zp = np.zeros((), np.int8) if w_zp is None else w_zp
    with _engine(engine):
        xq = _act(x, i["x_scale"], i["x_zero_point"])
        wq = _weight(w, i["w_scale"], w_zp, 0)
        prepack = getattr(torch.ops.quantized, f"conv{nd}d_prepack")
        try:
            packed = prepack(wq, _torch_bias(engine, i.get("B"), i["x_scale"], i["w_scale"], M),
                             strides, pads[:nd], dil, group)
            y = getattr(torch.ops.quantized, f"conv{nd}d")(xq, packed, float(i["y_scale"]), int(i["y_zero_point"]))
        except RuntimeError as e:
            if nd != 2 and ("not supported" in str(e).lower() or "supported" in str(e).lower()):
                raise EngineUnsupported(f"torch engine {engine!r}: quantized conv{nd}d: {e}") from e
            raise
    return y.int_repr().numpy().astype(np.uint8)
