/*
 * Generic mcu_dc BSP for real Cortex-M boards built with the system toolchain
 * (mcu-dc build): enough to link the real firmware against the board's real flash and RAM
 * and measure its fit. Counter: DWT CYCCNT in CPU cycles on ARMv7-M/ARMv7E-M (ARMv7-M ARM
 * DDI 0403E §C1.8), SysTick on ARMv6-M (Cortex-M0/M0+ have no CYCCNT).
 *
 * The UART functions are weak placeholders (no byte ever arrives, writes are dropped):
 * a vendor UART driver (e.g. the ST-LINK virtual COM port USART on a Nucleo) overrides
 * them by defining the same functions in another source file. Exit spins forever (no
 * debugger to catch semihosting).
 */
#include "mcu_dc_bsp_config.h"

#if defined(__ARM_ARCH_6M__)
#include "mcu_dc_systick.h"
#else
#include "mcu_dc_dwt.h"
#endif

__attribute__((weak)) void mcu_dc_bsp_uart_init(void);
__attribute__((weak)) void mcu_dc_bsp_uart_init(void)
{
}

void mcu_dc_bsp_init(void)
{
    mcu_dc_bsp_uart_init();
#if defined(__ARM_ARCH_6M__)
    mcu_dc_systick_start();
#else
    mcu_dc_dwt_start();
#endif
}

__attribute__((weak)) int mcu_dc_bsp_getc(void)
{
    return -1;
}

__attribute__((weak)) void mcu_dc_bsp_write(const uint8_t *data, uint32_t len)
{
    (void)data;
    (void)len;
}

uint32_t mcu_dc_bsp_counter(void)
{
#if defined(__ARM_ARCH_6M__)
    return mcu_dc_bsp_ticks_to_units(mcu_dc_systick_ticks());
#else
    return mcu_dc_dwt_cycles();
#endif
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
    (void)code;
    for (;;) {
    }
}
