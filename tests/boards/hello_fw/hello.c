/*
 * BSP smoke firmware for tests/boards: prints a greeting with the board name, measures a
 * loop of a known instruction count with mcu_dc_bsp_counter(), echoes bytes until 'q'
 * and exits through mcu_dc_bsp_exit(42) (semihosting under QEMU).
 */
#include <stdint.h>

#include "mcu_dc_bsp.h"

static void put(const char *s)
{
    uint32_t n = 0;
    while (s[n] != '\0') {
        ++n;
    }
    mcu_dc_bsp_write((const uint8_t *)s, n);
}

static void put_u32(uint32_t v)
{
    char buf[11];
    int i = 10;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + (v % 10u));
        v /= 10u;
    } while (v != 0u);
    put(&buf[i]);
}

/* Exactly 2 instructions per iteration (subs, bne), n iterations. */
static void spin(uint32_t n)
{
    __asm__ volatile(".syntax unified\n1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+l"(n) : : "cc");
}

/* .data must be copied from flash and .bss zeroed by the reset handler. */
static volatile uint32_t g_data_word = 0x12345678u;
static volatile uint32_t g_bss_word;

#ifndef HELLO_SPIN
#define HELLO_SPIN 500000u
#endif

int main(void)
{
    mcu_dc_bsp_init();
    put(g_data_word == 0x12345678u && g_bss_word == 0u ? "data ok\n" : "data BAD\n");
    put("hello ");
    put(mcu_dc_bsp_board_name());
    put("\n");
    uint32_t t0 = mcu_dc_bsp_counter();
    spin(HELLO_SPIN);
    uint32_t t1 = mcu_dc_bsp_counter();
    put("spin ");
    put_u32(HELLO_SPIN);
    put(" counter ");
    put_u32(t1 - t0);
    put(" unit ");
    put_u32(mcu_dc_bsp_counter_unit());
    put("\nready\n");
    for (;;) {
        int c = mcu_dc_bsp_getc();
        if (c < 0) {
            continue;
        }
        uint8_t b = (uint8_t)c;
        mcu_dc_bsp_write(&b, 1u);
        if (c == 'q') {
            break;
        }
    }
    put("\nbye\n");
    return 42;
}
