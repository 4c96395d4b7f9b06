/*
 * ARM semihosting (the "Semihosting for AArch32 and AArch64" specification, ARM DUI 0471 /
 * IHI 0056): the one call mcu_dc needs, SYS_EXIT_EXTENDED (0x20), so that
 * qemu-system-arm -semihosting-config enable=on,target=native exits with the firmware's
 * exit code. Only for emulated boards: on real hardware without a debugger attached, the
 * BKPT instruction would fault.
 */
#ifndef MCU_DC_SEMIHOST_H
#define MCU_DC_SEMIHOST_H

#include <stdint.h>

#define MCU_DC_SH_SYS_EXIT_EXTENDED 0x20u
#define MCU_DC_SH_ADP_STOPPED_APPLICATION_EXIT 0x20026u

static inline void mcu_dc_semihost_exit(int code)
{
    volatile uint32_t block[2];
    block[0] = MCU_DC_SH_ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    register uint32_t r0 __asm__("r0") = MCU_DC_SH_SYS_EXIT_EXTENDED;
    register uint32_t r1 __asm__("r1") = (uint32_t)(uintptr_t)block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}

#endif /* MCU_DC_SEMIHOST_H */
