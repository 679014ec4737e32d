"""Integer convolution reference: ConvInteger-10, QLinearConv-10.

Semantics block
===============

Shapes: x (N, C, D1..Dn), w (M, C/group, k1..kn), n = 1, 2 or 3 (any n >= 1 works).

    acc[b, m, o] = wrap32( sum_{c in group(m), j} (x_pad[b, c, o*s + j*d] - x_zp) * (w[m, c, j] - w_zp[m]) )

- x_pad is x padded with ``pads`` (begin..., end...) *with the value x_zp* (so padded
  taps contribute 0, exactly as an ONNX float Conv of the dequantized input pads with 0).
- Output size per axis: ``floor((D + pad_begin + pad_end - ((k - 1) * d + 1)) / s) + 1``;
  it must be >= 1 (otherwise the kernel is larger than the padded input: ValueError).
- ``auto_pad``: NOTSET (use ``pads``, default 0), VALID (no padding), SAME_UPPER /
  SAME_LOWER: out = ceil(D / s), total = max(0, (out - 1) * s + (k - 1) * d + 1 - D);
  SAME_UPPER puts total // 2 at the beginning (the extra one at the end), SAME_LOWER
  puts (total + 1) // 2 at the beginning.  Non-zero ``pads`` together with a non-NOTSET
  auto_pad are rejected (all-zero pads are accepted, as onnx's reference evaluator accepts
  them; onnxruntime refuses any ``pads`` there).
- ``group``: C and M must both be divisible by it; w.shape[1] == C / group.
  Depthwise = group == C.
- Accumulation: im2col (numpy ``sliding_window_view``, a view) + the exact float64 GEMM of
  ``gemm.py`` (products and partial sums are integers < 2^53: exact), wrapped to int32.
  The reduction index is ordered (kernel position, input channel) with the channel
  fastest -- the NHWC im2col order of ORT's QLinearConv and fbgemm; it only matters
  for ``Profile.int16_pair_saturation``, where pairs (k, k+1) of that order of the raw
  (x, w) values are summed into a saturating int16 when one operand is uint8 and the
  other int8 (the padded taps hold the raw x_zp).  True: every convolution.  "mlas" (ONNX
  Runtime's AVX2 kernels): every convolution except QLinearConv's depthwise ones
  (C/group == M/group == 1): ORT routes those to
  MlasConvDepthwise, which widens both operands to int16 and multiplies into int32
  (``_mm256_mullo_epi16`` / ``_mm256_mulhi_epi16``, qdwconv_avx2.cpp; the symmetric kernel
  widens to int32 before ``vpmaddwd``): no pair saturates.  Not modelled (UNCONFIRMED, no
  AVX2-only machine to measure on): ORT's ConvInteger uses an NCHW im2col (reduction order
  (channel, kernel position), W as the GEMM's A operand).
  ``int16_pair_saturation="fbgemm_depthwise"`` (when the Profile field admits it)
  saturates only convolutions that take fbgemm's depthwise fast path, see
  :func:`fbgemm_depthwise_fast_path`: that kernel is AVX2 code (vpmaddubsw) even on VNNI /
  AVX-512 CPUs, where fbgemm's GEMM, im2col and groupwise paths do not saturate
  (measured on torch 2.13 engine "fbgemm", bit-exact).

ConvInteger: Y = acc (int32).  x_zero_point scalar; w_zero_point scalar or per output
channel (M,).  uint8/int8 for x and w in any combination.

QLinearConv: y = saturate(round((acc + B) * M[m]) + y_zp) with
M[m] = a_s*w_s[m]/y_s formed and applied by ``requant.requantize`` under the profile
(``onnx``: M = fl32(fl32(x_s*w_s[m])/y_s), wrap32(acc + B) -> fl32, * M in float32, RNE,
+ y_zp, saturate).  x/y scale and zero point scalar; w scale / zero point scalar or
per output channel; B int32 of shape (M,).  With a float-bias profile
(``rq_bias="float"``, fbgemm) B may be float32: it is then divided by fl32(x_s*w_s[m])
in float32 and added to fl32(acc) (see ``requant.py``).
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._dtypes import refuse_masked
from ..profile import get_profile
from .gemm import (_int_tensor, _zp, _symmetric_check, _weight_check, _check_opset, _pair_terms, _INT8,
                   _MAX_EXACT_K, _multiplier_check)
from .requant import requantize, form_multiplier, wrap_int32, check_scale

__all__ = ["conv_integer", "qlinear_conv", "conv_output_shape", "fbgemm_depthwise_fast_path"]

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _ints(v, n, argname, default, minimum):
    if v is None:
        return [default] * n
    try:
        vals = list(v)
    except TypeError:
        raise TypeError(f"{argname}: expected a list of ints, got {v!r}") from None
    # ONNX attributes of type INTS: a float (1.9), a string or a bool is not silently truncated
    if not all(isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_)) for t in vals):
        raise TypeError(f"{argname}: expected a list of ints, got {v!r}")
    vals = [int(t) for t in vals]
    if len(vals) != n:
        raise ValueError(f"{argname}: expected {n} values for a {n}-D convolution, got {len(vals)}")
    if any(t < minimum for t in vals):
        raise ValueError(f"{argname}: values must be >= {minimum}, got {vals}")
    return vals


def _conv_geometry(x_shape, w_shape, auto_pad, dilations, group, kernel_shape, pads, strides):
    """Validate the attributes; return (pads_begin, pads_end, strides, dilations, out_shape)."""
    if len(x_shape) < 3:
        raise ValueError(f"x: expected (N, C, D1, ...) with at least one spatial axis, got shape {tuple(x_shape)}")
    if len(w_shape) != len(x_shape):
        raise ValueError(f"w: expected {len(x_shape)}-D weights (M, C/group, k...) for a {len(x_shape)}-D x, "
                         f"got shape {tuple(w_shape)}")
    nd = len(x_shape) - 2
    # an integer attribute: 1.0 or True used to pass here and fail later inside numpy
    if isinstance(group, (bool, np.bool_)) or not isinstance(group, (int, np.integer)):
        raise TypeError(f"group: expected an int, got {group!r}")
    group = int(group)
    if group < 1:
        raise ValueError(f"group: must be >= 1, got {group}")
    C, M = x_shape[1], w_shape[0]
    if C % group:
        raise ValueError(f"group: {group} does not divide the {C} input channels of x")
    if M % group:
        raise ValueError(f"group: {group} does not divide the {M} output channels (w.shape[0])")
    if w_shape[1] * group != C:
        raise ValueError(f"w: w.shape[1] * group must equal the input channels: {w_shape[1]} * {group} != {C}")
    kernel = list(w_shape[2:])
    if kernel_shape is not None and _ints(kernel_shape, len(kernel), "kernel_shape", 1, 1) != kernel:
        raise ValueError(f"kernel_shape: {list(kernel_shape)} does not match the weight shape {kernel}")
    if any(k < 1 for k in kernel):
        raise ValueError(f"w: empty kernel {kernel}")
    strides = _ints(strides, nd, "strides", 1, 1)
    dilations = _ints(dilations, nd, "dilations", 1, 1)
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in (None, ""):
        auto_pad = "NOTSET"
    if auto_pad not in _AUTO_PADS:
        raise ValueError(f"auto_pad: expected one of {_AUTO_PADS}, got {auto_pad!r}")
    if auto_pad != "NOTSET" and pads is not None and any(int(p) for p in pads):
        raise ValueError(f"pads: cannot be used together with auto_pad={auto_pad!r}")
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    spatial = list(x_shape[2:])
    if auto_pad == "NOTSET":
        pv = _ints(pads, 2 * nd, "pads", 0, 0)
        pb, pe = pv[:nd], pv[nd:]
    elif auto_pad == "VALID":
        pb, pe = [0] * nd, [0] * nd
    else:
        pb, pe = [], []
        for D, s, e in zip(spatial, strides, eff):
            out = -(-D // s)
            total = max(0, (out - 1) * s + e - D)
            head = total // 2 if auto_pad == "SAME_UPPER" else (total + 1) // 2
            pb.append(head)
            pe.append(total - head)
    out = []
    for i, (D, s, e) in enumerate(zip(spatial, strides, eff)):
        padded = D + pb[i] + pe[i]
        if padded < e:
            raise ValueError(f"w: kernel extent {e} (kernel {kernel[i]}, dilation {dilations[i]}) is larger "
                             f"than the padded input {padded} on spatial axis {i}")
        out.append((padded - e) // s + 1)
    return pb, pe, strides, dilations, out


def conv_output_shape(x_shape, w_shape, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                      pads=None, strides=None):
    """Output shape (N, M, out...) of ConvInteger / QLinearConv for these attributes."""
    *_, out = _conv_geometry(tuple(x_shape), tuple(w_shape), auto_pad, dilations, group, kernel_shape,
                             pads, strides)
    return (x_shape[0], w_shape[0], *out)


def _columns(xv, pb, pe, strides, dilations, kernel, group, fill):
    """im2col: (N, g, L, k1*..*kn*Cg) with the input channel fastest."""
    N, C = xv.shape[:2]
    nd = xv.ndim - 2
    xp = np.pad(xv, [(0, 0), (0, 0)] + list(zip(pb, pe)), mode="constant", constant_values=fill)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    win = sliding_window_view(xp, eff, axis=tuple(range(2, 2 + nd)))
    sl = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + \
        tuple(slice(None, None, d) for d in dilations)
    win = win[sl]                                    # (N, C, out..., k...)
    out = win.shape[2:2 + nd]
    Cg = C // group
    win = win.reshape((N, group, Cg) + win.shape[2:])
    perm = (0, 1) + tuple(range(3, 3 + nd)) + tuple(range(3 + nd, 3 + 2 * nd)) + (2,)
    cols = win.transpose(perm)                       # (N, g, out..., k..., Cg)
    L = int(np.prod(out))
    Kd = int(np.prod(kernel)) * Cg
    return cols.reshape(N, group, L, Kd), list(out)


def _weights_T(wv, group):
    """(g, Kd, Mg) with the reduction index (k..., c) like the columns."""
    M = wv.shape[0]
    nd = wv.ndim - 2
    Cg = wv.shape[1]
    w = wv.reshape((group, M // group, Cg) + wv.shape[2:])
    w = w.transpose((0, 1) + tuple(range(3, 3 + nd)) + (2,))
    Kd = Cg * int(np.prod(wv.shape[2:], dtype=np.int64))   # explicit: -1 is ambiguous when M == 0
    return w.reshape(group, M // group, Kd).transpose(0, 2, 1)


def fbgemm_depthwise_fast_path(x_shape, w_shape, *, group, strides, dilations, pads_begin, pads_end) -> bool:
    """Whether fbgemm (PyTorch engine "fbgemm") runs this conv on its depthwise fast path.

    fbgemm ``takeDepthWiseFastPath`` (src/FbgemmConv.cc) as measured with torch 2.13: 2-D or
    3-D, G == C_in, C_out in {G, 2G}, G % 8 == 0, every stride 1 or 2, a cubic kernel of size 3,
    5 or 7 (7 measured on 2-D and 3-D; the FBGEMM source read says 3 or 5), dilation 1, pads (k - 1) / 2 at
    both ends.  That kernel sums u8 x s8 pairs with int16 saturation on every x86 CPU.
    """
    nd = len(x_shape) - 2
    k = list(w_shape[2:])
    C, M = x_shape[1], w_shape[0]
    return (nd in (2, 3) and group == C and M in (group, 2 * group) and group % 8 == 0 and
            all(s in (1, 2) for s in strides) and len(set(k)) == 1 and k[0] in (3, 5, 7) and
            all(d == 1 for d in dilations) and
            all(pb == pe == (k[0] - 1) // 2 for pb, pe in zip(pads_begin, pads_end)))


def _asymmetric(zp) -> bool:
    """A non-zero weight zero point (the "asymmetric_weights" override selector)."""
    if zp is None:
        return False
    if isinstance(zp, np.integer):
        return bool(zp != 0)
    z = np.asarray(zp)
    return bool(z.dtype.kind in "iu" and z.any())


def _pair_saturation_applies(p, xdt, wdt, x_shape, w_shape, group, strides, dilations, pb, pe,
                             op="ConvInteger") -> bool:
    if p is None or {xdt, wdt} != {np.dtype(np.uint8), np.dtype(np.int8)}:
        return False
    mode = p.int16_pair_saturation
    if mode is True:
        return True
    if mode == "mlas":
        # every conv but QLinearConv's depthwise ones (one input and one output channel a
        # group): ORT runs those with MlasConvDepthwise, which widens to int16 and multiplies
        # into int32 (mullo/mulhi, qdwconv_avx2.cpp) -- exact
        return not (op == "QLinearConv" and x_shape[1] // group == 1 and w_shape[0] // group == 1)
    if mode == "fbgemm_depthwise":
        return fbgemm_depthwise_fast_path(x_shape, w_shape, group=group, strides=strides, dilations=dilations,
                                          pads_begin=pb, pads_end=pe)
    return False


def _conv_accumulate(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None,
                     group=1, kernel_shape=None, pads=None, strides=None, profile=None, exact=False,
                     count_pairs=False, int_conv=None, op="ConvInteger"):
    """Accumulator of ConvInteger: int32 (wrapped) or, with exact=True, int64; and the count
    of saturating int16 pairs (u8 x s8 only, when count_pairs) or None.  ``int_conv(x, w, xz,
    wz)`` (the fast glue's): the int32 accumulator by the kernels, after every check here, for
    the wrapped int32 result without int16 pair saturation; None from it: computed here."""
    x = _int_tensor(x, "x")
    w = _int_tensor(w, "w")
    pb, pe, strides, dilations, out = _conv_geometry(x.shape, w.shape, auto_pad, dilations, group,
                                                     kernel_shape, pads, strides)
    N, C = x.shape[:2]
    M = w.shape[0]
    kernel = list(w.shape[2:])
    xz = _zp(x_zero_point, x.dtype, "x_zero_point", "x")
    wz = _zp(w_zero_point, w.dtype, "w_zero_point", "w")
    if xz is not None and xz.size != 1:
        raise ValueError(f"x_zero_point: must be a scalar (per-tensor), got shape {xz.shape}")
    if wz is not None and not (wz.size == 1 or (wz.ndim == 1 and wz.shape[0] == M)):
        raise ValueError(f"w_zero_point: must be a scalar or 1-D of {M} output channels, got shape {wz.shape}")
    p = get_profile(profile) if profile is not None else None
    if p is not None:
        _symmetric_check(p, x_zero_point=xz, w_zero_point=wz)
        _weight_check(p, w.dtype, wz, "w (the weight)")
        if group > 1 and (getattr(p, "extra", None) or {}).get("groups") == "refuse":
            from ..profile import ProfileError
            raise ProfileError(f"profile {p.name!r}: group={group}: {p.extra.get('groups_error', 'not modelled')}")
    xzv = 0 if xz is None else int(xz.reshape(-1)[0])
    Kd = int(np.prod(kernel)) * (C // group)
    if Kd >= _MAX_EXACT_K:
        raise ValueError(f"w: reduction size {Kd} too large for the exact float64 accumulation")
    pair_sat = _pair_saturation_applies(p, x.dtype, w.dtype, x.shape, w.shape, int(group), strides, dilations,
                                        pb, pe, op)
    if int_conv is not None and not (exact or count_pairs or pair_sat):
        acc = int_conv(x, w, xz, wz)
        if acc is not None:
            return acc, None
    xf = x.astype(np.float64)
    if xzv:
        xf -= xzv
    wf = w.astype(np.float64)
    if wz is not None:
        wf -= wz.reshape((-1,) + (1,) * (w.ndim - 1)) if wz.size != 1 else wz.reshape(())
    wT = _weights_T(wf, group)                      # (g, Kd, Mg)
    L = int(np.prod(out))
    acc = np.empty((N, M, L), dtype=np.int64)
    # batch chunks keep the column buffer around <= 64 MiB
    per = max(1, (1 << 23) // max(1, L * Kd * group))
    want_count = count_pairs and {x.dtype, w.dtype} == {np.dtype(np.uint8), np.dtype(np.int8)}
    npair = 0 if want_count else None
    wT_raw = _weights_T(w, group) if (pair_sat or want_count) else None
    for n0 in range(0, N, per):
        cols, _ = _columns(xf[n0:n0 + per], pb, pe, strides, dilations, kernel, group, 0.0)
        r = np.matmul(cols, wT)                     # (n, g, L, Mg), exact integers
        nb = r.shape[0]                            # explicit batch: -1 is ambiguous when M == 0
        a = r.transpose(0, 1, 3, 2).reshape(nb, M, L).astype(np.int64)
        if pair_sat or want_count:
            cols_raw, _ = _columns(x[n0:n0 + per], pb, pe, strides, dilations, kernel, group, xzv)
            corr, ns = _pair_terms(cols_raw, wT_raw[None], count_only=not pair_sat)
            if pair_sat:
                a = a + corr.transpose(0, 1, 3, 2).reshape(nb, M, L)
            if want_count:
                npair += ns
        acc[n0:n0 + per] = a
    acc = acc.reshape((N, M) + tuple(out))
    return (acc if exact else wrap_int32(acc)), npair


def conv_integer(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None,
                 group=1, kernel_shape=None, pads=None, strides=None, profile="onnx", opset=None):
    """ONNX ConvInteger-10: int32 ``Y = wrap32(conv(x - x_zero_point, w - w_zero_point))``.

    1-D/2-D/3-D, groups (depthwise), strides, dilations, pads, every auto_pad; x and w
    uint8/int8 in any combination; x_zero_point scalar, w_zero_point scalar or per output
    channel.  See the module docstring for the exact formula and padding rules.
    """
    p = get_profile(profile)
    p.check_op("ConvInteger")
    p = p.for_op("ConvInteger")
    _check_opset("ConvInteger", opset, 10)
    acc, _ = _conv_accumulate(x, w, x_zero_point, w_zero_point, auto_pad=auto_pad, dilations=dilations,
                              group=group, kernel_shape=kernel_shape, pads=pads, strides=strides, profile=p)
    return acc


def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B=None, *,
                 auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None,
                 profile="onnx", opset=None):
    """ONNX QLinearConv-10: ``y = saturate(round((acc + B) * x_scale*w_scale[m]/y_scale) + y_zero_point)``.

    acc as in :func:`conv_integer`; the multiplier and epilogue follow the profile's rq_*
    fields (``requant.py``).  x/y scale and zero point: scalars; w scale/zero point: scalar
    or per output channel (M,); B: int32 (M,) (float32 allowed with rq_bias="float").
    Output type = y_zero_point's type (x's type when it is a Python int).
    """
    return _qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B,
                         auto_pad, dilations, group, kernel_shape, pads, strides, profile, opset, None)


def _qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B,
                  auto_pad, dilations, group, kernel_shape, pads, strides, profile, opset, int_conv,
                  requant=None):
    """qlinear_conv with the integer conv given (see _conv_accumulate's int_conv) and, optionally,
    the fast glue's requantize (``requant``: called as ``requantize`` below, same arguments and
    the same result)."""
    p = get_profile(profile)
    p.check_op("QLinearConv")
    p = p.for_op("QLinearConv")
    _check_opset("QLinearConv", opset, 10)
    x_ = _int_tensor(x, "x")
    w_ = _int_tensor(w, "w")
    M = w_.shape[0] if w_.ndim else 0
    xs = check_scale(x_scale, "x_scale")
    ws = check_scale(w_scale, "w_scale")
    ys = check_scale(y_scale, "y_scale")
    if xs.size != 1:
        raise ValueError(f"x_scale: must be a scalar (per-tensor), got shape {xs.shape}")
    if ys.size != 1:
        raise ValueError(f"y_scale: must be a scalar (per-tensor), got shape {ys.shape}")
    if not (ws.size == 1 or (ws.ndim == 1 and ws.shape[0] == M)):
        raise ValueError(f"w_scale: must be a scalar or 1-D of {M} output channels, got shape {ws.shape}")
    if y_zero_point is not None and np.size(y_zero_point) != 1:
        raise ValueError(f"y_zero_point: must be a scalar (per-tensor), got shape {np.shape(y_zero_point)}")
    if isinstance(y_zero_point, (np.ndarray, np.generic)):
        out_dt = np.asarray(y_zero_point).dtype
        if out_dt not in _INT8:
            raise TypeError(f"y_zero_point: uint8 or int8 expected, got {out_dt}")
    else:
        out_dt = x_.dtype
    yz = _zp(y_zero_point, out_dt, "y_zero_point", "y")
    if p.symmetric_only:
        _symmetric_check(p, y_zero_point=yz)
    # the overrides selected by the weight-scale granularity and the activation type
    p = get_profile(profile).for_op("QLinearConv", per_axis=bool(ws.size > 1), dtype=x_.dtype,
                                    asymmetric_weights=_asymmetric(w_zero_point))
    if (ws.size > 1 and x_.dtype == np.uint8
            and (getattr(p, "extra", None) or {}).get("per_channel_conv") == "int8_int16_input"):
        from ..profile import ProfileError
        raise ProfileError(f"profile {p.name!r}: per-channel w_scale with a uint8 x: "
                           f"{p.extra.get('per_channel_conv_error', 'refused by the engine')}")
    acc, _ = _conv_accumulate(x_, w_, x_zero_point, w_zero_point, auto_pad=auto_pad, dilations=dilations,
                              group=group, kernel_shape=kernel_shape, pads=pads, strides=strides, profile=p,
                              int_conv=int_conv, op="QLinearConv")
    bias = None
    bias_scale = None
    if B is not None:
        refuse_masked(B, "B")
        b = np.asarray(B)
        if b.ndim != 1 or b.shape[0] != M:
            raise ValueError(f"B: bias must be 1-D with {M} elements (output channels), got shape {b.shape}")
        if b.dtype == np.int32:
            bias = b
        elif b.dtype.kind == "f" and p.rq_bias != "int32":
            bias = b.astype(np.float32)
            if p.rq_bias in ("float", "float_rcp_fma"):
                bias_scale = (xs.reshape(()) * ws.reshape(-1)).astype(np.float32)
                if bias_scale.size == 1:
                    bias_scale = bias_scale.reshape(())
            else:
                bias_scale = ys.reshape(())
        else:
            raise TypeError(f"B: QLinearConv bias must be int32 (float32 only with a float-bias profile), "
                            f"got {b.dtype}")
    ws1 = ws.reshape(-1) if ws.size != 1 else ws.reshape(())
    Mul = form_multiplier(xs.reshape(()), ws1, ys.reshape(()), profile=p,
                          names=("x_scale", "w_scale", "y_scale"))
    _multiplier_check(p, Mul, (xs.reshape(()), ws1))
    scales = (xs.reshape(()), ws1, ys.reshape(())) if p.rq_multiplier == "onednn" else None
    return (requant or requantize)(acc, Mul, None if yz is None else yz.reshape(()), output_dtype=out_dt,
                                   bias=bias, profile=p, axis=1, bias_scale=bias_scale, scales=scales)
