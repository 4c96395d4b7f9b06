/*
 * Model binding and inference driver: validates a blob (docs/format.md) in place, walks
 * the layer table and dispatches each layer to its kernel. The blob is never copied.
 */
#include "mcu_dc_internal.h"

/* header field offsets (docs/format.md, "Header") */
#define H_VERSION 4u
#define H_NLAYERS 6u
#define H_BLOB_BYTES 8u
#define H_CRC 12u
#define H_IN_C 16u
#define H_IN_H 18u
#define H_IN_W 20u
#define H_OUT_LEN 22u
#define H_ARENA 24u
#define H_ROUNDING 28u

static uint32_t align4_u32(uint32_t n) { return (n + 3u) & ~3u; }

int8_t mcu_dc_requant_out(uint32_t acc, const mcu_dc_layer_t *L) { return mcu_dc_requant_s8(acc, L); }

void mcu_dc_layer_parse(const uint8_t *blob, uint32_t i, mcu_dc_layer_t *L)
{
    const uint8_t *d = blob + MCU_DC_HEADER_BYTES + i * MCU_DC_LAYER_BYTES;
    uint32_t cb_off = mcu_dc_rd32(d + 36), bias_off = mcu_dc_rd32(d + 40);
    uint32_t w_off = mcu_dc_rd32(d + 44), idx_off = mcu_dc_rd32(d + 48);
    L->op = d[0];
    L->encoding = d[1];
    L->index_bits = d[2];
    L->in_c = mcu_dc_rd16(d + 4);
    L->in_h = mcu_dc_rd16(d + 6);
    L->in_w = mcu_dc_rd16(d + 8);
    L->out_c = mcu_dc_rd16(d + 10);
    L->out_h = mcu_dc_rd16(d + 12);
    L->out_w = mcu_dc_rd16(d + 14);
    L->kernel_h = d[16];
    L->kernel_w = d[17];
    L->stride_h = d[18];
    L->stride_w = d[19];
    L->pad_h = d[20];
    L->pad_w = d[21];
    L->in_zp = (int8_t)d[22];
    L->out_zp = (int8_t)d[23];
    L->act_min = (int8_t)d[24];
    L->act_max = (int8_t)d[25];
    L->shift = d[26];
    L->multiplier = (int32_t)mcu_dc_rd32(d + 28);
    L->n_entries = mcu_dc_rd32(d + 32);
    L->codebook_len = mcu_dc_rd16(d + 52);
    L->codebook = cb_off ? (const int8_t *)(const void *)(blob + cb_off) : 0;
    L->bias = bias_off ? blob + bias_off : 0;
    L->weights = w_off ? blob + w_off : 0;
    L->index = idx_off ? blob + idx_off : 0;
    L->rows = L->out_c;
    L->fan_in = (L->op == MCU_DC_OP_CONV2D) ? L->in_c * L->kernel_h * L->kernel_w : L->in_c * L->in_h * L->in_w;
}

/* [off, off + len) inside the blob, off 4-aligned and non-zero */
static int section_ok(uint32_t off, uint64_t len, uint32_t bb)
{
    return off != 0u && (off & 3u) == 0u && off <= bb && len <= (uint64_t)(bb - off);
}

/* Full check of descriptor i against the running tensor shape (c, h, w). */
static mcu_dc_status_t validate_layer(const uint8_t *blob, uint32_t bb, uint32_t i, uint32_t *c, uint32_t *h,
                                      uint32_t *w, uint32_t *scratch)
{
    const uint8_t *d = blob + MCU_DC_HEADER_BYTES + i * MCU_DC_LAYER_BYTES;
    mcu_dc_layer_t L;
    uint64_t fan_in, total;
    mcu_dc_status_t st;
    mcu_dc_layer_parse(blob, i, &L);
    if (L.op != MCU_DC_OP_CONV2D && L.op != MCU_DC_OP_FC && L.op != MCU_DC_OP_MAXPOOL2D) {
        return MCU_DC_ERR_UNKNOWN_OP;
    }
    if (L.in_c != *c || L.in_h != *h || L.in_w != *w) return MCU_DC_ERR_SHAPE;
    if (L.out_c == 0u || L.out_h == 0u || L.out_w == 0u) return MCU_DC_ERR_SHAPE;
    if ((uint64_t)L.out_c * L.out_h * L.out_w > 0x7FFFFFF0u) return MCU_DC_ERR_SHAPE;
    if (L.op == MCU_DC_OP_MAXPOOL2D) {
        if (L.encoding != MCU_DC_ENC_NONE) return MCU_DC_ERR_UNKNOWN_ENCODING;
        if (L.kernel_h == 0u || L.kernel_w == 0u || L.stride_h == 0u || L.stride_w == 0u) return MCU_DC_ERR_PARAM;
        if (L.pad_h != 0u || L.pad_w != 0u) return MCU_DC_ERR_PARAM;
        if (L.kernel_h > L.in_h || L.kernel_w > L.in_w) return MCU_DC_ERR_SHAPE;
        if (L.out_c != L.in_c || L.out_h != (L.in_h - L.kernel_h) / L.stride_h + 1u ||
            L.out_w != (L.in_w - L.kernel_w) / L.stride_w + 1u) {
            return MCU_DC_ERR_SHAPE;
        }
    } else {
        if (L.op == MCU_DC_OP_CONV2D) {
            if (L.kernel_h == 0u || L.kernel_w == 0u || L.stride_h == 0u || L.stride_w == 0u) {
                return MCU_DC_ERR_PARAM;
            }
            if (L.kernel_h > L.in_h + 2u * L.pad_h || L.kernel_w > L.in_w + 2u * L.pad_w) return MCU_DC_ERR_SHAPE;
            if (L.out_h != (L.in_h + 2u * L.pad_h - L.kernel_h) / L.stride_h + 1u ||
                L.out_w != (L.in_w + 2u * L.pad_w - L.kernel_w) / L.stride_w + 1u) {
                return MCU_DC_ERR_SHAPE;
            }
            fan_in = (uint64_t)L.in_c * L.kernel_h * L.kernel_w;
            if ((uint64_t)L.out_h * L.out_w * 4u > *scratch) *scratch = L.out_h * L.out_w * 4u;
        } else {
            if (L.out_h != 1u || L.out_w != 1u) return MCU_DC_ERR_SHAPE;
            fan_in = (uint64_t)L.in_c * L.in_h * L.in_w;
        }
        total = fan_in * L.rows;
        if (total > 0xFFFFFFFFu) return MCU_DC_ERR_SHAPE;
        if (L.shift < 1u || L.shift > 62u || L.multiplier < 0) return MCU_DC_ERR_PARAM;
        if (L.act_min > L.act_max) return MCU_DC_ERR_PARAM;
        if (!section_ok(mcu_dc_rd32(d + 40), 4u * (uint64_t)L.rows, bb)) return MCU_DC_ERR_OFFSET;
        if (L.encoding == MCU_DC_ENC_DENSE_INT8) {
            if (L.n_entries != total) return MCU_DC_ERR_PARAM;
            if (!section_ok(mcu_dc_rd32(d + 44), total, bb)) return MCU_DC_ERR_OFFSET;
        } else if (L.encoding == MCU_DC_ENC_HUFFMAN_SPARSE) {
            mcu_dc_huff_t hs, hr;
            if (L.codebook_len < 1u || L.codebook_len > MCU_DC_MAX_CODEBOOK) return MCU_DC_ERR_PARAM;
            if (L.index_bits < 1u || L.index_bits > MCU_DC_MAX_INDEX_BITS) return MCU_DC_ERR_PARAM;
            if (L.n_entries > total) return MCU_DC_ERR_PARAM;
            if (!section_ok(mcu_dc_rd32(d + 36), L.codebook_len, bb)) return MCU_DC_ERR_OFFSET;
            if (L.n_entries > 0u || mcu_dc_rd32(d + 44) != 0u) {
                st = mcu_dc_huff_parse(blob, bb, mcu_dc_rd32(d + 44), L.codebook_len + 1u, &hs);
                if (st != MCU_DC_OK) return st;
                if (L.n_entries > 0u && hs.n_symbols == 0u) return MCU_DC_ERR_HUFFMAN_TABLE;
            }
            if (L.n_entries > 0u || mcu_dc_rd32(d + 48) != 0u) {
                st = mcu_dc_huff_parse(blob, bb, mcu_dc_rd32(d + 48), 1u << L.index_bits, &hr);
                if (st != MCU_DC_OK) return st;
                if (L.n_entries > 0u && hr.n_symbols == 0u) return MCU_DC_ERR_HUFFMAN_TABLE;
            }
        } else {
            return MCU_DC_ERR_UNKNOWN_ENCODING;
        }
    }
    *c = L.out_c;
    *h = L.out_h;
    *w = L.out_w;
    return MCU_DC_OK;
}

/* Buffer sizes of the arena: T_i lives in buffer i % 2 (docs/format.md, "Arena"). */
static void arena_layout(const uint8_t *blob, uint32_t *buf0, uint32_t *buf1, uint32_t *scratch)
{
    uint32_t n = mcu_dc_rd16(blob + H_NLAYERS), i, b[2];
    b[0] = mcu_dc_rd16(blob + H_IN_C) * mcu_dc_rd16(blob + H_IN_H) * mcu_dc_rd16(blob + H_IN_W);
    b[1] = 0u;
    *scratch = 0u;
    for (i = 0u; i < n; i++) {
        const uint8_t *d = blob + MCU_DC_HEADER_BYTES + i * MCU_DC_LAYER_BYTES;
        uint32_t oc = mcu_dc_rd16(d + 10), oh = mcu_dc_rd16(d + 12), ow = mcu_dc_rd16(d + 14);
        uint32_t size = oc * oh * ow;
        if (size > b[(i + 1u) & 1u]) b[(i + 1u) & 1u] = size;
        if (d[0] == MCU_DC_OP_CONV2D && oh * ow * 4u > *scratch) *scratch = oh * ow * 4u;
    }
    *buf0 = align4_u32(b[0]);
    *buf1 = align4_u32(b[1]);
}

mcu_dc_status_t mcu_dc_model_init(mcu_dc_model_t *m, const uint8_t *blob, uint32_t blob_bytes)
{
    uint32_t version, n, bb, i, c, h, w, buf0, buf1, scratch = 0u;
    mcu_dc_status_t st;
    if (m == 0) return MCU_DC_ERR_NULL;
    m->blob = 0;
    m->blob_bytes = 0u;
    if (blob == 0) return MCU_DC_ERR_NULL;
    if (((uintptr_t)blob & 3u) != 0u) return MCU_DC_ERR_ALIGN;
    if (blob_bytes < MCU_DC_HEADER_BYTES) return MCU_DC_ERR_SIZE;
    if (blob[0] != MCU_DC_MAGIC0 || blob[1] != MCU_DC_MAGIC1 || blob[2] != MCU_DC_MAGIC2 || blob[3] != MCU_DC_MAGIC3) {
        return MCU_DC_ERR_BAD_MAGIC;
    }
    version = mcu_dc_rd16(blob + H_VERSION);
    if (version == 0u || version > MCU_DC_FORMAT_VERSION) return MCU_DC_ERR_VERSION;
    n = mcu_dc_rd16(blob + H_NLAYERS);
    bb = mcu_dc_rd32(blob + H_BLOB_BYTES);
    if (bb > blob_bytes || (bb & 3u) != 0u || bb < MCU_DC_HEADER_BYTES + n * MCU_DC_LAYER_BYTES) {
        return MCU_DC_ERR_SIZE;
    }
    if (blob[H_ROUNDING] != MCU_DC_ROUNDING_HALF_UP) return MCU_DC_ERR_ROUNDING;
    if (n == 0u) return MCU_DC_ERR_SHAPE;
    c = mcu_dc_rd16(blob + H_IN_C);
    h = mcu_dc_rd16(blob + H_IN_H);
    w = mcu_dc_rd16(blob + H_IN_W);
    if (c == 0u || h == 0u || w == 0u || (uint64_t)c * h * w > 0x7FFFFFF0u) return MCU_DC_ERR_SHAPE;
    for (i = 0u; i < n; i++) {
        st = validate_layer(blob, bb, i, &c, &h, &w, &scratch);
        if (st != MCU_DC_OK) return st;
    }
    if (c * h * w != mcu_dc_rd16(blob + H_OUT_LEN)) return MCU_DC_ERR_SHAPE;
    arena_layout(blob, &buf0, &buf1, &scratch);
    if ((uint64_t)buf0 + buf1 + scratch != mcu_dc_rd32(blob + H_ARENA)) return MCU_DC_ERR_ARENA_MISMATCH;
    m->blob = blob;
    m->blob_bytes = bb;
    return MCU_DC_OK;
}

/* CRC-32 (IEEE 802.3, reflected, as zlib.crc32), 4 bits at a time: a 64-byte table. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, uint32_t n)
{
    static const uint32_t t[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
        0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
    };
    uint32_t i;
    crc = ~crc;
    for (i = 0u; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ t[crc & 15u];
        crc = (crc >> 4) ^ t[crc & 15u];
    }
    return ~crc;
}

mcu_dc_status_t mcu_dc_model_check_crc(const mcu_dc_model_t *m)
{
    if (m == 0 || m->blob == 0) return MCU_DC_ERR_NULL;
    if (crc32_update(0u, m->blob + 16u, m->blob_bytes - 16u) != mcu_dc_rd32(m->blob + H_CRC)) return MCU_DC_ERR_CRC;
    return MCU_DC_OK;
}

uint32_t mcu_dc_arena_size(const mcu_dc_model_t *m)
{
    return (m != 0 && m->blob != 0) ? mcu_dc_rd32(m->blob + H_ARENA) : 0u;
}

uint32_t mcu_dc_input_len(const mcu_dc_model_t *m)
{
    if (m == 0 || m->blob == 0) return 0u;
    return mcu_dc_rd16(m->blob + H_IN_C) * mcu_dc_rd16(m->blob + H_IN_H) * mcu_dc_rd16(m->blob + H_IN_W);
}

uint32_t mcu_dc_output_len(const mcu_dc_model_t *m)
{
    return (m != 0 && m->blob != 0) ? mcu_dc_rd16(m->blob + H_OUT_LEN) : 0u;
}

uint32_t mcu_dc_model_hash(const mcu_dc_model_t *m)
{
    return (m != 0 && m->blob != 0) ? mcu_dc_rd32(m->blob + H_CRC) : 0u;
}

static mcu_dc_status_t run_layer(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y, uint32_t *scratch, int ref)
{
    switch (L->op) {
    case MCU_DC_OP_FC:
        if (L->encoding == MCU_DC_ENC_HUFFMAN_SPARSE) {
            return ref ? mcu_dc_fc_huff_s8_ref(L, x, y) : mcu_dc_fc_huff_s8(L, x, y);
        }
        if (L->encoding == MCU_DC_ENC_DENSE_INT8) return mcu_dc_fc_dense_s8(L, x, y);
        return MCU_DC_ERR_UNKNOWN_ENCODING;
    case MCU_DC_OP_CONV2D:
        if (L->encoding == MCU_DC_ENC_HUFFMAN_SPARSE) {
            return ref ? mcu_dc_conv2d_huff_s8_ref(L, x, y, scratch) : mcu_dc_conv2d_huff_s8(L, x, y, scratch);
        }
        if (L->encoding == MCU_DC_ENC_DENSE_INT8) return mcu_dc_conv2d_dense_s8(L, x, y);
        return MCU_DC_ERR_UNKNOWN_ENCODING;
    case MCU_DC_OP_MAXPOOL2D:
        return mcu_dc_maxpool2d_s8(L, x, y);
    default:
        return MCU_DC_ERR_UNKNOWN_OP;
    }
}

static mcu_dc_status_t infer(const mcu_dc_model_t *m, const uint8_t *in, int8_t *out, void *arena,
                             uint32_t arena_bytes, int ref)
{
    uint32_t buf0, buf1, scratch_bytes, n, i, len;
    int8_t *buf[2];
    uint32_t *scratch;
    const int8_t *t;
    if (m == 0 || m->blob == 0 || in == 0 || out == 0 || arena == 0) return MCU_DC_ERR_NULL;
    if (((uintptr_t)arena & 3u) != 0u) return MCU_DC_ERR_ARENA_ALIGN;
    if (arena_bytes < mcu_dc_rd32(m->blob + H_ARENA)) return MCU_DC_ERR_ARENA_TOO_SMALL;
    arena_layout(m->blob, &buf0, &buf1, &scratch_bytes);
    buf[0] = (int8_t *)arena;
    buf[1] = buf[0] + buf0;
    scratch = (uint32_t *)(void *)(buf[1] + buf1);
    len = mcu_dc_input_len(m);
    for (i = 0u; i < len; i++) buf[0][i] = (int8_t)(in[i] ^ 0x80u); /* b - 128 */
    n = mcu_dc_rd16(m->blob + H_NLAYERS);
    for (i = 0u; i < n; i++) {
        mcu_dc_layer_t L;
        mcu_dc_status_t st;
        mcu_dc_layer_parse(m->blob, i, &L);
        st = run_layer(&L, buf[i & 1u], buf[(i + 1u) & 1u], scratch, ref);
        if (st != MCU_DC_OK) return st;
    }
    t = buf[n & 1u];
    len = mcu_dc_output_len(m);
    for (i = 0u; i < len; i++) out[i] = t[i];
    return MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_infer(const mcu_dc_model_t *m, const uint8_t *in, int8_t *out, void *arena,
                             uint32_t arena_bytes)
{
    return infer(m, in, out, arena, arena_bytes, 0);
}

mcu_dc_status_t mcu_dc_infer_ref(const mcu_dc_model_t *m, const uint8_t *in, int8_t *out, void *arena,
                                 uint32_t arena_bytes)
{
    return infer(m, in, out, arena, arena_bytes, 1);
}

const char *mcu_dc_status_name(mcu_dc_status_t status)
{
    switch (status) {
#define MCU_DC_STATUS_CASE(name, value) \
    case MCU_DC_##name:                 \
        return "MCU_DC_" #name;
        MCU_DC_STATUS_LIST(MCU_DC_STATUS_CASE)
#undef MCU_DC_STATUS_CASE
    default:
        return "MCU_DC_UNKNOWN_STATUS";
    }
}
