/*
 * Conv2D kernels (CHW int8 tensors; weights flattened as (in_c, kernel_h, kernel_w)):
 *   mcu_dc_conv2d_huff_s8      decodes each output channel's weights once, straight from
 *                              the Huffman streams, and scatters every kept weight over all
 *                              output positions into one channel of int32 accumulators
 *                              (scratch[out_h * out_w]); then requantizes the channel.
 *   mcu_dc_conv2d_huff_s8_ref  the same with the bit-serial reference decoder and a
 *                              bounds check per output position.
 *   mcu_dc_conv2d_dense_s8     the DENSE_INT8 baseline, direct convolution.
 * Padded inputs contribute nothing (they are real zero).
 */
#include "mcu_dc_internal.h"

static void fill_u32(uint32_t *p, uint32_t v, uint32_t n)
{
    uint32_t i;
    for (i = 0u; i < n; i++) p[i] = v;
}

/* y[i] = requant(acc[i]) for one output channel: the rule of mcu_dc_requant_s8 with the
 * layer's constants hoisted out of the loop. */
static void emit_channel(const mcu_dc_layer_t *L, const uint32_t *acc, int8_t *y, uint32_t n)
{
    const int64_t round = (int64_t)1 << (L->shift - 1u), mult = L->multiplier;
    const uint32_t shift = L->shift;
    const int64_t lo = L->act_min - L->out_zp, hi = L->act_max - L->out_zp; /* clamp before adding out_zp */
    const int32_t zp = L->out_zp;
    uint32_t i;
    for (i = 0u; i < n; i++) {
        int64_t v = ((int64_t)(int32_t)acc[i] * mult + round) >> shift;
        if (v < lo) v = lo;
        if (v > hi) v = hi;
        y[i] = (int8_t)((int32_t)v + zp);
    }
}

/* First output index o >= 0 with o*stride + k - pad >= 0, and one past the last with
 * o*stride + k - pad <= in - 1 (clamped to [lo, out]). */
static void out_range(int32_t k, int32_t pad, int32_t stride, int32_t in, int32_t out, int32_t *lo, int32_t *hi)
{
    int32_t a = pad - k, b = in - 1 + pad - k;
    *lo = a > 0 ? (a + stride - 1) / stride : 0;
    *hi = b < 0 ? 0 : b / stride + 1;
    if (*hi > out) *hi = out;
    if (*hi < *lo) *hi = *lo;
}

/* One kept weight's contribution along one output row. */
typedef struct {
    int32_t w;      /* the weight */
    int32_t zp;     /* the layer's in_zp */
    int32_t stride; /* stride_w */
} conv_tap_t;

/* sp[i] += w * (xp[i * stride] - in_zp) for sp in [sp, se), se > sp: the conv kernel's
 * inner loop (two outputs per turn for stride 1). */
MCU_DC_NOINLINE static void mac_row(uint32_t *sp, const uint32_t *se, const int8_t *xp, const conv_tap_t *t)
{
    const int32_t w = t->w, zp = t->zp, stride = t->stride;
    if (stride == 1) {
        if (((se - sp) & 1) != 0) *sp++ += (uint32_t)(w * ((int32_t)*xp++ - zp));
        while (sp != se) {
            uint32_t a = sp[0], b = sp[1];
            a += (uint32_t)(w * ((int32_t)xp[0] - zp));
            b += (uint32_t)(w * ((int32_t)xp[1] - zp));
            sp[0] = a;
            sp[1] = b;
            sp += 2;
            xp += 2;
        }
    } else {
        do {
            *sp++ += (uint32_t)(w * ((int32_t)*xp - zp));
            xp += stride;
        } while (sp != se);
    }
}

/* scratch[oy][ox] += w * (x[ic][oy*sh+ky-ph][ox*sw+kx-pw] - zp) over in-bounds positions */
static void scatter_weight(const mcu_dc_layer_t *L, const int8_t *x, uint32_t *scratch, uint32_t col, int32_t w)
{
    const int32_t kh = (int32_t)L->kernel_h, kw = (int32_t)L->kernel_w, khw = kh * kw;
    const int32_t sh = (int32_t)L->stride_h, sw = (int32_t)L->stride_w;
    const int32_t ih = (int32_t)L->in_h, iw = (int32_t)L->in_w, ow = (int32_t)L->out_w;
    const int32_t ic = (int32_t)col / khw, rem = (int32_t)col - ic * khw;
    const int32_t ky = rem / kw, kx = rem - ky * kw;
    int32_t oy_lo, oy_hi, ox_lo, ox_hi, oy;
    conv_tap_t t;
    t.w = w;
    t.zp = L->in_zp;
    t.stride = sw;
    out_range(ky, (int32_t)L->pad_h, sh, ih, (int32_t)L->out_h, &oy_lo, &oy_hi);
    out_range(kx, (int32_t)L->pad_w, sw, iw, ow, &ox_lo, &ox_hi);
    if (ox_hi <= ox_lo) return;
    for (oy = oy_lo; oy < oy_hi; oy++) {
        const int8_t *xp = x + (ic * ih + oy * sh + ky - (int32_t)L->pad_h) * iw + ox_lo * sw + kx - (int32_t)L->pad_w;
        mac_row(scratch + oy * ow + ox_lo, scratch + oy * ow + ox_hi, xp, &t);
    }
}

mcu_dc_status_t mcu_dc_conv2d_huff_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y, uint32_t *scratch)
{
    const uint32_t rows = L->rows, k = L->codebook_len, ohw = L->out_h * L->out_w;
    const int32_t fan_in = (int32_t)L->fan_in;
    const int8_t *cb = L->codebook;
    uint32_t oc = 0u, i;

    if (L->n_entries > 0u) {
        mcu_dc_huff_t hs, hr;
        mcu_dc_bitreader_t bs, br;
        int32_t col = -1;
        mcu_dc_huff_view(L->weights, &hs);
        mcu_dc_huff_view(L->index, &hr);
        mcu_dc_bitreader_init(&bs, &hs);
        mcu_dc_bitreader_init(&br, &hr);
        fill_u32(scratch, mcu_dc_bias(L, 0u), ohw);
        for (i = L->n_entries; i != 0u; i--) {
            uint32_t r, s;
            MCU_DC_HUFF_NEXT(r, br, &hr, corrupt);
            MCU_DC_HUFF_NEXT(s, bs, &hs, corrupt);
            col += (int32_t)r + 1;
            while (col >= fan_in) { /* channel done */
                emit_channel(L, scratch, y + oc * ohw, ohw);
                if (++oc >= rows) goto corrupt;
                fill_u32(scratch, mcu_dc_bias(L, oc), ohw);
                col -= fan_in;
            }
            if (s < k) scatter_weight(L, x, scratch, (uint32_t)col, cb[s]);
        }
        if (mcu_dc_bitreader_used(&br, &hr) > hr.n_bits || mcu_dc_bitreader_used(&bs, &hs) > hs.n_bits) {
            goto corrupt;
        }
        emit_channel(L, scratch, y + oc * ohw, ohw);
        oc++;
    }
    for (; oc < rows; oc++) { /* channels without weights: bias only */
        int8_t v = mcu_dc_requant_s8(mcu_dc_bias(L, oc), L);
        for (i = 0u; i < ohw; i++) y[oc * ohw + i] = v;
    }
    return MCU_DC_OK;
corrupt:
    return MCU_DC_ERR_CORRUPT_STREAM;
}

mcu_dc_status_t mcu_dc_conv2d_huff_s8_ref(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y, uint32_t *scratch)
{
    const uint32_t ohw = L->out_h * L->out_w, khw = L->kernel_h * L->kernel_w;
    uint32_t oc = 0u, i, position = 0u, pos_s = 0u, pos_r = 0u;
    mcu_dc_huff_t hs, hr;
    if (L->n_entries > 0u) {
        mcu_dc_huff_view(L->weights, &hs);
        mcu_dc_huff_view(L->index, &hr);
    }
    fill_u32(scratch, mcu_dc_bias(L, 0u), ohw);
    for (i = 0u; i < L->n_entries; i++) {
        int32_t r = mcu_dc_huff_decode_ref(&hr, &pos_r);
        int32_t s = mcu_dc_huff_decode_ref(&hs, &pos_s);
        uint32_t entry_oc, col;
        if (r < 0 || s < 0) return MCU_DC_ERR_CORRUPT_STREAM;
        position += (uint32_t)r;
        entry_oc = position / L->fan_in;
        col = position % L->fan_in;
        position += 1u;
        if (entry_oc >= L->rows) return MCU_DC_ERR_CORRUPT_STREAM;
        while (oc < entry_oc) {
            emit_channel(L, scratch, y + oc * ohw, ohw);
            oc++;
            fill_u32(scratch, mcu_dc_bias(L, oc), ohw);
        }
        if ((uint32_t)s < L->codebook_len) {
            int32_t w = L->codebook[s];
            int32_t ic = (int32_t)(col / khw), ky = (int32_t)((col % khw) / L->kernel_w);
            int32_t kx = (int32_t)((col % khw) % L->kernel_w);
            int32_t oy, ox;
            for (oy = 0; oy < (int32_t)L->out_h; oy++) {
                for (ox = 0; ox < (int32_t)L->out_w; ox++) {
                    int32_t iy = oy * (int32_t)L->stride_h + ky - (int32_t)L->pad_h;
                    int32_t ix = ox * (int32_t)L->stride_w + kx - (int32_t)L->pad_w;
                    if (iy >= 0 && iy < (int32_t)L->in_h && ix >= 0 && ix < (int32_t)L->in_w) {
                        int32_t v = x[(ic * (int32_t)L->in_h + iy) * (int32_t)L->in_w + ix];
                        scratch[oy * (int32_t)L->out_w + ox] += (uint32_t)(w * (v - L->in_zp));
                    }
                }
            }
        }
    }
    emit_channel(L, scratch, y + oc * ohw, ohw);
    for (oc = oc + 1u; oc < L->rows; oc++) {
        fill_u32(scratch, mcu_dc_bias(L, oc), ohw);
        emit_channel(L, scratch, y + oc * ohw, ohw);
    }
    return MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_conv2d_dense_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y)
{
    const int8_t *wt = (const int8_t *)(const void *)L->weights;
    const int32_t ih = (int32_t)L->in_h, iw = (int32_t)L->in_w, kh = (int32_t)L->kernel_h, kw = (int32_t)L->kernel_w;
    uint32_t oc;
    int32_t oy, ox, ic, ky, kx;
    for (oc = 0u; oc < L->rows; oc++) {
        const int8_t *w_oc = wt + oc * L->fan_in;
        for (oy = 0; oy < (int32_t)L->out_h; oy++) {
            for (ox = 0; ox < (int32_t)L->out_w; ox++) {
                uint32_t acc = mcu_dc_bias(L, oc);
                for (ic = 0; ic < (int32_t)L->in_c; ic++) {
                    for (ky = 0; ky < kh; ky++) {
                        int32_t iy = oy * (int32_t)L->stride_h + ky - (int32_t)L->pad_h;
                        if (iy < 0 || iy >= ih) continue;
                        for (kx = 0; kx < kw; kx++) {
                            int32_t ix = ox * (int32_t)L->stride_w + kx - (int32_t)L->pad_w;
                            int32_t w = w_oc[(ic * kh + ky) * kw + kx];
                            if (ix < 0 || ix >= iw) continue;
                            acc += (uint32_t)(w * ((int32_t)x[(ic * ih + iy) * iw + ix] - L->in_zp));
                        }
                    }
                }
                y[(oc * L->out_h + (uint32_t)oy) * L->out_w + (uint32_t)ox] = mcu_dc_requant_s8(acc, L);
            }
        }
    }
    return MCU_DC_OK;
}
