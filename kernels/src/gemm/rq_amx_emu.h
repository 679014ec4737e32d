/* rq_amx_emu.h -- AMX-INT8 tile instructions emulated in C, for testing the AMX drivers on CPUs
 * without AMX (the build with REFQUANT_AMX_EMU=1 defines RQ_AMX_EMU; never a release build).
 *
 * Included by gemm_amx.c after <immintrin.h>: each _tile_* intrinsic the drivers use becomes a
 * call into the thread's emulated tile state (8 tiles of 16 rows x 64 bytes and the palette-1
 * configuration, per thread as on the hardware).  Semantics, from Intel's ISA reference:
 *
 *   ldtilecfg      palette 1: tile t has rows[t] rows of colsb[t] bytes; the tiles are zeroed
 *   tileloadd      rows r < rows[t]: colsb[t] bytes from base + r * stride; the rest of the
 *                  tile zero (tileloaddt1, the non-temporal hint, the same)
 *   tilestored     rows r < rows[t]: colsb[t] bytes to base + r * stride
 *   tilezero       the whole tile zero
 *   tdpb[su][su]d  C[m][n] += sum over k < colsb[a] / 4 and i < 4 of
 *                  A[m][4k + i] * B[k][4n + i] (A, B bytes signed or unsigned as the name says:
 *                  us = A unsigned, B signed), m < rows[c], n < colsb[c] / 4; the four products
 *                  of each k added to the int32 element with wraparound (as vpdpbusd)
 *   tilerelease    the configuration dropped
 *
 * Out-of-configuration use (a row count above 16, a tile used unconfigured, mismatched shapes)
 * aborts, where the hardware would fault. */
#ifndef RQ_AMX_EMU_H
#define RQ_AMX_EMU_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int configured;
    uint8_t rows[8];
    uint16_t colsb[8];
    uint8_t t[8][16][64];
} rq_amx_emu_state;

static __thread rq_amx_emu_state rq_amx_emu;

static void rq_amx_emu_fail(const char *what, int t) {
    fprintf(stderr, "refquant AMX emulation: %s (tile %d)\n", what, t);
    abort();
}

static void rq_amx_emu_check(int t) {
    if (!rq_amx_emu.configured) rq_amx_emu_fail("tile used without a configuration", t);
    if (t < 0 || t > 7) rq_amx_emu_fail("no such tile", t);
}

static void rq_amx_emu_loadconfig(const void *cfg) {
    const uint8_t *c = (const uint8_t *)cfg;
    if (c[0] != 1) rq_amx_emu_fail("palette other than 1", -1);
    memset(&rq_amx_emu, 0, sizeof(rq_amx_emu));
    for (int t = 0; t < 8; t++) {
        uint16_t cb;
        memcpy(&cb, c + 16 + 2 * t, 2);
        const uint8_t r = c[48 + t];
        if (r > 16 || cb > 64) rq_amx_emu_fail("configured beyond 16 rows x 64 bytes", t);
        rq_amx_emu.colsb[t] = cb;
        rq_amx_emu.rows[t] = r;
    }
    rq_amx_emu.configured = 1;
}

static void rq_amx_emu_release(void) { memset(&rq_amx_emu, 0, sizeof(rq_amx_emu)); }

static void rq_amx_emu_loadd(int t, const void *base, long stride) {
    rq_amx_emu_check(t);
    memset(rq_amx_emu.t[t], 0, sizeof(rq_amx_emu.t[t]));
    for (int r = 0; r < rq_amx_emu.rows[t]; r++)
        memcpy(rq_amx_emu.t[t][r], (const uint8_t *)base + (ptrdiff_t)r * stride, rq_amx_emu.colsb[t]);
}

static void rq_amx_emu_stored(int t, void *base, long stride) {
    rq_amx_emu_check(t);
    for (int r = 0; r < rq_amx_emu.rows[t]; r++)
        memcpy((uint8_t *)base + (ptrdiff_t)r * stride, rq_amx_emu.t[t][r], rq_amx_emu.colsb[t]);
}

static void rq_amx_emu_zero(int t) {
    rq_amx_emu_check(t);
    memset(rq_amx_emu.t[t], 0, sizeof(rq_amx_emu.t[t]));
}

/* sa / sb: A / B bytes signed */
static void rq_amx_emu_dp(int c, int a, int b, int sa, int sb) {
    rq_amx_emu_check(c); rq_amx_emu_check(a); rq_amx_emu_check(b);
    const int M = rq_amx_emu.rows[c], N = rq_amx_emu.colsb[c] / 4, K = rq_amx_emu.colsb[a] / 4;
    if (rq_amx_emu.rows[a] != M || rq_amx_emu.rows[b] != K || rq_amx_emu.colsb[b] != 4 * N ||
        rq_amx_emu.colsb[c] % 4 || rq_amx_emu.colsb[a] % 4)
        rq_amx_emu_fail("tile shapes do not match", c);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            uint32_t acc;
            memcpy(&acc, &rq_amx_emu.t[c][m][4 * n], 4);
            for (int k = 0; k < K; k++) {
                int32_t s = 0;
                for (int i = 0; i < 4; i++) {
                    const uint8_t x = rq_amx_emu.t[a][m][4 * k + i], y = rq_amx_emu.t[b][k][4 * n + i];
                    s += (sa ? (int32_t)(int8_t)x : (int32_t)x) * (sb ? (int32_t)(int8_t)y : (int32_t)y);
                }
                acc += (uint32_t)s;
            }
            memcpy(&rq_amx_emu.t[c][m][4 * n], &acc, 4);
        }
}

#undef _tile_loadd
#undef _tile_stream_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbusd
#undef _tile_dpbssd
#undef _tile_dpbuud
#undef _tile_dpbsud
#define _tile_loadconfig(cfg) rq_amx_emu_loadconfig(cfg)
#define _tile_release() rq_amx_emu_release()
#define _tile_loadd(t, base, stride) rq_amx_emu_loadd((t), (base), (long)(stride))
#define _tile_stream_loadd(t, base, stride) rq_amx_emu_loadd((t), (base), (long)(stride))
#define _tile_stored(t, base, stride) rq_amx_emu_stored((t), (base), (long)(stride))
#define _tile_zero(t) rq_amx_emu_zero(t)
#define _tile_dpbusd(c, a, b) rq_amx_emu_dp((c), (a), (b), 0, 1)
#define _tile_dpbssd(c, a, b) rq_amx_emu_dp((c), (a), (b), 1, 1)
#define _tile_dpbuud(c, a, b) rq_amx_emu_dp((c), (a), (b), 0, 0)
#define _tile_dpbsud(c, a, b) rq_amx_emu_dp((c), (a), (b), 1, 0)

#endif
