"""compute_scale_zero_point vs the tools' own functions, properties, bad input, the CLI."""
import json
import re
import subprocess
import sys
import xml.dom.minidom

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import refquant.calibration as C
from refquant.calibration import calibrate, compute_scale_zero_point, CalibrationError
from _calib_data import bits, ints, datasets

F32 = np.float32


# ---------------------------------------------------------------- SEMANTICS.md examples
@pytest.mark.parametrize("rmin,rmax,dt,sym,rr,scale,zp", [
    (-1.0, 0.5, "int8", True, False, F32(1.0 / 127), 0),
    (-1.0, 0.5, "uint8", True, False, F32(2.0 / 255), 128),
    (-1.0, 2.0, "uint8", False, False, F32(3.0 / 255), 85),
    (-1.0, 0.5, "int8", False, True, F32(1.5 / 128), 21),
])
def test_ort_examples(rmin, rmax, dt, sym, rr, scale, zp):
    s, z = compute_scale_zero_point(rmin, rmax, dtype=dt, symmetric=sym, reduce_range=rr)
    assert bits(s) == bits(scale) and int(z) == zp and z.dtype == np.dtype(dt)


def test_torch_reduce_range_example():
    s, z = compute_scale_zero_point(-1.0, 0.5, dtype="int8", reduce_range=True, tool="pytorch")
    assert bits(s) == bits(F32(F32(1.5) / F32(127))) and int(z) == 21


def test_nvidia_tools():
    for tool in ("tensorrt", "modelopt"):
        s, z = compute_scale_zero_point(-2.0, 1.0, tool=tool)
        assert bits(s) == bits(F32(2.0) / F32(127)) and int(z) == 0
    s, z = compute_scale_zero_point(0.0, 1.0, dtype="uint8", tool="modelopt")
    assert bits(s) == bits(F32(1.0) / F32(255)) and int(z) == 0 and z.dtype == np.uint8
    with pytest.raises(ValueError, match="tensorrt"):
        compute_scale_zero_point(0.0, 1.0, dtype="uint8", tool="tensorrt")


# ---------------------------------------------------------------- live qparams vs the tools
RANGES = [(-1.0, 0.5), (0.0, 0.0), (1.5, 1.5), (-3.0, -3.0), (0.25, 7.0), (-7.0, -0.25), (-1e-39, 1e-39),
          (-1e-36, 2e-36), (0.0, 1e-45), (-3e38, 3e38), (-65504.0, 1e-3), (-0.1, 0.1000001)]


def test_ort_compute_scale_zp_live():
    pytest.importorskip("onnxruntime.quantization", reason="ORT quant_utils is the peer")
    from _calib_peers import ort_qparams, ORT_VERSION
    rng = np.random.default_rng(0)
    rs = RANGES + [tuple(sorted(rng.standard_normal(2) * 10 ** rng.uniform(-8, 8))) for _ in range(60)]
    n = 0
    for a, b in rs:
        for dt in ("int8", "uint8", "int16", "uint16", "int4", "uint4"):
            for sym in (False, True):
                for rr in (False, True):
                    s, z = ort_qparams(a, b, dt, sym, rr)
                    s2, z2 = compute_scale_zero_point(a, b, dtype=dt, symmetric=sym, reduce_range=rr,
                                                      ort_version=ORT_VERSION)
                    assert bits(s) == bits(s2) and ints(z) == ints(z2), (a, b, dt, sym, rr, s, z, s2, z2)
                    n += 1
    assert n > 1500


def test_torch_calculate_qparams_live():
    torch = pytest.importorskip("torch", reason="torch observers are the peer")
    import warnings
    from torch.ao.quantization.observer import MinMaxObserver
    from _calib_peers import torch_dtype_kwargs
    rng = np.random.default_rng(1)
    rs = [r for r in RANGES if abs(r[0]) < 1e38] + \
        [tuple(sorted(rng.standard_normal(2) * 10 ** rng.uniform(-8, 8))) for _ in range(60)]
    for a, b in rs:
        for dt in ("int8", "uint8", "int16", "uint16", "int4", "uint4", "int32"):
            for sym in (False, True):
                for rr in (False, True):
                    if sym and rr and dt in ("uint8", "uint4"):
                        continue
                    kw = torch_dtype_kwargs(dt)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ob = MinMaxObserver(qscheme=torch.per_tensor_symmetric if sym else torch.per_tensor_affine,
                                            reduce_range=rr, **kw)
                    ob.min_val.copy_(torch.tensor(F32(a)))
                    ob.max_val.copy_(torch.tensor(F32(b)))
                    s, z = ob.calculate_qparams()
                    s2, z2 = compute_scale_zero_point(a, b, dtype=dt, symmetric=sym, reduce_range=rr, tool="pytorch")
                    assert bits(s.numpy()) == bits(s2) and ints(z.numpy()) == ints(z2), (a, b, dt, sym, rr)


# ---------------------------------------------------------------- properties
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)
QR = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
      "int4": (-8, 7), "uint4": (0, 15)}


@settings(max_examples=300, deadline=None)
@given(a=finite, b=finite, tool=st.sampled_from(["onnxruntime", "pytorch"]),
       dt=st.sampled_from(sorted(QR)), sym=st.booleans(), rr=st.booleans())
def test_zero_exactly_representable(a, b, tool, dt, sym, rr):
    lo, hi = min(a, b), max(a, b)
    if tool == "pytorch" and sym and rr and dt in ("uint8", "uint4"):
        with pytest.raises(ValueError):
            compute_scale_zero_point(lo, hi, dtype=dt, symmetric=sym, reduce_range=rr, tool=tool)
        return
    s, z = compute_scale_zero_point(lo, hi, dtype=dt, symmetric=sym, reduce_range=rr, tool=tool)
    qmin, qmax = QR[dt]
    z = int(np.asarray(z).astype(np.int64))
    assert qmin <= z <= qmax and float(s) > 0
    # the represented range [(qmin - z) s, (qmax - z) s] contains 0, and 0 quantizes to z exactly
    assert (qmin - z) * float(s) <= 0.0 <= (qmax - z) * float(s)
    assert np.rint(F32(0) / s) + z == z
    if sym:
        if tool == "onnxruntime":
            from refquant.calibration.qparams import ort_qrange
            q0, q1 = ort_qrange(np.dtype(z_dt(dt)), symmetric=True, reduce_range=rr)
            expect = int(np.round((q0 + q1) / 2.0))          # 0 int8, 128 uint8, 32768 uint16
            amax = max(abs(float(F32(lo))), abs(float(F32(hi))))
            if 2 * amax / (q1 - q0) < np.finfo(np.float32).tiny:
                expect = 0                                   # ORT: scale below FLT_MIN -> 1, zp 0
        else:
            expect = {"uint8": 128, "uint16": 32768, "uint4": 7 if not rr else 3}.get(dt, 0)
        assert z == expect


def z_dt(dt):
    from refquant._dtypes import resolve_dtype
    return resolve_dtype(dt)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), tool=st.sampled_from(["onnxruntime", "pytorch", "tensorrt", "modelopt"]),
       meth=st.sampled_from(["minmax", "moving_average_minmax"]), sym=st.booleans())
def test_per_channel_equals_per_tensor_per_channel(seed, tool, meth, sym):
    if meth not in C.supported()[tool]:
        return
    rng = np.random.default_rng(seed)
    bs = [rng.standard_normal((3, 4, 5)).astype(np.float32) * F32(k + 1) for k in range(3)]
    pc = calibrate(bs, tool=tool, method=meth, axis=1, symmetric=sym)
    for c in range(4):
        one = calibrate([b[:, c] for b in bs], tool=tool, method=meth, symmetric=sym)
        assert bits(pc.rmin[c]) == bits(one.rmin) and bits(pc.rmax[c]) == bits(one.rmax)
        assert bits(pc.scale[c]) == bits(one.scale)
        assert ints(np.asarray(pc.zero_point)[c]) == ints(one.zero_point)


def test_range_contains_zero_for_all_tools():
    pairs = dict(C.supported())
    pairs["modelopt"] = ("minmax", "percentile")      # entropy/mse: covered live, slow here
    for name, bs in datasets(shape=(2, 3, 4)).items():
        for r in C.compare_tools(bs, methods=pairs):
            if isinstance(r, tuple):
                continue
            lo = np.asarray(r.rmin, np.float64)
            hi = np.asarray(r.rmax, np.float64)
            s = np.asarray(r.scale, np.float64)
            assert np.all(s > 0), (name, r.tool, r.method)
            if r.tool in ("tensorrt", "modelopt"):
                assert np.all(lo <= 0) and np.all(hi >= 0)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("data", [[], np.zeros((0,), np.float32), [np.zeros((0, 3), np.float32)]])
def test_empty_data(data):
    with pytest.raises(ValueError, match="no values"):
        calibrate(data)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("tool", ["onnxruntime", "pytorch", "tensorrt", "modelopt"])
def test_nan_inf_refused(bad, tool):
    x = np.ones(10, np.float32)
    x[3] = bad
    with pytest.raises(ValueError, match="NaN"):
        calibrate(x, tool=tool, method=None)


def test_option_errors():
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    with pytest.raises(ValueError, match="percentile"):
        calibrate(x, method="percentile", percentile=-1)
    with pytest.raises(ValueError, match="percentile"):
        calibrate(x, tool="modelopt", method="percentile", percentile=100.5)
    with pytest.raises(ValueError, match="num_bins"):
        calibrate(x, method="entropy", num_bins=64, num_quantized_bins=128)
    with pytest.raises(ValueError, match="supported"):
        calibrate(x, tool="tensorrt", method="mse")
    with pytest.raises(ValueError, match="onnxruntime: minmax"):
        calibrate(x, tool="pytorch", method="entropy")
    with pytest.raises(ValueError, match="tool"):
        calibrate(x, tool="tflite")
    with pytest.raises(TypeError, match="dtype"):
        calibrate(x, dtype="int7")
    with pytest.raises(ValueError, match="axis"):
        calibrate(x.reshape(10, 10), tool="pytorch", method="histogram", axis=0)
    with pytest.raises(ValueError, match="axis"):
        calibrate(x, method="minmax", axis=3)
    with pytest.raises(ValueError, match="averaging_constant"):
        calibrate(x, method="moving_average_minmax", averaging_constant=1.5)
    with pytest.raises(ValueError, match="reduce_range"):
        calibrate(x, tool="tensorrt", method="minmax", reduce_range=True)
    with pytest.raises(ValueError, match="quint8"):
        calibrate(x, tool="pytorch", method="minmax", dtype="uint8", symmetric=True, reduce_range=True)
    with pytest.raises(TypeError, match="unexpected"):
        calibrate(x, bins=3)


def test_defaults_and_supported():
    sup = C.supported()
    assert sup["onnxruntime"][0] == "minmax" and sup["pytorch"][0] == "histogram"
    assert sup["tensorrt"][0] == "entropy" and sup["modelopt"][0] == "minmax"
    r = calibrate(np.linspace(-1, 2, 50, dtype=np.float32), tool="pytorch", method=None)
    assert r.method == "histogram"
    d = r.to_dict()
    json.dumps(d)
    assert d["scale_bits"] == bits(r.scale)[0]


def test_dtype_spellings():
    x = np.linspace(-1, 2, 50, dtype=np.float32)
    a = calibrate(x, dtype="int8")
    for spelling in (np.int8, 3, "INT8", np.dtype("int8")):
        b = calibrate(x, dtype=spelling)
        assert bits(a.scale) == bits(b.scale) and ints(a.zero_point) == ints(b.zero_point)


# ---------------------------------------------------------------- CLI
def test_cli(tmp_path):
    from refquant.calibration import cli
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 32)).astype(np.float32)
    p = tmp_path / "d.npz"
    np.savez(p, b1=x * 2, b0=x)                        # sorted key order: b0 then b1
    out = tmp_path / "o.json"
    page = tmp_path / "o.html"
    assert cli.main([str(p), "--tool", "pytorch", "--method", "moving_average_minmax",
                     "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    ref = calibrate([x, x * 2], tool="pytorch", method="moving_average_minmax")
    assert doc["results"][0]["scale_bits"] == bits(ref.scale)[0]
    assert cli.main([str(p), "--compare-tools", "--html", str(page), "--per-channel", "1"]) == 0
    xml.dom.minidom.parseString(page.read_text().split("<body>", 1)[1].split("<h2>")[0].split("</p>", 1)[1])
    assert "<svg" in page.read_text()
    assert cli.main([str(tmp_path / "missing.npz")]) == 2


def _strict_json(text):
    def bad(c):
        raise ValueError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=bad)


def test_cli_json_is_strict_for_non_finite_results(tmp_path, capsys):
    """A tool's inf/NaN scale is written as "inf"/"nan" (strict JSON), with a warning; the API
    keeps the float."""
    from refquant.calibration import cli
    huge = tmp_path / "huge.npz"
    np.savez(huge, a=np.array([-3e38, 0, 3e38], np.float32))
    with np.errstate(all="ignore"):
        assert np.isinf(calibrate(np.array([-3e38, 0, 3e38], np.float32), tool="pytorch", method="minmax").scale)
    out = tmp_path / "o.json"
    assert cli.main([str(huge), "--tool", "pytorch", "--method", "minmax", "--json", str(out)]) == 0
    assert _strict_json(out.read_text())["results"][0]["scale"] == "inf"
    assert "non-finite scale" in capsys.readouterr().err
    const = tmp_path / "const.npz"
    np.savez(const, a=np.full(8, 2.5, np.float32))
    assert cli.main([str(const), "--tool", "onnxruntime", "--method", "distribution", "--dtype", "float8e4m3fn",
                     "--json"]) == 0
    assert _strict_json(capsys.readouterr().out)["results"][0]["scale"] == "nan"


def test_cli_unwritable_output_exit_2(tmp_path, capsys):
    from refquant.calibration import cli
    p = tmp_path / "d.npy"
    np.save(p, np.linspace(-1, 3, 20, dtype=np.float32))
    for opt in ("--json", "--html"):
        assert cli.main([str(p), opt, str(tmp_path / "no_dir" / "o.out")]) == 2
        assert f"{opt}: cannot write" in capsys.readouterr().err


def test_cli_subprocess_prints_table(tmp_path):
    p = tmp_path / "d.npy"
    np.save(p, np.linspace(-1, 3, 200, dtype=np.float32))
    r = subprocess.run([sys.executable, "-m", "refquant.calibration.cli", str(p), "--method", "entropy",
                        "--tool", "tensorrt"], capture_output=True, text=True)
    assert r.returncode == 0 and "scale" in r.stdout and "tensorrt entropy" in r.stdout


def test_data_forms():
    x = np.array([1.0, -2.0, 3.0], np.float32)
    assert bits(calibrate([1.0, -2.0, 3.0]).rmin) == bits(calibrate(x).rmin)
    it = calibrate(iter([x, 2 * x]), tool="pytorch", method="minmax")
    assert bits(it.rmin) == bits(F32(-4.0))


def test_batching_semantics():
    """ORT gathers every batch before its histogram (order-free); torch observers update per batch."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal(500).astype(np.float32)
    b = (rng.standard_normal(500) * 4).astype(np.float32)
    for meth in ("entropy", "percentile"):
        r1 = calibrate([a, b], method=meth, num_bins=1024)
        r2 = calibrate([b, a], method=meth, num_bins=1024)
        r3 = calibrate(np.concatenate([a, b]), method=meth, num_bins=1024)
        assert bits(r1.rmin) == bits(r2.rmin) == bits(r3.rmin) and bits(r1.rmax) == bits(r2.rmax) == bits(r3.rmax)
    m1 = calibrate([a, b], tool="pytorch", method="moving_average_minmax")
    m2 = calibrate([b, a], tool="pytorch", method="moving_average_minmax")
    assert bits(m1.rmax) != bits(m2.rmax)


def test_data_dtype_edges():
    """float64 values beyond float32's range are named as such (not 'holds Inf values'); structured
    and raw-void arrays are refused with a TypeError; ml_dtypes floats are converted."""
    import warnings
    import ml_dtypes
    with warnings.catch_warnings():
        warnings.simplefilter("error")                       # no 'overflow encountered in cast'
        with pytest.raises(ValueError, match="beyond float32's range"):
            calibrate(np.array([1e39, 1.0]))
    for bad in (np.zeros(3, dtype=[("a", "<f4")]), np.zeros(3, "V4"), np.array([("a",)], dtype=[("x", "U1")])):
        with pytest.raises(TypeError, match="data: batch 0 has dtype"):
            calibrate(bad)
    r = calibrate(np.array([1.5, -2.0], ml_dtypes.bfloat16))
    assert float(r.rmin) == -2.0 and float(r.rmax) == 1.5


@pytest.mark.parametrize("arrays", [{"a": np.zeros((0, 3), np.float32)},                 # no values
                                    {"a": np.array([1e-45, -1e-44, 0.0], np.float32)},   # denormal range
                                    {"a": np.array([1e39, 0.0])}])                       # beyond float32
def test_cli_compare_tools_edge_data_no_traceback(tmp_path, capsys, arrays):
    """--compare-tools --html on data every or some tool refuses: the refusals are listed, the page
    is written, no traceback."""
    from refquant.calibration import cli
    p = tmp_path / "d.npz"
    np.savez(p, **arrays)
    page = tmp_path / "o.html"
    assert cli.main([str(p), "--compare-tools", "--html", str(page)]) == 0
    assert "not applicable" in capsys.readouterr().out
    assert "<svg" in page.read_text()


def test_flags_and_shapes_validated():
    """A string flag is truthy in Python ('no' selected symmetric); mismatched per-channel ranges
    gave numpy's bare broadcast error."""
    with pytest.raises(TypeError, match="symmetric: expected True or False"):
        compute_scale_zero_point(-1.0, 2.0, symmetric="no")
    with pytest.raises(TypeError, match="reduce_range: expected True or False"):
        calibrate([1.0, -2.0], reduce_range="yes")
    with pytest.raises(TypeError, match="calib_symmetric"):
        calibrate([1.0, -2.0], calib_symmetric="false")
    with pytest.raises(ValueError, match="rmin/rmax: shapes"):
        compute_scale_zero_point([0.0, -1.0], [1.0, 2.0, 3.0])
    a = compute_scale_zero_point(-1.0, 2.0, symmetric=np.True_, reduce_range=0)
    b = compute_scale_zero_point(-1.0, 2.0, symmetric=True, reduce_range=False)
    assert bits(a[0]) == bits(b[0]) and ints(a[1]) == ints(b[1])


def test_cli_unreadable_data_exit_2(tmp_path, capsys):
    """Object arrays (never unpickled), corrupt files: exit 2 with the path named, no traceback;
    an .npy saved under an .npz name is read as one batch."""
    from refquant.calibration import cli
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([1, "a", None], dtype=object), allow_pickle=True)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip archive")
    for p, why in ((obj, "holds object arrays, which refquant does not load"),
                   (bad, "is not an .npz or .npy file")):
        assert cli.main([str(p)]) == 2
        err = capsys.readouterr().err
        assert f"DATA: '{p}' {why}" in err and "Traceback" not in err and "allow_pickle" not in err
    renamed = tmp_path / "one.npz"
    with open(renamed, "wb") as f:
        np.save(f, np.linspace(-1, 3, 20, dtype=np.float32))
    assert cli.main([str(renamed), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_batches"] == 1


def test_conversion_to_float32_noted():
    """float16 / lossy float64 / large-int input: the float32 conversion is stated in the notes;
    lossless input (float32, small ints, Python floats exact in float32) adds no note."""
    import ml_dtypes
    for d in ([0.1, 2.0], np.array([2**30 + 1]), np.array([1.5], np.float16), np.array([1.5], ml_dtypes.bfloat16)):
        assert any("converted to float32" in n for n in calibrate(d).notes), d
    for d in ([1.0, -2.0], np.array([1, 2]), np.array([1.5], np.float32)):
        assert not any("converted" in n for n in calibrate(d).notes), d
    x = np.array([0.1, -0.3, 2.0])
    assert bits(calibrate(x).scale) == bits(calibrate(x.astype(np.float32)).scale)


def test_cli_tool_options(tmp_path, capsys):
    """--strides / --calib-symmetric / --torch-threads reach calibrate()."""
    from refquant.calibration import cli
    rng = np.random.default_rng(2)
    bs = [rng.standard_normal(64).astype(np.float32) * np.float32(k + 1) for k in range(4)]
    p = tmp_path / "d.npz"
    np.savez(p, **{f"b{k}": b for k, b in enumerate(bs)})
    for args, kw in (([ "--method", "entropy", "--num-bins", "256", "--num-quantized-bins", "64", "--strides", "2"],
                      dict(method="entropy", num_bins=256, num_quantized_bins=64, strides=2)),
                     (["--method", "percentile", "--calib-symmetric", "false"],
                      dict(method="percentile", calib_symmetric=False))):
        assert cli.main([str(p), "--json"] + args) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["results"][0]["scale_bits"] == bits(calibrate(bs, **kw).scale)[0]
    assert cli.main([str(p), "--tool", "pytorch", "--method", "histogram", "--torch-threads", "0"]) == 2


def test_min_real_range_validated():
    """ORT's Python max(rmax, rmin + nan) ignores a NaN MinimumRealRange, refquant's np.maximum made
    the scale NaN; non-finite or non-numeric values are refused."""
    for bad in (float("nan"), float("inf"), 1e39):
        with pytest.raises(ValueError, match="min_real_range: must be a finite"):
            compute_scale_zero_point(-1.0, 2.0, dtype="uint8", min_real_range=bad)
    for bad in ("abc", [0.1, 0.2]):
        with pytest.raises(TypeError, match="min_real_range"):
            compute_scale_zero_point(-1.0, 2.0, dtype="uint8", min_real_range=bad)
    s, z = compute_scale_zero_point(-1.0, 2.0, dtype="uint8", min_real_range=-1.0)
    assert bits(s) == bits(F32(3.0) / F32(255)) and int(z) == 85


def test_ort_version_option():
    """ORT <= 1.30 rounded rmax - rmin to float32 before promoting it (quant_utils.compute_scale_zp;
    1.31 promotes first): one ulp on some scales, and an infinite scale past float32's range."""
    from refquant.calibration import CalibrationError
    rng = np.random.default_rng(3)
    lo = (-np.abs(rng.standard_normal(400)) * 3).astype(np.float32)
    hi = (np.abs(rng.standard_normal(400)) * 5).astype(np.float32)
    new, _ = compute_scale_zero_point(lo, hi, dtype="int8")
    old, _ = compute_scale_zero_point(lo, hi, dtype="int8", ort_version="1.30.0")
    want_old = ((hi - lo).astype(np.float32).astype(np.float64) / 255.0).astype(np.float32)
    want_new = ((hi.astype(np.float64) - lo.astype(np.float64)) / 255.0).astype(np.float32)
    assert bits(old) == bits(want_old) and bits(new) == bits(want_new)
    assert bits(old) != bits(new)                               # the two rules do differ here
    assert bits(compute_scale_zero_point(lo, hi, ort_version="1.31.1")[0]) == bits(new)
    s, z = compute_scale_zero_point(-3e38, 3e38, dtype="int8", ort_version="1.30.0")
    assert np.isinf(s) and int(z) == -128
    s, z = compute_scale_zero_point(-3e38, 3e38, dtype="int8")
    assert np.isfinite(s)
    r = calibrate([np.array([-3e38, 3e38], np.float32)], tool="onnxruntime", ort_version="1.30")
    assert np.isinf(r.scale)
    with pytest.raises(CalibrationError, match="ort_version"):
        compute_scale_zero_point(-1.0, 1.0, ort_version="one")
    with pytest.raises(CalibrationError, match="ort_version"):
        compute_scale_zero_point(-1.0, 1.0, tool="pytorch", ort_version="1.30.0")
    with pytest.raises(CalibrationError, match="ort_version"):
        calibrate([np.ones(3, np.float32)], tool="pytorch", ort_version="1.30.0")


def test_empty_batch_among_others_follows_each_tool():
    """torch's observers and ORT's minmax skip an empty batch; ORT's moving average takes it into
    its range as (inf, -inf), ORT's histogram methods and ModelOpt fail on it: refused there."""
    bs = [np.linspace(-1, 2, 300, dtype=np.float32), np.zeros(0, np.float32)]
    full = [bs[0]]
    for tool, method in (("pytorch", "minmax"), ("pytorch", "histogram"), ("onnxruntime", "minmax")):
        a, b = calibrate(bs, tool=tool, method=method), calibrate(full, tool=tool, method=method)
        assert a.scale.tobytes() == b.scale.tobytes() and a.zero_point == b.zero_point, (tool, method)
    for tool, method, why in (("onnxruntime", "moving_average_minmax", "(inf, -inf)"),
                              ("onnxruntime", "entropy", "inhomogeneous"),
                              ("modelopt", "minmax", "empty tensor")):
        with pytest.raises(CalibrationError, match=r"batch 1 is empty.*" + re.escape(why)):
            calibrate(bs, tool=tool, method=method)
