/*
 * mcu_dc runtime internals: the parsed op view, the op registry's interface, the weight
 * reader, Huffman table views and bit reader, the requantization helper and the kernel
 * prototypes. Not part of the public API.
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
#define MCU_DC_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MCU_DC_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define MCU_DC_NOINLINE
#define MCU_DC_UNLIKELY(x) (x)
#define MCU_DC_ALWAYS_INLINE inline
#endif
/* Keep a rare branch a branch: gcc would otherwise predicate both paths of a hot loop. */
#if defined(__GNUC__) && !defined(__clang__)
#define MCU_DC_NO_IF_CONVERSION __attribute__((optimize("no-if-conversion", "no-if-conversion2")))
#else
#define MCU_DC_NO_IF_CONVERSION
#endif

/* A hot loop is compiled with -O2's register allocation and block layout even in a -Os build
 * (gcc only; measured: -Os spills the loops' pointers to the stack). */
#if defined(__GNUC__) && !defined(__clang__)
#define MCU_DC_HOT_O2 __attribute__((optimize("O2")))
#else
#define MCU_DC_HOT_O2
#endif

/* The Cortex-M4/M7 DSP extension (SIMD32 and unaligned loads; gcc or clang): the dense FC and
 * the gather convolution use it; -DMCU_DC_NO_DSP turns it off (the plain loops then run). */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__ARM_FEATURE_SIMD32) && \
    defined(__ARM_FEATURE_UNALIGNED) && !defined(MCU_DC_NO_DSP)
#define MCU_DC_DSP 1
static MCU_DC_ALWAYS_INLINE uint32_t mcu_dc_dsp_ld32(const int8_t *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4u); /* one unaligned ldr */
    return v;
}
static MCU_DC_ALWAYS_INLINE uint32_t mcu_dc_dsp_sxtb16(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(v));
    return r;
}
static MCU_DC_ALWAYS_INLINE uint32_t mcu_dc_dsp_sxtb16_ror8(uint32_t v)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
/* a + the sign-extended bytes 0 and 2 of v, per halfword (wrapping) */
static MCU_DC_ALWAYS_INLINE uint32_t mcu_dc_dsp_sxtab16(uint32_t a, uint32_t v)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
/* a + the sign-extended bytes 1 and 3 of v, per halfword (wrapping) */
static MCU_DC_ALWAYS_INLINE uint32_t mcu_dc_dsp_sxtab16_ror8(uint32_t a, uint32_t v)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
static MCU_DC_ALWAYS_INLINE uint32_t mcu_dc_dsp_smlad(uint32_t a, uint32_t b, uint32_t acc)
{
    uint32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* acc + (int16)a * (int16)b: the low halfwords */
static MCU_DC_ALWAYS_INLINE uint32_t mcu_dc_dsp_smlabb(uint32_t a, uint32_t b, uint32_t acc)
{
    uint32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* acc + (int16)(a >> 16) * (int16)b: a's high halfword */
static MCU_DC_ALWAYS_INLINE uint32_t mcu_dc_dsp_smlatb(uint32_t a, uint32_t b, uint32_t acc)
{
    uint32_t r;
    __asm__("smlatb %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
#else
#define MCU_DC_DSP 0
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
    uint32_t lut_bits;       /* 0 in a compact section */
    uint32_t compact;        /* code lengths (bitmap, nibbles) instead of the symbol list */
    const uint8_t *bitmap;   /* compact: bit s set = symbol s has a code */
    const uint8_t *lens;     /* compact: 4-bit code lengths of those symbols, ascending, low nibble first */
} mcu_dc_huff_t;

/* One op, parsed: a version 2 op descriptor with its tensors' shapes, zero points and
 * arena offsets, or a version 1 layer descriptor in the same view (tensor i is layer i's
 * input; v1's ping-pong offsets). Filled by mcu_dc_node_load; read-only for kernels. */
typedef struct {
    uint32_t op_index;                           /* position in execution order */
    uint32_t op, encoding, index_bits, n_inputs;
    uint32_t in0, in1, out;                      /* tensor ids (in1: MCU_DC_NO_TENSOR when absent) */
    uint32_t in_c, in_h, in_w;                   /* input 0 */
    uint32_t in1_c, in1_h, in1_w;                /* input 1 (ADD) */
    uint32_t out_c, out_h, out_w;                /* the output tensor (after a fused pool) */
    int32_t in_zp, in1_zp, out_zp;
    uint32_t in_off, in1_off, out_off, scratch_off; /* arena offsets */
    uint32_t kernel_h, kernel_w, stride_h, stride_w;
    uint32_t pad_top, pad_left, pad_bottom, pad_right;
    uint32_t pool_kh, pool_kw, pool_sh, pool_sw; /* fused max pool (conv family); pool_kh 0 = none */
    int32_t act_min, act_max;
    uint32_t shift;
    int32_t multiplier, multiplier_b;
    uint32_t n_entries, codebook_len;
    uint32_t table_bits;                         /* FC HUFFMAN_JOINT: decode table built in scratch (0 = none) */
    uint32_t gather;                             /* CONV2D: 1 = the gather kernel (mcu_dc_gather.c) */
    uint32_t codebook_off, bias_off, weights_off, index_off; /* absolute blob offsets, 0 = none */
    const int8_t *codebook;                      /* int8[codebook_len] */
    const uint8_t *bias;                         /* int32[rows], LE */
    const uint8_t *weights;                      /* DENSE_INT8: int8[rows][fan_in]; HUFFMAN_SPARSE: section */
    const uint8_t *index;                        /* HUFFMAN_SPARSE: relative-index section */
    /* set by the op's derive hook (saturating; the op's validate bounds them) */
    uint32_t rows, fan_in;                       /* weight ops: W[rows][fan_in] */
    uint32_t conv_h, conv_w;                     /* window ops: output map before a fused pool (0 = none fits) */
    uint32_t dw_mult;                            /* DEPTHWISE_CONV2D: channel multiplier; else 0 */
} mcu_dc_node_t;

/* The buffers one op reads and writes (inside the arena; never overlapping, by the plan). */
typedef struct {
    const int8_t *x;   /* input 0 */
    const int8_t *x1;  /* input 1, or NULL */
    int8_t *y;         /* output */
    uint32_t *scratch; /* the op's scratch (valid when its scratch_size > 0) */
} mcu_dc_io_t;

typedef mcu_dc_status_t (*mcu_dc_kernel_fn)(const mcu_dc_node_t *n, const mcu_dc_io_t *io);

/*
 * The op registry: one entry per op code (mcu_dc_ops.c), one C file per op family.
 *   derive        fills rows / fan_in / conv_h / conv_w / dw_mult from the descriptor
 *                 and the input shape (never fails; may be NULL)
 *   validate      every parameter, the output shape recomputed from the input shape,
 *                 the op's sections; a status code, never a crash
 *   scratch_size  bytes of scratch the op needs at scratch_off (0 = none), in 64 bits
 *   run, run_ref  the fast kernel and the plain reference kernel (may be the same)
 */
typedef struct {
    uint32_t n_inputs;
    void (*derive)(mcu_dc_node_t *n);
    mcu_dc_status_t (*validate)(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t blob_bytes);
    uint64_t (*scratch_size)(const mcu_dc_node_t *n);
    mcu_dc_kernel_fn run;
    mcu_dc_kernel_fn run_ref;
} mcu_dc_op_impl_t;

/* The registered op of code op, or NULL (mcu_dc_ops.c). */
const mcu_dc_op_impl_t *mcu_dc_op_impl(uint32_t op);

/* Op i of a bound (or being validated) model: parsed, then derived by its op. Ids out of
 * range read as empty tensors; offsets outside the blob give NULL section pointers. */
void mcu_dc_node_load(const mcu_dc_model_t *m, uint32_t i, mcu_dc_node_t *n);

/* Pointers into the Huffman section starting at sec (no checks); alphabet sizes a compact
 * section's bitmap (ignored otherwise). */
void mcu_dc_huff_view(const uint8_t *sec, uint32_t alphabet, mcu_dc_huff_t *h);

/* Symbol number i of the canonical order (length, then symbol value). */
uint32_t mcu_dc_huff_symbol(const mcu_dc_huff_t *h, uint32_t i);

/* Fill lut[0 .. 2^bits) with a compact section's decode table ((length << 12) | symbol, 0
 * past the last code); bits >= max_len (validated), so every code resolves in one lookup.
 * Returns 1 when the code is complete (no 0 entry: every bit string decodes), else 0. */
int mcu_dc_huff_build_table(const mcu_dc_huff_t *h, uint16_t *lut, uint32_t bits);

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

/* Point reader br of compact section h at its decode table, built in lut (u16[1 << bits], scratch);
 * bits >= max_len (validated), so every code resolves in one lookup and an empty entry (no code)
 * reads as corrupt. Returns 1 when the code is complete (no entry empty). */
static inline int mcu_dc_bitreader_use_table(mcu_dc_bitreader_t *br, const mcu_dc_huff_t *h, uint16_t *lut,
                                             uint32_t bits)
{
    const int complete = mcu_dc_huff_build_table(h, lut, bits);
    br->lut = lut;
    br->lut_shift = 32u - bits;
    br->walk_len = bits + 1u;
    return complete;
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

/* The readers of a weight op's sparse entries: HUFFMAN_JOINT's one stream (bs over hs; br over the
 * same section, never advanced) or HUFFMAN_SPARSE's symbol (bs) and relative-index (br) streams;
 * alphabet sizes a compact joint section's bitmap. */
static inline void mcu_dc_entry_readers(const mcu_dc_node_t *n, uint32_t alphabet, mcu_dc_huff_t *hs,
                                        mcu_dc_bitreader_t *bs, mcu_dc_huff_t *hr, mcu_dc_bitreader_t *br)
{
    mcu_dc_huff_view(n->weights, alphabet, hs);
    mcu_dc_bitreader_init(bs, hs);
    mcu_dc_huff_view(n->encoding == MCU_DC_ENC_HUFFMAN_JOINT ? n->weights : n->index, 0u, hr);
    mcu_dc_bitreader_init(br, hr);
}

/* The next sparse entry's run R and symbol S (uint32_t) from those readers: one joint code (symbol <<
 * B | run, RMASK = (1 << B) - 1) or a relative index then a symbol; jumps to CORRUPT like
 * MCU_DC_HUFF_NEXT. */
#define MCU_DC_HUFF_ENTRY(R, S, JOINT, B, RMASK, BS, HS, BR, HR, CORRUPT)                     \
    do {                                                                                     \
        if (JOINT) {                                                                         \
            MCU_DC_HUFF_NEXT(S, BS, HS, CORRUPT);                                            \
            (R) = (S) & (RMASK);                                                             \
            (S) >>= (B);                                                                     \
        } else {                                                                             \
            MCU_DC_HUFF_NEXT(R, BR, HR, CORRUPT);                                            \
            MCU_DC_HUFF_NEXT(S, BS, HS, CORRUPT);                                            \
        }                                                                                    \
    } while (0)

/* The one rounding rule (ROUNDING_HALF_UP) with saturation. acc is the int32
 * accumulator carried in a uint32_t (wrapping arithmetic, exact for valid models). */
static inline int8_t mcu_dc_requant_s8(uint32_t acc, const mcu_dc_node_t *n)
{
    int64_t prod = (int64_t)(int32_t)acc * (int64_t)n->multiplier + ((int64_t)1 << (n->shift - 1u));
    int64_t y = (prod >> n->shift) + n->out_zp; /* arithmetic shift (gcc, clang, armcc) */
    if (y < n->act_min) y = n->act_min;
    if (y > n->act_max) y = n->act_max;
    return (int8_t)y;
}

/* Out-of-line twin of mcu_dc_requant_s8 for the kernels' hot loops (keeps the 64-bit
 * code out of them, so their registers hold the bit readers). */
int8_t mcu_dc_requant_out(uint32_t acc, const mcu_dc_node_t *n);

static inline uint32_t mcu_dc_bias(const mcu_dc_node_t *n, uint32_t row)
{
    return mcu_dc_rd32(n->bias + 4u * row);
}

static inline uint32_t mcu_dc_align4(uint32_t v) { return (v + 3u) & ~3u; }

/* [off, off + len) inside a blob of bb bytes, off 4-aligned and non-zero (64-bit safe). */
static inline int mcu_dc_section_ok(uint32_t off, uint64_t len, uint32_t bb)
{
    return off != 0u && (off & 3u) == 0u && off <= bb && len <= (uint64_t)(bb - off);
}

/* Output size of a window op along one axis: (in + p0 + p1 - k) / s + 1, or 0 when no
 * window fits or k or s is 0. in <= 65535, pads <= 255: no overflow. */
static inline uint32_t mcu_dc_out_dim(uint32_t in, uint32_t p0, uint32_t p1, uint32_t k, uint32_t s)
{
    uint32_t span = in + p0 + p1;
    if (k == 0u || s == 0u || in == 0u || span < k) return 0u;
    return (span - k) / s + 1u;
}

/* ------------------------------------------------------------------ weights (mcu_dc_weights.c) */

/*
 * The one weight interface: a reader yields the kept weights of a weight op as
 * (row, col, w) entries in row-major order, whatever the encoding (DENSE_INT8: the non-zero
 * bytes; HUFFMAN_SPARSE: the sparse entries, fillers skipped; COLUMN_SPARSE, stored column
 * by column: one sweep of the stream per row, plain and slow, as a reference should be). fast selects the LUT Huffman
 * decoder instead of the bit-serial reference one. The reference kernels of every weight
 * op, and the depthwise and dense conv kernels, consume it; the fused FC and CONV2D Huffman
 * kernels are the benchmarked fast paths beside it.
 */
typedef struct {
    const mcu_dc_node_t *n;
    uint32_t fast;
    uint32_t joint;     /* HUFFMAN_JOINT: one stream (hs, bs, pos_s) of (symbol << index_bits) | run */
    uint32_t left;      /* entries (Huffman) or positions (dense) still to read */
    uint32_t row, col;  /* next position */
    const int8_t *dense;
    mcu_dc_huff_t hs, hr;       /* weight-symbol and relative-index sections */
    uint32_t pos_s, pos_r;      /* reference decoder: bit positions (COLUMN_SPARSE: pos_s, a byte) */
    mcu_dc_bitreader_t bs, br;  /* fast decoder */
    const uint8_t *cs;          /* COLUMN_SPARSE: the stream (after its u32 length) */
    const uint32_t *bp;         /* TERNARY / BINARY: the bit-planes */
} mcu_dc_wreader_t;

void mcu_dc_wreader_init(mcu_dc_wreader_t *r, const mcu_dc_node_t *n, int fast);

/* COLUMN_SPARSE (docs/format.md, "Column-sparse stream"): the stream after the section's
 * u32 length, and one column's byte count (a varint: bytes summed while they are 255).
 * Validated streams only. */
static inline const uint8_t *mcu_dc_colsparse_stream(const mcu_dc_node_t *n) { return n->weights + 4; }
static inline uint32_t mcu_dc_colsparse_count(const uint8_t **p)
{
    uint32_t b = *(*p)++, count = b;
    while (b == 255u) {
        b = *(*p)++;
        count += b;
    }
    return count;
}
#define MCU_DC_COLSPARSE_SKIP 15u /* a skip byte (h == 0) passes 15 * (g + 1) rows */

/* TERNARY / BINARY (docs/format.md, "Bit-plane section"): u32 words per row of a plane
 * (weight j at bit j % 32 of word j / 32), and the planes stored (TERNARY: k, BINARY: 1).
 * The section is 4-aligned inside a 4-aligned blob, so the words are read in place. */
static inline uint32_t mcu_dc_bp_words(uint32_t fan_in) { return (fan_in >> 5) + ((fan_in & 31u) != 0u); }
static inline uint32_t mcu_dc_bp_planes(const mcu_dc_node_t *n)
{
    return n->encoding == MCU_DC_ENC_BINARY ? 1u : n->codebook_len;
}
static inline const uint32_t *mcu_dc_bp_base(const mcu_dc_node_t *n)
{
    return (const uint32_t *)(const void *)n->weights;
}
/* Count trailing zeros of m != 0: the instruction where there is one (Cortex-M3/M4/M7:
 * rbit + clz; hosts), else a short loop (Cortex-M0 has no clz). */
#if (defined(__GNUC__) || defined(__clang__)) && (!defined(__arm__) || defined(__ARM_FEATURE_CLZ))
#define MCU_DC_CTZ(m) ((uint32_t)__builtin_ctz(m))
#else
static inline uint32_t mcu_dc_ctz_soft(uint32_t m)
{
    uint32_t j = 0u;
    if ((m & 0xFFFFu) == 0u) { m >>= 16; j += 16u; }
    if ((m & 0xFFu) == 0u) { m >>= 8; j += 8u; }
    if ((m & 0xFu) == 0u) { m >>= 4; j += 4u; }
    if ((m & 0x3u) == 0u) { m >>= 2; j += 2u; }
    return j + ((m & 1u) == 0u);
}
#define MCU_DC_CTZ(m) mcu_dc_ctz_soft(m)
#endif
/* 1: an entry in *row, *col, *w; 0: no more; -1: a corrupt stream (an entry past the
 * last row, a code that matches nothing, or more bits read than the section holds). */
int mcu_dc_wreader_next(mcu_dc_wreader_t *r, uint32_t *row, uint32_t *col, int32_t *w);

/* The checks every weight op shares: encoding, rows * fan_in, requantization, activation
 * bounds, the bias, codebook and weight sections, the Huffman tables. */
mcu_dc_status_t mcu_dc_weights_validate(const mcu_dc_node_t *n, const uint8_t *blob, uint32_t blob_bytes);

/* ------------------------------------------------------------------ kernels, by op family */

/* mcu_dc_fc.c */
mcu_dc_status_t mcu_dc_fc_huff_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_fc_joint_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_fc_dense_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_fc_colsparse_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_fc_ternary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_fc_binary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_fc_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_fc_s8_ref(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
/* mcu_dc_conv.c (scratch: uint32_t[conv_h * conv_w], one output channel of accumulators) */
mcu_dc_status_t mcu_dc_conv2d_huff_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_conv2d_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
/* One output channel of accumulators (uint32_t[conv_h * conv_w]) to y: the fused max pool, requantized. */
void mcu_dc_conv_emit(const mcu_dc_node_t *n, const uint32_t *acc, int8_t *y);
/* mcu_dc_gather.c: CONV2D with gather = 1 (scratch: mcu_dc_gather_scratch bytes) */
mcu_dc_status_t mcu_dc_conv2d_gather_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
uint64_t mcu_dc_gather_scratch(const mcu_dc_node_t *n);
uint64_t mcu_dc_gather_input_bytes(const mcu_dc_node_t *n); /* in_c * padded h * padded w */
/* TERNARY / BINARY (scratch: two uint32_t[conv_h * conv_w] maps of plane sums) */
mcu_dc_status_t mcu_dc_conv2d_ternary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_conv2d_binary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_depthwise_conv2d_ternary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_depthwise_conv2d_binary_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_conv2d_s8_ref(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_depthwise_conv2d_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_depthwise_conv2d_s8_ref(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
/* mcu_dc_pool.c */
mcu_dc_status_t mcu_dc_maxpool2d_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
mcu_dc_status_t mcu_dc_avgpool2d_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);
/* mcu_dc_add.c */
mcu_dc_status_t mcu_dc_add_s8(const mcu_dc_node_t *n, const mcu_dc_io_t *io);

#endif /* MCU_DC_INTERNAL_H */
