/* quant_scalar.c -- portable scalar QuantizeLinear / DequantizeLinear / min-max runs.
 * Compiled without ISA flags: the runtime fallback and the bridge to the numpy reference. */
#include "rq_quant_core.h"

void rq_quantize_run__scalar(const rq_qrun_args *a)
{
    int32_t qmin, qmax;
    rq_qrange(a->out_type, &qmin, &qmax);
    const int ps = a->pstride;
    for (int64_t i = 0; i < a->n; i++) {
        float xf = rq_load_xf(a->x, i, a->in_type);
        int32_t q = rq_quantize1(xf, a->s[ps ? i : 0], a->zp[ps ? i : 0], qmin, qmax, a->div_f16);
        rq_store_q(a->y, i, q, a->out_type);
    }
}

void rq_dequantize_run__scalar(const rq_dqrun_args *a)
{
    const int ps = a->pstride;
    const int f16 = a->out_type == RQ_F_F16;
    for (int64_t i = 0; i < a->n; i++) {
        float v = rq_dequantize1(rq_load_q(a->x, i, a->in_type), a->zp[ps ? i : 0], a->s[ps ? i : 0], f16);
        if (f16) ((uint16_t *)a->y)[i] = rq_f32_to_f16(v);
        else ((float *)a->y)[i] = v;
    }
}

int rq_minmax_f32__scalar(const float *x, int64_t n, float *mn, float *mx)
{
    float lo = x[0], hi = x[0];
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        uint32_t e = rq_f32_bits(v) & 0x7f800000u;
        bad |= (e == 0x7f800000u);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    *mn = lo;
    *mx = hi;
    return bad;
}
