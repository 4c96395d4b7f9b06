/*
 * mcu_dc runtime: runs a compressed model blob (docs/format.md) straight from flash.
 *
 * C99, no malloc, no stdio. The caller owns all memory: the blob (read in place, never
 * copied; it must be 4-byte aligned), the input, the output and one arena of
 * mcu_dc_arena_size() bytes (4-byte aligned). Every entry point returns a status code.
 *
 *   mcu_dc_model_t m;
 *   if (mcu_dc_model_init(&m, blob, blob_bytes) != MCU_DC_OK) ...;
 *   static uint32_t arena[ARENA_BYTES / 4];
 *   mcu_dc_infer(&m, input, scores, arena, sizeof arena);
 *
 * Blobs of format version 2 (a graph: tensor table + op table, planned arena) and of
 * version 1 (a chain of layers, ping-pong arena) are both read.
 */
#ifndef MCU_DC_H
#define MCU_DC_H

#include <stdint.h>

#include "mcu_dc_format.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A bound model. blob and blob_bytes are public; the other fields are a cache that
 * mcu_dc_model_init fills from the validated blob (read them through the functions). */
typedef struct {
    const uint8_t *blob;
    uint32_t blob_bytes;
    uint32_t version;                           /* format version, 1 or 2 */
    uint32_t n_ops, n_tensors;                  /* ops (v1: layers); tensors (v1: n_ops + 1) */
    uint32_t tensor_table_off, op_table_off;    /* v2 table offsets (v1: 0, the layer table) */
    uint32_t input_tensor, output_tensor, input_kind;
    uint32_t in_len, out_len, in_off, out_off;  /* bytes and arena offsets of the input / output tensor */
    uint32_t arena_bytes;
    uint32_t v1_buf0, v1_buf1;                  /* v1: the two ping-pong buffer sizes (scratch after them) */
} mcu_dc_model_t;

/* Validate the header, the tensor and op tables (graph wiring, shapes, parameters, the
 * stored arena plan), every section offset and every Huffman table, then bind m to blob.
 * On failure m->blob is NULL and the status says why. */
mcu_dc_status_t mcu_dc_model_init(mcu_dc_model_t *m, const uint8_t *blob, uint32_t blob_bytes);

/* Recompute the blob's CRC-32 and compare it with the header (MCU_DC_ERR_CRC if not). */
mcu_dc_status_t mcu_dc_model_check_crc(const mcu_dc_model_t *m);

uint32_t mcu_dc_arena_size(const mcu_dc_model_t *m);  /* exact bytes mcu_dc_infer needs */
uint32_t mcu_dc_input_len(const mcu_dc_model_t *m);   /* bytes of input */
uint32_t mcu_dc_output_len(const mcu_dc_model_t *m);  /* int8 outputs */
uint32_t mcu_dc_model_hash(const mcu_dc_model_t *m);  /* header crc32 */
/* MCU_DC_INPUT_UINT8 (byte b is the int8 b - 128, e.g. pixels) or MCU_DC_INPUT_INT8
 * (the bytes are int8 values quantized on the host); MCU_DC_INPUT_UINT8 when unbound. */
mcu_dc_input_kind_t mcu_dc_input_kind(const mcu_dc_model_t *m);

/* One inference: in[input_len] bytes -> out[output_len] int8. */
mcu_dc_status_t mcu_dc_infer(const mcu_dc_model_t *m, const uint8_t *in, int8_t *out, void *arena,
                             uint32_t arena_bytes);

/* The same inference with the plain reference kernels (bit-serial Huffman decode, one
 * weight reader for every encoding); tests prove it equal to mcu_dc_infer. */
mcu_dc_status_t mcu_dc_infer_ref(const mcu_dc_model_t *m, const uint8_t *in, int8_t *out, void *arena,
                                 uint32_t arena_bytes);

/* "MCU_DC_OK", "MCU_DC_ERR_CRC", ...; "MCU_DC_UNKNOWN_STATUS" for other values. */
const char *mcu_dc_status_name(mcu_dc_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* MCU_DC_H */
