"""Input generators that concentrate on the values where engines disagree: rounding ties
(k + 0.5)*s and their float32 neighbours, saturation boundaries, NaN/+-Inf/huge values, tiny and
denormal scales, large accumulators (|acc| > 2^24), and sizes that are not multiples of SIMD
widths.  Used by the live profile tests and reusable by a conformance/golden command.

Every generator takes a ``numpy.random.Generator`` and returns an ONNX-style input dict.
"""
from __future__ import annotations

import numpy as np

from .._dtypes import qrange

__all__ = ["SCALES", "SPECIALS", "tie_values", "quantize_case", "dequantize_case",
           "matmul_case", "conv_case", "to_qgemm", "sizes", "compare", "check_engine"]

_F32 = np.float32
# scales that make x/s and x*fl32(1/s) disagree at ties, exact powers of two, and denormals
SCALES = _F32([0.00214854861, 0.10260841, 0.05269162, 1.0, 0.3, 7.77e-3, 0.0173, 0.5, 2.0 ** -7,
               3.0517578e-05, 1e-3, 123.456, 1e-38, 1e-40, 3e-45])
SPECIALS = _F32([np.nan, -np.nan, np.inf, -np.inf, 3e9, -3e9, 2.2e9, -2.2e9, 1e38, -1e38, 0.0, -0.0])


def sizes(large=False):
    """1..67 (every SIMD tail of 4/8/16/32/64 lanes) plus 1000+ sizes when ``large``."""
    s = list(range(1, 68))
    if large:
        s += [1000, 1023, 1024, 1025, 4099]
    return s


def tie_values(rng, n, scale, qmin=-128, qmax=127, zp=0, specials=True):
    """n float32 values concentrated on ties of ``scale``: (k+0.5)*s, its float32 neighbours,
    k*s, the saturation boundaries (qmin-zp-0.5)*s, (qmax-zp+0.5)*s, plus specials."""
    s = _F32(scale)
    lo, hi = qmin - int(zp) - 3, qmax - int(zp) + 3
    k = rng.integers(lo, hi + 1, n).astype(np.float64)
    kind = rng.integers(0, 6, n)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        base = ((k + 0.5) * np.float64(s)).astype(_F32)
        up = np.nextafter(base, _F32(np.inf))
        dn = np.nextafter(base, _F32(-np.inf))
        exact = (k * np.float64(s)).astype(_F32)
        uni = (rng.uniform(lo, hi, n) * np.float64(s)).astype(_F32)
    x = np.select([kind == 0, kind == 1, kind == 2, kind == 3, kind == 4], [base, up, dn, exact, uni],
                  base).astype(_F32)
    if specials and n >= 4:
        m = min(len(SPECIALS), max(1, n // 8))
        idx = rng.choice(n, m, replace=False)
        x[idx] = rng.choice(SPECIALS, m)
    return x


def quantize_case(rng, n, dtype, *, scale=None, zp=None, per_axis=False, channels=3, specials=True):
    """QuantizeLinear inputs.  ``per_axis``: x is (n, channels) with a 1-D scale on axis 1."""
    dt = np.dtype(dtype)
    qmin, qmax = qrange(dt)
    if per_axis:
        scales = rng.choice(SCALES[SCALES > 1e-30], channels).astype(_F32) if scale is None \
            else np.asarray(scale, _F32)
        zps = rng.integers(max(qmin, -20), min(qmax, 20) + 1, channels) if zp is None else np.asarray(zp)
        if dt == np.uint8:
            zps = rng.integers(0, 256, channels) if zp is None else zps
        cols = [tie_values(rng, n, scales[c], qmin, qmax, zps[c], specials) for c in range(channels)]
        return {"x": np.stack(cols, axis=1), "y_scale": scales, "y_zero_point": zps.astype(dt)}
    s = _F32(rng.choice(SCALES) if scale is None else scale)
    if zp is None:
        zp = int(rng.choice([0, 1, -1, qmin, qmax, (qmin + qmax) // 2, 7])) if qmin < 0 else \
            int(rng.choice([0, 1, 128, qmax, 7]))
        zp = min(max(zp, qmin), qmax)
    return {"x": tie_values(rng, n, s, qmin, qmax, zp, specials), "y_scale": s,
            "y_zero_point": np.asarray(zp).astype(dt)}


def dequantize_case(rng, n, dtype, *, per_axis=False, channels=3):
    dt = np.dtype(dtype)
    qmin, qmax = qrange(dt)
    if per_axis:
        x = rng.integers(qmin, qmax + 1, (n, channels)).astype(dt)
        return {"x": x, "x_scale": rng.choice(SCALES, channels).astype(_F32),
                "x_zero_point": rng.integers(qmin, qmax + 1, channels).astype(dt)}
    x = rng.integers(qmin, qmax + 1, n, endpoint=False).astype(dt)
    x[: min(n, 2)] = [qmin, qmax][: min(n, 2)]
    return {"x": x, "x_scale": _F32(rng.choice(SCALES)),
            "x_zero_point": np.asarray(rng.integers(qmin, qmax + 1)).astype(dt)}


def _multiplier_scales(rng, acc_absmax, tie, per_col=None):
    """(a_s, b_s(per column or scalar), y_s) so that acc*M spans about +-150 (some saturation);
    ``tie``: a_s*b_s and y_s powers of two, so acc*M hits exact .5 ties often."""
    span = max(1.0, float(acc_absmax) / 150.0)
    if tie:
        a_s = _F32(2.0 ** -int(rng.integers(1, 6)))
        b_s = _F32(2.0 ** -int(rng.integers(1, 6)))
        y_s = _F32(float(a_s) * float(b_s) * 2.0 ** int(np.ceil(np.log2(span))) / float(rng.choice([1, 2, 4])))
        if per_col:
            b_s = (b_s * (2.0 ** -rng.integers(0, 3, per_col))).astype(_F32)
        return a_s, b_s, y_s
    a_s = _F32(rng.uniform(0.001, 0.05))
    b_s = _F32(rng.uniform(0.001, 0.05)) if not per_col else rng.uniform(0.001, 0.05, per_col).astype(_F32)
    y_s = _F32(float(a_s) * float(np.mean(b_s)) * span * rng.uniform(0.6, 1.4))
    return a_s, b_s, y_s


def _float_bias(C, a_s, b_s):
    """A float32 bias near C * fl32(a_s*b_s) (what a float-bias engine such as fbgemm receives)."""
    S = (np.float32(a_s) * np.asarray(b_s, np.float32)).astype(np.float32)
    return (C.astype(np.float64) * S.astype(np.float64)).astype(np.float32)


def matmul_case(rng, M, K, N, *, a_dtype="uint8", b_dtype="int8", y_dtype=None, per_column=False,
                tie=True, b_symmetric=True, bias=False, large=False, a_zp=None, bias_dtype="int32"):
    """QLinearMatMul inputs (add ``C`` for QGemm with ``bias=True``; ``bias_dtype="float32"``
    gives a float bias near C*a_s*b_s for the float-bias engines).  ``large``: operands near
    their extremes so that |acc| exceeds 2^24 for K >= 1100."""
    adt, bdt = np.dtype(a_dtype), np.dtype(b_dtype)
    ydt = np.dtype(y_dtype or a_dtype)
    amin, amax = qrange(adt)
    bmin, bmax = qrange(bdt)
    if large:
        a = rng.integers(amax - 3, amax + 1, (M, K)).astype(adt)
        b = rng.integers(bmax - 3, bmax + 1, (K, N)).astype(bdt)
    else:
        a = rng.integers(amin, amax + 1, (M, K)).astype(adt)
        b = rng.integers(max(bmin, -127), bmax + 1, (K, N)).astype(bdt)
    a_zp = np.asarray(a_zp if a_zp is not None else
                      (rng.integers(amin, amax + 1) if not large else (0 if amin == 0 else amin))).astype(adt)
    if b_symmetric:
        b_zp = np.zeros(N if per_column else (), bdt)
    else:
        b_zp = rng.integers(max(bmin, -10), min(bmax, 10) + 1, N if per_column else ()).astype(bdt)
    acc = (a.astype(np.int64) - a_zp.astype(np.int64)) @ (b.astype(np.int64) - b_zp.astype(np.int64))
    C = rng.integers(-5000, 5000, N).astype(np.int32) if bias else None
    if C is not None:
        acc = acc + C
    a_s, b_s, y_s = _multiplier_scales(rng, np.abs(acc).max(), tie, N if per_column else None)
    ymin, ymax = qrange(ydt)
    d = {"a": a, "a_scale": a_s, "a_zero_point": a_zp, "b": b, "b_scale": b_s, "b_zero_point": b_zp,
         "y_scale": y_s,
         "y_zero_point": np.asarray(rng.integers(100, 156) if ymin == 0 else rng.integers(-20, 21)).astype(ydt)}
    if bias:
        d["C"] = C if np.dtype(bias_dtype) == np.int32 else _float_bias(C, a_s, b_s)
    return d


def to_qgemm(d):
    """QLinearMatMul-style dict -> QGemm input names."""
    out = {"A": d["a"], "a_scale": d["a_scale"], "a_zero_point": d["a_zero_point"], "B": d["b"],
           "b_scale": d["b_scale"], "b_zero_point": d["b_zero_point"], "y_scale": d["y_scale"],
           "y_zero_point": d["y_zero_point"]}
    if d.get("C") is not None:
        out["C"] = d["C"]
    return out


def conv_case(rng, N, C, H, W, M, kh, kw, *, x_dtype="uint8", w_dtype="int8", per_channel=True,
              tie=True, bias=True, pads=(0, 0, 0, 0), strides=(1, 1), group=1, bias_dtype="int32"):
    """QLinearConv inputs and attributes."""
    xdt, wdt = np.dtype(x_dtype), np.dtype(w_dtype)
    xmin, xmax = qrange(xdt)
    x = rng.integers(xmin, xmax + 1, (N, C, H, W)).astype(xdt)
    w = rng.integers(-127, 128, (M, C // group, kh, kw)).astype(wdt)
    x_zp = np.asarray(rng.integers(xmin, xmax + 1)).astype(xdt)
    w_zp = np.zeros(M if per_channel else (), wdt)
    B = rng.integers(-3000, 3000, M).astype(np.int32) if bias else None
    est = (xmax - xmin) * 127 * C // group * kh * kw / 3
    x_s, w_s, y_s = _multiplier_scales(rng, est, tie, M if per_channel else None)
    y_zp = np.asarray(rng.integers(100, 156) if xmin == 0 else rng.integers(-20, 21)).astype(xdt)
    d = {"x": x, "x_scale": x_s, "x_zero_point": x_zp, "w": w, "w_scale": w_s, "w_zero_point": w_zp,
         "y_scale": y_s, "y_zero_point": y_zp}
    if B is not None:
        d["B"] = B if np.dtype(bias_dtype) == np.int32 else _float_bias(B, x_s, w_s)
    attrs = {"pads": list(pads), "strides": list(strides), "group": group,
             "kernel_shape": [kh, kw], "dilations": [1, 1]}
    return d, attrs


def compare(expected, observed):
    """(n_diff, max |diff| in integer output steps) of two outputs; float outputs compare bit
    patterns (NaN == NaN) and report steps as 0 when only bits differ."""
    e, o = np.asarray(expected), np.asarray(observed)
    if e.shape != o.shape:
        raise AssertionError(f"shape mismatch: expected {e.shape}, observed {o.shape}")
    if e.dtype.kind in "iu" or o.dtype.kind in "iu":
        d = np.abs(e.astype(np.int64) - o.astype(np.int64))
        return int((d != 0).sum()), int(d.max(initial=0))
    ef, of = e.astype(np.float64), o.astype(np.float64)
    same = (ef == of) & (np.signbit(ef) == np.signbit(of)) | (np.isnan(ef) & np.isnan(of))
    return int((~same).sum()), 0


def check_engine(engine, profile, op, inputs, attributes=None, *, opset=None):
    """Run ``op`` on ``engine`` and on the reference with ``profile``; returns a dict with
    n (elements), n_diff, max_steps and, when they differ, the first differing indices with
    both values.  Multi-output ops compare every output."""
    from . import run, run_reference
    obs = run(engine, op, inputs, attributes, opset=opset)
    ref = run_reference(op, inputs, attributes, profile=profile, opset=opset)
    obs = obs if isinstance(obs, tuple) else (obs,)
    ref = ref if isinstance(ref, tuple) else (ref,)
    n = nd = ms = 0
    first = []
    for r, o in zip(ref, obs):
        r, o = np.asarray(r), np.asarray(o)
        k, m = compare(r, o)
        n += r.size
        nd += k
        ms = max(ms, m)
        if k and not first:
            if r.dtype.kind in "iu":
                bad = np.argwhere(r.astype(np.int64) != o.astype(np.int64))[:5]
            else:
                bad = np.argwhere(~((r == o) | (np.isnan(r.astype(np.float64)) & np.isnan(o.astype(np.float64)))))[:5]
            first = [(tuple(int(i) for i in b), r[tuple(b)].item(), o[tuple(b)].item()) for b in bad]
    return {"n": n, "n_diff": nd, "max_steps": ms, "first": first}
