/*
 * libFuzzer harness: the serial protocol's frame parser and the server behind it
 * (docs/fuzzing.md, docs/protocol.md).
 *
 * The input is what arrives on the UART. Byte 0 sets the parser's inter-byte timeout
 * (bits 6-7: 2, 6, 10 or 14 empty polls), how often a burst of empty polls is inserted
 * (bits 0-3: every 7*n bytes, 0 = never) and its length (bits 4-5: 1..4 polls), so
 * both slow senders and timeouts mid-frame are exercised; the rest is fed byte by byte to the same mcu_dc_server_poll the firmware
 * runs, with a real model (MCU_DC_FUZZ_MODEL names the blob file; without it the server
 * runs with a failed model, as a board whose blob is corrupt does).
 *
 * Checked on every input:
 *   - no crash, no out-of-bounds access, no undefined behaviour (ASan + UBSan);
 *   - everything the server writes is a sequence of whole, well-formed frames: a second
 *     parser reads the output stream and must see no garbage, no bad CRC and no
 *     truncated frame, and every reply is one of the reply types;
 *   - every RESULT equals the reference kernels' output for the INFER that asked for it;
 *   - every complete, CRC-correct request frame gets exactly one reply.
 * BYE ends a session through mcu_dc_bsp_exit, here a longjmp back to the harness.
 * -DMCU_DC_FUZZ_INJECT_BUG changes the expected RESULT, to prove in a test that a wrong
 * result is caught.
 * Harness code, not firmware: it uses malloc and stdio.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcu_dc.h"
#include "mcu_dc_bsp.h"
#include "mcu_dc_proto.h"
#include "mcu_dc_server.h"

#define PAYLOAD_CAP 1024u
#define OUT_CAP 4096u
#define REPLY_CAP (PAYLOAD_CAP + 64u)

static mcu_dc_model_t model;
static int32_t model_status = -1;
static uint8_t *blob_mem;
static uint32_t *arena_mem;
static uint32_t arena_words;

/* the UART as the fuzz input sees it */
static const uint8_t *rx;
static size_t rx_len, rx_pos;
static uint32_t idle_every, idle_burst, idle_left, fed;
static jmp_buf bye;

/* the reply checker */
static mcu_dc_proto_parser_t reply_parser;
static uint8_t reply_buf[REPLY_CAP];
static unsigned long replies, requests_complete, n_inputs, n_results;
static const mcu_dc_server_t *cur_server; /* the server whose poll is writing */

static void die(const char *what, unsigned long detail)
{
    fprintf(stderr, "mcu_dc_fuzz_proto: %s (%lu)\n", what, detail);
    abort();
}

void mcu_dc_bsp_init(void) {}

int mcu_dc_bsp_getc(void)
{
    if (idle_left > 0u) {
        idle_left--;
        return -1;
    }
    if (rx_pos >= rx_len) return -1;
    fed++;
    if (idle_every != 0u && fed % idle_every == 0u) idle_left = idle_burst;
    return rx[rx_pos++];
}

static void check_result(const uint8_t *payload, uint32_t len)
{
    const uint32_t out_len = mcu_dc_output_len(&model);
    int8_t want[OUT_CAP];
    mcu_dc_status_t st;
    const mcu_dc_proto_parser_t *q = &cur_server->parser; /* still holds the INFER being answered */
    if (q->type != MCU_DC_MSG_INFER || q->len != mcu_dc_input_len(&model)) die("a RESULT without an INFER", len);
    if (len != 4u + out_len) die("RESULT length", len);
    st = mcu_dc_infer_ref(&model, q->buf, want, arena_mem, arena_words * 4u);
    if (st != MCU_DC_OK) die("the reference kernels failed on an input the server accepted", (unsigned long)st);
#ifdef MCU_DC_FUZZ_INJECT_BUG
    want[out_len - 1u] = (int8_t)(want[out_len - 1u] ^ 1); /* proves in a test that a wrong RESULT is caught */
#endif
    if (memcmp(payload + 4, want, out_len) != 0) die("RESULT differs from the reference kernels", out_len);
    n_results++;
}

void mcu_dc_bsp_write(const uint8_t *data, uint32_t len)
{
    uint32_t i;
    for (i = 0u; i < len; i++) {
        mcu_dc_proto_event_t ev = mcu_dc_proto_feed(&reply_parser, data[i]);
        if (ev == MCU_DC_PROTO_EV_ERROR) die("the server wrote a malformed frame", reply_parser.err);
        if (ev == MCU_DC_PROTO_EV_NONE && reply_parser.state == 0u) die("the server wrote bytes outside a frame", i);
        if (ev == MCU_DC_PROTO_EV_FRAME) {
            replies++;
            switch (reply_parser.type) {
            case MCU_DC_MSG_RESULT:
                check_result(reply_parser.buf, reply_parser.len);
                break;
            case MCU_DC_MSG_INFO:
                if (reply_parser.len < MCU_DC_PROTO_INFO_BYTES) die("INFO too short", reply_parser.len);
                break;
            case MCU_DC_MSG_ERROR:
                if (reply_parser.len != MCU_DC_PROTO_ERROR_BYTES) die("ERROR length", reply_parser.len);
                break;
            case MCU_DC_MSG_PONG:
            case MCU_DC_MSG_BYE_ACK:
                break;
            default:
                die("the server wrote an unknown frame type", reply_parser.type);
            }
        }
    }
}

uint32_t mcu_dc_bsp_counter(void) { return fed; }
uint32_t mcu_dc_bsp_counter_unit(void) { return 0u; }
const char *mcu_dc_bsp_board_name(void) { return "fuzz"; }
void mcu_dc_bsp_exit(int code)
{
    longjmp(bye, code + 1);
}

static void load_model(void)
{
    const char *path = getenv("MCU_DC_FUZZ_MODEL");
    FILE *f;
    long n = 0;
    if (path == 0) return;
    f = fopen(path, "rb");
    if (f == 0) die("cannot open MCU_DC_FUZZ_MODEL", 0);
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) die("cannot size the model", 0);
    blob_mem = (uint8_t *)malloc((size_t)n);
    if (blob_mem == 0 || fread(blob_mem, 1, (size_t)n, f) != (size_t)n) die("cannot read the model", (unsigned long)n);
    fclose(f);
    model_status = (int32_t)mcu_dc_model_init(&model, blob_mem, (uint32_t)n);
    if (model_status == 0) model_status = (int32_t)mcu_dc_model_check_crc(&model);
    if (model_status != 0) die("MCU_DC_FUZZ_MODEL is not a valid model", (unsigned long)model_status);
    if (mcu_dc_output_len(&model) > OUT_CAP || mcu_dc_input_len(&model) > PAYLOAD_CAP) {
        die("the model's input or output is too large for the harness", mcu_dc_input_len(&model));
    }
    arena_words = (mcu_dc_arena_size(&model) + 3u) / 4u;
}

static void report(void)
{
    fprintf(stderr, "mcu_dc_fuzz: inputs=%lu replies=%lu requests=%lu results=%lu\n", n_inputs, replies,
            requests_complete, n_results);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    load_model();
    atexit(report);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t payload[PAYLOAD_CAP];
    static uint8_t req_buf[PAYLOAD_CAP];
    static int8_t out[OUT_CAP];
    static mcu_dc_server_t s;
    static mcu_dc_proto_parser_t req; /* a second parser on the same bytes: the requests owed a reply */
    static unsigned long expected, replies_before;
    static uint32_t polls;
    uint32_t max_polls;
    uint32_t *arena;
    n_inputs++;
    if (size < 1u) return 0;
    arena = (uint32_t *)malloc(arena_words ? arena_words * 4u : 4u); /* exact size: ASan sees overruns */
    if (arena == 0) abort();
    if (arena_mem == 0 && (arena_mem = (uint32_t *)malloc(arena_words ? arena_words * 4u : 4u)) == 0) abort();
    rx = data + 1;
    rx_len = size - 1u;
    rx_pos = 0u;
    fed = 0u;
    idle_left = 0u;
    idle_every = (uint32_t)(data[0] & 0x0Fu) * 7u;
    idle_burst = (uint32_t)((data[0] >> 4) & 3u) + 1u;
    mcu_dc_server_init(&s, &model, model_status, arena, arena_words * 4u, payload, PAYLOAD_CAP, out, OUT_CAP);
    s.parser.idle_limit = (uint32_t)(data[0] >> 6) * 4u + 2u;
    cur_server = &s;
    mcu_dc_proto_parser_init(&reply_parser, reply_buf, REPLY_CAP);
    mcu_dc_proto_parser_init(&req, req_buf, PAYLOAD_CAP);
    req.idle_limit = s.parser.idle_limit;
    replies_before = replies;
    expected = 0u;
    /* every byte is one poll, plus the inserted empty polls, plus enough to time out a tail */
    max_polls = (uint32_t)rx_len * 5u + 64u;
    if (setjmp(bye) == 0) {
        for (polls = 0u; polls < max_polls; polls++) {
            /* what this poll's getc will return, fed first to the counting parser */
            mcu_dc_proto_event_t ev;
            if (idle_left == 0u && rx_pos < rx_len) {
                ev = mcu_dc_proto_feed(&req, rx[rx_pos]);
            } else {
                ev = mcu_dc_proto_idle(&req);
            }
            if (ev != MCU_DC_PROTO_EV_NONE) expected++;
            mcu_dc_server_poll(&s);
            if (s.parser.state == 0u && rx_pos >= rx_len && idle_left == 0u) break;
        }
    }
    /* BYE ends here after its BYE_ACK, counted like every other reply */
    if (reply_parser.state != 0u) die("a reply frame was left unfinished", reply_parser.state);
    if (replies - replies_before != expected) die("a request got no reply or more than one", expected);
    requests_complete += expected;
    free(arena);
    return 0;
}
