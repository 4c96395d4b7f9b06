/*
 * Canonical Huffman tables (docs/format.md, "Huffman section"): parsing with full
 * validation, the bit-serial reference decoder and the canonical walk the fast LUT
 * decoder falls back to for codes longer than its table.
 */
#include <string.h>

#include "mcu_dc_internal.h"

const uint16_t mcu_dc_zero_lut[2] = {0u, 0u};

/* bytes [off, off + len) lie inside a blob of size bb (no overflow) */
static int in_blob(uint32_t off, uint32_t len, uint32_t bb) { return off <= bb && len <= bb - off; }

void mcu_dc_huff_view(const uint8_t *sec, uint32_t alphabet, mcu_dc_huff_t *h)
{
    uint32_t p, data_bytes;
    h->max_len = sec[MCU_DC_HUF_MAX_LEN];
    h->lut_bits = sec[MCU_DC_HUF_LUT_BITS];
    h->n_symbols = mcu_dc_rd16(sec + MCU_DC_HUF_N_SYMBOLS);
    h->n_bits = mcu_dc_rd32(sec + MCU_DC_HUF_N_BITS);
    h->compact = h->lut_bits == MCU_DC_HUF_COMPACT;
    p = MCU_DC_HUF_BYTES;
    h->counts = sec + p;
    p += 2u * h->max_len;
    if (h->compact) { /* bitmap over the alphabet, then a nibble per coded symbol */
        h->lut_bits = 0u;
        h->symbols = 0;
        h->bitmap = sec + p;
        p += (alphabet + 7u) / 8u;
        h->lens = sec + p;
        p = mcu_dc_align4(p + (h->n_symbols + 1u) / 2u);
    } else {
        h->bitmap = 0;
        h->lens = 0;
        h->symbols = sec + p;
        p = mcu_dc_align4(p + 2u * h->n_symbols);
    }
    if (h->lut_bits > 0u) {
        h->lut = (const uint16_t *)(const void *)(sec + p);
        p = mcu_dc_align4(p + (2u << h->lut_bits));
    } else {
        h->lut = 0;
    }
    h->data = sec + p;
    data_bytes = (h->n_bits >> 3) + ((h->n_bits & 7u) != 0u);
    h->data_len = mcu_dc_align4(data_bytes) + MCU_DC_STREAM_SLACK_BYTES;
}

static MCU_DC_ALWAYS_INLINE uint32_t compact_len(const mcu_dc_huff_t *h, uint32_t j) { return (h->lens[j >> 1] >> ((j & 1u) * 4u)) & 15u; }

static MCU_DC_ALWAYS_INLINE uint32_t has_code(const mcu_dc_huff_t *h, uint32_t s) { return (h->bitmap[s >> 3] >> (s & 7u)) & 1u; }

uint32_t mcu_dc_huff_symbol(const mcu_dc_huff_t *h, uint32_t i)
{
    uint32_t len, s, j = 0u;
    if (!h->compact) return mcu_dc_rd16(h->symbols + 2u * i);
    for (len = 1u; len <= h->max_len; len++) { /* the length of code number i, and its rank there */
        uint32_t c = mcu_dc_rd16(h->counts + 2u * (len - 1u));
        if (i < c) break;
        i -= c;
    }
    for (s = 0u; j < h->n_symbols; s++) { /* validated: n_symbols bits set, below the alphabet */
        if (!has_code(h, s)) continue;
        if (compact_len(h, j++) == len) {
            if (i == 0u) return s;
            i--;
        }
    }
    return 0u;
}

/* Trailing zero bits of x != 0: rbit + clz where the core has them (ARMv7-M, hosts). */
#if (defined(__GNUC__) || defined(__clang__)) && (!defined(__ARM_ARCH) || __ARM_ARCH >= 7)
#define HUFF_CTZ(x) ((uint32_t)__builtin_ctz(x))
#else
static uint32_t huff_ctz(uint32_t x)
{
    uint32_t n = 0u;
    while ((x & 1u) == 0u) {
        x >>= 1;
        n++;
    }
    return n;
}
#define HUFF_CTZ(x) huff_ctz(x)
#endif

/* lut[p .. end) = v; the span is even and p 4-aligned (codes shorter than the table). Where
 * unaligned 32-bit stores are allowed (so memcpy of 4 bytes is one str whatever gcc knows of
 * p's alignment: ARMv7-M, hosts), two entries per store, eight per iteration; elsewhere
 * (Cortex-M0) one 16-bit store each. */
#if defined(__ARM_FEATURE_UNALIGNED) || !defined(__ARM_ARCH)
static MCU_DC_ALWAYS_INLINE void fill_pairs(uint16_t *p, const uint16_t *end, uint16_t v)
{
    const uint32_t v2 = (uint32_t)v | ((uint32_t)v << 16);
    while (end - p >= 8) {
        memcpy(p, &v2, 4u);
        memcpy(p + 2, &v2, 4u);
        memcpy(p + 4, &v2, 4u);
        memcpy(p + 6, &v2, 4u);
        p += 8;
    }
    while (p < end) {
        memcpy(p, &v2, 4u);
        p += 2;
    }
}
#else
static MCU_DC_ALWAYS_INLINE void fill_pairs(uint16_t *p, const uint16_t *end, uint16_t v)
{
    while (p < end) {
        p[0] = v;
        p[1] = v;
        p += 2;
    }
}
#endif

int mcu_dc_huff_build_table(const mcu_dc_huff_t *h, uint16_t *lut, uint32_t bits)
{
    uint32_t next[MCU_DC_MAX_HUFFMAN_LEN + 1u];
    uint32_t len, first = 0u, i, s = 0u, word = 0u;
    uint16_t *const lut_end = lut + (1u << bits);
    uint16_t *at;
    for (len = 1u; len <= h->max_len; len++) { /* first canonical code of each length, as a slot */
        next[len] = first << (bits - len);
        first = (first + mcu_dc_rd16(h->counts + 2u * (len - 1u))) << 1;
    }
    for (i = 0u; i < h->n_symbols; i++) { /* ascending symbols: within a length, canonical order */
        uint32_t sym, span, tz;
        if (word == 0u) { /* validated: a set bit follows; s is on a byte boundary here */
            s = (s + 7u) & ~7u;
            while ((word = h->bitmap[s >> 3]) == 0u) s += 8u;
        }
        tz = HUFF_CTZ(word);
        sym = s + tz;
        s = sym + 1u;
        word >>= tz + 1u;
        len = compact_len(h, i);
        span = 1u << (bits - len);
        at = lut + next[len];
        next[len] += span;
        if (span == 1u) {
            *at = (uint16_t)((len << 12) | sym);
        } else {
            fill_pairs(at, at + span, (uint16_t)((len << 12) | sym));
        }
    }
    /* canonical codes fill a prefix of the table; the rest are no code */
    at = lut + (h->max_len > 0u ? next[h->max_len] : 0u);
    if (at == lut_end) return 1;
    while (at < lut_end) *at++ = 0u;
    return 0;
}

mcu_dc_status_t mcu_dc_huff_parse(const uint8_t *blob, uint32_t blob_bytes, uint32_t off, uint32_t alphabet,
                                  mcu_dc_huff_t *h)
{
    uint32_t p, i, sum = 0u, max_len, lut_bits, n_symbols, n_bits;
    int32_t left = 1;
    if (off == 0u || (off & 3u) != 0u || !in_blob(off, MCU_DC_HUF_BYTES, blob_bytes)) {
        return MCU_DC_ERR_OFFSET;
    }
    max_len = blob[off + MCU_DC_HUF_MAX_LEN];
    lut_bits = blob[off + MCU_DC_HUF_LUT_BITS];
    n_symbols = mcu_dc_rd16(blob + off + MCU_DC_HUF_N_SYMBOLS);
    n_bits = mcu_dc_rd32(blob + off + MCU_DC_HUF_N_BITS);
    if (lut_bits == MCU_DC_HUF_COMPACT) { /* codes resolve in a table of at most MAX_TABLE_BITS */
        if (max_len > MCU_DC_MAX_TABLE_BITS || alphabet > 4096u) return MCU_DC_ERR_HUFFMAN_TABLE;
        p = mcu_dc_align4(MCU_DC_HUF_BYTES + 2u * max_len + (alphabet + 7u) / 8u + (n_symbols + 1u) / 2u);
    } else {
        if (max_len > MCU_DC_MAX_HUFFMAN_LEN || lut_bits > MCU_DC_MAX_LUT_BITS || lut_bits > max_len) {
            return MCU_DC_ERR_HUFFMAN_TABLE;
        }
        /* every part up to the lookup table, then the coded data, must lie inside the blob */
        p = mcu_dc_align4(MCU_DC_HUF_BYTES + 2u * max_len + 2u * n_symbols);
        if (lut_bits > 0u) p = mcu_dc_align4(p + (2u << lut_bits));
    }
    if (n_bits > 0x7FFFFF00u) return MCU_DC_ERR_OFFSET;
    if (!in_blob(off, p, blob_bytes)) return MCU_DC_ERR_OFFSET;
    mcu_dc_huff_view(blob + off, alphabet, h);
    if (!in_blob(off + p, h->data_len, blob_bytes)) return MCU_DC_ERR_OFFSET;

    /* counts: sum to n_symbols, Kraft sum <= 1 */
    for (i = 0u; i < h->max_len; i++) {
        uint32_t c = mcu_dc_rd16(h->counts + 2u * i);
        sum += c;
        left = left * 2 - (int32_t)c;
        if (left < 0) return MCU_DC_ERR_HUFFMAN_TABLE;
    }
    if (sum != h->n_symbols) return MCU_DC_ERR_HUFFMAN_TABLE;
    if (h->max_len == 0u && h->n_bits != 0u) return MCU_DC_ERR_HUFFMAN_TABLE;
    if (h->compact) { /* n_symbols bits set, none past the alphabet; their lengths make the counts */
        uint32_t per_len[MCU_DC_MAX_HUFFMAN_LEN + 1u] = {0u}, j = 0u, s;
        for (s = 0u; s < ((alphabet + 7u) & ~7u); s++) {
            if (!has_code(h, s)) continue;
            if (s >= alphabet || j >= h->n_symbols) return MCU_DC_ERR_HUFFMAN_TABLE;
            per_len[compact_len(h, j++)]++;
        }
        if (j != h->n_symbols || per_len[0] != 0u) return MCU_DC_ERR_HUFFMAN_TABLE;
        for (i = 0u; i < h->max_len; i++) {
            if (per_len[i + 1u] != mcu_dc_rd16(h->counts + 2u * i)) return MCU_DC_ERR_HUFFMAN_TABLE;
        }
    }
    for (i = 0u; i < h->n_symbols && !h->compact; i++) {
        uint32_t s = mcu_dc_rd16(h->symbols + 2u * i);
        if (s >= alphabet || s > 0xFFFu) return MCU_DC_ERR_HUFFMAN_TABLE;
    }
    /* the lookup table must agree with the canonical code, entry for entry */
    if (h->lut_bits > 0u) {
        uint32_t n = 1u << h->lut_bits, v;
        for (v = 0u; v < n; v++) {
            uint32_t want = mcu_dc_huff_decode_buf(h, v << (32u - h->lut_bits));
            if ((want >> 12) > h->lut_bits) want = 0u;
            if (h->lut[v] != want) return MCU_DC_ERR_HUFFMAN_TABLE;
        }
    }
    return MCU_DC_OK;
}

int32_t mcu_dc_huff_decode_ref(const mcu_dc_huff_t *h, uint32_t *bitpos)
{
    int32_t code = 0, first = 0, index = 0;
    uint32_t len;
    for (len = 1u; len <= h->max_len; len++) {
        uint32_t pos = *bitpos;
        int32_t count;
        if (pos >= h->n_bits) return -1;
        code |= (int32_t)((h->data[pos >> 3] >> (7u - (pos & 7u))) & 1u);
        *bitpos = pos + 1u;
        count = (int32_t)mcu_dc_rd16(h->counts + 2u * (len - 1u));
        if (code - first < count) return (int32_t)mcu_dc_huff_symbol(h, (uint32_t)(index + code - first));
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return -1;
}

uint32_t mcu_dc_huff_decode_buf(const mcu_dc_huff_t *h, uint32_t buf)
{
    int32_t code = 0, first = 0, index = 0;
    uint32_t len;
    for (len = 1u; len <= h->max_len; len++) {
        int32_t count = (int32_t)mcu_dc_rd16(h->counts + 2u * (len - 1u));
        code |= (int32_t)((buf >> (32u - len)) & 1u);
        if (code - first < count) {
            return (len << 12) | mcu_dc_huff_symbol(h, (uint32_t)(index + code - first));
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return 0u;
}
