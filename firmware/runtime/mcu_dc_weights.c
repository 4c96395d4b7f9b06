/*
 * The weight encodings behind one interface (docs/format.md, "Weights"):
 *   mcu_dc_wreader_*         yields the kept weights of a weight op as (row, col, w) in
 *                            row-major order, from DENSE_INT8 bytes, from the two
 *                            HUFFMAN_SPARSE streams or the one HUFFMAN_JOINT stream
 *                            (bit-serial reference decode, or the LUT decoder with
 *                            fast != 0) or from the COLUMN_SPARSE stream
 *                            (one sweep per row), or from the TERNARY / BINARY
 *                            bit-planes (every position tested, plane by plane);
 *   mcu_dc_weights_validate  the checks every weight op (CONV2D, DEPTHWISE_CONV2D, FC)
 *                            shares: encoding, sizes, requantization, sections, tables.
 * A new encoding is one more case here; the ops' reference kernels need no change.
 */
#include "mcu_dc_internal.h"

void mcu_dc_wreader_init(mcu_dc_wreader_t *r, const mcu_dc_node_t *n, int fast)
{
    r->n = n;
    r->fast = fast ? 1u : 0u;
    r->row = 0u;
    r->col = 0u;
    r->pos_s = 0u;
    r->pos_r = 0u;
    r->dense = 0;
    r->cs = 0;
    r->bp = 0;
    if (n->encoding == MCU_DC_ENC_TERNARY || n->encoding == MCU_DC_ENC_BINARY) {
        r->bp = mcu_dc_bp_base(n);
        r->left = n->rows * n->fan_in; /* positions; validated: < 2^31 */
        return;
    }
    if (n->encoding == MCU_DC_ENC_COLUMN_SPARSE) {
        r->cs = mcu_dc_colsparse_stream(n);
        r->left = n->n_entries;
        return;
    }
    if (n->encoding == MCU_DC_ENC_DENSE_INT8) {
        r->dense = (const int8_t *)(const void *)n->weights;
        r->left = n->rows * n->fan_in; /* validated: < 2^31 */
        return;
    }
    r->left = n->n_entries;
    r->joint = n->encoding == MCU_DC_ENC_HUFFMAN_JOINT;
    if (r->left > 0u) {
        mcu_dc_huff_view(n->weights, (n->codebook_len + 1u) << n->index_bits, &r->hs);
        if (r->hs.compact) r->fast = 0u; /* no symbol list for the canonical walk: the reference decoder */
        if (r->fast) mcu_dc_bitreader_init(&r->bs, &r->hs);
        if (!r->joint) {
            mcu_dc_huff_view(n->index, 0u, &r->hr);
            if (r->fast) mcu_dc_bitreader_init(&r->br, &r->hr);
        }
    }
}

/* The next Huffman entry's (run, symbol) with the chosen decoder; 0, or -1 if corrupt. */
static int huff_entry(mcu_dc_wreader_t *r, uint32_t *run, uint32_t *sym)
{
    if (r->joint) { /* one code: symbol << index_bits | run */
        uint32_t e;
        if (r->fast) {
            MCU_DC_HUFF_NEXT(e, r->bs, &r->hs, corrupt);
        } else {
            int32_t a = mcu_dc_huff_decode_ref(&r->hs, &r->pos_s);
            if (a < 0) return -1;
            e = (uint32_t)a;
        }
        *run = e & ((1u << r->n->index_bits) - 1u);
        *sym = e >> r->n->index_bits;
        return 0;
    }
    if (r->fast) {
        uint32_t a, b;
        MCU_DC_HUFF_NEXT(a, r->br, &r->hr, corrupt);
        MCU_DC_HUFF_NEXT(b, r->bs, &r->hs, corrupt);
        *run = a;
        *sym = b;
        return 0;
    } else {
        int32_t a = mcu_dc_huff_decode_ref(&r->hr, &r->pos_r);
        int32_t b = mcu_dc_huff_decode_ref(&r->hs, &r->pos_s);
        if (a < 0 || b < 0) return -1;
        *run = (uint32_t)a;
        *sym = (uint32_t)b;
        return 0;
    }
corrupt:
    return -1;
}

/* COLUMN_SPARSE in row-major order: for row r->row, the columns from r->col on, each
 * walked from its count (at byte r->pos_s) until the row is found or passed. */
static int colsparse_next(mcu_dc_wreader_t *r, uint32_t *row, uint32_t *col, int32_t *w)
{
    const mcu_dc_node_t *n = r->n;
    while (r->left > 0u && r->row < n->rows) {
        while (r->col < n->fan_in) {
            const uint8_t *p = r->cs + r->pos_s;
            const uint32_t count = mcu_dc_colsparse_count(&p);
            const uint8_t *const end = p + count;
            const uint32_t c = r->col;
            uint32_t at = 0u; /* row + 1 */
            r->pos_s = (uint32_t)(end - r->cs);
            r->col++;
            for (; p < end; p++) {
                const uint32_t h = *p >> 4, g = *p & 15u;
                if (h == 0u) {
                    at += MCU_DC_COLSPARSE_SKIP * (g + 1u);
                    continue;
                }
                at += h;
                if (at - 1u == r->row) {
                    *row = r->row;
                    *col = c;
                    *w = n->codebook[g];
                    r->left--;
                    return 1;
                }
                if (at - 1u > r->row) break;
            }
        }
        r->row++;
        r->col = 0u;
        r->pos_s = 0u;
    }
    return 0;
}

/* TERNARY / BINARY in row-major order: every position, its bit in each plane. */
static int bitplane_next(mcu_dc_wreader_t *r, uint32_t *row, uint32_t *col, int32_t *w)
{
    const mcu_dc_node_t *n = r->n;
    const uint32_t wpr = mcu_dc_bp_words(n->fan_in);
    const uint32_t plane_words = n->rows * wpr; /* validated: the section holds the planes */
    while (r->left > 0u) {
        const uint32_t rw = r->row, c = r->col;
        const uint32_t word = rw * wpr + (c >> 5), bit = 1u << (c & 31u);
        r->left--;
        if (++r->col == n->fan_in) {
            r->col = 0u;
            r->row++;
        }
        *row = rw;
        *col = c;
        if (n->encoding == MCU_DC_ENC_BINARY) { /* every weight kept: set = codebook[1], clear = codebook[0] */
            *w = n->codebook[(r->bp[word] & bit) != 0u ? 1u : 0u];
            return 1;
        }
        if ((r->bp[word] & bit) != 0u) {
            *w = n->codebook[0];
            return 1;
        }
        if (n->codebook_len > 1u && (r->bp[plane_words + word] & bit) != 0u) {
            *w = n->codebook[1];
            return 1;
        }
    }
    return 0;
}

int mcu_dc_wreader_next(mcu_dc_wreader_t *r, uint32_t *row, uint32_t *col, int32_t *w)
{
    const mcu_dc_node_t *n = r->n;
    const uint32_t fan_in = n->fan_in;
    if (r->bp != 0) return bitplane_next(r, row, col, w);
    if (r->cs != 0) return colsparse_next(r, row, col, w);
    if (r->dense != 0) {
        while (r->left > 0u) {
            const int32_t v = *r->dense++;
            const uint32_t c = r->col, rw = r->row;
            r->left--;
            if (++r->col == fan_in) {
                r->col = 0u;
                r->row++;
            }
            if (v != 0) {
                *row = rw;
                *col = c;
                *w = v;
                return 1;
            }
        }
        return 0;
    }
    while (r->left > 0u) {
        uint32_t run, sym;
        r->left--;
        if (huff_entry(r, &run, &sym) != 0) return -1;
        r->col += run; /* run zeros skipped (run <= 255) */
        while (r->col >= fan_in) {
            r->col -= fan_in;
            r->row++;
        }
        if (r->row >= n->rows) return -1;
        *row = r->row;
        *col = r->col;
        r->col++; /* the next entry starts after this one */
        if (sym < n->codebook_len) { /* sym == codebook_len is the filler: a position, no weight */
            *w = n->codebook[sym];
            return 1;
        }
    }
    if (r->fast && n->n_entries > 0u &&
        ((!r->joint && mcu_dc_bitreader_used(&r->br, &r->hr) > r->hr.n_bits) ||
         mcu_dc_bitreader_used(&r->bs, &r->hs) > r->hs.n_bits)) {
        return -1;
    }
    return 0;
}

/* The whole COLUMN_SPARSE stream, walked once: counts inside the stream, every row inside
 * the layer, every codebook index inside the codebook, every skip followed by an entry of
 * its column, the kept count n_entries, and the stream ending exactly at its length. The
 * fast kernel then runs without checks. */
static mcu_dc_status_t colsparse_validate(const mcu_dc_node_t *n, uint32_t bb)
{
    const uint8_t *s, *p, *end;
    uint32_t n_bytes, j, kept = 0u;
    if (n->op != MCU_DC_OP_FC) return MCU_DC_ERR_UNKNOWN_ENCODING; /* an FC encoding */
    if (n->codebook_len < 1u || n->codebook_len > 16u || n->index_bits != 0u || n->index_off != 0u) {
        return MCU_DC_ERR_PARAM;
    }
    if (!mcu_dc_section_ok(n->codebook_off, n->codebook_len, bb)) return MCU_DC_ERR_OFFSET;
    if (!mcu_dc_section_ok(n->weights_off, 4u, bb)) return MCU_DC_ERR_OFFSET;
    n_bytes = mcu_dc_rd32(n->weights);
    if (!mcu_dc_section_ok(n->weights_off, 4u + (uint64_t)n_bytes, bb)) return MCU_DC_ERR_OFFSET;
    s = mcu_dc_colsparse_stream(n);
    end = s + n_bytes;
    p = s;
    for (j = 0u; j < n->fan_in; j++) {
        uint64_t count = 0u; /* 64 bits: many 255 bytes cannot wrap it */
        uint32_t b, row = 0u; /* row + 1 */
        do {
            if (p >= end) return MCU_DC_ERR_CORRUPT_STREAM;
            b = *p++;
            count += b;
        } while (b == 255u);
        if (count > (uint64_t)(end - p)) return MCU_DC_ERR_CORRUPT_STREAM; /* so the kernels' u32 count is exact */
        for (b = 0u; b < count; b++, p++) {
            const uint32_t h = *p >> 4, g = *p & 15u;
            row += h == 0u ? MCU_DC_COLSPARSE_SKIP * (g + 1u) : h; /* < rows + 241: no wrap */
            if (row > n->rows) return MCU_DC_ERR_CORRUPT_STREAM;
            if (h != 0u) {
                if (g >= n->codebook_len) return MCU_DC_ERR_CORRUPT_STREAM;
                kept++;
            }
        }
        if (count > 0u && (p[-1] >> 4) == 0u) return MCU_DC_ERR_CORRUPT_STREAM; /* a skip ends the column */
    }
    if (p != end || kept != n->n_entries) return MCU_DC_ERR_CORRUPT_STREAM;
    return MCU_DC_OK;
}

/* Population count of a word (no instruction on Cortex-M; validation only). */
static uint32_t popcount32(uint32_t m)
{
    m = m - ((m >> 1) & 0x55555555u);
    m = (m & 0x33333333u) + ((m >> 2) & 0x33333333u);
    m = (m + (m >> 4)) & 0x0F0F0F0Fu;
    return (m * 0x01010101u) >> 24;
}

/* TERNARY / BINARY: k in 1..2, no index stream, the codebook and the planes inside the
 * blob (sizes in 64 bits), no bit past fan_in, TERNARY planes disjoint with n_entries set
 * bits in all, BINARY n_entries = rows * fan_in and (k = 1) no set bit. */
static mcu_dc_status_t bitplane_validate(const mcu_dc_node_t *n, uint32_t bb)
{
    const uint32_t wpr = mcu_dc_bp_words(n->fan_in);
    const uint32_t tail = n->fan_in & 31u;
    const uint32_t pad_mask = tail != 0u ? ~((1u << tail) - 1u) : 0u; /* bits of the last word past fan_in */
    const uint64_t plane_words = (uint64_t)n->rows * wpr;
    const uint32_t *p;
    uint64_t kept = 0u, i;
    if (n->codebook_len < 1u || n->codebook_len > 2u || n->index_bits != 0u || n->index_off != 0u) {
        return MCU_DC_ERR_PARAM;
    }
    if (!mcu_dc_section_ok(n->codebook_off, n->codebook_len, bb)) return MCU_DC_ERR_OFFSET;
    if (!mcu_dc_section_ok(n->weights_off, 4u * plane_words * mcu_dc_bp_planes(n), bb)) return MCU_DC_ERR_OFFSET;
    if (n->encoding == MCU_DC_ENC_BINARY && n->n_entries != (uint64_t)n->rows * n->fan_in) return MCU_DC_ERR_PARAM;
    p = mcu_dc_bp_base(n);
    for (i = 0u; i < plane_words; i++) {
        const uint32_t last = (uint32_t)(i % wpr) == wpr - 1u;
        const uint32_t a = p[i];
        const uint32_t b = (n->encoding == MCU_DC_ENC_TERNARY && n->codebook_len == 2u) ? p[plane_words + i] : 0u;
        if (last && ((a | b) & pad_mask) != 0u) return MCU_DC_ERR_CORRUPT_STREAM; /* a weight past fan_in */
        if ((a & b) != 0u) return MCU_DC_ERR_CORRUPT_STREAM;                      /* in both planes */
        if (n->encoding == MCU_DC_ENC_BINARY && n->codebook_len == 1u && a != 0u) return MCU_DC_ERR_CORRUPT_STREAM;
        kept += popcount32(a) + popcount32(b);
    }
    if (n->encoding == MCU_DC_ENC_TERNARY && kept != n->n_entries) return MCU_DC_ERR_CORRUPT_STREAM;
    return MCU_DC_OK;
}

/* A Huffman section of a weight op over ``alphabet`` symbols: parsed and checked when the op has
 * entries or names one, and not empty when it has entries. */
static mcu_dc_status_t huff_section_validate(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t bb, uint32_t off,
                                             uint32_t alphabet)
{
    mcu_dc_huff_t h;
    mcu_dc_status_t st;
    if (n->n_entries == 0u && off == 0u) return MCU_DC_OK;
    st = mcu_dc_huff_parse(blob, bb, off, alphabet, &h);
    if (st != MCU_DC_OK) return st;
    /* a compact section goes with a decode table (table_bits) covering its longest code */
    if (h.compact != (n->table_bits != 0u) || (h.compact && h.max_len > n->table_bits)) return MCU_DC_ERR_HUFFMAN_TABLE;
    return (n->n_entries > 0u && h.n_symbols == 0u) ? MCU_DC_ERR_HUFFMAN_TABLE : MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_weights_validate(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t bb)
{
    const uint64_t total = (uint64_t)n->rows * n->fan_in;
    mcu_dc_status_t st;
    if (n->encoding != MCU_DC_ENC_DENSE_INT8 && n->encoding != MCU_DC_ENC_HUFFMAN_SPARSE &&
        n->encoding != MCU_DC_ENC_COLUMN_SPARSE && n->encoding != MCU_DC_ENC_TERNARY &&
        n->encoding != MCU_DC_ENC_BINARY && n->encoding != MCU_DC_ENC_HUFFMAN_JOINT) {
        return MCU_DC_ERR_UNKNOWN_ENCODING;
    }
    if (n->rows == 0u || n->fan_in == 0u || total > 0x7FFFFFFFu) return MCU_DC_ERR_SHAPE;
    /* a decode table in scratch: HUFFMAN_JOINT on an FC or a gather CONV2D only */
    if (n->table_bits != 0u && (n->table_bits > MCU_DC_MAX_TABLE_BITS || n->encoding != MCU_DC_ENC_HUFFMAN_JOINT ||
                                !(n->op == MCU_DC_OP_FC || (n->op == MCU_DC_OP_CONV2D && n->gather != 0u)))) {
        return MCU_DC_ERR_PARAM;
    }
    if (n->gather != 0u && n->op != MCU_DC_OP_CONV2D) return MCU_DC_ERR_PARAM; /* the gather kernel: CONV2D only */
    if (n->shift < 1u || n->shift > 62u || n->multiplier < 0) return MCU_DC_ERR_PARAM;
    if (n->act_min > n->act_max) return MCU_DC_ERR_PARAM;
    if (!mcu_dc_section_ok(n->bias_off, 4u * (uint64_t)n->rows, bb)) return MCU_DC_ERR_OFFSET;
    if (n->encoding == MCU_DC_ENC_COLUMN_SPARSE) return colsparse_validate(n, bb);
    if (n->encoding == MCU_DC_ENC_TERNARY || n->encoding == MCU_DC_ENC_BINARY) return bitplane_validate(n, bb);
    if (n->encoding == MCU_DC_ENC_DENSE_INT8) {
        if (n->n_entries != total) return MCU_DC_ERR_PARAM;
        if (!mcu_dc_section_ok(n->weights_off, total, bb)) return MCU_DC_ERR_OFFSET;
        return MCU_DC_OK;
    }
    if (n->codebook_len < 1u || n->codebook_len > MCU_DC_MAX_CODEBOOK) return MCU_DC_ERR_PARAM;
    if (n->index_bits < 1u || n->index_bits > MCU_DC_MAX_INDEX_BITS) return MCU_DC_ERR_PARAM;
    if (n->n_entries > total) return MCU_DC_ERR_PARAM;
    if (!mcu_dc_section_ok(n->codebook_off, n->codebook_len, bb)) return MCU_DC_ERR_OFFSET;
    if (n->encoding == MCU_DC_ENC_HUFFMAN_JOINT) { /* one section: alphabet (k + 1) << b, 12-bit symbols */
        const uint32_t alphabet = (n->codebook_len + 1u) << n->index_bits;
        if (alphabet > 4096u || n->index_off != 0u) return MCU_DC_ERR_PARAM;
        return huff_section_validate(n, blob, bb, n->weights_off, alphabet);
    }
    st = huff_section_validate(n, blob, bb, n->weights_off, n->codebook_len + 1u);
    if (st != MCU_DC_OK) return st;
    return huff_section_validate(n, blob, bb, n->index_off, 1u << n->index_bits);
}
