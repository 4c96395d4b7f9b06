/*
 * mcu_dc serial protocol: frame parser and writer (docs/protocol.md).
 *
 *   0xA5 0x5A | type u8 | seq u8 | len u16 LE | payload[len] | crc32 u32 LE
 *
 * crc32 is CRC-32/IEEE (zlib) over type, seq, len and payload. The parser is a byte-wise
 * state machine over a caller-owned payload buffer: no malloc, no recursion, bounded work
 * per byte. Garbage is skipped while hunting for the sync bytes; a bad CRC, an oversize
 * length or a frame that stops arriving (inter-byte timeout) yields an error event and the
 * parser goes back to hunting, so the server always answers and keeps serving.
 * C99.
 */
#ifndef MCU_DC_PROTO_H
#define MCU_DC_PROTO_H

#include <stdint.h>

#include "mcu_dc_proto_defs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Polls without a byte, in the middle of a frame, before the frame is dropped with
 * MCU_DC_PERR_TIMEOUT. Boards poll fast (millions of polls per second); the host BSP
 * waits 1 ms per empty poll and overrides this. */
#ifndef MCU_DC_PROTO_IDLE_POLLS
#define MCU_DC_PROTO_IDLE_POLLS 0x01000000ul
#endif

typedef enum {
    MCU_DC_PROTO_EV_NONE = 0,  /* keep feeding */
    MCU_DC_PROTO_EV_FRAME = 1, /* a complete, CRC-checked frame: type, seq, buf[0..len) */
    MCU_DC_PROTO_EV_ERROR = 2  /* a frame was dropped: err, err_detail, type, seq */
} mcu_dc_proto_event_t;

typedef struct {
    uint8_t *buf;        /* payload buffer (caller-owned) */
    uint32_t cap;        /* its size: the largest payload accepted */
    uint32_t idle_limit; /* empty polls mid-frame before a timeout */
    /* state */
    uint8_t state;
    uint8_t type;
    uint8_t seq;
    uint8_t err;         /* MCU_DC_PERR_* after MCU_DC_PROTO_EV_ERROR */
    uint32_t len;
    uint32_t pos;
    uint32_t crc;        /* running CRC (pre-inverted) */
    uint32_t rx_crc;     /* CRC bytes as received */
    uint32_t idle;
    uint32_t err_detail;
} mcu_dc_proto_parser_t;

void mcu_dc_proto_parser_init(mcu_dc_proto_parser_t *p, uint8_t *buf, uint32_t cap);

/* Feed one received byte. */
mcu_dc_proto_event_t mcu_dc_proto_feed(mcu_dc_proto_parser_t *p, uint8_t byte);

/* Tell the parser that no byte arrived on this poll (drives the inter-byte timeout). */
mcu_dc_proto_event_t mcu_dc_proto_idle(mcu_dc_proto_parser_t *p);

/* CRC-32/IEEE: crc = mcu_dc_proto_crc32_update(0xFFFFFFFF, ...) ... then ~crc. */
uint32_t mcu_dc_proto_crc32_update(uint32_t crc, const uint8_t *data, uint32_t len);

/* Send one frame through mcu_dc_bsp_write; the payload is head[0..head_len) followed by
 * body[0..body_len) (either may be empty), so callers need no combined buffer. */
void mcu_dc_proto_send(uint8_t type, uint8_t seq, const uint8_t *head, uint32_t head_len,
                       const uint8_t *body, uint32_t body_len);

/* Send an ERROR frame: code, the type it rejects, a detail word. */
void mcu_dc_proto_send_error(uint8_t seq, uint8_t code, uint8_t rejected_type, uint32_t detail);

/* Little-endian store helpers for payload building. */
void mcu_dc_proto_put_u16(uint8_t *dst, uint16_t v);
void mcu_dc_proto_put_u32(uint8_t *dst, uint32_t v);

#ifdef __cplusplus
}
#endif

#endif /* MCU_DC_PROTO_H */
