/*
 * mcu_dc firmware main: boots the board, checks the model in flash and serves the
 * serial protocol (docs/protocol.md) forever. A BYE frame ends the program through
 * mcu_dc_bsp_exit(0) (semihosting exit under QEMU).
 *
 * Every buffer is static and sized at compile time from the generated mcu_dc_models.h:
 * the arena (MCU_DC_DEFAULT_ARENA_BYTES, 4-aligned), the receive buffer (the model's
 * input length) and the output buffer (its output length).
 */
#include <stdint.h>

#include "mcu_dc.h"
#include "mcu_dc_bsp.h"
#include "mcu_dc_models.h"
#include "mcu_dc_proto.h"
#include "mcu_dc_server.h"

/* The input and output tensors always fit in the arena (docs/format.md, "Arena"), so
 * the arena size is a safe upper bound when the generated header names no lengths. */
#ifdef MCU_DC_DEFAULT_INPUT_LEN
#define MCU_DC_APP_IN_LEN (MCU_DC_DEFAULT_INPUT_LEN)
#else
#define MCU_DC_APP_IN_LEN (MCU_DC_DEFAULT_ARENA_BYTES)
#endif
#ifdef MCU_DC_DEFAULT_OUTPUT_LEN
#define MCU_DC_APP_OUT_LEN (MCU_DC_DEFAULT_OUTPUT_LEN)
#else
#define MCU_DC_APP_OUT_LEN (MCU_DC_DEFAULT_ARENA_BYTES)
#endif

#define MCU_DC_APP_RX_CAP \
    ((MCU_DC_APP_IN_LEN) > MCU_DC_PROTO_MIN_PAYLOAD_CAP ? (MCU_DC_APP_IN_LEN) : MCU_DC_PROTO_MIN_PAYLOAD_CAP)

#define MCU_DC_APP_ARENA_WORDS (((MCU_DC_DEFAULT_ARENA_BYTES) + 3u) / 4u)

static uint32_t g_arena[MCU_DC_APP_ARENA_WORDS > 0u ? MCU_DC_APP_ARENA_WORDS : 1u];
static uint8_t g_rx[MCU_DC_APP_RX_CAP];
static int8_t g_out[(MCU_DC_APP_OUT_LEN) > 0u ? (MCU_DC_APP_OUT_LEN) : 1u];
static mcu_dc_model_t g_model;
static mcu_dc_server_t g_server;

int main(void)
{
    mcu_dc_status_t st;
    int32_t init_status;

    mcu_dc_bsp_init();
    st = mcu_dc_model_init(&g_model, MCU_DC_DEFAULT_BLOB, MCU_DC_DEFAULT_BLOB_BYTES);
    if (st == MCU_DC_OK) {
        st = mcu_dc_model_check_crc(&g_model);
    }
    init_status = (int32_t)st;
    if (st == MCU_DC_OK && mcu_dc_arena_size(&g_model) > (uint32_t)sizeof g_arena) {
        init_status = -1; /* the arena compiled in is smaller than the model asks for */
    }
    mcu_dc_server_init(&g_server, &g_model, init_status, g_arena, (uint32_t)sizeof g_arena, g_rx,
                       (uint32_t)sizeof g_rx, g_out, (uint32_t)sizeof g_out);
    mcu_dc_server_run(&g_server);
    return 0;
}
