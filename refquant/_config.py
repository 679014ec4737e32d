"""Build and run-time configuration: show_config(), config_dict(), thread count.

What the build chose (compiled ISA units, compiler flags, OpenMP) and what the run picked
(detected CPU features, ISA level after caps, threads, kernel per op) are both visible,
like numpy's ``show_config`` / ``__cpu_features__``.

Controls
    REFQUANT_DISABLE_ISA=avx512vnni,amx   disable ISA levels (a disabled level disables all above it);
                                          "avxvnni" / "avx512vbmi" turn off that feature alone
    REFQUANT_MAX_ISA=avx2                 cap the ISA level (scalar, avx2, avx512, avx512vnni, amx)
    REFQUANT_DISABLE_FAST=1               every op runs the numpy reference
    OMP_NUM_THREADS=n                     default kernel thread count (else the CPUs available)
    refquant.set_num_threads(n)           thread count for the kernels (bits never depend on it)
"""
from __future__ import annotations

import json
import os
import sys
import warnings

from ._version import __version__

__all__ = ["show_config", "config_dict", "set_num_threads", "get_num_threads", "compiled_isas",
           "cpu_features", "isa_level", "kernel_info"]


def _cpu():
    """The compiled refquant._cpu module, or None when the extension is not built."""
    try:
        from . import _cpu as mod
    except ImportError:
        return None
    return mod


_WARNED = False


def _warn_env(mod):
    global _WARNED
    if _WARNED or mod is None:
        return
    _WARNED = True
    err = mod.env_error()
    if err:
        warnings.warn(f"refquant: ignoring unknown ISA names in the environment ({err}); "
                      f"known: {', '.join(mod.ISA_NAMES)}", RuntimeWarning, stacklevel=3)


def set_num_threads(n):
    """Set the number of threads the fast kernels use (None restores the default:
    OMP_NUM_THREADS if set, else the CPUs available to the process; counts above 1024, from
    either, are clamped to 1024).  Results never depend on the thread count.  Returns the new
    count."""
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int,)) and not hasattr(n, "__index__"):
            raise TypeError(f"num_threads: expected a positive int or None, got {type(n).__name__}")
        n = int(n)
        if n < 1:
            raise ValueError(f"num_threads: must be >= 1 (or None for the default), got {n}")
    mod = _cpu()
    if mod is None:
        return 1
    return mod.set_num_threads(n)


def get_num_threads():
    """Threads the fast kernels use (1 when the extension is absent)."""
    mod = _cpu()
    return 1 if mod is None else mod.get_num_threads()


def compiled_isas():
    """ISA levels whose compile units were built, lowest first (``[]`` if not compiled)."""
    mod = _cpu()
    return [] if mod is None else mod.compiled_isas()


def cpu_features():
    """{feature: bool} detected by cpuid/xgetbv (``{}`` if the extension is not built)."""
    mod = _cpu()
    return {} if mod is None else mod.features()


def isa_level():
    """Name of the ISA level the kernels dispatch on ("reference" if nothing is compiled)."""
    mod = _cpu()
    if mod is None:
        return "reference"
    _warn_env(mod)
    return mod.isa_name()


def kernel_info():
    """{op name: kernel that runs for a typical call at the current ISA level, or 'reference'}."""
    from . import _dispatch
    return _dispatch.kernel_info()


def config_dict():
    """Everything show_config() prints, as a JSON-serialisable dict."""
    mod = _cpu()
    out = {
        "version": __version__,
        "python": sys.version.split()[0],
        "compiled_extension": mod is not None,
        "fast_path_disabled": os.environ.get("REFQUANT_DISABLE_FAST", "") not in ("", "0"),
        "environment": {k: os.environ[k] for k in ("REFQUANT_DISABLE_ISA", "REFQUANT_MAX_ISA",
                                                    "REFQUANT_DISABLE_FAST", "OMP_NUM_THREADS")
                        if k in os.environ},
    }
    try:
        import numpy
        out["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    if mod is None:
        out.update(compiled_isas=[], cpu_features={}, supported_isas=[], isa_level="reference",
                   num_threads=1, openmp=False, build={})
    else:
        _warn_env(mod)
        out.update(
            compiled_isas=mod.compiled_isas(),
            supported_isas=mod.supported_isas(),
            cpu_features=mod.features(),
            isa_level=mod.isa_name(),
            isa_cap=mod.get_isa_cap(),
            features_off=mod.get_features_off(),
            env_error=mod.env_error(),
            num_threads=mod.get_num_threads(),
            openmp=mod.have_openmp(),
            build=mod.build_info(),
            caches=mod.caches(),
            quantize_division=mod.fast_division(),
        )
    try:
        out["kernels"] = kernel_info()
    except Exception as exc:  # never let a kernel module problem break show_config
        out["kernels"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def show_config(file=None, *, as_json=False):
    """Print the build and run-time configuration: version, compiled ISAs, detected CPU
    features, the ISA level in use, threads, the kernel chosen per op, compiler flags."""
    cfg = config_dict()
    file = sys.stdout if file is None else file
    if as_json:
        print(json.dumps(cfg, indent=2, sort_keys=True), file=file)
        return
    p = lambda *a: print(*a, file=file)  # noqa: E731
    p(f"refquant {cfg['version']} (python {cfg['python']}, numpy {cfg.get('numpy', '?')})")
    if not cfg["compiled_extension"]:
        p("  compiled extension: NOT BUILT (every op runs the numpy reference)")
    else:
        b = cfg["build"]
        p(f"  compiled ISAs:   {', '.join(cfg['compiled_isas'])}")
        p(f"  supported ISAs:  {', '.join(cfg['supported_isas'])} (CPU and OS)")
        if "-DRQ_AMX_EMU" in str(b.get("cflags", "")).split():
            p("  AMX:             EMULATED in C (a REFQUANT_AMX_EMU=1 test build: slow, never for use)")
        lvl = cfg["isa_level"]
        caps = []
        if cfg.get("isa_cap"):
            caps.append(f"set_isa_cap({cfg['isa_cap']!r})")
        if cfg.get("features_off"):
            caps.append(f"set_features_off({cfg['features_off']!r})")
        for k in ("REFQUANT_DISABLE_ISA", "REFQUANT_MAX_ISA"):
            if k in cfg["environment"]:
                caps.append(f"{k}={cfg['environment'][k]}")
        p(f"  ISA level:       {lvl}" + (f"  (capped by {', '.join(caps)})" if caps else ""))
        if cfg.get("env_error"):
            p(f"  WARNING: unknown names in environment: {cfg['env_error']}")
        feats = [k for k, v in cfg["cpu_features"].items() if v]
        p(f"  CPU features:    {' '.join(feats) if feats else '(none detected)'}")
        p(f"  threads:         {cfg['num_threads']} (quantize kernels: rq_parallel pool; "
          f"OpenMP {'on' if cfg['openmp'] else 'off'} for kernels that use it)")
        c = cfg["caches"]
        p(f"  caches:          L2 {c['l2'] >> 10} KiB, last level {c['llc'] >> 20} MiB "
          f"(Q/DQ stream their stores from 8 MiB of output)")
        p(f"  QuantizeLinear:  per tensor " + ("x / s for data in cache (fast vector division), "
                                              "division-free when streaming" if cfg["quantize_division"]
                                              else "division-free (exact; near-ties redone with x / s)"))
        p(f"  compiler:        {b.get('compiler', '?')}")
        p(f"  kernel cflags:   {b.get('cflags', '?')}")
        for isa, flags in b.get("isa_flags", {}).items():
            if flags:
                p(f"    {isa + ':':<12} {flags}")
    if cfg["fast_path_disabled"]:
        p("  REFQUANT_DISABLE_FAST is set: every op runs the numpy reference")
    p("  kernel per op:")
    for op, k in cfg["kernels"].items():
        p(f"    {op:<24} {k}")
