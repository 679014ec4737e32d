"""The kernel levels the tests sweep: the ISA levels (refquant._cpu), with the AVX2 level split
in two by the AVX-VNNI feature, which the AVX2 GEMM takes where the CPU has it (ymm vpdpbusd,
``gemm_vnni4__avxvnni``):

    "avx2"      the AVX2 level with AVX-VNNI off: the exact int16 kernels (every AVX2 CPU)
    "avxvnni"   the AVX2 level with AVX-VNNI on (Intel Alder Lake and later client cores)

``use(level)`` sets the cap and the feature switch; ``use(None)`` removes both.  The tests
(tests/_isa_levels.py) and tools/fuzz_kernels.py sweep these levels."""
from . import _cpu

LEVELS = ("scalar", "avx2", "avxvnni", "avx512", "avx512vnni", "amx")


def use(level):
    """Run the kernels at ``level`` (a name of LEVELS, or None for the default)."""
    if level is None:
        _cpu.set_features_off(None)
        return _cpu.set_isa_cap(None)
    _cpu.set_features_off(["avxvnni"] if level == "avx2" else None)
    return _cpu.set_isa_cap("avx2" if level == "avxvnni" else level)


def _avxvnni_here():
    import numpy as np
    from . import _gemm
    if "avx2" not in _cpu.available_isas() or not _cpu.features().get("avxvnni"):
        return False
    z = np.zeros(1, np.int32)
    use("avxvnni")
    try:
        return _gemm.gemm(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.int8), z, z,
                          np.zeros((8, 8), np.int32), choose_only=True) == "gemm_vnni4__avxvnni"
    finally:
        use(None)


def available():
    """The levels this machine and build can run (lowest first), within the current caps."""
    isas = _cpu.available_isas()
    return [lv for lv in LEVELS if lv in isas or (lv == "avxvnni" and _avxvnni_here())]
