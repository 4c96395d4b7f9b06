/*
 * Text output for the mcu_dc demo firmware, without stdio: strings and integers in
 * decimal or hexadecimal, written straight to the board's UART (mcu_dc_bsp_write).
 * C99, no malloc, no printf; every helper writes at most one short string at a time.
 */
#ifndef MCU_DC_DEMO_TEXT_H
#define MCU_DC_DEMO_TEXT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The characters of text (NUL-terminated) as they are. */
void mcu_dc_demo_puts(const char *text);

/* value in decimal: "0", "4294967295". */
void mcu_dc_demo_put_u32(uint32_t value);

/* value in decimal with a '-' when negative: "-128", "2147483647". */
void mcu_dc_demo_put_i32(int32_t value);

/* value as "0x" and eight lower-case hex digits: "0x0badf00d". */
void mcu_dc_demo_put_hex32(uint32_t value);

/* Formatting into a caller's buffer (the helpers above use these; tests check them):
 * the digits of value, NUL-terminated; buf must hold 12 bytes (u32, i32) or 11 (hex32).
 * Each returns the number of characters written, without the NUL. */
uint32_t mcu_dc_demo_fmt_u32(char *buf, uint32_t value);
uint32_t mcu_dc_demo_fmt_i32(char *buf, int32_t value);
uint32_t mcu_dc_demo_fmt_hex32(char *buf, uint32_t value);

#ifdef __cplusplus
}
#endif

#endif /* MCU_DC_DEMO_TEXT_H */
