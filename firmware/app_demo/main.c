/*
 * mcu_dc demo firmware: a program a person can read on the serial console.
 *
 * At boot it validates the model in flash (mcu_dc_model_init, then the blob's CRC-32),
 * runs the model on a few test inputs embedded at generate time (mcu_dc_demo_data.h:
 * the inputs as the device takes them, their dataset labels and the outputs the host's
 * bit-exact simulator computed) and prints, one line per input, the predicted class, the
 * label, the simulator's class and the cycles (real boards) or instructions (QEMU) the
 * inference took; then a summary. A regression or reconstruction model (no classes)
 * prints its output bytes instead. Example (a classifier under QEMU):
 *
 *   sample 0: predicted 0, label 0, simulator 0, outputs equal, 11906 instructions
 *   summary: 4/4 correct, 4/4 agree with the simulator (round 1)
 *
 * MCU_DC_DEMO_ROUNDS rounds are run (0: forever, with a pause of MCU_DC_DEMO_PAUSE
 * counter units between them, what real boards do); then mcu_dc_bsp_exit(0) when every
 * output equalled the simulator's, else 1 (semihosting exit under QEMU). Both come from
 * the generated header, per board; -DMCU_DC_DEMO_ROUNDS=N overrides.
 *
 * C99, no malloc, no stdio: text goes out through mcu_dc_bsp_write (mcu_dc_demo_text.h).
 */
#include <stdint.h>

#include "mcu_dc.h"
#include "mcu_dc_bsp.h"
#include "mcu_dc_demo_data.h"
#include "mcu_dc_demo_text.h"
#include "mcu_dc_models.h"

#ifndef MCU_DC_DEMO_PRINT_MAX
#define MCU_DC_DEMO_PRINT_MAX 16u /* output bytes printed per line (regression models) */
#endif
#ifndef MCU_DC_DEMO_PAUSE_SPINS
#define MCU_DC_DEMO_PAUSE_SPINS 50000000u /* bound on the pause when the counter stands still */
#endif

/* The embedded data must be for this model's input and output sizes. */
typedef char mcu_dc_demo_input_len_check[(MCU_DC_DEMO_INPUT_LEN == MCU_DC_DEFAULT_INPUT_LEN) ? 1 : -1];
typedef char mcu_dc_demo_output_len_check[(MCU_DC_DEMO_OUTPUT_LEN == MCU_DC_DEFAULT_OUTPUT_LEN) ? 1 : -1];

#define MCU_DC_DEMO_ARENA_WORDS (((MCU_DC_DEFAULT_ARENA_BYTES) + 3u) / 4u)

static uint32_t g_arena[MCU_DC_DEMO_ARENA_WORDS > 0u ? MCU_DC_DEMO_ARENA_WORDS : 1u];
static int8_t g_out[MCU_DC_DEMO_OUTPUT_LEN > 0u ? MCU_DC_DEMO_OUTPUT_LEN : 1u];
static mcu_dc_model_t g_model;

static void demo_status_line(const char *what, mcu_dc_status_t st)
{
    mcu_dc_demo_puts("model: ");
    mcu_dc_demo_puts(what);
    mcu_dc_demo_puts(" (status ");
    mcu_dc_demo_puts(mcu_dc_status_name(st));
    mcu_dc_demo_puts(")\r\n");
}

/* Bind and check the model; prints one line saying whether it is usable. */
static int demo_check_model(void)
{
    uint32_t hash;
    mcu_dc_status_t st = mcu_dc_model_init(&g_model, MCU_DC_DEFAULT_BLOB, MCU_DC_DEFAULT_BLOB_BYTES);

    if (st != MCU_DC_OK) {
        demo_status_line("INVALID, mcu_dc_model_init failed", st);
        return 0;
    }
    st = mcu_dc_model_check_crc(&g_model);
    if (st != MCU_DC_OK) {
        demo_status_line("CRC MISMATCH, the blob in flash is damaged", st);
        return 0;
    }
    hash = mcu_dc_model_hash(&g_model);
    if (hash != (uint32_t)MCU_DC_DEMO_MODEL_HASH) {
        mcu_dc_demo_puts("model: hash ");
        mcu_dc_demo_put_hex32(hash);
        mcu_dc_demo_puts(" but the demo data was made for ");
        mcu_dc_demo_put_hex32((uint32_t)MCU_DC_DEMO_MODEL_HASH);
        mcu_dc_demo_puts("; regenerate the project\r\n");
        return 0;
    }
    if (mcu_dc_arena_size(&g_model) > (uint32_t)sizeof g_arena ||
        mcu_dc_input_len(&g_model) != MCU_DC_DEMO_INPUT_LEN ||
        mcu_dc_output_len(&g_model) != MCU_DC_DEMO_OUTPUT_LEN) {
        mcu_dc_demo_puts("model: its arena, input or output size differs from the compiled-in one; "
                         "regenerate the project\r\n");
        return 0;
    }
    mcu_dc_demo_puts("model: ok (status MCU_DC_OK, CRC ok, hash ");
    mcu_dc_demo_put_hex32(hash);
    mcu_dc_demo_puts("), ");
    mcu_dc_demo_put_u32(g_model.blob_bytes);
    mcu_dc_demo_puts(" B blob, ");
    mcu_dc_demo_put_u32(mcu_dc_arena_size(&g_model));
    mcu_dc_demo_puts(" B arena\r\n");
    return 1;
}

static int demo_equal(const int8_t *a, const int8_t *b, uint32_t n)
{
    uint32_t i;

    for (i = 0u; i < n; ++i) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

#if MCU_DC_DEMO_CLASSIFIER
/* The index of the first maximum (numpy's argmax, as the host simulator counts). */
static uint32_t demo_argmax(const int8_t *v, uint32_t n)
{
    uint32_t best = 0u;
    uint32_t i;

    for (i = 1u; i < n; ++i) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}
#else
static void demo_put_bytes(const int8_t *v, uint32_t n)
{
    uint32_t i;

    mcu_dc_demo_puts("[");
    for (i = 0u; i < n && i < MCU_DC_DEMO_PRINT_MAX; ++i) {
        if (i > 0u) {
            mcu_dc_demo_puts(" ");
        }
        mcu_dc_demo_put_i32((int32_t)v[i]);
    }
    if (n > MCU_DC_DEMO_PRINT_MAX) {
        mcu_dc_demo_puts(" ...");
    }
    mcu_dc_demo_puts("]");
}
#endif

static void demo_put_counter(uint32_t count)
{
    mcu_dc_demo_put_u32(count);
    mcu_dc_demo_puts(mcu_dc_bsp_counter_unit() == MCU_DC_COUNTER_INSTRUCTIONS ? " instructions" : " cycles");
}

/* One pass over the embedded inputs; returns 1 when every output equals the simulator's. */
static int demo_round(uint32_t round)
{
    uint32_t i;
    uint32_t agree = 0u;
#if MCU_DC_DEMO_CLASSIFIER
    uint32_t correct = 0u;
#endif

    for (i = 0u; i < MCU_DC_DEMO_SAMPLES; ++i) {
        uint32_t t0;
        uint32_t t1;
        int same;
        mcu_dc_status_t st;

        t0 = mcu_dc_bsp_counter();
        st = mcu_dc_infer(&g_model, mcu_dc_demo_inputs[i], g_out, g_arena, (uint32_t)sizeof g_arena);
        t1 = mcu_dc_bsp_counter();
        mcu_dc_demo_puts("sample ");
        mcu_dc_demo_put_u32(i);
        if (st != MCU_DC_OK) {
            mcu_dc_demo_puts(": inference failed, status ");
            mcu_dc_demo_puts(mcu_dc_status_name(st));
            mcu_dc_demo_puts("\r\n");
            continue;
        }
        same = demo_equal(g_out, mcu_dc_demo_expected[i], MCU_DC_DEMO_OUTPUT_LEN);
        agree += same ? 1u : 0u;
#if MCU_DC_DEMO_CLASSIFIER
        {
            uint32_t pred = demo_argmax(g_out, MCU_DC_DEMO_OUTPUT_LEN);

            correct += (int32_t)pred == (int32_t)mcu_dc_demo_labels[i] ? 1u : 0u;
            mcu_dc_demo_puts(": predicted ");
            mcu_dc_demo_put_u32(pred);
            mcu_dc_demo_puts(", label ");
            mcu_dc_demo_put_i32((int32_t)mcu_dc_demo_labels[i]);
            mcu_dc_demo_puts(", simulator ");
            mcu_dc_demo_put_i32((int32_t)mcu_dc_demo_expected_class[i]);
        }
#else
        mcu_dc_demo_puts(": output ");
        demo_put_bytes(g_out, MCU_DC_DEMO_OUTPUT_LEN);
        if (!same) {
            mcu_dc_demo_puts(", simulator ");
            demo_put_bytes(mcu_dc_demo_expected[i], MCU_DC_DEMO_OUTPUT_LEN);
        }
#endif
        mcu_dc_demo_puts(same ? ", outputs equal, " : ", outputs DIFFER, ");
        demo_put_counter((uint32_t)(t1 - t0));
        mcu_dc_demo_puts("\r\n");
    }
    mcu_dc_demo_puts("summary: ");
#if MCU_DC_DEMO_CLASSIFIER
    mcu_dc_demo_put_u32(correct);
    mcu_dc_demo_puts("/");
    mcu_dc_demo_put_u32(MCU_DC_DEMO_SAMPLES);
    mcu_dc_demo_puts(" correct, ");
#endif
    mcu_dc_demo_put_u32(agree);
    mcu_dc_demo_puts("/");
    mcu_dc_demo_put_u32(MCU_DC_DEMO_SAMPLES);
    mcu_dc_demo_puts(" agree with the simulator (round ");
    mcu_dc_demo_put_u32(round);
    mcu_dc_demo_puts(")\r\n");
    return agree == MCU_DC_DEMO_SAMPLES;
}

/* About MCU_DC_DEMO_PAUSE counter units; bounded even if the counter does not run. */
static void demo_pause(void)
{
    uint32_t pause = (uint32_t)MCU_DC_DEMO_PAUSE;
    uint32_t t0 = mcu_dc_bsp_counter();
    uint32_t spins;

    for (spins = 0u; pause > 0u && spins < MCU_DC_DEMO_PAUSE_SPINS; ++spins) {
        if ((uint32_t)(mcu_dc_bsp_counter() - t0) >= pause) {
            break;
        }
    }
}

int main(void)
{
    uint32_t rounds = (uint32_t)MCU_DC_DEMO_ROUNDS;
    uint32_t round;
    int ok;
    int all_agree;

    mcu_dc_bsp_init();
    mcu_dc_demo_puts("\r\nmcu_dc demo: model ");
    mcu_dc_demo_puts(MCU_DC_DEFAULT_NAME);
    mcu_dc_demo_puts(" on ");
    mcu_dc_demo_puts(mcu_dc_bsp_board_name());
    mcu_dc_demo_puts(", ");
    mcu_dc_demo_put_u32(MCU_DC_DEMO_SAMPLES);
    mcu_dc_demo_puts(" " MCU_DC_DEMO_DATASET " test inputs (" MCU_DC_DEMO_TASK ")\r\n");
    ok = demo_check_model();
    all_agree = ok;
    for (round = 1u; rounds == 0u || round <= rounds; ++round) {
        if (ok) {
            if (!demo_round(round)) {
                all_agree = 0;
            }
        } else if (round > 1u) {
            (void)demo_check_model(); /* repeat the reason for whoever opens the console late */
        }
        if (rounds == 0u) {
            demo_pause();
        }
    }
    if (all_agree) {
        mcu_dc_demo_puts("done: exit 0\r\n");
    } else {
        mcu_dc_demo_puts(ok ? "done: exit 1 (an output differs from the simulator's)\r\n"
                            : "done: exit 1 (the model is not usable)\r\n");
    }
    mcu_dc_bsp_exit(all_agree ? 0 : 1);
    return all_agree ? 0 : 1;
}
