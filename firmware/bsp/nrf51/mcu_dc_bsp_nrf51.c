/*
 * mcu_dc BSP for the BBC micro:bit v1 (nRF51822, Cortex-M0; qemu-system-arm -M microbit).
 *
 * UART: the nRF51 UART peripheral at 0x40002000 (Nordic nRF51 Series Reference Manual
 * v3.0, §29 "UART"; nRF51822 Product Specification v3.4, §7 memory map), polled through
 * its RXDRDY/TXDRDY events; micro:bit pins TX P0.24, RX P0.25; QEMU connects it to
 * -serial #0. Counter: TIMER0 (Reference Manual §18) in 32-bit timer mode at 16 MHz
 * (PRESCALER 0), read with TASKS_CAPTURE[0]; 32-bit wraps are extended in software. Under
 * -icount shift=0 one 16 MHz tick is 62.5 instructions (MUL 125 / DIV 2).
 * Exit: semihosting SYS_EXIT_EXTENDED.
 */
#include "mcu_dc_bsp_config.h"
#include "mcu_dc_semihost.h"

#ifndef MCU_DC_BSP_UART_BASE
#define MCU_DC_BSP_UART_BASE 0x40002000u
#endif
#ifndef MCU_DC_BSP_TIMER_BASE
#define MCU_DC_BSP_TIMER_BASE 0x40008000u
#endif

#define UART_TASKS_STARTRX MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x000u)
#define UART_TASKS_STARTTX MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x008u)
#define UART_EVENTS_RXDRDY MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x108u)
#define UART_EVENTS_TXDRDY MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x11Cu)
#define UART_ENABLE MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x500u)
#define UART_PSELTXD MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x50Cu)
#define UART_PSELRXD MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x514u)
#define UART_RXD MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x518u)
#define UART_TXD MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x51Cu)
#define UART_BAUDRATE MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x524u)
#define UART_BAUDRATE_115200 0x01D7E000u

#define TIMER_TASKS_START MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x000u)
#define TIMER_TASKS_STOP MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x004u)
#define TIMER_TASKS_CLEAR MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x00Cu)
#define TIMER_TASKS_CAPTURE0 MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x040u)
#define TIMER_MODE MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x504u)
#define TIMER_BITMODE MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x508u)
#define TIMER_PRESCALER MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x510u)
#define TIMER_CC0 MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x540u)

static uint32_t counter_last;
static uint32_t counter_high;

void mcu_dc_bsp_init(void)
{
    UART_PSELTXD = 24u;
    UART_PSELRXD = 25u;
    UART_BAUDRATE = UART_BAUDRATE_115200;
    UART_ENABLE = 4u;
    UART_EVENTS_RXDRDY = 0u;
    UART_EVENTS_TXDRDY = 0u;
    UART_TASKS_STARTTX = 1u;
    UART_TASKS_STARTRX = 1u;

    TIMER_TASKS_STOP = 1u;
    TIMER_MODE = 0u;    /* timer */
    TIMER_BITMODE = 3u; /* 32 bit */
    TIMER_PRESCALER = 0u;
    TIMER_TASKS_CLEAR = 1u;
    TIMER_TASKS_START = 1u;
    counter_last = 0u;
    counter_high = 0u;
}

int mcu_dc_bsp_getc(void)
{
    if (UART_EVENTS_RXDRDY == 0u) {
        return -1;
    }
    UART_EVENTS_RXDRDY = 0u; /* clear before reading RXD (Reference Manual §29.4) */
    return (int)(UART_RXD & 0xFFu);
}

void mcu_dc_bsp_write(const uint8_t *data, uint32_t len)
{
    for (uint32_t i = 0; i < len; ++i) {
        UART_EVENTS_TXDRDY = 0u;
        UART_TXD = data[i];
        while (UART_EVENTS_TXDRDY == 0u) {
        }
    }
}

uint32_t mcu_dc_bsp_counter(void)
{
    TIMER_TASKS_CAPTURE0 = 1u;
    uint32_t raw = TIMER_CC0;
    if (raw < counter_last) {
        counter_high += 1u;
    }
    counter_last = raw;
    return mcu_dc_bsp_ticks_to_units(((uint64_t)counter_high << 32) | raw);
}

uint32_t mcu_dc_bsp_counter_unit(void)
{
    return MCU_DC_BSP_COUNTER_UNIT;
}

const char *mcu_dc_bsp_board_name(void)
{
    return MCU_DC_BSP_BOARD;
}

void mcu_dc_bsp_exit(int code)
{
    mcu_dc_semihost_exit(code);
}
