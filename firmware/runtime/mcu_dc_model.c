/*
 * The model walker: binds and validates a blob (docs/format.md) in place, then runs its
 * ops in order, each through the op registry (mcu_dc_ops.c) with its tensors at their
 * planned arena offsets. The blob is never copied and no op is named here.
 *
 * Format version 2: header, tensor table, op table; every op reads tensors written before
 * it and writes one tensor once; the stored arena plan is checked buffer by buffer (in the
 * arena, 4-aligned, no two live buffers sharing a byte) and its extent must be the
 * header's arena_bytes. Format version 1 (a chain of layers) is read into the same op
 * view, with v1's fixed ping-pong layout: tensor i at 0 (i even) or buf0 (i odd), every
 * scratch at buf0 + buf1.
 */
#include "mcu_dc_internal.h"

#define MCU_DC_MAX_TENSOR_BYTES 0x7FFFFFF0u /* every size, offset and sum stays below 2^32 */

int8_t mcu_dc_requant_out(uint32_t acc, const mcu_dc_node_t *n) { return mcu_dc_requant_s8(acc, n); }

static const mcu_dc_node_t node_zero;
static const mcu_dc_model_t model_zero;

/* ------------------------------------------------------------------ parsing */

static const uint8_t *section(const mcu_dc_model_t *m, uint32_t off)
{
    return (off != 0u && off < m->blob_bytes) ? m->blob + off : 0;
}

/* Tensor t of a v2 blob (zeros when t is out of range). */
static void tensor_v2(const mcu_dc_model_t *m, uint32_t t, uint32_t *c, uint32_t *h, uint32_t *w, int32_t *zp,
                      uint32_t *off)
{
    if (t < m->n_tensors) {
        const uint8_t *e = m->blob + m->tensor_table_off + t * MCU_DC_TEN_BYTES;
        *c = mcu_dc_rd16(e + MCU_DC_TEN_C);
        *h = mcu_dc_rd16(e + MCU_DC_TEN_H);
        *w = mcu_dc_rd16(e + MCU_DC_TEN_W);
        *zp = (int8_t)e[MCU_DC_TEN_ZP];
        *off = mcu_dc_rd32(e + MCU_DC_TEN_ARENA_OFF);
    } else {
        *c = *h = *w = *off = 0u;
        *zp = 0;
    }
}

static const uint8_t *op_desc(const mcu_dc_model_t *m, uint32_t i)
{
    return m->blob + m->op_table_off + i * MCU_DC_OPD_BYTES;
}

static void parse_v2(const mcu_dc_model_t *m, uint32_t i, mcu_dc_node_t *n)
{
    const uint8_t *d = op_desc(m, i);
    n->op = d[MCU_DC_OPD_OP];
    n->encoding = d[MCU_DC_OPD_ENCODING];
    n->index_bits = d[MCU_DC_OPD_INDEX_BITS];
    n->table_bits = d[MCU_DC_OPD_TABLE_BITS];
    n->gather = d[MCU_DC_OPD_GATHER];
    n->n_inputs = d[MCU_DC_OPD_N_INPUTS];
    n->in0 = mcu_dc_rd16(d + MCU_DC_OPD_INPUT0);
    n->in1 = mcu_dc_rd16(d + MCU_DC_OPD_INPUT1);
    n->out = mcu_dc_rd16(d + MCU_DC_OPD_OUTPUT);
    n->kernel_h = mcu_dc_rd16(d + MCU_DC_OPD_KERNEL_H);
    n->kernel_w = mcu_dc_rd16(d + MCU_DC_OPD_KERNEL_W);
    n->stride_h = d[MCU_DC_OPD_STRIDE_H];
    n->stride_w = d[MCU_DC_OPD_STRIDE_W];
    n->pad_top = d[MCU_DC_OPD_PAD_TOP];
    n->pad_left = d[MCU_DC_OPD_PAD_LEFT];
    n->pad_bottom = d[MCU_DC_OPD_PAD_BOTTOM];
    n->pad_right = d[MCU_DC_OPD_PAD_RIGHT];
    n->pool_kh = d[MCU_DC_OPD_POOL_KH];
    n->pool_kw = d[MCU_DC_OPD_POOL_KW];
    n->pool_sh = d[MCU_DC_OPD_POOL_SH];
    n->pool_sw = d[MCU_DC_OPD_POOL_SW];
    n->act_min = (int8_t)d[MCU_DC_OPD_ACT_MIN];
    n->act_max = (int8_t)d[MCU_DC_OPD_ACT_MAX];
    n->shift = d[MCU_DC_OPD_SHIFT];
    n->codebook_len = mcu_dc_rd16(d + MCU_DC_OPD_CODEBOOK_LEN);
    n->multiplier = (int32_t)mcu_dc_rd32(d + MCU_DC_OPD_MULTIPLIER);
    n->multiplier_b = (int32_t)mcu_dc_rd32(d + MCU_DC_OPD_MULTIPLIER_B);
    n->n_entries = mcu_dc_rd32(d + MCU_DC_OPD_N_ENTRIES);
    n->codebook_off = mcu_dc_rd32(d + MCU_DC_OPD_CODEBOOK_OFF);
    n->bias_off = mcu_dc_rd32(d + MCU_DC_OPD_BIAS_OFF);
    n->weights_off = mcu_dc_rd32(d + MCU_DC_OPD_WEIGHTS_OFF);
    n->index_off = mcu_dc_rd32(d + MCU_DC_OPD_INDEX_OFF);
    n->scratch_off = mcu_dc_rd32(d + MCU_DC_OPD_SCRATCH_OFF);
    tensor_v2(m, n->in0, &n->in_c, &n->in_h, &n->in_w, &n->in_zp, &n->in_off);
    if (n->n_inputs >= 2u) tensor_v2(m, n->in1, &n->in1_c, &n->in1_h, &n->in1_w, &n->in1_zp, &n->in1_off);
    tensor_v2(m, n->out, &n->out_c, &n->out_h, &n->out_w, &n->out_zp, &n->out_off);
}

static void parse_v1(const mcu_dc_model_t *m, uint32_t i, mcu_dc_node_t *n)
{
    const uint8_t *d = m->blob + MCU_DC_HDR1_BYTES + i * MCU_DC_LAY1_BYTES;
    n->op = d[MCU_DC_LAY1_OP];
    n->encoding = d[MCU_DC_LAY1_ENCODING];
    n->index_bits = d[MCU_DC_LAY1_INDEX_BITS];
    n->n_inputs = 1u;
    n->in0 = i;
    n->in1 = MCU_DC_NO_TENSOR;
    n->out = i + 1u;
    n->in_c = mcu_dc_rd16(d + MCU_DC_LAY1_IN_C);
    n->in_h = mcu_dc_rd16(d + MCU_DC_LAY1_IN_H);
    n->in_w = mcu_dc_rd16(d + MCU_DC_LAY1_IN_W);
    n->out_c = mcu_dc_rd16(d + MCU_DC_LAY1_OUT_C);
    n->out_h = mcu_dc_rd16(d + MCU_DC_LAY1_OUT_H);
    n->out_w = mcu_dc_rd16(d + MCU_DC_LAY1_OUT_W);
    n->kernel_h = d[MCU_DC_LAY1_KERNEL_H];
    n->kernel_w = d[MCU_DC_LAY1_KERNEL_W];
    n->stride_h = d[MCU_DC_LAY1_STRIDE_H];
    n->stride_w = d[MCU_DC_LAY1_STRIDE_W];
    n->pad_top = n->pad_bottom = d[MCU_DC_LAY1_PAD_H];
    n->pad_left = n->pad_right = d[MCU_DC_LAY1_PAD_W];
    n->in_zp = (int8_t)d[MCU_DC_LAY1_IN_ZP];
    n->out_zp = (int8_t)d[MCU_DC_LAY1_OUT_ZP];
    n->act_min = (int8_t)d[MCU_DC_LAY1_ACT_MIN];
    n->act_max = (int8_t)d[MCU_DC_LAY1_ACT_MAX];
    n->shift = d[MCU_DC_LAY1_SHIFT];
    n->multiplier = (int32_t)mcu_dc_rd32(d + MCU_DC_LAY1_MULTIPLIER);
    n->n_entries = mcu_dc_rd32(d + MCU_DC_LAY1_N_ENTRIES);
    n->codebook_off = mcu_dc_rd32(d + MCU_DC_LAY1_CODEBOOK_OFF);
    n->bias_off = mcu_dc_rd32(d + MCU_DC_LAY1_BIAS_OFF);
    n->weights_off = mcu_dc_rd32(d + MCU_DC_LAY1_WEIGHTS_OFF);
    n->index_off = mcu_dc_rd32(d + MCU_DC_LAY1_INDEX_OFF);
    n->codebook_len = mcu_dc_rd16(d + MCU_DC_LAY1_CODEBOOK_LEN);
    n->in_off = (i & 1u) ? m->v1_buf0 : 0u;
    n->out_off = ((i + 1u) & 1u) ? m->v1_buf0 : 0u;
    n->scratch_off = m->v1_buf0 + m->v1_buf1;
}

void mcu_dc_node_load(const mcu_dc_model_t *m, uint32_t i, mcu_dc_node_t *n)
{
    const mcu_dc_op_impl_t *impl;
    *n = node_zero;
    n->op_index = i;
    if (m->version == 1u) {
        parse_v1(m, i, n);
    } else {
        parse_v2(m, i, n);
    }
    n->codebook = (const int8_t *)(const void *)section(m, n->codebook_off);
    n->bias = section(m, n->bias_off);
    n->weights = section(m, n->weights_off);
    n->index = section(m, n->index_off);
    impl = mcu_dc_op_impl(n->op);
    if (impl != 0 && impl->derive != 0) impl->derive(n);
}

/* ------------------------------------------------------------------ version 1 */

static mcu_dc_status_t init_v1(mcu_dc_model_t *m)
{
    const uint8_t *blob = m->blob;
    const uint32_t bb = m->blob_bytes, n_ops = mcu_dc_rd16(blob + MCU_DC_HDR1_N_LAYERS);
    uint32_t i, c, h, w, buf[2];
    uint64_t scratch = 0u;
    int32_t zp = -128;
    if ((uint64_t)MCU_DC_HDR1_BYTES + (uint64_t)n_ops * MCU_DC_LAY1_BYTES > bb) return MCU_DC_ERR_SIZE;
    if (blob[MCU_DC_HDR1_ROUNDING] != MCU_DC_ROUNDING_HALF_UP) return MCU_DC_ERR_ROUNDING;
    if (n_ops == 0u) return MCU_DC_ERR_SHAPE;
    c = mcu_dc_rd16(blob + MCU_DC_HDR1_IN_C);
    h = mcu_dc_rd16(blob + MCU_DC_HDR1_IN_H);
    w = mcu_dc_rd16(blob + MCU_DC_HDR1_IN_W);
    if (c == 0u || h == 0u || w == 0u || (uint64_t)c * h * w > MCU_DC_MAX_TENSOR_BYTES) return MCU_DC_ERR_SHAPE;
    m->n_ops = n_ops;
    m->n_tensors = n_ops + 1u;
    m->input_tensor = 0u;
    m->output_tensor = n_ops;
    m->input_kind = MCU_DC_INPUT_UINT8;
    m->in_len = c * h * w;
    buf[0] = m->in_len;
    buf[1] = 0u;
    for (i = 0u; i < n_ops; i++) {
        mcu_dc_node_t n;
        const mcu_dc_op_impl_t *impl;
        mcu_dc_status_t st;
        uint64_t size, sz;
        mcu_dc_node_load(m, i, &n);
        impl = mcu_dc_op_impl(n.op);
        if (impl == 0 || (n.op != MCU_DC_OP_CONV2D && n.op != MCU_DC_OP_FC && n.op != MCU_DC_OP_MAXPOOL2D)) {
            return MCU_DC_ERR_UNKNOWN_OP; /* version 1 has these three ops only */
        }
        if (n.encoding > MCU_DC_ENC_HUFFMAN_SPARSE) return MCU_DC_ERR_UNKNOWN_ENCODING; /* and two encodings */
        if (n.in_c != c || n.in_h != h || n.in_w != w) return MCU_DC_ERR_SHAPE;
        size = (uint64_t)n.out_c * n.out_h * n.out_w;
        if (size == 0u || size > MCU_DC_MAX_TENSOR_BYTES) return MCU_DC_ERR_SHAPE;
        if (n.in_zp != zp) return MCU_DC_ERR_PARAM;
        st = impl->validate(&n, blob, bb);
        if (st != MCU_DC_OK) return st;
        sz = impl->scratch_size(&n);
        if (sz > scratch) scratch = sz;
        if (size > buf[(i + 1u) & 1u]) buf[(i + 1u) & 1u] = (uint32_t)size;
        c = n.out_c;
        h = n.out_h;
        w = n.out_w;
        zp = n.out_zp;
    }
    if (c * h * w != mcu_dc_rd16(blob + MCU_DC_HDR1_OUT_LEN)) return MCU_DC_ERR_SHAPE;
    m->v1_buf0 = mcu_dc_align4(buf[0]);
    m->v1_buf1 = mcu_dc_align4(buf[1]);
    if ((uint64_t)m->v1_buf0 + m->v1_buf1 + scratch != mcu_dc_rd32(blob + MCU_DC_HDR1_ARENA_BYTES)) {
        return MCU_DC_ERR_ARENA_MISMATCH;
    }
    m->arena_bytes = mcu_dc_rd32(blob + MCU_DC_HDR1_ARENA_BYTES);
    m->out_len = c * h * w;
    m->in_off = 0u;
    m->out_off = (n_ops & 1u) ? m->v1_buf0 : 0u;
    return MCU_DC_OK;
}

/* ------------------------------------------------------------------ version 2 */

static uint32_t op_output(const mcu_dc_model_t *m, uint32_t j) { return mcu_dc_rd16(op_desc(m, j) + MCU_DC_OPD_OUTPUT); }

static int op_reads(const mcu_dc_model_t *m, uint32_t j, uint32_t t)
{
    const uint8_t *d = op_desc(m, j);
    return mcu_dc_rd16(d + MCU_DC_OPD_INPUT0) == t ||
           (d[MCU_DC_OPD_N_INPUTS] >= 2u && mcu_dc_rd16(d + MCU_DC_OPD_INPUT1) == t);
}

/* t is the input tensor or the output of an op before op i */
static int written_before(const mcu_dc_model_t *m, uint32_t t, uint32_t i)
{
    uint32_t j;
    if (t == m->input_tensor) return 1;
    for (j = 0u; j < i; j++) {
        if (op_output(m, j) == t) return 1;
    }
    return 0;
}

/* Lifetime of tensor t in op indices: from its producer (the input: -1) to its last
 * reader (the output: n_ops, it is copied out at the end). */
static void tensor_life(const mcu_dc_model_t *m, uint32_t t, int32_t *first, int32_t *last, uint32_t *readers)
{
    uint32_t j;
    *first = -1;
    *readers = 0u;
    for (j = 0u; j < m->n_ops; j++) {
        if (t != m->input_tensor && op_output(m, j) == t) *first = (int32_t)j;
    }
    *last = *first;
    for (j = 0u; j < m->n_ops; j++) {
        if (op_reads(m, j, t)) {
            *last = (int32_t)j;
            (*readers)++;
        }
    }
    if (t == m->output_tensor) *last = (int32_t)m->n_ops;
}

static void tensor_span(const mcu_dc_model_t *m, uint32_t t, uint32_t *off, uint32_t *size)
{
    uint32_t c, h, w;
    int32_t zp;
    tensor_v2(m, t, &c, &h, &w, &zp, off);
    *size = c * h * w; /* validated <= MCU_DC_MAX_TENSOR_BYTES */
}

static int bytes_overlap(uint32_t oa, uint32_t sa, uint32_t ob, uint32_t sb)
{
    return (uint64_t)oa < (uint64_t)ob + sb && (uint64_t)ob < (uint64_t)oa + sa;
}

/* No two buffers alive at the same time share a byte (tensors, and each op's scratch,
 * alive during its op only). Lifetimes are computed only for pairs that share bytes. */
static mcu_dc_status_t check_overlaps(const mcu_dc_model_t *m)
{
    uint32_t a, b, i, oa, sa, ob, sb, ra;
    int32_t fa, la, fb, lb;
    for (a = 0u; a < m->n_tensors; a++) {
        int life_a = 0;
        tensor_span(m, a, &oa, &sa);
        for (b = a + 1u; b < m->n_tensors; b++) {
            tensor_span(m, b, &ob, &sb);
            if (!bytes_overlap(oa, sa, ob, sb)) continue;
            if (!life_a) {
                tensor_life(m, a, &fa, &la, &ra);
                life_a = 1;
            }
            tensor_life(m, b, &fb, &lb, &ra);
            if (fa <= lb && fb <= la) return MCU_DC_ERR_ARENA_PLAN;
        }
    }
    for (i = 0u; i < m->n_ops; i++) {
        mcu_dc_node_t n;
        const mcu_dc_op_impl_t *impl;
        uint64_t sz;
        mcu_dc_node_load(m, i, &n);
        impl = mcu_dc_op_impl(n.op);
        sz = impl->scratch_size(&n); /* validated: the op is known, sz + scratch_off fits */
        if (sz == 0u) continue;
        for (b = 0u; b < m->n_tensors; b++) {
            tensor_span(m, b, &ob, &sb);
            if (!bytes_overlap(n.scratch_off, (uint32_t)sz, ob, sb)) continue;
            tensor_life(m, b, &fb, &lb, &ra);
            if (fb <= (int32_t)i && (int32_t)i <= lb) return MCU_DC_ERR_ARENA_PLAN;
        }
    }
    return MCU_DC_OK;
}

static mcu_dc_status_t init_v2(mcu_dc_model_t *m)
{
    const uint8_t *blob = m->blob;
    const uint32_t bb = m->blob_bytes;
    uint32_t i, t, arena;
    uint64_t extent = 0u;
    mcu_dc_status_t st;
    m->n_ops = mcu_dc_rd16(blob + MCU_DC_HDR_N_OPS);
    m->n_tensors = mcu_dc_rd16(blob + MCU_DC_HDR_N_TENSORS);
    m->tensor_table_off = mcu_dc_rd32(blob + MCU_DC_HDR_TENSOR_TABLE_OFF);
    m->op_table_off = mcu_dc_rd32(blob + MCU_DC_HDR_OP_TABLE_OFF);
    m->input_tensor = mcu_dc_rd16(blob + MCU_DC_HDR_INPUT_TENSOR);
    m->output_tensor = mcu_dc_rd16(blob + MCU_DC_HDR_OUTPUT_TENSOR);
    m->input_kind = blob[MCU_DC_HDR_INPUT_KIND];
    arena = mcu_dc_rd32(blob + MCU_DC_HDR_ARENA_BYTES);
    if (m->tensor_table_off != MCU_DC_HDR_BYTES ||
        (uint64_t)m->op_table_off != (uint64_t)m->tensor_table_off + (uint64_t)m->n_tensors * MCU_DC_TEN_BYTES) {
        return MCU_DC_ERR_OFFSET;
    }
    if ((uint64_t)m->op_table_off + (uint64_t)m->n_ops * MCU_DC_OPD_BYTES > bb) return MCU_DC_ERR_SIZE;
    if (blob[MCU_DC_HDR_ROUNDING] != MCU_DC_ROUNDING_HALF_UP) return MCU_DC_ERR_ROUNDING;
    if (m->input_kind != MCU_DC_INPUT_UINT8 && m->input_kind != MCU_DC_INPUT_INT8) return MCU_DC_ERR_PARAM;
    if (m->n_ops == 0u || m->n_tensors == 0u) return MCU_DC_ERR_GRAPH;
    if (m->input_tensor >= m->n_tensors || m->output_tensor >= m->n_tensors) return MCU_DC_ERR_GRAPH;
    if (m->input_tensor == m->output_tensor) return MCU_DC_ERR_GRAPH;

    /* tensors: a shape, a 4-aligned place inside the arena */
    for (t = 0u; t < m->n_tensors; t++) {
        const uint8_t *e = blob + m->tensor_table_off + t * MCU_DC_TEN_BYTES;
        const uint64_t size = (uint64_t)mcu_dc_rd16(e + MCU_DC_TEN_C) * mcu_dc_rd16(e + MCU_DC_TEN_H) *
                              mcu_dc_rd16(e + MCU_DC_TEN_W);
        const uint32_t off = mcu_dc_rd32(e + MCU_DC_TEN_ARENA_OFF);
        if (size == 0u || size > MCU_DC_MAX_TENSOR_BYTES) return MCU_DC_ERR_SHAPE;
        if ((off & 3u) != 0u || (uint64_t)off + size > arena) return MCU_DC_ERR_ARENA_PLAN;
        if ((uint64_t)off + ((size + 3u) & ~(uint64_t)3u) > extent) extent = (uint64_t)off + ((size + 3u) & ~(uint64_t)3u);
    }

    /* ops, in execution order */
    for (i = 0u; i < m->n_ops; i++) {
        mcu_dc_node_t n;
        const mcu_dc_op_impl_t *impl;
        uint64_t sz;
        mcu_dc_node_load(m, i, &n);
        impl = mcu_dc_op_impl(n.op);
        if (impl == 0) return MCU_DC_ERR_UNKNOWN_OP;
        if (n.n_inputs != impl->n_inputs) return MCU_DC_ERR_GRAPH;
        if (n.in0 >= m->n_tensors || n.out >= m->n_tensors || (n.n_inputs >= 2u && n.in1 >= m->n_tensors)) {
            return MCU_DC_ERR_GRAPH;
        }
        if (!written_before(m, n.in0, i) || (n.n_inputs >= 2u && !written_before(m, n.in1, i))) {
            return MCU_DC_ERR_GRAPH; /* reads a tensor no earlier op writes */
        }
        if (written_before(m, n.out, i)) return MCU_DC_ERR_GRAPH; /* the input, or written twice */
        st = impl->validate(&n, blob, bb);
        if (st != MCU_DC_OK) return st;
        sz = impl->scratch_size(&n);
        if (sz == 0u) {
            if (n.scratch_off != 0u) return MCU_DC_ERR_ARENA_PLAN;
        } else {
            if ((n.scratch_off & 3u) != 0u || (uint64_t)n.scratch_off + sz > arena) return MCU_DC_ERR_ARENA_PLAN;
            if ((uint64_t)n.scratch_off + ((sz + 3u) & ~(uint64_t)3u) > extent) {
                extent = (uint64_t)n.scratch_off + ((sz + 3u) & ~(uint64_t)3u);
            }
        }
    }

    /* every tensor but the input is written; every tensor but the output is read */
    for (t = 0u; t < m->n_tensors; t++) {
        int32_t first, last;
        uint32_t readers;
        tensor_life(m, t, &first, &last, &readers);
        if (t != m->input_tensor && first < 0) return MCU_DC_ERR_GRAPH;
        if (t != m->output_tensor && readers == 0u) return MCU_DC_ERR_GRAPH;
    }
    if (m->input_kind == MCU_DC_INPUT_UINT8 &&
        (int8_t)blob[m->tensor_table_off + m->input_tensor * MCU_DC_TEN_BYTES + MCU_DC_TEN_ZP] != -128) {
        return MCU_DC_ERR_PARAM; /* a uint8 input byte b is the int8 b - 128 */
    }
    st = check_overlaps(m);
    if (st != MCU_DC_OK) return st;
    if (extent != arena) return MCU_DC_ERR_ARENA_MISMATCH; /* every buffer fits, but the extent is not the header's */

    m->arena_bytes = arena;
    tensor_span(m, m->input_tensor, &m->in_off, &m->in_len);
    tensor_span(m, m->output_tensor, &m->out_off, &m->out_len);
    return MCU_DC_OK;
}

/* ------------------------------------------------------------------ the API */

mcu_dc_status_t mcu_dc_model_init(mcu_dc_model_t *m, const uint8_t *blob, uint32_t blob_bytes)
{
    mcu_dc_model_t t;
    uint32_t version, bb, header;
    mcu_dc_status_t st;
    if (m == 0) return MCU_DC_ERR_NULL;
    m->blob = 0;
    m->blob_bytes = 0u;
    if (blob == 0) return MCU_DC_ERR_NULL;
    if (((uintptr_t)blob & 3u) != 0u) return MCU_DC_ERR_ALIGN;
    if (blob_bytes < 16u) return MCU_DC_ERR_SIZE;
    if (blob[0] != MCU_DC_MAGIC0 || blob[1] != MCU_DC_MAGIC1 || blob[2] != MCU_DC_MAGIC2 || blob[3] != MCU_DC_MAGIC3) {
        return MCU_DC_ERR_BAD_MAGIC;
    }
    version = mcu_dc_rd16(blob + MCU_DC_HDR_FORMAT_VERSION);
    if (version == 0u || version > MCU_DC_FORMAT_VERSION) return MCU_DC_ERR_VERSION;
    header = version == 1u ? MCU_DC_HDR1_BYTES : MCU_DC_HDR_BYTES;
    bb = mcu_dc_rd32(blob + MCU_DC_HDR_BLOB_BYTES); /* offset 8 in both versions */
    if (blob_bytes < header || bb > blob_bytes || (bb & 3u) != 0u || bb < header) return MCU_DC_ERR_SIZE;
    t = model_zero;
    t.blob = blob;
    t.blob_bytes = bb;
    t.version = version;
    st = version == 1u ? init_v1(&t) : init_v2(&t);
    if (st != MCU_DC_OK) return st;
    *m = t;
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
    if (crc32_update(0u, m->blob + 16u, m->blob_bytes - 16u) != mcu_dc_rd32(m->blob + MCU_DC_HDR_CRC32)) {
        return MCU_DC_ERR_CRC;
    }
    return MCU_DC_OK;
}

uint32_t mcu_dc_arena_size(const mcu_dc_model_t *m) { return (m != 0 && m->blob != 0) ? m->arena_bytes : 0u; }

uint32_t mcu_dc_input_len(const mcu_dc_model_t *m) { return (m != 0 && m->blob != 0) ? m->in_len : 0u; }

uint32_t mcu_dc_output_len(const mcu_dc_model_t *m) { return (m != 0 && m->blob != 0) ? m->out_len : 0u; }

uint32_t mcu_dc_model_hash(const mcu_dc_model_t *m)
{
    return (m != 0 && m->blob != 0) ? mcu_dc_rd32(m->blob + MCU_DC_HDR_CRC32) : 0u;
}

mcu_dc_input_kind_t mcu_dc_input_kind(const mcu_dc_model_t *m)
{
    return (m != 0 && m->blob != 0 && m->input_kind == MCU_DC_INPUT_INT8) ? MCU_DC_INPUT_INT8 : MCU_DC_INPUT_UINT8;
}

static mcu_dc_status_t infer(const mcu_dc_model_t *m, const uint8_t *in, int8_t *out, void *arena,
                             uint32_t arena_bytes, int ref)
{
    uint8_t *a = (uint8_t *)arena;
    uint32_t i;
    if (m == 0 || m->blob == 0 || in == 0 || out == 0 || arena == 0) return MCU_DC_ERR_NULL;
    if (((uintptr_t)arena & 3u) != 0u) return MCU_DC_ERR_ARENA_ALIGN;
    if (arena_bytes < m->arena_bytes) return MCU_DC_ERR_ARENA_TOO_SMALL;
    {
        uint8_t *x = a + m->in_off;
        const uint8_t flip = m->input_kind == MCU_DC_INPUT_UINT8 ? 0x80u : 0u; /* UINT8: b - 128 */
        for (i = 0u; i < m->in_len; i++) x[i] = (uint8_t)(in[i] ^ flip);
    }
    for (i = 0u; i < m->n_ops; i++) {
        mcu_dc_node_t n;
        mcu_dc_io_t io;
        const mcu_dc_op_impl_t *impl;
        mcu_dc_status_t st;
        mcu_dc_node_load(m, i, &n);
        impl = mcu_dc_op_impl(n.op);
        if (impl == 0) return MCU_DC_ERR_UNKNOWN_OP; /* not reached for a validated model */
        io.x = (const int8_t *)(const void *)(a + n.in_off);
        io.x1 = n.n_inputs >= 2u ? (const int8_t *)(const void *)(a + n.in1_off) : 0;
        io.y = (int8_t *)(void *)(a + n.out_off);
        io.scratch = (uint32_t *)(void *)(a + n.scratch_off);
        st = ref ? impl->run_ref(&n, &io) : impl->run(&n, &io);
        if (st != MCU_DC_OK) return st;
    }
    {
        const int8_t *y = (const int8_t *)(const void *)(a + m->out_off);
        for (i = 0u; i < m->out_len; i++) out[i] = y[i];
    }
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
