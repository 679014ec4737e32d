/* rq_cpu.c -- see rq_cpu.h.  Portable file: compiled without ISA flags. */
#define _GNU_SOURCE
#include "rq_cpu.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rq_build.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  define RQ_X86_GNU 1
#  include <cpuid.h>
#else
#  define RQ_X86_GNU 0
#endif

#if defined(__linux__)
#  include <sched.h>
#  include <sys/syscall.h>
#  include <unistd.h>
#endif
#if defined(_OPENMP)
#  include <omp.h>
#endif

#define RQ_MAGIC 0x52514351 /* "RQCQ": the layout with py_feat_off */

#if defined(__GNUC__) || defined(__clang__)
#  define RQ_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#  define RQ_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#else
#  define RQ_LOAD_ACQ(p) (*(p))
#  define RQ_STORE_REL(p, v) (*(p) = (v))
#endif

static rq_cpu_state g_local = {RQ_MAGIC, 0, 0, 0, RQ_ISA_COUNT - 1, -1, 0, -1, 0, {0}};
static rq_cpu_state *g = &g_local;

rq_cpu_state *rq_cpu_state_ptr(void) { return g; }

void rq_cpu_attach(rq_cpu_state *shared)
{
    if (shared && shared->magic == RQ_MAGIC) g = shared;
}

static const char *const ISA_NAMES[RQ_ISA_COUNT] = {"scalar", "avx2", "avx512", "avx512vnni", "amx"};

static const char *const FEAT_NAMES[RQ_FEAT_COUNT] = {
    "sse4.1", "avx", "fma", "f16c", "bmi2", "avx2",
    "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd",
    "avx512vnni", "avx512bf16", "avx512fp16", "avxvnni",
    "amx_tile", "amx_int8", "amx_bf16",
    "os_ymm", "os_zmm", "os_tile", "amx_permitted", "avx512vbmi",
};

const char *rq_isa_name(int level)
{
    return (level >= 0 && level < RQ_ISA_COUNT) ? ISA_NAMES[level] : "unknown";
}

const char *rq_cpu_feature_name(int feat)
{
    return (feat >= 0 && feat < RQ_FEAT_COUNT) ? FEAT_NAMES[feat] : "unknown";
}

int rq_isa_from_name(const char *name)
{
    char buf[32];
    size_t n = 0;
    if (!name) return -1;
    while (*name && isspace((unsigned char)*name)) name++;
    while (name[n] && n < sizeof(buf) - 1) { buf[n] = (char)tolower((unsigned char)name[n]); n++; }
    while (n > 0 && isspace((unsigned char)buf[n - 1])) n--;
    buf[n] = 0;
    for (int i = 0; i < RQ_ISA_COUNT; i++)
        if (strcmp(buf, ISA_NAMES[i]) == 0) return i;
    if (strcmp(buf, "avx512_vnni") == 0) return RQ_ISA_AVX512VNNI;
    if (strcmp(buf, "amx_int8") == 0 || strcmp(buf, "amx-int8") == 0) return RQ_ISA_AMX;
    return -1;
}

int rq_compiled_isa(int level)
{
    switch (level) {
    case RQ_ISA_SCALAR: return 1;
    case RQ_ISA_AVX2: return RQ_COMPILED_AVX2;
    case RQ_ISA_AVX512: return RQ_COMPILED_AVX512;
    case RQ_ISA_AVX512VNNI: return RQ_COMPILED_AVX512VNNI;
    case RQ_ISA_AMX: return RQ_COMPILED_AMX;
    default: return 0;
    }
}

const char *rq_build_compiler(void) { return RQ_BUILD_COMPILER; }
const char *rq_build_cflags(void) { return RQ_BUILD_CFLAGS; }
const char *rq_build_isa_flags(int level)
{
    switch (level) {
    case RQ_ISA_AVX2: return RQ_BUILD_FLAGS_AVX2;
    case RQ_ISA_AVX512: return RQ_BUILD_FLAGS_AVX512;
    case RQ_ISA_AVX512VNNI: return RQ_BUILD_FLAGS_AVX512VNNI;
    case RQ_ISA_AMX: return RQ_BUILD_FLAGS_AMX;
    default: return "";
    }
}

int rq_have_openmp(void)
{
#if defined(_OPENMP)
    return 1;
#else
    return 0;
#endif
}

/* ---- detection ------------------------------------------------------------------------ */

#if RQ_X86_GNU
static unsigned long long rq_xgetbv0(void)
{
    unsigned int eax, edx;
    /* xgetbv with ecx = 0, encoded as bytes so no -mxsave flag is needed */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

static int detect_features(void)
{
    int f = 0;
#if RQ_X86_GNU
    unsigned int a, b, c, d, max_leaf;
    max_leaf = __get_cpuid_max(0, 0);
    if (max_leaf < 1) return 0;
    __cpuid_count(1, 0, a, b, c, d);
    int osxsave = (c >> 27) & 1;
    if ((c >> 19) & 1) f |= 1 << RQ_FEAT_SSE41;
    if ((c >> 28) & 1) f |= 1 << RQ_FEAT_AVX;
    if ((c >> 12) & 1) f |= 1 << RQ_FEAT_FMA;
    if ((c >> 29) & 1) f |= 1 << RQ_FEAT_F16C;
    unsigned long long xcr0 = osxsave ? rq_xgetbv0() : 0;
    if ((xcr0 & 0x6) == 0x6) f |= 1 << RQ_FEAT_OS_YMM;                 /* SSE + AVX state */
    if ((xcr0 & 0xE6) == 0xE6) f |= 1 << RQ_FEAT_OS_ZMM;               /* + opmask, ZMM_Hi256, Hi16_ZMM */
    if ((xcr0 & 0x60000ULL) == 0x60000ULL) f |= 1 << RQ_FEAT_OS_TILE;  /* XTILECFG + XTILEDATA */
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        unsigned int max_sub = a;
        if ((b >> 5) & 1) f |= 1 << RQ_FEAT_AVX2;
        if ((b >> 8) & 1) f |= 1 << RQ_FEAT_BMI2;
        if ((b >> 16) & 1) f |= 1 << RQ_FEAT_AVX512F;
        if ((b >> 17) & 1) f |= 1 << RQ_FEAT_AVX512DQ;
        if ((b >> 28) & 1) f |= 1 << RQ_FEAT_AVX512CD;
        if ((b >> 30) & 1) f |= 1 << RQ_FEAT_AVX512BW;
        if ((b >> 31) & 1) f |= 1 << RQ_FEAT_AVX512VL;
        if ((c >> 11) & 1) f |= 1 << RQ_FEAT_AVX512VNNI;
        if ((c >> 1) & 1) f |= 1 << RQ_FEAT_AVX512VBMI;
        if ((d >> 23) & 1) f |= 1 << RQ_FEAT_AVX512FP16;
        if ((d >> 22) & 1) f |= 1 << RQ_FEAT_AMX_BF16;
        if ((d >> 24) & 1) f |= 1 << RQ_FEAT_AMX_TILE;
        if ((d >> 25) & 1) f |= 1 << RQ_FEAT_AMX_INT8;
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            if ((a >> 4) & 1) f |= 1 << RQ_FEAT_AVXVNNI;
            if ((a >> 5) & 1) f |= 1 << RQ_FEAT_AVX512BF16;
        }
    }
#endif
#ifdef RQ_AMX_EMU
    /* REFQUANT_AMX_EMU builds: the tile instructions are emulated (rq_amx_emu.h), so AMX is
     * reported present wherever the AVX-512 VNNI level below it is */
    f |= (1 << RQ_FEAT_AMX_TILE) | (1 << RQ_FEAT_AMX_INT8) | (1 << RQ_FEAT_OS_TILE);
#endif
    return f;
}

#define HAS(f, x) (((f) >> (x)) & 1)

static int hw_level_from(int f, int with_amx_permission)
{
    int lvl = RQ_ISA_SCALAR;
    if (HAS(f, RQ_FEAT_AVX) && HAS(f, RQ_FEAT_AVX2) && HAS(f, RQ_FEAT_FMA) && HAS(f, RQ_FEAT_F16C) &&
        HAS(f, RQ_FEAT_BMI2) && HAS(f, RQ_FEAT_OS_YMM))
        lvl = RQ_ISA_AVX2;
    else
        return lvl;
    if (HAS(f, RQ_FEAT_AVX512F) && HAS(f, RQ_FEAT_AVX512BW) && HAS(f, RQ_FEAT_AVX512DQ) &&
        HAS(f, RQ_FEAT_AVX512VL) && HAS(f, RQ_FEAT_OS_ZMM))
        lvl = RQ_ISA_AVX512;
    else
        return lvl;
    if (HAS(f, RQ_FEAT_AVX512VNNI)) lvl = RQ_ISA_AVX512VNNI;
    else return lvl;
    if (HAS(f, RQ_FEAT_AMX_TILE) && HAS(f, RQ_FEAT_AMX_INT8) && HAS(f, RQ_FEAT_OS_TILE) &&
        (!with_amx_permission || HAS(f, RQ_FEAT_AMX_PERMITTED)))
        lvl = RQ_ISA_AMX;
    return lvl;
}

static int request_amx_permission(void)
{
#if defined(RQ_AMX_EMU)
    return 1;   /* emulated tiles need no permission */
#elif RQ_X86_GNU && defined(__linux__) && defined(SYS_arch_prctl)
    /* ARCH_GET_XCOMP_PERM = 0x1022, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 */
    unsigned long bitmask = 0;
    if (syscall(SYS_arch_prctl, 0x1022, &bitmask) == 0 && (bitmask & (1UL << 18))) return 1;
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) return 0;
    bitmask = 0;
    if (syscall(SYS_arch_prctl, 0x1022, &bitmask) != 0) return 0;
    return (bitmask & (1UL << 18)) ? 1 : 0;
#else
    return 0;
#endif
}

/* Parse REFQUANT_DISABLE_ISA / REFQUANT_MAX_ISA into a cap. */
static int env_cap(char *err, size_t errlen, int *feat_off)
{
    int cap = RQ_ISA_COUNT - 1;
    err[0] = 0;
    *feat_off = 0;
    const char *dis = getenv("REFQUANT_DISABLE_ISA");
    if (dis && *dis) {
        char buf[256];
        strncpy(buf, dis, sizeof(buf) - 1);
        buf[sizeof(buf) - 1] = 0;
        char *save = NULL;
        for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
            int l = rq_isa_from_name(tok);
            if (l > 0) {
                if (l - 1 < cap) cap = l - 1;
            } else if (strcmp(tok, "avx512vbmi") == 0) {   /* features kernels take inside a level */
                *feat_off |= 1 << RQ_FEAT_AVX512VBMI;
            } else if (strcmp(tok, "avxvnni") == 0) {
                *feat_off |= 1 << RQ_FEAT_AVXVNNI;
            } else if (strlen(err) + strlen(tok) + 2 < errlen) {
                /* "scalar" cannot be disabled; unknown names are reported */
                strcat(err, err[0] ? "," : "REFQUANT_DISABLE_ISA:");
                strcat(err, tok);
            }
        }
    }
    const char *mx = getenv("REFQUANT_MAX_ISA");
    if (mx && *mx) {
        int l = rq_isa_from_name(mx);
        if (l >= 0) {
            if (l < cap) cap = l;
        } else if (strlen(err) + strlen(mx) + 20 < errlen) {
            strcat(err, err[0] ? " " : "");
            strcat(err, "REFQUANT_MAX_ISA:");
            strcat(err, mx);
        }
    }
    return cap;
}

#if RQ_X86_GNU
/* Bytes of the cache of the given level (0: the highest data / unified level found) from the
 * deterministic cache parameters, leaf 4 (Intel) or 0x8000001D (AMD; same layout); 0 when the
 * CPU does not list it. */
static long cpuid_cache_bytes(unsigned leaf, int want_level)
{
    if (leaf < 0x80000000u ? __get_cpuid_max(0, 0) < leaf : __get_cpuid_max(0x80000000u, 0) < leaf)
        return 0;
    long v = 0;
    int best_level = 0;
    for (unsigned i = 0; i < 16; i++) {
        unsigned a, b, c, d;
        __cpuid_count(leaf, i, a, b, c, d);
        if ((a & 31) == 0) break;                      /* no more caches */
        const int level = (a >> 5) & 7;
        if ((a & 31) == 1 || (want_level ? level != want_level : level < best_level))
            continue;                                  /* instruction cache, or not the level */
        best_level = level;
        v = (long)(((b >> 22) & 1023) + 1) * (long)(((b >> 12) & 1023) + 1) *
            (long)((b & 4095) + 1) * (long)(c + 1);
        if (want_level) break;
    }
    return v;
}
#endif

static long l2_compute(void)
{
    long v = 0;
#if RQ_X86_GNU
    v = cpuid_cache_bytes(4, 2);
#endif
    return v < 256 * 1024 || v > 64L * 1024 * 1024 ? 1024 * 1024 : v;
}

static long llc_compute(void)
{
    long v = 0;
#if RQ_X86_GNU
    v = cpuid_cache_bytes(4, 0);
    if (v == 0) v = cpuid_cache_bytes(0x8000001Du, 0);
#endif
    return v < 1024L * 1024 || v > 4096L * 1024 * 1024 ? 32L * 1024 * 1024 : v;
}

/* *slot, computed once (the value is the same whichever thread computes it first) */
static long cached_value(long *slot, long (*compute)(void))
{
    long v = RQ_LOAD_ACQ(slot);
    if (v > 0) return v;
    v = compute();
    RQ_STORE_REL(slot, v);
    return v;
}

long rq_l2_bytes(void) { static long c = 0; return cached_value(&c, l2_compute); }

long rq_llc_bytes(void) { static long c = 0; return cached_value(&c, llc_compute); }

static void detect(void)
{
    rq_cpu_state *s = g;
    int f = detect_features(), feat_off = 0;
    int cap = env_cap(s->env_error, sizeof(s->env_error), &feat_off);
    f &= ~(feat_off | s->py_feat_off);
    /* Ask for the tile permission only when AMX could be used. */
    if (hw_level_from(f, 0) >= RQ_ISA_AMX && cap >= RQ_ISA_AMX && RQ_COMPILED_AMX) {
        if (s->amx_state < 0) s->amx_state = request_amx_permission();
    }
    if (s->amx_state == 1) f |= 1 << RQ_FEAT_AMX_PERMITTED;
    s->features = f;
    s->hw_level = hw_level_from(f, 1);
    s->env_cap = cap;
    int lvl = s->hw_level < cap ? s->hw_level : cap;
    if (s->py_cap >= 0 && s->py_cap < lvl) lvl = s->py_cap;
    while (lvl > 0 && !rq_compiled_isa(lvl)) lvl--;
    s->level = lvl;
    RQ_STORE_REL(&s->detected, 1);
}

static inline void ensure(void)
{
    if (!RQ_LOAD_ACQ(&g->detected)) detect();
}

int rq_isa_level(void) { ensure(); return g->level; }

int rq_cpu_has(int level)
{
    ensure();
    return level >= 0 && level <= g->hw_level;
}

/* vendor and family, read once: bit 0 AMD, bits 8.. the family (base + extended) */
static int vendor_family(void)
{
    static int v = -1;
    if (v >= 0) return v;
    int r = 0;
#if RQ_X86_GNU
    unsigned int a, b, c, d;
    if (__get_cpuid_max(0, 0) >= 1) {
        __cpuid_count(0, 0, a, b, c, d);
        const int amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;   /* AuthenticAMD */
        __cpuid_count(1, 0, a, b, c, d);
        const unsigned fam = ((a >> 8) & 0xF) + (((a >> 8) & 0xF) == 0xF ? ((a >> 20) & 0xFF) : 0);
        r = amd | (int)(fam << 8);
    }
#endif
    v = r;
    return v;
}

int rq_cpu_is_amd(void) { return vendor_family() & 1; }

/* Zen 5, 1 thread, f32 -> u8 in L2 / L3: x / s 13.7 against 10.2 Gelem/s (vdivps zmm keeps up
 * there); Intel's zmm division runs at a fraction of that rate */
int rq_cpu_fast_div(void) { return rq_cpu_is_amd() && (vendor_family() >> 8) >= 0x1A; }

int rq_cpu_feature(int feat)
{
    ensure();
    return feat >= 0 && feat < RQ_FEAT_COUNT ? HAS(g->features, feat) : 0;
}

int rq_amx_enable(void)
{
    if (g->amx_state < 0) {
        g->amx_state = request_amx_permission();
        RQ_STORE_REL(&g->detected, 0);
    }
    return g->amx_state == 1;
}

void rq_set_isa_cap(int level)
{
    g->py_cap = level < 0 ? -1 : level;
    RQ_STORE_REL(&g->detected, 0);
}

int rq_get_isa_cap(void) { return g->py_cap; }

void rq_set_features_off(int mask)
{
    g->py_feat_off = mask & RQ_FEAT_SWITCHABLE;
    RQ_STORE_REL(&g->detected, 0);
}

int rq_get_features_off(void) { return g->py_feat_off; }

void rq_cpu_reset(void) { RQ_STORE_REL(&g->detected, 0); }

const char *rq_cpu_env_error(void) { ensure(); return g->env_error; }

/* ---- threads -------------------------------------------------------------------------- */

/* The most threads the kernels use: larger requests are clamped (OMP_NUM_THREADS=100000 made
 * libgomp's thread creation fail with a segmentation fault in the AVX2 GEMM). */
#define RQ_MAX_THREADS 1024

static int default_threads(void)
{
    const char *e = getenv("OMP_NUM_THREADS");
    if (e && *e) {
        long n = strtol(e, NULL, 10);   /* "4,2" (nested list) -> 4 */
        if (n > 0) return n > RQ_MAX_THREADS ? RQ_MAX_THREADS : (int)n;
    }
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n > 0) return (int)n;
#endif
    return 1;
}

int rq_num_threads(void)
{
    int n = g->nthreads;
    if (n <= 0) { n = default_threads(); g->nthreads = n; }
    return n;
}

void rq_set_num_threads(int n)
{
    g->nthreads = n > 0 ? (n > RQ_MAX_THREADS ? RQ_MAX_THREADS : n) : default_threads();
}
