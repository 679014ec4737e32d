"""Top-level ops: run a fast kernel when one covers the call, else the numpy reference.

Both paths return identical bits.  ``refquant.last_path()`` tells which ran.

How an op is dispatched
    1. REFQUANT_DISABLE_FAST=1 (read at every call) -> reference.
    2. The profile argument is resolved to a ``Profile``; if that fails, or the profile does
       not model the op, or it is ``symmetric_only`` -> reference (which raises the error);
       a symmetric-only profile's QLinearMatMul / QGemm / QLinearConv whose zero points are
       all absent or zero goes on to the glue (nothing for the reference to refuse).
    3. The fast glue module is imported lazily (``refquant._quant_fast`` for
       Quantize/Dequantize/DynamicQuantizeLinear, ``refquant._gemm_fast`` for the integer
       GEMM/conv ops).  ImportError (extension not built, module absent) -> reference.
    4. The glue function gets the same arguments as the reference op, with ``profile=`` the
       resolved Profile, and returns ``(result, kernel_name)`` or ``None`` when no kernel covers
       the call (dtype, layout, profile field, opset ...) -> reference.
Exceptions raised by a glue function propagate: a glue function declines with ``None``, so
unusual input reaches the reference and gets the reference's error message.

``quantize_linear`` / ``dequantize_linear`` also take ``out=`` (a refquant extension, not an
ONNX attribute): a preallocated array of the result's shape and dtype; the kernel writes into
it (C-contiguous), or the reference's result is copied into it.  Repeated calls then skip the
allocation and page faults of a fresh output, as inference engines' arenas do.
"""
from __future__ import annotations

import importlib
import inspect as _inspect
import os

import numpy as np

from . import reference as _ref
from ._errors import KernelSizeLimit
from ._packed import pack_weights as _ref_pack_weights
from .profile import get_profile, _GENERATION

__all__ = [
    "quantize_linear", "dequantize_linear", "dynamic_quantize_linear",
    "matmul_integer", "qlinear_matmul", "qgemm", "conv_integer", "qlinear_conv",
    "requantize", "pack_weights", "last_path", "kernel_info", "fast_enabled",
    "quantize_linear_packed",
]

_LAST = {"op": None, "path": None}

_MODULES = {}      # glue module name -> module or None (import failed)
_QUANT = "_quant_fast"
_GEMM = "_gemm_fast"


def last_path():
    """{'op': ONNX op name, 'path': 'reference' | kernel name} of the most recent top-level call."""
    return dict(_LAST)


def _ran(op, path):
    _LAST["op"] = op
    _LAST["path"] = path


# os.environ's own mapping, read without os.environ.get's encode / decode round trip (every
# dispatched call checks the variable; 0.6 -> 0.1 us)
_ENV_DATA = getattr(os.environ, "_data", None)
try:
    _ENV_KEY = os.environ.encodekey("REFQUANT_DISABLE_FAST") if _ENV_DATA is not None else None
except Exception:  # noqa: BLE001 - another Python's os.environ
    _ENV_DATA = None


def fast_enabled():
    """False when REFQUANT_DISABLE_FAST is set (to anything but '' or '0')."""
    if _ENV_DATA is not None:
        v = _ENV_DATA.get(_ENV_KEY)
        if v is None:
            return True
        v = os.environ.decodevalue(v)
    else:
        v = os.environ.get("REFQUANT_DISABLE_FAST", "")
    return v.strip() in ("", "0")


_SYM = {}   # id(profile) -> (profile, symmetric_only anywhere: the profile's or an override's)


def _symmetric_only(prof):
    """Whether the profile, or any of its overrides, is symmetric-only (an override's
    symmetric_only applies to the calls it selects; the zero-point check below covers them all)."""
    ent = _SYM.get(id(prof))
    if ent is None or ent[0] is not prof:
        sym = bool(prof.symmetric_only) or any(
            dict(fields).get("symmetric_only") for _, fields in (prof.overrides or ()))
        ent = (prof, sym)
        if len(_SYM) > 256:
            _SYM.clear()
        _SYM[id(prof)] = ent
    return ent[1]


def _fast_profile_ok(prof, op):
    """Whether a fast kernel may be asked at all.  Symmetric-only profiles (tensorrt, or an
    override that makes some calls symmetric-only) reach only the QuantizeLinear /
    DequantizeLinear glue, which checks the zero points itself (the reference raises the
    profile's error on non-zero ones), and GEMM / conv calls whose zero points are all zero
    (_symmetric_call_ok)."""
    if op == "Requantize":
        # the reference's requantize applies every profile's epilogue (Profile.ops lists the
        # ONNX ops a profile models); the glue checks the epilogue fields
        return True
    return (prof.ops is None or op in prof.ops) and (
        not _symmetric_only(prof) or op in ("QuantizeLinear", "DequantizeLinear"))


# the zero-point arguments of the GEMM / conv ops (position, name)
_ZP_ARGS = {"QLinearMatMul": ((2, "a_zero_point"), (5, "b_zero_point"), (7, "y_zero_point")),
            "QGemm": ((2, "a_zero_point"), (5, "b_zero_point"), (8, "y_zero_point")),
            "QLinearConv": ((2, "x_zero_point"), (5, "w_zero_point"), (7, "y_zero_point"))}


def _symmetric_call_ok(prof, op, args, kwargs):
    """A symmetric-only profile's (tensorrt) GEMM / conv call whose zero points are all absent
    or zero: the reference would not raise its symmetric error (the only check it adds), so the
    glue may take the call (its other checks are the same as for any profile)."""
    if not _symmetric_only(prof) or op not in _ZP_ARGS or (prof.ops is not None and op not in prof.ops):
        return False
    from .reference.gemm import _nonzero
    try:
        for pos, name in _ZP_ARGS[op]:
            z = args[pos] if len(args) > pos else kwargs.get(name)
            if _nonzero(z):
                return False
    except Exception:   # noqa: BLE001 - unusual input: the reference's error
        return False
    return True


_WEIGHT_OPS = ("QLinearMatMul", "QLinearConv", "QGemm")   # weight operand at 3, its zero point at 5


def _weights_refused(prof, op, args, kwargs):
    """True when the profile's engine refuses this call's weight zero point (Profile.extra
    ["weights"]: the reference raises its ProfileError; the kernels would compute): the call
    then goes to the reference."""
    extra = getattr(prof, "extra", None) or {}
    if op == "QLinearConv" and extra.get("groups") == "refuse" and kwargs.get("group", 1) != 1:
        return True      # the reference raises the profile's error (or the argument's)
    if (op == "QLinearConv" and extra.get("per_channel_conv") and len(args) > 4 and np.size(args[4]) > 1
            and getattr(args[0], "dtype", None) == np.uint8):
        return True      # per-channel weights with a uint8 input: the reference raises (tflite)
    if op not in _WEIGHT_OPS or not extra.get("weights"):
        return False
    names = ("b", "b_zero_point") if op != "QLinearConv" else ("w", "w_zero_point")
    w = args[3] if len(args) > 3 else kwargs.get(names[0])
    z = args[5] if len(args) > 5 else kwargs.get(names[1])
    if w is None or z is None:
        return False
    from .reference.gemm import _nonzero, _weight_check
    if not _nonzero(z):      # the common case, without the generic check
        return False
    from ._packed import unwrap
    try:
        _weight_check(prof, np.asarray(unwrap(w)).dtype, z, "w")
    except Exception:  # noqa: BLE001 - the ProfileError (or any error): the reference decides
        return True
    return False


def _glue(name):
    if name not in _MODULES:
        try:
            _MODULES[name] = importlib.import_module(f"{__package__}.{name}")
        except ImportError:
            _MODULES[name] = None
    return _MODULES[name]


def _try_fast(op, module, func, args, kwargs, **extra):
    """The fast kernel's result (its output, after recording the kernel as the path taken), or
    None when fast kernels are off, the glue lacks ``func``, the profile does not resolve or is
    not for kernels, or the glue declines the call."""
    if not fast_enabled():
        return None
    mod = _glue(module)
    fast = getattr(mod, func, None) if mod is not None else None
    if fast is None:
        return None
    try:
        prof = get_profile(kwargs.get("profile", "onnx"))
    except Exception:
        return None
    if (not (_fast_profile_ok(prof, op) or _symmetric_call_ok(prof, op, args, kwargs))
            or _weights_refused(prof, op, args, kwargs)):
        return None
    if _masked(args) or _masked(kwargs.values()):
        return None     # numpy.ma arrays anywhere: the reference refuses them (TypeError)
    args, kwargs = _aligned_args(args, kwargs)
    try:
        if not kwargs and not extra:
            res = fast(*args, profile=prof)
        else:
            res = fast(*args, **dict(kwargs, profile=prof, **extra))
    except KernelSizeLimit:     # a dimension beyond the kernels' int sizes: the reference runs
        return None
    if res is None:
        return None
    _ran(op, res[1])
    return res


def _masked(values):
    for v in values:
        if isinstance(v, np.ma.MaskedArray):
            return True
    return False


def _aligned_args(args, kwargs):
    """args / kwargs with every array whose data is not aligned to its item size replaced by an
    aligned copy (numpy allows any start: np.frombuffer(buf, offset=1), record fields).  The
    kernels read parameters through typed pointers (the compiled lean entries decline such
    arrays); the values, and so the result, are the same."""
    if any(type(v) is np.ndarray and not v.flags.aligned for v in args):
        args = tuple(np.require(v, requirements="A") if type(v) is np.ndarray and not v.flags.aligned
                     else v for v in args)
    if any(type(v) is np.ndarray and not v.flags.aligned for v in kwargs.values()):
        kwargs = {k: (np.require(v, requirements="A") if type(v) is np.ndarray and not v.flags.aligned
                      else v) for k, v in kwargs.items()}
    return args, kwargs


def _dispatch(op, module, func, ref_func, args, kwargs):
    res = _try_fast(op, module, func, args, kwargs)
    if res is not None:
        return res[0]
    _ran(op, "reference")
    return ref_func(*args, **kwargs)


def _with_out(op, func, ref_func, args, kwargs, out):
    """Run with a caller-provided output array (refquant extension, not an ONNX attribute):
    the kernel writes into ``out`` directly; the reference's result is copied into it."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
    res = _try_fast(op, _QUANT, func, args, kwargs, out=out)
    if res is not None:
        return res[0]
    _ran(op, "reference")
    y = ref_func(*args, **kwargs)
    if out.shape != y.shape or out.dtype != y.dtype:
        raise ValueError(f"out: must have the result's shape {y.shape} and dtype {y.dtype}, "
                         f"got {out.shape} {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out: the array is read-only")
    np.copyto(out, y)
    return out


_QL_LEAN = [None, -1]   # [refquant._quant_fast.quantize_entry("onnx") or None, registry generation]
_DQL_LEAN = [None, -1]  # the same for DequantizeLinear


def _quant_lean(slot, op, entry):
    def lean_for(prof):
        mod = _glue(_QUANT)
        make = getattr(mod, entry, None) if mod is not None else None
        return make(prof) if make is not None and _fast_profile_ok(prof, op) else None

    def resolve():
        f = lean_for(get_profile("onnx"))
        slot[0], slot[1] = f, _GENERATION[0]
        return f
    resolve.lean_for = lean_for
    return resolve


_DYN_LEAN = [None, -1]  # and for DynamicQuantizeLinear
_ql_lean = _quant_lean(_QL_LEAN, "QuantizeLinear", "quantize_entry")
_dql_lean = _quant_lean(_DQL_LEAN, "DequantizeLinear", "dequantize_entry")
_dyn_lean = _quant_lean(_DYN_LEAN, "DynamicQuantizeLinear", "dynamic_quantize_entry")


def quantize_linear(x, y_scale, y_zero_point=None, *, out=None, **kwargs):
    """refquant.reference.quantize_linear, run by a fast kernel where one covers the call.

    ``out`` (refquant extension): a preallocated C-contiguous array of the result's shape
    and dtype to write into (as inference engines reuse buffers); it is returned."""
    if _QD_KEYS.issuperset(kwargs) and fast_enabled():
        # the common per-tensor / per-axis call checked in compiled code (see matmul_integer);
        # an ``out`` it does not take (shape, type, layout) goes on to _with_out
        res = _lean_call(_QL_LEAN, _ql_lean, "QuantizeLinear", kwargs,
                         (x, y_scale, y_zero_point, kwargs.get("axis", 1), out))
        if res is not None:
            return res[0]
    if out is not None:
        return _with_out("QuantizeLinear", "quantize_linear", _ref.quantize_linear,
                         (x, y_scale, y_zero_point), kwargs, out)
    return _dispatch("QuantizeLinear", _QUANT, "quantize_linear", _ref.quantize_linear,
                     (x, y_scale, y_zero_point), kwargs)


def dequantize_linear(x, x_scale, x_zero_point=None, *, out=None, **kwargs):
    """refquant.reference.dequantize_linear, run by a fast kernel where one covers the call.

    ``out``: as for quantize_linear."""
    if _QD_KEYS.issuperset(kwargs) and fast_enabled():
        res = _lean_call(_DQL_LEAN, _dql_lean, "DequantizeLinear", kwargs,
                         (x, x_scale, x_zero_point, kwargs.get("axis", 1), out))
        if res is not None:
            return res[0]
    if out is not None:
        return _with_out("DequantizeLinear", "dequantize_linear", _ref.dequantize_linear,
                         (x, x_scale, x_zero_point), kwargs, out)
    return _dispatch("DequantizeLinear", _QUANT, "dequantize_linear", _ref.dequantize_linear,
                     (x, x_scale, x_zero_point), kwargs)


_NIBBLE = None


def quantize_linear_packed(x, y_scale, y_zero_point=None, **kwargs):
    """QuantizeLinear with the result in ONNX's packed byte layout (``refquant.pack``): 4-bit
    and 2-bit types packed into bytes (element 0 in the low bits), 8/16-bit types as their raw
    bytes.  Same bits as ``refquant.pack(refquant.quantize_linear(...))``; returns 1-D uint8."""
    global _NIBBLE
    from .packing import pack
    y = quantize_linear(x, y_scale, y_zero_point, **kwargs)
    if _NIBBLE is None:
        import ml_dtypes
        _NIBBLE = (np.dtype(ml_dtypes.uint4), np.dtype(ml_dtypes.int4), np.dtype(ml_dtypes.float4_e2m1fn))
    if y.dtype in _NIBBLE and str(_LAST["path"]).startswith("rq_quantize_"):
        # the kernels store each 4-bit code in the low nibble of its byte (upper bits zero):
        # one compiled pass packs them (16M codes: numpy's strided | and << took 9.6 ms)
        from . import _quant
        return _quant.pack_nibbles(np.ascontiguousarray(y).reshape(-1).view(np.uint8))
    return pack(y)


def dynamic_quantize_linear(x, **kwargs):
    if _P_KEYS.issuperset(kwargs) and fast_enabled():
        res = _lean_call(_DYN_LEAN, _dyn_lean, "DynamicQuantizeLinear", kwargs, (x,))
        if res is not None:
            return res[0]
    return _dispatch("DynamicQuantizeLinear", _QUANT, "dynamic_quantize_linear",
                     _ref.dynamic_quantize_linear, (x,), kwargs)


def _lean_first(slot, resolve, op, call_args):
    """The result of a compiled lean entry (slot: [function or None, the profile registry's
    generation it was resolved at]; resolve() fills it again whenever a profile has been
    registered since, as one may replace "onnx"), recording the kernel as the path taken, or
    None when there is no entry or it declines the call."""
    return _run_entry(slot[0] if slot[1] == _GENERATION[0] else resolve(), op, call_args)


def _run_entry(f, op, call_args):
    """f(*call_args) of a compiled lean entry (None: no entry), recording the kernel as the
    path taken; None when there is no entry, it declines, or a size exceeds the kernels' ints."""
    if f is None:
        return None
    try:
        res = f(*call_args)
    except KernelSizeLimit:
        return None
    if res is not None:
        _ran(op, res[1])
    return res


_QD_KEYS = frozenset(("axis", "profile"))
_P_KEYS = frozenset(("profile",))
_LEAN_PROF = {}   # (op, id(profile)) -> (profile, registry generation, lean entry or None)


def _lean_call(slot, resolve, op, kwargs, call_args):
    """_lean_first for the default profile (no ``profile`` keyword), else the same compiled
    entry resolved for the profile the call names (a name or a Profile; ``resolve.lean_for``),
    memoised per profile object and registry generation.  None: no entry, or it declines."""
    if "profile" not in kwargs:
        return _lean_first(slot, resolve, op, call_args)
    try:
        prof = get_profile(kwargs["profile"])
    except Exception:  # noqa: BLE001 - the usual dispatch reports it
        return None
    key = (op, id(prof))
    ent = _LEAN_PROF.get(key)
    if ent is None or ent[0] is not prof or ent[1] != _GENERATION[0]:
        ent = (prof, _GENERATION[0], resolve.lean_for(prof))
        if len(_LEAN_PROF) > 256:
            _LEAN_PROF.clear()
        _LEAN_PROF[key] = ent    # the entry keeps the profile alive: its id stays unique
    return _run_entry(ent[2], op, call_args)


_MI_LEAN = [None, -1]   # [refquant._gemm.matmul_integer_lean or None, registry generation]


def _mi_lean():
    """The compiled entry for MatMulInteger's common call under the default profile, when that
    profile lets the kernels take MatMulInteger (int32 wraparound, no int16 pair saturation),
    else None.  Resolved again after any register_profile() (see _lean_first)."""
    f = _mi_lean_for(get_profile("onnx"))
    _MI_LEAN[0], _MI_LEAN[1] = f, _GENERATION[0]
    return f


def _mi_lean_for(prof):
    mod = _glue(_GEMM)
    fn = getattr(getattr(mod, "_k", None), "matmul_integer_lean", None) if mod is not None else None
    if fn is not None:
        p = prof.for_op("MatMulInteger")
        if (_fast_profile_ok(prof, "MatMulInteger") and p.accumulator == "int32_wrap"
                and p.int16_pair_saturation not in (True, "mlas")):
            return fn
    return None


_mi_lean.lean_for = _mi_lean_for


def matmul_integer(*args, **kwargs):
    # the common call (no keywords: the default profile; 2-D uint8/int8 arrays, scalar zero
    # points) checked in compiled code, the same kernel as the glue's lean path (about 2 us
    # less a call); anything else, or None from it, takes the usual dispatch
    if _P_KEYS.issuperset(kwargs) and 2 <= len(args) <= 4 and fast_enabled():
        res = _lean_call(_MI_LEAN, _mi_lean, "MatMulInteger", kwargs, args)
        if res is not None:
            return res[0]
    return _dispatch("MatMulInteger", _GEMM, "matmul_integer", _ref.matmul_integer, args, kwargs)


_QM_LEAN = [None, -1]   # [refquant._gemm.qlinear_matmul_lean or None, registry generation]


def _qm_lean():
    """As _mi_lean, for QLinearMatMul: the default profile must have the plain float32
    epilogue the kernels implement and no int16 pair saturation."""
    f = _qm_lean_for(get_profile("onnx"))
    _QM_LEAN[0], _QM_LEAN[1] = f, _GENERATION[0]
    return f


def _qm_lean_for(prof):
    mod = _glue(_GEMM)
    fn = getattr(getattr(mod, "_k", None), "qlinear_matmul_lean", None) if mod is not None else None
    if fn is not None and hasattr(mod, "_qm_prof"):
        _, ok, sat, _f2i = mod._qm_prof(prof)
        if _fast_profile_ok(prof, "QLinearMatMul") and ok and not sat and not prof.extra.get("weights"):
            return fn
    return None


_qm_lean.lean_for = _qm_lean_for


def qlinear_matmul(*args, **kwargs):
    # the common call checked in compiled code first (see matmul_integer)
    if _P_KEYS.issuperset(kwargs) and len(args) == 8 and fast_enabled():
        res = _lean_call(_QM_LEAN, _qm_lean, "QLinearMatMul", kwargs, args)
        if res is not None:
            return res[0]
    return _dispatch("QLinearMatMul", _GEMM, "qlinear_matmul", _ref.qlinear_matmul, args, kwargs)


def qgemm(*args, **kwargs):
    return _dispatch("QGemm", _GEMM, "qgemm", _ref.qgemm, args, kwargs)


def conv_integer(*args, **kwargs):
    return _dispatch("ConvInteger", _GEMM, "conv_integer", _ref.conv_integer, args, kwargs)


_QC_LEAN = [None, -1]   # [callable(args, kwargs) or None, registry generation]
_QC_KEYS = frozenset(("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"))
_QC_KEYS_P = _QC_KEYS | {"profile"}


def _qc_lean():
    """As _mi_lean, for QLinearConv: refquant._gemm_fast.qlinear_conv_compiled bound to what the
    default profile allows (the plain float32 epilogue, no int16 pair saturation)."""
    f = _qc_lean_for(get_profile("onnx"))
    _QC_LEAN[0], _QC_LEAN[1] = f, _GENERATION[0]
    return f


def _qc_lean_for(prof):
    mod = _glue(_GEMM)
    fn = getattr(mod, "qlinear_conv_compiled", None) if mod is not None else None
    if fn is not None and hasattr(getattr(mod, "_k", None), "qlinear_conv_lean"):
        _, ok0, ok1, _f2i = mod._qc_prof(prof)
        if _fast_profile_ok(prof, "QLinearConv") and (ok0 or ok1) and not prof.extra.get("weights"):
            def f(args, kwargs, _fn=fn, _ok0=ok0, _ok1=ok1):
                return _fn(args, kwargs, _ok0, _ok1)
            return f
    return None


_qc_lean.lean_for = _qc_lean_for


def qlinear_conv(*args, **kwargs):
    # the common call (default profile, attributes only as keywords) checked mostly in compiled
    # code first (see matmul_integer)
    if 8 <= len(args) <= 9 and _QC_KEYS_P.issuperset(kwargs) and fast_enabled():
        if "profile" in kwargs:
            attrs = dict(kwargs)
            del attrs["profile"]
            res = _lean_call(_QC_LEAN, _qc_lean, "QLinearConv", kwargs, (args, attrs))
        else:
            res = _lean_first(_QC_LEAN, _qc_lean, "QLinearConv", (args, kwargs))
        if res is not None:
            return res[0]
    return _dispatch("QLinearConv", _GEMM, "qlinear_conv", _ref.qlinear_conv, args, kwargs)


def requantize(*args, **kwargs):
    """refquant.reference.requantize, run by the GEMM's epilogue kernels where they cover the
    call (refquant._gemm_fast.requantize)."""
    return _dispatch("Requantize", _GEMM, "requantize", _ref.requantize, args, kwargs)


def pack_weights(B, *args, **kwargs):
    """Pack constant weights once (``refquant._gemm_fast.pack_weights`` when available)."""
    mod = _glue(_GEMM) if fast_enabled() else None
    fn = getattr(mod, "pack_weights", None) if mod is not None else None
    return (fn or _ref_pack_weights)(B, *args, **kwargs)


_OPS = (
    ("QuantizeLinear", _QUANT), ("DequantizeLinear", _QUANT), ("DynamicQuantizeLinear", _QUANT),
    ("MatMulInteger", _GEMM), ("QLinearMatMul", _GEMM), ("QGemm", _GEMM),
    ("ConvInteger", _GEMM), ("QLinearConv", _GEMM), ("Requantize", _GEMM),
)


def kernel_info():
    """{ONNX op name: kernel a typical call runs at the current ISA level, or 'reference'}.

    Each glue module may provide ``kernel_info() -> {op name: kernel name}``."""
    out = {}
    infos = {}
    for op, module in _OPS:
        if not fast_enabled():
            out[op] = "reference (REFQUANT_DISABLE_FAST)"
            continue
        if module not in infos:
            mod = _glue(module)
            fn = getattr(mod, "kernel_info", None) if mod is not None else None
            infos[module] = fn() if fn is not None else {}
        out[op] = infos[module].get(op, "reference")
    return out


# ---- what help() and inspect.signature show for the dispatching functions ---------------------
# The wrappers above take (*args, **kwargs) so that the common call costs little; the names,
# order and defaults they accept are the reference's, which validates every argument.  Give
# them the reference's signature and docstring, with the dispatch rule in front.

_DISPATCH_NOTE = (
    "Runs a fast C kernel where one covers the call (dtypes, layout, profile) and the numpy\n"
    "reference ``refquant.reference.{name}`` otherwise: the same bits either way, or the same\n"
    "error class.  ``refquant.last_path()`` names the path that ran; REFQUANT_DISABLE_FAST=1\n"
    "forces the reference.{extra}\n\n"
    "The reference's documentation follows.\n\n")
_OUT_NOTE = (
    "\n\n``out`` (refquant extension, keyword only): a preallocated C-contiguous array of the\n"
    "result's shape and dtype to write into, as inference engines reuse buffers; it is returned.")


def _document(fn, ref_fn, *, out=False):
    sig = _inspect.signature(ref_fn)
    if out:
        params = list(sig.parameters.values())
        params.append(_inspect.Parameter("out", _inspect.Parameter.KEYWORD_ONLY, default=None))
        sig = sig.replace(parameters=params)
    fn.__signature__ = sig
    fn.__doc__ = (_DISPATCH_NOTE.format(name=ref_fn.__name__, extra=_OUT_NOTE if out else "")
                  + _inspect.cleandoc(ref_fn.__doc__ or ""))


for _fn, _rf, _out in ((quantize_linear, _ref.quantize_linear, True),
                       (dequantize_linear, _ref.dequantize_linear, True),
                       (dynamic_quantize_linear, _ref.dynamic_quantize_linear, False),
                       (matmul_integer, _ref.matmul_integer, False),
                       (qlinear_matmul, _ref.qlinear_matmul, False),
                       (qgemm, _ref.qgemm, False),
                       (conv_integer, _ref.conv_integer, False),
                       (qlinear_conv, _ref.qlinear_conv, False),
                       (requantize, _ref.requantize, False)):
    _document(_fn, _rf, out=_out)
del _fn, _rf, _out
pack_weights.__signature__ = _inspect.Signature(
    [_inspect.Parameter("B", _inspect.Parameter.POSITIONAL_OR_KEYWORD)])
pack_weights.__doc__ = (_inspect.cleandoc(_ref_pack_weights.__doc__ or "")
                        + "\n\nThe compiled packer (``refquant._gemm_fast.pack_weights``) runs where"
                        " the kernels are built;\nthe packed layout is the kernels' own.")
