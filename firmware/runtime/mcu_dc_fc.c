/*
 * FC: a fully connected op over its input tensor flattened in CHW order (docs/format.md,
 * "Numbers" and "The sparse stream"). W[rows][fan_in], rows = the output tensor's
 * channels, fan_in = in_c * in_h * in_w; no scratch but with COLUMN_SPARSE (4 * rows).
 *   mcu_dc_fc_huff_s8   HUFFMAN_SPARSE fast path: computes straight from the two Huffman
 *                       streams (relative indices and weight symbols), decoded on the fly
 *                       with lookup tables; weights are never unpacked to RAM. Two kernels:
 *                       fc_huff_window (unaligned-load targets: Cortex-M3/M4/M7, hosts; one
 *                       fused loop, both decodes and the MAC per entry, 32-bit windows read
 *                       at a bit position) and fc_huff_chunked (Cortex-M0: 32-bit bit
 *                       buffers, a chunk of weights decoded to the stack, then the indices
 *                       fused with the MAC).
 *   mcu_dc_fc_joint_s8  HUFFMAN_JOINT: the same entries, one Huffman code per (run, symbol):
 *                       one lookup per entry (window kernel; bit-buffer kernel on Cortex-M0);
 *                       a compact section (table_bits) has its full decode table built in
 *                       the op's scratch first, so no code needs the canonical walk.
 *   mcu_dc_fc_colsparse_s8  COLUMN_SPARSE, the speed encoding: column by column, a zero
 *                       input skips its whole column, others add codebook[g] * x to the
 *                       row accumulators in scratch; a byte per kept weight, no decoding.
 *   mcu_dc_fc_ternary_s8  TERNARY (k <= 2 planes of bits): per row and plane, the inputs
 *                       whose bit is set are summed (ctz over each word, no multiply), then
 *                       multiplied once by the plane's codebook entry.
 *   mcu_dc_fc_binary_s8 BINARY (one sign plane, nothing pruned): the sum of all inputs
 *                       once per op; per row the sum of the set bits' inputs:
 *                       acc = bias + cb[0] * all + (cb[1] - cb[0]) * set.
 *   mcu_dc_fc_dense_s8  DENSE_INT8: every weight stored as int8, a dot product; with the
 *                       DSP extension (Cortex-M4/M7) two rows at a time through smlad.
 *   mcu_dc_fc_s8        the registered run: one of them by encoding.
 *   mcu_dc_fc_s8_ref    the reference: any encoding through the weight reader (bit-serial).
 * Accumulators are int32 carried in uint32_t (wrapping, so never undefined behaviour).
 */
#include "mcu_dc_internal.h"

/* Entries decoded per pass: the weight-symbol stream is decoded a chunk at a time into
 * int8 weights on the stack (filler -> 0), then the relative-index stream is decoded
 * fused with the multiply-accumulate. Each loop keeps its one bit reader in registers
 * (Cortex-M has 13; two readers would spill); codes longer than the lookup table and
 * row crossings are handled out of line. Measured on Cortex-M4 (QEMU, -Os): 39 to 46
 * instructions per entry, both Huffman decodes included (see README.md). */
/* The fused window kernel needs unaligned 32-bit loads (not on Cortex-M0/M0+: ARMv6-M),
 * and gcc or clang builtins; elsewhere the chunked kernel runs. -DMCU_DC_FC_WINDOW=0 forces it. */
#ifndef MCU_DC_FC_WINDOW
#if (defined(__GNUC__) || defined(__clang__)) && (!defined(__arm__) || defined(__ARM_FEATURE_UNALIGNED))
#define MCU_DC_FC_WINDOW 1
#else
#define MCU_DC_FC_WINDOW 0
#endif
#endif

#ifndef MCU_DC_FC_CHUNK
#define MCU_DC_FC_CHUNK 128u
#endif

/* Load 16 more bits when fewer than 16 are buffered; a corrupt stream that would read past its section returns. */
#define FC_REFILL(buf, nb, p, p_end)                                                 \
    do {                                                                             \
        if ((nb) < 16) {                                                             \
            if ((p) > (p_end)) return MCU_DC_ERR_CORRUPT_STREAM;                     \
            (buf) |= (((uint32_t)(p)[0] << 8) | (uint32_t)(p)[1]) << (16 - (nb));    \
            (p) += 2;                                                                \
            (nb) += 16;                                                              \
        }                                                                            \
    } while (0)

/* The canonical walk for a code longer than the lookup table (out of line: a cold path). */
MCU_DC_NOINLINE static uint32_t fc_walk(const mcu_dc_bitreader_t *rd, uint32_t buf)
{
    uint32_t e;
    MCU_DC_HUFF_WALK(e, buf, rd);
    return e;
}

/* Decode n weight symbols into int8 weights w[0..n); cbz is the codebook plus a 0 for the filler. */
MCU_DC_NOINLINE static mcu_dc_status_t fc_weights(mcu_dc_bitreader_t *rd, const int8_t *cbz, int8_t *w, uint32_t n)
{
    uint32_t buf = rd->buf, e;
    int32_t nb = rd->nb;
    const uint8_t *p = rd->p;
    const uint16_t *const lut = rd->lut;
    const uint32_t sh = rd->lut_shift;
    int8_t *const w_end = w + n;
    do {
        FC_REFILL(buf, nb, p, rd->p_end);
        e = lut[buf >> sh];
        if (e == 0u) { /* a code longer than the table */
            e = fc_walk(rd, buf);
            if (e == 0u) return MCU_DC_ERR_CORRUPT_STREAM;
        }
        buf <<= e >> 12;
        nb -= (int32_t)(e >> 12);
        e &= 0xFFFu;
        *w++ = cbz[e]; /* e <= k (tables validated); cbz[k] == 0: the filler multiplies nothing */
    } while (w != w_end);
    rd->buf = buf;
    rd->nb = nb;
    rd->p = p;
    return MCU_DC_OK;
}

/* Everything the multiply-accumulate loop carries between calls. */
typedef struct {
    mcu_dc_bitreader_t rd; /* the relative-index stream */
    const int8_t *x_end;   /* one past the input */
    int32_t col;           /* the current entry's input index minus fan_in: x_end[col], < 0 in the row */
    const int8_t *w_end;   /* one past this chunk's weights */
    int32_t j;             /* -(entries left in the chunk) */
    uint32_t acc;          /* accumulator of the current row */
    int32_t zp;            /* the layer's in_zp */
} fc_ctx_t;

#define FC_DONE 0
#define FC_CROSS 1 /* the entry just decoded lies in a later row: col advanced, no MAC yet */
#define FC_CORRUPT 2

/* Decode relative indices and multiply-accumulate them with w_end[j..0) until the chunk
 * is done or an entry crosses into the next row (the caller finishes the row). The only
 * call (long codes) is on a cold path, so the loop's values stay in registers. */
MCU_DC_NOINLINE static int fc_macs(fc_ctx_t *c)
{
    uint32_t buf = c->rd.buf, acc = c->acc, e;
    int32_t nb = c->rd.nb, j = c->j, ev = FC_DONE;
    const uint8_t *p = c->rd.p;
    const uint16_t *const lut = c->rd.lut;
    const uint32_t sh = c->rd.lut_shift;
    int32_t col = c->col;
    const int8_t *const x_end = c->x_end;
    const int8_t *const w_end = c->w_end;
    const int32_t zp = c->zp;
    do {
        if (nb < 16) {
            if (p > c->rd.p_end) {
                ev = FC_CORRUPT;
                break;
            }
            buf |= (((uint32_t)p[0] << 8) | (uint32_t)p[1]) << (16 - nb);
            p += 2;
            nb += 16;
        }
        e = lut[buf >> sh];
        if (e == 0u) { /* a code longer than the table */
            e = fc_walk(&c->rd, buf);
            if (e == 0u) {
                ev = FC_CORRUPT;
                break;
            }
        }
        buf <<= e >> 12;
        nb -= (int32_t)(e >> 12);
        col += (int32_t)(e & 0xFFFu) + 1;
        if (col >= 0) {
            ev = FC_CROSS;
            break;
        }
        acc += (uint32_t)((int32_t)w_end[j] * ((int32_t)x_end[col] - zp));
    } while (++j != 0);
    c->rd.buf = buf;
    c->rd.nb = nb;
    c->rd.p = p;
    c->col = col;
    c->acc = acc;
    c->j = j;
    return ev;
}

/* An entry's column (its input index minus fan_in) crossed into a later row: requantize the
 * finished rows into y and start each next one from its bias until the column lies in the
 * current row. Every Huffman FC kernel's row crossing (out of its hot loop). */
static mcu_dc_status_t fc_next_rows(const mcu_dc_node_t *n, int8_t *y, uint32_t *row, uint32_t *acc, int32_t *col)
{
    while (*col >= 0) {
        if (*row + 1u >= n->rows) return MCU_DC_ERR_CORRUPT_STREAM;
        y[*row] = mcu_dc_requant_out(*acc, n);
        (*row)++;
        *acc = mcu_dc_bias(n, *row);
        *col -= (int32_t)n->fan_in;
    }
    return MCU_DC_OK;
}

/* The rows from ``row`` on: ``row`` itself with its accumulator, the rest empty (bias only). */
static void fc_last_rows(const mcu_dc_node_t *n, int8_t *y, uint32_t row, uint32_t acc)
{
    y[row++] = mcu_dc_requant_out(acc, n);
    for (; row < n->rows; row++) y[row] = mcu_dc_requant_out(mcu_dc_bias(n, row), n);
}

static mcu_dc_status_t fc_huff_chunked(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const int8_t *x = io->x;
    int8_t *y = io->y;
    uint32_t row = 0u;
    if (n->n_entries > 0u) {
        mcu_dc_huff_t hs, hr;
        mcu_dc_bitreader_t bs;
        fc_ctx_t c;
        uint32_t left = n->n_entries;
        int8_t w[MCU_DC_FC_CHUNK];
        int8_t cbz[MCU_DC_MAX_CODEBOOK + 1u]; /* the codebook (k <= 256 bytes) and a 0 for the filler */
        for (left = 0u; left < n->codebook_len; left++) cbz[left] = n->codebook[left];
        cbz[n->codebook_len] = 0;
        left = n->n_entries;
        c.x_end = x + n->fan_in;
        c.col = -(int32_t)n->fan_in - 1; /* just before the first input */
        c.acc = mcu_dc_bias(n, 0u);
        c.zp = n->in_zp;
        mcu_dc_huff_view(n->weights, 0u, &hs); /* HUFFMAN_SPARSE: never compact (validated) */
        mcu_dc_huff_view(n->index, 0u, &hr);
        mcu_dc_bitreader_init(&bs, &hs);
        mcu_dc_bitreader_init(&c.rd, &hr);
        while (left > 0u) {
            const uint32_t chunk = left < MCU_DC_FC_CHUNK ? left : MCU_DC_FC_CHUNK;
            if (fc_weights(&bs, cbz, w, chunk) != MCU_DC_OK) return MCU_DC_ERR_CORRUPT_STREAM;
            left -= chunk;
            c.w_end = w + chunk;
            c.j = -(int32_t)chunk;
            for (;;) {
                int ev = fc_macs(&c);
                if (ev == FC_DONE) break;
                if (ev == FC_CORRUPT) return MCU_DC_ERR_CORRUPT_STREAM;
                if (fc_next_rows(n, y, &row, &c.acc, &c.col) != MCU_DC_OK) return MCU_DC_ERR_CORRUPT_STREAM;
                c.acc += (uint32_t)((int32_t)c.w_end[c.j] * ((int32_t)c.x_end[c.col] - c.zp));
                if (++c.j == 0) break;
            }
        }
        if (mcu_dc_bitreader_used(&c.rd, &hr) > hr.n_bits || mcu_dc_bitreader_used(&bs, &hs) > hs.n_bits) {
            return MCU_DC_ERR_CORRUPT_STREAM;
        }
        fc_last_rows(n, y, row, c.acc);
        return MCU_DC_OK;
    }
    fc_last_rows(n, y, 0u, mcu_dc_bias(n, 0u)); /* no entries: every row bias only */
    return MCU_DC_OK;
}

#if MCU_DC_FC_WINDOW
/*
 * The fused fast path (Cortex-M3/M4/M7 and hosts: any target with unaligned 32-bit loads).
 * Per entry, both codes are decoded side by side and the multiply-accumulate follows at
 * once; nothing is staged on the stack. Each stream is read through a bit position: the
 * 32-bit big-endian window at byte pos / 8, shifted left by pos % 8, holds >= 25 valid
 * bits (>= any code), so there is no refill branch; a code resolves with one lookup of the
 * stream's lut_bits table and pos advances by its length (one add: length in bits 12..15
 * of the entry). The position is counted from the stream's lookup table, which lies just
 * before its data in the same section, so one register addresses both (two per stream in
 * all: the loop's state fits the 13 registers). Codes longer than the table take the
 * canonical walk out of line. Bounds: a chunk of entries is sized so that every window
 * read starts at a position <= n_bits (each code is at most max_len bits), so no read
 * leaves the section (4 zero bytes follow the data); the row crossings, the chunk and
 * the final check (bits used <= n_bits) are out of the loop.
 */
typedef struct {
    const uint8_t *base;   /* the lookup table (its data follows in the same section); or the data */
    const uint16_t *lut;   /* the lookup table: base, or a decode table built in scratch */
    uint32_t pos;          /* bit position counted from base */
    uint32_t end;          /* n_bits, counted from base */
    uint32_t max_len;
    mcu_dc_bitreader_t rd; /* the canonical walk's tables */
} fc_win_t;

static MCU_DC_ALWAYS_INLINE uint32_t fc_window(const uint8_t *base, uint32_t pos)
{
    uint32_t w;
    __builtin_memcpy(&w, base + (pos >> 3), 4u); /* one unaligned ldr */
    return __builtin_bswap32(w) << (pos & 7u);
}

static MCU_DC_ALWAYS_INLINE uint32_t fc_lut(const uint8_t *base, uint32_t v)
{
    return ((const uint16_t *)(const void *)base)[v];
}

static void fc_win_init(fc_win_t *r, const mcu_dc_huff_t *h)
{
    uint32_t off;
    mcu_dc_bitreader_init(&r->rd, h);
    r->base = (const uint8_t *)(const void *)h->lut;
    r->lut = h->lut;
    off = (uint32_t)(h->data - r->base) * 8u;
    r->pos = off;
    r->end = off + h->n_bits;
    r->max_len = h->max_len > 0u ? h->max_len : 1u;
}

/* A stream read through the decode table its bit reader rd already points at (in scratch:
 * fc_scratch_table); positions count from the data. */
static void fc_win_init_table(fc_win_t *r, const mcu_dc_huff_t *h)
{
    r->base = h->data;
    r->lut = r->rd.lut;
    r->pos = 0u;
    r->end = h->n_bits;
    r->max_len = h->max_len > 0u ? h->max_len : 1u;
}

/* The loop's state between calls. */
typedef struct {
    fc_win_t r, s;        /* relative indices, weight symbols */
    const int8_t *x_end;  /* one past the input */
    const int8_t *cbz;    /* the codebook and a 0 for the filler */
    int32_t col;          /* the current entry's input index minus fan_in */
    uint32_t acc;         /* accumulator of the current row */
    int32_t zp;
    uint32_t n;           /* entries in this chunk still to decode */
    int32_t w;            /* FC_CROSS: the crossing entry's weight (its MAC pending) */
} fc_win_ctx_t;

#define FCW_DONE 0
#define FCW_CROSS 1
#define FCW_CORRUPT 2

static MCU_DC_ALWAYS_INLINE int fc_win_body(fc_win_ctx_t *c, const uint32_t shr, const uint32_t shs, const int32_t zp)
{
    const uint8_t *const br = c->r.base;
    const uint8_t *const bs = c->s.base;
    uint32_t pr = c->r.pos, ps = c->s.pos, acc = c->acc, n = c->n, er, es;
    int32_t col = c->col, ev = FCW_DONE;
    const int8_t *const x_end = c->x_end;
    const int8_t *const cbz = c->cbz;
    for (;;) {
        uint32_t wr = fc_window(br, pr), ws = fc_window(bs, ps);
        er = fc_lut(br, wr >> shr);
        if (MCU_DC_UNLIKELY(er == 0u)) { /* a code longer than the table */
            MCU_DC_HUFF_WALK(er, wr, &c->r.rd); /* inline: a call would evict the loop's registers */
            if (er == 0u) {
                ev = FCW_CORRUPT;
                break;
            }
        }
        es = fc_lut(bs, ws >> shs);
        if (MCU_DC_UNLIKELY(es == 0u)) {
            MCU_DC_HUFF_WALK(es, ws, &c->s.rd);
            if (es == 0u) {
                ev = FCW_CORRUPT;
                break;
            }
        }
        pr += er >> 12;
        ps += es >> 12;
        col += (int32_t)(er & 0xFFFu) + 1;
        if (MCU_DC_UNLIKELY(col >= 0)) {
            c->w = cbz[es & 0xFFFu];
            n--;
            ev = FCW_CROSS;
            break;
        }
        acc += (uint32_t)((int32_t)cbz[es & 0xFFFu] * ((int32_t)x_end[col] - zp)); /* es <= k: validated */
        if (--n == 0u) break;
    }
    c->r.pos = pr;
    c->s.pos = ps;
    c->col = col;
    c->acc = acc;
    c->n = n;
    return ev;
}

/* Specialised for the default 6-bit tables and the zero point -128 (uint8 inputs, ReLU
 * outputs): constants instead of registers. */
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_win_6_6_m128(fc_win_ctx_t *c) { return fc_win_body(c, 26u, 26u, -128); }
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_win_any(fc_win_ctx_t *c)
{
    return fc_win_body(c, c->r.rd.lut_shift, c->s.rd.lut_shift, c->zp);
}

/* Entries a chunk may decode from a stream without any window read starting past n_bits. */
static uint32_t fc_win_room(const fc_win_t *r) { return (r->end - r->pos) / r->max_len + 1u; }

static mcu_dc_status_t fc_huff_window(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    int8_t *y = io->y;
    uint32_t row = 0u;
    if (n->n_entries > 0u) {
        mcu_dc_huff_t hs, hr;
        fc_win_ctx_t c;
        uint32_t i, left = n->n_entries;
        int (*run)(fc_win_ctx_t *);
        int8_t cbz[MCU_DC_MAX_CODEBOOK + 1u]; /* the codebook (k <= 256 bytes) and a 0 for the filler */
        for (i = 0u; i < n->codebook_len; i++) cbz[i] = n->codebook[i];
        cbz[n->codebook_len] = 0;
        c.cbz = cbz;
        c.x_end = io->x + n->fan_in;
        c.col = -(int32_t)n->fan_in - 1; /* just before the first input */
        c.acc = mcu_dc_bias(n, 0u);
        c.zp = n->in_zp;
        mcu_dc_huff_view(n->weights, 0u, &hs); /* HUFFMAN_SPARSE: never compact (validated) */
        mcu_dc_huff_view(n->index, 0u, &hr);
        fc_win_init(&c.s, &hs);
        fc_win_init(&c.r, &hr);
        run = (hr.lut_bits == 6u && hs.lut_bits == 6u && n->in_zp == -128) ? fc_win_6_6_m128 : fc_win_any;
        while (left > 0u) {
            uint32_t room, chunk;
            int ev;
            if (c.r.pos > c.r.end || c.s.pos > c.s.end) return MCU_DC_ERR_CORRUPT_STREAM;
            room = fc_win_room(&c.r);
            chunk = fc_win_room(&c.s);
            if (room < chunk) chunk = room;
            if (left < chunk) chunk = left;
            left -= chunk;
            c.n = chunk;
            for (;;) {
                ev = run(&c);
                if (ev != FCW_CROSS) break;
                if (fc_next_rows(n, y, &row, &c.acc, &c.col) != MCU_DC_OK) return MCU_DC_ERR_CORRUPT_STREAM;
                c.acc += (uint32_t)(c.w * ((int32_t)c.x_end[c.col] - c.zp));
                if (c.n == 0u) break;
            }
            if (ev == FCW_CORRUPT) return MCU_DC_ERR_CORRUPT_STREAM;
        }
        if (c.r.pos > c.r.end || c.s.pos > c.s.end) return MCU_DC_ERR_CORRUPT_STREAM;
        fc_last_rows(n, y, row, c.acc);
        return MCU_DC_OK;
    }
    fc_last_rows(n, y, 0u, mcu_dc_bias(n, 0u)); /* no entries: every row bias only */
    return MCU_DC_OK;
}
#endif /* MCU_DC_FC_WINDOW */

mcu_dc_status_t mcu_dc_fc_huff_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
#if MCU_DC_FC_WINDOW
    /* the window reader addresses data from its lookup table: both streams need one */
    if (n->n_entries > 0u && n->weights[MCU_DC_HUF_LUT_BITS] > 0u && n->index[MCU_DC_HUF_LUT_BITS] > 0u) {
        return fc_huff_window(n, io);
    }
#endif
    return fc_huff_chunked(n, io);
}

/*
 * HUFFMAN_JOINT (docs/format.md, "Joint Huffman section"): the entries of HUFFMAN_SPARSE,
 * each (run, symbol) pair one code e = (symbol << b) | run, so one table lookup per entry
 * instead of two. The window kernel (targets with unaligned loads) reads 32-bit windows at
 * a bit position like fc_huff_window, with one stream: per entry a window load, a lookup,
 * the position advance, the run added to the column, the symbol's codebook entry times the
 * input. Elsewhere (Cortex-M0) the bit-buffer reader of MCU_DC_HUFF_NEXT does the same.
 */
typedef struct {
    const int8_t *x_end; /* one past the input */
    const int8_t *cbz;   /* the codebook and a 0 for the filler */
    int32_t col;         /* the current entry's input index minus fan_in */
    uint32_t acc;        /* accumulator of the current row */
    int32_t zp;
    uint32_t n;          /* entries in this chunk still to decode */
    int32_t w;           /* FCW_CROSS: the crossing entry's weight (its MAC pending) */
#if MCU_DC_FC_WINDOW
    fc_win_t j;          /* the joint stream */
    uint32_t b;          /* the run width (index_bits) */
#endif
} fc_joint_ctx_t;

/* A compact section's decode table, built in the op's scratch, as bit reader br's lookup
 * table (bits >= max_len: every code resolves in it, so the walk never runs); returns 1 when
 * the code is complete (no lookup can miss). */
static int fc_scratch_table(const mcu_dc_node_t *n, const mcu_dc_io_t *io, const mcu_dc_huff_t *h,
                            mcu_dc_bitreader_t *br)
{
    return mcu_dc_bitreader_use_table(br, h, (uint16_t *)(void *)io->scratch, n->table_bits);
}

/* Close rows until the column lies in the current one, then add the pending weight. */
static mcu_dc_status_t fc_joint_cross(fc_joint_ctx_t *c, const mcu_dc_node_t *n, int8_t *y, uint32_t *row)
{
    if (fc_next_rows(n, y, row, &c->acc, &c->col) != MCU_DC_OK) return MCU_DC_ERR_CORRUPT_STREAM;
    c->acc += (uint32_t)(c->w * ((int32_t)c->x_end[c->col] - c->zp));
    return MCU_DC_OK;
}

#if MCU_DC_FC_WINDOW
static MCU_DC_ALWAYS_INLINE int fc_joint_body(fc_joint_ctx_t *c, const uint32_t sh, const uint32_t b, const int32_t zp,
                                               const int walk, const int test)
{
    const uint8_t *const base = c->j.base;
    const uint16_t *const lut = c->j.lut;
    const uint32_t rmask = (1u << b) - 1u;
    uint32_t pos = c->j.pos, acc = c->acc, n = c->n, e;
    int32_t col = c->col, ev = FCW_DONE;
    const int8_t *const x_end = c->x_end;
    const int8_t *const cbz = c->cbz;
    for (;;) {
        const uint32_t win = fc_window(base, pos);
        e = lut[win >> sh];
        if (test && MCU_DC_UNLIKELY(e == 0u)) { /* a code longer than the table (walk), or no code */
            if (walk) MCU_DC_HUFF_WALK(e, win, &c->j.rd);
            if (e == 0u) {
                ev = FCW_CORRUPT;
                break;
            }
        }
        pos += e >> 12;
        col += (int32_t)(e & rmask) + 1;
        if (MCU_DC_UNLIKELY(col >= 0)) {
            c->w = cbz[(e & 0xFFFu) >> b];
            n--;
            ev = FCW_CROSS;
            break;
        }
        acc += (uint32_t)((int32_t)cbz[(e & 0xFFFu) >> b] * ((int32_t)x_end[col] - zp)); /* symbol <= k: validated */
        if (--n == 0u) break;
    }
    c->j.pos = pos;
    c->col = col;
    c->acc = acc;
    c->n = n;
    return ev;
}

/* Specialised for the default 6-bit table, the usual run widths and the zero point -128
 * (uint8 inputs, ReLU outputs): constants instead of registers. */
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_joint_6_3(fc_joint_ctx_t *c) { return fc_joint_body(c, 26u, 3u, -128, 1, 1); }
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_joint_6_4(fc_joint_ctx_t *c) { return fc_joint_body(c, 26u, 4u, -128, 1, 1); }
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_joint_6_5(fc_joint_ctx_t *c) { return fc_joint_body(c, 26u, 5u, -128, 1, 1); }
/* A decode table in scratch, 12 bits wide (compact sections of the default code limit), of a
 * complete code: every window resolves in it to a code, so neither a walk nor a test. */
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_joint_t12_3(fc_joint_ctx_t *c) { return fc_joint_body(c, 20u, 3u, -128, 0, 0); }
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_joint_t12_5(fc_joint_ctx_t *c) { return fc_joint_body(c, 20u, 5u, -128, 0, 0); }
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_joint_t12_7(fc_joint_ctx_t *c) { return fc_joint_body(c, 20u, 7u, -128, 0, 0); }
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_joint_any_table(fc_joint_ctx_t *c)
{
    return fc_joint_body(c, c->j.rd.lut_shift, c->b, c->zp, 0, 0);
}
MCU_DC_NOINLINE MCU_DC_HOT_O2 static int fc_joint_any(fc_joint_ctx_t *c)
{
    return fc_joint_body(c, c->j.rd.lut_shift, c->b, c->zp, 1, 1);
}

static mcu_dc_status_t fc_joint_window(const mcu_dc_node_t *n, const mcu_dc_io_t *io, fc_joint_ctx_t *c)
{
    mcu_dc_huff_t h;
    uint32_t row = 0u, left = n->n_entries;
    int (*run)(fc_joint_ctx_t *) = fc_joint_any;
    mcu_dc_huff_view(n->weights, (n->codebook_len + 1u) << n->index_bits, &h);
    c->b = n->index_bits;
    if (n->table_bits > 0u) { /* compact section: build its decode table in scratch */
        int complete;
        mcu_dc_bitreader_init(&c->j.rd, &h);
        complete = fc_scratch_table(n, io, &h, &c->j.rd);
        fc_win_init_table(&c->j, &h);
        if (complete) run = fc_joint_any_table;
        if (complete && n->table_bits == 12u && n->in_zp == -128) {
            if (n->index_bits == 3u) run = fc_joint_t12_3;
            if (n->index_bits == 5u) run = fc_joint_t12_5;
            if (n->index_bits == 7u) run = fc_joint_t12_7;
        }
    } else {
        fc_win_init(&c->j, &h);
        if (h.lut_bits == 6u && n->in_zp == -128) {
            if (n->index_bits == 3u) run = fc_joint_6_3;
            if (n->index_bits == 4u) run = fc_joint_6_4;
            if (n->index_bits == 5u) run = fc_joint_6_5;
        }
    }
    while (left > 0u) {
        uint32_t chunk;
        int ev;
        if (c->j.pos > c->j.end) return MCU_DC_ERR_CORRUPT_STREAM;
        chunk = fc_win_room(&c->j);
        if (left < chunk) chunk = left;
        left -= chunk;
        c->n = chunk;
        for (;;) {
            ev = run(c);
            if (ev != FCW_CROSS) break;
            if (fc_joint_cross(c, n, io->y, &row) != MCU_DC_OK) return MCU_DC_ERR_CORRUPT_STREAM;
            if (c->n == 0u) break;
        }
        if (ev == FCW_CORRUPT) return MCU_DC_ERR_CORRUPT_STREAM;
    }
    if (c->j.pos > c->j.end) return MCU_DC_ERR_CORRUPT_STREAM;
    fc_last_rows(n, io->y, row, c->acc);
    return MCU_DC_OK;
}
#endif /* MCU_DC_FC_WINDOW */

/* The bit-buffer kernel (no unaligned loads, or no lookup table): a 32-bit buffer refilled 16
 * bits at a time, one lookup per entry, codes longer than the table through the canonical walk
 * from the table's length on (out of line). */
static mcu_dc_status_t fc_joint_buffered(const mcu_dc_node_t *n, const mcu_dc_io_t *io, fc_joint_ctx_t *c)
{
    mcu_dc_huff_t h;
    mcu_dc_bitreader_t br;
    const uint32_t b = n->index_bits, rmask = (1u << b) - 1u;
    uint32_t row = 0u, left = n->n_entries, e, buf;
    int32_t nb;
    const uint8_t *p;
    mcu_dc_huff_view(n->weights, (n->codebook_len + 1u) << n->index_bits, &h);
    mcu_dc_bitreader_init(&br, &h);
    if (n->table_bits > 0u) (void)fc_scratch_table(n, io, &h, &br); /* resolves every code */
    buf = br.buf;
    nb = br.nb;
    p = br.p;
    while (left > 0u) {
        left--;
        FC_REFILL(buf, nb, p, br.p_end);
        e = br.lut[buf >> br.lut_shift];
        if (e == 0u) { /* a code longer than the table */
            e = fc_walk(&br, buf);
            if (e == 0u) return MCU_DC_ERR_CORRUPT_STREAM;
        }
        buf <<= e >> 12;
        nb -= (int32_t)(e >> 12);
        e &= 0xFFFu;
        c->col += (int32_t)(e & rmask) + 1;
        c->w = c->cbz[e >> b];
        if (c->col >= 0) {
            if (fc_joint_cross(c, n, io->y, &row) != MCU_DC_OK) return MCU_DC_ERR_CORRUPT_STREAM;
        } else {
            c->acc += (uint32_t)(c->w * ((int32_t)c->x_end[c->col] - c->zp));
        }
    }
    if ((uint32_t)(p - h.data) * 8u - (uint32_t)nb > h.n_bits) return MCU_DC_ERR_CORRUPT_STREAM;
    fc_last_rows(n, io->y, row, c->acc);
    return MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_fc_joint_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    fc_joint_ctx_t c;
    uint32_t i;
    int8_t cbz[MCU_DC_MAX_CODEBOOK + 1u]; /* the codebook (k <= 256 bytes) and a 0 for the filler */
    if (n->n_entries == 0u) { /* no entries: every row bias only */
        fc_last_rows(n, io->y, 0u, mcu_dc_bias(n, 0u));
        return MCU_DC_OK;
    }
    for (i = 0u; i < n->codebook_len; i++) cbz[i] = n->codebook[i];
    cbz[n->codebook_len] = 0;
    c.cbz = cbz;
    c.x_end = io->x + n->fan_in;
    c.col = -(int32_t)n->fan_in - 1; /* just before the first input */
    c.acc = mcu_dc_bias(n, 0u);
    c.zp = n->in_zp;
    c.w = 0;
#if MCU_DC_FC_WINDOW
    /* the window reader needs a lookup table: in scratch (compact), or in the section */
    if (n->table_bits > 0u || n->weights[MCU_DC_HUF_LUT_BITS] > 0u) return fc_joint_window(n, io, &c);
#endif
    return fc_joint_buffered(n, io, &c);
}

/* One active column (p < end): add cb[g] * v to acc[row] for each kept weight; skips
 * pass rows (validated: a skip is always followed by an entry of the same column). Per
 * kept weight on Cortex-M4 (-Os): ldrb, cmp + branch (skip, not taken), add, and, ldrsb,
 * ldr, mla, str, cmp + branch: 11 instructions. */
MCU_DC_NOINLINE MCU_DC_NO_IF_CONVERSION static void fc_column(const uint8_t *p, const uint8_t *end, uint32_t *a,
                                                              const int8_t *cb, int32_t v)
{
    uint32_t row = 0xFFFFFFFFu; /* -1: the first entry's delta counts from before row 0 */
    do {
        uint32_t e = *p++;
        while (MCU_DC_UNLIKELY(e < 16u)) { /* a skip over 15 * (g + 1) rows */
            row += MCU_DC_COLSPARSE_SKIP * (e + 1u);
            e = *p++;
        }
        row += e >> 4;
        a[row] += (uint32_t)((int32_t)cb[e & 15u] * v); /* validated: row < rows */
    } while (p < end);
}

mcu_dc_status_t mcu_dc_fc_colsparse_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const int8_t *x = io->x;
    uint32_t *acc = io->scratch;
    const int8_t *cb = n->codebook;
    const int32_t zp = n->in_zp;
    const uint8_t *p = mcu_dc_colsparse_stream(n);
    const uint32_t rows = n->rows, fan_in = n->fan_in;
    uint32_t j, row;
    const uint8_t *bias = n->bias;
    for (row = 0u; row < rows; row++, bias += 4) acc[row] = mcu_dc_rd32(bias);
    for (j = 0u; j < fan_in; j++) {
        const uint32_t count = mcu_dc_colsparse_count(&p);
        const int32_t v = (int32_t)x[j] - zp;
        if (v != 0 && count != 0u) fc_column(p, p + count, acc, cb, v); /* a zero input adds nothing */
        p += count;
    }
    for (row = 0u; row < rows; row++) io->y[row] = mcu_dc_requant_s8(acc[row], n);
    return MCU_DC_OK;
}

/* The sum of (x[j] - zp) over the set bits of one row of a plane (wpr words), in wrapping
 * uint32. Per set bit on Cortex-M4 (-Os): rbit + clz, ldrsb, add, add (count), sub + ands,
 * branch. The zero point is taken off once per row: sum(x) - zp * count. */
MCU_DC_NOINLINE static uint32_t plane_row_sum(const uint32_t *p, uint32_t wpr, const int8_t *x, int32_t zp)
{
    uint32_t s = 0u, cnt = 0u, w;
    for (w = 0u; w < wpr; w++, x += 32) {
        uint32_t m = p[w];
        while (m != 0u) {
            s += (uint32_t)(int32_t)x[MCU_DC_CTZ(m)];
            cnt++;
            m &= m - 1u;
        }
    }
    return s - (uint32_t)zp * cnt;
}

mcu_dc_status_t mcu_dc_fc_ternary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const uint32_t rows = n->rows, wpr = mcu_dc_bp_words(n->fan_in);
    const uint32_t *p0 = mcu_dc_bp_base(n);
    const uint32_t *p1 = p0 + rows * wpr; /* plane 1 (read only when k == 2) */
    const uint32_t c0 = (uint32_t)(int32_t)n->codebook[0];
    const uint32_t c1 = n->codebook_len > 1u ? (uint32_t)(int32_t)n->codebook[1] : 0u;
    const int32_t zp = n->in_zp;
    uint32_t row;
    for (row = 0u; row < rows; row++, p0 += wpr, p1 += wpr) {
        uint32_t acc = mcu_dc_bias(n, row) + c0 * plane_row_sum(p0, wpr, io->x, zp);
        if (c1 != 0u) acc += c1 * plane_row_sum(p1, wpr, io->x, zp);
        io->y[row] = mcu_dc_requant_s8(acc, n);
    }
    return MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_fc_binary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    const uint32_t rows = n->rows, wpr = mcu_dc_bp_words(n->fan_in);
    const uint32_t *p = mcu_dc_bp_base(n);
    const uint32_t c0 = (uint32_t)(int32_t)n->codebook[0];
    const uint32_t d = n->codebook_len > 1u ? (uint32_t)((int32_t)n->codebook[1] - (int32_t)n->codebook[0]) : 0u;
    const int32_t zp = n->in_zp;
    uint32_t all = 0u, j, row;
    for (j = 0u; j < n->fan_in; j++) all += (uint32_t)((int32_t)io->x[j] - zp);
    all *= c0; /* every weight is at least codebook[0] */
    for (row = 0u; row < rows; row++, p += wpr) {
        uint32_t acc = mcu_dc_bias(n, row) + all;
        if (d != 0u) acc += d * plane_row_sum(p, wpr, io->x, zp);
        io->y[row] = mcu_dc_requant_s8(acc, n);
    }
    return MCU_DC_OK;
}

/*
 * DENSE_INT8 on cores with the DSP extension (MCU_DC_DSP): two rows at a time, four inputs per step. The four
 * input bytes are widened once to two halfword pairs with the zero point subtracted (sxtab16,
 * plain and rotated by 8), each row's four weights to two pairs (sxtb16), and two smlad add
 * the four products: 17 instructions per 8 MACs as gcc -Os compiles it (the input pointer is
 * reloaded from the stack). The sums are the plain loop's: int16 x int16
 * products, 32-bit wrapping accumulation; the tail (fan_in % 4) and an odd last row take the
 * plain loop.
 */
/* One row of the plain dot product from input j on. */
static uint32_t fc_dense_tail(const int8_t *w, const int8_t *x, uint32_t j, uint32_t fan_in, int32_t zp, uint32_t acc)
{
    for (; j < fan_in; j++) acc += (uint32_t)((int32_t)w[j] * ((int32_t)x[j] - zp));
    return acc;
}

#if MCU_DC_DSP
MCU_DC_NOINLINE MCU_DC_HOT_O2 static void fc_dense_dsp(const mcu_dc_node_t *n, const int8_t *x, int8_t *y)
{
    const int8_t *w = (const int8_t *)(const void *)n->weights;
    const uint32_t fan_in = n->fan_in, n4 = fan_in & ~3u;
    const int32_t zp = n->in_zp;
    const uint32_t off = ((uint32_t)(-zp) & 0xFFFFu) * 0x10001u; /* -zp in both halfwords */
    uint32_t row = 0u, j;
    for (; row + 1u < n->rows; row += 2u) {
        const int8_t *w0 = w + row * fan_in, *w1 = w0 + fan_in;
        uint32_t a0 = mcu_dc_bias(n, row), a1 = mcu_dc_bias(n, row + 1u);
        for (j = 0u; j < n4; j += 4u) {
            const uint32_t xv = mcu_dc_dsp_ld32(x + j);
            const uint32_t x02 = mcu_dc_dsp_sxtab16(off, xv), x13 = mcu_dc_dsp_sxtab16_ror8(off, xv);
            uint32_t wv = mcu_dc_dsp_ld32(w0 + j);
            a0 = mcu_dc_dsp_smlad(mcu_dc_dsp_sxtb16(wv), x02, a0);
            a0 = mcu_dc_dsp_smlad(mcu_dc_dsp_sxtb16_ror8(wv), x13, a0);
            wv = mcu_dc_dsp_ld32(w1 + j);
            a1 = mcu_dc_dsp_smlad(mcu_dc_dsp_sxtb16(wv), x02, a1);
            a1 = mcu_dc_dsp_smlad(mcu_dc_dsp_sxtb16_ror8(wv), x13, a1);
        }
        y[row] = mcu_dc_requant_out(fc_dense_tail(w0, x, n4, fan_in, zp, a0), n);
        y[row + 1u] = mcu_dc_requant_out(fc_dense_tail(w1, x, n4, fan_in, zp, a1), n);
    }
    if (row < n->rows) {
        const int8_t *w0 = w + row * fan_in;
        uint32_t a0 = mcu_dc_bias(n, row);
        for (j = 0u; j < n4; j += 4u) {
            const uint32_t xv = mcu_dc_dsp_ld32(x + j), wv = mcu_dc_dsp_ld32(w0 + j);
            a0 = mcu_dc_dsp_smlad(mcu_dc_dsp_sxtb16(wv), mcu_dc_dsp_sxtab16(off, xv), a0);
            a0 = mcu_dc_dsp_smlad(mcu_dc_dsp_sxtb16_ror8(wv), mcu_dc_dsp_sxtab16_ror8(off, xv), a0);
        }
        y[row] = mcu_dc_requant_out(fc_dense_tail(w0, x, n4, fan_in, zp, a0), n);
    }
}
#endif /* MCU_DC_DSP */

mcu_dc_status_t mcu_dc_fc_dense_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
#if MCU_DC_DSP
    fc_dense_dsp(n, io->x, io->y);
#else
    const int8_t *w = (const int8_t *)(const void *)n->weights;
    uint32_t row;
    for (row = 0u; row < n->rows; row++) {
        io->y[row] = mcu_dc_requant_s8(fc_dense_tail(w, io->x, 0u, n->fan_in, n->in_zp, mcu_dc_bias(n, row)), n);
        w += n->fan_in;
    }
#endif
    return MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_fc_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    switch (n->encoding) {
    case MCU_DC_ENC_HUFFMAN_SPARSE:
        return mcu_dc_fc_huff_s8(n, io);
    case MCU_DC_ENC_HUFFMAN_JOINT:
        return mcu_dc_fc_joint_s8(n, io);
    case MCU_DC_ENC_COLUMN_SPARSE:
        return mcu_dc_fc_colsparse_s8(n, io);
    case MCU_DC_ENC_TERNARY:
        return mcu_dc_fc_ternary_s8(n, io);
    case MCU_DC_ENC_BINARY:
        return mcu_dc_fc_binary_s8(n, io);
    default:
        return mcu_dc_fc_dense_s8(n, io);
    }
}

mcu_dc_status_t mcu_dc_fc_s8_ref(const mcu_dc_node_t *n, const mcu_dc_io_t *io)
{
    mcu_dc_wreader_t r;
    uint32_t row = 0u, er, ec, acc;
    int32_t w;
    int rc;
    mcu_dc_wreader_init(&r, n, 0);
    acc = mcu_dc_bias(n, 0u);
    while ((rc = mcu_dc_wreader_next(&r, &er, &ec, &w)) > 0) {
        while (row < er) { /* rows before the entry's are complete */
            io->y[row] = mcu_dc_requant_s8(acc, n);
            row++;
            acc = mcu_dc_bias(n, row);
        }
        acc += (uint32_t)(w * ((int32_t)io->x[ec] - n->in_zp));
    }
    if (rc < 0) return MCU_DC_ERR_CORRUPT_STREAM;
    io->y[row] = mcu_dc_requant_s8(acc, n);
    for (row = row + 1u; row < n->rows; row++) io->y[row] = mcu_dc_requant_s8(mcu_dc_bias(n, row), n);
    return MCU_DC_OK;
}

static void fc_derive(mcu_dc_node_t *n)
{
    const uint64_t fan_in = (uint64_t)n->in_c * n->in_h * n->in_w;
    n->rows = n->out_c;
    n->fan_in = fan_in > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)fan_in;
}

static mcu_dc_status_t fc_validate(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t blob_bytes)
{
    if (n->out_h != 1u || n->out_w != 1u) return MCU_DC_ERR_SHAPE; /* output (rows, 1, 1) */
    return mcu_dc_weights_validate(n, blob, blob_bytes);
}

static uint64_t fc_scratch_size(const mcu_dc_node_t *n)
{
    if (n->encoding == MCU_DC_ENC_COLUMN_SPARSE) return 4u * (uint64_t)n->rows; /* int32 per row */
    if (n->encoding == MCU_DC_ENC_HUFFMAN_JOINT && n->table_bits > 0u && n->table_bits <= MCU_DC_MAX_TABLE_BITS) {
        return 2u << n->table_bits; /* the decode table, u16 entries */
    }
    return 0u;
}

const mcu_dc_op_impl_t mcu_dc_op_fc = {
    1u, fc_derive, fc_validate, fc_scratch_size, mcu_dc_fc_s8, mcu_dc_fc_s8_ref,
};
