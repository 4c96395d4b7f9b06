/*
 * Peripheral model for firmware/bsp/rp2040 (RP2040 Datasheet): RESETS with its atomic clear
 * alias (+0x3000), XOSC, the clk_ref/clk_sys glitchless muxes (SELECTED follows CTRL once the
 * source runs), clk_peri, IO_BANK0/PADS_BANK0 (writes while the block is held in reset are
 * lost), UART0 as an ARM PL011: IBRD/FBRD take effect when LCR_H is written, 32-entry FIFOs
 * with FEN, 1-entry holding registers without; UARTDR is one address for both directions
 * (a read pops the RX FIFO, a write pushes the TX FIFO). SysTick.
 */
#include <stdio.h>

#include "sim.h"

#define RESETS 0x4000C000u
#define RESETS_CLR (RESETS + 0x3000u)
#define RESET_DONE (RESETS + 0x8u)
#define XOSC_CTRL 0x40024000u
#define XOSC_STATUS 0x40024004u
#define XOSC_STARTUP 0x4002400Cu
#define CLOCKS 0x40008000u
#define REF_CTRL (CLOCKS + 0x30u)
#define REF_DIV (CLOCKS + 0x34u)
#define REF_SEL (CLOCKS + 0x38u)
#define SYS_CTRL (CLOCKS + 0x3Cu)
#define SYS_DIV (CLOCKS + 0x40u)
#define SYS_SEL (CLOCKS + 0x44u)
#define PERI_CTRL (CLOCKS + 0x48u)
#define IO_GPIO0_CTRL 0x40014004u
#define IO_GPIO1_CTRL 0x4001400Cu
#define PADS_GPIO0 0x4001C004u
#define PADS_GPIO1 0x4001C008u
#define UART 0x40034000u
#define DR (UART + 0x000u)
#define FR (UART + 0x018u)
#define IBRD (UART + 0x024u)
#define FBRD (UART + 0x028u)
#define LCR_H (UART + 0x02Cu)
#define CR (UART + 0x030u)
#define B_IO_BANK0 (1u << 5)
#define B_PADS_BANK0 (1u << 8)
#define B_UART0 (1u << 22)
#define DR_OFFER 0x5A000000u /* marks the RX byte offered by a DR read (bits 31:12 read as 0 on silicon) */

/* getc() with a byte: UARTFR, UARTDR */
const unsigned model_getc_accesses = 2u;
const unsigned model_rx_fifo = 32u;

static uint8_t rxq[32];
static unsigned rx_n;
static unsigned tx_n; /* bytes in the TX FIFO */
static unsigned xosc_countdown;
static int tx_stall;
static uint32_t latched_ibrd, latched_fbrd;

void model_setup(void)
{
    cortexm_setup(0, 1);
    sim_add(RESETS, "RESETS.RESET", 0x01FFFFFFu);
    sim_set_detect(sim_add(RESETS_CLR, "RESETS.RESET (clear alias)", 0u));
    sim_add(RESET_DONE, "RESETS.RESET_DONE", 0u);
    sim_add(XOSC_CTRL, "XOSC.CTRL", 0x00000AA0u);
    sim_add(XOSC_STATUS, "XOSC.STATUS", 0u);
    sim_add(XOSC_STARTUP, "XOSC.STARTUP", 0x000000C4u);
    sim_add(REF_CTRL, "CLK_REF_CTRL", 0u);
    sim_add(REF_DIV, "CLK_REF_DIV", 0x100u);
    sim_add(REF_SEL, "CLK_REF_SELECTED", 1u);
    sim_add(SYS_CTRL, "CLK_SYS_CTRL", 0u);
    sim_add(SYS_DIV, "CLK_SYS_DIV", 0x100u);
    sim_add(SYS_SEL, "CLK_SYS_SELECTED", 1u);
    sim_add(PERI_CTRL, "CLK_PERI_CTRL", 0u);
    sim_set_gate(sim_add(IO_GPIO0_CTRL, "IO_BANK0.GPIO0_CTRL", 0x1Fu), RESETS, B_IO_BANK0, 0);
    sim_set_gate(sim_add(IO_GPIO1_CTRL, "IO_BANK0.GPIO1_CTRL", 0x1Fu), RESETS, B_IO_BANK0, 0);
    sim_set_gate(sim_add(PADS_GPIO0, "PADS_BANK0.GPIO0", 0x56u), RESETS, B_PADS_BANK0, 0);
    sim_set_gate(sim_add(PADS_GPIO1, "PADS_BANK0.GPIO1", 0x56u), RESETS, B_PADS_BANK0, 0);
    const uintptr_t u[] = {DR, FR, IBRD, FBRD, LCR_H, CR};
    const char *names[] = {"UARTDR", "UARTFR", "UARTIBRD", "UARTFBRD", "UARTLCR_H", "UARTCR"};
    for (unsigned i = 0; i < 6u; ++i) {
        struct sim_reg *r = sim_add(u[i], names[i], u[i] == CR ? 0x300u : u[i] == FR ? 0x90u : 0u);
        sim_set_gate(r, RESETS, B_UART0, 0);
    }
}

void model_set_tx_stall(int on)
{
    tx_stall = on;
}

static unsigned depth(void)
{
    return (sim_peek(LCR_H) & (1u << 4)) != 0u ? 32u : 1u;
}

static int uart_on(uint32_t bit)
{
    uint32_t cr = sim_peek(CR);
    return (sim_peek(RESETS) & B_UART0) == 0u && (cr & 1u) != 0u && (cr & bit) != 0u &&
           (sim_peek(PERI_CTRL) & (1u << 11)) != 0u;
}

void model_tick(void)
{
    if (xosc_countdown > 0u && --xosc_countdown == 0u) {
        sim_poke(XOSC_STATUS, sim_peek(XOSC_STATUS) | (1u << 31));
    }
    if (tx_n > 0u && !tx_stall && (sim_now() % 3u) == 0u) {
        --tx_n; /* the transmitter shifts one byte out */
    }
}

int model_rx(uint8_t byte)
{
    if (!uart_on(1u << 9) || rx_n >= depth()) {
        return 0;
    }
    rxq[rx_n++] = byte;
    return 1;
}

static uint32_t clk_ref_hz(void)
{
    uint32_t sel = sim_peek(REF_SEL);
    uint32_t div = sim_peek(REF_DIV) >> 8;
    uint32_t src = sel == (1u << 2) ? 12000000u : 0u; /* only the crystal is accurate enough */
    return div ? src / div : 0u;
}

static uint32_t clk_peri_hz(void)
{
    uint32_t peri = sim_peek(PERI_CTRL);
    if ((peri & (1u << 11)) == 0u || ((peri >> 5) & 7u) != 0u || sim_peek(SYS_SEL) != 1u) {
        return 0u; /* disabled, or not clk_sys, or clk_sys not on clk_ref */
    }
    uint32_t div = sim_peek(SYS_DIV) >> 8;
    return div ? clk_ref_hz() / div : 0u;
}

void model_access(struct sim_reg *r)
{
    if (cortexm_access(r)) {
        return;
    }
    if (r->addr == RESET_DONE) {
        r->value = ~sim_peek(RESETS) & 0x01FFFFFFu;
    } else if (r->addr == REF_SEL) {
        uint32_t src = sim_peek(REF_CTRL) & 3u;
        int xosc_ok = (sim_peek(XOSC_STATUS) & (1u << 31)) != 0u;
        if (src != 2u || xosc_ok) {
            r->value = 1u << src;
        }
    } else if (r->addr == SYS_SEL) {
        r->value = 1u << (sim_peek(SYS_CTRL) & 1u);
    } else if (r->addr == FR) {
        uint32_t v = r->value & ~((1u << 4) | (1u << 5) | (1u << 7) | (1u << 6));
        v |= rx_n == 0u ? (1u << 4) : (rx_n >= depth() ? (1u << 6) : 0u);
        v |= tx_n >= depth() ? (1u << 5) : 0u;
        v |= tx_n == 0u ? (1u << 7) : 0u;
        r->value = v;
    } else if (r->addr == DR) {
        r->value = rx_n > 0u ? (DR_OFFER | rxq[0]) : DR_OFFER;
    } else if (r->detect) {
        r->value = SIM_SENTINEL;
    }
}

void model_settle(struct sim_reg *r, int written)
{
    if (r->addr == RESETS_CLR) {
        if (written) {
            sim_poke(RESETS, sim_peek(RESETS) & ~r->value);
        }
        r->value = 0u;
    } else if (r->addr == XOSC_CTRL && written) {
        if ((r->value >> 12) == 0xFABu && (r->value & 0xFFFu) == 0xAA0u && xosc_countdown == 0u &&
            (sim_peek(XOSC_STATUS) & (1u << 31)) == 0u) {
            xosc_countdown = 5u;
        }
    } else if (r->addr == PERI_CTRL && written) {
        uint32_t before = r->snapshot;
        if ((before & (1u << 11)) != 0u && ((before ^ r->value) & (7u << 5)) != 0u) {
            sim_fail("CLK_PERI_CTRL.AUXSRC changed while the clock is enabled (glitchy mux)");
        }
    } else if (r->addr == LCR_H && written) {
        latched_ibrd = sim_peek(IBRD); /* PL011: the divisor is updated on an LCR_H write */
        latched_fbrd = sim_peek(FBRD);
    } else if (r->addr == DR) {
        if (written) {
            if (!uart_on(1u << 8)) {
                sim_fail("UARTDR written with the UART or its transmitter off");
            } else if (tx_n >= depth()) {
                sim_fail("UARTDR written while the TX FIFO is full (TXFF): the byte is lost");
            } else {
                ++tx_n;
                sim_tx((uint8_t)r->value);
            }
        } else if (rx_n > 0u) {
            for (unsigned i = 1; i < rx_n; ++i) {
                rxq[i - 1u] = rxq[i];
            }
            --rx_n;
        }
        r->value = 0u;
    }
}

void model_check_init(void)
{
    cortexm_check_init(0, 1);
    uint32_t resets = sim_peek(RESETS);
    sim_check((resets & (B_IO_BANK0 | B_PADS_BANK0 | B_UART0)) == 0u, "RESETS.RESET = 0x%08X: IO_BANK0, "
              "PADS_BANK0 and UART0 must be out of reset", resets);
    sim_check((resets & ~(B_IO_BANK0 | B_PADS_BANK0 | B_UART0) & 0x01FFFFFFu) == (0x01FFFFFFu & ~(B_IO_BANK0 | B_PADS_BANK0 | B_UART0)),
              "blocks other than IO_BANK0, PADS_BANK0, UART0 were taken out of reset: 0x%08X", resets);
    sim_check((sim_peek(XOSC_STARTUP) & 0x3FFFu) >= 47u, "XOSC.STARTUP DELAY %u < 47 (1 ms at 12 MHz)",
              sim_peek(XOSC_STARTUP) & 0x3FFFu);
    sim_check(sim_peek(REF_SEL) == (1u << 2), "clk_ref is not on the crystal (CLK_REF_SELECTED 0x%X)", sim_peek(REF_SEL));
    sim_check((sim_peek(IO_GPIO0_CTRL) & 0x1Fu) == 2u, "GPIO0 FUNCSEL %u, expected 2 (UART0 TX)",
              sim_peek(IO_GPIO0_CTRL) & 0x1Fu);
    sim_check((sim_peek(IO_GPIO1_CTRL) & 0x1Fu) == 2u, "GPIO1 FUNCSEL %u, expected 2 (UART0 RX)",
              sim_peek(IO_GPIO1_CTRL) & 0x1Fu);
    sim_check((sim_peek(PADS_GPIO1) & (1u << 6)) != 0u && (sim_peek(PADS_GPIO1) & (1u << 7)) == 0u,
              "GPIO1 pad: input not enabled or output disabled");
    sim_check((sim_peek(PADS_GPIO0) & (1u << 7)) == 0u, "GPIO0 pad: output disabled (OD)");
    uint32_t lcr = sim_peek(LCR_H);
    sim_check(((lcr >> 5) & 3u) == 3u && (lcr & ((1u << 1) | (1u << 3))) == 0u,
              "UARTLCR_H = 0x%X: expected 8 bits, no parity, one stop bit", lcr);
    uint32_t cr = sim_peek(CR);
    sim_check((cr & 0x301u) == 0x301u && (cr & 0xC000u) == 0u, "UARTCR = 0x%X: UARTEN/TXE/RXE, no flow control", cr);
    uint32_t clk = clk_peri_hz();
    uint32_t div64 = latched_ibrd * 64u + latched_fbrd;
    sim_check(latched_fbrd < 64u && latched_ibrd >= 1u, "IBRD %u / FBRD %u (latched by LCR_H) invalid", latched_ibrd,
              latched_fbrd);
    if (clk == 0u || div64 == 0u) {
        sim_fail("clk_peri %u Hz, divisor %u/64: no usable UART clock", clk, div64);
        return;
    }
    printf("clk_peri %u Hz, IBRD %u FBRD %u\n", clk, latched_ibrd, latched_fbrd);
    sim_check_baud("UART0", 4.0 * clk / div64);
}
