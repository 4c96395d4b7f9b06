/* mcu_dc serial protocol: frame parser and writer. See mcu_dc_proto.h. C99, no malloc. */
#include "mcu_dc_proto.h"

#include "mcu_dc_bsp.h"

enum {
    ST_SYNC0 = 0,
    ST_SYNC1,
    ST_TYPE,
    ST_SEQ,
    ST_LEN0,
    ST_LEN1,
    ST_PAYLOAD,
    ST_CRC0,
    ST_CRC1,
    ST_CRC2,
    ST_CRC3
};

uint32_t mcu_dc_proto_crc32_update(uint32_t crc, const uint8_t *data, uint32_t len)
{
    uint32_t i;
    for (i = 0; i < len; ++i) {
        int bit;
        crc ^= data[i];
        for (bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return crc;
}

static void crc_byte(mcu_dc_proto_parser_t *p, uint8_t b)
{
    p->crc = mcu_dc_proto_crc32_update(p->crc, &b, 1u);
}

void mcu_dc_proto_parser_init(mcu_dc_proto_parser_t *p, uint8_t *buf, uint32_t cap)
{
    p->buf = buf;
    p->cap = cap;
    p->idle_limit = MCU_DC_PROTO_IDLE_POLLS;
    p->state = ST_SYNC0;
    p->type = 0;
    p->seq = 0;
    p->err = 0;
    p->len = 0;
    p->pos = 0;
    p->crc = 0xFFFFFFFFu;
    p->rx_crc = 0;
    p->idle = 0;
    p->err_detail = 0;
}

static mcu_dc_proto_event_t fail(mcu_dc_proto_parser_t *p, uint8_t code, uint32_t detail)
{
    p->err = code;
    p->err_detail = detail;
    p->state = ST_SYNC0;
    return MCU_DC_PROTO_EV_ERROR;
}

mcu_dc_proto_event_t mcu_dc_proto_feed(mcu_dc_proto_parser_t *p, uint8_t byte)
{
    p->idle = 0;
    switch (p->state) {
    case ST_SYNC0:
        if (byte == MCU_DC_PROTO_SYNC0) {
            p->state = ST_SYNC1;
        }
        return MCU_DC_PROTO_EV_NONE;
    case ST_SYNC1:
        if (byte == MCU_DC_PROTO_SYNC1) {
            p->state = ST_TYPE;
            p->crc = 0xFFFFFFFFu;
        } else if (byte != MCU_DC_PROTO_SYNC0) {
            p->state = ST_SYNC0;
        }
        return MCU_DC_PROTO_EV_NONE;
    case ST_TYPE:
        p->type = byte;
        crc_byte(p, byte);
        p->state = ST_SEQ;
        return MCU_DC_PROTO_EV_NONE;
    case ST_SEQ:
        p->seq = byte;
        crc_byte(p, byte);
        p->state = ST_LEN0;
        return MCU_DC_PROTO_EV_NONE;
    case ST_LEN0:
        p->len = byte;
        crc_byte(p, byte);
        p->state = ST_LEN1;
        return MCU_DC_PROTO_EV_NONE;
    case ST_LEN1:
        p->len |= (uint32_t)byte << 8;
        crc_byte(p, byte);
        if (p->len > p->cap) {
            /* Do not consume the announced payload: hunt for the next sync right away. */
            return fail(p, MCU_DC_PERR_TOO_LONG, p->cap);
        }
        p->pos = 0;
        p->state = p->len ? ST_PAYLOAD : ST_CRC0;
        return MCU_DC_PROTO_EV_NONE;
    case ST_PAYLOAD:
        p->buf[p->pos++] = byte;
        crc_byte(p, byte);
        if (p->pos == p->len) {
            p->state = ST_CRC0;
        }
        return MCU_DC_PROTO_EV_NONE;
    case ST_CRC0:
        p->rx_crc = byte;
        p->state = ST_CRC1;
        return MCU_DC_PROTO_EV_NONE;
    case ST_CRC1:
        p->rx_crc |= (uint32_t)byte << 8;
        p->state = ST_CRC2;
        return MCU_DC_PROTO_EV_NONE;
    case ST_CRC2:
        p->rx_crc |= (uint32_t)byte << 16;
        p->state = ST_CRC3;
        return MCU_DC_PROTO_EV_NONE;
    case ST_CRC3:
        p->rx_crc |= (uint32_t)byte << 24;
        if (p->rx_crc != ~p->crc) {
            return fail(p, MCU_DC_PERR_BAD_CRC, 0u);
        }
        p->state = ST_SYNC0;
        return MCU_DC_PROTO_EV_FRAME;
    default:
        p->state = ST_SYNC0;
        return MCU_DC_PROTO_EV_NONE;
    }
}

mcu_dc_proto_event_t mcu_dc_proto_idle(mcu_dc_proto_parser_t *p)
{
    if (p->state == ST_SYNC0) {
        p->idle = 0;
        return MCU_DC_PROTO_EV_NONE;
    }
    if (++p->idle < p->idle_limit) {
        return MCU_DC_PROTO_EV_NONE;
    }
    p->idle = 0;
    if (p->state <= ST_SEQ) {
        /* Not even a sequence number: nothing worth answering. */
        p->state = ST_SYNC0;
        return MCU_DC_PROTO_EV_NONE;
    }
    return fail(p, MCU_DC_PERR_TIMEOUT, p->pos);
}

void mcu_dc_proto_put_u16(uint8_t *dst, uint16_t v)
{
    dst[0] = (uint8_t)(v & 0xFFu);
    dst[1] = (uint8_t)(v >> 8);
}

void mcu_dc_proto_put_u32(uint8_t *dst, uint32_t v)
{
    dst[0] = (uint8_t)(v & 0xFFu);
    dst[1] = (uint8_t)((v >> 8) & 0xFFu);
    dst[2] = (uint8_t)((v >> 16) & 0xFFu);
    dst[3] = (uint8_t)(v >> 24);
}

void mcu_dc_proto_send(uint8_t type, uint8_t seq, const uint8_t *head, uint32_t head_len,
                       const uint8_t *body, uint32_t body_len)
{
    uint8_t hdr[MCU_DC_PROTO_HEADER_BYTES];
    uint8_t tail[MCU_DC_PROTO_CRC_BYTES];
    uint32_t crc;
    uint32_t len = head_len + body_len;

    hdr[0] = (uint8_t)MCU_DC_PROTO_SYNC0;
    hdr[1] = (uint8_t)MCU_DC_PROTO_SYNC1;
    hdr[2] = type;
    hdr[3] = seq;
    mcu_dc_proto_put_u16(&hdr[4], (uint16_t)len);
    crc = mcu_dc_proto_crc32_update(0xFFFFFFFFu, &hdr[2], 4u);
    if (head_len) {
        crc = mcu_dc_proto_crc32_update(crc, head, head_len);
    }
    if (body_len) {
        crc = mcu_dc_proto_crc32_update(crc, body, body_len);
    }
    mcu_dc_proto_put_u32(tail, ~crc);

    mcu_dc_bsp_write(hdr, (uint32_t)sizeof hdr);
    if (head_len) {
        mcu_dc_bsp_write(head, head_len);
    }
    if (body_len) {
        mcu_dc_bsp_write(body, body_len);
    }
    mcu_dc_bsp_write(tail, (uint32_t)sizeof tail);
}

void mcu_dc_proto_send_error(uint8_t seq, uint8_t code, uint8_t rejected_type, uint32_t detail)
{
    uint8_t pl[MCU_DC_PROTO_ERROR_BYTES];
    pl[0] = code;
    pl[1] = rejected_type;
    mcu_dc_proto_put_u16(&pl[2], 0u);
    mcu_dc_proto_put_u32(&pl[4], detail);
    mcu_dc_proto_send((uint8_t)MCU_DC_MSG_ERROR, seq, pl, (uint32_t)sizeof pl, 0, 0u);
}
