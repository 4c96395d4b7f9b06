/* Core of the host BSP simulation: register file, access hook, line model, test driver. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcu_dc_bsp.h"
#include "sim.h"

#define MAX_REGS 128
#define MAX_DMA 8
#define RX_QUEUE 512
#define TX_CAPTURE 4096

static struct sim_reg regs[MAX_REGS];
static unsigned nregs;
static struct sim_reg *last;
static uint64_t now;
static unsigned failures;

static uint8_t rx_queue[RX_QUEUE];
static unsigned rx_head, rx_tail, rx_lost;
static unsigned rx_interval; /* 0: no delivery */
static uint64_t rx_last;

static uint8_t tx_capture[TX_CAPTURE];
static unsigned tx_count;

static const volatile void *dma_ptr[MAX_DMA];
static const volatile uint8_t *forbid_lo, *forbid_hi;

void sim_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    fputs("\n", stdout);
    va_end(ap);
    if (++failures > 40) {
        puts("too many failures");
        exit(2);
    }
}

void sim_check(int ok, const char *fmt, ...)
{
    if (ok) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stdout);
    vprintf(fmt, ap);
    fputs("\n", stdout);
    va_end(ap);
    ++failures;
}

struct sim_reg *sim_add(uintptr_t addr, const char *name, uint32_t reset)
{
    if (nregs == MAX_REGS) {
        puts("sim: too many registers");
        exit(2);
    }
    struct sim_reg *r = &regs[nregs++];
    memset(r, 0, sizeof *r);
    r->addr = addr;
    r->name = name;
    r->value = reset;
    return r;
}

void sim_set_detect(struct sim_reg *r)
{
    r->detect = 1;
}

void sim_set_gate(struct sim_reg *r, uintptr_t gate, uint32_t mask, int must_be_set)
{
    r->gate = gate;
    r->gate_mask = mask;
    r->gate_set = must_be_set;
}

struct sim_reg *sim_find(uintptr_t addr)
{
    for (unsigned i = 0; i < nregs; ++i) {
        if (regs[i].addr == addr) {
            return &regs[i];
        }
    }
    return NULL;
}

uint32_t sim_peek(uintptr_t addr)
{
    struct sim_reg *r = sim_find(addr);
    if (r == NULL) {
        printf("sim: model peeks unknown 0x%08lX\n", (unsigned long)addr);
        exit(2);
    }
    return r->value;
}

void sim_poke(uintptr_t addr, uint32_t value)
{
    struct sim_reg *r = sim_find(addr);
    if (r == NULL) {
        printf("sim: model pokes unknown 0x%08lX\n", (unsigned long)addr);
        exit(2);
    }
    r->value = value;
}

uint64_t sim_now(void)
{
    return now;
}

void sim_tx(uint8_t byte)
{
    if (tx_count < TX_CAPTURE) {
        tx_capture[tx_count] = byte;
    }
    ++tx_count;
}

uint32_t mcu_dc_sim_dma_addr(const volatile void *ptr)
{
    for (unsigned i = 0; i < MAX_DMA; ++i) {
        if (dma_ptr[i] == NULL) {
            dma_ptr[i] = ptr;
        }
        if (dma_ptr[i] == ptr) {
            return 0x20000000u + 0x1000u * i; /* a fake Data RAM address, one slot per buffer */
        }
    }
    puts("sim: too many DMA buffers");
    exit(2);
}

volatile void *sim_dma(uint32_t bus_addr, uint32_t len)
{
    uint32_t off = bus_addr - 0x20000000u;
    unsigned slot = off / 0x1000u;
    if (bus_addr < 0x20000000u || slot >= MAX_DMA || dma_ptr[slot] == NULL || off % 0x1000u + len > 0x1000u) {
        sim_fail("EasyDMA pointer 0x%08X is not a RAM buffer the BSP handed out", bus_addr);
        return NULL;
    }
    volatile uint8_t *p = (volatile uint8_t *)(uintptr_t)dma_ptr[slot] + off % 0x1000u;
    if (forbid_lo != NULL && p < forbid_hi && p + len > forbid_lo) {
        sim_fail("EasyDMA pointed at the caller's bytes (they may be in flash): copy them to RAM");
    }
    return p;
}

void sim_check_baud(const char *what, double actual)
{
    double err = (actual - 115200.0) / 115200.0 * 100.0;
    printf("baud %s: %.1f (%+.3f %%)\n", what, actual, err);
    sim_check(err < 2.0 && err > -2.0, "%s: baud %.1f is %.2f %% off 115200 (limit 2 %%)", what, actual, err);
}

static int gate_open(const struct sim_reg *r)
{
    if (r->gate == 0u) {
        return 1;
    }
    uint32_t g = sim_peek(r->gate) & r->gate_mask;
    return r->gate_set ? g == r->gate_mask : g == 0u;
}

static void settle_last(void)
{
    struct sim_reg *r = last;
    if (r == NULL) {
        return;
    }
    last = NULL;
    int written = r->value != r->snapshot;
    if (written && !gate_open(r)) {
        sim_fail("%s written while its clock/reset gate (0x%08lX mask 0x%08X) is off: the write is lost",
                 r->name, (unsigned long)r->gate, r->gate_mask);
        r->value = r->snapshot;
        written = 0;
    }
    if (written) {
        ++r->writes;
    }
    model_settle(r, written);
}

void sim_flush(void);
void sim_flush(void)
{
    settle_last();
}

static void deliver(void)
{
    if (rx_interval == 0u || rx_head == rx_tail || now - rx_last < rx_interval) {
        return;
    }
    rx_last = now;
    uint8_t b = rx_queue[rx_tail++ % RX_QUEUE];
    if (!model_rx(b)) {
        ++rx_lost;
    }
}

volatile uint32_t *mcu_dc_sim_reg(uintptr_t addr)
{
    settle_last();
    ++now;
    model_tick();
    deliver();
    struct sim_reg *r = sim_find(addr);
    if (r == NULL) {
        printf("FAIL: access to 0x%08lX, a register the %s model does not have (wrong base, offset or "
               "peripheral)\n",
               (unsigned long)addr, MCU_DC_BSP_BOARD);
        exit(3);
    }
    model_access(r);
    r->snapshot = r->value;
    last = r;
    return &r->value;
}

/* Time passes without the CPU touching a register. */
static void idle(unsigned steps)
{
    for (unsigned i = 0; i < steps; ++i) {
        ++now;
        model_tick();
        deliver();
    }
}

static void expect_no_byte(const char *when)
{
    for (int i = 0; i < 25; ++i) {
        int c = mcu_dc_bsp_getc();
        sim_flush();
        if (c != -1) {
            sim_fail("getc() returned %d %s; expected -1 (nothing received)", c, when);
            return;
        }
    }
}

static void rx_run(unsigned interval, unsigned phase, unsigned n)
{
    uint8_t sent[64];
    uint8_t got[64];
    unsigned ngot = 0;
    rx_lost = 0;
    for (unsigned i = 0; i < n; ++i) {
        sent[i] = (uint8_t)(interval * 31u + phase * 7u + i * 13u + (i == 3u ? 0xFFu : 0u));
        rx_queue[rx_head++ % RX_QUEUE] = sent[i];
    }
    rx_interval = interval;
    rx_last = now - phase;
    for (unsigned calls = 0; calls < n * interval * 4u + 200u && ngot < n; ++calls) {
        int c = mcu_dc_bsp_getc();
        sim_flush();
        if (c >= 0) {
            if (c > 255) {
                sim_fail("getc() returned %d, not a byte", c);
            }
            got[ngot++] = (uint8_t)c;
        }
    }
    rx_interval = 0;
    int same = ngot == n && memcmp(sent, got, n) == 0;
    sim_check(same && rx_lost == 0u,
              "RX every %u accesses (phase %u): got %u of %u bytes%s, %u lost on the line", interval, phase,
              ngot, n, same ? "" : " (wrong or out of order)", rx_lost);
    expect_no_byte("after the received bytes were read");
}

int main(void)
{
    model_setup();
    mcu_dc_bsp_init();
    sim_flush();
    model_check_init();

    sim_check(strcmp(mcu_dc_bsp_board_name(), MCU_DC_BSP_BOARD) == 0, "board name %s", mcu_dc_bsp_board_name());
    sim_check(mcu_dc_bsp_counter_unit() == MCU_DC_COUNTER_CYCLES, "counter unit %u",
              (unsigned)mcu_dc_bsp_counter_unit());
    uint32_t t0 = mcu_dc_bsp_counter();
    sim_flush();
    uint32_t t1 = mcu_dc_bsp_counter();
    sim_flush();
    sim_check(t1 != t0, "the counter does not advance (%u, %u)", (unsigned)t0, (unsigned)t1);

    expect_no_byte("with nothing received");

    /* write(): exactly the bytes given, in order, including 0x00 and 0xFF, over 4 DMA chunks */
    static uint8_t msg[300];
    for (unsigned i = 0; i < sizeof msg; ++i) {
        msg[i] = (uint8_t)(i * 7u + 3u);
    }
    msg[1] = 0x00u;
    msg[2] = 0xFFu;
    forbid_lo = msg;
    forbid_hi = msg + sizeof msg;
    tx_count = 0;
    mcu_dc_bsp_write(msg, 0u);
    sim_flush();
    mcu_dc_bsp_write(msg, 1u);
    sim_flush();
    mcu_dc_bsp_write(msg + 1, sizeof msg - 1u);
    sim_flush();
    idle(200);
    sim_check(tx_count == sizeof msg && memcmp(tx_capture, msg, sizeof msg) == 0,
              "write(): %u bytes on the line, %u given%s", tx_count, (unsigned)sizeof msg,
              tx_count == sizeof msg ? " (contents differ)" : "");
    printf("tx %u bytes ok\n", tx_count);

    /* getc(): each received byte once, in order, without losing back-to-back bytes */
    for (unsigned k = model_getc_accesses; k < model_getc_accesses + 7u; ++k) {
        for (unsigned p = 0; p < k; ++p) {
            rx_run(k, p, 24u);
        }
    }
    printf("rx sweep done (intervals %u..%u)\n", model_getc_accesses, model_getc_accesses + 6u);
    if (model_rx_fifo > 1u) {
        /* a burst while the CPU is busy elsewhere stays in the receive FIFO */
        rx_lost = 0;
        unsigned n = model_rx_fifo < 20u ? model_rx_fifo : 20u;
        for (unsigned i = 0; i < n; ++i) {
            rx_queue[rx_head++ % RX_QUEUE] = (uint8_t)(0xA0u + i);
        }
        rx_interval = 1;
        idle(n + 5u);
        rx_interval = 0;
        unsigned ok = 0;
        for (unsigned i = 0; i < n; ++i) {
            int c = mcu_dc_bsp_getc();
            sim_flush();
            ok += c == (int)(0xA0u + i);
        }
        sim_check(ok == n && rx_lost == 0u, "burst of %u bytes: %u read back, %u lost", n, ok, rx_lost);
        expect_no_byte("after the burst");
    }

    /* a transmitter that never gets ready: write() must return (bounded waits) */
    model_set_tx_stall(1);
    tx_count = 0;
    mcu_dc_bsp_write(msg, 80u);
    sim_flush();
    model_set_tx_stall(0);
    idle(200);
    printf("stalled write returned (%u bytes went out)\n", tx_count);
    sim_check(tx_count <= 80u, "stalled write emitted %u bytes", tx_count);

    if (failures != 0u) {
        printf("%u failure(s)\n", failures);
        return 1;
    }
    puts("OK");
    return 0;
}
