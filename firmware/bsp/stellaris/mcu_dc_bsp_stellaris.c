/*
 * mcu_dc BSP for the Stellaris LM3S6965 evaluation board (qemu-system-arm -M lm3s6965evb).
 *
 * UART: UART0, an ARM PL011-compatible UART at 0x4000C000 (TI/Luminary LM3S6965
 * datasheet DS-LM3S6965, §13.6 "Register Map"; ARM DDI 0183 PL011 TRM), polled;
 * QEMU connects it to -serial #0. Counter: SysTick on the processor clock, wraps counted
 * in SysTick_Handler (the LM3S general-purpose timers' TAR is not readable in QEMU 7.2).
 * The scale to instructions under -icount shift=0 is measured, see boards/qemu-lm3s6965evb.toml.
 * Exit: semihosting SYS_EXIT_EXTENDED.
 */
#include "mcu_dc_bsp_config.h"
#include "mcu_dc_semihost.h"
#include "mcu_dc_systick.h"

#ifndef MCU_DC_BSP_UART_BASE
#define MCU_DC_BSP_UART_BASE 0x4000C000u
#endif

#define SYSCTL_RCC MCU_DC_REG32(0x400FE060u)   /* DS-LM3S6965 §6.4, run-mode clock configuration */
#define SYSCTL_RCGC1 MCU_DC_REG32(0x400FE104u) /* DS-LM3S6965 §6.4, UART0 clock gate bit 0 */
#define SYSCTL_RCGC2 MCU_DC_REG32(0x400FE108u) /* GPIOA clock gate bit 0 */

#define UART_DR MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x000u)
#define UART_FR MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x018u)
#define UART_IBRD MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x024u)
#define UART_FBRD MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x028u)
#define UART_LCRH MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x02Cu)
#define UART_CTL MCU_DC_REG32(MCU_DC_BSP_UART_BASE + 0x030u)
#define UART_FR_RXFE (1u << 4)
#define UART_FR_TXFF (1u << 5)

void mcu_dc_bsp_init(void)
{
    /* System clock 50 MHz (the part's maximum): PLL 200 MHz / (SYSDIV 3 + 1), USESYSDIV.
     * QEMU derives the SysTick clock from SYSDIV alone; out of reset it is 200/16 = 12.5 MHz,
     * a tick every 80 instructions under -icount shift=0; at 50 MHz a tick is 20. */
    SYSCTL_RCC = (SYSCTL_RCC & ~((0xFu << 23) | (1u << 11) | (1u << 13))) | (3u << 23) | (1u << 22);
    SYSCTL_RCGC1 |= 1u;
    SYSCTL_RCGC2 |= 1u;
    UART_CTL = 0u;
    UART_IBRD = 27u;  /* 50 MHz / (16 * 115200) = 27.13 */
    UART_FBRD = 8u;  /* round(0.13 * 64) */
    UART_LCRH = (3u << 5) | (1u << 4); /* 8 data bits, FIFOs on */
    UART_CTL = (1u << 9) | (1u << 8) | 1u; /* RXE, TXE, UARTEN */
    mcu_dc_systick_start();
}

int mcu_dc_bsp_getc(void)
{
    if ((UART_FR & UART_FR_RXFE) != 0u) {
        return -1;
    }
    return (int)(UART_DR & 0xFFu);
}

void mcu_dc_bsp_write(const uint8_t *data, uint32_t len)
{
    for (uint32_t i = 0; i < len; ++i) {
        while ((UART_FR & UART_FR_TXFF) != 0u) {
        }
        UART_DR = data[i];
    }
}

uint32_t mcu_dc_bsp_counter(void)
{
    return mcu_dc_bsp_ticks_to_units(mcu_dc_systick_ticks());
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
