/*
 * mcu_dc protocol server: answers HELLO, INFER, PING and BYE frames for one model
 * (docs/protocol.md). All memory is the caller's: the payload buffer (at least the
 * model's input length and MCU_DC_PROTO_MIN_PAYLOAD_CAP), the output buffer (the model's
 * output length) and the arena. C99, no malloc.
 */
#ifndef MCU_DC_SERVER_H
#define MCU_DC_SERVER_H

#include <stdint.h>

#include "mcu_dc.h"
#include "mcu_dc_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const mcu_dc_model_t *model;
    int32_t init_status;  /* status of mcu_dc_model_init / mcu_dc_model_check_crc; 0 = ok */
    void *arena;
    uint32_t arena_bytes;
    int8_t *out;
    uint32_t out_cap;
    mcu_dc_proto_parser_t parser;
} mcu_dc_server_t;

void mcu_dc_server_init(mcu_dc_server_t *s, const mcu_dc_model_t *model, int32_t init_status,
                        void *arena, uint32_t arena_bytes, uint8_t *payload_buf, uint32_t payload_cap,
                        int8_t *out, uint32_t out_cap);

/* Handle one poll of the UART: read at most one byte and act on it. */
void mcu_dc_server_poll(mcu_dc_server_t *s);

/* Serve forever (BYE ends the program through mcu_dc_bsp_exit(0)). */
void mcu_dc_server_run(mcu_dc_server_t *s);

#ifdef __cplusplus
}
#endif

#endif /* MCU_DC_SERVER_H */
