"""Build refquant's compiled kernels: Cython wrappers over C, one compile unit per ISA.

Build conventions (kernel authors code against these):

* Every ``kernels/_<family>.pyx`` becomes the extension ``refquant._<family>``, built from
  that .pyx + ``kernels/src/common/*.c`` + ``kernels/src/<family>/*.c`` (if the folder
  exists).  Include dirs: numpy's, ``kernels/src/common``, ``kernels/src/<family>`` and the
  build folder holding the generated ``rq_build_info.h``.
* Per-ISA compile units are chosen by file-name suffix and get their own flags (there are
  no global -m flags)::

      *_avx2.c        -mavx2 -mfma -mf16c -mbmi2
      *_avx512.c      AVX2 flags + -mavx512f -mavx512bw -mavx512dq -mavx512vl
      *_avx512vnni.c  AVX-512 flags + -mavx512vnni
      *_amx.c         AVX-512-VNNI flags + -mamx-tile -mamx-int8
      any other .c    no ISA flags (portable)

  ISA units are built only on x86-64 compilers that accept the flags (probed); otherwise
  they are skipped and ``RQ_COMPILED_<ISA>`` is 0 in ``rq_build_info.h``, so dispatch code
  must guard calls into a unit with ``#if RQ_COMPILED_AVX2`` (etc., after
  ``#include "rq_build_info.h"``) or with ``rq_compiled_isa(level)`` plus weak linkage.
* Every C file (and the Cython output): ``-O3 -ffp-contract=off`` (never -ffast-math) and
  ``-fopenmp`` (also at link time) when the compiler supports OpenMP; ``RQ_HAVE_OPENMP``
  in ``rq_build_info.h`` says which.
* Environment knobs for the build: ``REFQUANT_NO_ISA=1`` skips all ISA units,
  ``REFQUANT_NO_OPENMP=1`` builds without OpenMP, ``REFQUANT_SANITIZE=address`` adds
  ``-fsanitize=address -fno-omit-frame-pointer`` to compile and link (see
  tests/test_build.py for the AddressSanitizer recipe), ``REFQUANT_DEBUG=1`` builds -O0 -g,
  ``REFQUANT_BUILD_JOBS=N`` compiles N C files at once (default: the usable CPUs),
  ``REFQUANT_AMX_EMU=1`` emulates the AMX tile instructions in C and reports AMX present, so
  that the AMX drivers run (slowly) and can be tested on a CPU without AMX (tests/test_build.py).
"""
from __future__ import annotations

import glob
import os
import platform
import shlex
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
KERNELS = "kernels"
COMMON = os.path.join(KERNELS, "src", "common")

ISA_ORDER = ("avx2", "avx512", "avx512vnni", "amx")
_AVX2 = ["-mavx2", "-mfma", "-mf16c", "-mbmi2"]
_AVX512 = _AVX2 + ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl"]
_VNNI = _AVX512 + ["-mavx512vnni"]
_AMX = _VNNI + ["-mamx-tile", "-mamx-int8"]
ISA_FLAGS = {"avx2": _AVX2, "avx512": _AVX512, "avx512vnni": _VNNI, "amx": _AMX}

# A tiny program per ISA, so the probe checks the flags AND the intrinsics header.
_ISA_PROBE = {
    "avx2": "__m256i f(__m256i a){return _mm256_add_epi32(a,a);}",
    "avx512": "__m512i f(__m512i a){return _mm512_add_epi16(a,a);}",
    "avx512vnni": "__m512i f(__m512i a){return _mm512_dpbusd_epi32(a,a,a);}",
    "amx": "void f(void){_tile_zero(0);}",
}


def isa_of(path: str) -> str | None:
    """The ISA suffix of a C file name (``foo_avx512vnni.c`` -> ``avx512vnni``), or None."""
    stem = os.path.splitext(os.path.basename(path))[0]
    for isa in sorted(ISA_ORDER, key=len, reverse=True):
        if stem.endswith("_" + isa):
            return isa
    return None


def _build_jobs() -> int:
    """Parallel C compiles: REFQUANT_BUILD_JOBS, else the CPUs this process may use."""
    v = os.environ.get("REFQUANT_BUILD_JOBS", "").strip()
    if v:
        try:
            return max(1, int(v))
        except ValueError:
            raise SystemExit(f"REFQUANT_BUILD_JOBS={v!r}: expected a positive integer") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _c_files(folder: str) -> list[str]:
    return sorted(glob.glob(os.path.join(folder, "*.c")))


def _dep_files(folder: str) -> list[str]:
    out = []
    for ext in ("*.c", "*.h", "*.inc"):
        out += glob.glob(os.path.join(folder, "**", ext), recursive=True)
    return sorted(out)


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class RQBuildExt(build_ext):
    """build_ext that probes the compiler, writes rq_build_info.h and compiles per-ISA units."""

    def _probe(self, code: str, flags: list[str], link: bool = False) -> bool:
        tmp = tempfile.mkdtemp(prefix="rq_probe_")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(code)
            devnull = open(os.devnull, "w")
            old_out, old_err = os.dup(1), os.dup(2)
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            try:
                objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=flags)
                if link:
                    self.compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags)
                return True
            except Exception:
                return False
            finally:
                os.dup2(old_out, 1)
                os.dup2(old_err, 2)
                os.close(old_out)
                os.close(old_err)
                devnull.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _configure(self):
        if getattr(self, "_rq_configured", False):
            return
        self._rq_configured = True
        msvc = self.compiler.compiler_type == "msvc"
        debug = _env_flag("REFQUANT_DEBUG")
        if msvc:
            base = ["/O2", "/fp:precise"]
        else:
            base = (["-O0", "-g"] if debug else ["-O3"]) + ["-ffp-contract=off"]
            # never -ffast-math; make it explicit in case the environment's CFLAGS carry it
            base += ["-fno-fast-math"] if self._probe("int x;", ["-fno-fast-math"]) else []
        link = []
        if _env_flag("REFQUANT_AMX_EMU") and not msvc:
            # the AMX tile instructions emulated in C (kernels/src/gemm/rq_amx_emu.h) and AMX
            # reported present: tests the AMX drivers on CPUs without it; never for use
            base += ["-DRQ_AMX_EMU"]
        san = os.environ.get("REFQUANT_SANITIZE", "").strip()
        if san and not msvc:
            sflags = [f"-fsanitize={san}", "-fno-omit-frame-pointer"]
            base += sflags
            link += sflags
        omp = []
        if not _env_flag("REFQUANT_NO_OPENMP"):
            cand = ["/openmp"] if msvc else ["-fopenmp"]
            code = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel\n{n=omp_get_num_threads();}\nreturn n<0;}\n"
            if self._probe(code, cand, link=True):
                omp = cand
        x86 = platform.machine().lower() in ("x86_64", "amd64", "x86-64", "i686", "x64")
        compiled = {}
        for isa in ISA_ORDER:
            ok = (x86 and not msvc and not _env_flag("REFQUANT_NO_ISA")
                  and (isa == "avx2" or compiled.get(ISA_ORDER[ISA_ORDER.index(isa) - 1])))
            if ok:
                code = ("#if !defined(__x86_64__)\n#error not x86-64\n#endif\n"
                        "#include <immintrin.h>\n" + _ISA_PROBE[isa] + "\n")
                ok = self._probe(code, base + ISA_FLAGS[isa])
            compiled[isa] = bool(ok)
        self.rq_base_flags = base + omp
        self.rq_link_flags = link + ([] if msvc else omp)
        self.rq_openmp = bool(omp)
        self.rq_compiled = compiled
        compiler_cmd = getattr(self.compiler, "compiler_so", None) or [self.compiler.compiler_type]
        # generated header: build facts for show_config and RQ_COMPILED_* for dispatch code
        self.rq_info_dir = os.path.join(self.build_temp, "rq_include")
        os.makedirs(self.rq_info_dir, exist_ok=True)
        lines = [
            "/* generated by setup.py (RQBuildExt); do not edit */",
            "#ifndef RQ_BUILD_INFO_H", "#define RQ_BUILD_INFO_H",
            f"#define RQ_BUILD_COMPILER {_c_string(' '.join(compiler_cmd))}",
            f"#define RQ_BUILD_CFLAGS {_c_string(' '.join(self.rq_base_flags))}",
            f"#define RQ_HAVE_OPENMP {int(self.rq_openmp)}",
        ]
        for isa in ISA_ORDER:
            lines.append(f"#define RQ_COMPILED_{isa.upper()} {int(compiled[isa])}")
            lines.append(f"#define RQ_BUILD_FLAGS_{isa.upper()} "
                         f"{_c_string(' '.join(ISA_FLAGS[isa]) if compiled[isa] else '')}")
        lines.append("#endif")
        text = "\n".join(lines) + "\n"
        path = os.path.join(self.rq_info_dir, "rq_build_info.h")
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            with open(path, "w") as f:
                f.write(text)
        summary = ", ".join(i for i in ISA_ORDER if compiled[i]) or "none"
        print(f"refquant build: ISA units: {summary}; OpenMP: {'yes' if omp else 'no'}; "
              f"flags: {' '.join(self.rq_base_flags)}")

    def build_extensions(self):
        self._configure()
        super().build_extensions()

    def build_extension(self, ext):
        self._configure()
        c_sources = _C_SOURCES.get(ext.name, [])
        include_dirs = list(ext.include_dirs) + [self.rq_info_dir]
        ext.include_dirs = include_dirs
        ext.extra_compile_args = list(self.rq_base_flags)
        ext.extra_link_args = list(self.rq_link_flags)
        ext.depends = list(ext.depends) + [os.path.join(self.rq_info_dir, "rq_build_info.h")]
        # Compile every C file ourselves (portable and per-ISA) with its own flags, into a
        # per-extension folder, and link the objects.
        # The files compile in parallel (REFQUANT_BUILD_JOBS, default: the CPU count); the
        # object list keeps the sources' order, so the link line is the same as a serial build's.
        out_dir = os.path.join(self.build_temp, "rq_obj", ext.name)
        todo = []
        for src in c_sources:
            isa = isa_of(src)
            if isa is not None and not self.rq_compiled.get(isa):
                continue
            todo.append((src, list(self.rq_base_flags) + (ISA_FLAGS[isa] if isa else [])))
        for o in self.compiler.object_filenames([src for src, _ in todo], output_dir=out_dir):
            os.makedirs(os.path.dirname(o) or ".", exist_ok=True)

        def one(item):
            src, flags = item
            return self.compiler.compile(
                [src], output_dir=out_dir, include_dirs=include_dirs,
                macros=ext.define_macros, extra_postargs=flags, depends=ext.depends,
                debug=self.debug)

        # (MSVC's compiler object initialises itself on the first compile: not from threads)
        jobs = _build_jobs() if self.compiler.compiler_type != "msvc" else 1
        if jobs > 1 and len(todo) > 1:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                objects = [o for objs in pool.map(one, todo) for o in objs]
        else:
            objects = [o for item in todo for o in one(item)]
        ext.extra_objects = [o for o in ext.extra_objects if o not in objects] + objects
        super().build_extension(ext)


_C_SOURCES: dict[str, list[str]] = {}   # extension name -> C files (portable and per-ISA)


def _extensions():
    import numpy

    exts = []
    common_c = _c_files(COMMON)
    for pyx in sorted(glob.glob(os.path.join(KERNELS, "_*.pyx"))):
        family = os.path.splitext(os.path.basename(pyx))[0][1:]
        fam_dir = os.path.join(KERNELS, "src", family)
        fam_c = _c_files(fam_dir) if os.path.isdir(fam_dir) else []
        ext = Extension(
            f"refquant._{family}",
            sources=[pyx],
            include_dirs=[numpy.get_include(), COMMON] + ([fam_dir] if fam_c else []),
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            depends=_dep_files(COMMON) + (_dep_files(fam_dir) if os.path.isdir(fam_dir) else [])
            + sorted(glob.glob(os.path.join(KERNELS, "*.pxi")) + glob.glob(os.path.join(KERNELS, "*.pxd"))),
        )
        _C_SOURCES[ext.name] = common_c + fam_c
        exts.append(ext)
    from Cython.Build import cythonize

    return cythonize(
        exts,
        include_path=[KERNELS],
        compiler_directives={"language_level": 3, "embedsignature": True},
        quiet=True,
    )


class RQBuildPy(build_py):
    """Also ship the golden cases (``golden/**/*.npz``) as ``refquant/_golden`` in the wheel, so
    ``refquant conformance`` finds them after a plain ``pip install .`` from any directory."""

    def run(self):
        super().run()
        src = os.path.join(HERE, "golden")
        dst = os.path.join(self.build_lib, "refquant", "_golden")
        for f in sorted(glob.glob(os.path.join(src, "**", "*.npz"), recursive=True)):
            rel = os.path.relpath(f, src)
            os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
            shutil.copyfile(f, os.path.join(dst, rel))


setup(ext_modules=_extensions(), cmdclass={"build_ext": RQBuildExt, "build_py": RQBuildPy})
