/* MaxPool2D on int8 CHW tensors: scale and zero point pass through; no padding. */
#include "mcu_dc_internal.h"

mcu_dc_status_t mcu_dc_maxpool2d_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y)
{
    uint32_t c, oy, ox, ky, kx;
    for (c = 0u; c < L->out_c; c++) {
        const int8_t *xc = x + c * L->in_h * L->in_w;
        for (oy = 0u; oy < L->out_h; oy++) {
            for (ox = 0u; ox < L->out_w; ox++) {
                const int8_t *xw = xc + oy * L->stride_h * L->in_w + ox * L->stride_w;
                int8_t m = -128;
                for (ky = 0u; ky < L->kernel_h; ky++) {
                    for (kx = 0u; kx < L->kernel_w; kx++) {
                        if (xw[ky * L->in_w + kx] > m) m = xw[ky * L->in_w + kx];
                    }
                }
                *y++ = m;
            }
        }
    }
    return MCU_DC_OK;
}
