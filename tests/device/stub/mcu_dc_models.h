/* Stand-in for the generated mcu_dc_models.h (see stub_runtime.c). */
#ifndef MCU_DC_MODELS_H
#define MCU_DC_MODELS_H
#include <stdint.h>
static const uint32_t stub_blob[8] = {0x4344434Du, 1u};
#define MCU_DC_DEFAULT_BLOB ((const uint8_t *)stub_blob)
#define MCU_DC_DEFAULT_BLOB_BYTES 32u
#define MCU_DC_DEFAULT_ARENA_BYTES 64u
#define MCU_DC_DEFAULT_INPUT_LEN 16u
#define MCU_DC_DEFAULT_OUTPUT_LEN 4u
#endif
