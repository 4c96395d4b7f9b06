/*
 * Peripheral model for firmware/bsp/nrf52 (nRF52840 PS v1.1): CLOCK (HFXO start, §6.4),
 * GPIO port P1 (§6.9), UARTE0 with EasyDMA (§6.34): tasks are write-1 triggers; STARTRX
 * latches RXD.PTR/MAXCNT (the pointer registers are double-buffered: a new value applies to
 * the next STARTRX), each received byte is written to RAM through the latched pointer, ENDRX
 * fires when MAXCNT bytes arrived and the ENDRX_STARTRX short restarts reception with the
 * pointer in RXD.PTR at that moment; a byte arriving with no reception running is lost.
 * STARTTX reads TXD.PTR/MAXCNT; the bytes are taken from RAM when the transfer ends (ENDTX),
 * so a buffer reused too early shows up as wrong bytes. DWT.
 */
#include "sim.h"

#define CLOCK_TASKS_HFCLKSTART 0x40000000u
#define CLOCK_EVENTS_HFCLKSTARTED 0x40000100u
#define P1 0x50000300u
#define U 0x40002000u
#define TASKS_STARTRX (U + 0x000u)
#define TASKS_STOPRX (U + 0x004u)
#define TASKS_STARTTX (U + 0x008u)
#define TASKS_STOPTX (U + 0x00Cu)
#define EVENTS_RXDRDY (U + 0x108u)
#define EVENTS_ENDRX (U + 0x110u)
#define EVENTS_TXDRDY (U + 0x11Cu)
#define EVENTS_ENDTX (U + 0x120u)
#define EVENTS_ERROR (U + 0x124u)
#define EVENTS_RXSTARTED (U + 0x14Cu)
#define EVENTS_TXSTARTED (U + 0x150u)
#define SHORTS (U + 0x200u)
#define ERRORSRC (U + 0x480u)
#define ENABLE (U + 0x500u)
#define PSEL_RTS (U + 0x508u)
#define PSEL_TXD (U + 0x50Cu)
#define PSEL_CTS (U + 0x510u)
#define PSEL_RXD (U + 0x514u)
#define BAUDRATE (U + 0x524u)
#define RXD_PTR (U + 0x534u)
#define RXD_MAXCNT (U + 0x538u)
#define RXD_AMOUNT (U + 0x53Cu)
#define TXD_PTR (U + 0x544u)
#define TXD_MAXCNT (U + 0x548u)
#define TXD_AMOUNT (U + 0x54Cu)
#define CONFIG (U + 0x56Cu)

/* getc() with a byte: EVENTS_ERROR, EVENTS_ENDRX, clear ENDRX, EVENTS_RXSTARTED, clear it, RXD.PTR */
const unsigned model_getc_accesses = 6u;
const unsigned model_rx_fifo = 1u;

static unsigned hfclk_countdown;
static int hfclk_running;
static uint32_t p1_out, p1_dir;
static int rx_running;
static uint32_t rx_ptr, rx_max, rx_count;
static int tx_running;
static uint32_t tx_ptr, tx_max;
static unsigned tx_countdown;
static int tx_stall;

void model_setup(void)
{
    cortexm_setup(1, 0);
    sim_set_detect(sim_add(CLOCK_TASKS_HFCLKSTART, "CLOCK.TASKS_HFCLKSTART", 0u));
    sim_add(CLOCK_EVENTS_HFCLKSTARTED, "CLOCK.EVENTS_HFCLKSTARTED", 0u);
    sim_set_detect(sim_add(P1 + 0x508u, "P1.OUTSET", 0u));
    sim_set_detect(sim_add(P1 + 0x518u, "P1.DIRSET", 0u));
    for (unsigned pin = 0; pin < 16u; ++pin) {
        static const char *names[16] = {"P1.PIN_CNF[0]",  "P1.PIN_CNF[1]",  "P1.PIN_CNF[2]",  "P1.PIN_CNF[3]",
                                        "P1.PIN_CNF[4]",  "P1.PIN_CNF[5]",  "P1.PIN_CNF[6]",  "P1.PIN_CNF[7]",
                                        "P1.PIN_CNF[8]",  "P1.PIN_CNF[9]",  "P1.PIN_CNF[10]", "P1.PIN_CNF[11]",
                                        "P1.PIN_CNF[12]", "P1.PIN_CNF[13]", "P1.PIN_CNF[14]", "P1.PIN_CNF[15]"};
        sim_add(P1 + 0x700u + 4u * pin, names[pin], 0x2u); /* reset: input, buffer disconnected */
    }
    const uintptr_t tasks[] = {TASKS_STARTRX, TASKS_STOPRX, TASKS_STARTTX, TASKS_STOPTX};
    const char *tnames[] = {"TASKS_STARTRX", "TASKS_STOPRX", "TASKS_STARTTX", "TASKS_STOPTX"};
    for (unsigned i = 0; i < 4u; ++i) {
        sim_set_detect(sim_add(tasks[i], tnames[i], 0u));
    }
    sim_add(EVENTS_RXDRDY, "EVENTS_RXDRDY", 0u);
    sim_add(EVENTS_ENDRX, "EVENTS_ENDRX", 0u);
    sim_add(EVENTS_TXDRDY, "EVENTS_TXDRDY", 0u);
    sim_add(EVENTS_ENDTX, "EVENTS_ENDTX", 0u);
    sim_add(EVENTS_ERROR, "EVENTS_ERROR", 0u);
    sim_add(EVENTS_RXSTARTED, "EVENTS_RXSTARTED", 0u);
    sim_add(EVENTS_TXSTARTED, "EVENTS_TXSTARTED", 0u);
    sim_add(SHORTS, "SHORTS", 0u);
    sim_add(ERRORSRC, "ERRORSRC", 0u);
    sim_add(ENABLE, "ENABLE", 0u);
    sim_add(PSEL_RTS, "PSEL.RTS", 0xFFFFFFFFu);
    sim_add(PSEL_TXD, "PSEL.TXD", 0xFFFFFFFFu);
    sim_add(PSEL_CTS, "PSEL.CTS", 0xFFFFFFFFu);
    sim_add(PSEL_RXD, "PSEL.RXD", 0xFFFFFFFFu);
    sim_add(BAUDRATE, "BAUDRATE", 0x04000000u);
    sim_add(RXD_PTR, "RXD.PTR", 0u);
    sim_add(RXD_MAXCNT, "RXD.MAXCNT", 0u);
    sim_add(RXD_AMOUNT, "RXD.AMOUNT", 0u);
    sim_add(TXD_PTR, "TXD.PTR", 0u);
    sim_add(TXD_MAXCNT, "TXD.MAXCNT", 0u);
    sim_add(TXD_AMOUNT, "TXD.AMOUNT", 0u);
    sim_add(CONFIG, "CONFIG", 0u);
}

void model_set_tx_stall(int on)
{
    tx_stall = on;
}

static void finish_tx(void)
{
    volatile uint8_t *p = sim_dma(tx_ptr, tx_max);
    for (uint32_t i = 0; p != NULL && i < tx_max; ++i) {
        sim_tx(p[i]);
    }
    sim_poke(TXD_AMOUNT, tx_max);
    sim_poke(EVENTS_TXDRDY, 1u);
    sim_poke(EVENTS_ENDTX, 1u);
    tx_running = 0;
}

void model_tick(void)
{
    if (hfclk_countdown > 0u && --hfclk_countdown == 0u) {
        hfclk_running = 1;
        sim_poke(CLOCK_EVENTS_HFCLKSTARTED, 1u);
    }
    if (tx_running && !tx_stall && tx_countdown > 0u && --tx_countdown == 0u) {
        finish_tx();
    }
}

static void start_rx(void)
{
    rx_ptr = sim_peek(RXD_PTR);
    rx_max = sim_peek(RXD_MAXCNT);
    rx_count = 0;
    rx_running = rx_max > 0u;
    sim_poke(EVENTS_RXSTARTED, 1u);
}

int model_rx(uint8_t byte)
{
    if (sim_peek(ENABLE) != 8u || !rx_running) {
        return 0;
    }
    volatile uint8_t *p = sim_dma(rx_ptr + rx_count, 1u);
    if (p == NULL) {
        return 0;
    }
    *p = byte;
    ++rx_count;
    sim_poke(EVENTS_RXDRDY, 1u);
    if (rx_count == rx_max) {
        rx_running = 0;
        sim_poke(RXD_AMOUNT, rx_count);
        sim_poke(EVENTS_ENDRX, 1u);
        if ((sim_peek(SHORTS) & (1u << 5)) != 0u) { /* ENDRX_STARTRX */
            start_rx();
        }
    }
    return 1;
}

void model_access(struct sim_reg *r)
{
    if (cortexm_access(r)) {
        return;
    }
    if (r->detect) {
        r->value = SIM_SENTINEL;
    }
}

void model_settle(struct sim_reg *r, int written)
{
    if (!r->detect) {
        if (r->addr == ENABLE && written && r->value == 8u && !hfclk_running) {
            sim_fail("UARTE enabled before the HFXO was running (EVENTS_HFCLKSTARTED)");
        }
        if (r->addr == ERRORSRC && written) {
            r->value = 0u; /* write 1 to clear */
        }
        return;
    }
    uint32_t v = r->value;
    r->value = 0u;
    if (!written) {
        return;
    }
    if (r->addr == CLOCK_TASKS_HFCLKSTART && v == 1u) {
        hfclk_countdown = 3u;
    } else if (r->addr == P1 + 0x508u) {
        p1_out |= v;
    } else if (r->addr == P1 + 0x518u) {
        p1_dir |= v;
    } else if (r->addr == TASKS_STARTRX && v == 1u) {
        sim_check(sim_peek(ENABLE) == 8u, "STARTRX with the UARTE disabled");
        start_rx();
    } else if (r->addr == TASKS_STARTTX && v == 1u) {
        sim_check(sim_peek(ENABLE) == 8u, "STARTTX with the UARTE disabled");
        if (tx_running && !tx_stall) {
            sim_fail("STARTTX while a transmission is running (before ENDTX)");
        }
        tx_ptr = sim_peek(TXD_PTR);
        tx_max = sim_peek(TXD_MAXCNT);
        sim_check(tx_max > 0u && tx_max <= 0xFFFFu, "TXD.MAXCNT = %u", tx_max);
        (void)sim_dma(tx_ptr, tx_max);
        tx_running = 1;
        tx_countdown = 2u + tx_max / 16u;
        sim_poke(EVENTS_TXSTARTED, 1u);
    }
}

void model_check_init(void)
{
    cortexm_check_init(1, 0);
    sim_check(hfclk_running, "HFXO not started (CLOCK TASKS_HFCLKSTART)");
    sim_check(sim_peek(ENABLE) == 8u, "UARTE ENABLE = %u, expected 8", sim_peek(ENABLE));
    /* PSEL: PIN bits 4:0, PORT bit 5, CONNECT bit 31 (0 = connected) */
    sim_check(sim_peek(PSEL_TXD) == ((1u << 5) | 3u), "PSEL.TXD = 0x%08X, expected P1.03 (0x23)", sim_peek(PSEL_TXD));
    sim_check(sim_peek(PSEL_RXD) == ((1u << 5) | 10u), "PSEL.RXD = 0x%08X, expected P1.10 (0x2A)",
              sim_peek(PSEL_RXD));
    sim_check((sim_peek(PSEL_RTS) & 0x80000000u) != 0u && (sim_peek(PSEL_CTS) & 0x80000000u) != 0u,
              "RTS/CTS connected");
    sim_check(sim_peek(CONFIG) == 0u, "CONFIG = 0x%X: expected no flow control, no parity, one stop bit",
              sim_peek(CONFIG));
    sim_check((p1_out & (1u << 3)) != 0u, "TX pin P1.03 not driven high (OUTSET)");
    sim_check((p1_dir & (1u << 3)) != 0u || (sim_peek(P1 + 0x70Cu) & 1u) != 0u, "TX pin P1.03 not an output");
    sim_check((sim_peek(P1 + 0x728u) & 3u) == 0u, "RX pin P1.10: PIN_CNF = 0x%X, expected input, buffer connected",
              sim_peek(P1 + 0x728u));
    sim_check(rx_running && sim_peek(RXD_MAXCNT) >= 1u, "reception not running after init");
    /* PS v1.1 §6.34 BAUDRATE table: the register takes listed values only */
    uint32_t b = sim_peek(BAUDRATE);
    double actual = b == 0x01D60000u ? 115108.0 : b == 0x01D7E000u ? 115942.0 : 0.0;
    if (actual == 0.0) {
        sim_fail("BAUDRATE = 0x%08X is not the 115200 entry of the UARTE table", b);
    } else {
        sim_check_baud("UARTE0", actual);
        sim_check(b == 0x01D60000u, "BAUDRATE 0x01D7E000 is the legacy UART's 115200 value, not UARTE's");
    }
}
