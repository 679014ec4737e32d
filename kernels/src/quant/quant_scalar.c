/* quant_scalar.c -- portable scalar QuantizeLinear / DequantizeLinear / min-max runs.
 * Compiled without ISA flags: the runtime fallback and the bridge to the numpy reference. */
#include "rq_quant_core.h"

/* The common case (float32 input, one scale, float32 division), written so that compilers
 * vectorise it on any target (SSE2, NEON ...) with exactly the scalar core's steps. */
#define RQ_Q_F32_LOOP(T, MASK)                                                        \
    do {                                                                              \
        const char *x = (const char *)a->x;     /* any byte address: rq_mem.h */     \
        char *y = (char *)a->y;                                                       \
        const int64_t n = a->n;     /* a char store could alias a->n: read it once */  \
        for (int64_t i = 0; i < n; i++) {                                             \
            float v = rq_ld_f32(x + 4 * i) / s;                                       \
            v = v > lo ? v : lo;                                                      \
            v = v < hi ? v : hi;                                                      \
            T q = (T)(((int32_t)rq_rne_small(v) + zp) & (MASK));                      \
            memcpy(y + sizeof(T) * i, &q, sizeof(T));                                 \
        }                                                                             \
    } while (0)

void rq_quantize_run__scalar(const rq_qrun_args *a)
{
    int32_t qmin, qmax;
    rq_qrange(a->out_type, &qmin, &qmax);
    const int ps = a->pstride;
    if (a->variant) {
        for (int64_t i = 0; i < a->n; i++) {
            float xf = rq_load_xf(a->x, i, a->in_type);
            rq_store_q(a->y, i, rq_quantize1v(xf, a->s[ps ? i : 0], a->zp[ps ? i : 0], qmin, qmax,
                                              a->variant), a->out_type);
        }
        return;
    }
    if (a->in_type == RQ_F_F32 && !ps && !a->div_f16) {
        const float s = a->s[0];
        const int32_t zp = a->zp[0];
        const float lo = (float)(qmin - zp), hi = (float)(qmax - zp);
        switch (a->out_type) {
        case RQ_Q_U8: case RQ_Q_I8: RQ_Q_F32_LOOP(uint8_t, 0xFF); return;
        case RQ_Q_U16: case RQ_Q_I16: RQ_Q_F32_LOOP(uint16_t, 0xFFFF); return;
        default: RQ_Q_F32_LOOP(uint8_t, 0xF); return;
        }
    }
    for (int64_t i = 0; i < a->n; i++) {
        float xf = rq_load_xf(a->x, i, a->in_type);
        int32_t q = rq_quantize1(xf, a->s[ps ? i : 0], a->zp[ps ? i : 0], qmin, qmax, a->div_f16);
        rq_store_q(a->y, i, q, a->out_type);
    }
}

#define RQ_DQ_F32_LOOP(T)                                                             \
    do {                                                                              \
        const char *x = (const char *)a->x;     /* any byte address: rq_mem.h */     \
        char *y = (char *)a->y;                                                       \
        const int64_t n = a->n;     /* a char store could alias a->n: read it once */  \
        for (int64_t i = 0; i < n; i++) {                                             \
            T q;                                                                      \
            memcpy(&q, x + sizeof(T) * i, sizeof(T));                                 \
            rq_st_f32(y + 4 * i, (float)((int32_t)q - zp) * s);                       \
        }                                                                             \
    } while (0)

void rq_dequantize_run__scalar(const rq_dqrun_args *a)
{
    const int ps = a->pstride;
    const int f16 = a->out_type == RQ_F_F16;
    if (a->sts) {           /* fl32(fl32(x*s) - fl32(zp*s)), float32 output (rq_dequantize) */
        for (int64_t i = 0; i < a->n; i++) {
            const float s = a->s[ps ? i : 0];
            const float xs = (float)rq_load_q(a->x, i, a->in_type) * s;
            const float zs = (float)a->zp[ps ? i : 0] * s;
            rq_st_f32((char *)a->y + 4 * i, xs - zs);
        }
        return;
    }
    if (!ps && !f16) {      /* common case, vectorisable on any target */
        const float s = a->s[0];
        const int32_t zp = a->zp[0];
        switch (a->in_type) {
        case RQ_Q_U8: RQ_DQ_F32_LOOP(uint8_t); return;
        case RQ_Q_I8: RQ_DQ_F32_LOOP(int8_t); return;
        case RQ_Q_U16: RQ_DQ_F32_LOOP(uint16_t); return;
        case RQ_Q_I16: RQ_DQ_F32_LOOP(int16_t); return;
        default: break;
        }
    }
    for (int64_t i = 0; i < a->n; i++) {
        float v = rq_dequantize1(rq_load_q(a->x, i, a->in_type), a->zp[ps ? i : 0], a->s[ps ? i : 0], f16);
        if (f16) rq_st_u16((char *)a->y + 2 * i, rq_f32_to_f16(v));
        else rq_st_f32((char *)a->y + 4 * i, v);
    }
}

int rq_minmax_f32__scalar(const float *x, int64_t n, float *mn, float *mx)
{
    float lo = rq_ld_f32(x), hi = lo;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = rq_ld_f32(x + i);
        uint32_t e = rq_f32_bits(v) & 0x7f800000u;
        bad |= (e == 0x7f800000u);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *mn = lo;
    *mx = hi;
    return bad;
}

void rq_cvt_f32_f16__scalar(const float *s, uint16_t *d, int64_t n)
{
    for (int64_t i = 0; i < n; i++) d[i] = rq_f32_to_f16(rq_ld_f32(s + i));
}

/* ---- float8 QuantizeLinear / DequantizeLinear (rq_f8.h) --------------------------------- */
#define RQ_F8_SUFFIX __scalar
#include "rq_f8.h"

void rq_cvt_f32_bf16__scalar(const float *s, uint16_t *d, int64_t n)
{
    RQ_CVT_BF16_BODY
}
