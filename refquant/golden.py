"""Golden cases: op inputs with the outputs real engines recorded for them.

A case is one ``.npz`` file::

    meta                 JSON: {"name", "op", "opset", "attributes", "tags", "description",
                                "arrays": {key: {"dtype", "shape"}},
                                "outputs": {engine: {"version", "recorded", "note"}}}
    in.<input name>      an input, stored as raw bytes (uint8/uint16 view for ml_dtypes types)
    out.<engine>         the output that engine produced (out.<engine>.<i> for multi-output ops)

``refquant golden generate`` writes the standard case set (deterministic, no outputs);
``refquant golden record --engine E`` runs engine E on every case and stores its output;
``refquant conformance`` compares the recorded outputs with the reference.

TensorRT cannot be installed on machines without an NVIDIA GPU; on a machine with one,
``refquant golden record --engine tensorrt`` builds each Q/DQ case into a TensorRT network
(explicit quantization) and records its output the same way, so the outputs enter refquant's
golden suite without refquant needing TensorRT anywhere else.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import pathlib
import sys

import numpy as np
import ml_dtypes

from ._dtypes import resolve_dtype

__all__ = ["Case", "CaseFormatError", "GoldenCaseWarning", "standard_cases", "save_case", "load_case",
           "load_cases", "record",
           "default_cases_dir", "add_parser", "run"]

F32 = np.float32


class Case:
    """One golden case: op, opset, attributes, inputs and recorded outputs."""

    def __init__(self, name, op, inputs, attributes=None, *, opset=21, tags=(), description="",
                 outputs=None, output_meta=None, path=None):
        self.name = name
        self.op = op
        self.inputs = {k: np.asarray(v) for k, v in inputs.items() if v is not None}
        self.attributes = dict(attributes or {})
        self.opset = int(opset)
        self.tags = tuple(tags)
        self.description = description
        self.outputs = dict(outputs or {})          # engine -> array or tuple of arrays
        self.output_meta = dict(output_meta or {})  # engine -> {"version", "recorded", "note"}
        self.path = path

    def __repr__(self):
        return f"Case({self.name!r}, {self.op}, engines={sorted(self.outputs)})"


# ------------------------------------------------------------------------------------------
# storage
# ------------------------------------------------------------------------------------------
def _enc(a):
    a = np.asarray(a)
    if a.dtype.type.__module__ == "numpy":
        return a, a.dtype.name
    raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8 if a.dtype.itemsize == 1 else np.uint16)
    return raw, a.dtype.name


def _dec(raw, dtype_name, shape):
    dt = resolve_dtype(dtype_name)
    raw = np.asarray(raw)
    if raw.dtype == dt:
        return raw.reshape(shape)
    return raw.view(dt).reshape(shape)


def save_case(path, case: Case):
    """Write ``case`` to ``path`` (.npz)."""
    arrays, meta_arrays = {}, {}

    def put(key, value):
        raw, dname = _enc(value)
        arrays[key] = raw
        meta_arrays[key] = {"dtype": dname, "shape": list(np.shape(value))}

    for k, v in case.inputs.items():
        put(f"in.{k}", v)
    for eng, out in case.outputs.items():
        if isinstance(out, (tuple, list)):
            for i, o in enumerate(out):
                put(f"out.{eng}.{i}", o)
        else:
            put(f"out.{eng}", out)
    meta = {"name": case.name, "op": case.op, "opset": case.opset, "attributes": case.attributes,
            "tags": list(case.tags), "description": case.description, "arrays": meta_arrays,
            "outputs": case.output_meta}
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta, sort_keys=True)), **arrays)
    os.replace(tmp, path)


class CaseFormatError(ValueError):
    """A file that is not a readable golden case (the message names the file).  ``corrupt``:
    False for a readable .npz that is no golden case (no 'meta' entry: a stray inputs file),
    True for a file that cannot be read or whose meta is broken (truncated, not a zip, bad
    JSON) -- a case file that was damaged."""

    def __init__(self, message, corrupt=True):
        super().__init__(message)
        self.corrupt = corrupt


class SkipReason(str):
    """Why ``load_cases`` skipped a file (the CaseFormatError's message, a str), with its
    ``corrupt`` flag."""

    def __new__(cls, message, corrupt=True):
        obj = super().__new__(cls, message)
        obj.corrupt = corrupt
        return obj


class GoldenCaseWarning(UserWarning):
    """A file in a case directory was skipped (not a golden case); ``corrupt`` as
    :class:`CaseFormatError`'s (a damaged case file, not a stray one)."""

    def __init__(self, message, corrupt=False):
        super().__init__(message)
        self.corrupt = corrupt


def load_case(path) -> Case:
    """Read a case written by :func:`save_case`; :class:`CaseFormatError` (naming the file) for
    anything else."""
    import zipfile
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic != b"PK\x03\x04":
            raise CaseFormatError(f"{path}: not a readable golden case (not an .npz file"
                                  + ("; empty" if not magic else "") + ")")
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files") or "meta" not in z.files:
                raise CaseFormatError(f"{path}: not a golden case (no 'meta' entry"
                                      + (f"; it holds {sorted(z.files)[:5]}" if hasattr(z, "files") else "")
                                      + ")", corrupt=False)
            meta = json.loads(str(z["meta"]))
            arrs = {k: _dec(z[k], m["dtype"], tuple(m["shape"])) for k, m in meta["arrays"].items()}
            missing = [k for k in ("name", "op", "attributes", "opset") if k not in meta]
            if missing:
                raise CaseFormatError(f"{path}: not a golden case (its meta lacks {missing})")
    except CaseFormatError:
        raise
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, TypeError, OSError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
        raise CaseFormatError(f"{path}: not a readable golden case ({type(exc).__name__}: "
                              f"{_first_sentence(str(exc))})") from None
    inputs = {k[3:]: v for k, v in arrs.items() if k.startswith("in.")}
    outputs = {}
    for k, v in sorted(arrs.items()):
        if not k.startswith("out."):
            continue
        parts = k[4:].rsplit(".", 1)
        if len(parts) == 2 and parts[1].isdigit():
            outputs.setdefault(parts[0], []).append(v)
        else:
            outputs[k[4:]] = v
    outputs = {k: tuple(v) if isinstance(v, list) else v for k, v in outputs.items()}
    return Case(meta["name"], meta["op"], inputs, meta["attributes"], opset=meta["opset"],
                tags=meta.get("tags", ()), description=meta.get("description", ""),
                outputs=outputs, output_meta=meta.get("outputs", {}), path=str(path))


def _first_sentence(msg, limit=160):
    """An exception's message cut at its first sentence (numpy's allow_pickle hint is no help
    here), at most ``limit`` characters, never mid-word."""
    msg = msg.split(". ", 1)[0].strip()
    if len(msg) > limit:
        msg = msg[:limit].rsplit(" ", 1)[0] + " ..."
    return msg


def default_cases_dir() -> pathlib.Path:
    """The bundled golden cases: $REFQUANT_GOLDEN, the installed ``refquant/_golden`` copy,
    ``<source checkout>/golden``, or ``./golden`` (running from a checkout after ``pip install .``).
    """
    here = pathlib.Path(__file__).resolve().parent
    env = os.environ.get("REFQUANT_GOLDEN")
    cands = ([pathlib.Path(env)] if env else []) + [here / "_golden", here.parent / "golden",
                                                    pathlib.Path.cwd() / "golden"]
    for cand in cands:
        if cand.is_dir() and any(cand.rglob("*.npz")):
            return cand
    return here.parent / "golden"


def load_cases(cases_dir=None, *, op=None, skipped=None):
    """All cases under ``cases_dir`` (recursively), sorted by path; optionally one op only.

    A ``.npz`` that is not a golden case (a stray inputs file, a corrupt file) is skipped: its
    (path, reason) is appended to ``skipped`` when a list is given (the reason, a
    :class:`SkipReason` str, has ``corrupt``: a damaged case file rather than a stray one), else
    a :class:`GoldenCaseWarning` naming the file is issued."""
    import warnings
    d = pathlib.Path(cases_dir) if cases_dir else default_cases_dir()
    if not d.is_dir():
        raise FileNotFoundError(f"--cases: {d} is not a directory")
    out = []
    for p in sorted(d.rglob("*.npz")):
        if p.name.endswith(".tmp.npz"):
            continue
        try:
            c = load_case(p)
        except CaseFormatError as exc:
            if skipped is not None:
                skipped.append((str(p), SkipReason(str(exc), exc.corrupt)))
            else:
                warnings.warn(GoldenCaseWarning(f"{exc}; skipped", exc.corrupt), stacklevel=2)
            continue
        if op is None or c.op == op:
            out.append(c)
    return out


# ------------------------------------------------------------------------------------------
# the standard case set
# ------------------------------------------------------------------------------------------
def _ties(rng, s, zp, qmin, qmax, n, dtype=F32):
    s = dtype(s)
    k = rng.integers(qmin - int(zp) - 2, qmax - int(zp) + 3, n).astype(dtype)
    t = ((k + dtype(0.5)) * s).astype(dtype)
    sel = rng.integers(0, 4, n)
    x = t.copy()
    x[sel == 1] = np.nextafter(t[sel == 1], dtype(np.inf))
    x[sel == 2] = np.nextafter(t[sel == 2], dtype(-np.inf))
    x[sel == 3] = (k[sel == 3] * s).astype(dtype)
    return x


def standard_cases(seed=20261125):
    """The standard golden case set (deterministic)."""
    rng = np.random.default_rng(seed)
    cases = []

    def add(name, op, inputs, attrs=None, opset=21, tags=(), desc=""):
        cases.append(Case(name, op, inputs, attrs, opset=opset, tags=tags, description=desc))

    # ---- QuantizeLinear ----------------------------------------------------------------
    for dt, zp in ((np.int8, 1), (np.uint8, 128), (np.int8, -1), (np.uint8, 0)):
        s = F32(0.1)
        add(f"q_{np.dtype(dt).name}_ties_zp{zp}", "QuantizeLinear",
            {"x": _ties(rng, s, zp, int(np.iinfo(dt).min), int(np.iinfo(dt).max), 512),
             "y_scale": s, "y_zero_point": np.array(zp, dt)},
            tags=("ties",), desc="exact ties (k+0.5)*s, their float32 neighbours and k*s")
    add("q_int8_ones_ties", "QuantizeLinear",
        {"x": np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -3.5], F32), "y_scale": F32(1),
         "y_zero_point": np.int8(1)}, tags=("ties",), desc="half-even vs half-away vs zp order")
    add("q_int8_reciprocal", "QuantizeLinear",
        {"x": np.array([0.273939937, -12.466922, 0.34249556], F32),
         "y_scale": F32(0.00214854861), "y_zero_point": np.int8(0)},
        tags=("reciprocal",), desc="x/s vs x*(1/s): 127.49999 vs 127.5")
    s = F32(0.10260841)
    xr = _ties(rng, s, 0, -128, 127, 1000)
    add("q_int8_reciprocal_sweep", "QuantizeLinear", {"x": xr, "y_scale": s,
                                                      "y_zero_point": np.int8(0)},
        tags=("reciprocal", "ties"))
    for dt, zp in ((np.int8, 0), (np.int8, -1), (np.uint8, 0), (np.uint8, 3)):
        add(f"q_{np.dtype(dt).name}_special_zp{zp}", "QuantizeLinear",
            {"x": np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, 1e38, -1e38, 0.0, -0.0,
                            127.5, -128.5, 255.5], F32),
             "y_scale": F32(1), "y_zero_point": np.array(zp, dt)},
            tags=("nan", "inf", "saturation"), desc="NaN, +-Inf, beyond int32, boundaries")
    for n in (1, 15, 17, 63, 65, 1023):
        add(f"q_int8_size{n}", "QuantizeLinear",
            {"x": _ties(rng, F32(0.05), 2, -128, 127, n), "y_scale": F32(0.05),
             "y_zero_point": np.int8(2)}, tags=("tail",),
            desc="sizes that are not multiples of SIMD widths")
    w = (rng.standard_normal((8, 20)) * 3).astype(F32)
    sc = (np.abs(rng.standard_normal(8)) * 0.05 + 0.01).astype(F32)
    add("q_int8_per_axis0", "QuantizeLinear",
        {"x": w, "y_scale": sc, "y_zero_point": np.zeros(8, np.int8)}, {"axis": 0},
        tags=("per-axis",))
    add("q_uint8_per_axis1", "QuantizeLinear",
        {"x": w.T.copy(), "y_scale": sc, "y_zero_point": rng.integers(0, 256, 8).astype(np.uint8)},
        {"axis": 1}, tags=("per-axis",))
    for dt in (np.int16, np.uint16):
        zp = 7 if dt == np.uint16 else -3
        add(f"q_{np.dtype(dt).name}_ties", "QuantizeLinear",
            {"x": _ties(rng, F32(0.003), zp, int(np.iinfo(dt).min), int(np.iinfo(dt).max), 512),
             "y_scale": F32(0.003), "y_zero_point": np.array(zp, dt)}, tags=("ties",))
    for dtn, lo, hi in (("int4", -8, 7), ("uint4", 0, 15)):
        dt = resolve_dtype(dtn)
        x = _ties(rng, F32(0.25), 1, lo, hi, 64).reshape(4, 16)
        scl = np.array([[0.25] * 4, [0.5] * 4, [0.125] * 4, [1.0] * 4], F32)[:, :4]
        add(f"q_{dtn}_blocked", "QuantizeLinear",
            {"x": x, "y_scale": scl, "y_zero_point": np.full((4, 4), 1, np.int64).astype(dt)},
            {"axis": 1, "block_size": 4}, tags=("blocked", "ties"))
        add(f"q_{dtn}_per_tensor", "QuantizeLinear",
            {"x": x.reshape(-1), "y_scale": F32(0.25), "y_zero_point": np.array(1, dt)},
            tags=("ties",))
    for dtn, lo, hi in (("int2", -2, 1), ("uint2", 0, 3)):
        dt = resolve_dtype(dtn)
        add(f"q_{dtn}", "QuantizeLinear",
            {"x": _ties(rng, F32(0.5), 0, lo, hi, 40), "y_scale": F32(0.5),
             "y_zero_point": np.array(0, dt)}, opset=25, tags=("ties",))
    for dtn in ("float8e4m3fn", "float8e5m2"):
        dt = resolve_dtype(dtn)
        fmax = float(ml_dtypes.finfo(dt).max)
        x = np.concatenate([(rng.standard_normal(200) * fmax / 8).astype(F32),
                            np.array([np.nan, np.inf, -np.inf, fmax * 1.01, fmax * 1.2, -fmax * 3,
                                      0.0, -0.0, 1e-30], F32)])
        for sat in (1, 0):
            add(f"q_{dtn}_sat{sat}", "QuantizeLinear",
                {"x": x, "y_scale": F32(0.5), "y_zero_point": np.array(0, dt)},
                {"saturate": sat}, tags=("float8", "saturation"))
    s16 = np.float16(0.0999)
    k = rng.integers(-120, 120, 400).astype(np.float16)
    x16 = ((k + np.float16(0.5)) * s16).astype(np.float16)
    for ops in (21, 23):
        add(f"q_fp16_input_opset{ops}", "QuantizeLinear",
            {"x": x16, "y_scale": s16, "y_zero_point": np.int8(0)}, opset=ops,
            tags=("fp16", "ties"), desc="fp16 division precision by opset")

    # ---- DequantizeLinear --------------------------------------------------------------
    add("dq_int8", "DequantizeLinear",
        {"x": np.arange(-128, 128, dtype=np.int32).astype(np.int8), "x_scale": F32(0.0173),
         "x_zero_point": np.int8(-5)})
    add("dq_uint8_per_axis", "DequantizeLinear",
        {"x": rng.integers(0, 256, (6, 10)).astype(np.uint8),
         "x_scale": (rng.random(6) + 0.01).astype(F32),
         "x_zero_point": rng.integers(0, 256, 6).astype(np.uint8)}, {"axis": 0},
        tags=("per-axis",))
    add("dq_int32", "DequantizeLinear",
        {"x": np.array([16777217, -16777219, 2**31 - 1, -2**31, 5], np.int32),
         "x_scale": F32(0.5)}, tags=("large",), desc="int32 beyond 2^24")
    add("dq_int4_blocked", "DequantizeLinear",
        {"x": rng.integers(-8, 8, (4, 16)).astype(ml_dtypes.int4),
         "x_scale": (rng.random((4, 2)) + 0.1).astype(F32),
         "x_zero_point": rng.integers(-8, 8, (4, 2)).astype(ml_dtypes.int4)},
        {"axis": 1, "block_size": 8}, tags=("blocked",))

    # ---- DynamicQuantizeLinear ----------------------------------------------------------
    add("dql_gaussian", "DynamicQuantizeLinear", {"x": rng.standard_normal(777).astype(F32)})
    add("dql_positive", "DynamicQuantizeLinear",
        {"x": (np.abs(rng.standard_normal(100)) + 1).astype(F32)})
    add("dql_zeros", "DynamicQuantizeLinear", {"x": np.zeros(16, F32)},
        tags=("zero-range",), desc="all-zero input: the scale is unspecified")

    # ---- MatMulInteger ------------------------------------------------------------------
    for (ad, bd) in ((np.uint8, np.int8), (np.int8, np.int8), (np.uint8, np.uint8),
                     (np.int8, np.uint8)):
        for (m, kk, n) in ((1, 7, 5), (17, 33, 9)):
            A = rng.integers(np.iinfo(ad).min, int(np.iinfo(ad).max) + 1, (m, kk)).astype(ad)
            B = rng.integers(np.iinfo(bd).min, int(np.iinfo(bd).max) + 1, (kk, n)).astype(bd)
            add(f"mmi_{np.dtype(ad).name}_{np.dtype(bd).name}_{m}x{kk}x{n}", "MatMulInteger",
                {"A": A, "B": B, "a_zero_point": np.array(np.iinfo(ad).max // 2 + 1, ad)
                 if ad == np.uint8 else np.array(-3, ad),
                 "b_zero_point": np.array(0, bd)}, opset=10)
    add("mmi_u8s8_pair_saturation", "MatMulInteger",
        {"A": np.array([[210, 198, 234, 0]], np.uint8),
         "B": np.array([[-81], [-80], [127], [0]], np.int8),
         "a_zero_point": np.uint8(0), "b_zero_point": np.int8(0)}, opset=10,
        tags=("int16-saturation",), desc="onnxruntime#16105: 210*-81 + 198*-80 = -32850")

    # ---- QLinearMatMul ------------------------------------------------------------------
    add("qlmm_u8s8_ties", "QLinearMatMul",
        {"a": rng.integers(0, 7, (8, 16)).astype(np.uint8), "a_scale": F32(1.0),
         "a_zero_point": np.uint8(3), "b": rng.integers(-3, 4, (16, 12)).astype(np.int8),
         "b_scale": F32(1.0), "b_zero_point": np.int8(0), "y_scale": F32(2.0),
         "y_zero_point": np.uint8(101)},
        tags=("ties",), desc="multiplier 0.5 on small accumulators: half the outputs are exact "
                             "ties; odd zero point")
    add("qlmm_s8s8_ties_zp_neg", "QLinearMatMul",
        {"a": rng.integers(-4, 5, (7, 9)).astype(np.int8), "a_scale": F32(0.5),
         "a_zero_point": np.int8(0), "b": rng.integers(-4, 5, (9, 5)).astype(np.int8),
         "b_scale": F32(0.5), "b_zero_point": np.int8(1), "y_scale": F32(1.0),
         "y_zero_point": np.int8(-1)}, tags=("ties",), desc="multiplier 0.25, zero point -1")
    add("qlmm_s8s8_per_column", "QLinearMatMul",
        {"a": rng.integers(-128, 128, (5, 31)).astype(np.int8), "a_scale": F32(0.02),
         "a_zero_point": np.int8(-1), "b": rng.integers(-128, 128, (31, 7)).astype(np.int8),
         "b_scale": (rng.random(7) * 0.01 + 0.001).astype(F32),
         "b_zero_point": np.zeros(7, np.int8), "y_scale": F32(0.07),
         "y_zero_point": np.int8(-3)}, tags=("per-column",))
    add("qlmm_s8s8_symmetric", "QLinearMatMul",
        {"a": rng.integers(-128, 128, (9, 24)).astype(np.int8), "a_scale": F32(0.05),
         "a_zero_point": np.int8(0), "b": rng.integers(-127, 128, (24, 6)).astype(np.int8),
         "b_scale": F32(0.01), "b_zero_point": np.int8(0), "y_scale": F32(0.3),
         "y_zero_point": np.int8(0)}, tags=("symmetric",), desc="symmetric int8, as TensorRT requires")
    kk = 2048
    A = np.full((1, kk), 255, np.uint8)
    B = np.full((kk, 1), 127, np.int8)
    B[0, 0] = 126
    add("qlmm_large_acc", "QLinearMatMul",
        {"a": A, "a_scale": F32(0.01), "a_zero_point": np.uint8(0), "b": B,
         "b_scale": F32(0.003), "b_zero_point": np.int8(0), "y_scale": F32(9924.0),
         "y_zero_point": np.uint8(0)}, tags=("large-accumulator",),
        desc="acc = 66,324,225 > 2^24: float32 conversion rounds")

    # ---- QLinearConv / ConvInteger ------------------------------------------------------
    x = rng.integers(0, 256, (1, 4, 9, 9)).astype(np.uint8)
    wq = rng.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)
    add("qlconv_u8s8_3x3_pad1_per_channel_bias", "QLinearConv",
        {"x": x, "x_scale": F32(0.02), "x_zero_point": np.uint8(128), "w": wq,
         "w_scale": (rng.random(6) * 0.01 + 0.002).astype(F32), "w_zero_point": np.zeros(6, np.int8),
         "y_scale": F32(0.15), "y_zero_point": np.uint8(120),
         "B": rng.integers(-2000, 2000, 6).astype(np.int32)},
        {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3]}, opset=10, tags=("per-channel", "bias"))
    add("qlconv_s8_depthwise_stride2", "QLinearConv",
        {"x": rng.integers(-128, 128, (1, 8, 10, 10)).astype(np.int8), "x_scale": F32(0.05),
         "x_zero_point": np.int8(-2), "w": rng.integers(-127, 128, (8, 1, 3, 3)).astype(np.int8),
         "w_scale": F32(0.01), "w_zero_point": np.int8(0), "y_scale": F32(0.08),
         "y_zero_point": np.int8(5)},
        {"group": 8, "strides": [2, 2], "pads": [1, 1, 1, 1]}, opset=10, tags=("depthwise",))
    add("qlconv_u8s8_ties", "QLinearConv",
        {"x": rng.integers(0, 5, (1, 2, 6, 6)).astype(np.uint8), "x_scale": F32(0.5),
         "x_zero_point": np.uint8(2), "w": rng.integers(-3, 4, (3, 2, 2, 2)).astype(np.int8),
         "w_scale": F32(0.5), "w_zero_point": np.int8(0), "y_scale": F32(0.5),
         "y_zero_point": np.uint8(101)}, opset=10, tags=("ties",),
        desc="multiplier 0.5 on small accumulators, odd zero point")
    add("qlconv_s8s8_symmetric_bias", "QLinearConv",
        {"x": rng.integers(-128, 128, (1, 3, 7, 7)).astype(np.int8), "x_scale": F32(0.03),
         "x_zero_point": np.int8(0), "w": rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
         "w_scale": (rng.random(4) * 0.01 + 0.002).astype(F32), "w_zero_point": np.zeros(4, np.int8),
         "y_scale": F32(0.2), "y_zero_point": np.int8(0),
         "B": rng.integers(-3000, 3000, 4).astype(np.int32)},
        {"pads": [1, 1, 1, 1]}, opset=10, tags=("symmetric", "per-channel", "bias"),
        desc="symmetric int8 throughout, as TensorRT requires")
    add("convint_u8s8_dilation2", "ConvInteger",
        {"x": rng.integers(0, 256, (1, 3, 11, 11)).astype(np.uint8),
         "w": rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8),
         "x_zero_point": np.uint8(7), "w_zero_point": np.int8(0)},
        {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, opset=10)
    add("convint_u8u8_1d", "ConvInteger",
        {"x": rng.integers(0, 256, (2, 3, 17)).astype(np.uint8),
         "w": rng.integers(0, 256, (5, 3, 4)).astype(np.uint8),
         "x_zero_point": np.uint8(100), "w_zero_point": np.uint8(128)},
        {"strides": [2], "auto_pad": "SAME_UPPER"}, opset=10)

    # ---- QGemm (com.microsoft) ----------------------------------------------------------
    A = rng.integers(0, 256, (6, 20)).astype(np.uint8)
    Bm = rng.integers(-128, 128, (20, 9)).astype(np.int8)
    add("qgemm_u8s8_bias_alpha", "QGemm",
        {"A": A, "a_scale": F32(0.03), "a_zero_point": np.uint8(12), "B": Bm,
         "b_scale": F32(0.02), "b_zero_point": np.int8(0),
         "C": rng.integers(-5000, 5000, 9).astype(np.int32), "y_scale": F32(0.4),
         "y_zero_point": np.uint8(128)}, {"alpha": 0.5}, opset=1)
    add("qgemm_u8s8_float_out_transB", "QGemm",
        {"A": A, "a_scale": F32(0.03), "a_zero_point": np.uint8(12), "B": Bm.T.copy(),
         "b_scale": F32(0.02), "b_zero_point": np.int8(0)}, {"transB": 1}, opset=1)
    return cases


# ------------------------------------------------------------------------------------------
# recording
# ------------------------------------------------------------------------------------------
def _record_tensorrt(case):  # pragma: no cover - needs an NVIDIA GPU and TensorRT
    from . import _tensorrt_recorder
    return _tensorrt_recorder.run_case(case)


def record(engine, cases_dir=None, *, op=None, progress=None, opset_policy="case"):
    """Run ``engine`` on every case in ``cases_dir`` and store its outputs in the case files.

    Returns (n_recorded, n_not_applicable, errors: list of (case, message)).  A group name
    (torch, tflite) records each of its engines; the counts are then summed.
    """
    if engine in ENGINE_GROUPS:
        tot_ok, tot_na, tot_err = 0, 0, []
        for e in ENGINE_GROUPS[engine]:
            ok, na, err = record(e, cases_dir, op=op, progress=progress, opset_policy=opset_policy)
            tot_ok, tot_na, tot_err = tot_ok + ok, tot_na + na, tot_err + [(f"{c} ({e})", m) for c, m in err]
        return tot_ok, tot_na, tot_err
    from . import engines as _engines
    from .conformance import _canonical_op
    cases = load_cases(cases_dir, op=_canonical_op(op))
    n_ok, n_na, errors = 0, 0, []
    if engine == "tensorrt":
        version = _tensorrt_version()
    else:
        version = _engines.available().get(engine)
        if version is None:
            if engine not in _engines.ENGINES:
                raise ValueError(f"--engine: unknown engine {engine!r}; known: "
                                 f"{', '.join(list(_engines.ENGINES) + ['tensorrt'])}")
            raise RuntimeError(f"--engine {engine}: its Python package is not installed here")
    for i, c in enumerate(cases):
        if progress:
            progress(i, len(cases), c)
        try:
            if engine == "tensorrt":
                out = _record_tensorrt(c)
            else:
                out = _engines.run(engine, c.op, c.inputs, c.attributes,
                                   opset=c.opset if c.op != "QGemm" else None)
        except _engines.EngineUnsupported as exc:
            n_na += 1
            c.outputs.pop(engine, None)
            c.output_meta[engine] = {"version": version, "note": f"not applicable: {exc}",
                                     "recorded": _now()}
            save_case(c.path, c)
            continue
        except Exception as exc:  # an engine error is a finding, not a crash
            errors.append((c.name, f"{type(exc).__name__}: {exc}"))
            c.outputs.pop(engine, None)
            c.output_meta[engine] = {"version": version, "recorded": _now(),
                                     "note": f"error: {type(exc).__name__}: {str(exc)[:300]}"}
            save_case(c.path, c)
            continue
        c.outputs[engine] = tuple(np.asarray(o) for o in out) if isinstance(out, (tuple, list)) \
            else np.asarray(out)
        c.output_meta[engine] = {"version": version, "recorded": _now(), "note": ""}
        save_case(c.path, c)
        n_ok += 1
    return n_ok, n_na, errors


#: ``--engine`` group names (CONTRACT: onnxruntime, openvino, torch, tflite, tensorrt)
ENGINE_GROUPS = {
    "torch": ("pytorch", "pytorch-fakequant", "pytorch-fbgemm", "pytorch-x86", "pytorch-qnnpack",
              "pytorch-onednn"),
    "pytorch-all": ("pytorch", "pytorch-fakequant", "pytorch-fbgemm", "pytorch-x86",
                    "pytorch-qnnpack", "pytorch-onednn"),
    "tflite": ("tflite-reference", "tflite-optimized", "tflite-xnnpack"),
    "litert": ("tflite-reference", "tflite-optimized", "tflite-xnnpack"),
}


def _check_record_engines(engines):
    """ValueError (one line) for a name ``record`` does not know, before anything runs."""
    from . import engines as _engines
    known = list(_engines.ENGINES) + ["tensorrt"]
    bad = [e for e in engines if e not in known]
    if bad:
        raise ValueError(f"--engine: unknown engine{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}; "
                         f"known: {', '.join(known + list(ENGINE_GROUPS))}")


def expand_engines(names):
    """Engine names with the group names (torch, tflite) expanded, order kept, no repeats."""
    out = []
    for n in names:
        for e in ENGINE_GROUPS.get(n, (n,)):
            if e not in out:
                out.append(e)
    return out


def _tensorrt_version():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise RuntimeError("--engine tensorrt: the tensorrt package is not installed (it needs an "
                           "NVIDIA GPU host; record there and copy the case files back)") from None
    return tensorrt.__version__


def _now():
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate(cases_dir, *, overwrite=False):
    """Write the standard case set into ``cases_dir`` (one sub-folder per op)."""
    d = pathlib.Path(cases_dir)
    n = 0
    for c in standard_cases():
        p = d / c.op / f"{c.name}.npz"
        if p.exists() and not overwrite:
            old = load_case(p)
            c.outputs, c.output_meta = old.outputs, old.output_meta
        save_case(p, c)
        n += 1
    return n


# ------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------
def add_parser(subparsers):
    p = subparsers.add_parser(
        "golden", help="generate golden cases and record engine outputs into them",
        description="Golden cases are .npz files holding an op's inputs and the outputs real "
                    "engines produced. 'generate' writes the standard case set; 'record' runs "
                    "one engine on every case and stores its output.")
    sub = p.add_subparsers(dest="golden_command", metavar="ACTION")
    g = sub.add_parser("generate", help="write the standard case set (keeps recorded outputs)")
    g.add_argument("--cases", default=None, help="case directory (default: the bundled golden/)")
    g.add_argument("--overwrite", action="store_true", help="drop previously recorded outputs")
    r = sub.add_parser("record", help="run an engine on every case and store its outputs",
                       description="Run each --engine on every case and store its outputs in the case "
                                   "files.  Exit status 0; 1 when an engine raised on a case (the error "
                                   "is recorded in the case file, and refquant conformance reports it); "
                                   "2 on bad input (an unknown engine, no cases, an unreadable case "
                                   "file, an engine whose package is missing).")
    r.add_argument("--engine", required=True, action="append",
                   help="onnxruntime, onnx-reference, openvino, torch (= every pytorch-* engine), "
                        "pytorch[-fakequant|-fbgemm|-x86|-qnnpack|-onednn], tflite (= the three "
                        "LiteRT kernels), tflite-reference|-optimized|-xnnpack, tensorrt; repeatable")
    r.add_argument("--cases", default=None, help="case directory (default: the bundled golden/)")
    r.add_argument("--op", default=None, help="only cases of this ONNX op (any letter case)")
    r.add_argument("--quiet", action="store_true")
    ls = sub.add_parser("list", help="list the cases and which engines were recorded")
    ls.add_argument("--cases", default=None, help="case directory (default: the bundled golden/)")
    p.set_defaults(_run=run, _golden_parser=p)
    return p


def run(args):
    """The golden CLI; a damaged case file (truncated, not an .npz) makes it exit 2 after the
    work on the readable ones, a stray .npz (no golden case) is a warning."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GoldenCaseWarning)
        rc = _run(args)
    n_bad = 0
    seen = set()
    for w in caught:
        if issubclass(w.category, GoldenCaseWarning):
            msg = str(w.message)
            if msg in seen:          # (record loads the cases once per engine)
                continue
            seen.add(msg)
            bad = getattr(w.message, "corrupt", False)
            n_bad += bad
            print(f"refquant golden: {'error' if bad else 'warning'}: {msg}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if n_bad:     # bad input: 2, whatever else happened (an engine error alone is 1)
        print(f"refquant golden: {n_bad} case file{'s' if n_bad > 1 else ''} could not be read "
              f"(listed above)", file=sys.stderr)
        rc = 2
    return rc


def _run(args):
    cmd = getattr(args, "golden_command", None)
    if cmd is None:
        args._golden_parser.print_help()
        return 0
    if cmd == "generate":
        d = args.cases or default_cases_dir()
        try:
            n = generate(d, overwrite=args.overwrite)
        except (OSError, ValueError) as exc:
            print(f"refquant golden generate: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {n} cases to {d}")
        return 0
    if cmd == "list":
        try:
            cases = load_cases(args.cases)
        except (OSError, ValueError) as exc:
            print(f"refquant golden list: {exc}", file=sys.stderr)
            return 2
        if not cases:
            print(f"refquant golden list: no cases found in {args.cases or default_cases_dir()}",
                  file=sys.stderr)
            return 2
        for c in cases:
            print(f"{c.op:<22} {c.name:<44} {', '.join(sorted(c.outputs)) or '-'}")
        return 0
    if cmd == "record":
        rc = 0
        engines = expand_engines(args.engine)
        try:
            _check_record_engines(engines)
            sk = []
            if not load_cases(args.cases, skipped=sk):
                from .conformance import _unreadable_note
                raise ValueError(f"no cases found in {args.cases or default_cases_dir()}"
                                 + _unreadable_note(sk) + " (write the standard set with: refquant "
                                 "golden generate --cases DIR)")
        except (ValueError, FileNotFoundError) as exc:
            print(f"refquant golden record: {exc}", file=sys.stderr)
            return 2
        tty = sys.stderr.isatty()
        for engine in engines:
            def progress(i, n, c, _e=engine):
                if not args.quiet and tty:
                    print(f"\r[{i + 1}/{n}] {_e}: {c.name:<50}", end="", file=sys.stderr,
                          flush=True)
            try:
                ok, na, errors = record(engine, args.cases, op=args.op, progress=progress)
            except (ValueError, RuntimeError, FileNotFoundError) as exc:
                if not args.quiet and tty:
                    print(file=sys.stderr)
                print(f"refquant golden record: {exc}", file=sys.stderr)
                rc = 2
                continue
            if not args.quiet and tty:
                print(file=sys.stderr)
            print(f"{engine}: recorded {ok} cases, {na} not applicable, {len(errors)} errors")
            for name, msg in errors:
                print(f"  error in {name}: {msg.splitlines()[0] if msg else msg}")
            if errors and rc == 0:
                rc = 1       # engine errors are findings (recorded; conformance reports them)
        return rc
    return 2
