/*
 * Generic Cortex-M startup for mcu_dc firmware built with the system arm-none-eabi-gcc.
 *
 * The vector table holds the 16 architectural entries only: mcu_dc polls its UART and
 * enables no device interrupt, so no external IRQ entry is needed (SysTick is entry 15,
 * used by the stellaris counter). The reset handler copies .data from flash, zeroes .bss,
 * runs C/C++ constructors and calls main(); if main returns, mcu_dc_bsp_exit(code) ends
 * the program. Symbols come from the generated linker script (templates/project/).
 * C99; works on ARMv6-M (Cortex-M0/M0+) and ARMv7-M/ARMv7E-M.
 */
#include <stdint.h>

#include "mcu_dc_bsp.h"

extern uint32_t _sidata; /* load address of .data in flash */
extern uint32_t _sdata;
extern uint32_t _edata;
extern uint32_t _sbss;
extern uint32_t _ebss;
extern uint32_t _estack; /* top of the stack reserved by the linker script */

extern int main(void);

void mcu_dc_reset_handler(void);
void mcu_dc_default_handler(void);
void mcu_dc_fault_handler(void);
void NMI_Handler(void) __attribute__((weak, alias("mcu_dc_default_handler")));
void HardFault_Handler(void) __attribute__((weak, alias("mcu_dc_fault_handler")));
void MemManage_Handler(void) __attribute__((weak, alias("mcu_dc_fault_handler")));
void BusFault_Handler(void) __attribute__((weak, alias("mcu_dc_fault_handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("mcu_dc_fault_handler")));
void SVC_Handler(void) __attribute__((weak, alias("mcu_dc_default_handler")));
void DebugMon_Handler(void) __attribute__((weak, alias("mcu_dc_default_handler")));
void PendSV_Handler(void) __attribute__((weak, alias("mcu_dc_default_handler")));
void SysTick_Handler(void) __attribute__((weak, alias("mcu_dc_default_handler")));

typedef void (*mcu_dc_vector_t)(void);

__attribute__((section(".isr_vector"), used)) const mcu_dc_vector_t mcu_dc_vectors[16] = {
    (mcu_dc_vector_t)(uintptr_t)&_estack,
    mcu_dc_reset_handler,
    NMI_Handler,
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0,
    0,
    0,
    0,
    SVC_Handler,
    DebugMon_Handler,
    0,
    PendSV_Handler,
    SysTick_Handler,
};

extern void (*__preinit_array_start[])(void);
extern void (*__preinit_array_end[])(void);
extern void (*__init_array_start[])(void);
extern void (*__init_array_end[])(void);

void mcu_dc_reset_handler(void)
{
#if defined(__ARM_FP) && !defined(__SOFTFP__)
    /* Hard-float ABI: enable CP10/CP11 (CPACR) before any FP instruction runs. */
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    uint32_t *src = &_sidata;
    uint32_t *dst = &_sdata;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; ++dst) {
        *dst = 0u;
    }
    for (void (**f)(void) = __preinit_array_start; f < __preinit_array_end; ++f) {
        (*f)();
    }
    for (void (**f)(void) = __init_array_start; f < __init_array_end; ++f) {
        (*f)();
    }
    mcu_dc_bsp_exit(main());
}

void mcu_dc_default_handler(void)
{
    for (;;) {
    }
}

/* A fault ends an emulated run with exit code 70 (so a test sees it); on hardware it spins. */
void mcu_dc_fault_handler(void)
{
    mcu_dc_bsp_exit(70);
}
