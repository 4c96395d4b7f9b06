/*
 * libFuzzer harness: the runtime's model validation and inference (docs/fuzzing.md).
 *
 * Each input is a blob. mcu_dc_model_init must never crash on it; when it accepts the
 * blob, both inference paths run on one deterministic input in their own exact-size
 * arenas (so ASan catches a byte written past the advertised arena), and they must agree:
 * the same status and, on MCU_DC_OK, the same output bytes. A disagreement aborts, which
 * libFuzzer records as a crash.
 *
 * Two builds of this file:
 *   default                 mutates whole blobs; the CRC is not checked, so the validator
 *                           sees every mutation (most are refused at the tables);
 *   -DMCU_DC_FUZZ_STREAMS   a custom mutator changes bytes only inside a valid blob's
 *                           coded sections (Huffman tables and bits, column-sparse
 *                           streams, dense weights, codebooks, biases) and recomputes the header CRC, and the
 *                           harness checks the CRC as the firmware does: inputs reach the
 *                           decoders and kernels instead of dying at the tables.
 * -DMCU_DC_FUZZ_INJECT_BUG flips one output byte of the fast path, to prove in a test that
 * a disagreement is caught.
 *
 * Harness code, not firmware: it uses malloc and stdio.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcu_dc_internal.h"

/* Inputs whose inference would take longer than this many weight/window steps are only
 * validated (keeps every execution in milliseconds under the sanitizers). */
#ifndef MCU_DC_FUZZ_MAX_WORK
#define MCU_DC_FUZZ_MAX_WORK 2000000u
#endif
#ifndef MCU_DC_FUZZ_MAX_ARENA
#define MCU_DC_FUZZ_MAX_ARENA (8u << 20)
#endif

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

static unsigned long n_inputs, n_valid, n_inferred, n_infer_ok, n_skipped_work;

static void report(void)
{
    fprintf(stderr, "mcu_dc_fuzz: inputs=%lu valid=%lu inferred=%lu infer_ok=%lu skipped_work=%lu\n", n_inputs,
            n_valid, n_inferred, n_infer_ok, n_skipped_work);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(report);
    return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

/* An upper bound on the steps one inference takes (64-bit, saturating). */
static uint64_t model_work(const mcu_dc_model_t *m)
{
    uint64_t work = 0u;
    uint32_t i;
    for (i = 0u; i < m->n_ops; i++) {
        mcu_dc_node_t n;
        uint64_t step, map;
        mcu_dc_node_load(m, i, &n);
        map = (uint64_t)(n.conv_h ? n.conv_h : 1u) * (n.conv_w ? n.conv_w : 1u);
        if (n.op == MCU_DC_OP_FC && n.encoding == MCU_DC_ENC_COLUMN_SPARSE) {
            /* the reference reader sweeps the whole stream once per row */
            step = (uint64_t)n.rows * (3u * (uint64_t)n.fan_in + 2u * (uint64_t)n.n_entries + 1u);
        } else if (n.op == MCU_DC_OP_CONV2D || n.op == MCU_DC_OP_DEPTHWISE_CONV2D || n.op == MCU_DC_OP_FC) {
            step = (uint64_t)n.rows * n.fan_in * map + (uint64_t)n.out_c * n.out_h * n.out_w;
        } else {
            step = (uint64_t)n.out_c * n.out_h * n.out_w * ((uint64_t)n.kernel_h * n.kernel_w + 1u) +
                   (uint64_t)n.in_c * n.in_h * n.in_w;
        }
        work = sat_add(work, step);
    }
    return work;
}

static uint8_t *copy_blob(const uint8_t *data, size_t size, uint32_t *bb)
{
    uint8_t *blob;
    uint32_t n = (uint32_t)size;
    if (size >= 12u) {
        const uint32_t hdr = mcu_dc_rd32(data + 8); /* blob_bytes: the runtime reads no further */
        if (hdr >= 16u && hdr <= size) n = hdr;
    }
    blob = (uint8_t *)malloc(n ? n : 1u); /* malloc is 16-aligned: the runtime needs 4 */
    if (blob == 0) abort();
    memcpy(blob, data, n);
    *bb = n;
    return blob;
}

static void fail(const char *what, const mcu_dc_model_t *m, mcu_dc_status_t a, mcu_dc_status_t b)
{
    fprintf(stderr, "mcu_dc_fuzz: %s (fast %s, reference %s; %u ops, arena %u bytes)\n", what,
            mcu_dc_status_name(a), mcu_dc_status_name(b), (unsigned)m->n_ops, (unsigned)m->arena_bytes);
    abort();
}

static void run_both(const mcu_dc_model_t *m, uint32_t salt)
{
    const uint32_t in_len = mcu_dc_input_len(m), out_len = mcu_dc_output_len(m), arena = mcu_dc_arena_size(m);
    uint8_t *in = (uint8_t *)malloc(in_len);
    int8_t *out_fast = (int8_t *)malloc(out_len), *out_ref = (int8_t *)malloc(out_len);
    uint8_t *arena_fast = (uint8_t *)malloc(arena ? arena : 1u), *arena_ref = (uint8_t *)malloc(arena ? arena : 1u);
    mcu_dc_status_t a, b;
    uint32_t i, x = salt | 1u;
    if (in == 0 || out_fast == 0 || out_ref == 0 || arena_fast == 0 || arena_ref == 0) abort();
    for (i = 0u; i < in_len; i++) { /* xorshift32: every byte value appears */
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        in[i] = (uint8_t)(x >> 24);
    }
    /* different stale contents: a kernel reading a byte it did not write shows as a disagreement */
    memset(arena_fast, 0x00, arena);
    memset(arena_ref, 0xA5, arena);
    memset(out_fast, 0x11, out_len);
    memset(out_ref, 0x22, out_len);
    a = mcu_dc_infer(m, in, out_fast, arena_fast, arena);
    b = mcu_dc_infer_ref(m, in, out_ref, arena_ref, arena);
#ifdef MCU_DC_FUZZ_INJECT_BUG
    if (a == MCU_DC_OK && out_len > 0u) out_fast[out_len - 1u] = (int8_t)(out_fast[out_len - 1u] ^ 1);
#endif
    n_inferred++;
    if (a != b) fail("the fast and reference kernels return different statuses", m, a, b);
    if (a == MCU_DC_OK) {
        n_infer_ok++;
        if (memcmp(out_fast, out_ref, out_len) != 0) fail("the fast and reference kernels disagree", m, a, b);
    }
    /* an arena one byte short is refused, never overrun */
    if (arena > 0u && mcu_dc_infer(m, in, out_fast, arena_fast, arena - 1u) != MCU_DC_ERR_ARENA_TOO_SMALL) {
        fail("a too-small arena was not refused", m, a, b);
    }
    free(in);
    free(out_fast);
    free(out_ref);
    free(arena_fast);
    free(arena_ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mcu_dc_model_t m;
    uint32_t bb;
    uint8_t *blob;
    mcu_dc_status_t st;
    n_inputs++;
    if (size > 0xFFFFFFF0u) return 0;
    blob = copy_blob(data, size, &bb);
    st = mcu_dc_model_init(&m, blob, bb);
    if (st == MCU_DC_OK) {
#ifdef MCU_DC_FUZZ_STREAMS
        if (mcu_dc_model_check_crc(&m) != MCU_DC_OK) {
            free(blob);
            return 0;
        }
#endif
        if (m.blob != blob || m.blob_bytes > bb || mcu_dc_input_len(&m) == 0u || mcu_dc_output_len(&m) == 0u) {
            fail("an accepted model has an inconsistent binding", &m, st, st);
        }
        n_valid++;
        if (mcu_dc_arena_size(&m) <= MCU_DC_FUZZ_MAX_ARENA && model_work(&m) <= MCU_DC_FUZZ_MAX_WORK) {
            run_both(&m, mcu_dc_model_hash(&m) ^ (uint32_t)size);
        } else {
            n_skipped_work++;
        }
    } else if (m.blob != 0) {
        fail("a refused model stays bound", &m, st, st);
    }
    free(blob);
    return 0;
}

#ifdef MCU_DC_FUZZ_STREAMS
/* ------------------------------------------------------------------ stream mutator */

typedef struct {
    uint32_t off, len;
} region_t;

#define MAX_REGIONS 256u

static uint32_t huff_extent(const uint8_t *blob, uint32_t off, uint32_t alphabet)
{
    mcu_dc_huff_t h;
    mcu_dc_huff_view(blob + off, alphabet, &h);
    return (uint32_t)(h.data - (blob + off)) + h.data_len;
}

/* The coded sections of a valid blob: [off, off + len) each. */
static uint32_t coded_regions(const mcu_dc_model_t *m, region_t *r)
{
    uint32_t i, k = 0u;
    for (i = 0u; i < m->n_ops && k + 4u <= MAX_REGIONS; i++) {
        mcu_dc_node_t n;
        mcu_dc_node_load(m, i, &n);
        if (n.op != MCU_DC_OP_CONV2D && n.op != MCU_DC_OP_DEPTHWISE_CONV2D && n.op != MCU_DC_OP_FC) continue;
        r[k].off = n.bias_off;
        r[k++].len = 4u * n.rows;
        if (n.encoding == MCU_DC_ENC_DENSE_INT8) {
            r[k].off = n.weights_off;
            r[k++].len = n.rows * n.fan_in;
            continue;
        }
        if (n.encoding == MCU_DC_ENC_TERNARY || n.encoding == MCU_DC_ENC_BINARY) {
            r[k].off = n.codebook_off;
            r[k++].len = n.codebook_len;
            r[k].off = n.weights_off; /* the bit-planes (validated: inside the blob) */
            r[k++].len = 4u * mcu_dc_bp_planes(&n) * n.rows * mcu_dc_bp_words(n.fan_in);
            continue;
        }
        if (n.encoding == MCU_DC_ENC_COLUMN_SPARSE) {
            r[k].off = n.codebook_off;
            r[k++].len = n.codebook_len;
            r[k].off = n.weights_off; /* the u32 length and the stream */
            r[k++].len = 4u + mcu_dc_rd32(n.weights);
            continue;
        }
        r[k].off = n.codebook_off;
        r[k++].len = n.codebook_len;
        if (n.weights_off != 0u) {
            r[k].off = n.weights_off;
            r[k++].len = huff_extent(m->blob, n.weights_off, (n.codebook_len + 1u) << n.index_bits);
        }
        if (n.index_off != 0u) {
            r[k].off = n.index_off;
            r[k++].len = huff_extent(m->blob, n.index_off, 1u << n.index_bits);
        }
    }
    return k;
}

static uint32_t crc32_ieee(const uint8_t *p, uint32_t n)
{
    uint32_t crc = 0xFFFFFFFFu, i, b;
    for (i = 0u; i < n; i++) {
        crc ^= p[i];
        for (b = 0u; b < 8u; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    mcu_dc_model_t m;
    region_t regions[MAX_REGIONS];
    uint32_t bb, k, crc;
    uint8_t *blob;
    size_t used;
    region_t r;
    blob = copy_blob(data, size, &bb);
    if (mcu_dc_model_init(&m, blob, bb) != MCU_DC_OK || (k = coded_regions(&m, regions)) == 0u) {
        free(blob);
        return LLVMFuzzerMutate(data, size, max_size); /* not a valid blob: plain mutation */
    }
    free(blob);
    r = regions[seed % k];
    if (r.len == 0u || (uint64_t)r.off + r.len > bb) return size;
    if ((seed >> 8) % 4u == 0u) {
        data[r.off + (seed >> 10) % r.len] ^= (uint8_t)(1u << ((seed >> 16) % 8u)); /* one bit */
    } else {
        used = LLVMFuzzerMutate(data + r.off, r.len, r.len); /* same length: offsets stay valid */
        (void)used;
    }
    crc = crc32_ieee(data + 16, bb - 16u);
    data[12] = (uint8_t)crc;
    data[13] = (uint8_t)(crc >> 8);
    data[14] = (uint8_t)(crc >> 16);
    data[15] = (uint8_t)(crc >> 24);
    return size;
}
#endif
