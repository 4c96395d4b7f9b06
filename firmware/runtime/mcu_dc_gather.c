/*
 * The gather convolution: CONV2D with gather = 1 (docs/format.md, "Gather convolution").
 * Same outputs as the scatter kernels of mcu_dc_conv.c, computed another way:
 *
 *   1. the input is copied once into the scratch with its padding filled with the input zero
 *      point (an op without padding reads its input in place), so every tap of every output
 *      position reads a real byte and a padded one contributes w * (zp - zp) = 0;
 *   2. per output channel, the channel's kept weights are decoded once (Huffman streams in
 *      line, any other encoding through the weight reader) into tap offsets into that input,
 *      grouped by symbol (codebook index; the weight itself for the reader's encodings) with
 *      a counting sort; a group holds at most 256 taps, so its sums of int8 inputs fit 16 bits;
 *   3. per block of four output positions of a row, each group sums the inputs its taps read
 *      (adds only) and multiplies once by its value: acc = bias - zp * sum(w) + sum over
 *      groups of w * (sum of x). With weight sharing, k groups cost k multiplies per position
 *      whatever the number of kept weights.
 *
 * A 1 x 1 conv at stride 1 without padding takes its whole output map as one row (its positions
 * are contiguous in the input plane). On cores with the DSP extension (MCU_DC_DSP) the four
 * positions are two halfword pairs:
 * per tap one unaligned word load and two sxtab16 (stride 1: bytes 0,2 and 1,3 of the word;
 * stride 2: bytes 0,2 of the word at the tap and 1,3 of the word three bytes on), per group
 * four smlabb/smlatb. Other strides, other cores and each row's last conv_w % 4 positions
 * take the plain loops. Sums wrap like the reference's (32-bit accumulators; 16-bit group
 * sums are exact: |sum| <= 256 * 128).
 *
 * Scratch (mcu_dc_gather_scratch; mcu_dc/core/ops/conv2d.py mirrors it byte for byte):
 *   uint32_t acc[conv_h * conv_w]     one output channel, then the fused emit (pool, requantize)
 *   uint32_t groups[G]                (taps << 16) | (uint16_t)w, G = min(256, fan_in) + fan_in / 256 + 1
 *   uint32_t raw[fan_in]              one channel's taps in decode order: (symbol << 16) | offset
 *   uint16_t cnt[256]                 taps per symbol (codebook index, or weight + 128), then its next place
 *   uint16_t off[fan_in]              each weight column's tap offset (filled once per op; 4-aligned)
 *   uint16_t taps[fan_in]             one channel's tap offsets grouped by symbol (4-aligned)
 *   int8_t   pad[in_c * hp * wp]      the padded input, when the op pads (hp = pad_top + in_h +
 *                                     pad_bottom, wp likewise); in_c * hp * wp <= 65535 (validated)
 *   uint16_t table[1 << table_bits]   a compact HUFFMAN_JOINT section's decode table (table_bits > 0)
 */
#include "mcu_dc_internal.h"

typedef struct {
    uint32_t *acc;
    uint32_t *groups;
    uint16_t *cnt;
    uint32_t *raw;
    uint16_t *off;
    uint16_t *taps;
    int8_t *pad;
    uint16_t *table;
} gather_t;

static uint32_t groups_max(uint32_t fan_in) { return (fan_in < 256u ? fan_in : 256u) + fan_in / 256u + 1u; }

static int padded(const mcu_dc_node_t *n) { return (n->pad_top | n->pad_left | n->pad_bottom | n->pad_right) != 0u; }

static uint32_t padded_w(const mcu_dc_node_t *n) { return n->pad_left + n->in_w + n->pad_right; }

uint64_t mcu_dc_gather_input_bytes(const mcu_dc_node_t *n)
{
    return (uint64_t)n->in_c * (n->pad_top + n->in_h + n->pad_bottom) * padded_w(n);
}

static uint64_t align4_64(uint64_t v) { return (v + 3u) & ~(uint64_t)3u; }

/* Byte offsets of the scratch parts (the layout above; each 4-aligned) and the total: the one
 * place the layout is computed, for both the op's scratch size and the kernel's pointers. */
typedef struct {
    uint64_t groups, raw, cnt, off, taps, pad, table, total;
} gather_offsets_t;

static void gather_offsets(const mcu_dc_node_t *n, gather_offsets_t *o)
{
    const uint64_t f = n->fan_in;
    o->groups = 4u * (uint64_t)n->conv_h * n->conv_w; /* after the accumulators */
    o->raw = o->groups + 4u * (uint64_t)groups_max(n->fan_in);
    o->cnt = o->raw + 4u * f;
    o->off = o->cnt + 512u;
    o->taps = o->off + align4_64(2u * f);
    o->pad = o->taps + align4_64(2u * f);
    o->table = o->pad + (padded(n) ? align4_64(mcu_dc_gather_input_bytes(n)) : 0u);
    o->total = o->table;
    if (n->table_bits > 0u && n->table_bits <= MCU_DC_MAX_TABLE_BITS) o->total += 2u << n->table_bits;
}

uint64_t mcu_dc_gather_scratch(const mcu_dc_node_t *n)
{
    gather_offsets_t o;
    gather_offsets(n, &o);
    return o.total;
}

/* The parts' pointers in scratch s (validated: the plan reserves mcu_dc_gather_scratch bytes). */
static void gather_layout(const mcu_dc_node_t *n, uint32_t *s, gather_t *g)
{
    uint8_t *const base = (uint8_t *)(void *)s;
    gather_offsets_t o;
    gather_offsets(n, &o);
    g->acc = s;
    g->groups = (uint32_t *)(void *)(base + (uint32_t)o.groups);
    g->raw = (uint32_t *)(void *)(base + (uint32_t)o.raw);
    g->cnt = (uint16_t *)(void *)(base + (uint32_t)o.cnt);
    g->off = (uint16_t *)(void *)(base + (uint32_t)o.off);
    g->taps = (uint16_t *)(void *)(base + (uint32_t)o.taps);
    g->pad = (int8_t *)(void *)(base + (uint32_t)o.pad);
    g->table = (uint16_t *)(void *)(base + (uint32_t)o.table);
}

/* n bytes of v from p; returns p + n. */
static int8_t *fill_s8(int8_t *p, int8_t v, uint32_t n)
{
    while (n-- != 0u) *p++ = v;
    return p;
}

/* The input the taps read: x itself, or x copied into pad with the borders set to in_zp. */
static const int8_t *gather_input(const mcu_dc_node_t *n, const int8_t *x, int8_t *pad)
{
    const int8_t zp = (int8_t)n->in_zp;
    const uint32_t wp = padded_w(n);
    int8_t *p = pad;
    uint32_t c, r, i;
    if (!padded(n)) return x;
    for (c = 0u; c < n->in_c; c++) {
        p = fill_s8(p, zp, n->pad_top * wp + n->pad_left);
        for (r = 0u; r < n->in_h; r++) {
            for (i = 0u; i < n->in_w; i++) *p++ = *x++;
            /* this row's right pad and the next row's left pad (the last row: its right pad only) */
            p = fill_s8(p, zp, n->pad_right + (r + 1u < n->in_h ? n->pad_left : 0u));
        }
        p = fill_s8(p, zp, n->pad_bottom * wp);
    }
    return pad;
}

/* One output position, any core: init + sum over groups of w * (sum of its taps' inputs). */
static uint32_t gather_one(const int8_t *b, const uint32_t *gp, uint32_t ng, const uint16_t *tp, uint32_t acc)
{
    for (; ng != 0u; ng--) {
        const uint32_t gv = *gp++;
        const uint16_t *te = tp + (gv >> 16);
        int32_t s = 0;
        do {
            s += b[*tp++];
        } while (tp != te);
        acc += (uint32_t)((int32_t)(int16_t)gv * s);
    }
    return acc;
}

/* Four output positions sw apart, any core. */
MCU_DC_NOINLINE static void gather_four(const int8_t *b, uint32_t sw, const uint32_t *gp, uint32_t ng, const uint16_t *tp,
                                        uint32_t init, uint32_t *out)
{
    uint32_t a0 = init, a1 = init, a2 = init, a3 = init;
    for (; ng != 0u; ng--) {
        const uint32_t gv = *gp++;
        const int32_t w = (int16_t)gv;
        const uint16_t *te = tp + (gv >> 16);
        int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        do {
            const int8_t *p = b + *tp++;
            s0 += p[0];
            s1 += p[sw];
            s2 += p[2u * sw];
            s3 += p[3u * sw];
        } while (tp != te);
        a0 += (uint32_t)(w * s0);
        a1 += (uint32_t)(w * s1);
        a2 += (uint32_t)(w * s2);
        a3 += (uint32_t)(w * s3);
    }
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
}

#if MCU_DC_DSP
/* One group's halfword-pair sum P times its weight (gv's low halfword) into the accumulators of
 * P's two positions: LO += low lane * w, HI += high lane * w. */
#define GATHER_MAC2(P, GV, LO, HI)                       \
    do {                                                 \
        (LO) = mcu_dc_dsp_smlabb((P), (GV), (LO));       \
        (HI) = mcu_dc_dsp_smlatb((P), (GV), (HI));       \
    } while (0)

/* n4 blocks of four positions sw (1 or 2) apart from b; per tap, stride 1: one word (bytes 0, 2 and
 * 1, 3: positions 0, 2 and 1, 3); stride 2: bytes 0, 2 of the word at the tap (positions 0, 1) and
 * bytes 1, 3 of the word three bytes on (inputs 4, 6: positions 2, 3). Two taps per turn. */
static MCU_DC_ALWAYS_INLINE void gather_dsp4(const int8_t *b, uint32_t *acc, uint32_t n4, const uint32_t *groups,
                                             uint32_t ng, const uint16_t *taps, uint32_t init, const uint32_t sw)
{
    const uint32_t *ge = groups + ng;
    for (; n4 != 0u; n4--, b += 4u * sw, acc += 4) {
        const int8_t *b2 = sw == 1u ? b : b + 3; /* the word of the second pair */
        uint32_t a0 = init, a1 = init, a2 = init, a3 = init;
        const uint32_t *gp = groups;
        const uint16_t *tp = taps;
        do {
            const uint32_t gv = *gp++;
            const uint16_t *te = tp + (gv >> 16);
            uint32_t p0 = 0u, p1 = 0u; /* stride 1: positions 0, 2 and 1, 3; stride 2: 0, 1 and 2, 3 */
            if ((gv & 0x10000u) != 0u) { /* an odd count: one tap, then two per turn */
                const uint32_t o = *tp++;
                p0 = mcu_dc_dsp_sxtab16(p0, mcu_dc_dsp_ld32(b + o));
                p1 = mcu_dc_dsp_sxtab16_ror8(p1, mcu_dc_dsp_ld32(b2 + o));
            }
            while (tp != te) {
                const uint32_t o = *tp++, q = *tp++;
                p0 = mcu_dc_dsp_sxtab16(mcu_dc_dsp_sxtab16(p0, mcu_dc_dsp_ld32(b + o)), mcu_dc_dsp_ld32(b + q));
                p1 = mcu_dc_dsp_sxtab16_ror8(mcu_dc_dsp_sxtab16_ror8(p1, mcu_dc_dsp_ld32(b2 + o)),
                                             mcu_dc_dsp_ld32(b2 + q));
            }
            if (sw == 1u) { /* p0: 0, 2; p1: 1, 3 */
                GATHER_MAC2(p0, gv, a0, a2);
                GATHER_MAC2(p1, gv, a1, a3);
            } else { /* p0: 0, 1; p1: 2, 3 */
                GATHER_MAC2(p0, gv, a0, a1);
                GATHER_MAC2(p1, gv, a2, a3);
            }
        } while (gp != ge);
        acc[0] = a0;
        acc[1] = a1;
        acc[2] = a2;
        acc[3] = a3;
    }
}

/* n8 blocks of eight positions sw (1 or 2) apart: two blocks of four sharing each tap's offset
 * and group (stride 1: the words at the tap and four on; stride 2: at the tap, 3, 8 and 11 on). */
static MCU_DC_ALWAYS_INLINE void gather_dsp8(const int8_t *b, uint32_t *acc, uint32_t n8, const uint32_t *groups,
                                             uint32_t ng, const uint16_t *taps, uint32_t init, const uint32_t sw)
{
    const uint32_t *ge = groups + ng;
    for (; n8 != 0u; n8--, b += 8u * sw, acc += 8) {
        const int8_t *b1 = sw == 1u ? b : b + 3, *b2 = sw == 1u ? b + 4 : b + 8, *b3 = sw == 1u ? b + 4 : b + 11;
        const uint32_t *gp = groups;
        const uint16_t *tp = taps;
        uint32_t a0 = init, a1 = init, a2 = init, a3 = init, a4 = init, a5 = init, a6 = init, a7 = init;
        do {
            const uint32_t gv = *gp++;
            const uint16_t *te = tp + (gv >> 16);
            uint32_t p0 = 0u, p1 = 0u, p2 = 0u, p3 = 0u;
            if (sw == 2u || (gv & 0x10000u) != 0u) { /* stride 1: an odd count's first tap, then two per turn */
                do {
                    const uint32_t o = *tp++;
                    p0 = mcu_dc_dsp_sxtab16(p0, mcu_dc_dsp_ld32(b + o));
                    p1 = mcu_dc_dsp_sxtab16_ror8(p1, mcu_dc_dsp_ld32(b1 + o));
                    p2 = mcu_dc_dsp_sxtab16(p2, mcu_dc_dsp_ld32(b2 + o));
                    p3 = mcu_dc_dsp_sxtab16_ror8(p3, mcu_dc_dsp_ld32(b3 + o));
                } while (sw == 2u && tp != te);
            }
            for (; sw == 1u && tp != te; tp += 2) { /* the same words: b1 = b, b3 = b2 */
                const uint32_t v = mcu_dc_dsp_ld32(b + tp[0]), u = mcu_dc_dsp_ld32(b2 + tp[0]);
                const uint32_t v2 = mcu_dc_dsp_ld32(b + tp[1]), u2 = mcu_dc_dsp_ld32(b2 + tp[1]);
                p0 = mcu_dc_dsp_sxtab16(mcu_dc_dsp_sxtab16(p0, v), v2);
                p1 = mcu_dc_dsp_sxtab16_ror8(mcu_dc_dsp_sxtab16_ror8(p1, v), v2);
                p2 = mcu_dc_dsp_sxtab16(mcu_dc_dsp_sxtab16(p2, u), u2);
                p3 = mcu_dc_dsp_sxtab16_ror8(mcu_dc_dsp_sxtab16_ror8(p3, u), u2);
            }
            if (sw == 1u) { /* p0: 0, 2; p1: 1, 3; p2: 4, 6; p3: 5, 7 */
                GATHER_MAC2(p0, gv, a0, a2);
                GATHER_MAC2(p1, gv, a1, a3);
                GATHER_MAC2(p2, gv, a4, a6);
                GATHER_MAC2(p3, gv, a5, a7);
            } else { /* p0: 0, 1; p1: 2, 3; p2: 4, 5; p3: 6, 7 */
                GATHER_MAC2(p0, gv, a0, a1);
                GATHER_MAC2(p1, gv, a2, a3);
                GATHER_MAC2(p2, gv, a4, a5);
                GATHER_MAC2(p3, gv, a6, a7);
            }
        } while (gp != ge);
        acc[0] = a0;
        acc[1] = a1;
        acc[2] = a2;
        acc[3] = a3;
        acc[4] = a4;
        acc[5] = a5;
        acc[6] = a6;
        acc[7] = a7;
    }
}

/* One row of the DSP path at stride sw: blocks of eight, then of four; returns the positions done. */
static MCU_DC_ALWAYS_INLINE uint32_t gather_dsp_row(const int8_t *xp, uint32_t *acc, uint32_t cw, const gather_t *g,
                                                    uint32_t ng, uint32_t init, const uint32_t sw)
{
    const uint32_t o8 = cw & ~7u;
    gather_dsp8(xp, acc, cw / 8u, g->groups, ng, g->taps, init, sw);
    gather_dsp4(xp + sw * o8, acc + o8, (cw - o8) / 4u, g->groups, ng, g->taps, init, sw);
    return cw & ~3u;
}

MCU_DC_NOINLINE MCU_DC_HOT_O2 static uint32_t gather_dsp_s1(const int8_t *xp, uint32_t *acc, uint32_t cw,
                                                         const gather_t *g, uint32_t ng, uint32_t init)
{
    return gather_dsp_row(xp, acc, cw, g, ng, init, 1u);
}

MCU_DC_NOINLINE MCU_DC_HOT_O2 static uint32_t gather_dsp_s2(const int8_t *xp, uint32_t *acc, uint32_t cw,
                                                         const gather_t *g, uint32_t ng, uint32_t init)
{
    return gather_dsp_row(xp, acc, cw, g, ng, init, 2u);
}
#endif /* MCU_DC_DSP */

/* Every accumulator of one output channel from its groups. */
static void gather_channel(const mcu_dc_node_t *n, const int8_t *xp, const gather_t *g, uint32_t ng, uint32_t init)
{
    /* a 1 x 1 conv at stride 1 without padding reads its output map's positions contiguously: one row */
    const int flat = n->kernel_h == 1u && n->kernel_w == 1u && n->stride_h == 1u && n->stride_w == 1u && !padded(n);
    const uint32_t cw = flat ? n->conv_h * n->conv_w : n->conv_w, rows = flat ? 1u : n->conv_h;
    const uint32_t sw = n->stride_w, row_step = n->stride_h * padded_w(n);
    uint32_t *acc = g->acc;
    uint32_t oy, ox;
    if (ng == 0u) { /* no kept weight: bias only */
        for (ox = 0u; ox < n->conv_h * n->conv_w; ox++) acc[ox] = init;
        return;
    }
    for (oy = 0u; oy < rows; oy++, acc += cw, xp += row_step) {
        ox = 0u;
#if MCU_DC_DSP
        if (sw == 1u) ox = gather_dsp_s1(xp, acc, cw, g, ng, init);
        if (sw == 2u) ox = gather_dsp_s2(xp, acc, cw, g, ng, init);
#endif
        for (; ox + 4u <= cw; ox += 4u) gather_four(xp + ox * sw, sw, g->groups, ng, g->taps, init, acc + ox);
        for (; ox < cw; ox++) acc[ox] = gather_one(xp + ox * sw, g->groups, ng, g->taps, init);
    }
}

/* One channel being gathered: its nt taps, each (symbol << 16) | offset into the input, counted per
 * symbol; a symbol's weight is codebook[symbol] (Huffman encodings) or symbol - 128 (the reader's
 * values). */
typedef struct {
    gather_t g;
    const int8_t *xp;    /* the input the taps read */
    const int8_t *cb;    /* the codebook, or NULL: symbol - 128 */
    uint32_t n_sym;      /* symbols: codebook_len, or 256 */
    uint32_t nt;
} gather_ch_t;

/* Groups of the channel's taps: taps sorted by symbol (a counting sort), at most 256 to a group,
 * each group (taps << 16) | (uint16_t)w; the counters cleared for the next channel. Returns the
 * group count; *wsum gets the sum of the taps' weights. */
static uint32_t gather_group(gather_ch_t *c, uint32_t *wsum)
{
    gather_t *g = &c->g;
    uint16_t *cnt = g->cnt;
    uint32_t s, i, ng = 0u, start = 0u, sum = 0u;
    for (s = 0u; s < c->n_sym; s++) {
        uint32_t k = cnt[s];
        const int32_t w = c->cb != 0 ? c->cb[s] : (int32_t)s - 128;
        const uint32_t w16 = (uint32_t)(uint16_t)(int16_t)w;
        if (k == 0u) continue;
        cnt[s] = (uint16_t)start;
        start += k;
        sum += (uint32_t)w * k;
        for (; k > 256u; k -= 256u) g->groups[ng++] = (256u << 16) | w16;
        g->groups[ng++] = (k << 16) | w16;
    }
    for (i = 0u; i < c->nt; i++) {
        const uint32_t e = g->raw[i];
        g->taps[cnt[e >> 16]++] = (uint16_t)e;
    }
    for (s = 0u; s < c->n_sym; s++) cnt[s] = 0u;
    c->nt = 0u;
    *wsum = sum;
    return ng;
}

/* Channel oc's output from its taps, then ready for the next channel. */
static void channel_finish(const mcu_dc_node_t *n, gather_ch_t *c, uint32_t oc, int8_t *y)
{
    uint32_t wsum;
    const uint32_t ng = gather_group(c, &wsum);
    gather_channel(n, c->xp, &c->g, ng, mcu_dc_bias(n, oc) - (uint32_t)n->in_zp * wsum);
    mcu_dc_conv_emit(n, c->g.acc, y + oc * n->out_h * n->out_w);
}

/* HUFFMAN_SPARSE and HUFFMAN_JOINT decoded in line (the bit readers of the fused scatter kernel; a
 * compact joint section through its decode table built in scratch), one instance per encoding so
 * that the readers and the channel's counters stay in registers. */
static MCU_DC_ALWAYS_INLINE mcu_dc_status_t gather_huff_body(const mcu_dc_node_t *n, gather_ch_t *c, int8_t *y,
                                                             const int joint)
{
    const uint32_t rows = n->rows, k = n->codebook_len, b = n->index_bits, rmask = (1u << b) - 1u;
    const int32_t fan_in = (int32_t)n->fan_in;
    const int8_t *cb = n->codebook;
    const uint16_t *off = c->g.off;
    uint16_t *cnt = c->g.cnt;
    uint32_t *raw = c->g.raw;
    mcu_dc_huff_t hs, hr;
    mcu_dc_bitreader_t bs, br;
    int32_t col = -1;
    uint32_t oc = 0u, i, nt = 0u;
    mcu_dc_entry_readers(n, (k + 1u) << b, &hs, &bs, &hr, &br);
    if (n->table_bits > 0u) (void)mcu_dc_bitreader_use_table(&bs, &hs, c->g.table, n->table_bits);
    for (i = n->n_entries; i != 0u; i--) {
        uint32_t r, s;
        MCU_DC_HUFF_ENTRY(r, s, joint, b, rmask, bs, &hs, br, &hr, corrupt);
        col += (int32_t)r + 1;
        while (MCU_DC_UNLIKELY(col >= fan_in)) { /* channel done */
            c->nt = nt;
            channel_finish(n, c, oc, y);
            nt = 0u;
            if (++oc >= rows) goto corrupt;
            col -= fan_in;
        }
        if (s < k && cb[s] != 0) { /* a filler, or a zero centroid, adds nothing */
            raw[nt++] = (s << 16) | off[col];
            cnt[s]++;
        }
    }
    if (mcu_dc_bitreader_used(&br, &hr) > hr.n_bits || mcu_dc_bitreader_used(&bs, &hs) > hs.n_bits) goto corrupt;
    c->nt = nt;
    for (; oc < rows; oc++) channel_finish(n, c, oc, y); /* the last, and channels without weights */
    return MCU_DC_OK;
corrupt:
    return MCU_DC_ERR_CORRUPT_STREAM;
}

MCU_DC_NOINLINE MCU_DC_HOT_O2 static mcu_dc_status_t gather_joint(const mcu_dc_node_t *n, gather_ch_t *c, int8_t *y)
{
    return gather_huff_body(n, c, y, 1);
}

MCU_DC_NOINLINE MCU_DC_HOT_O2 static mcu_dc_status_t gather_sparse(const mcu_dc_node_t *n, gather_ch_t *c, int8_t *y)
{
    return gather_huff_body(n, c, y, 0);
}

/* Any other encoding through the weight reader (symbol: the weight + 128). */
MCU_DC_NOINLINE static mcu_dc_status_t gather_reader(const mcu_dc_node_t *n, gather_ch_t *c, int8_t *y)
{
    mcu_dc_wreader_t r;
    uint32_t oc, row = 0u, col = 0u;
    int32_t w = 0;
    int rc;
    c->cb = 0;
    c->n_sym = 256u;
    mcu_dc_wreader_init(&r, n, 1);
    rc = mcu_dc_wreader_next(&r, &row, &col, &w);
    for (oc = 0u; oc < n->rows; oc++) {
        for (; rc > 0 && row == oc; rc = mcu_dc_wreader_next(&r, &row, &col, &w)) {
            if (w != 0) { /* a zero weight adds nothing */
                const uint32_t s = (uint32_t)(w + 128);
                c->g.raw[c->nt++] = (s << 16) | c->g.off[col];
                c->g.cnt[s]++;
            }
        }
        if (rc < 0 || (rc > 0 && row < oc)) return MCU_DC_ERR_CORRUPT_STREAM;
        channel_finish(n, c, oc, y);
    }
    return rc == 0 ? MCU_DC_OK : MCU_DC_ERR_CORRUPT_STREAM; /* an entry past the last row */
}

mcu_dc_status_t mcu_dc_conv2d_gather_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const uint32_t kh = n->kernel_h, kw = n->kernel_w, wp = padded_w(n);
    const uint32_t plane = (n->pad_top + n->in_h + n->pad_bottom) * wp;
    gather_ch_t c;
    uint32_t ic, ky, kx, col = 0u;
    gather_layout(n, io->scratch, &c.g);
    c.xp = gather_input(n, io->x, c.g.pad);
    for (ic = 0u; ic < n->in_c; ic++) { /* each weight column's offset into the input: once per op */
        for (ky = 0u; ky < kh; ky++) {
            for (kx = 0u; kx < kw; kx++) c.g.off[col++] = (uint16_t)(ic * plane + ky * wp + kx);
        }
    }
    for (col = 0u; col < 256u; col++) c.g.cnt[col] = 0u;
    c.nt = 0u;
    c.cb = n->codebook;
    c.n_sym = n->codebook_len;
    if (n->n_entries > 0u && n->encoding == MCU_DC_ENC_HUFFMAN_JOINT) return gather_joint(n, &c, io->y);
    if (n->n_entries > 0u && n->encoding == MCU_DC_ENC_HUFFMAN_SPARSE) return gather_sparse(n, &c, io->y);
    return gather_reader(n, &c, io->y);
}
