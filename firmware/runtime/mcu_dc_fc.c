/*
 * Fully-connected kernels (docs/format.md, "Numbers" and "The sparse stream"):
 *   mcu_dc_fc_huff_s8      computes straight from the two Huffman streams (relative
 *                          indices and weight symbols), decoded on the fly with 32-bit bit
 *                          buffers and lookup tables; weights are never unpacked to RAM.
 *   mcu_dc_fc_huff_s8_ref  the same with the bit-serial reference decoder, plainly written.
 *   mcu_dc_fc_dense_s8     the DENSE_INT8 baseline: every weight stored as int8.
 * Accumulators are int32 carried in uint32_t (wrapping, so never undefined behaviour).
 */
#include "mcu_dc_internal.h"

/* Entries decoded per pass: the weight-symbol stream is decoded a chunk at a time into
 * int8 weights on the stack (filler -> 0), then the relative-index stream is decoded
 * fused with the multiply-accumulate. Each loop keeps its one bit reader in registers
 * (Cortex-M has 13; two readers would spill); codes longer than the lookup table and
 * row crossings are handled out of line. Measured on Cortex-M4 (QEMU, -Os): 39 to 46
 * instructions per entry, both Huffman decodes included (see README.md). */
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

mcu_dc_status_t mcu_dc_fc_huff_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y)
{
    uint32_t row = 0u;
    if (L->n_entries > 0u) {
        mcu_dc_huff_t hs, hr;
        mcu_dc_bitreader_t bs;
        fc_ctx_t c;
        uint32_t left = L->n_entries;
        int8_t w[MCU_DC_FC_CHUNK];
        int8_t cbz[MCU_DC_MAX_CODEBOOK + 1u]; /* the codebook (k <= 256 bytes) and a 0 for the filler */
        for (left = 0u; left < L->codebook_len; left++) cbz[left] = L->codebook[left];
        cbz[L->codebook_len] = 0;
        left = L->n_entries;
        c.x_end = x + L->fan_in;
        c.col = -(int32_t)L->fan_in - 1; /* just before the first input */
        c.acc = mcu_dc_bias(L, 0u);
        c.zp = L->in_zp;
        mcu_dc_huff_view(L->weights, &hs);
        mcu_dc_huff_view(L->index, &hr);
        mcu_dc_bitreader_init(&bs, &hs);
        mcu_dc_bitreader_init(&c.rd, &hr);
        while (left > 0u) {
            const uint32_t n = left < MCU_DC_FC_CHUNK ? left : MCU_DC_FC_CHUNK;
            if (fc_weights(&bs, cbz, w, n) != MCU_DC_OK) return MCU_DC_ERR_CORRUPT_STREAM;
            left -= n;
            c.w_end = w + n;
            c.j = -(int32_t)n;
            for (;;) {
                int ev = fc_macs(&c);
                if (ev == FC_DONE) break;
                if (ev == FC_CORRUPT) return MCU_DC_ERR_CORRUPT_STREAM;
                while (c.col >= 0) { /* row crossing */
                    if (row + 1u >= L->rows) return MCU_DC_ERR_CORRUPT_STREAM;
                    y[row] = mcu_dc_requant_out(c.acc, L);
                    row++;
                    c.acc = mcu_dc_bias(L, row);
                    c.col -= (int32_t)L->fan_in;
                }
                c.acc += (uint32_t)((int32_t)c.w_end[c.j] * ((int32_t)c.x_end[c.col] - c.zp));
                if (++c.j == 0) break;
            }
        }
        if (mcu_dc_bitreader_used(&c.rd, &hr) > hr.n_bits || mcu_dc_bitreader_used(&bs, &hs) > hs.n_bits) {
            return MCU_DC_ERR_CORRUPT_STREAM;
        }
        y[row++] = mcu_dc_requant_out(c.acc, L);
    }
    for (; row < L->rows; row++) y[row] = mcu_dc_requant_out(mcu_dc_bias(L, row), L); /* empty rows */
    return MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_fc_huff_s8_ref(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y)
{
    uint32_t row, i, pos_s = 0u, pos_r = 0u;
    uint32_t position = 0u; /* flat position (row-major) just after the previous entry */
    mcu_dc_huff_t hs, hr;
    if (L->n_entries > 0u) {
        mcu_dc_huff_view(L->weights, &hs);
        mcu_dc_huff_view(L->index, &hr);
    }
    row = 0u;
    {
        uint32_t acc = mcu_dc_bias(L, 0u);
        for (i = 0u; i < L->n_entries; i++) {
            int32_t r = mcu_dc_huff_decode_ref(&hr, &pos_r);
            int32_t s = mcu_dc_huff_decode_ref(&hs, &pos_s);
            uint32_t entry_row, entry_col;
            if (r < 0 || s < 0) return MCU_DC_ERR_CORRUPT_STREAM;
            position += (uint32_t)r; /* r zeros skipped */
            entry_row = position / L->fan_in;
            entry_col = position % L->fan_in;
            position += 1u;
            if (entry_row >= L->rows) return MCU_DC_ERR_CORRUPT_STREAM;
            while (row < entry_row) {
                y[row] = mcu_dc_requant_s8(acc, L);
                row++;
                acc = mcu_dc_bias(L, row);
            }
            if ((uint32_t)s < L->codebook_len) {
                acc += (uint32_t)((int32_t)L->codebook[s] * ((int32_t)x[entry_col] - L->in_zp));
            }
        }
        y[row] = mcu_dc_requant_s8(acc, L);
        for (row = row + 1u; row < L->rows; row++) y[row] = mcu_dc_requant_s8(mcu_dc_bias(L, row), L);
    }
    return MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_fc_dense_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y)
{
    const int8_t *w = (const int8_t *)(const void *)L->weights;
    const int32_t zp = L->in_zp;
    uint32_t row, j;
    for (row = 0u; row < L->rows; row++) {
        uint32_t acc = mcu_dc_bias(L, row);
        for (j = 0u; j < L->fan_in; j++) acc += (uint32_t)((int32_t)w[j] * ((int32_t)x[j] - zp));
        y[row] = mcu_dc_requant_s8(acc, L);
        w += L->fan_in;
    }
    return MCU_DC_OK;
}
