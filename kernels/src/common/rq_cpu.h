/* rq_cpu.h -- CPU feature detection, ISA levels, thread count: the runtime-dispatch core.
 *
 * Every refquant extension links the C files in kernels/src/common, so every kernel family can call
 * these functions directly.  Detection runs once (cpuid + xgetbv; AMX also needs the Linux
 * arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) permission) and is cached.
 *
 * ISA levels are ordered; each level implies every level below it:
 *
 *   RQ_ISA_SCALAR      portable C, no ISA flags (always available)
 *   RQ_ISA_AVX2        AVX2 + FMA + F16C + BMI2, OS saves ymm state
 *   RQ_ISA_AVX512      AVX-512 F + BW + DQ + VL, OS saves zmm/opmask state
 *   RQ_ISA_AVX512VNNI  + AVX512_VNNI
 *   RQ_ISA_AMX         + AMX-TILE + AMX-INT8, OS saves tile state and granted the permission
 *
 * rq_isa_level() = min(highest level the CPU/OS supports, highest level compiled in,
 *                      environment caps, Python-level cap).
 * Environment (read at first detection and at rq_cpu_reset()):
 *   REFQUANT_DISABLE_ISA=avx512vnni,amx   disable levels (disabling a level disables all above it);
 *                                         "avx512vbmi" / "avxvnni" turn off that feature alone
 *                                         (vpermb inside AVX-512; ymm vpdpbusd at the AVX2 level)
 *   REFQUANT_MAX_ISA=avx2                 cap the level (scalar, avx2, avx512, avx512vnni, amx)
 *   OMP_NUM_THREADS=n                     default thread count (else CPUs available to the process)
 *
 * Shared state: each extension module has its own copy of this code.  The Python layer
 * (kernels/_rq_common.pxi) points every copy at the one state owned by refquant._cpu via
 * rq_cpu_attach(), so a cap or thread count set from Python reaches every kernel family.
 * C code here never touches the Python API.
 */
#ifndef RQ_CPU_H
#define RQ_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    RQ_ISA_SCALAR = 0,
    RQ_ISA_AVX2 = 1,
    RQ_ISA_AVX512 = 2,      /* F + BW + DQ + VL */
    RQ_ISA_AVX512VNNI = 3,
    RQ_ISA_AMX = 4,         /* AMX-TILE + AMX-INT8, OS-enabled via arch_prctl */
    RQ_ISA_COUNT = 5
};

/* Individual CPU features (bit indices into rq_cpu_features()). */
enum {
    RQ_FEAT_SSE41 = 0, RQ_FEAT_AVX, RQ_FEAT_FMA, RQ_FEAT_F16C, RQ_FEAT_BMI2, RQ_FEAT_AVX2,
    RQ_FEAT_AVX512F, RQ_FEAT_AVX512BW, RQ_FEAT_AVX512DQ, RQ_FEAT_AVX512VL, RQ_FEAT_AVX512CD,
    RQ_FEAT_AVX512VNNI, RQ_FEAT_AVX512BF16, RQ_FEAT_AVX512FP16, RQ_FEAT_AVXVNNI,
    RQ_FEAT_AMX_TILE, RQ_FEAT_AMX_INT8, RQ_FEAT_AMX_BF16,
    RQ_FEAT_OS_YMM, RQ_FEAT_OS_ZMM, RQ_FEAT_OS_TILE, RQ_FEAT_AMX_PERMITTED,
    RQ_FEAT_AVX512VBMI,     /* vpermb: a kernel may take it inside a level that implies AVX-512 */
    RQ_FEAT_COUNT
};
/* The features kernels take inside a level, which can be turned off alone (environment or
 * rq_set_features_off): AVX512_VBMI (vpermb, AVX-512 levels), AVX-VNNI (the AVX2 level's GEMM) */
#define RQ_FEAT_SWITCHABLE ((1 << RQ_FEAT_AVX512VBMI) | (1 << RQ_FEAT_AVXVNNI))

/* Highest usable ISA level (detected once; honours the environment and the Python cap). */
int rq_isa_level(void);
/* 1 if the CPU and OS support `level` (ignores compile-time availability and caps). */
int rq_cpu_has(int level);
/* 1 if the compile unit for `level` was built (the compiler accepted its flags). */
int rq_compiled_isa(int level);
/* "scalar", "avx2", "avx512", "avx512vnni", "amx"; "unknown" otherwise. */
const char *rq_isa_name(int level);
/* Level for a name (case-insensitive), or -1. */
int rq_isa_from_name(const char *name);
/* Raw feature bit `feat` (RQ_FEAT_*) and its name. */
int rq_cpu_feature(int feat);
/* 1 where a vector float division is fast enough that QuantizeLinear's x / s beats the
 * reciprocal-and-check form on data in cache: AMD family 0x1A (Zen 5) and later.  A speed
 * choice only (both forms give the same bits). */
int rq_cpu_fast_div(void);
/* 1 on AMD CPUs (the stores' cache policy differs by vendor: see quant_dispatch.c). */
int rq_cpu_is_amd(void);
const char *rq_cpu_feature_name(int feat);
/* Request the AMX tile-data permission (Linux); returns 1 if granted (cached). */
int rq_amx_enable(void);

/* Bytes of this core's L2 cache (CPUID leaf 4), 1 MiB when unknown; cached.  The AMX GEMM sizes
 * its column blocks of packed B from it. */
long rq_l2_bytes(void);
/* Bytes of the last-level cache this core shares (CPUID leaf 4 on Intel, 0x8000001D on AMD),
 * 32 MiB when unknown; cached. */
long rq_llc_bytes(void);

/* Threads used by kernels (>= 1). Default: OMP_NUM_THREADS if set, else CPUs available. */
int rq_num_threads(void);
void rq_set_num_threads(int n);   /* n <= 0 restores the default */
/* 1 if built with OpenMP. */
int rq_have_openmp(void);

/* Python-level cap on the ISA level (-1 = none). Applies on top of the environment. */
void rq_set_isa_cap(int level);
int rq_get_isa_cap(void);
/* Python-level switch: features (RQ_FEAT_SWITCHABLE bits) turned off on top of the environment's */
void rq_set_features_off(int mask);
int rq_get_features_off(void);
/* Forget the cached detection and re-read the environment (for tests). */
void rq_cpu_reset(void);
/* Environment names that were not understood ("" if none). */
const char *rq_cpu_env_error(void);

/* Build facts (compiler, flags), from the generated rq_build_info.h. */
const char *rq_build_compiler(void);
const char *rq_build_cflags(void);
const char *rq_build_isa_flags(int level);

/* Shared state (see the header comment). */
typedef struct rq_cpu_state {
    int magic;
    volatile int detected;   /* 0 until detection ran */
    int features;            /* RQ_FEAT_* bits */
    int hw_level;            /* highest level the CPU/OS supports */
    int env_cap;             /* from REFQUANT_DISABLE_ISA / REFQUANT_MAX_ISA */
    int py_cap;              /* rq_set_isa_cap, -1 = none */
    int level;               /* the resulting level */
    int amx_state;           /* -1 not asked, 0 refused, 1 granted */
    int nthreads;            /* 0 = default */
    char env_error[128];
    int py_feat_off;         /* rq_set_features_off: RQ_FEAT_* bits turned off */
} rq_cpu_state;

rq_cpu_state *rq_cpu_state_ptr(void);
void rq_cpu_attach(rq_cpu_state *shared);

#ifdef __cplusplus
}
#endif
#endif
