/* A stand-in for the runtime so the protocol server can be tested on its own:
 * a "model" with 16 input bytes and 4 outputs, out[i] = in[i] + in[i + 4] (int8 wrap). */
#include "mcu_dc.h"

#define STUB_IN 16u
#define STUB_OUT 4u

mcu_dc_status_t mcu_dc_model_init(mcu_dc_model_t *m, const uint8_t *blob, uint32_t blob_bytes)
{
    m->blob = blob;
    m->blob_bytes = blob_bytes;
    return MCU_DC_OK;
}

mcu_dc_status_t mcu_dc_model_check_crc(const mcu_dc_model_t *m)
{
    (void)m;
    return MCU_DC_OK;
}

uint32_t mcu_dc_arena_size(const mcu_dc_model_t *m)
{
    (void)m;
    return 64u;
}

uint32_t mcu_dc_input_len(const mcu_dc_model_t *m)
{
    (void)m;
    return STUB_IN;
}

uint32_t mcu_dc_output_len(const mcu_dc_model_t *m)
{
    (void)m;
    return STUB_OUT;
}

uint32_t mcu_dc_model_hash(const mcu_dc_model_t *m)
{
    (void)m;
    return 0x12345678u;
}

mcu_dc_status_t mcu_dc_infer(const mcu_dc_model_t *m, const uint8_t *in, int8_t *out, void *arena,
                             uint32_t arena_bytes)
{
    uint32_t i;
    (void)m;
    (void)arena;
    (void)arena_bytes;
    for (i = 0; i < STUB_OUT; ++i) {
        out[i] = (int8_t)(uint8_t)(in[i] + in[i + 4u]);
    }
    return MCU_DC_OK;
}
