/*
 * The convolution family: CONV2D (groups = 1; W[out_c][in_c * kh * kw], torch's layout
 * flattened) and DEPTHWISE_CONV2D (out_c = in_c * m; output channel o reads input
 * channel o / m; W[out_c][kh * kw]). CHW int8 tensors, any stride, zero padding
 * (asymmetric allowed: padded inputs contribute nothing), fused activation bounds and an
 * optional fused max pool. Both compute one output channel at a time into the scratch
 * (uint32_t[conv_h * conv_w] int32 accumulators), then emit it: requantized, or max-pooled
 * and requantized (equal to pooling the requantized values: the requantization and the
 * clamp are monotone), so the full conv output is never stored.
 *
 *   mcu_dc_conv2d_huff_s8           HUFFMAN_SPARSE and HUFFMAN_JOINT fast path: decodes each
 *                                   channel's weights once straight from the Huffman streams (LUT
 *                                   decoder inlined) and scatters every kept weight over all
 *                                   output positions (bench/results/device_mnist_lenet5.md).
 *   mcu_dc_conv2d_s8                the registered run: the gather kernel (mcu_dc_gather.c) when
 *                                   the op asks for it, else the fused path for HUFFMAN_SPARSE and
 *                                   HUFFMAN_JOINT, the weight reader + scatter for DENSE_INT8.
 *   mcu_dc_depthwise_conv2d_s8      the weight reader (LUT decoder) + scatter, any encoding
 *                                   but the bit-planes.
 *   mcu_dc_conv2d_ternary_s8,       TERNARY / BINARY: per output channel, the taps each
 *   mcu_dc_conv2d_binary_s8,        bit-plane selects add (x - in_zp) to that plane's map of
 *   mcu_dc_depthwise_conv2d_*_s8    sums (no multiply per tap), then one multiply per map
 *                                   and position: acc = bias + cb[0]*S0 + cb[1]*S1 (BINARY:
 *                                   plane 0 is the clear bits); scratch is the two maps.
 *   mcu_dc_conv2d_s8_ref,           the reference: the weight reader (bit-serial decoder),
 *   mcu_dc_depthwise_conv2d_s8_ref  a bounds check per output position, pooling after the
 *                                   requantization, as the simulator does.
 */
#include "mcu_dc_internal.h"

static void fill_u32(uint32_t *p, uint32_t v, uint32_t n)
{
    uint32_t i;
    for (i = 0u; i < n; i++) p[i] = v;
}

/* (acc * mult + round) >> shift for shift >= 32 (s = shift - 32): a 32 x 32 -> 64-bit product, then the
 * high word only. */
static MCU_DC_ALWAYS_INLINE int32_t requant_hi(int32_t acc, int32_t mult, int64_t round, uint32_t s)
{
    return (int32_t)(((int64_t)acc * mult + round) >> 32) >> s;
}

/* Requantize one output channel of accumulators into y (out_h * out_w values): with a
 * fused pool, the max of each window of int32 accumulators first. The rule of
 * mcu_dc_requant_s8 with the op's constants hoisted out of the loop. */
MCU_DC_HOT_O2 void mcu_dc_conv_emit(const mcu_dc_node_t *n, const uint32_t *acc, int8_t *y)
{
    const int64_t round = (int64_t)1 << (n->shift - 1u);
    const int32_t mult = n->multiplier; /* 0 .. 2^31 - 1 (validated): 32 x 32 -> 64-bit products */
    const uint32_t shift = n->shift;
    const int64_t lo = n->act_min - n->out_zp, hi = n->act_max - n->out_zp; /* clamp before adding out_zp */
    const int32_t zp = n->out_zp;
    const uint32_t cw = n->conv_w;
    uint32_t i, oy, ox, ky, kx, count;
    if (n->pool_kh == 0u) {
        count = n->conv_h * cw;
        if (shift >= 32u) { /* the usual case: the product's high word only */
            const uint32_t s = shift - 32u;
            const int32_t lo32 = (int32_t)lo, hi32 = (int32_t)hi;
            for (i = 0u; i < count; i++) {
                int32_t v = requant_hi((int32_t)acc[i], mult, round, s);
                if (v < lo32) v = lo32;
                if (v > hi32) v = hi32;
                y[i] = (int8_t)(v + zp);
            }
            return;
        }
        for (i = 0u; i < count; i++) {
            int64_t v = ((int64_t)(int32_t)acc[i] * mult + round) >> shift;
            if (v < lo) v = lo;
            if (v > hi) v = hi;
            y[i] = (int8_t)((int32_t)v + zp);
        }
        return;
    }
    for (oy = 0u; oy < n->out_h; oy++) {
        for (ox = 0u; ox < n->out_w; ox++) {
            const uint32_t *a = acc + oy * n->pool_sh * cw + ox * n->pool_sw;
            int32_t m = (int32_t)a[0];
            int64_t v;
            for (ky = 0u; ky < n->pool_kh; ky++) {
                for (kx = 0u; kx < n->pool_kw; kx++) {
                    int32_t t = (int32_t)a[ky * cw + kx];
                    if (t > m) m = t;
                }
            }
            v = shift >= 32u ? requant_hi(m, mult, round, shift - 32u) : ((int64_t)m * mult + round) >> shift;
            if (v < lo) v = lo;
            if (v > hi) v = hi;
            *y++ = (int8_t)((int32_t)v + zp);
        }
    }
}

/* The reference emit: requantize every conv output, then (with a fused pool) take the max
 * of each window of int8 values, exactly the simulator's order. */
static void emit_channel_ref(const mcu_dc_node_t *n, const uint32_t *acc, int8_t *y)
{
    uint32_t i, oy, ox, ky, kx;
    if (n->pool_kh == 0u) {
        for (i = 0u; i < n->conv_h * n->conv_w; i++) y[i] = mcu_dc_requant_s8(acc[i], n);
        return;
    }
    for (oy = 0u; oy < n->out_h; oy++) {
        for (ox = 0u; ox < n->out_w; ox++) {
            int8_t m = -128;
            for (ky = 0u; ky < n->pool_kh; ky++) {
                for (kx = 0u; kx < n->pool_kw; kx++) {
                    uint32_t cy = oy * n->pool_sh + ky, cx = ox * n->pool_sw + kx;
                    int8_t v = mcu_dc_requant_s8(acc[cy * n->conv_w + cx], n);
                    if (v > m) m = v;
                }
            }
            y[oy * n->out_w + ox] = m;
        }
    }
}

/* First output index o >= 0 with o*stride + k - pad >= 0, and one past the last with
 * o*stride + k - pad <= in - 1 (clamped to [lo, out]). */
static MCU_DC_ALWAYS_INLINE void out_range(int32_t k, int32_t pad, int32_t stride, int32_t in, int32_t out, int32_t *lo, int32_t *hi)
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
    int32_t zp;     /* the op's in_zp */
    int32_t stride; /* stride_w */
} conv_tap_t;

/* sp[i] += w * (xp[i * stride] - in_zp) for sp in [sp, se), se > sp: the conv kernels'
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

/* acc[oy][ox] += w * (xc[oy*sh+ky-pt][ox*sw+kx-pl] - zp) over the in-bounds positions;
 * xc is one input channel. */
static void scatter_tap(const mcu_dc_node_t *n, const int8_t *xc, uint32_t *acc, int32_t ky, int32_t kx, int32_t w)
{
    const int32_t sh = (int32_t)n->stride_h, sw = (int32_t)n->stride_w;
    const int32_t ih = (int32_t)n->in_h, iw = (int32_t)n->in_w, cw = (int32_t)n->conv_w;
    const int32_t pt = (int32_t)n->pad_top, pl = (int32_t)n->pad_left;
    int32_t oy_lo, oy_hi, ox_lo, ox_hi, oy;
    conv_tap_t t;
    t.w = w;
    t.zp = n->in_zp;
    t.stride = sw;
    out_range(ky, pt, sh, ih, (int32_t)n->conv_h, &oy_lo, &oy_hi);
    out_range(kx, pl, sw, iw, cw, &ox_lo, &ox_hi);
    if (ox_hi <= ox_lo) return;
    for (oy = oy_lo; oy < oy_hi; oy++) {
        const int8_t *xp = xc + ((oy * sh + ky - pt) * iw + ox_lo * sw + kx - pl);
        mac_row(acc + oy * cw + ox_lo, acc + oy * cw + ox_hi, xp, &t);
    }
}

/* The reference twin of scatter_tap: every output position, bounds-checked. */
static void tap_ref(const mcu_dc_node_t *n, const int8_t *xc, uint32_t *acc, int32_t ky, int32_t kx, int32_t w)
{
    int32_t oy, ox;
    for (oy = 0; oy < (int32_t)n->conv_h; oy++) {
        for (ox = 0; ox < (int32_t)n->conv_w; ox++) {
            int32_t iy = oy * (int32_t)n->stride_h + ky - (int32_t)n->pad_top;
            int32_t ix = ox * (int32_t)n->stride_w + kx - (int32_t)n->pad_left;
            if (iy >= 0 && iy < (int32_t)n->in_h && ix >= 0 && ix < (int32_t)n->in_w) {
                int32_t v = xc[iy * (int32_t)n->in_w + ix];
                acc[oy * (int32_t)n->conv_w + ox] += (uint32_t)(w * (v - n->in_zp));
            }
        }
    }
}

/* The input channel and kernel position of weight (row, col). */
static const int8_t *tap_of(const mcu_dc_node_t *n, const int8_t *x, uint32_t row, uint32_t col, int32_t *ky,
                            int32_t *kx)
{
    const uint32_t khw = n->kernel_h * n->kernel_w;
    uint32_t ic, k;
    if (n->dw_mult != 0u) { /* depthwise: output channel row reads input channel row / m */
        ic = row / n->dw_mult;
        k = col;
    } else {
        ic = col / khw;
        k = col - ic * khw;
    }
    *ky = (int32_t)(k / n->kernel_w);
    *kx = (int32_t)(k % n->kernel_w);
    return x + ic * n->in_h * n->in_w;
}

/* Either member of the family, any encoding, through the weight reader: fast = LUT
 * decoding, row scatter and the fused emit; else the reference. */
static mcu_dc_status_t conv_reader_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io, int fast)
{
    const uint32_t chw = n->conv_h * n->conv_w, ohw = n->out_h * n->out_w;
    uint32_t *acc = io->scratch;
    mcu_dc_wreader_t r;
    uint32_t oc = 0u, row, col;
    int32_t w, ky, kx;
    int rc;
    mcu_dc_wreader_init(&r, n, fast);
    fill_u32(acc, mcu_dc_bias(n, 0u), chw);
    while ((rc = mcu_dc_wreader_next(&r, &row, &col, &w)) > 0) {
        const int8_t *xc;
        while (oc < row) { /* channels before the entry's are complete */
            if (fast) {
                mcu_dc_conv_emit(n, acc, io->y + oc * ohw);
            } else {
                emit_channel_ref(n, acc, io->y + oc * ohw);
            }
            oc++;
            fill_u32(acc, mcu_dc_bias(n, oc), chw);
        }
        xc = tap_of(n, io->x, row, col, &ky, &kx);
        if (fast) {
            scatter_tap(n, xc, acc, ky, kx, w);
        } else {
            tap_ref(n, xc, acc, ky, kx, w);
        }
    }
    if (rc < 0) return MCU_DC_ERR_CORRUPT_STREAM;
    for (;;) {
        if (fast) {
            mcu_dc_conv_emit(n, acc, io->y + oc * ohw);
        } else {
            emit_channel_ref(n, acc, io->y + oc * ohw);
        }
        if (++oc >= n->rows) break;
        fill_u32(acc, mcu_dc_bias(n, oc), chw); /* channels without weights: bias only */
    }
    return MCU_DC_OK;
}

/* sp[i] += xp[i * stride] - zp for sp in [sp, se), se > sp: the bit-plane kernels' inner loop. */
MCU_DC_NOINLINE static void sum_row(uint32_t *sp, const uint32_t *se, const int8_t *xp, int32_t zp, int32_t stride)
{
    do {
        *sp++ += (uint32_t)((int32_t)*xp - zp);
        xp += stride;
    } while (sp != se);
}

/* map[oy][ox] += xc[oy*sh+ky-pt][ox*sw+kx-pl] - zp over the in-bounds positions. */
static void sum_tap(const mcu_dc_node_t *n, const int8_t *xc, uint32_t *map, int32_t ky, int32_t kx)
{
    const int32_t sh = (int32_t)n->stride_h, sw = (int32_t)n->stride_w;
    const int32_t ih = (int32_t)n->in_h, iw = (int32_t)n->in_w, cw = (int32_t)n->conv_w;
    const int32_t pt = (int32_t)n->pad_top, pl = (int32_t)n->pad_left;
    int32_t oy_lo, oy_hi, ox_lo, ox_hi, oy;
    out_range(ky, pt, sh, ih, (int32_t)n->conv_h, &oy_lo, &oy_hi);
    out_range(kx, pl, sw, iw, cw, &ox_lo, &ox_hi);
    if (ox_hi <= ox_lo) return;
    for (oy = oy_lo; oy < oy_hi; oy++) {
        const int8_t *xp = xc + ((oy * sh + ky - pt) * iw + ox_lo * sw + kx - pl);
        sum_row(map + oy * cw + ox_lo, map + oy * cw + ox_hi, xp, n->in_zp, sw);
    }
}

/* Add every tap whose bit is set in one row of a plane (invert: the clear bits, BINARY's
 * plane 0) to map. */
static void sum_plane_row(const mcu_dc_node_t *n, const int8_t *x, const uint32_t *p, uint32_t row, int invert,
                          uint32_t *map)
{
    const uint32_t wpr = mcu_dc_bp_words(n->fan_in), tail = n->fan_in & 31u;
    uint32_t w;
    for (w = 0u; w < wpr; w++) {
        uint32_t m = invert ? ~p[w] : p[w];
        if (w == wpr - 1u && tail != 0u) m &= (1u << tail) - 1u;
        while (m != 0u) {
            int32_t ky, kx;
            const uint32_t col = 32u * w + MCU_DC_CTZ(m);
            const int8_t *xc = tap_of(n, x, row, col, &ky, &kx);
            sum_tap(n, xc, map, ky, kx);
            m &= m - 1u;
        }
    }
}

/* TERNARY and BINARY, both members of the family: two maps of plane sums per channel in the
 * scratch, combined with one multiply per map and position, then the fused emit. */
static mcu_dc_status_t conv_bitplane_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const uint32_t chw = n->conv_h * n->conv_w, ohw = n->out_h * n->out_w;
    const uint32_t wpr = mcu_dc_bp_words(n->fan_in);
    const int binary = n->encoding == MCU_DC_ENC_BINARY;
    const uint32_t *p0 = mcu_dc_bp_base(n);
    const uint32_t *p1 = binary ? p0 : p0 + n->rows * wpr;
    const uint32_t c0 = (uint32_t)(int32_t)n->codebook[0];
    const uint32_t c1 = n->codebook_len > 1u ? (uint32_t)(int32_t)n->codebook[1] : 0u;
    uint32_t *m0 = io->scratch, *m1 = io->scratch + chw;
    uint32_t oc, i;
    for (oc = 0u; oc < n->rows; oc++, p0 += wpr, p1 += wpr) {
        const uint32_t bias = mcu_dc_bias(n, oc);
        fill_u32(m0, 0u, chw);
        fill_u32(m1, 0u, chw);
        sum_plane_row(n, io->x, p0, oc, binary, m0);
        if (c1 != 0u || binary) sum_plane_row(n, io->x, p1, oc, 0, m1);
        for (i = 0u; i < chw; i++) m0[i] = bias + c0 * m0[i] + c1 * m1[i];
        mcu_dc_conv_emit(n, m0, io->y + oc * ohw);
    }
    return MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_conv2d_ternary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io) { return conv_bitplane_s8(n, io); }
mcu_dc_status_t mcu_dc_conv2d_binary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io) { return conv_bitplane_s8(n, io); }
mcu_dc_status_t mcu_dc_depthwise_conv2d_ternary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    return conv_bitplane_s8(n, io);
}
mcu_dc_status_t mcu_dc_depthwise_conv2d_binary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    return conv_bitplane_s8(n, io);
}

mcu_dc_status_t mcu_dc_conv2d_huff_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const uint32_t rows = n->rows, k = n->codebook_len, chw = n->conv_h * n->conv_w, ohw = n->out_h * n->out_w;
    const uint32_t khw = n->kernel_h * n->kernel_w;
    const int32_t fan_in = (int32_t)n->fan_in;
    const int8_t *cb = n->codebook;
    const int8_t *x = io->x;
    int8_t *y = io->y;
    uint32_t *scratch = io->scratch;
    uint32_t oc = 0u, i;

    if (n->n_entries > 0u) {
        mcu_dc_huff_t hs, hr;
        mcu_dc_bitreader_t bs, br;
        int32_t col = -1;
        const int joint = n->encoding == MCU_DC_ENC_HUFFMAN_JOINT; /* one code: symbol << b | run */
        const uint32_t b = n->index_bits, rmask = (1u << n->index_bits) - 1u;
        mcu_dc_entry_readers(n, 0u, &hs, &bs, &hr, &br); /* never compact (validated) */
        fill_u32(scratch, mcu_dc_bias(n, 0u), chw);
        for (i = n->n_entries; i != 0u; i--) {
            uint32_t r, s;
            MCU_DC_HUFF_ENTRY(r, s, joint, b, rmask, bs, &hs, br, &hr, corrupt);
            col += (int32_t)r + 1;
            while (col >= fan_in) { /* channel done */
                mcu_dc_conv_emit(n, scratch, y + oc * ohw);
                if (++oc >= rows) goto corrupt;
                fill_u32(scratch, mcu_dc_bias(n, oc), chw);
                col -= fan_in;
            }
            if (s < k) {
                const uint32_t ic = (uint32_t)col / khw, kk = (uint32_t)col - ic * khw;
                scatter_tap(n, x + ic * n->in_h * n->in_w, scratch, (int32_t)(kk / n->kernel_w),
                            (int32_t)(kk % n->kernel_w), cb[s]);
            }
        }
        if (mcu_dc_bitreader_used(&br, &hr) > hr.n_bits || mcu_dc_bitreader_used(&bs, &hs) > hs.n_bits) {
            goto corrupt;
        }
        mcu_dc_conv_emit(n, scratch, y + oc * ohw);
        oc++;
    }
    for (; oc < rows; oc++) { /* channels without weights: bias only (a pool of a constant is the constant) */
        int8_t v = mcu_dc_requant_s8(mcu_dc_bias(n, oc), n);
        for (i = 0u; i < ohw; i++) y[oc * ohw + i] = v;
    }
    return MCU_DC_OK;
corrupt:
    return MCU_DC_ERR_CORRUPT_STREAM;
}

mcu_dc_status_t mcu_dc_conv2d_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    if (n->gather != 0u) return mcu_dc_conv2d_gather_s8(n, io);
    switch (n->encoding) {
    case MCU_DC_ENC_HUFFMAN_SPARSE:
    case MCU_DC_ENC_HUFFMAN_JOINT:
        return mcu_dc_conv2d_huff_s8(n, io);
    case MCU_DC_ENC_TERNARY:
        return mcu_dc_conv2d_ternary_s8(n, io);
    case MCU_DC_ENC_BINARY:
        return mcu_dc_conv2d_binary_s8(n, io);
    default:
        return conv_reader_s8(n, io, 1);
    }
}

mcu_dc_status_t mcu_dc_conv2d_s8_ref(const mcu_dc_node_t *n, const mcu_dc_io_t *io) { return conv_reader_s8(n, io, 0); }

mcu_dc_status_t mcu_dc_depthwise_conv2d_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    switch (n->encoding) {
    case MCU_DC_ENC_TERNARY:
        return mcu_dc_depthwise_conv2d_ternary_s8(n, io);
    case MCU_DC_ENC_BINARY:
        return mcu_dc_depthwise_conv2d_binary_s8(n, io);
    default:
        return conv_reader_s8(n, io, 1);
    }
}

mcu_dc_status_t mcu_dc_depthwise_conv2d_s8_ref(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    return conv_reader_s8(n, io, 0);
}

/* ------------------------------------------------------------------ registration */

static void conv_family_derive(mcu_dc_node_t *n)
{
    n->conv_h = mcu_dc_out_dim(n->in_h, n->pad_top, n->pad_bottom, n->kernel_h, n->stride_h);
    n->conv_w = mcu_dc_out_dim(n->in_w, n->pad_left, n->pad_right, n->kernel_w, n->stride_w);
    n->rows = n->out_c;
}

static void conv2d_derive(mcu_dc_node_t *n)
{
    const uint64_t fan_in = (uint64_t)n->in_c * n->kernel_h * n->kernel_w;
    conv_family_derive(n);
    n->fan_in = fan_in > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)fan_in;
    n->dw_mult = 0u;
}

static void depthwise_derive(mcu_dc_node_t *n)
{
    conv_family_derive(n);
    n->fan_in = n->kernel_h * n->kernel_w; /* <= 65535^2 < 2^32 */
    n->dw_mult = n->in_c != 0u ? n->out_c / n->in_c : 0u;
}

/* Geometry shared by the family: kernel, stride, the conv map, the fused pool, the output. */
static mcu_dc_status_t conv_geometry(const mcu_dc_node_t *n)
{
    uint32_t ph, pw;
    if (n->kernel_h == 0u || n->kernel_w == 0u || n->stride_h == 0u || n->stride_w == 0u) return MCU_DC_ERR_PARAM;
    if (n->conv_h == 0u || n->conv_w == 0u) return MCU_DC_ERR_SHAPE; /* the kernel does not fit the padded input */
    if (n->pool_kh != 0u) {
        if (n->pool_kw == 0u || n->pool_sh == 0u || n->pool_sw == 0u) return MCU_DC_ERR_PARAM;
        ph = mcu_dc_out_dim(n->conv_h, 0u, 0u, n->pool_kh, n->pool_sh);
        pw = mcu_dc_out_dim(n->conv_w, 0u, 0u, n->pool_kw, n->pool_sw);
        if (ph == 0u || pw == 0u) return MCU_DC_ERR_SHAPE;
    } else {
        ph = n->conv_h;
        pw = n->conv_w;
    }
    if (n->out_h != ph || n->out_w != pw) return MCU_DC_ERR_SHAPE;
    return MCU_DC_OK;
}

static mcu_dc_status_t conv2d_validate(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t blob_bytes)
{
    mcu_dc_status_t st = conv_geometry(n);
    if (st != MCU_DC_OK) return st;
    /* the gather kernel: 0 or 1, its input addressed with 16-bit tap offsets */
    if (n->gather > 1u || (n->gather != 0u && mcu_dc_gather_input_bytes(n) > 0xFFFFu)) return MCU_DC_ERR_PARAM;
    return mcu_dc_weights_validate(n, blob, blob_bytes);
}

static mcu_dc_status_t depthwise_validate(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t blob_bytes)
{
    mcu_dc_status_t st = conv_geometry(n);
    if (st != MCU_DC_OK) return st;
    if (n->in_c == 0u || n->out_c % n->in_c != 0u) return MCU_DC_ERR_SHAPE; /* out_c = in_c * m, m >= 1 */
    return mcu_dc_weights_validate(n, blob, blob_bytes);
}

static uint64_t conv_family_scratch(const mcu_dc_node_t *n)
{
    if (n->gather != 0u) return mcu_dc_gather_scratch(n); /* CONV2D only (validated) */
    if (n->encoding == MCU_DC_ENC_TERNARY || n->encoding == MCU_DC_ENC_BINARY) {
        return 8u * (uint64_t)n->conv_h * n->conv_w; /* two maps of plane sums */
    }
    return 4u * (uint64_t)n->conv_h * n->conv_w; /* one output channel of int32 accumulators */
}

const mcu_dc_op_impl_t mcu_dc_op_conv2d = {
    1u, conv2d_derive, conv2d_validate, conv_family_scratch, mcu_dc_conv2d_s8, mcu_dc_conv2d_s8_ref,
};

const mcu_dc_op_impl_t mcu_dc_op_depthwise_conv2d = {
    1u, depthwise_derive, depthwise_validate, conv_family_scratch, mcu_dc_depthwise_conv2d_s8,
    mcu_dc_depthwise_conv2d_s8_ref,
};
