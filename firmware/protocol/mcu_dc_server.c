/* mcu_dc protocol server. See mcu_dc_server.h and docs/protocol.md. C99, no malloc. */
#include "mcu_dc_server.h"

#include "mcu_dc_bsp.h"

void mcu_dc_server_init(mcu_dc_server_t *s, const mcu_dc_model_t *model, int32_t init_status,
                        void *arena, uint32_t arena_bytes, uint8_t *payload_buf, uint32_t payload_cap,
                        int8_t *out, uint32_t out_cap)
{
    s->model = model;
    s->init_status = init_status;
    s->arena = arena;
    s->arena_bytes = arena_bytes;
    s->out = out;
    s->out_cap = out_cap;
    mcu_dc_proto_parser_init(&s->parser, payload_buf, payload_cap);
}

static uint32_t blob_format_version(const mcu_dc_model_t *m)
{
    if (m->blob == 0 || m->blob_bytes < 6u) {
        return 0u;
    }
    return (uint32_t)m->blob[4] | ((uint32_t)m->blob[5] << 8);
}

static void send_info(const mcu_dc_server_t *s, uint8_t seq)
{
    uint8_t pl[MCU_DC_PROTO_INFO_BYTES];
    const char *board = mcu_dc_bsp_board_name();
    uint32_t name_len = 0;
    int ok = s->init_status == 0;
    const mcu_dc_model_t *m = s->model;

    while (board[name_len] != '\0' && name_len < 64u) {
        ++name_len;
    }
    pl[0] = (uint8_t)MCU_DC_PROTO_VERSION;
    pl[1] = (uint8_t)blob_format_version(m);
    pl[2] = (uint8_t)mcu_dc_bsp_counter_unit();
    pl[3] = 0u;
    mcu_dc_proto_put_u32(&pl[4], ok ? mcu_dc_model_hash(m) : 0u);
    mcu_dc_proto_put_u32(&pl[8], ok ? mcu_dc_arena_size(m) : 0u);
    mcu_dc_proto_put_u32(&pl[12], ok ? mcu_dc_input_len(m) : 0u);
    mcu_dc_proto_put_u32(&pl[16], ok ? mcu_dc_output_len(m) : 0u);
    mcu_dc_proto_put_u32(&pl[20], s->parser.cap);
    mcu_dc_proto_put_u32(&pl[24], m->blob_bytes);
    mcu_dc_proto_put_u16(&pl[28], (uint16_t)s->init_status);
    mcu_dc_proto_send((uint8_t)MCU_DC_MSG_INFO, seq, pl, (uint32_t)sizeof pl, (const uint8_t *)board,
                      name_len);
}

static void handle_infer(mcu_dc_server_t *s)
{
    const mcu_dc_proto_parser_t *p = &s->parser;
    uint32_t in_len;
    uint32_t out_len;
    uint32_t t0;
    uint32_t t1;
    uint8_t head[MCU_DC_PROTO_RESULT_HEAD_BYTES];
    mcu_dc_status_t st;

    if (s->init_status != 0) {
        mcu_dc_proto_send_error(p->seq, (uint8_t)MCU_DC_PERR_MODEL_INIT, p->type, (uint32_t)s->init_status);
        return;
    }
    in_len = mcu_dc_input_len(s->model);
    out_len = mcu_dc_output_len(s->model);
    if (p->len != in_len) {
        mcu_dc_proto_send_error(p->seq, (uint8_t)MCU_DC_PERR_BAD_LENGTH, p->type, in_len);
        return;
    }
    if (out_len > s->out_cap) {
        mcu_dc_proto_send_error(p->seq, (uint8_t)MCU_DC_PERR_MODEL_INIT, p->type, out_len);
        return;
    }
    t0 = mcu_dc_bsp_counter();
    st = mcu_dc_infer(s->model, p->buf, s->out, s->arena, s->arena_bytes);
    t1 = mcu_dc_bsp_counter();
    if (st != MCU_DC_OK) {
        mcu_dc_proto_send_error(p->seq, (uint8_t)MCU_DC_PERR_INFER_FAILED, p->type, (uint32_t)st);
        return;
    }
    mcu_dc_proto_put_u32(head, t1 - t0);
    mcu_dc_proto_send((uint8_t)MCU_DC_MSG_RESULT, p->seq, head, (uint32_t)sizeof head,
                      (const uint8_t *)s->out, out_len);
}

static void handle_frame(mcu_dc_server_t *s)
{
    const mcu_dc_proto_parser_t *p = &s->parser;
    switch (p->type) {
    case MCU_DC_MSG_HELLO:
        send_info(s, p->seq);
        break;
    case MCU_DC_MSG_INFER:
        handle_infer(s);
        break;
    case MCU_DC_MSG_PING:
        mcu_dc_proto_send((uint8_t)MCU_DC_MSG_PONG, p->seq, p->buf, p->len, 0, 0u);
        break;
    case MCU_DC_MSG_BYE:
        mcu_dc_proto_send((uint8_t)MCU_DC_MSG_BYE_ACK, p->seq, 0, 0u, 0, 0u);
        mcu_dc_bsp_exit(0);
        break;
    default:
        mcu_dc_proto_send_error(p->seq, (uint8_t)MCU_DC_PERR_BAD_TYPE, p->type, 0u);
        break;
    }
}

void mcu_dc_server_poll(mcu_dc_server_t *s)
{
    int c = mcu_dc_bsp_getc();
    mcu_dc_proto_event_t ev;
    if (c < 0) {
        ev = mcu_dc_proto_idle(&s->parser);
    } else {
        ev = mcu_dc_proto_feed(&s->parser, (uint8_t)c);
    }
    if (ev == MCU_DC_PROTO_EV_FRAME) {
        handle_frame(s);
    } else if (ev == MCU_DC_PROTO_EV_ERROR) {
        mcu_dc_proto_send_error(s->parser.seq, s->parser.err, s->parser.type, s->parser.err_detail);
    }
}

void mcu_dc_server_run(mcu_dc_server_t *s)
{
    for (;;) {
        mcu_dc_server_poll(s);
    }
}
