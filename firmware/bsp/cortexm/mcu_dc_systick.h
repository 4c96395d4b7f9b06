/*
 * SysTick as a 64-bit tick counter (ARMv7-M ARM DDI 0403E §B3.3; ARMv6-M DDI 0419E §B3.3).
 * The 24-bit down-counter runs from the processor clock (CLKSOURCE=1) with reload
 * 0xFFFFFF; its exception (vector 15, SysTick_Handler) counts wraps. Include from exactly
 * one .c file per firmware (it defines SysTick_Handler).
 */
#ifndef MCU_DC_SYSTICK_H
#define MCU_DC_SYSTICK_H

#include <stdint.h>

#include "mcu_dc_bsp_config.h" /* MCU_DC_REG32 (a simulated register file in host tests) */

#define MCU_DC_SYST_CSR MCU_DC_REG32(0xE000E010u)
#define MCU_DC_SYST_RVR MCU_DC_REG32(0xE000E014u)
#define MCU_DC_SYST_CVR MCU_DC_REG32(0xE000E018u)
#define MCU_DC_SCB_ICSR MCU_DC_REG32(0xE000ED04u)
#define MCU_DC_ICSR_PENDSTSET (1u << 26)

static volatile uint32_t mcu_dc_systick_wraps;

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    mcu_dc_systick_wraps = mcu_dc_systick_wraps + 1u;
}

static inline void mcu_dc_systick_start(void)
{
    MCU_DC_SYST_CSR = 0u;
    MCU_DC_SYST_RVR = 0x00FFFFFFu;
    MCU_DC_SYST_CVR = 0u;                   /* any write clears the counter */
    MCU_DC_SYST_CSR = (1u << 2) | (1u << 1) | 1u; /* processor clock, interrupt, enable */
}

static inline uint64_t mcu_dc_systick_ticks(void)
{
    uint32_t hi;
    uint32_t value;
    uint32_t pending;
    do {
        hi = mcu_dc_systick_wraps;
        value = MCU_DC_SYST_CVR & 0x00FFFFFFu;
        pending = MCU_DC_SCB_ICSR & MCU_DC_ICSR_PENDSTSET;
    } while (hi != mcu_dc_systick_wraps);
    /* Reloaded but the handler has not run yet (interrupts masked): count that wrap. */
    if (pending != 0u && value > 0x00800000u) {
        hi += 1u;
    }
    return ((uint64_t)hi << 24) | (uint64_t)(0x00FFFFFFu - value);
}

#endif /* MCU_DC_SYSTICK_H */
