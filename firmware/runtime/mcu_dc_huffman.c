/*
 * Canonical Huffman tables (docs/format.md, "Huffman section"): parsing with full
 * validation, the bit-serial reference decoder and the canonical walk the fast LUT
 * decoder falls back to for codes longer than its table.
 */
#include "mcu_dc_internal.h"

const uint16_t mcu_dc_zero_lut[2] = {0u, 0u};

/* bytes [off, off + len) lie inside a blob of size bb (no overflow) */
static int in_blob(uint32_t off, uint32_t len, uint32_t bb) { return off <= bb && len <= bb - off; }

void mcu_dc_huff_view(const uint8_t *sec, mcu_dc_huff_t *h)
{
    uint32_t p, data_bytes;
    h->max_len = sec[MCU_DC_HUF_MAX_LEN];
    h->lut_bits = sec[MCU_DC_HUF_LUT_BITS];
    h->n_symbols = mcu_dc_rd16(sec + MCU_DC_HUF_N_SYMBOLS);
    h->n_bits = mcu_dc_rd32(sec + MCU_DC_HUF_N_BITS);
    p = MCU_DC_HUF_BYTES;
    h->counts = sec + p;
    p += 2u * h->max_len;
    h->symbols = sec + p;
    p = mcu_dc_align4(p + 2u * h->n_symbols);
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
    if (max_len > MCU_DC_MAX_HUFFMAN_LEN || lut_bits > MCU_DC_MAX_LUT_BITS || lut_bits > max_len) {
        return MCU_DC_ERR_HUFFMAN_TABLE;
    }
    if (n_bits > 0x7FFFFF00u) return MCU_DC_ERR_OFFSET;
    /* every part up to the lookup table, then the coded data, must lie inside the blob */
    p = mcu_dc_align4(MCU_DC_HUF_BYTES + 2u * max_len + 2u * n_symbols);
    if (lut_bits > 0u) p = mcu_dc_align4(p + (2u << lut_bits));
    if (!in_blob(off, p, blob_bytes)) return MCU_DC_ERR_OFFSET;
    mcu_dc_huff_view(blob + off, h);
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
    for (i = 0u; i < h->n_symbols; i++) {
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
        if (code - first < count) return (int32_t)mcu_dc_rd16(h->symbols + 2u * (uint32_t)(index + code - first));
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
            return (len << 12) | mcu_dc_rd16(h->symbols + 2u * (uint32_t)(index + code - first));
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return 0u;
}
