/*
 * mcu_dc BSP for ARM MPS2 FPGA images (AN385 Cortex-M3, AN386 Cortex-M4, AN500 Cortex-M7)
 * as emulated by qemu-system-arm -M mps2-an385|mps2-an386|mps2-an500.
 *
 * UART: CMSDK APB UART0 at 0x40004000 (ARM DDI 0479C, Cortex-M System Design Kit TRM,
 * §4.3; AN385 Application Note, "Memory map"), polled; QEMU connects it to -serial #0.
 * Counter: CMSDK APB TIMER0 at 0x40000000 (DDI 0479C §4.2), a 32-bit down-counter on
 * the 25 MHz peripheral clock, free running from 0xFFFFFFFF. Under -icount shift=0 one
 * instruction is 1 ns of virtual time, so one tick is 40 instructions (measured:
 * tests/boards/test_boards_qemu.py). Exit: semihosting SYS_EXIT_EXTENDED.
 */
#include "mcu_dc_bsp_config.h"
#include "mcu_dc_semihost.h"

#ifndef MCU_DC_BSP_UART_BASE
#define MCU_DC_BSP_UART_BASE 0x40004000u
#endif
#ifndef MCU_DC_BSP_TIMER_BASE
#define MCU_DC_BSP_TIMER_BASE 0x40000000u
#endif

/* CMSDK APB UART registers (DDI 0479C table 4-7) */
#define UART_DATA MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x00u)
#define UART_STATE MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x04u)
#define UART_CTRL MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x08u)
#define UART_BAUDDIV MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x10u)
#define UART_STATE_TX_FULL 0x1u
#define UART_STATE_RX_FULL 0x2u
#define UART_CTRL_TX_EN 0x1u
#define UART_CTRL_RX_EN 0x2u

/* CMSDK APB timer registers (DDI 0479C table 4-3) */
#define TIMER_CTRL MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x00u)
#define TIMER_VALUE MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x04u)
#define TIMER_RELOAD MCU_DC_REG32(MCU_DC_BSP_TIMER_BASE + 0x08u)
#define TIMER_CTRL_EN 0x1u

#define PCLK_HZ 25000000u

void mcu_dc_bsp_init(void)
{
    UART_CTRL = 0u;
    UART_BAUDDIV = PCLK_HZ / 115200u;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;

    TIMER_CTRL = 0u;
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = TIMER_CTRL_EN;
}

int mcu_dc_bsp_getc(void)
{
    if ((UART_STATE & UART_STATE_RX_FULL) == 0u) {
        return -1;
    }
    return (int)(UART_DATA & 0xFFu);
}

void mcu_dc_bsp_write(const uint8_t *data, uint32_t len)
{
    for (uint32_t i = 0; i < len; ++i) {
        while ((UART_STATE & UART_STATE_TX_FULL) != 0u) {
        }
        UART_DATA = data[i];
    }
}

uint32_t mcu_dc_bsp_counter(void)
{
    /* 32-bit ticks wrap every 2^32 ticks; 40 * ticks mod 2^32 stays consistent, so
     * differences are exact without a 64-bit extension (MUL/DIV must be an integer here). */
    uint32_t ticks = 0xFFFFFFFFu - TIMER_VALUE;
    return (uint32_t)(ticks * (uint32_t)(MCU_DC_BSP_COUNTER_MUL / MCU_DC_BSP_COUNTER_DIV));
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
