/*
 * The pooling family on int8 CHW tensors:
 *   MAXPOOL2D  the max over each window; no padding; scale and zero point pass through
 *              (the input and output tensors' zero points are equal).
 *   AVGPOOL2D  the int32 sum of x - in_zp over the in-bounds part of each window (zero
 *              padding adds nothing; the divisor kh * kw is inside multiplier / 2^shift),
 *              then the one rounding rule, + out_zp, clamped to [act_min, act_max].
 * Each kernel is its own reference (one plain loop nest, window bounds clipped once per row).
 */
#include "mcu_dc_internal.h"

mcu_dc_status_t mcu_dc_maxpool2d_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const int8_t *x = io->x;
    int8_t *y = io->y;
    uint32_t c, oy, ox, ky, kx;
    for (c = 0u; c < n->out_c; c++) {
        const int8_t *xc = x + c * n->in_h * n->in_w;
        for (oy = 0u; oy < n->out_h; oy++) {
            for (ox = 0u; ox < n->out_w; ox++) {
                const int8_t *xw = xc + oy * n->stride_h * n->in_w + ox * n->stride_w;
                int8_t m = -128;
                for (ky = 0u; ky < n->kernel_h; ky++) {
                    for (kx = 0u; kx < n->kernel_w; kx++) {
                        if (xw[ky * n->in_w + kx] > m) m = xw[ky * n->in_w + kx];
                    }
                }
                *y++ = m;
            }
        }
    }
    return MCU_DC_OK;
}

/* [lo, hi) of kernel offsets k with 0 <= o*stride + k - pad < in. */
static void window(uint32_t o, uint32_t stride, uint32_t pad, uint32_t k, uint32_t in, uint32_t *lo, uint32_t *hi)
{
    const int64_t start = (int64_t)o * stride - pad; /* input index of kernel offset 0 */
    int64_t a = start < 0 ? -start : 0, b = (int64_t)in - start;
    if (b > (int64_t)k) b = k;
    if (b < a) b = a;
    *lo = (uint32_t)a;
    *hi = (uint32_t)b;
}

mcu_dc_status_t mcu_dc_avgpool2d_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const int8_t *x = io->x;
    int8_t *y = io->y;
    const int32_t zp = n->in_zp;
    uint32_t c, oy, ox, ky, kx, ky0, ky1, kx0, kx1;
    for (c = 0u; c < n->out_c; c++) {
        const int8_t *xc = x + c * n->in_h * n->in_w;
        for (oy = 0u; oy < n->out_h; oy++) {
            window(oy, n->stride_h, n->pad_top, n->kernel_h, n->in_h, &ky0, &ky1);
            for (ox = 0u; ox < n->out_w; ox++) {
                int32_t sum = 0; /* |sum| <= kh * kw * 255 < 2^31 (validated) */
                window(ox, n->stride_w, n->pad_left, n->kernel_w, n->in_w, &kx0, &kx1);
                for (ky = ky0; ky < ky1; ky++) {
                    const int8_t *xr = xc + (oy * n->stride_h + ky - n->pad_top) * n->in_w;
                    for (kx = kx0; kx < kx1; kx++) sum += (int32_t)xr[ox * n->stride_w + kx - n->pad_left] - zp;
                }
                *y++ = mcu_dc_requant_s8((uint32_t)sum, n);
            }
        }
    }
    return MCU_DC_OK;
}

/* ------------------------------------------------------------------ registration */

static void pool_derive(mcu_dc_node_t *n)
{
    n->conv_h = mcu_dc_out_dim(n->in_h, n->pad_top, n->pad_bottom, n->kernel_h, n->stride_h);
    n->conv_w = mcu_dc_out_dim(n->in_w, n->pad_left, n->pad_right, n->kernel_w, n->stride_w);
}

static mcu_dc_status_t pool_geometry(const mcu_dc_node_t *n)
{
    if (n->encoding != MCU_DC_ENC_NONE) return MCU_DC_ERR_UNKNOWN_ENCODING;
    if (n->kernel_h == 0u || n->kernel_w == 0u || n->stride_h == 0u || n->stride_w == 0u) return MCU_DC_ERR_PARAM;
    if (n->conv_h == 0u || n->conv_w == 0u) return MCU_DC_ERR_SHAPE; /* the window does not fit the input */
    if (n->out_c != n->in_c || n->out_h != n->conv_h || n->out_w != n->conv_w) return MCU_DC_ERR_SHAPE;
    return MCU_DC_OK;
}

static mcu_dc_status_t maxpool_validate(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t blob_bytes)
{
    mcu_dc_status_t st;
    (void)blob;
    (void)blob_bytes;
    if (n->pad_top != 0u || n->pad_left != 0u || n->pad_bottom != 0u || n->pad_right != 0u) return MCU_DC_ERR_PARAM;
    st = pool_geometry(n);
    if (st != MCU_DC_OK) return st;
    if (n->in_zp != n->out_zp) return MCU_DC_ERR_PARAM; /* the scale and zero point pass through */
    return MCU_DC_OK;
}

static mcu_dc_status_t avgpool_validate(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t blob_bytes)
{
    mcu_dc_status_t st;
    (void)blob;
    (void)blob_bytes;
    if ((uint64_t)n->kernel_h * n->kernel_w * 255u >= 0x80000000u) return MCU_DC_ERR_PARAM; /* int32 sum */
    st = pool_geometry(n);
    if (st != MCU_DC_OK) return st;
    if (n->shift < 1u || n->shift > 62u || n->multiplier < 0) return MCU_DC_ERR_PARAM;
    if (n->act_min > n->act_max) return MCU_DC_ERR_PARAM;
    return MCU_DC_OK;
}

static uint64_t no_scratch(const mcu_dc_node_t *n)
{
    (void)n;
    return 0u;
}

const mcu_dc_op_impl_t mcu_dc_op_maxpool2d = {
    1u, pool_derive, maxpool_validate, no_scratch, mcu_dc_maxpool2d_s8, mcu_dc_maxpool2d_s8,
};

const mcu_dc_op_impl_t mcu_dc_op_avgpool2d = {
    1u, pool_derive, avgpool_validate, no_scratch, mcu_dc_avgpool2d_s8, mcu_dc_avgpool2d_s8,
};
