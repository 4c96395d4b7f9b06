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
 *   mcu_dc_infer(&m, pixels, scores, arena, sizeof arena);
 */
#ifndef MCU_DC_H
#define MCU_DC_H

#include <stdint.h>

#include "mcu_dc_format.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const uint8_t *blob;
    uint32_t blob_bytes;
} mcu_dc_model_t;

/* Validate the header, the layer table, every section offset and every Huffman table,
 * then bind m to blob. On failure m->blob is NULL and the status says why. */
mcu_dc_status_t mcu_dc_model_init(mcu_dc_model_t *m, const uint8_t *blob, uint32_t blob_bytes);

/* Recompute the blob's CRC-32 and compare it with the header (MCU_DC_ERR_CRC if not). */
mcu_dc_status_t mcu_dc_model_check_crc(const mcu_dc_model_t *m);

uint32_t mcu_dc_arena_size(const mcu_dc_model_t *m);  /* exact bytes mcu_dc_infer needs */
uint32_t mcu_dc_input_len(const mcu_dc_model_t *m);   /* bytes of uint8 input */
uint32_t mcu_dc_output_len(const mcu_dc_model_t *m);  /* int8 outputs */
uint32_t mcu_dc_model_hash(const mcu_dc_model_t *m);  /* header crc32 */

/* One inference: in[input_len] raw bytes -> out[output_len] int8. */
mcu_dc_status_t mcu_dc_infer(const mcu_dc_model_t *m, const uint8_t *in, int8_t *out, void *arena,
                             uint32_t arena_bytes);

/* The same inference with the plain reference kernels (bit-serial Huffman decode);
 * tests prove it equal to mcu_dc_infer. */
mcu_dc_status_t mcu_dc_infer_ref(const mcu_dc_model_t *m, const uint8_t *in, int8_t *out, void *arena,
                                 uint32_t arena_bytes);

/* "MCU_DC_OK", "MCU_DC_ERR_CRC", ...; "MCU_DC_UNKNOWN_STATUS" for other values. */
const char *mcu_dc_status_name(mcu_dc_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* MCU_DC_H */
