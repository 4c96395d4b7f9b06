/*
 * DWT cycle counter (ARMv7-M ARM DDI 0403E §C1.8.8, CYCCNT; DEMCR.TRCENA §C1.6.5).
 * ARMv7-M / ARMv7E-M only (Cortex-M3/M4/M7); Cortex-M0/M0+ have no CYCCNT.
 * Under QEMU the DWT is not modelled and CYCCNT reads 0.
 */
#ifndef MCU_DC_DWT_H
#define MCU_DC_DWT_H

#include <stdint.h>

#include "mcu_dc_bsp_config.h" /* MCU_DC_REG32 (a simulated register file in host tests) */

#define MCU_DC_DEMCR MCU_DC_REG32(0xE000EDFCu)
#define MCU_DC_DWT_CTRL MCU_DC_REG32(0xE0001000u)
#define MCU_DC_DWT_CYCCNT MCU_DC_REG32(0xE0001004u)
#define MCU_DC_DWT_LAR MCU_DC_REG32(0xE0001FB0u)

static inline void mcu_dc_dwt_start(void)
{
    MCU_DC_DEMCR |= (1u << 24);      /* TRCENA */
    MCU_DC_DWT_LAR = 0xC5ACCE55u;    /* unlock (Cortex-M7); ignored elsewhere */
    MCU_DC_DWT_CYCCNT = 0u;
    MCU_DC_DWT_CTRL |= 1u;           /* CYCCNTENA */
}

static inline uint32_t mcu_dc_dwt_cycles(void)
{
    return MCU_DC_DWT_CYCCNT;
}

#endif /* MCU_DC_DWT_H */
