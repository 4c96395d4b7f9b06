/*
 * Stack-overflow probe for tests/boards: unbounded recursion. The linker script puts the
 * stack at the start of RAM, so the overflow runs below the RAM origin (a fault or lost
 * writes) instead of silently rewriting .data/.bss; "survived" must never be printed.
 */
#include <stdint.h>

#include "mcu_dc_bsp.h"

static volatile uint32_t sink;

static uint32_t deep(uint32_t n)
{
    volatile uint8_t buf[64];
    buf[n & 63u] = (uint8_t)n;
    if (n == 0u) {
        return buf[0];
    }
    return deep(n - 1u) + buf[n & 63u];
}

int main(void)
{
    mcu_dc_bsp_init();
    mcu_dc_bsp_write((const uint8_t *)"go\n", 3u);
    sink = deep(1000000u);
    mcu_dc_bsp_write((const uint8_t *)"survived\n", 9u);
    return 0;
}
