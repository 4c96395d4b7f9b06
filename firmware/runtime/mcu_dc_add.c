/*
 * ADD: the element-wise sum of two int8 tensors of one shape, each with its own scale
 * (a residual add). Both inputs are rescaled to the output scale with one shared shift,
 * summed in int64 and rounded once (the one rounding rule):
 *   acc = (a - zp_a) * multiplier + (b - zp_b) * multiplier_b      (exact: |acc| < 2^40)
 *   out = clamp(((acc + 2^(shift-1)) >> shift) + out_zp, act_min, act_max)
 * The kernel is its own reference. No scratch. The products are 32 x 32 -> 64-bit (smull/smlal on
 * Cortex-M3/M4/M7); with shift >= 32 (the usual case) the shift reads the high word only.
 */
#include "mcu_dc_internal.h"

MCU_DC_HOT_O2 mcu_dc_status_t mcu_dc_add_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const int8_t *a = io->x, *b = io->x1;
    int8_t *y = io->y;
    const int32_t ma = n->multiplier, mb = n->multiplier_b; /* 0 .. 2^31 - 1 (validated) */
    const int64_t round = (int64_t)1 << (n->shift - 1u);
    const int32_t za = n->in_zp, zb = n->in1_zp, zp = n->out_zp, lo = n->act_min, hi = n->act_max;
    const uint32_t shift = n->shift, count = n->out_c * n->out_h * n->out_w;
    uint32_t i;
    if (shift >= 32u) {
        const uint32_t s = shift - 32u;
        for (i = 0u; i < count; i++) {
            const int64_t acc = (int64_t)((int32_t)a[i] - za) * ma + (int64_t)((int32_t)b[i] - zb) * mb + round;
            int32_t v = ((int32_t)(acc >> 32) >> s) + zp; /* arithmetic shifts: (acc >> shift) */
            if (v < lo) v = lo;
            if (v > hi) v = hi;
            y[i] = (int8_t)v;
        }
        return MCU_DC_OK;
    }
    for (i = 0u; i < count; i++) {
        const int64_t acc = (int64_t)((int32_t)a[i] - za) * ma + (int64_t)((int32_t)b[i] - zb) * mb;
        int64_t v = ((acc + round) >> shift) + zp; /* arithmetic shift */
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        y[i] = (int8_t)v;
    }
    return MCU_DC_OK;
}

/* ------------------------------------------------------------------ registration */

static mcu_dc_status_t add_validate(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t blob_bytes)
{
    (void)blob;
    (void)blob_bytes;
    if (n->encoding != MCU_DC_ENC_NONE) return MCU_DC_ERR_UNKNOWN_ENCODING;
    if (n->in_c != n->out_c || n->in_h != n->out_h || n->in_w != n->out_w || n->in1_c != n->out_c ||
        n->in1_h != n->out_h || n->in1_w != n->out_w) {
        return MCU_DC_ERR_SHAPE;
    }
    if (n->shift < 1u || n->shift > 62u || n->multiplier < 0 || n->multiplier_b < 0) return MCU_DC_ERR_PARAM;
    if (n->act_min > n->act_max) return MCU_DC_ERR_PARAM;
    return MCU_DC_OK;
}

static uint64_t add_scratch(const mcu_dc_node_t *n)
{
    (void)n;
    return 0u;
}

const mcu_dc_op_impl_t mcu_dc_op_add = {2u, 0, add_validate, add_scratch, mcu_dc_add_s8, mcu_dc_add_s8};
