/*
 * mcu_dc runtime internals: the parsed layer descriptor, Huffman table views, the
 * requantization helper and the kernel prototypes. Not part of the public API.
 */
#ifndef MCU_DC_INTERNAL_H
#define MCU_DC_INTERNAL_H

#include <stdint.h>

#include "mcu_dc.h"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "mcu_dc runtime reads little-endian tables in place: big-endian targets are not supported"
#endif

/* Keep a hot loop in its own function so its registers are allocated on their own. */
#if defined(__GNUC__) || defined(__clang__)
#define MCU_DC_NOINLINE __attribute__((noinline))
#else
#define MCU_DC_NOINLINE
#endif

/* Little-endian reads of header fields (any alignment). */
static inline uint32_t mcu_dc_rd16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static inline uint32_t mcu_dc_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* One canonical Huffman section (docs/format.md, "Huffman section"), validated. */
typedef struct {
    const uint8_t *counts;   /* u16[max_len], LE */
    const uint8_t *symbols;  /* u16[n_symbols], LE */
    const uint16_t *lut;     /* u16[1 << lut_bits] (4-aligned), or NULL when lut_bits == 0 */
    const uint8_t *data;     /* coded bits, MSB-first, with >= 4 zero bytes of slack */
    uint32_t data_len;       /* bytes, slack included */
    uint32_t n_bits;
    uint32_t n_symbols;
    uint32_t max_len;
    uint32_t lut_bits;
} mcu_dc_huff_t;

/* A layer descriptor (docs/format.md, "Layer table"), parsed. */
typedef struct {
    uint32_t op, encoding, index_bits;
    uint32_t in_c, in_h, in_w, out_c, out_h, out_w;
    uint32_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int32_t in_zp, out_zp, act_min, act_max;
    uint32_t shift;
    int32_t multiplier;
    uint32_t n_entries;
    uint32_t codebook_len;
    const int8_t *codebook;  /* int8[codebook_len] */
    const uint8_t *bias;     /* int32[out_c], LE */
    const uint8_t *weights;  /* DENSE_INT8: int8[rows][fan_in]; HUFFMAN_SPARSE: section */
    const uint8_t *index;    /* HUFFMAN_SPARSE: relative-index section */
    uint32_t rows, fan_in;
} mcu_dc_layer_t;

/* Parse descriptor i without checks (the model was validated by mcu_dc_model_init). */
void mcu_dc_layer_parse(const uint8_t *blob, uint32_t i, mcu_dc_layer_t *L);

/* Pointers into the Huffman section starting at sec (no checks). */
void mcu_dc_huff_view(const uint8_t *sec, mcu_dc_huff_t *h);

/* Parse and validate the Huffman section at off; alphabet bounds every symbol. */
mcu_dc_status_t mcu_dc_huff_parse(const uint8_t *blob, uint32_t blob_bytes, uint32_t off, uint32_t alphabet,
                                  mcu_dc_huff_t *h);

/* Bit-serial reference decoder: reads from h->data at *bitpos (advanced); returns the
 * symbol, or -1 for a corrupt stream (no code matches, or reading past n_bits). */
int32_t mcu_dc_huff_decode_ref(const mcu_dc_huff_t *h, uint32_t *bitpos);

/* Canonical decode from a left-aligned bit buffer holding >= max_len valid bits.
 * Returns (length << 12) | symbol like a LUT entry, or 0 for a corrupt stream. */
uint32_t mcu_dc_huff_decode_buf(const mcu_dc_huff_t *h, uint32_t buf);

/* A fast Huffman reader: 32-bit left-aligned bit buffer, refilled 16 bits at a time. */
typedef struct {
    uint32_t buf;          /* next bits, MSB first; bits below nb are zero */
    int32_t nb;            /* valid bits in buf */
    const uint8_t *p;      /* next byte to load */
    const uint8_t *p_end;  /* last position where 2 bytes can be loaded */
    const uint16_t *lut;   /* never NULL (a 2-entry zero table when lut_bits == 0) */
    uint32_t lut_shift;    /* 32 - lut_bits (31 with the zero table) */
    /* codes longer than the table: for length L in [walk_len, max_len], the top L bits
     * v of the buffer are a code of length L iff v < code_end[L] (no shorter code matched),
     * and its symbol is symbols[v + sym_offset[L]] */
    const uint16_t *symbols;
    uint32_t max_len, walk_len;
    uint32_t code_end[MCU_DC_MAX_HUFFMAN_LEN + 1];
    int32_t sym_offset[MCU_DC_MAX_HUFFMAN_LEN + 1];
} mcu_dc_bitreader_t;

extern const uint16_t mcu_dc_zero_lut[2];

/* Inline so the reader's fields live in registers inside the kernels' loops. */
static inline void mcu_dc_bitreader_init(mcu_dc_bitreader_t *br, const mcu_dc_huff_t *h)
{
    const uint8_t *d = h->data; /* data_len >= 4 always (slack) */
    br->buf = ((uint32_t)d[0] << 24) | ((uint32_t)d[1] << 16) | ((uint32_t)d[2] << 8) | (uint32_t)d[3];
    br->nb = 32;
    br->p = d + 4;
    br->p_end = d + h->data_len - 2u;
    if (h->lut_bits > 0u) {
        br->lut = h->lut;
        br->lut_shift = 32u - h->lut_bits;
    } else {
        br->lut = mcu_dc_zero_lut;
        br->lut_shift = 31u;
    }
    br->symbols = (const uint16_t *)(const void *)h->symbols;
    br->max_len = h->max_len;
    br->walk_len = h->lut_bits + 1u;
    {
        const uint16_t *counts = (const uint16_t *)(const void *)h->counts;
        int32_t first = 0, index = 0;
        uint32_t len;
        for (len = 1u; len <= h->max_len; len++) { /* canonical code: first code and symbol index per length */
            int32_t count = (int32_t)counts[len - 1u];
            br->code_end[len] = (uint32_t)(first + count);
            br->sym_offset[len] = index - first;
            index += count;
            first = (first + count) << 1;
        }
    }
}

/* The canonical decode of a code longer than the lookup table, straight from the
 * left-aligned buffer BUF (>= max_len valid bits): sets E to (length << 12) | symbol
 * like a table entry, or 0 for a corrupt stream. No calls. */
#define MCU_DC_HUFF_WALK(E, BUF, RD)                                                         \
    do {                                                                                     \
        uint32_t len_ = (RD)->walk_len;                                                      \
        (E) = 0u;                                                                            \
        for (; len_ <= (RD)->max_len; len_++) {                                              \
            uint32_t code_ = (BUF) >> (32u - len_);                                          \
            if (code_ < (RD)->code_end[len_]) {                                              \
                (E) = (len_ << 12) | (RD)->symbols[(int32_t)code_ + (RD)->sym_offset[len_]]; \
                break;                                                                       \
            }                                                                                \
        }                                                                                    \
    } while (0)

/* Bits the reader has consumed since init. */
static inline uint32_t mcu_dc_bitreader_used(const mcu_dc_bitreader_t *br, const mcu_dc_huff_t *h)
{
    return (uint32_t)(br->p - h->data) * 8u - (uint32_t)br->nb;
}

/*
 * Decode one symbol into OUT (uint32_t) with reader BR of table H; jumps to label
 * CORRUPT on a corrupt stream or when the reader would leave its section. Keeps nb >= 16
 * (>= any code length) before the lookup, so one lookup or one canonical walk over the
 * buffer always suffices.
 */
#define MCU_DC_HUFF_NEXT(OUT, BR, H, CORRUPT)                                                       \
    do {                                                                                         \
        uint32_t e_;                                                                             \
        if ((BR).nb < 16) {                                                                      \
            if ((BR).p > (BR).p_end) goto CORRUPT;                                               \
            (BR).buf |= (((uint32_t)(BR).p[0] << 8) | (uint32_t)(BR).p[1]) << (16 - (BR).nb);    \
            (BR).p += 2;                                                                         \
            (BR).nb += 16;                                                                       \
        }                                                                                        \
        e_ = (BR).lut[(BR).buf >> (BR).lut_shift];                                               \
        if (e_ == 0u) {                                                                          \
            e_ = mcu_dc_huff_decode_buf((H), (BR).buf);                                          \
            if (e_ == 0u) goto CORRUPT;                                                          \
        }                                                                                        \
        (BR).buf <<= (e_ >> 12);                                                                 \
        (BR).nb -= (int32_t)(e_ >> 12);                                                          \
        (OUT) = e_ & 0xFFFu;                                                                     \
    } while (0)

/* The one rounding rule (ROUNDING_HALF_UP) with saturation. acc is the int32
 * accumulator carried in a uint32_t (wrapping arithmetic, exact for valid models). */
static inline int8_t mcu_dc_requant_s8(uint32_t acc, const mcu_dc_layer_t *L)
{
    int64_t prod = (int64_t)(int32_t)acc * (int64_t)L->multiplier + ((int64_t)1 << (L->shift - 1u));
    int64_t y = (prod >> L->shift) + L->out_zp; /* arithmetic shift (gcc, clang, armcc) */
    if (y < L->act_min) y = L->act_min;
    if (y > L->act_max) y = L->act_max;
    return (int8_t)y;
}

/* Out-of-line twin of mcu_dc_requant_s8 for the kernels' hot loops (keeps the 64-bit
 * code out of them, so their registers hold the bit readers). */
int8_t mcu_dc_requant_out(uint32_t acc, const mcu_dc_layer_t *L);

static inline uint32_t mcu_dc_bias(const mcu_dc_layer_t *L, uint32_t row)
{
    return mcu_dc_rd32(L->bias + 4u * row);
}

/* Kernels: x is the layer's int8 input tensor (CHW), y its output. */
mcu_dc_status_t mcu_dc_fc_huff_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y);
mcu_dc_status_t mcu_dc_fc_huff_s8_ref(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y);
mcu_dc_status_t mcu_dc_fc_dense_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y);
/* scratch: uint32_t[out_h * out_w], one output channel of accumulators */
mcu_dc_status_t mcu_dc_conv2d_huff_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y, uint32_t *scratch);
mcu_dc_status_t mcu_dc_conv2d_huff_s8_ref(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y,
                                          uint32_t *scratch);
mcu_dc_status_t mcu_dc_conv2d_dense_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y);
mcu_dc_status_t mcu_dc_maxpool2d_s8(const mcu_dc_layer_t *L, const int8_t *x, int8_t *y);

#endif /* MCU_DC_INTERNAL_H */
